//! The sale itself: the catalog's caches and the purchase gate.

use serde::Deserialize;

/// How the purchase gate decides. Only `redis` is for production; the MySQL ones are the
/// alternatives the requirements rejected, kept so `make bench` can measure them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PurchaseStrategy {
    Redis,
    MysqlPessimistic,
    MysqlOptimistic,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurchaseSettings {
    pub strategy: PurchaseStrategy,
    /// How long a retried request with the same `Idempotency-Key` gets the first answer.
    pub idempotency_ttl_secs: u64,
    /// How long an accepted purchase stays readable from Redis before the payment role
    /// has written its order (it normally takes milliseconds).
    pub pending_ttl_secs: u64,
    /// Order events queued per partition before purchases are answered 503.
    pub publish_queue: usize,
    /// Largest batch of order events per produce call.
    pub publish_max_batch: usize,
    /// Produce calls under way at once per partition.
    pub publish_in_flight: usize,
    /// How often each api instance audits the live sales in Redis (0: never).
    pub audit_interval_secs: u64,
    /// Purchase requests one account may send, per second and in a burst, to each api
    /// instance (0: no limit); more are answered 429 before touching Redis.
    pub user_rate_per_sec: u32,
    pub user_burst: u32,
    /// The same per client IP (shoppers behind one NAT share it: keep it generous).
    pub ip_rate_per_sec: u32,
    pub ip_burst: u32,
    /// How long an admission pass from a sale's waiting room is good for, from the
    /// moment the shopper first sees it.
    pub admission_pass_ttl_secs: u64,
    /// How often each api instance steps the open waiting rooms (draw, admissions).
    pub waiting_room_tick_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogSettings {
    /// Lifetime of an entry in each instance's memory (requirements: 30 s).
    pub local_ttl_ms: u64,
    /// Lifetime of a page or coupon in Redis (requirements: 2 min).
    pub redis_ttl_ms: u64,
    /// Lifetime of the null marker cached for an id that does not exist.
    pub null_ttl_ms: u64,
    /// Base TTL of a rebuild lock; the holder's watchdog extends it every third.
    pub lock_ttl_ms: u64,
    /// Entries kept in each instance's memory.
    pub local_capacity: usize,
    pub max_page_size: u32,
    pub default_page_size: u32,
    /// Pages of the default size shared in Redis (1 to this); other page/size pairs are
    /// loaded from MySQL, a few at a time, and kept only in memory, so the Redis key
    /// space and an admin change's invalidation stay bounded whatever clients ask for.
    pub shared_pages: u32,
    /// Loads of pages outside the shared set running at once per instance; more answer
    /// 503 SERVER_BUSY.
    pub unshared_page_loads: usize,
    /// Largest accepted image upload, in bytes.
    pub max_image_bytes: usize,
    pub search: SearchSettings,
}

/// Which engine finds coupons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchEngine {
    /// An index in each api process (tantivy), filled from MySQL at start and kept
    /// current by following the coupons table: prefix matching and typo tolerance,
    /// no extra server, no search load on MySQL.
    Tantivy,
    /// MySQL's own full-text index: no extra server, prefix matching, no typos.
    Mariadb,
    /// An OpenSearch cluster (or Elasticsearch with the same API): typo tolerance.
    Opensearch,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchSettings {
    pub engine: SearchEngine,
    /// How long each instance keeps a search's results in memory: the delay before an
    /// admin change made on another instance shows in searches.
    pub ttl_ms: u64,
    /// How long Redis shares a search's results between the instances (0: not at all).
    /// Any admin change voids them at once; this bounds only how late a sale that
    /// opens or ends moves between the status filters.
    pub redis_ttl_ms: u64,
    /// Searches not in memory run at once per instance; more wait up to `queue_ms`,
    /// then are answered 503 SERVER_BUSY.
    pub concurrent_loads: usize,
    pub queue_ms: u64,
    /// How often an instance with its own index (`engine = "tantivy"`) looks for the
    /// coupon changes made on the others.
    pub follow_ms: u64,
    /// How much lower than the rest of the process the index's search threads run
    /// (`engine = "tantivy"`; Linux nice levels, 0 to 19, 0: the same): on shared cores
    /// a burst of searches then waits for purchases.
    pub niceness: u8,
    /// The OpenSearch endpoint (`engine = "opensearch"`), e.g. `http://127.0.0.1:9200`.
    pub opensearch_url: String,
    pub opensearch_index: String,
    /// Bound on one OpenSearch call.
    pub opensearch_timeout_ms: u64,
}
