//! The hot path on a Redis Cluster: scripts go straight to the primary that owns their
//! slot, over one multiplexed connection per node.
//!
//! The cluster client of the `redis` crate funnels every request through one task and a
//! queue; under a few hundred concurrent purchases its latency grows past the call
//! timeout. Every script here touches one slot, so routing it is a table lookup. All
//! other commands (multi-key reads, fan-out like `SCRIPT LOAD`, pipelines) still go
//! through the crate's client, which also provides the slot map.
//!
//! At most once: a script is never sent twice. An error (a lost node, `MOVED` after a
//! failover) is returned to the caller and refreshes the slot map in the background, so
//! the caller's next call reaches the new owner. The map is also reloaded every second
//! while the router is in use, so an instance that was idle during a failover does not
//! spend its first calls on the lost node.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::Duration;

use deadpool_redis::redis::aio::{ConnectionLike, MultiplexedConnection};
use deadpool_redis::redis::cluster_async::ClusterConnection;
use deadpool_redis::redis::{self, Arg, Cmd, ConnectionAddr, ConnectionInfo, RedisResult, Value};
use tokio::sync::OnceCell;

/// Slots of a Redis Cluster.
const SLOTS: usize = 16_384;
/// How often the slot map is reloaded in the background.
const RELOAD_EVERY: Duration = Duration::from_secs(1);

/// The slot of a key: CRC16 (XMODEM) of its hash tag, or of the whole key.
pub fn key_slot(key: &[u8]) -> u16 {
    let tagged = key
        .iter()
        .position(|b| *b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.iter()
                .position(|b| *b == b'}')
                .filter(|len| *len > 0)
                .map(|len| &rest[..len])
        })
        .unwrap_or(key);
    crc16::State::<crc16::XMODEM>::calculate(tagged) % SLOTS as u16
}

/// The slot of a script call (`EVALSHA`/`EVAL` with at least one key), else `None`.
fn script_slot(cmd: &Cmd) -> Option<u16> {
    let mut args = cmd.args_iter().map(|arg| match arg {
        Arg::Simple(bytes) => Some(bytes),
        _ => None,
    });
    let name = args.next()??;
    if !name.eq_ignore_ascii_case(b"EVALSHA") && !name.eq_ignore_ascii_case(b"EVAL") {
        return None;
    }
    let _script = args.next()??;
    let keys: usize = std::str::from_utf8(args.next()??).ok()?.parse().ok()?;
    if keys == 0 {
        return None;
    }
    Some(key_slot(args.next()??))
}

type NodeConnection = Arc<OnceCell<MultiplexedConnection>>;

pub struct SlotRouter {
    timeout: Duration,
    /// How to reach a node: the first seed's scheme (TLS or not, with its roots),
    /// credentials and database, with the node's address put in.
    template: ConnectionInfo,
    /// Primary address (`host:port`) of each slot; empty until the first refresh.
    owners: RwLock<Arc<Vec<Option<Arc<str>>>>>,
    nodes: Mutex<HashMap<Arc<str>, NodeConnection>>,
    refreshing: AtomicBool,
    reloading: AtomicBool,
}

impl SlotRouter {
    pub fn new(timeout: Duration, template: ConnectionInfo) -> Self {
        Self {
            timeout,
            template,
            owners: RwLock::new(Arc::new(Vec::new())),
            nodes: Mutex::new(HashMap::new()),
            refreshing: AtomicBool::new(false),
            reloading: AtomicBool::new(false),
        }
    }

    /// Starts the periodic reload once; it ends when the router is dropped.
    fn keep_reloading(self: &Arc<Self>, library: &ClusterConnection) {
        // Every call passes here: a read, not a write, once the reload runs.
        if self.reloading.load(Ordering::Acquire) || self.reloading.swap(true, Ordering::AcqRel) {
            return;
        }
        let router: Weak<Self> = Arc::downgrade(self);
        let mut library = library.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(RELOAD_EVERY).await;
                let Some(router) = router.upgrade() else {
                    return;
                };
                router.reload(&mut library).await;
            }
        });
    }

    /// Loads the slot map and forgets connections to nodes that own no slot any more.
    async fn reload(&self, library: &mut ClusterConnection) {
        match tokio::time::timeout(self.timeout, load_owners(library)).await {
            Ok(Ok(owners)) => {
                let primaries: std::collections::HashSet<Arc<str>> =
                    owners.iter().flatten().cloned().collect();
                self.nodes
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .retain(|address, _| primaries.contains(address));
                *self.owners.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(owners);
            }
            Ok(Err(error)) => tracing::warn!(%error, "could not load the cluster's slot map"),
            Err(_) => tracing::warn!("loading the cluster's slot map timed out"),
        }
    }

    fn owner(&self, slot: u16) -> Option<Arc<str>> {
        let owners = self
            .owners
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        owners.get(usize::from(slot)).cloned().flatten()
    }

    /// Runs `cmd` on the primary of its slot when the command is a script and the slot
    /// map is known; otherwise on the crate's cluster client.
    pub async fn run(
        self: &Arc<Self>,
        cmd: &Cmd,
        library: &mut ClusterConnection,
    ) -> RedisResult<Value> {
        self.keep_reloading(library);
        let Some(slot) = script_slot(cmd) else {
            return library.req_packed_command(cmd).await;
        };
        let Some(address) = self.owner(slot) else {
            self.refresh_soon(library);
            return library.req_packed_command(cmd).await;
        };
        let answer = match self.node(&address).await {
            Ok(mut conn) => conn.req_packed_command(cmd).await,
            Err(error) => Err(error),
        };
        if let Err(error) = &answer {
            if error.is_io_error() || error.is_connection_dropped() || error.is_timeout() {
                self.forget_node(&address);
            }
            if !matches!(
                error.kind(),
                redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
            ) {
                self.refresh_soon(library);
            }
        }
        answer
    }

    async fn node(&self, address: &Arc<str>) -> RedisResult<MultiplexedConnection> {
        let cell = self
            .nodes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(address.clone())
            .or_default()
            .clone();
        let timeout = self.timeout;
        let info = node_info(&self.template, address)?;
        cell.get_or_try_init(|| async move {
            let client = redis::Client::open(info)?;
            let config = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout));
            client
                .get_multiplexed_async_connection_with_config(&config)
                .await
        })
        .await
        .cloned()
    }

    fn forget_node(&self, address: &Arc<str>) {
        self.nodes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(address);
    }

    /// Reloads the slot map from the cluster in the background, one reload at a time.
    fn refresh_soon(self: &Arc<Self>, library: &ClusterConnection) {
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let router = self.clone();
        let mut library = library.clone();
        tokio::spawn(async move {
            router.reload(&mut library).await;
            // A short pause: a burst of errors during a failover reloads a few times a
            // second, not once per request.
            tokio::time::sleep(Duration::from_millis(100)).await;
            router.refreshing.store(false, Ordering::Release);
        });
    }
}

