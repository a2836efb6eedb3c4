//! One rebuilder per cache key: a Redis lock (redsync) that expires by itself and is
//! extended by a watchdog while its holder works, so a slow rebuild keeps the lock and
//! a crashed holder's lock lapses after its TTL.
//!
//! redsync is synchronous (its own redis client, a connection per call), so its calls
//! run on the blocking pool. Rebuilds are rare; the hot path never locks. Before asking
//! redsync, an async `EXISTS` answers the common stampede case ("someone is already
//! rebuilding") without a blocking thread.

use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_redis::redis::AsyncCommands;
use redsync::{Lock, RedisInstance, Redsync, RedsyncBuilder, RedsyncError};
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;

use super::{RedisError, RedisPool};
use crate::config::RedisSettings;

#[derive(Clone)]
pub struct RebuildLocks {
    redsync: Arc<Redsync<RedisInstance>>,
    redis: RedisPool,
    ttl: Duration,
}

/// Held while rebuilding; [`RebuildGuard::release`] unlocks. Dropped without release
/// (a panic, a cancelled request), it stops the watchdog and the lock lapses by TTL.
pub struct RebuildGuard {
    redsync: Arc<Redsync<RedisInstance>>,
    resource: String,
    value: String,
    ttl: Duration,
    watchdog: CancellationToken,
}

fn blocking_failed(e: tokio::task::JoinError) -> RedisError {
    RedisError::Unavailable(format!("lock task failed: {e}"))
}

impl RebuildLocks {
    pub fn new(
        settings: &RedisSettings,
        redis: RedisPool,
        ttl: Duration,
    ) -> Result<Self, RedisError> {
        let instance = RedisInstance::new(settings.url.expose_secret())
            .map_err(|e| RedisError::Unavailable(e.to_string()))?;
        // One attempt: whoever loses answers "busy" at once instead of queueing.
        let redsync = RedsyncBuilder::new(vec![instance]).retry_count(1).build();
        Ok(Self {
            redsync: Arc::new(redsync),
            redis,
            ttl,
        })
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The lock on `resource`, or `None` when someone else holds it.
    pub async fn try_acquire(&self, resource: &str) -> Result<Option<RebuildGuard>, RedisError> {
        let key = resource.to_owned();
        let held: bool = self
            .redis
            .run(|mut conn| async move { conn.exists(key).await })
            .await?;
        if held {
            return Ok(None);
        }
        let redsync = self.redsync.clone();
        let (resource, ttl) = (resource.to_owned(), self.ttl);
        let acquired = tokio::task::spawn_blocking(move || redsync.lock(&resource, ttl))
            .await
            .map_err(blocking_failed)?;
        let lock = match acquired {
            Ok(lock) => lock,
            Err(RedsyncError::LockRetriesExceeded(errors))
                if errors.includes(RedsyncError::ResourceLocked) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(RedisError::Unavailable(e.to_string())),
        };
        Ok(Some(RebuildGuard::start(self.redsync.clone(), lock)))
    }
}

impl RebuildGuard {
    fn start(redsync: Arc<Redsync<RedisInstance>>, lock: Lock) -> Self {
        let watchdog = CancellationToken::new();
        let guard = Self {
            redsync: redsync.clone(),
            resource: lock.resource.clone(),
            value: lock.value.clone(),
            ttl: lock.ttl,
            watchdog: watchdog.clone(),
        };
        // Extend at a third of the TTL, so two missed beats still leave time.
        let period = lock.ttl / 3;
        tokio::spawn(async move {
            let mut lock = lock;
            loop {
                tokio::select! {
                    () = watchdog.cancelled() => return,
                    () = tokio::time::sleep(period) => {}
                }
                let redsync = redsync.clone();
                let current = clone_lock(&lock);
                let extended = tokio::task::spawn_blocking(move || {
                    let ttl = current.ttl;
                    redsync.extend(&current, ttl)
                })
                .await;
                match extended {
                    Ok(Ok(next)) => lock = next,
                    Ok(Err(error)) => {
                        tracing::warn!(lock = %lock.resource, %error, "rebuild lock lost; it will lapse");
                        return;
                    }
                    Err(error) => {
                        tracing::warn!(lock = %lock.resource, %error, "rebuild lock watchdog failed");
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
        let redsync = self.redsync.clone();
        let lock = Lock {
            resource: self.resource.clone(),
            value: self.value.clone(),
            ttl: self.ttl,
            expiry: Instant::now(),
        };
        match tokio::task::spawn_blocking(move || redsync.unlock(&lock)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::debug!(lock = %self.resource, %error, "unlock: lock had lapsed")
            }
            Err(error) => tracing::warn!(lock = %self.resource, %error, "unlock task failed"),
        }
    }
}

impl Drop for RebuildGuard {
    fn drop(&mut self) {
        self.watchdog.cancel();
    }
}

fn clone_lock(lock: &Lock) -> Lock {
    Lock {
        resource: lock.resource.clone(),
        value: lock.value.clone(),
        ttl: lock.ttl,
        expiry: lock.expiry,
    }
}
