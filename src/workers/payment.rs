//! The payment role's long-running work.
//!
//! - A **coordinator** keeps this instance's share of the `orders` partitions: it
//!   heartbeats, claims free partitions up to ⌈partitions / live instances⌉, renews its
//!   leases, hands extras back, and stops a partition's consumer the moment its lease is
//!   lost.
//! - A **consumer** per owned partition fetches events from the committed offset and,
//!   per batch, writes the new orders (PENDING) and the next offset in ONE MySQL
//!   transaction, fenced by the lease epoch: a crash or a replay never doubles an order.
//!   On start it first resumes payments a crashed owner left PENDING.
//! - A bounded **worker pool** charges each new order through the gateway; a **settler**
//!   moves charged orders PENDING → PAID | FAILED in batches (one transaction per batch,
//!   guarded in SQL so a replay cannot move an order backwards), gives FAILED orders'
//!   units back in Redis exactly once, and tells the shoppers' ws instances. Full queues
//!   block the consumer (backpressure), never memory.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::Utc;
use diesel_async::AsyncConnection;
use prometheus::{IntCounterVec, IntGauge, IntGaugeVec};
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::adapters::kafka::codec::decode_order_placed;
use crate::adapters::kafka::consumer::PartitionReader;
use crate::adapters::kafka::{Kafka, KafkaError};
use crate::adapters::mysql::consumer_offsets::{self, CommitError};
use crate::adapters::mysql::orders::{self, OrderRow};
use crate::adapters::mysql::{MysqlError, MysqlPool};
use crate::adapters::redis::leases::PartitionLeases;
use crate::adapters::redis::notifier::PaymentNotifier;
use crate::adapters::redis::stock_gate::StockGate;
use crate::adapters::redis::{Keys, RedisPool};
use crate::domain::coupon::CouponId;
use crate::domain::identity::UserId;
use crate::domain::order::{OrderId, OrderPlaced, OrderStatus};
use crate::domain::payment::PaymentOutcome;
use crate::domain::ports::PaymentGateway;
use crate::shutdown::Shutdown;
use rskafka::record::RecordAndOffset;

/// PENDING orders resumed per query when a partition is taken over.
const RECOVERY_BATCH: i64 = 1_000;

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
    /// Next offset not yet consumed behind the end of the log, per partition.
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
        ]
    }
}

/// Everything the payment role's tasks share.
pub struct PaymentDeps {
    pub mysql: MysqlPool,
    pub kafka: Kafka,
    pub redis: RedisPool,
    pub keys: Keys,
    pub gate: StockGate,
    pub notifier: PaymentNotifier,
    pub gateway: Arc<dyn PaymentGateway>,
    pub metrics: PaymentMetrics,
    pub topic: String,
    pub partitions: i32,
    pub owner: String,
    pub pool_size: usize,
    pub queue: usize,
    pub lease_ttl: Duration,
    pub fetch_max_wait: Duration,
}

/// Starts the coordinator and the worker pool; both stop on shutdown (consumers first,
/// then the pool drains its queue).
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
    shutdown.spawn(settler(deps.clone(), results));
    // The coordinator owns the only job sender: when it (and its consumers) stop, the
    // queue closes and the workers exit after draining it.
    shutdown.spawn(coordinator(deps, jobs, shutdown.token()));
}

struct Owned {
    epoch: i64,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

async fn coordinator(
    deps: Arc<PaymentDeps>,
    jobs: mpsc::Sender<PaymentJob>,
    shutdown: CancellationToken,
) {
    let leases = PartitionLeases::new(
        deps.redis.clone(),
        deps.keys.clone(),
        deps.topic.clone(),
        deps.owner.clone(),
        deps.lease_ttl,
    );
    let tick = deps.lease_ttl / 3;
    let mut owned: BTreeMap<i32, Owned> = BTreeMap::new();
    loop {
        if let Err(error) = balance(&deps, &leases, &jobs, &mut owned).await {
            tracing::warn!(%error, "payment coordinator could not reach Redis; consumers keep their leases until they lapse");
        }
        deps.metrics
            .owned_partitions
            .set(i64::try_from(owned.len()).unwrap_or(0));
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(tick) => {}
        }
    }
    for (partition, lease) in std::mem::take(&mut owned) {
        stop_consumer(partition, lease, &leases).await;
    }
    let _ = leases.leave().await;
}

