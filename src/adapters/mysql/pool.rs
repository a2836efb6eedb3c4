use std::time::Duration;

use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::{AsyncMysqlConnection, RunQueryDsl};
use secrecy::ExposeSecret;

use crate::config::MysqlSettings;
use crate::domain::failure::Failure;

pub type MysqlConnection = Object<AsyncMysqlConnection>;

#[derive(Debug, thiserror::Error)]
pub enum MysqlError {
    #[error("MySQL is unavailable: {0}")]
    Unavailable(String),
    #[error("MySQL query failed: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("MySQL call timed out after {0:?}")]
    Timeout(Duration),
    #[error("stored data violates an invariant: {0}")]
    Corrupt(String),
    /// Another writer changed the rows this transaction was about to write; retry it.
    #[error("concurrent write: {0}")]
    Conflict(String),
    #[error("migration failed: {0}")]
    Migration(String),
}

impl From<MysqlError> for Failure {
    fn from(error: MysqlError) -> Self {
        let corrupt = matches!(
            error,
            MysqlError::Corrupt(_)
                | MysqlError::Query(diesel::result::Error::DeserializationError(_))
        );
        if corrupt {
            Failure::corrupt(error)
        } else {
            Failure::unavailable(error)
        }
    }
}

/// A bounded pool. Connections open lazily, so a role starts (and reports "not ready")
/// while MySQL is down instead of crashing.
#[derive(Clone)]
pub struct MysqlPool {
    pool: Pool<AsyncMysqlConnection>,
    query_timeout: Duration,
}

impl MysqlPool {
    pub fn new(settings: &MysqlSettings) -> Result<Self, MysqlError> {
        let manager =
            AsyncDieselConnectionManager::<AsyncMysqlConnection>::new(settings.url.expose_secret());
        let pool = Pool::builder(manager)
            .max_size(settings.max_connections)
            .runtime(deadpool::Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_millis(settings.acquire_timeout_ms)))
            .create_timeout(Some(Duration::from_millis(settings.connect_timeout_ms)))
            .recycle_timeout(Some(Duration::from_millis(settings.connect_timeout_ms)))
            .build()
            .map_err(|e| MysqlError::Unavailable(e.to_string()))?;
        Ok(Self {
            pool,
            query_timeout: Duration::from_millis(
                settings.connect_timeout_ms + settings.acquire_timeout_ms,
            ),
        })
    }

    /// The bound on one call (waiting for a connection included).
    pub fn query_timeout(&self) -> Duration {
        self.query_timeout
    }

    /// A connection from the pool, within the configured wait/connect timeouts.
    pub async fn get(&self) -> Result<MysqlConnection, MysqlError> {
        self.pool
            .get()
            .await
            .map_err(|e| MysqlError::Unavailable(e.to_string()))
    }

    /// Runs `call` (which may take a connection and query) within the query timeout, so
    /// a locked table or a stuck server becomes an error instead of a hung request.
    pub async fn bounded<T, E: From<MysqlError>>(
        &self,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        tokio::time::timeout(self.query_timeout, call)
            .await
            .map_err(|_| MysqlError::Timeout(self.query_timeout))?
    }

    /// Runs `work` on a pooled connection, the whole call (waiting for a connection
    /// included) bounded by the query timeout.
    pub async fn with_conn<T>(
        &self,
        work: impl AsyncFnOnce(&mut AsyncMysqlConnection) -> Result<T, MysqlError>,
    ) -> Result<T, MysqlError> {
        self.bounded(async {
            let mut conn = self.get().await?;
            work(&mut conn).await
        })
        .await
    }

    /// Readiness probe: `SELECT 1` within the query timeout.
    pub async fn ping(&self) -> Result<(), MysqlError> {
        self.with_conn(async |conn| {
            diesel::sql_query("SELECT 1").execute(conn).await?;
            Ok(())
        })
        .await
    }
}
