//! The catalog: browsing through three cache levels, real-time stock, and the admin
//! changes that invalidate them.
//!
//! Read path (per page and per coupon): this instance's memory (30 s) → Redis (2 min) →
//! MySQL. On a Redis miss one request per key rebuilds under a self-expiring lock whose
//! holder's watchdog extends it; every other request gets `Busy` (503 + Retry-After) at
//! once instead of piling onto MySQL (cache breakdown). An id that does not exist is
//! cached as a null marker for a short TTL (cache penetration).
//!
//! The cached pages carry `remaining` as it was when the page was built: it may lag by
//! design (the requirements accept it). Purchases never read these caches;
//! [`Catalog::stock`] reads the real-time counter the purchase script updates.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use prometheus::IntCounterVec;
use quick_cache::sync::Cache;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::adapters::mysql::{MysqlError, MysqlPool, coupons};
use crate::adapters::redis::RedisError;
use crate::adapters::redis::catalog_cache::{Cached, CatalogCache};
use crate::adapters::redis::coupon_state::{CouponState, WarmUp};
use crate::adapters::redis::rebuild_lock::RebuildLocks;
use crate::config::CatalogSettings;
use crate::domain::coupon::{
    CatalogError, Coupon, CouponDraft, CouponId, ImageFormat, InvalidCoupon, SaleState,
};
use crate::domain::failure::{BoxError, Failure};
use crate::domain::ports::{ObjectStore, ObjectStoreError, SearchIndex, StoredObject};
use crate::domain::search::SearchQuery;

/// A coupon as the API shows it (also the cached form).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = Coupon)]
pub struct CouponView {
    #[schema(minimum = 1)]
    pub id: i64,
    pub name: String,
    pub description: String,
    pub price_cents: i64,
    /// Where the image is served; null until one is uploaded.
    pub image_url: Option<String>,
    pub total_quantity: i64,
    /// Units left when this view was built: may lag on cached pages, see
    /// `/api/coupons/{id}/stock`.
    pub remaining: i64,
    /// Most units one user may buy.
    pub per_user_limit: i64,
    pub sale_starts_at: DateTime<Utc>,
    pub sale_ends_at: DateTime<Utc>,
    /// Shoppers admitted per second through the waiting room; null: none (buy
    /// directly). With one, join `/api/coupons/{id}/queue` and buy with the pass.
    #[serde(default)]
    pub waiting_room_per_sec: Option<i64>,
}

/// One page of the catalog.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CouponPage {
    #[schema(value_type = Vec<CouponView>)]
    pub items: Arc<Vec<CouponView>>,
    pub page: u32,
    pub size: u32,
}

impl CouponPage {
    fn to_json(&self) -> Result<Bytes, CatalogError> {
        serde_json::to_vec(self).map(Bytes::from).map_err(corrupt)
    }
}

/// Counts each lookup by where it was answered from.
#[derive(Clone)]
pub struct CatalogMetrics {
    lookups: IntCounterVec,
}

