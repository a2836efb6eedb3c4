use std::time::Duration;

use std::sync::Arc;

use deadpool::Runtime;
use deadpool_redis::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use deadpool_redis::redis::cluster::{ClusterClient, ClusterClientBuilder};
use deadpool_redis::redis::cluster_async::ClusterConnection;
use deadpool_redis::redis::{Client, Cmd, Pipeline, RedisFuture, TlsCertificates, Value};
use secrecy::ExposeSecret;
use tokio::sync::OnceCell;

use super::pooled::{Manager, Pool, Pooled};
use super::slot_router::SlotRouter;
use crate::adapters::tls::{self, TlsError};
use crate::config::{RedisMode, RedisSettings};
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
    /// Settings that cannot work together (found when the pool is built).
    #[error("{key}: {message}")]
    Settings { key: &'static str, message: String },
    #[error("Redis TLS settings: {0}")]
    Tls(#[from] TlsError),
}

impl RedisError {
    /// Data or a reply that breaks what the code relies on: a retry cannot mend it.
    pub fn is_corrupt(&self) -> bool {
        use deadpool_redis::redis::ErrorKind;
        match self {
            Self::Corrupt(_) => true,
            // A reply of the wrong shape: not an outage.
            Self::Command(e) => {
                matches!(e.kind(), ErrorKind::UnexpectedReturnType | ErrorKind::Parse)
            }
            _ => false,
        }
    }
}

impl From<RedisError> for Failure {
    fn from(error: RedisError) -> Self {
        if error.is_corrupt() {
            Failure::corrupt(error)
        } else {
            Failure::unavailable(error)
        }
    }
}

/// A connection the adapters run commands on: whichever the deployment's mode provides.
/// Every command, script and pipeline goes through [`ConnectionLike`], so the adapters
/// are the same on a single server and on a cluster.
pub enum Connection {
    Pooled(Pooled),
    Shared(ConnectionManager),
    Cluster(ClusterConnection, Arc<SlotRouter>),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Pooled(conn) => conn.req_packed_command(cmd),
            Self::Shared(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn, router) => Box::pin(router.run(cmd, conn)),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Pooled(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Shared(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn, _) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Pooled(conn) => conn.get_db(),
            Self::Shared(conn) => conn.get_db(),
            Self::Cluster(conn, _) => conn.get_db(),
        }
    }
}

#[derive(Clone)]
enum Backend {
    /// A deadpool of multiplexed connections, plus one shared auto-reconnecting
    /// multiplexed connection for the hot path (every purchase pipelines onto it instead
    /// of checking a connection out).
    Standalone {
        pool: Pool,
        /// Holds the URL's credentials and TLS settings.
        client: Box<Client>,
        shared: Arc<OnceCell<ConnectionManager>>,
    },
    /// One cluster connection: it multiplexes over a connection per node, follows
    /// MOVED/ASK redirections and refreshes the slot map after a failover, so it needs
    /// no pool. Multi-key reads (MGET) are split by slot by the client.
    Cluster {
        client: Box<ClusterClient>,
        shared: Arc<OnceCell<ClusterConnection>>,
        router: Arc<SlotRouter>,
    },
}

/// The Redis client of every adapter. Connects lazily, so start-up never depends on
/// Redis, and bounds every call by the configured timeout.
#[derive(Clone)]
pub struct RedisPool {
    backend: Backend,
    timeout: Duration,
    /// Where a pub/sub subscriber connects: the server, or any node of the cluster
    /// (a classic PUBLISH reaches every node); with the URLs' credentials and TLS.
    subscribers: Vec<Client>,
}

impl RedisPool {
    /// The pool's use in standalone mode; None for a cluster (multiplexed, no pool).
    pub fn usage(&self) -> Option<crate::adapters::PoolUse> {
        match &self.backend {
            Backend::Standalone { pool, .. } => {
                let status = pool.status();
                Some(crate::adapters::PoolUse {
                    max: status.max_size,
                    in_use: status.size.saturating_sub(status.available),
                    idle: status.available,
                    waiting: status.waiting,
                })
            }
            Backend::Cluster { .. } => None,
        }
    }

    pub fn new(settings: &RedisSettings) -> Result<Self, RedisError> {
        // rediss:// makes the client ask rustls for the process's provider.
        tls::install_crypto_provider();
        let timeout = Duration::from_millis(settings.timeout_ms);
        match settings.mode {
            RedisMode::Standalone => Self::standalone(settings, timeout),
            RedisMode::Cluster => Self::cluster(settings, timeout),
        }
    }

