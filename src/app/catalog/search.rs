//! Searching the catalog: the engine finds ids, MySQL gives the current rows (so a
//! deleted coupon never shows, whatever an external engine still holds; an engine in
//! this process, followed within the stated delay, gives its own copy instead), Redis
//! the stock snapshot, and the terms are marked in the text.
//!
//! Results are kept in this instance's memory for `catalog.search.ttl_ms` (half a
//! second by default): an admin change is searchable at once on the instance that made
//! it, and within that time on the others. Behind that, Redis shares them between the
//! instances for `catalog.search.redis_ttl_ms`, voided by any admin change (not for an
//! engine in each process, which answers about as fast as Redis would). Concurrent
//! requests for the same search share one load; different searches load a few at a
//! time per instance.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::*;
use crate::domain::ports::RenderWork;
use crate::domain::search::{RawSearch, SearchQuery, Segment, highlight, snippet};

/// A coupon found by a search, with the matched words marked.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SearchHit {
    pub coupon: CouponView,
    pub highlight: Highlight,
}

/// The coupon's text cut into segments; `hit` marks a word that matched a term.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Highlight {
    /// The whole name.
    pub name: Vec<Segment>,
    /// Up to 160 characters of the description around its first match.
    pub description: Vec<Segment>,
}

/// One page of search results.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SearchResults {
    pub items: Vec<SearchHit>,
    pub page: u32,
    pub size: u32,
    /// Whether a next page exists.
    pub has_more: bool,
    /// Always true: each item's `remaining` is a snapshot taken at `stock_as_of`, not
    /// the live count (see `/api/coupons/{id}/stock`).
    pub stock_is_snapshot: bool,
    pub stock_as_of: DateTime<Utc>,
}

impl Catalog {
    /// The search's results as their JSON response body.
    pub async fn search_json(&self, raw: RawSearch<'_>) -> Result<Bytes, CatalogError> {
        let query = SearchQuery::parse(
            raw,
            self.settings.default_page_size,
            self.settings.max_page_size,
        )?;
        let key = LocalKey::Search(Box::new(query));
        let ttl = Duration::from_millis(self.settings.search.ttl_ms);
        if let Some(LocalEntry::Search(json)) = self.local_get_within(&key, ttl) {
            self.metrics.count("search", "local_hit");
            return Ok(json);
        }
        let guard = match self.local.get_value_or_guard_async(&key).await {
            Ok((LocalEntry::Search(json), loaded_at)) if loaded_at.elapsed() < ttl => {
                self.metrics.count("search", "local_hit");
                return Ok(json);
            }
            // Expired between the two looks: load without sharing.
            Ok(_) => None,
            Err(guard) => Some(guard),
        };
        let LocalKey::Search(query) = &key else {
            unreachable!("the key was built as a search above")
        };
        let json = self.shared_search(query).await?;
        if let Some(guard) = guard {
            // Refused when an admin change cleared the cache meanwhile: this load may
            // predate the change, so it is not kept.
            let _ = guard.insert((LocalEntry::Search(json.clone()), Instant::now()));
        }
        Ok(json)
    }

    /// The results from Redis, shared by the instances, or loaded and put there. An
    /// entry counts only under the catalog version it was written with, so an admin
    /// change voids it at once; its TTL bounds how late a sale's start or end shows in
    /// the status filters.
    async fn shared_search(&self, query: &SearchQuery) -> Result<Bytes, CatalogError> {
        let ttl = Duration::from_millis(self.settings.search.redis_ttl_ms);
        if ttl.is_zero() || self.search.per_instance() {
            return self.load_search(query).await;
        }
        let digest: String = Sha256::digest(format!("{query:?}").as_bytes())
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect();
        let key = self.cache.keys().catalog_search(&digest);
        let (version, cached) = self.cache.get_search(&key).await?;
        if let Some(json) = cached {
            self.metrics.count("search", "redis_hit");
            return Ok(json);
        }
        let json = self.load_search(query).await?;
        // The results stand even if they could not be shared.
        if let Err(error) = self.cache.put_search(&key, &json, ttl, version).await {
            tracing::debug!(%error, "search results not stored in Redis");
        }
        Ok(json)
    }

    async fn load_search(&self, query: &SearchQuery) -> Result<Bytes, CatalogError> {
        let wait = Duration::from_millis(self.settings.search.queue_ms);
        let Ok(Ok(_turn)) = tokio::time::timeout(wait, self.search_loads.acquire()).await else {
            self.metrics.count("search", "busy");
            return Err(CatalogError::Busy);
        };
        if !self.search_is_filled() {
            // Not "no results": the index has not been filled from MySQL yet.
            self.metrics.count("search", "busy");
            return Err(CatalogError::Busy);
        }
        self.metrics.count("search", "db_load");
        let now = Utc::now();
        let mut ids = self.search.search(query, now).await.map_err(unavailable)?;
        let has_more = ids.len() > query.size as usize;
        ids.truncate(query.size as usize);
        let copy = if self.search_copy_is_current() {
            self.search.current(&ids)
        } else {
            None
        };
        let rows = match copy {
            Some(rows) => rows,
            None => {
                self.mysql
                    .with_conn(async |conn| coupons::find_active(conn, &ids).await)
                    .await?
            }
        };
        // The engine's answer and the row may differ by an edit: the row must match.
        let rows: Vec<Coupon> = rows
            .into_iter()
            .filter(|coupon| query.admits(coupon.price_cents, &coupon.sale, now))
            .collect();
        let views = self.views(&rows).await?;
        let (terms, page, size) = (query.marked_terms().to_vec(), query.page, query.size);
        let render: RenderWork = Box::new(move || {
            let items = views
                .into_iter()
                .map(|coupon| SearchHit {
                    highlight: Highlight {
                        name: highlight(&coupon.name, &terms),
                        description: snippet(&coupon.description, &terms),
                    },
                    coupon,
                })
                .collect();
            let results = SearchResults {
                items,
                page,
                size,
                has_more,
                stock_is_snapshot: true,
                stock_as_of: Utc::now(),
            };
            Ok(serde_json::to_vec(&results)?)
        });
        let json = self.search.render(render).await.map_err(unavailable)?;
        Ok(Bytes::from(json))
    }

    /// Which engine answers searches (for the start-up log).
    pub fn search_engine(&self) -> &'static str {
        self.search.name()
    }
}
