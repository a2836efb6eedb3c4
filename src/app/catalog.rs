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
use crate::domain::ports::{ObjectStore, ObjectStoreError, StoredObject};

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
}

#[derive(Clone)]
enum LocalEntry {
    /// A page and its response body, serialised once per load (browsing is the hottest
    /// read path; re-serialising 20 coupons per request halved its throughput).
    Page(Arc<Vec<CouponView>>, Bytes),
    /// `None`: the coupon does not exist (cached null).
    Coupon(Option<Arc<CouponView>>),
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

/// Where the admin use cases need more than the shared error type says.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The change is valid in itself but not at this point of the sale.
    #[error("{field}: {message}")]
    Conflict {
        field: &'static str,
        message: &'static str,
    },
}

impl Catalog {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        mysql: MysqlPool,
        cache: CatalogCache,
        state: CouponState,
        locks: RebuildLocks,
        objects: Arc<dyn ObjectStore>,
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
        let (entry, loaded_at) = self.local.get(key)?;
        // quick_cache has no TTL: the load time travels with the value.
        if loaded_at.elapsed() < Duration::from_millis(self.settings.local_ttl_ms) {
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

    /// Validates `page`/`size` (1-based page; defaults from the settings).
    pub fn page_params(
        &self,
        page: Option<u32>,
        size: Option<u32>,
    ) -> Result<(u32, u32), CatalogError> {
        let page = page.unwrap_or(1);
        let size = size.unwrap_or(self.settings.default_page_size);
        let max_size = self.settings.max_page_size;
        if page == 0 || page > 1_000_000 {
            return Err(CatalogError::InvalidPage {
                field: "page",
                max_size,
            });
        }
        if size == 0 || size > max_size {
            return Err(CatalogError::InvalidPage {
                field: "size",
                max_size,
            });
        }
        Ok((page, size))
    }

    /// One page of the coupon list.
    pub async fn page(&self, page: u32, size: u32) -> Result<CouponPage, CatalogError> {
        let local_key = LocalKey::Page(page, size);
        if let Some(LocalEntry::Page(items, _)) = self.local_get(&local_key) {
            self.metrics.count("page", "local_hit");
            return Ok(CouponPage { items, page, size });
        }
        let key = self.cache.keys().catalog_page(page, size);
        let items = match self.page_from_redis(&key).await? {
            Some(items) => {
                self.metrics.count("page", "redis_hit");
                items
            }
            None => self.rebuild_page(&key, page, size).await?,
        };
        let result = CouponPage { items, page, size };
        self.local_put(
            local_key,
            LocalEntry::Page(result.items.clone(), result.to_json()?),
        );
        Ok(result)
    }

    /// The page as its JSON response body (cached with the page in memory).
    pub async fn page_json(&self, page: u32, size: u32) -> Result<Bytes, CatalogError> {
        if let Some(LocalEntry::Page(_, json)) = self.local_get(&LocalKey::Page(page, size)) {
            self.metrics.count("page", "local_hit");
            return Ok(json);
        }
        self.page(page, size).await?.to_json()
    }

    async fn page_from_redis(
        &self,
        key: &str,
    ) -> Result<Option<Arc<Vec<CouponView>>>, CatalogError> {
        Ok(match self.cache.get_page(key).await? {
            Cached::Miss => None,
            Cached::Null => Some(Arc::new(Vec::new())),
            Cached::Hit(items) => Some(Arc::new(
                items
                    .iter()
                    .map(|json| serde_json::from_str(json))
                    .collect::<Result<_, _>>()
                    .map_err(|e| corrupt(format!("cached page: {e}")))?,
            )),
        })
    }

    /// Runs `build` as the single rebuilder of `key`: takes the key's lock (or answers
    /// `Busy` at once), re-checks Redis (someone may have finished a rebuild between our
    /// miss and our lock), builds, and releases the lock whatever happened.
    async fn rebuild<T>(
        &self,
        kind: &'static str,
        key: &str,
        recheck: impl AsyncFn() -> Result<Option<T>, CatalogError>,
        build: impl AsyncFn(i64) -> Result<T, CatalogError>,
    ) -> Result<T, CatalogError> {
        let lock_key = self.cache.keys().rebuild_lock(key);
        let Some(guard) = self.locks.try_acquire(&lock_key).await? else {
            self.metrics.count(kind, "busy");
            return Err(CatalogError::Busy);
        };
        let result = match recheck().await {
            Ok(Some(found)) => {
                self.metrics.count(kind, "redis_hit");
                Ok(found)
            }
            Ok(None) => {
                self.metrics.count(kind, "db_load");
                // Read before loading: an admin change during the load makes the write a no-op.
                match self.cache.version().await {
                    Ok(version) => build(version).await,
                    Err(e) => Err(e.into()),
                }
            }
            Err(e) => Err(e),
        };
        guard.release().await;
        result
    }

    async fn rebuild_page(
        &self,
        key: &str,
        page: u32,
        size: u32,
    ) -> Result<Arc<Vec<CouponView>>, CatalogError> {
        let build = async |version: i64| {
            let offset = i64::from(page - 1) * i64::from(size);
            let rows = self
                .mysql
                .with_conn(async |conn| coupons::page(conn, i64::from(size), offset).await)
                .await?;
            let views = self.views(&rows).await?;
            let json: Vec<String> = views
                .iter()
                .map(serde_json::to_string)
                .collect::<Result<_, _>>()
                .map_err(corrupt)?;
            self.cache
                .put_page(key, &json, self.redis_ttl(), version)
                .await?;
            Ok(Arc::new(views))
        };
        self.rebuild("page", key, async || self.page_from_redis(key).await, build)
            .await
    }

    /// One coupon; `NotFound` for ids that do not exist or were deleted.
    pub async fn coupon(&self, id: CouponId) -> Result<Arc<CouponView>, CatalogError> {
        let local_key = LocalKey::Coupon(id.get());
        if let Some(LocalEntry::Coupon(found)) = self.local_get(&local_key) {
            self.metrics.count("coupon", "local_hit");
            return found.ok_or(CatalogError::NotFound);
        }
        let key = self.cache.keys().catalog_coupon(id.get());
        let found = match self.coupon_from_redis(&key).await? {
            Some(found) => {
                self.metrics.count("coupon", "redis_hit");
                found
            }
            None => self.rebuild_coupon(&key, id).await?,
        };
        self.local_put(local_key, LocalEntry::Coupon(found.clone()));
        found.ok_or(CatalogError::NotFound)
    }

    /// `None`: a miss; `Some(None)`: cached "does not exist".
    async fn coupon_from_redis(
        &self,
        key: &str,
    ) -> Result<Option<Option<Arc<CouponView>>>, CatalogError> {
        Ok(match self.cache.get_coupon(key).await? {
            Cached::Miss => None,
            Cached::Null => Some(None),
            Cached::Hit(json) => Some(Some(Arc::new(
                serde_json::from_str(&json).map_err(|e| corrupt(format!("cached coupon: {e}")))?,
            ))),
        })
    }

    async fn rebuild_coupon(
        &self,
        key: &str,
        id: CouponId,
    ) -> Result<Option<Arc<CouponView>>, CatalogError> {
        let build = async |version: i64| {
            let coupon = self
                .mysql
                .with_conn(async |conn| coupons::find(conn, id).await)
                .await?
                .filter(|c| !c.is_deleted);
            let Some(coupon) = coupon else {
                let ttl = Duration::from_millis(self.settings.null_ttl_ms);
                self.cache.put_coupon(key, None, ttl, version).await?;
                return Ok(None);
            };
            let view = self.view(&coupon).await?;
            let json = serde_json::to_string(&view).map_err(corrupt)?;
            self.cache
                .put_coupon(key, Some(&json), self.redis_ttl(), version)
                .await?;
            Ok(Some(Arc::new(view)))
        };
        self.rebuild(
            "coupon",
            key,
            async || self.coupon_from_redis(key).await,
            build,
        )
        .await
    }

    /// Real-time remaining stock, from the counter the purchase script updates.
    pub async fn stock(&self, id: CouponId) -> Result<i64, CatalogError> {
        // The sale state answers alone (no cache, no lock): it knows deleted coupons.
        match self.state.live_stock(id).await? {
            Some((_, true)) => Err(CatalogError::NotFound),
            Some((stock, false)) => Ok(stock.max(0)),
            // Not in Redis: the catalog's verdict (unknown ids are 404, cached);
            // a coupon never warmed up has sold nothing.
            None => Ok(self.coupon(id).await?.total_quantity),
        }
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
            })
            .collect())
    }

    async fn view(&self, coupon: &Coupon) -> Result<CouponView, CatalogError> {
        self.views(std::slice::from_ref(coupon))
            .await?
            .pop()
            .ok_or_else(|| corrupt("view of a loaded coupon went missing"))
    }

    /// Drops this instance's and the shared cache entries an admin change affects.
    async fn invalidate(&self, id: CouponId) -> Result<(), CatalogError> {
        self.cache
            .invalidate(&self.cache.keys().catalog_coupon(id.get()))
            .await?;
        self.local.clear();
        Ok(())
    }

    async fn load_fresh(&self, id: CouponId) -> Result<Coupon, CatalogError> {
        self.mysql
            .with_conn(async |conn| coupons::find(conn, id).await)
            .await?
            .filter(|c| !c.is_deleted)
            .ok_or(CatalogError::NotFound)
    }

    async fn fresh_view(&self, id: CouponId) -> Result<CouponView, CatalogError> {
        let coupon = self.load_fresh(id).await?;
        self.view(&coupon).await
    }

    /// Creates a coupon and puts its sale into Redis (stock, limit, window).
    pub async fn create(&self, draft: &CouponDraft) -> Result<CouponView, CatalogError> {
        let coupon = self
            .mysql
            .with_conn(async |conn| coupons::insert(conn, draft).await)
            .await?;
        self.put_sale_state(&coupon).await?;
        self.invalidate(coupon.id).await?;
        tracing::info!(coupon.id = %coupon.id, "coupon created");
        self.fresh_view(coupon.id).await
    }

    /// Replaces a coupon's editable fields. Quantity and per-user limit can change only
    /// before the sale starts (afterwards units may have been sold against them).
    pub async fn update(
        &self,
        id: CouponId,
        draft: &CouponDraft,
    ) -> Result<CouponView, AdminError> {
        let current = self.load_fresh(id).await?;
        let started = current.sale.state(Utc::now()) != SaleState::NotStarted;
        if started && draft.total_quantity != current.total_quantity {
            return Err(AdminError::Conflict {
                field: "total_quantity",
                message: "cannot change once the sale has started",
            });
        }
        // The buyer records' shape depends on the limit (a set for 1, counts above it).
        if started && draft.per_user_limit != current.per_user_limit {
            return Err(AdminError::Conflict {
                field: "per_user_limit",
                message: "cannot change once the sale has started",
            });
        }
        let updated = self
            .mysql
            .with_conn(async |conn| coupons::update(conn, id, draft).await)
            .await
            .map_err(CatalogError::from)?;
        if !updated {
            return Err(CatalogError::NotFound.into());
        }
        let coupon = self.load_fresh(id).await?;
        if matches!(
            self.put_sale_state(&coupon).await?,
            WarmUp::TotalFixedBySales { .. }
        ) {
            // A sale that was started and postponed has sold units against the old
            // total: put the row back as it was and refuse.
            let previous = CouponDraft {
                name: current.name.clone(),
                description: current.description.clone(),
                price_cents: current.price_cents,
                total_quantity: current.total_quantity,
                per_user_limit: current.per_user_limit,
                sale: current.sale,
            };
            self.mysql
                .with_conn(async |conn| coupons::update(conn, id, &previous).await)
                .await
                .map_err(CatalogError::from)?;
            self.invalidate(id).await?;
            return Err(AdminError::Conflict {
                field: "total_quantity",
                message: "cannot change once units of the sale are sold",
            });
        }
        self.invalidate(id).await?;
        tracing::info!(coupon.id = %id, "coupon updated");
        Ok(self.fresh_view(id).await?)
    }

    /// Soft delete: the row stays (orders point at it); browsing and buying stop.
    pub async fn delete(&self, id: CouponId) -> Result<(), CatalogError> {
        let coupon = self.load_fresh(id).await?;
        let deleted = self
            .mysql
            .with_conn(async |conn| coupons::soft_delete(conn, id).await)
            .await?;
        if !deleted {
            return Err(CatalogError::NotFound);
        }
        let mut gone = coupon;
        gone.is_deleted = true;
        self.put_sale_state(&gone).await?;
        self.invalidate(id).await?;
        tracing::info!(coupon.id = %id, "coupon deleted");
        Ok(())
    }

    /// Stores an image (checked by content, not by declared type) and points the coupon
    /// at it; the previous image is removed.
    pub async fn upload_image(
        &self,
        id: CouponId,
        bytes: Bytes,
    ) -> Result<CouponView, CatalogError> {
        if bytes.len() > self.settings.max_image_bytes {
            return Err(CatalogError::ImageTooLarge {
                max_bytes: self.settings.max_image_bytes,
            });
        }
        let format = ImageFormat::sniff(&bytes).ok_or(CatalogError::UnsupportedImage)?;
        self.load_fresh(id).await?;
        let key = format!(
            "coupons/{id}/{}.{}",
            uuid::Uuid::now_v7().simple(),
            format.extension()
        );
        self.objects
            .put(&key, bytes, format.content_type())
            .await
            .map_err(unavailable)?;
        let previous = self
            .mysql
            .with_conn(async |conn| coupons::set_image(conn, id, &key).await)
            .await?;
        let Some(previous) = previous else {
            // Deleted meanwhile: do not leave the object behind.
            let _ = self.objects.delete(&key).await;
            return Err(CatalogError::NotFound);
        };
        if let Some(old) = previous
            && let Err(error) = self.objects.delete(&old).await
        {
            tracing::warn!(coupon.id = %id, %error, "could not delete the previous image");
        }
        self.invalidate(id).await?;
        self.fresh_view(id).await
    }

    /// Puts every live coupon's sale into Redis (start-up; idempotent, never resets a
    /// sale in progress). Returns how many.
    pub async fn warm_up_all(&self) -> Result<usize, CatalogError> {
        let live = self
            .mysql
            .with_conn(async |conn| coupons::live(conn).await)
            .await?;
        // Which sales had a state once: one query for all, not one per coupon.
        let ids: Vec<i64> = live.iter().map(|c| c.id.get()).collect();
        let created: std::collections::HashSet<i64> = self
            .mysql
            .with_conn(async |conn| coupons::with_sale_state_created(conn, &ids).await)
            .await?
            .into_iter()
            .collect();
        for coupon in &live {
            self.write_sale_state(coupon, created.contains(&coupon.id.get()))
                .await?;
        }
        Ok(live.len())
    }

    /// Puts a coupon's sale into Redis (`CouponState::warm_up`): the stock is created
    /// only if this sale never had a state, which MySQL remembers. A lost state is left
    /// alone (purchases answer 503 until a reconcile rebuilds it), never re-created at
    /// the full quantity.
    async fn put_sale_state(&self, coupon: &Coupon) -> Result<WarmUp, CatalogError> {
        let id = coupon.id.get();
        let created_before = !self
            .mysql
            .with_conn(async |conn| coupons::with_sale_state_created(conn, &[id]).await)
            .await?
            .is_empty();
        self.write_sale_state(coupon, created_before).await
    }

    /// [`Catalog::put_sale_state`] for a sale whose MySQL mark is already known.
    async fn write_sale_state(
        &self,
        coupon: &Coupon,
        created_before: bool,
    ) -> Result<WarmUp, CatalogError> {
        let id = coupon.id;
        let outcome = self.state.warm_up(coupon, !created_before).await?;
        match outcome {
            WarmUp::Written { .. } if !created_before => {
                self.mysql
                    .with_conn(async |conn| coupons::mark_sale_state_created(conn, id).await)
                    .await?;
            }
            WarmUp::StateLost => {
                tracing::warn!(coupon.id = %id, "the sale's state is missing from Redis; it is rebuilt from MySQL and Kafka (by the drift audit or the first purchase)");
            }
            _ => {}
        }
        Ok(outcome)
    }
}

impl From<InvalidCoupon> for AdminError {
    fn from(e: InvalidCoupon) -> Self {
        Self::Catalog(CatalogError::Invalid(e))
    }
}