/// One coordination round: renew, shed extras, claim up to the fair share.
async fn balance(
    deps: &Arc<PaymentDeps>,
    leases: &PartitionLeases,
    jobs: &mpsc::Sender<PaymentJob>,
    owned: &mut BTreeMap<i32, Owned>,
) -> Result<(), crate::adapters::redis::RedisError> {
    // Consumers that ended on their own (fenced, or an error) give their lease back.
    let finished: Vec<i32> = owned
        .iter()
        .filter(|(_, o)| o.task.is_finished())
        .map(|(p, _)| *p)
        .collect();
    for partition in finished {
        if let Some(lease) = owned.remove(&partition) {
            stop_consumer(partition, lease, leases).await;
        }
    }
    let live = leases.heartbeat().await?.max(1);
    let partitions = usize::try_from(deps.partitions.max(1)).unwrap_or(1);
    let fair_share = partitions.div_ceil(live);

    let held: Vec<(i32, i64)> = owned.iter().map(|(p, o)| (*p, o.epoch)).collect();
    for (partition, epoch) in held {
        if !leases.renew(partition, epoch).await? {
            tracing::warn!(partition, "partition lease lost; stopping its consumer");
            if let Some(lease) = owned.remove(&partition) {
                lease.stop.cancel();
                let _ = lease.task.await;
            }
        }
    }
    while owned.len() > fair_share {
        let Some((&partition, _)) = owned.iter().next_back() else {
            break;
        };
        if let Some(lease) = owned.remove(&partition) {
            tracing::info!(
                partition,
                live,
                "handing a partition over to balance the instances"
            );
            stop_consumer(partition, lease, leases).await;
        }
    }
    if owned.len() < fair_share {
        // Start at a per-instance offset so instances do not all race for partition 0.
        let start = usize::try_from(owner_hash(&deps.owner) % partitions as u64).unwrap_or(0);
        for i in 0..partitions {
            if owned.len() >= fair_share {
                break;
            }
            let partition = i32::try_from((start + i) % partitions).unwrap_or(0);
            if owned.contains_key(&partition) {
                continue;
            }
            if let Some(epoch) = leases.acquire(partition).await? {
                tracing::info!(partition, epoch, "partition lease acquired");
                let stop = CancellationToken::new();
                let task = tokio::spawn(consume(
                    deps.clone(),
                    partition,
                    epoch,
                    jobs.clone(),
                    stop.clone(),
                ));
                owned.insert(partition, Owned { epoch, stop, task });
            }
        }
    }
    Ok(())
}

fn owner_hash(owner: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    owner.hash(&mut hasher);
    hasher.finish()
}

async fn stop_consumer(partition: i32, lease: Owned, leases: &PartitionLeases) {
    lease.stop.cancel();
    let _ = lease.task.await;
    if let Err(error) = leases.release(partition, lease.epoch).await {
        tracing::warn!(partition, %error, "could not release the partition lease; it will lapse");
    }
}