/// The seed's connection settings with a node's `host:port` put in.
fn node_info(template: &ConnectionInfo, address: &str) -> RedisResult<ConnectionInfo> {
    let (host, port) = address
        .rsplit_once(':')
        .and_then(|(host, port)| Some((host.to_owned(), port.parse::<u16>().ok()?)))
        .ok_or_else(|| {
            redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "not a host:port node address",
                address.to_owned(),
            ))
        })?;
    let addr = match template.addr() {
        ConnectionAddr::TcpTls {
            insecure,
            tls_params,
            ..
        } => ConnectionAddr::TcpTls {
            host,
            port,
            insecure: *insecure,
            tls_params: tls_params.clone(),
        },
        _ => ConnectionAddr::Tcp(host, port),
    };
    Ok(template.clone().set_addr(addr))
}

/// `CLUSTER SLOTS` as the primary address of each slot.
async fn load_owners(library: &mut ClusterConnection) -> RedisResult<Vec<Option<Arc<str>>>> {
    let ranges: Vec<Value> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(library)
        .await?;
    let mut owners = vec![None; SLOTS];
    for range in ranges {
        let Value::Array(fields) = range else {
            continue;
        };
        let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(primary))) =
            (fields.first(), fields.get(1), fields.get(2))
        else {
            continue;
        };
        let (Some(host), Some(Value::Int(port))) = (primary.first(), primary.get(1)) else {
            continue;
        };
        let host: String = redis::from_redis_value_ref(host)?;
        let address: Arc<str> = Arc::from(format!("{host}:{port}"));
        let (Ok(start), Ok(end)) = (usize::try_from(*start), usize::try_from(*end)) else {
            continue;
        };
        for owner in owners.iter_mut().take(end.min(SLOTS - 1) + 1).skip(start) {
            *owner = Some(address.clone());
        }
    }
    Ok(owners)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_the_cluster_specification() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(key_slot(b"123456789"), 0x31C3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"));
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
    }

    #[test]
    fn nodes_are_reached_like_the_first_seed() {
        use redis::IntoConnectionInfo;

        let seed = "rediss://app:s3cret@10.0.0.1:6379/0"
            .into_connection_info()
            .unwrap();
        let node = node_info(&seed, "10.0.0.7:6380").unwrap();
        assert!(
            matches!(
                node.addr(),
                ConnectionAddr::TcpTls { host, port: 6380, insecure: false, .. } if host == "10.0.0.7"
            ),
            "{:?}",
            node.addr()
        );
        assert_eq!(node.redis_settings().username(), Some("app"));
        assert_eq!(node.redis_settings().password(), Some("s3cret"));

        let plain = "redis://10.0.0.1:6379".into_connection_info().unwrap();
        let node = node_info(&plain, "10.0.0.7:6380").unwrap();
        assert_eq!(
            node.addr(),
            &ConnectionAddr::Tcp("10.0.0.7".to_owned(), 6380)
        );
        assert!(node_info(&plain, "no-port").is_err());
    }

    #[test]
    fn only_scripts_with_keys_are_routed() {
        let mut script = redis::cmd("EVALSHA");
        script.arg("abc").arg(1).arg("fs:{c:42}:stock").arg("x");
        assert_eq!(script_slot(&script), Some(key_slot(b"c:42")));
        let mut keyless = redis::cmd("EVALSHA");
        keyless.arg("abc").arg(0);
        assert_eq!(script_slot(&keyless), None);
        assert_eq!(script_slot(redis::cmd("GET").arg("k")), None);
    }
}
