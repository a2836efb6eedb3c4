//! Give-backs that failed: the unit of an order whose event was never published, which
//! Redis did not take back when the purchase asked (the shopper heard 503). Retried in
//! the background, with a growing pause, until Redis answers or [`GIVE_UP_AFTER`] (or
//! for [`LAST_ATTEMPTS`] more when the api stops); only then does the unit count as held
//! (`purchase_units_held_total`), for `flash-sale reconcile` to return.
//!
//! A retry applies only to the sale state the unit was reserved in (see
//! [`ReleaseReason::UnpublishedRetried`]): once that state has been rebuilt, the
//! rebuild has counted the unit from the records of truth, and giving it back again
//! would sell it twice.

use std::time::Duration;

use prometheus::IntCounterVec;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::adapters::redis::stock_gate::{Release, ReleaseReason, StockGate};
use crate::domain::coupon::CouponId;
use crate::domain::identity::UserId;
use crate::domain::order::{OrderId, StateGeneration};
use crate::shutdown::Shutdown;

/// Give-backs waiting for a retry before new ones count as held at once.
const QUEUE: usize = 4096;
/// The first pause; it doubles up to [`LONGEST_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(250);
const LONGEST_PAUSE: Duration = Duration::from_secs(5);
/// How long a stopping api keeps trying the give-backs still waiting.
const LAST_ATTEMPTS: Duration = Duration::from_secs(2);
/// After this long the unit counts as held: an operator reconciles the coupon.
const GIVE_UP_AFTER: Duration = Duration::from_secs(15 * 60);

/// The unit of an unpublished order, still reserved.
#[derive(Debug)]
pub struct HeldUnit {
    pub coupon: CouponId,
    pub user: UserId,
    pub order_id: OrderId,
    pub idempotency_digest: Option<String>,
    pub reserved_in: StateGeneration,
}

pub struct GiveBacks {
    queue: mpsc::Sender<HeldUnit>,
    /// Units of unpublished orders Redis did not take back, even after retries: held,
    /// with no order, until `flash-sale reconcile` (the drift audit cannot see them:
    /// stock and buyers agree).
    held: IntCounterVec,
}

impl GiveBacks {
    /// Starts the retrier; what it still holds when the api stops gets
    /// [`LAST_ATTEMPTS`] more, then counts as held.
    pub fn start(gate: StockGate, shutdown: &Shutdown) -> Result<Self, prometheus::Error> {
        let held = IntCounterVec::new(
            prometheus::Opts::new(
                "purchase_units_held_total",
                "Units of orders never published that could not be given back, even after retries (held until `flash-sale reconcile`), by coupon",
            ),
            &["coupon"],
        )?;
        let (queue, units) = mpsc::channel(QUEUE);
        let retrier = Retrier {
            gate,
            held: held.clone(),
            waiting: Vec::new(),
        };
        shutdown.spawn(retrier.run(units, shutdown.token()));
        Ok(Self { queue, held })
    }

    /// The held-units counter, for the metrics registry.
    pub fn collector(&self) -> Box<dyn prometheus::core::Collector> {
        Box::new(self.held.clone())
    }

    /// Hands a unit over for retries; never waits.
    pub fn retry(&self, unit: HeldUnit) {
        if let Err(error) = self.queue.try_send(unit) {
            let unit = error.into_inner();
            tracing::error!(order.id = %unit.order_id, coupon.id = %unit.coupon, "too many give-backs waiting; the unit stays held until `flash-sale reconcile`");
            count_held(&self.held, &unit);
        }
    }
}

fn count_held(held: &IntCounterVec, unit: &HeldUnit) {
    held.with_label_values(&[unit.coupon.to_string().as_str()])
        .inc();
}

struct Waiting {
    unit: HeldUnit,
    since: Instant,
    next: Instant,
    pause: Duration,
}

struct Retrier {
    gate: StockGate,
    held: IntCounterVec,
    waiting: Vec<Waiting>,
}

impl Retrier {
    async fn run(mut self, mut units: mpsc::Receiver<HeldUnit>, stop: CancellationToken) {
        loop {
            let next = self.waiting.iter().map(|w| w.next).min();
            tokio::select! {
                () = stop.cancelled() => break,
                unit = units.recv() => match unit {
                    Some(unit) => {
                        let now = Instant::now();
                        self.waiting.push(Waiting { unit, since: now, next: now + FIRST_PAUSE, pause: FIRST_PAUSE });
                    }
                    None => break,
                },
                () = sleep_until(next) => self.attempt_due(false).await,
            }
        }
        units.close();
        let now = Instant::now();
        while let Ok(unit) = units.try_recv() {
            self.waiting.push(Waiting {
                unit,
                since: now,
                next: now,
                pause: FIRST_PAUSE,
            });
        }
        self.last_attempts(now + LAST_ATTEMPTS).await;
    }

    /// Stopping: attempts every give-back at a short pause until `deadline` (a
    /// connection that just came back may still be reconnecting); what still fails
    /// then counts as held.
    async fn last_attempts(&mut self, deadline: Instant) {
        loop {
            let last = Instant::now() >= deadline;
            for waiting in &mut self.waiting {
                waiting.next = Instant::now();
            }
            self.attempt_due(last).await;
            if last || self.waiting.is_empty() {
                return;
            }
            tokio::time::sleep(FIRST_PAUSE).await;
        }
    }

    /// Attempts the give-backs that are due; `last`: none is retried again.
    async fn attempt_due(&mut self, last: bool) {
        let now = Instant::now();
        let mut still = Vec::with_capacity(self.waiting.len());
        for mut waiting in std::mem::take(&mut self.waiting) {
            if waiting.next > now {
                still.push(waiting);
                continue;
            }
            let unit = &waiting.unit;
            let released = self
                .gate
                .release(
                    unit.coupon,
                    &unit.user,
                    unit.order_id,
                    unit.idempotency_digest.as_deref(),
                    ReleaseReason::UnpublishedRetried {
                        reserved_in: &unit.reserved_in,
                    },
                )
                .await;
            let (order, coupon) = (unit.order_id, unit.coupon);
            match released {
                Ok(Release::Released | Release::AlreadyReleased) => {
                    tracing::info!(order.id = %order, coupon.id = %coupon, "unit of an unpublished order given back");
                }
                Ok(Release::Consumed) => {
                    // The event did reach the log: the order exists although its
                    // shopper heard 503, like any purchase whose answer was lost.
                    tracing::warn!(order.id = %order, coupon.id = %coupon, "an order reported unpublished reached the payment role; it stays");
                }
                Ok(Release::Rebuilt) => {
                    tracing::info!(order.id = %order, coupon.id = %coupon, "the sale state was rebuilt since the unit was reserved; the rebuild counted it");
                }
                Ok(Release::AfterRebuild) | Err(_)
                    if !last && now < waiting.since + GIVE_UP_AFTER =>
                {
                    if let Err(error) = released {
                        tracing::debug!(order.id = %order, coupon.id = %coupon, %error, "give-back failed again; retrying");
                    }
                    waiting.next = now + waiting.pause;
                    waiting.pause = (waiting.pause * 2).min(LONGEST_PAUSE);
                    still.push(waiting);
                }
                Ok(Release::AfterRebuild) | Err(_) => {
                    tracing::error!(order.id = %order, coupon.id = %coupon, "gave up giving a unit back; it stays held until `flash-sale reconcile`");
                    count_held(&self.held, unit);
                }
            }
        }
        self.waiting = still;
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
