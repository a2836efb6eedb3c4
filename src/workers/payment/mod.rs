//! The payment role's long-running work.
//!
//! - A **consumer** (see `consume`) is one member of the payment instances' Kafka
//!   consumer group: the broker assigns it partitions of `orders`. Per batch it writes
//!   the new orders (PENDING) and the partition's next offset in ONE MySQL transaction,
//!   fenced by the epoch it claimed on assignment: a crash, a replay or a stale owner
//!   never doubles an order. On assignment it first resumes payments a previous owner
//!   left PENDING.
//! - A bounded **worker pool** charges each new order through the gateway; a **settler**
//!   (see `settle`) moves charged orders to PAID or FAILED and tells the shoppers. Full
//!   queues block the consumer (backpressure), never memory.

mod consume;
mod settle;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec};
use tokio::sync::{Mutex, mpsc};

use crate::adapters::kafka::group::GroupSettings;
use crate::adapters::mysql::MysqlPool;
use crate::adapters::redis::notifier::PaymentNotifier;
use crate::adapters::redis::stock_gate::StockGate;
use crate::adapters::redis::{Keys, RedisPool};
use crate::domain::coupon::CouponId;
use crate::domain::identity::UserId;
use crate::domain::order::OrderId;
use crate::domain::payment::PaymentOutcome;
use crate::domain::ports::PaymentGateway;
use crate::shutdown::Shutdown;

/// One payment to run.
#[derive(Debug, Clone)]
pub struct PaymentJob {
    pub order_id: OrderId,
    pub user_id: UserId,
    pub coupon_id: CouponId,
    pub price_cents: i64,
    /// The purchase's idempotency record, dropped if the payment fails. Unknown for a
    /// payment resumed after a crash (orders rows do not keep it): that record then
    /// simply expires.
    pub idempotency_digest: Option<String>,
}

/// Metrics of the payment role.
#[derive(Clone)]
pub struct PaymentMetrics {
    /// Events behind the end of the log, per owned partition.
    lag: IntGaugeVec,
    /// Records consumed per partition by this instance.
    consumed: IntCounterVec,
    /// Orders settled, by outcome (PAID, FAILED).
    settled: IntCounterVec,
    /// Orders written to MySQL.
    written: IntCounterVec,
    busy_workers: IntGauge,
    pool_size: IntGauge,
    owned_partitions: IntGauge,
    /// Batches refused because another instance had claimed their partition since.
    fenced: IntCounter,
}

impl PaymentMetrics {
    pub fn new(pool_size: usize) -> Result<Self, prometheus::Error> {
        use prometheus::Opts;
        let metrics = Self {
            lag: IntGaugeVec::new(
                Opts::new("payment_consumer_lag", "Events behind the end of the log"),
                &["partition"],
            )?,
            consumed: IntCounterVec::new(
                Opts::new("payment_consumed_records_total", "Order events consumed"),
                &["partition"],
            )?,
            settled: IntCounterVec::new(
                Opts::new("payment_settled_total", "Orders settled by status"),
                &["status"],
            )?,
            written: IntCounterVec::new(
                Opts::new("payment_orders_written_total", "Order rows written"),
                &["partition"],
            )?,
            busy_workers: IntGauge::new("payment_pool_busy", "Payment workers busy")?,
            pool_size: IntGauge::new("payment_pool_size", "Payment workers")?,
            owned_partitions: IntGauge::new(
                "payment_owned_partitions",
                "Partitions this instance consumes",
            )?,
            fenced: IntCounter::new(
                "payment_fenced_batches_total",
                "Batches refused: another instance had claimed the partition",
            )?,
        };
        metrics
            .pool_size
            .set(i64::try_from(pool_size).unwrap_or(i64::MAX));
        Ok(metrics)
    }

    pub fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.lag.clone()),
            Box::new(self.consumed.clone()),
            Box::new(self.settled.clone()),
            Box::new(self.written.clone()),
            Box::new(self.busy_workers.clone()),
            Box::new(self.pool_size.clone()),
            Box::new(self.owned_partitions.clone()),
            Box::new(self.fenced.clone()),
        ]
    }
}

/// Everything the payment role's tasks share.
pub struct PaymentDeps {
    pub mysql: MysqlPool,
    pub group: GroupSettings,
    pub redis: RedisPool,
    pub keys: Keys,
    pub gate: StockGate,
    pub notifier: PaymentNotifier,
    pub gateway: Arc<dyn PaymentGateway>,
    pub metrics: PaymentMetrics,
    pub partitions: i32,
    pub pool_size: usize,
    pub queue: usize,
}

/// Starts the consumer and the worker pool; both stop on shutdown (the consumer first,
/// handing its partitions back, then the pool drains its queue).
pub fn start(deps: PaymentDeps, shutdown: &Shutdown) {
    let deps = Arc::new(deps);
    let (jobs, queue) = mpsc::channel::<PaymentJob>(deps.queue.max(1));
    let queue = Arc::new(Mutex::new(queue));
    let busy = Arc::new(AtomicUsize::new(0));
    let (charged, results) = mpsc::channel::<(PaymentJob, PaymentOutcome)>(deps.queue.max(1));
    for _ in 0..deps.pool_size.max(1) {
        shutdown.spawn(worker(
            deps.clone(),
            queue.clone(),
            busy.clone(),
            charged.clone(),
        ));
    }
    // Settles in batches (one transaction per batch, like the consumer's writes); it
    // stops after the workers, once every charge has been settled.
    drop(charged);
    shutdown.spawn(settle::settler(deps.clone(), results));
    // The consumer owns the only job sender: when it stops, the queue closes and the
    // workers exit after draining it.
    shutdown.spawn(consume::consume(deps, jobs, shutdown.token()));
}

async fn worker(
    deps: Arc<PaymentDeps>,
    queue: Arc<Mutex<mpsc::Receiver<PaymentJob>>>,
    busy: Arc<AtomicUsize>,
    charged: mpsc::Sender<(PaymentJob, PaymentOutcome)>,
) {
    loop {
        let next = queue.lock().await.recv().await;
        let Some(job) = next else { return };
        let now_busy = busy.fetch_add(1, Ordering::Relaxed) + 1;
        deps.metrics
            .busy_workers
            .set(i64::try_from(now_busy).unwrap_or(0));
        let outcome = deps.gateway.charge(job.order_id, job.price_cents).await;
        let now_busy = busy.fetch_sub(1, Ordering::Relaxed) - 1;
        deps.metrics
            .busy_workers
            .set(i64::try_from(now_busy).unwrap_or(0));
        if charged.send((job, outcome)).await.is_err() {
            return;
        }
    }
}
