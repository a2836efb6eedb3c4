//! One rebuilder per cache key: a Redis lock (`SET NX PX` with a random token) that
//! expires by itself and is extended by a watchdog while its holder works, so a slow
//! rebuild keeps the lock and a crashed holder's lock lapses after its TTL. Extending and
//! releasing check the token (`lua/lock_extend.lua`, `lua/lock_release.lua`), so a
//! holder never touches a lock that lapsed and went to someone else. The lock key shares
//! the cache key's hash tag: one slot on a Redis Cluster.

use std::time::Duration;

use deadpool_redis::redis;
use tokio_util::sync::CancellationToken;

use super::scripts::{LOCK_EXTEND, LOCK_RELEASE};
use super::{RedisError, RedisPool};

#[derive(Clone)]
pub struct RebuildLocks {
    redis: RedisPool,
    ttl: Duration,
}

/// Held while rebuilding; [`RebuildGuard::release`] unlocks. Dropped without release
/// (a panic, a cancelled request), it stops the watchdog and the lock lapses by TTL.
pub struct RebuildGuard {
    redis: RedisPool,
    resource: String,
    token: String,
    watchdog: CancellationToken,
}

fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RebuildLocks {
    pub fn new(redis: RedisPool, ttl: Duration) -> Self {
        Self { redis, ttl }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The lock on `resource`, or `None` when someone else holds it (one attempt:
    /// whoever loses answers "busy" at once instead of queueing).
    pub async fn try_acquire(&self, resource: &str) -> Result<Option<RebuildGuard>, RedisError> {
        let token = uuid::Uuid::new_v4().simple().to_string();
        let (key, value, ttl) = (resource.to_owned(), token.clone(), millis(self.ttl));
        let acquired: Option<String> = self
            .redis
            .run(|mut conn| async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        Ok(acquired.map(|_| RebuildGuard::start(self.redis.clone(), resource, token, self.ttl)))
    }
}

impl RebuildGuard {
    fn start(redis: RedisPool, resource: &str, token: String, ttl: Duration) -> Self {
        let watchdog = CancellationToken::new();
        let guard = Self {
            redis: redis.clone(),
            resource: resource.to_owned(),
            token: token.clone(),
            watchdog: watchdog.clone(),
        };
        let resource = resource.to_owned();
        // Extend at a third of the TTL, so two missed beats still leave time.
        let period = ttl / 3;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = watchdog.cancelled() => return,
                    () = tokio::time::sleep(period) => {}
                }
                let mut invocation = LOCK_EXTEND.prepare_invoke();
                invocation.key(&resource).arg(&token).arg(millis(ttl));
                let extended: Result<i64, RedisError> = redis
                    .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
                    .await;
                match extended {
                    Ok(1) => {}
                    Ok(_) => {
                        tracing::warn!(lock = %resource, "rebuild lock lost; it will lapse");
                        return;
                    }
                    Err(error) => {
                        tracing::warn!(lock = %resource, %error, "rebuild lock lost; it will lapse");
                        return;
                    }
                }
            }
        });
        guard
    }

    /// Stops the watchdog and unlocks (only if the lock is still ours).
    pub async fn release(self) {
        self.watchdog.cancel();
        let mut invocation = LOCK_RELEASE.prepare_invoke();
        invocation.key(&self.resource).arg(&self.token);
        let released: Result<i64, RedisError> = self
            .redis
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await;
        match released {
            Ok(1) => {}
            Ok(_) => tracing::debug!(lock = %self.resource, "unlock: lock had lapsed"),
            Err(error) => tracing::warn!(lock = %self.resource, %error, "unlock failed"),
        }
    }
}

impl Drop for RebuildGuard {
    fn drop(&mut self) {
        self.watchdog.cancel();
    }
}
