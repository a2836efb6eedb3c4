//! How the process serves: HTTP listener, WebSocket sessions, logs.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    /// 0 picks a free port (tests).
    pub port: u16,
    /// Seconds in-flight requests get to finish after a stop signal.
    pub shutdown_timeout_secs: u64,
    /// Seconds between the stop signal and the stop: the instance answers /readyz 503
    /// and refuses new WebSockets at once, closes its sockets ("service restart"), and
    /// keeps serving requests meanwhile, so a balancer moves traffic away first.
    pub drain_secs: u64,
    /// Proxies (IPs or CIDRs) whose `X-Forwarded-For` is believed: the client is the
    /// right-most address not in this list, never the left-most one a client can write.
    /// Empty: the client is the peer.
    pub trusted_proxies: Vec<String>,
    /// HTTP worker threads; 0 means one per core.
    pub workers: usize,
    /// Built web pages served at `/` by the api role (empty: none; NGINX serves them in
    /// deployments).
    pub static_dir: PathBuf,
    /// Deployment checks at start: absolute paths, pages present, an issuer URL, no
    /// development key, no benchmark-only purchase strategy.
    pub production: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WsSettings {
    /// Lifetime of a user → server route; refreshed every third of it while connected.
    pub route_ttl_ms: u64,
    /// Ping interval; a socket silent for `idle_timeout_ms` is closed.
    pub heartbeat_interval_ms: u64,
    pub idle_timeout_ms: u64,
    /// Messages queued per socket; a client that falls this far behind is disconnected.
    pub send_queue: usize,
    /// Open sockets this instance accepts at most.
    pub max_connections: usize,
    /// Open sockets one user may hold on this instance (tabs, phone and laptop), so one
    /// account cannot take every slot.
    pub max_sockets_per_user: usize,
    /// Upgrades one user may ask for, per second and in a burst, on this instance
    /// (0: no limit); more are answered 429 TOO_MANY_REQUESTS before any socket.
    pub upgrade_user_rate_per_sec: u32,
    pub upgrade_user_burst: u32,
    /// The same per client IP, checked before the token is verified.
    pub upgrade_ip_rate_per_sec: u32,
    pub upgrade_ip_burst: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}
