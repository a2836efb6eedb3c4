//! The one place Redis keys are spelled. Keys of one coupon share the hash tag
//! `{c:<id>}`, so every Lua script touches one slot and runs unchanged on Redis Cluster.

/// Hash tags the shared catalog cache is spread over.
pub const CATALOG_SHARDS: u32 = 16;

/// Builds namespaced keys: `<namespace>:<rest>`.
#[derive(Debug, Clone)]
pub struct Keys {
    namespace: String,
}

impl Keys {
    pub fn new(namespace: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
        }
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Pattern matching every key of this namespace (for SCAN in cleanup tools and tests).
    pub fn all_pattern(&self) -> String {
        format!("{}:*", self.namespace)
    }

    /// Real-time remaining stock of a coupon (a string the purchase script decrements).
    pub fn coupon_stock(&self, coupon_id: i64) -> String {
        format!("{}:fs:{{c:{coupon_id}}}:stock", self.namespace)
    }

    /// Sale parameters the purchase script checks: limit, window, deleted flag (a hash).
    pub fn coupon_meta(&self, coupon_id: i64) -> String {
        format!("{}:fs:{{c:{coupon_id}}}:meta", self.namespace)
    }

    /// Cached JSON of one coupon, or the null marker for an id that does not exist.
    /// The catalog cache is split into [`CATALOG_SHARDS`] hash tags `{catalog:<n>}`, so
    /// browsing spreads over a cluster's primaries; each shard has its own version, so
    /// `lua/cache_put.lua` checks it and writes an entry in one slot.
    pub fn catalog_coupon(&self, coupon_id: i64) -> String {
        let shard = coupon_id.rem_euclid(i64::from(CATALOG_SHARDS));
        format!("{}:{{catalog:{shard}}}:coupon:{coupon_id}", self.namespace)
    }

    /// Cached page of the coupon list (a Redis list of JSON items).
    pub fn catalog_page(&self, page: u32, size: u32) -> String {
        let shard = page.wrapping_mul(31).wrapping_add(size) % CATALOG_SHARDS;
        format!("{}:{{catalog:{shard}}}:page:{page}:{size}", self.namespace)
    }

    /// Cached results of one search, named by a hex digest of the normalised query. Not
    /// listed in the shard's pages: an entry holds the shard version it was written
    /// under and counts only while that is current, so an admin change voids every
    /// search at once without a walk over them.
    pub fn catalog_search(&self, digest: &str) -> String {
        let shard = digest
            .get(..4)
            .and_then(|head| u32::from_str_radix(head, 16).ok())
            .unwrap_or(0)
            % CATALOG_SHARDS;
        format!("{}:{{catalog:{shard}}}:search:{digest}", self.namespace)
    }

    /// Set of the page keys currently cached in one shard, so an admin change can drop
    /// them all.
    pub fn catalog_pages(&self, shard: u32) -> String {
        format!("{}:{{catalog:{shard}}}:pages", self.namespace)
    }

    /// Counter of one shard bumped by every admin change; rebuilds that began before it
    /// do not write.
    pub fn catalog_version(&self, shard: u32) -> String {
        format!("{}:{{catalog:{shard}}}:version", self.namespace)
    }

    /// The shard of a key made by [`Keys::catalog_coupon`] or [`Keys::catalog_page`].
    pub fn catalog_shard(key: &str) -> u32 {
        key.split_once("{catalog:")
            .and_then(|(_, rest)| rest.split_once('}'))
            .and_then(|(shard, _)| shard.parse().ok())
            .unwrap_or(0)
    }

    /// Rebuild lock of a cache key (one rebuilder per key).
    pub fn rebuild_lock(&self, cache_key: &str) -> String {
        format!("{cache_key}:lock")
    }

    /// The answer to a purchase retried with the same `Idempotency-Key` (digest).
    pub fn coupon_idempotency(&self, coupon_id: i64, user_id: &str, key_digest: &str) -> String {
        format!(
            "{}:fs:{{c:{coupon_id}}}:idem:{user_id}:{key_digest}",
            self.namespace
        )
    }

