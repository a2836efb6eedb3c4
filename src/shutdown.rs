//! One stop signal, fanned out: the HTTP server stops accepting and drains, then the
//! background tasks see the cancellation and finish, then the process exits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Set when the stop signal arrives: the instance reports not ready and refuses new
/// WebSockets, while it keeps serving requests for the drain time.
#[derive(Clone, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Shared by every long-running task of a role.
#[derive(Clone, Default)]
pub struct Shutdown {
    draining: Draining,
    token: CancellationToken,
    /// Cancelled first: long-lived connections (WebSockets) close themselves, so the HTTP
    /// server's graceful stop does not wait out its timeout on them.
    connections: CancellationToken,
    tracker: TaskTracker,
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// The token background loops select on.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// The token long-lived connections select on.
    pub fn connections(&self) -> CancellationToken {
        self.connections.clone()
    }

    /// The flag readiness and the WebSocket handshake look at.
    pub fn draining(&self) -> Draining {
        self.draining.clone()
    }

    /// Starts draining: not ready from now on, and open sockets are asked to close (their
    /// clients reconnect to another instance).
    pub fn begin_drain(&self) {
        self.draining.0.store(true, Ordering::Release);
        self.connections.cancel();
    }

    /// Asks long-lived connections to close (before the HTTP server drains).
    pub fn close_connections(&self) {
        self.connections.cancel();
    }

    /// Spawns a task that shutdown waits for.
    pub fn spawn<F>(&self, future: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(future)
    }

    /// Cancels every task and waits up to `grace` for them to finish; returns false when
    /// some were still running at the deadline.
    pub async fn stop(&self, grace: Duration) -> bool {
        self.connections.cancel();
        self.token.cancel();
        self.tracker.close();
        tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok()
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => tracing::info!("SIGINT received, shutting down"),
                    _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the process");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
        tracing::info!("Ctrl-C received, shutting down");
    }
}
