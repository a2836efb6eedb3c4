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
    /// HTTP worker threads; 0 means one per core.
    pub workers: usize,
    /// Built web pages served at `/` by the api role (empty: none; NGINX serves them in
    /// deployments).
    pub static_dir: PathBuf,
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
