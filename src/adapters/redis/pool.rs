use std::time::Duration;

use deadpool_redis::{Config, Pool, PoolConfig, Runtime, Timeouts};
use secrecy::ExposeSecret;

use crate::config::RedisSettings;

#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("Redis is unavailable: {0}")]
    Unavailable(String),
    #[error("Redis command failed: {0}")]
    Command(#[from] deadpool_redis::redis::RedisError),
    #[error("Redis call timed out after {0:?}")]
    Timeout(Duration),
}

/// A deadpool of multiplexed connections; connects lazily so that start-up never
/// depends on Redis being up.
#[derive(Clone)]
pub struct RedisPool {
    pool: Pool,
    timeout: Duration,
}

impl RedisPool {
    pub fn new(settings: &RedisSettings) -> Result<Self, RedisError> {
        let timeout = Duration::from_millis(settings.timeout_ms);
        let mut config = Config::from_url(settings.url.expose_secret());
        config.pool = Some(PoolConfig {
            max_size: settings.pool_size,
            timeouts: Timeouts {
                wait: Some(timeout),
                create: Some(timeout),
                recycle: Some(timeout),
            },
            ..PoolConfig::default()
        });
        let pool = config
            .create_pool(Some(Runtime::Tokio1))
            .map_err(|e| RedisError::Unavailable(e.to_string()))?;
        Ok(Self { pool, timeout })
    }

    /// The timeout every Redis call of this pool is bounded by.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub async fn get(&self) -> Result<deadpool_redis::Connection, RedisError> {
        self.pool
            .get()
            .await
            .map_err(|e| RedisError::Unavailable(e.to_string()))
    }

    /// Runs one command (or pipeline) on a pooled connection within the timeout.
    pub async fn run<T, F, Fut>(&self, f: F) -> Result<T, RedisError>
    where
        F: FnOnce(deadpool_redis::Connection) -> Fut,
        Fut: std::future::Future<Output = Result<T, deadpool_redis::redis::RedisError>>,
    {
        let call = async {
            let conn = self.get().await?;
            f(conn).await.map_err(RedisError::from)
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| RedisError::Timeout(self.timeout))?
    }

    /// Readiness probe: `PING`.
    pub async fn ping(&self) -> Result<(), RedisError> {
        self.run(|mut conn| async move {
            deadpool_redis::redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .map(drop)
        })
        .await
    }
}
