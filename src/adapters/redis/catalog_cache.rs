//! The shared (Redis) level of the catalog cache: pages as lists of JSON items, single
//! coupons as JSON strings, and a null marker for ids that do not exist (against cache
//! penetration).

use std::time::Duration;

use bytes::Bytes;
use deadpool_redis::redis::{self, AsyncCommands};

use super::keys::CATALOG_SHARDS;
use super::scripts::CACHE_PUT;
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

    /// The version of the catalog shard `entry` belongs to: read before a rebuild,
    /// passed to the `put_*` calls.
    pub async fn version(&self, entry: &str) -> Result<i64, RedisError> {
        let key = self.keys.catalog_version(Keys::catalog_shard(entry));
        let version: Option<i64> = self
            .redis
            .run(|mut conn| async move { conn.get(key).await })
            .await?;
        Ok(version.unwrap_or(0))
    }

    /// Writes `values` under `key` if the catalog version is still `version`; false when
    /// an admin change happened meanwhile (the rebuilt entry is stale, not stored).
    async fn put(
        &self,
        kind: &str,
        key: &str,
        values: Vec<String>,
        ttl: Duration,
        version: i64,
    ) -> Result<bool, RedisError> {
        let shard = Keys::catalog_shard(key);
        let mut invocation = CACHE_PUT.prepare_invoke();
        invocation
            .key(self.keys.catalog_version(shard))
            .key(key)
            .key(self.keys.catalog_pages(shard))
            .arg(version)
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1))
            .arg(kind);
        for value in values {
            invocation.arg(value);
        }
        let written: i64 = self
            .redis
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        Ok(written == 1)
    }

    /// Stores a coupon's JSON, or the null marker when `json` is `None`.
    pub async fn put_coupon(
        &self,
        key: &str,
        json: Option<&str>,
        ttl: Duration,
        version: i64,
    ) -> Result<bool, RedisError> {
        let value = json.unwrap_or(NULL_MARKER).to_owned();
        self.put("coupon", key, vec![value], ttl, version).await
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
        version: i64,
    ) -> Result<bool, RedisError> {
        let items: Vec<String> = if items.is_empty() {
            vec![NULL_MARKER.to_owned()]
        } else {
            items.to_vec()
        };
        self.put("page", key, items, ttl, version).await
    }

    /// A search's cached results, if written under the shard's current version, and
    /// that version (for [`Self::put_search`] after a miss). One round trip: the entry
    /// and the version share a hash tag.
    pub async fn get_search(&self, key: &str) -> Result<(i64, Option<Bytes>), RedisError> {
        let version_key = self.keys.catalog_version(Keys::catalog_shard(key));
        let key = key.to_owned();
        let (version, entry): (Option<i64>, Option<Vec<u8>>) = self
            .redis
            .run(|mut conn| async move {
                redis::cmd("MGET")
                    .arg(version_key)
                    .arg(key)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        let version = version.unwrap_or(0);
        let current = entry.and_then(|entry| {
            let (written_under, json) = entry.split_at(entry.iter().position(|b| *b == b'\n')?);
            (written_under == version.to_string().as_bytes())
                .then(|| Bytes::copy_from_slice(&json[1..]))
        });
        Ok((version, current))
    }

    /// Stores a search's results (JSON) under `version`, unless an admin change moved
    /// the version since it was read.
    pub async fn put_search(
        &self,
        key: &str,
        json: &[u8],
        ttl: Duration,
        version: i64,
    ) -> Result<bool, RedisError> {
        let json = std::str::from_utf8(json)
            .map_err(|e| RedisError::Corrupt(format!("search results are not UTF-8: {e}")))?;
        let value = format!("{version}\n{json}");
        self.put("coupon", key, vec![value], ttl, version).await
    }

    /// Drops one coupon's entry and every cached page (after an admin change): one
    /// atomic step per shard, the shards at once.
    pub async fn invalidate(&self, coupon_key: &str) -> Result<(), RedisError> {
        let coupon_shard = Keys::catalog_shard(coupon_key);
        let shards = (0..CATALOG_SHARDS).map(|shard| {
            let coupon_key = (shard == coupon_shard).then(|| coupon_key.to_owned());
            self.invalidate_shard(shard, coupon_key)
        });
        futures_util::future::try_join_all(shards).await.map(drop)
    }

    async fn invalidate_shard(
        &self,
        shard: u32,
        coupon_key: Option<String>,
    ) -> Result<(), RedisError> {
        let pages = self.keys.catalog_pages(shard);
        let version = self.keys.catalog_version(shard);
        self.redis
            .run(|mut conn| async move {
                let page_keys: Vec<String> = conn.smembers(&pages).await?;
                let mut pipe = redis::pipe();
                // The version first: a rebuild in flight will not write its stale entry.
                pipe.atomic().incr(&version, 1).del(&pages);
                if let Some(coupon_key) = coupon_key {
                    pipe.del(coupon_key);
                }
                for key in page_keys {
                    pipe.del(key);
                }
                pipe.query_async::<()>(&mut conn).await
            })
            .await
    }
}