    fn standalone(settings: &RedisSettings, timeout: Duration) -> Result<Self, RedisError> {
        let url = settings.url.expose_secret();
        let certificates = ca_certificates(settings, "redis.url", is_tls(url))?;
        let client = open(url, certificates.as_ref())?;
        // The client carries the TLS roots; a URL alone would not.
        let pool = Pool::builder(Manager::new(client.clone()))
            .max_size(settings.pool_size)
            .wait_timeout(Some(timeout))
            .create_timeout(Some(timeout))
            .recycle_timeout(Some(timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| RedisError::Unavailable(e.to_string()))?;
        Ok(Self {
            backend: Backend::Standalone {
                pool,
                client: Box::new(client.clone()),
                shared: Arc::new(OnceCell::new()),
            },
            timeout,
            subscribers: vec![client],
        })
    }

    fn cluster(settings: &RedisSettings, timeout: Duration) -> Result<Self, RedisError> {
        let nodes: Vec<&str> = settings
            .nodes
            .iter()
            .map(ExposeSecret::expose_secret)
            .collect();
        // The client takes TLS and credentials for every node it discovers from the first
        // seed; seeds that disagree would make that depend on their order.
        let tls = nodes.first().is_some_and(|node| is_tls(node));
        if nodes.iter().any(|node| is_tls(node) != tls) {
            return Err(RedisError::Settings {
                key: "redis.nodes",
                message: "every seed must use the same scheme, redis:// or rediss://".to_owned(),
            });
        }
        let certificates = ca_certificates(settings, "redis.nodes", tls)?;
        let mut builder = ClusterClientBuilder::new(nodes.clone())
            .connection_timeout(timeout)
            // At most once: the client never sends a command again, neither after a
            // timeout nor after a lost connection or a redirection, because a purchase
            // script that ran once must not run twice. The slot map is still refreshed
            // on MOVED and the lost node reconnected; the caller's next call goes to the
            // right node. Each call is bounded by this pool's own timeout.
            .retries(0);
        if let Some(certificates) = &certificates {
            builder = builder.certs(certificates.clone());
        }
        let client = builder
            .build()
            .map_err(|e| RedisError::Unavailable(e.to_string()))?;
        let subscribers = nodes
            .iter()
            .map(|node| open(node, certificates.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        // The slot router reaches the other nodes like the first seed: same scheme,
        // credentials and certificate checks.
        let template = subscribers
            .first()
            .map(|seed| seed.get_connection_info().clone())
            .ok_or_else(|| RedisError::Settings {
                key: "redis.nodes",
                message: "cluster mode needs at least one seed node".to_owned(),
            })?;
        Ok(Self {
            backend: Backend::Cluster {
                client: Box::new(client),
                shared: Arc::new(OnceCell::new()),
                router: Arc::new(SlotRouter::new(timeout, template)),
            },
            timeout,
            subscribers,
        })
    }

    /// The timeout every Redis call of this pool is bounded by.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether this is a Redis Cluster (a pipeline must then keep to one slot).
    pub fn is_cluster(&self) -> bool {
        matches!(self.backend, Backend::Cluster { .. })
    }

    /// Where a subscriber may connect, in order of preference.
    pub fn subscribers(&self) -> &[Client] {
        &self.subscribers
    }

    async fn get(&self) -> Result<Connection, RedisError> {
        match &self.backend {
            Backend::Standalone { pool, .. } => pool
                .get()
                .await
                .map(Connection::Pooled)
                .map_err(|e| RedisError::Unavailable(e.to_string())),
            Backend::Cluster { .. } => self.shared().await,
        }
    }

    /// Runs one command (or pipeline) on a pooled connection within the timeout.
    pub async fn run<T, F, Fut>(&self, f: F) -> Result<T, RedisError>
    where
        F: FnOnce(Connection) -> Fut,
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
    pub async fn shared(&self) -> Result<Connection, RedisError> {
        let timeout = self.timeout;
        match &self.backend {
            Backend::Standalone { client, shared, .. } => shared
                .get_or_try_init(|| async {
                    let config = ConnectionManagerConfig::new()
                        .set_connection_timeout(Some(timeout))
                        .set_response_timeout(Some(timeout))
                        .set_number_of_retries(1);
                    connect_within(
                        timeout,
                        ConnectionManager::new_with_config((**client).clone(), config),
                    )
                    .await
                })
                .await
                .cloned()
                .map(Connection::Shared),
            Backend::Cluster {
                client,
                shared,
                router,
            } => shared
                .get_or_try_init(|| async {
                    connect_within(timeout, client.get_async_connection()).await
                })
                .await
                .cloned()
                .map(|conn| Connection::Cluster(conn, router.clone())),
        }
    }

    /// Runs one command (or script, or pipeline) on the shared connection within the
    /// timeout. On a cluster, a pipeline must keep to one slot.
    pub async fn run_shared<T, F, Fut>(&self, f: F) -> Result<T, RedisError>
    where
        F: FnOnce(Connection) -> Fut,
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

    /// Readiness probe: `PING` (on a cluster, every primary must answer).
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

async fn connect_within<C>(
    timeout: Duration,
    connect: impl std::future::Future<Output = Result<C, deadpool_redis::redis::RedisError>>,
) -> Result<C, RedisError> {
    tokio::time::timeout(timeout, connect)
        .await
        .map_err(|_| RedisError::Timeout(timeout))?
        .map_err(|e| RedisError::Unavailable(e.to_string()))
}

fn is_tls(url: &str) -> bool {
    url.starts_with("rediss://")
}

/// The roots of `redis.ca_file`, for TLS connections; `None` when it is empty (the
/// platform's roots apply). `key` names the URL setting in force.
fn ca_certificates(
    settings: &RedisSettings,
    key: &'static str,
    tls: bool,
) -> Result<Option<TlsCertificates>, RedisError> {
    if settings.ca_file.is_empty() {
        return Ok(None);
    }
    if !tls {
        return Err(RedisError::Settings {
            key: "redis.ca_file",
            message: format!("is set, but {key} is not a rediss:// URL"),
        });
    }
    Ok(Some(TlsCertificates {
        client_tls: None,
        root_cert: Some(tls::ca_pem("redis.ca_file", &settings.ca_file)?),
    }))
}

/// A client for `url`, trusting `certificates` when given. Errors never echo the URL: it
/// may carry a password.
fn open(url: &str, certificates: Option<&TlsCertificates>) -> Result<Client, RedisError> {
    match certificates {
        Some(certificates) => Client::build_with_tls(url, certificates.clone()),
        None => Client::open(url),
    }
    .map_err(|e| RedisError::Unavailable(e.to_string()))
}
