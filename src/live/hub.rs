//! This instance's live sockets, by user. Each socket has a bounded queue: a client that
//! falls behind is dropped (its socket closes), never allowed to grow memory. A guard
//! removes the socket on every exit path; when the session ends normally it also removes
//! the user's Redis route if that was the user's last socket here (a route left behind by
//! a panic expires by its TTL).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts};
use tokio::sync::mpsc;

use crate::adapters::redis::notifier::{PaymentUpdate, WaitingRoomUpdate};
use crate::adapters::redis::ws_routes::WsRoutes;
use crate::domain::failure::Failure;
use crate::domain::identity::UserId;

#[derive(Clone)]
pub struct WsMetrics {
    pub open_sockets: IntGauge,
    pub relayed: IntCounter,
    pub dropped_slow: IntCounter,
    /// Upgrades refused: `capacity` (this instance's cap), `per_user`, `draining`.
    pub refused: IntCounterVec,
}

impl WsMetrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        Ok(Self {
            open_sockets: IntGauge::new("ws_open_sockets", "Open WebSocket connections")?,
            relayed: IntCounter::new(
                "ws_messages_relayed_total",
                "Payment results sent to sockets",
            )?,
            dropped_slow: IntCounter::new(
                "ws_dropped_slow_clients_total",
                "Sockets closed for falling behind",
            )?,
            refused: IntCounterVec::new(
                Opts::new(
                    "ws_upgrades_refused_total",
                    "WebSocket upgrades refused, by reason (capacity, per_user, draining)",
                ),
                &["reason"],
            )?,
        })
    }

    pub fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.open_sockets.clone()),
            Box::new(self.relayed.clone()),
            Box::new(self.dropped_slow.clone()),
            Box::new(self.refused.clone()),
        ]
    }
}

type Outbox = mpsc::Sender<Arc<str>>;

pub struct Hub {
    routes: WsRoutes,
    sockets: Mutex<HashMap<UserId, Vec<(u64, Outbox)>>>,
    next_id: AtomicU64,
    send_queue: usize,
    limits: SocketLimits,
    metrics: WsMetrics,
}

/// How many sockets an instance holds.
#[derive(Debug, Clone, Copy)]
pub struct SocketLimits {
    pub total: usize,
    pub per_user: usize,
}

/// Removes its socket from the hub when dropped.
pub struct Registration {
    hub: Arc<Hub>,
    user: UserId,
    id: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("this instance holds its maximum of {0} sockets")]
    Full(usize),
    #[error("you already have {0} live connections open; close one first")]
    UserFull(usize),
    #[error(transparent)]
    Unavailable(#[from] Failure),
}

impl Hub {
    pub fn new(
        routes: WsRoutes,
        send_queue: usize,
        limits: SocketLimits,
        metrics: WsMetrics,
    ) -> Self {
        Self {
            routes,
            sockets: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            send_queue,
            limits,
            metrics,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, Vec<(u64, Outbox)>>> {
        // A panic while holding the lock leaves a usable map: recover it.
        self.sockets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn metrics(&self) -> &WsMetrics {
        &self.metrics
    }

    pub fn open_sockets(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    /// Registers a socket for `user` and points the user's route here.
    pub async fn register(
        self: &Arc<Self>,
        user: &UserId,
    ) -> Result<(Registration, mpsc::Receiver<Arc<str>>), HubError> {
        if self.open_sockets() >= self.limits.total {
            self.metrics.refused.with_label_values(&["capacity"]).inc();
            return Err(HubError::Full(self.limits.total));
        }
        let users_sockets = || self.lock().get(user).map_or(0, Vec::len);
        if users_sockets() >= self.limits.per_user {
            self.metrics.refused.with_label_values(&["per_user"]).inc();
            return Err(HubError::UserFull(self.limits.per_user));
        }
        self.routes.claim(user).await.map_err(Failure::from)?;
        let (tx, rx) = mpsc::channel(self.send_queue.max(1));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        {
            // Checked again under the lock: the same user may be connecting twice at once.
            let mut sockets = self.lock();
            let own = sockets.entry(user.clone()).or_default();
            if own.len() >= self.limits.per_user {
                self.metrics.refused.with_label_values(&["per_user"]).inc();
                return Err(HubError::UserFull(self.limits.per_user));
            }
            own.push((id, tx));
        }
        self.metrics.open_sockets.inc();
        Ok((
            Registration {
                hub: self.clone(),
                user: user.clone(),
                id,
            },
            rx,
        ))
    }

    /// Sends a waiting-room turn to every socket of its user on this instance.
    pub fn deliver_waiting_room(&self, update: &WaitingRoomUpdate) {
        let message: Arc<str> = serde_json::json!({
            "type": update.kind,
            "coupon_id": update.coupon_id,
            "state": update.state,
        })
        .to_string()
        .into();
        self.send(&update.user_id, message);
    }

    /// Sends a payment result to every socket of its user on this instance.
    pub fn deliver(&self, update: &PaymentUpdate) {
        let message: Arc<str> = serde_json::json!({
            "type": update.kind,
            "order_id": update.order_id,
            "status": update.status,
        })
        .to_string()
        .into();
        tracing::debug!(
            order.id = %update.order_id,
            request_id = update.request_id.as_deref().unwrap_or("-"),
            status = update.status.as_str(),
            "payment result pushed"
        );
        self.send(&update.user_id, message);
    }

    fn send(&self, user: &UserId, message: Arc<str>) {
        let mut sockets = self.lock();
        let Some(outboxes) = sockets.get_mut(user) else {
            return;
        };
        outboxes.retain(|(_, outbox)| match outbox.try_send(message.clone()) {
            Ok(()) => {
                self.metrics.relayed.inc();
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                // Dropping the sender ends the socket's loop, which closes it.
                self.metrics.dropped_slow.inc();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
    }

    /// Users with at least one socket here (their routes need refreshing).
    pub fn users(&self) -> Vec<UserId> {
        self.lock().keys().cloned().collect()
    }

    pub fn routes(&self) -> &WsRoutes {
        &self.routes
    }

    fn unregister(&self, user: &UserId, id: u64) -> bool {
        let mut sockets = self.lock();
        let Some(outboxes) = sockets.get_mut(user) else {
            return false;
        };
        let before = outboxes.len();
        outboxes.retain(|(socket, _)| *socket != id);
        if outboxes.len() < before {
            self.metrics.open_sockets.dec();
        }
        if outboxes.is_empty() {
            sockets.remove(user);
            return true;
        }
        false
    }
}

impl Registration {
    /// Ends the registration; the user's last socket here also takes its route away.
    pub async fn leave(mut self) {
        if let Some(last) = self.unregister()
            && last
            && let Err(error) = self.hub.routes.remove(&self.user).await
        {
            tracing::debug!(%error, "route not removed; it expires by TTL");
        }
    }

    /// Some(whether it was the user's last socket) the first time only.
    fn unregister(&mut self) -> Option<bool> {
        let id = std::mem::take(&mut self.id);
        (id != 0).then(|| self.hub.unregister(&self.user, id))
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // No I/O here: the route expires by its TTL when `leave` was not reached.
        self.unregister();
    }
}
