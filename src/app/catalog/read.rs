//! Browsing: pages and coupons through the cache levels, the real-time stock, images.

use super::*;

impl Catalog {
    /// Validates `page`/`size` (1-based page; defaults from the settings).
    pub fn page_params(
        &self,
        page: Option<u32>,
        size: Option<u32>,
    ) -> Result<(u32, u32), CatalogError> {
        let page = page.unwrap_or(1);
        let size = size.unwrap_or(self.settings.default_page_size);
        let max_size = self.settings.max_page_size;
        if page == 0 || page > crate::domain::coupon::limits::PAGE_MAX {
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
        let items = if self.is_shared(page, size) {
            let key = self.cache.keys().catalog_page(page, size);
            match self.page_from_redis(&key).await? {
                Some(items) => {
                    self.metrics.count("page", "redis_hit");
                    items
                }
                None => self.rebuild_page(&key, page, size).await?,
            }
        } else {
            self.load_unshared_page(page, size).await?
        };
        let result = CouponPage { items, page, size };
        self.local_put(
            local_key,
            LocalEntry::Page(result.items.clone(), result.to_json()?),
        );
        Ok(result)
    }

    /// Whether a page is shared in Redis: the default size, up to `shared_pages`.
    fn is_shared(&self, page: u32, size: u32) -> bool {
        size == self.settings.default_page_size && page <= self.settings.shared_pages
    }

    /// A page outside the shared set, straight from MySQL: a few loads at a time per
    /// instance, the rest answered `Busy` at once.
    async fn load_unshared_page(
        &self,
        page: u32,
        size: u32,
    ) -> Result<Arc<Vec<CouponView>>, CatalogError> {
        let Ok(_turn) = self.unshared_loads.try_acquire() else {
            self.metrics.count("page", "busy");
            return Err(CatalogError::Busy);
        };
        self.metrics.count("page", "db_load");
        Ok(Arc::new(self.page_from_mysql(page, size).await?))
    }

    async fn page_from_mysql(&self, page: u32, size: u32) -> Result<Vec<CouponView>, CatalogError> {
        let offset = i64::from(page - 1) * i64::from(size);
        let rows = self
            .mysql
            .with_conn(async |conn| coupons::page(conn, i64::from(size), offset).await)
            .await?;
        self.views(&rows).await
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
                match self.cache.version(key).await {
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
            let views = self.page_from_mysql(page, size).await?;
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
}