    /// Held while a coupon's sale state is being rebuilt (value: the rebuild's token);
    /// purchases of the coupon wait meanwhile.
    pub fn coupon_rebuild(&self, coupon_id: i64) -> String {
        format!("{}:fs:{{c:{coupon_id}}}:rebuild", self.namespace)
    }

    /// Who has an order: 'C' consumed by the payment role or 'P' re-published by a replay
    /// (it will exist), 'R' released by the api (it never will), 'F' its payment failed
    /// and its unit was given back.
    pub fn coupon_order_claim(&self, coupon_id: i64, order_id: &str) -> String {
        format!("{}:fs:{{c:{coupon_id}}}:claim:{order_id}", self.namespace)
    }

    /// A user's pending orders (hash: order id -> record).
    pub fn user_pending_orders(&self, user_id: &str) -> String {
        format!("{}:{{u:{user_id}}}:pending_orders", self.namespace)
    }

    /// Which ws instance holds a user's socket(s): the server id.
    pub fn ws_route(&self, user_id: &str) -> String {
        format!("{}:ws:user:{user_id}", self.namespace)
    }

    /// Login attempts in the current window for one e-mail (hashed: no personal data in
    /// key names).
    pub fn login_attempts_email(&self, email_digest: &str) -> String {
        format!("{}:login:email:{email_digest}", self.namespace)
    }

    /// Login attempts in the current window from one client IP (hashed).
    pub fn login_attempts_ip(&self, ip_digest: &str) -> String {
        format!("{}:login:ip:{ip_digest}", self.namespace)
    }

    /// Sign-ups in the current window from one client IP (hashed).
    pub fn registrations_ip(&self, ip_digest: &str) -> String {
        format!("{}:register:ip:{ip_digest}", self.namespace)
    }

    /// Sign-ups in the current window from everyone.
    pub fn registrations_all(&self) -> String {
        format!("{}:register:all", self.namespace)
    }

    /// Buyers of a coupon (a set for limit 1, a hash of counts above it).
    pub fn coupon_buyers(&self, coupon_id: i64) -> String {
        format!("{}:fs:{{c:{coupon_id}}}:buyers", self.namespace)
    }

    /// One part of a coupon's waiting room (`state`, `pre`, `queue`, `joined`,
    /// `admitted`), in the coupon's hash tag like the rest of its sale.
    pub fn waiting_room(&self, coupon_id: i64, part: &str) -> String {
        format!("{}:fs:{{c:{coupon_id}}}:wr:{part}", self.namespace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_one_coupon_share_a_hash_tag_and_the_namespace() {
        let keys = Keys::new("t:abc");
        let stock = keys.coupon_stock(42);
        let buyers = keys.coupon_buyers(42);
        assert_eq!(stock, "t:abc:fs:{c:42}:stock");
        for key in [&stock, &buyers] {
            assert!(key.starts_with("t:abc:"));
            assert!(key.contains("{c:42}"));
        }
        assert_ne!(keys.coupon_stock(4), keys.coupon_stock(42));
    }

    #[test]
    fn catalog_entries_spread_over_every_shard_and_name_theirs() {
        let keys = Keys::new("t");
        let shards: std::collections::HashSet<u32> = (1..=64)
            .map(|id| Keys::catalog_shard(&keys.catalog_coupon(id)))
            .chain((1..=64).map(|page| Keys::catalog_shard(&keys.catalog_page(page, 20))))
            .collect();
        assert_eq!(shards.len(), CATALOG_SHARDS as usize);
        let page = keys.catalog_page(1, 20);
        let shard = Keys::catalog_shard(&page);
        assert!(page.contains(&format!("{{catalog:{shard}}}")), "{page}");
        assert!(
            keys.catalog_version(shard)
                .contains(&format!("{{catalog:{shard}}}"))
        );
    }
}
