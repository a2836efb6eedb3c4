use std::time::Duration;

use diesel::ConnectionResult;
use diesel::result::ConnectionError;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::{AsyncMysqlConnection, RunQueryDsl};
use futures_util::FutureExt;
use secrecy::ExposeSecret;

use crate::adapters::tls::{self, TlsError};
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
    /// `mysql.url` the driver cannot read; never echoed, as it may carry a password.
    #[error("mysql.url is not a usable MySQL URL: {source}")]
    Url {
        #[source]
        source: mysql_async::UrlError,
    },
    /// Settings that cannot work together (found when the pool is built).
    #[error("{key}: {message}")]
    Settings { key: &'static str, message: String },
    #[error("MySQL TLS settings: {0}")]
    Tls(#[from] TlsError),
}

impl MysqlError {
    /// Stored data that breaks what the code relies on: a retry cannot mend it.
    pub fn is_corrupt(&self) -> bool {
        matches!(
            self,
            Self::Corrupt(_) | Self::Query(diesel::result::Error::DeserializationError(_))
        )
    }
}

impl From<MysqlError> for Failure {
    fn from(error: MysqlError) -> Self {
        if error.is_corrupt() {
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
    /// Connections in use, idle and waited for.
    pub fn usage(&self) -> crate::adapters::PoolUse {
        let status = self.pool.status();
        crate::adapters::PoolUse {
            max: status.max_size,
            in_use: status.size.saturating_sub(status.available),
            idle: status.available,
            waiting: status.waiting,
        }
    }

    pub fn new(settings: &MysqlSettings) -> Result<Self, MysqlError> {
        // TLS (`?require_ssl=true` or `mysql.ca_file`) makes the driver ask rustls for the
        // process's provider.
        tls::install_crypto_provider();
        let url = settings.url.expose_secret();
        let manager = if settings.ca_file.as_os_str().is_empty() {
            AsyncDieselConnectionManager::<AsyncMysqlConnection>::new(url)
        } else {
            let opts = opts_trusting_ca_file(settings)?;
            let mut config = ManagerConfig::default();
            // The options already hold everything the URL says; the callback's copy of the
            // URL would lose the roots.
            config.custom_setup = Box::new(move |_url| connect(opts.clone()).boxed());
            AsyncDieselConnectionManager::new_with_config(url, config)
        };
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

/// The options of `mysql.url` with TLS required for every connection and the server's
/// certificate checked against the roots of `mysql.ca_file` only (a URL cannot name a CA
/// file). The URL's `verify_identity=false` still applies. The file is read here, once,
/// so that a missing or unusable one stops the start.
fn opts_trusting_ca_file(settings: &MysqlSettings) -> Result<mysql_async::Opts, MysqlError> {
    const KEY: &str = "mysql.ca_file";
    let pem = tls::ca_bundle(KEY, &settings.ca_file)?;
    let opts = mysql_async::Opts::from_url(settings.url.expose_secret())
        .map_err(|source| MysqlError::Url { source })?;
    let ssl = opts.ssl_opts().cloned().unwrap_or_default();
    if ssl.accept_invalid_certs() {
        return Err(MysqlError::Settings {
            key: KEY,
            message: "is set, but mysql.url turns certificate checks off with verify_ca=false"
                .to_owned(),
        });
    }
    let ssl = ssl
        .with_root_certs(vec![pem.into()])
        .with_disable_built_in_roots(true);
    // What diesel-async's own `establish` sets besides the URL's options; the session
    // setup statements it also sends are sent by `AsyncMysqlConnection::try_from`.
    Ok(mysql_async::OptsBuilder::from_opts(opts)
        .ssl_opts(ssl)
        // diesel-async caches prepared statements itself.
        .stmt_cache_size(0)
        // Affected-row counts mean matched rows, as diesel expects of MySQL.
        .client_found_rows(true)
        .into())
}

/// One connection opened from `opts`, set up as diesel-async sets up its own.
async fn connect(opts: mysql_async::Opts) -> ConnectionResult<AsyncMysqlConnection> {
    let conn = mysql_async::Conn::new(opts)
        .await
        .map_err(|e| ConnectionError::BadConnection(e.to_string()))?;
    AsyncMysqlConnection::try_from(conn).await
}