impl CatalogMetrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let lookups = IntCounterVec::new(
            prometheus::Opts::new(
                "catalog_lookups_total",
                "Catalog lookups by kind (page, coupon) and where they were answered: \
                 local_hit, redis_hit, db_load, busy",
            ),
            &["kind", "outcome"],
        )?;
        Ok(Self { lookups })
    }

    pub fn collector(&self) -> Box<dyn prometheus::core::Collector> {
        Box::new(self.lookups.clone())
    }

    fn count(&self, kind: &'static str, outcome: &'static str) {
        self.lookups.with_label_values(&[kind, outcome]).inc();
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum LocalKey {
    Page(u32, u32),
    Coupon(i64),
    Search(Box<SearchQuery>),
}

#[derive(Clone)]
enum LocalEntry {
    /// A page and its response body, serialised once per load (browsing is the hottest
    /// read path; re-serialising 20 coupons per request halved its throughput).
    Page(Arc<Vec<CouponView>>, Bytes),
    /// `None`: the coupon does not exist (cached null).
    Coupon(Option<Arc<CouponView>>),
    /// Search results as their response body.
    Search(Bytes),
}

pub struct Catalog {
    mysql: MysqlPool,
    cache: CatalogCache,
    state: CouponState,
    locks: RebuildLocks,
    objects: Arc<dyn ObjectStore>,
    local: Cache<LocalKey, (LocalEntry, Instant)>,
    settings: CatalogSettings,
    public_base_url: String,
    metrics: CatalogMetrics,
    /// Turns to load a page outside the shared set.
    unshared_loads: Arc<tokio::sync::Semaphore>,
    search: Arc<dyn SearchIndex>,
    /// Turns to run a search that is not in memory.
    search_loads: tokio::sync::Semaphore,
    /// Where this instance's own index stands (engines kept in each process); one
    /// pass at a time holds it.
    search_cursor: tokio::sync::Mutex<ChangeCursor>,
    /// When the last complete pass over this instance's own index began (none yet:
    /// the index is not filled).
    search_passed_at: std::sync::Mutex<Option<std::time::Instant>>,
}

fn unavailable(e: impl Into<Failure>) -> CatalogError {
    CatalogError::Unavailable(e.into())
}

fn corrupt(cause: impl Into<BoxError>) -> CatalogError {
    CatalogError::Unavailable(Failure::corrupt(cause))
}

impl From<MysqlError> for CatalogError {
    fn from(e: MysqlError) -> Self {
        unavailable(e)
    }
}

impl From<RedisError> for CatalogError {
    fn from(e: RedisError) -> Self {
        unavailable(e)
    }
}

mod admin;
mod read;
mod search;
mod search_follow;

pub use admin::AdminError;
pub use search::{Highlight, SearchHit, SearchResults};
use search_follow::ChangeCursor;

impl Catalog {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        mysql: MysqlPool,
        cache: CatalogCache,
        state: CouponState,
        locks: RebuildLocks,
        objects: Arc<dyn ObjectStore>,
        search: Arc<dyn SearchIndex>,
        settings: CatalogSettings,
        public_base_url: String,
        metrics: CatalogMetrics,
    ) -> Self {
        Self {
            mysql,
            cache,
            state,
            locks,
            objects,
            local: Cache::new(settings.local_capacity),
            unshared_loads: Arc::new(tokio::sync::Semaphore::new(
                settings.unshared_page_loads.max(1),
            )),
            search,
            search_loads: tokio::sync::Semaphore::new(settings.search.concurrent_loads.max(1)),
            search_cursor: tokio::sync::Mutex::new(ChangeCursor::default()),
            search_passed_at: std::sync::Mutex::new(None),
            settings,
            public_base_url: public_base_url.trim_end_matches('/').to_owned(),
            metrics,
        }
    }

    /// A stored image; None for a key that names none.
    pub async fn object(&self, key: &str) -> Result<Option<StoredObject>, CatalogError> {
        match self.objects.get(key).await {
            Ok(object) => Ok(Some(object)),
            Err(ObjectStoreError::NotFound(_) | ObjectStoreError::InvalidKey(_)) => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    fn redis_ttl(&self) -> Duration {
        Duration::from_millis(self.settings.redis_ttl_ms)
    }

    fn local_get(&self, key: &LocalKey) -> Option<LocalEntry> {
        self.local_get_within(key, Duration::from_millis(self.settings.local_ttl_ms))
    }

    fn local_get_within(&self, key: &LocalKey, ttl: Duration) -> Option<LocalEntry> {
        let (entry, loaded_at) = self.local.get(key)?;
        // quick_cache has no TTL: the load time travels with the value.
        if loaded_at.elapsed() < ttl {
            Some(entry)
        } else {
            self.local.remove(key);
            None
        }
    }

    fn local_put(&self, key: LocalKey, entry: LocalEntry) {
        self.local.insert(key, (entry, Instant::now()));
    }

    pub fn max_image_bytes(&self) -> usize {
        self.settings.max_image_bytes
    }

    pub fn max_page_size(&self) -> u32 {
        self.settings.max_page_size
    }

    /// Views of loaded rows, with `remaining` read from Redis in one round trip.
    async fn views(&self, rows: &[Coupon]) -> Result<Vec<CouponView>, CatalogError> {
        let ids: Vec<CouponId> = rows.iter().map(|c| c.id).collect();
        let stocks = self.state.stocks(&ids).await?;
        Ok(rows
            .iter()
            .zip(stocks)
            .map(|(coupon, stock)| CouponView {
                id: coupon.id.get(),
                name: coupon.name.clone(),
                description: coupon.description.clone(),
                price_cents: coupon.price_cents,
                image_url: coupon
                    .image_key
                    .as_ref()
                    .map(|key| format!("{}/{key}", self.public_base_url)),
                total_quantity: coupon.total_quantity,
                // Not yet in Redis means nothing was sold yet.
                remaining: stock.unwrap_or(coupon.total_quantity).max(0),
                per_user_limit: coupon.per_user_limit,
                sale_starts_at: coupon.sale.starts_at,
                sale_ends_at: coupon.sale.ends_at,
                waiting_room_per_sec: coupon.waiting_room_per_sec,
            })
            .collect())
    }

    async fn view(&self, coupon: &Coupon) -> Result<CouponView, CatalogError> {
        self.views(std::slice::from_ref(coupon))
            .await?
            .pop()
            .ok_or_else(|| corrupt("view of a loaded coupon went missing"))
    }
}