#[derive(Debug, thiserror::Error)]
enum ConsumeError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error(transparent)]
    Mysql(#[from] MysqlError),
    #[error(transparent)]
    Commit(#[from] CommitError),
    #[error(transparent)]
    Redis(#[from] crate::adapters::redis::RedisError),
    #[error("worker pool stopped")]
    PoolClosed,
}

/// Consumes one partition until stopped; retries transient failures with a pause.
async fn consume(
    deps: Arc<PaymentDeps>,
    partition: i32,
    epoch: i64,
    jobs: mpsc::Sender<PaymentJob>,
    stop: CancellationToken,
) {
    loop {
        let run = consume_from_offset(&deps, partition, epoch, &jobs, &stop);
        match run.await {
            Ok(()) => return,
            Err(ConsumeError::Commit(CommitError::Fenced(fenced))) => {
                tracing::warn!(%fenced, "a newer owner took the partition; stopping");
                return;
            }
            Err(ConsumeError::PoolClosed) => return,
            Err(error) => {
                tracing::warn!(partition, %error, "partition consumer failed; retrying");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
    }
}

async fn consume_from_offset(
    deps: &PaymentDeps,
    partition: i32,
    epoch: i64,
    jobs: &mpsc::Sender<PaymentJob>,
    stop: &CancellationToken,
) -> Result<(), ConsumeError> {
    resume_pending(deps, partition, jobs, stop).await?;
    let reader = PartitionReader::new(&deps.kafka, &deps.topic, partition).await?;
    let mut offset = deps
        .mysql
        .with_conn(async |conn| consumer_offsets::get(conn, &deps.topic, partition).await)
        .await?
        .unwrap_or(0);
    let label = partition.to_string();
    let max_wait = i32::try_from(deps.fetch_max_wait.as_millis()).unwrap_or(i32::MAX);
    // Long-poll only when caught up: tansu holds every fetch for the full wait even when
    // data is there, so a consumer behind the end of the log must not wait at all.
    let mut caught_up = false;
    loop {
        let wait = if caught_up { max_wait } else { 0 };
        let fetched = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            fetched = reader.fetch(offset, wait) => fetched?,
        };
        let (records, high_watermark) = fetched;
        caught_up = records
            .last()
            .is_none_or(|r| r.offset + 1 >= high_watermark);
        let fresh_records: Vec<&RecordAndOffset> =
            records.iter().filter(|r| r.offset >= offset).collect();
        if fresh_records.is_empty() {
            deps.metrics
                .lag
                .with_label_values(&[&label])
                .set((high_watermark - offset).max(0));
            continue;
        }
        // One transaction per chunk: a fetch can hold tens of thousands of records, more
        // than one statement may carry.
        for chunk in fresh_records.chunks(WRITE_BATCH) {
            offset = write_chunk(deps, partition, epoch, chunk, jobs, stop).await?;
            deps.metrics
                .consumed
                .with_label_values(&[&label])
                .inc_by(chunk.len() as u64);
            deps.metrics
                .lag
                .with_label_values(&[&label])
                .set((high_watermark - offset).max(0));
        }
    }
}

/// Records written to MySQL in one transaction (with the partition's offset).
const WRITE_BATCH: usize = 1_000;

/// Writes one chunk's new orders and the next offset in one transaction, then hands the
/// new orders to the payment pool; returns the next offset.
async fn write_chunk(
    deps: &PaymentDeps,
    partition: i32,
    epoch: i64,
    chunk: &[&RecordAndOffset],
    jobs: &mpsc::Sender<PaymentJob>,
    stop: &CancellationToken,
) -> Result<i64, ConsumeError> {
    let next = chunk.last().map_or(0, |r| r.offset + 1);
    let events: Vec<OrderPlaced> = chunk
        .iter()
        .filter_map(|r| match decode_order_placed(&r.record) {
            Ok(event) => Some(event),
            Err(error) => {
                // A record we cannot read would block the partition forever: skip it, loudly.
                tracing::error!(partition, offset = r.offset, %error, "skipping an unreadable order event");
                None
            }
        })
        .collect();
    let events = drop_released(deps, events).await?;
    let rows: Vec<OrderRow> = events.iter().map(order_row).collect();
    let timeout = deps.mysql.query_timeout();
    let write = async {
        let mut conn = deps.mysql.get().await?;
        conn.transaction::<_, CommitError, _>(async |conn| {
            let fresh = orders::insert_new(conn, &rows).await?;
            consumer_offsets::commit(conn, &deps.topic, partition, next, epoch).await?;
            Ok(fresh)
        })
        .await
    };
    let fresh = tokio::time::timeout(timeout, write)
        .await
        .map_err(|_| MysqlError::Timeout(timeout))??;
    deps.metrics
        .written
        .with_label_values(&[&partition.to_string()])
        .inc_by(fresh.len() as u64);
    let fresh: std::collections::HashSet<String> = fresh.into_iter().collect();
    for event in events
        .into_iter()
        .filter(|e| fresh.contains(&e.order_id.to_string()))
    {
        // Stopped while the pool is full: the rest are PENDING rows that the partition's
        // next owner resumes.
        if !send_job(jobs, job(&event), stop).await? {
            break;
        }
    }
    Ok(next)
}

/// Events whose unit was already given back (a publish that timed out on our side but
/// reached the broker) must not become orders.
async fn drop_released(
    deps: &PaymentDeps,
    events: Vec<OrderPlaced>,
) -> Result<Vec<OrderPlaced>, ConsumeError> {
    if events.is_empty() {
        return Ok(events);
    }
    let keys: Vec<String> = events
        .iter()
        .map(|e| {
            deps.keys
                .coupon_released(e.coupon_id.get(), &e.order_id.to_string())
        })
        .collect();
    let released: Vec<bool> = deps
        .redis
        .run_shared(|mut conn| async move {
            let mut pipe = deadpool_redis::redis::pipe();
            for key in &keys {
                pipe.exists(key);
            }
            pipe.query_async(&mut conn).await
        })
        .await?;
    Ok(events
        .into_iter()
        .zip(released)
        .filter_map(|(event, released)| {
            if released {
                tracing::info!(order.id = %event.order_id, "skipping an order whose unit was given back");
            }
            (!released).then_some(event)
        })
        .collect())
}

/// Payments a previous owner accepted but did not finish.
async fn resume_pending(
    deps: &PaymentDeps,
    partition: i32,
    jobs: &mpsc::Sender<PaymentJob>,
    stop: &CancellationToken,
) -> Result<(), ConsumeError> {
    let mut cursor: Option<orders::PendingCursor> = None;
    let mut resumed = 0usize;
    loop {
        let page = deps
            .mysql
            .with_conn(async |conn| {
                orders::pending_in_partition(
                    conn,
                    deps.partitions,
                    partition,
                    cursor.as_ref(),
                    RECOVERY_BATCH,
                )
                .await
            })
            .await?;
        let Some(last) = page.last() else { break };
        cursor = Some((last.created_at, last.id.clone()));
        resumed += page.len();
        for row in page {
            let (Some(order_id), Some(coupon_id), Ok(user_id)) = (
                OrderId::parse(&row.id),
                CouponId::new(row.coupon_id),
                UserId::parse(&row.user_id),
            ) else {
                tracing::error!(order.id = %row.id, "skipping an unreadable PENDING order");
                continue;
            };
            let job = PaymentJob {
                order_id,
                user_id,
                coupon_id,
                price_cents: row.price_cents,
                idempotency_digest: None,
            };
            if !send_job(jobs, job, stop).await? {
                return Ok(());
            }
        }
    }
    if resumed > 0 {
        tracing::info!(partition, orders = resumed, "resumed interrupted payments");
    }
    Ok(())
}

/// Hands a job to the pool, waiting while the queue is full, but never past `stop`:
/// false when stopped first (the job stays PENDING for the partition's next owner).
async fn send_job(
    jobs: &mpsc::Sender<PaymentJob>,
    job: PaymentJob,
    stop: &CancellationToken,
) -> Result<bool, ConsumeError> {
    tokio::select! {
        () = stop.cancelled() => Ok(false),
        sent = jobs.send(job) => sent.map(|()| true).map_err(|_| ConsumeError::PoolClosed),
    }
}

fn order_row(event: &OrderPlaced) -> OrderRow {
    OrderRow {
        id: event.order_id.to_string(),
        user_id: event.user_id.as_str().to_owned(),
        coupon_id: event.coupon_id.get(),
        price_cents: event.price_cents,
        status: OrderStatus::Pending.as_str().to_owned(),
        created_at: event.placed_at.naive_utc(),
        updated_at: Utc::now().naive_utc(),
    }
}

fn job(event: &OrderPlaced) -> PaymentJob {
    PaymentJob {
        order_id: event.order_id,
        user_id: event.user_id.clone(),
        coupon_id: event.coupon_id,
        price_cents: event.price_cents,
        idempotency_digest: event.idempotency_digest.clone(),
    }
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

/// Largest batch settled in one transaction.
const SETTLE_BATCH: usize = 1_000;

async fn settler(
    deps: Arc<PaymentDeps>,
    mut results: mpsc::Receiver<(PaymentJob, PaymentOutcome)>,
) {
    loop {
        let Some(first) = results.recv().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < SETTLE_BATCH {
            match results.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        settle_with_retries(&deps, &batch).await;
    }
}

/// Settles a batch; retries MySQL/Redis failures with a capped backoff (the charges
/// are idempotent on the order id, the settling is guarded, the release is marked).
async fn settle_with_retries(deps: &PaymentDeps, batch: &[(PaymentJob, PaymentOutcome)]) {
    let mut backoff = Duration::from_millis(50);
    for attempt in 1..=20 {
        match settle_batch(deps, batch).await {
            Ok(()) => return,
            Err(error) => {
                tracing::warn!(orders = batch.len(), attempt, %error, "settling failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
    tracing::error!(
        orders = batch.len(),
        "giving up settling for now; the orders stay PENDING until their partition is resumed"
    );
}

async fn settle_batch(
    deps: &PaymentDeps,
    batch: &[(PaymentJob, PaymentOutcome)],
) -> Result<(), String> {
    let ids_with = |outcome: PaymentOutcome| -> Vec<String> {
        batch
            .iter()
            .filter(|(_, o)| *o == outcome)
            .map(|(job, _)| job.order_id.to_string())
            .collect()
    };
    let (approved, declined) = (
        ids_with(PaymentOutcome::Approved),
        ids_with(PaymentOutcome::Declined),
    );
    let all: Vec<String> = batch
        .iter()
        .map(|(job, _)| job.order_id.to_string())
        .collect();
    let timeout = deps.mysql.query_timeout();
    let write = async {
        let mut conn = deps.mysql.get().await?;
        conn.transaction::<_, MysqlError, _>(async |conn| {
            // Only orders still PENDING move; a replayed or resumed duplicate does not.
            let pending: std::collections::HashSet<String> = orders::lock_pending(conn, &all)
                .await?
                .into_iter()
                .collect();
            let still = |ids: &[String]| -> Vec<String> {
                ids.iter()
                    .filter(|id| pending.contains(id.as_str()))
                    .cloned()
                    .collect()
            };
            orders::settle_many(conn, &still(&approved), OrderStatus::Paid).await?;
            orders::settle_many(conn, &still(&declined), OrderStatus::Failed).await?;
            Ok(pending)
        })
        .await
    };
    let changed = tokio::time::timeout(timeout, write)
        .await
        .map_err(|_| format!("settling timed out after {timeout:?}"))?
        .map_err(|e| e.to_string())?;

    // Idempotent (a per-order marker): safe for orders a previous attempt already
    // settled but could not release, and a no-op on any replay.
    let releases = batch
        .iter()
        .filter(|(_, outcome)| *outcome == PaymentOutcome::Declined)
        .map(|(job, _)| {
            deps.gate.release(
                job.coupon_id,
                &job.user_id,
                job.order_id,
                job.idempotency_digest.as_deref(),
            )
        });
    for released in futures_util::future::join_all(releases).await {
        released.map_err(|e| e.to_string())?;
    }

    let settled: Vec<&(PaymentJob, PaymentOutcome)> = batch
        .iter()
        .filter(|(job, _)| changed.contains(&job.order_id.to_string()))
        .collect();
    for (_, outcome) in &settled {
        deps.metrics
            .settled
            .with_label_values(&[outcome.order_status().as_str()])
            .inc();
    }
    // Pub/sub is best effort: the order is readable through the API.
    let pushes = settled.iter().map(|(job, outcome)| {
        deps.notifier
            .notify(&job.user_id, job.order_id, outcome.order_status())
    });
    for pushed in futures_util::future::join_all(pushes).await {
        if let Err(error) = pushed {
            tracing::debug!(%error, "payment result not pushed");
        }
    }
    Ok(())
}
