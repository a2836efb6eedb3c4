use std::time::Duration;

use std::sync::Arc;

use deadpool_redis::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use deadpool_redis::redis::cluster::{ClusterClient, ClusterClientBuilder};
use deadpool_redis::redis::cluster_async::ClusterConnection;
use deadpool_redis::redis::{Cmd, Pipeline, RedisFuture, Value};
use deadpool_redis::{Config, Pool, PoolConfig, Runtime, Timeouts};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::OnceCell;

use super::slot_router::SlotRouter;
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

/// A connection the adapters run commands on: whichever the deployment's mode provides.
/// Every command, script and pipeline goes through [`ConnectionLike`], so the adapters
/// are the same on a single server and on a cluster.
pub enum Connection {
    Pooled(deadpool_redis::Connection),
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
        url: SecretString,
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
    /// (a classic PUBLISH reaches every node).
    subscribe_urls: Vec<SecretString>,
}

impl RedisPool {
    pub fn new(settings: &RedisSettings) -> Result<Self, RedisError> {
        let timeout = Duration::from_millis(settings.timeout_ms);
        match settings.mode {
            RedisMode::Standalone => Self::standalone(settings, timeout),
            RedisMode::Cluster => Self::cluster(settings, timeout),
        }
    }

    fn standalone(settings: &RedisSettings, timeout: Duration) -> Result<Self, RedisError> {
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
            backend: Backend::Standalone {
                pool,
                url: settings.url.clone(),
                shared: Arc::new(OnceCell::new()),
            },
            timeout,
            subscribe_urls: vec![settings.url.clone()],
        })
    }

    fn cluster(settings: &RedisSettings, timeout: Duration) -> Result<Self, RedisError> {
        let nodes: Vec<&str> = settings
            .nodes
            .iter()
            .map(ExposeSecret::expose_secret)
            .collect();
        let client = ClusterClientBuilder::new(nodes)
            .connection_timeout(timeout)
            // At most once: the client never sends a command again, neither after a
            // timeout nor after a lost connection or a redirection, because a purchase
            // script that ran once must not run twice. The slot map is still refreshed
            // on MOVED and the lost node reconnected; the caller's next call goes to the
            // right node. Each call is bounded by this pool's own timeout.
            .retries(0)
            .build()
            .map_err(|e| RedisError::Unavailable(e.to_string()))?;
        Ok(Self {
            backend: Backend::Cluster {
                client: Box::new(client),
                shared: Arc::new(OnceCell::new()),
                router: Arc::new(SlotRouter::new(timeout)),
            },
            timeout,
            subscribe_urls: settings.nodes.clone(),
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
    pub fn subscribe_urls(&self) -> &[SecretString] {
        &self.subscribe_urls
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
            Backend::Standalone { url, shared, .. } => shared
                .get_or_try_init(|| async {
                    let client = deadpool_redis::redis::Client::open(url.expose_secret())
                        .map_err(|e| RedisError::Unavailable(e.to_string()))?;
                    let config = ConnectionManagerConfig::new()
                        .set_connection_timeout(Some(timeout))
                        .set_response_timeout(Some(timeout))
                        .set_number_of_retries(1);
                    connect_within(timeout, ConnectionManager::new_with_config(client, config))
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
