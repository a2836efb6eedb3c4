//! The shared (Redis) level of the catalog cache: pages as lists of JSON items, single
//! coupons as JSON strings, and a null marker for ids that do not exist (against cache
//! penetration).

use std::time::Duration;

use deadpool_redis::redis::{self, AsyncCommands};

use super::{Keys, RedisError, RedisPool};

/// Stored instead of a coupon that does not exist, and as the only element of a page
/// past the end (Redis has no empty lists).
pub const NULL_MARKER: &str = "\u{2205}";

/// What Redis holds for a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cached<T> {
    Miss,
    /// The source said "nothing here" (cached null).
    Null,
    Hit(T),
}

#[derive(Clone)]
pub struct CatalogCache {
    redis: RedisPool,
    keys: Keys,
}

impl CatalogCache {
    pub fn new(redis: RedisPool, keys: Keys) -> Self {
        Self { redis, keys }
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub async fn get_coupon(&self, key: &str) -> Result<Cached<String>, RedisError> {
        let key = key.to_owned();
        let value: Option<String> = self
            .redis
            .run(|mut conn| async move { conn.get(key).await })
            .await?;
        Ok(match value {
            None => Cached::Miss,
            Some(v) if v == NULL_MARKER => Cached::Null,
            Some(v) => Cached::Hit(v),
        })
    }

    /// Stores a coupon's JSON, or the null marker when `json` is `None`.
    pub async fn put_coupon(
        &self,
        key: &str,
        json: Option<&str>,
        ttl: Duration,
    ) -> Result<(), RedisError> {
        let key = key.to_owned();
        let value = json.unwrap_or(NULL_MARKER).to_owned();
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        self.redis
            .run(|mut conn| async move { conn.pset_ex(key, value, ms).await })
            .await
    }

    pub async fn get_page(&self, key: &str) -> Result<Cached<Vec<String>>, RedisError> {
        let key = key.to_owned();
        let items: Vec<String> = self
            .redis
            .run(|mut conn| async move { conn.lrange(key, 0, -1).await })
            .await?;
        Ok(match items.as_slice() {
            [] => Cached::Miss,
            [only] if only == NULL_MARKER => Cached::Null,
            _ => Cached::Hit(items),
        })
    }

    /// Replaces a page (atomically) and records its key for invalidation.
    pub async fn put_page(
        &self,
        key: &str,
        items: &[String],
        ttl: Duration,
    ) -> Result<(), RedisError> {
        let key = key.to_owned();
        let pages = self.keys.catalog_pages();
        let items: Vec<String> = if items.is_empty() {
            vec![NULL_MARKER.to_owned()]
        } else {
            items.to_vec()
        };
        let ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1);
        self.redis
            .run(|mut conn| async move {
                redis::pipe()
                    .atomic()
                    .del(&key)
                    .rpush(&key, items)
                    .pexpire(&key, ms)
                    .sadd(&pages, &key)
                    .pexpire(&pages, ms)
                    .query_async::<()>(&mut conn)
                    .await
            })
            .await
    }

    /// Drops one coupon's entry and every cached page (after an admin change).
    pub async fn invalidate(&self, coupon_key: &str) -> Result<(), RedisError> {
        let coupon_key = coupon_key.to_owned();
        let pages = self.keys.catalog_pages();
        self.redis
            .run(|mut conn| async move {
                let page_keys: Vec<String> = conn.smembers(&pages).await?;
                let mut pipe = redis::pipe();
                pipe.atomic().del(&coupon_key).del(&pages);
                for key in page_keys {
                    pipe.del(key);
                }
                pipe.query_async::<()>(&mut conn).await
            })
            .await
    }
}
