use std::time::Duration;

use std::sync::Arc;

use deadpool_redis::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use deadpool_redis::{Config, Pool, PoolConfig, Runtime, Timeouts};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::OnceCell;

use crate::config::RedisSettings;
use crate::domain::failure::Failure;

#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("Redis is unavailable: {0}")]
    Unavailable(String),
    #[error("Redis command failed: {0}")]
    Command(#[from] deadpool_redis::redis::RedisError),
    #[error("Redis call timed out after {0:?}")]
    Timeout(Duration),
    /// A value in Redis (or a script's answer) breaks what the code relies on.
    #[error("unexpected data in Redis: {0}")]
    Corrupt(String),
}

impl From<RedisError> for Failure {
    fn from(error: RedisError) -> Self {
        use deadpool_redis::redis::ErrorKind;
        let corrupt = match &error {
            RedisError::Corrupt(_) => true,
            // A reply of the wrong shape, or a script that raised: not an outage.
            RedisError::Command(e) => {
                matches!(e.kind(), ErrorKind::UnexpectedReturnType | ErrorKind::Parse)
            }
            _ => false,
        };
        if corrupt {
            Failure::corrupt(error)
        } else {
            Failure::unavailable(error)
        }
    }
}

/// A deadpool of multiplexed connections, plus one shared auto-reconnecting
/// multiplexed connection for the hot path (every purchase pipelines onto it instead of
/// checking a connection out). Both connect lazily, so start-up never depends on Redis.
#[derive(Clone)]
pub struct RedisPool {
    pool: Pool,
    timeout: Duration,
    url: SecretString,
    shared: Arc<OnceCell<ConnectionManager>>,
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
        Ok(Self {
            pool,
            timeout,
            url: settings.url.clone(),
            shared: Arc::new(OnceCell::new()),
        })
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

    /// The shared multiplexed connection (created on first use, within the timeout).
    pub async fn shared(&self) -> Result<ConnectionManager, RedisError> {
        self.shared
            .get_or_try_init(|| async {
                let client = deadpool_redis::redis::Client::open(self.url.expose_secret())
                    .map_err(|e| RedisError::Unavailable(e.to_string()))?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout))
                    .set_number_of_retries(1);
                tokio::time::timeout(
                    self.timeout,
                    ConnectionManager::new_with_config(client, config),
                )
                .await
                .map_err(|_| RedisError::Timeout(self.timeout))?
                .map_err(|e| RedisError::Unavailable(e.to_string()))
            })
            .await
            .cloned()
    }

    /// Runs one command (or script, or pipeline) on the shared connection within the
    /// timeout.
    pub async fn run_shared<T, F, Fut>(&self, f: F) -> Result<T, RedisError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = Result<T, deadpool_redis::redis::RedisError>>,
    {
        let call = async {
            let conn = self.shared().await?;
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
