//! The consumer: one member of the payment instances' consumer group.
//!
//! Events arrive in order from [`GroupMember`]: assignments, records, revocations. On
//! assignment each partition is claimed in MySQL (a new epoch fences every earlier
//! owner, however late its writes arrive) and starts at the offset committed there;
//! PENDING orders a previous owner left behind are resumed. Records are written in
//! batches, one transaction with the partition's next offset per batch. A revocation is
//! answered only after every record before it was handled, so a partition's new owner
//! never races this one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use diesel_async::AsyncConnection;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{PaymentDeps, PaymentJob};
use crate::adapters::kafka::codec::decode_order_placed_parts;
use crate::adapters::kafka::group::{GroupEvent, GroupMember, GroupRecord};
use crate::adapters::mysql::MysqlError;
use crate::adapters::mysql::consumer_offsets::{self, CommitError};
use crate::adapters::mysql::orders::{self, OrderRow};
use crate::adapters::redis::stock_gate::{Release, ReleaseReason};
use crate::domain::coupon::CouponId;
use crate::domain::identity::UserId;
use crate::domain::order::{OrderId, OrderPlaced, OrderStatus};

/// Records written to MySQL in one transaction (with the partition's offset).
const WRITE_BATCH: usize = 1_000;

/// Longest wait for more records before a batch is written.
const BATCH_LINGER: Duration = Duration::from_millis(10);

/// PENDING orders read per query when a partition is taken over.
const RECOVERY_BATCH: i64 = 1_000;

/// Pause between attempts when MySQL or Redis fails under a batch.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
enum ConsumeError {
    #[error(transparent)]
    Mysql(#[from] MysqlError),
    #[error(transparent)]
    Commit(#[from] CommitError),
    #[error(transparent)]
    Redis(#[from] crate::adapters::redis::RedisError),
    #[error("worker pool stopped")]
    PoolClosed,
}

/// A partition this instance owns.
struct Owned {
    epoch: i64,
    /// The next offset to write; records before it were handled already.
    next: i64,
    /// Set when a newer owner claimed it: its records are skipped until the revocation.
    fenced: bool,
    /// Stops the partition's resumed payments when it is revoked.
    stop: CancellationToken,
}

/// Runs until shutdown: joins the group, handles its events, leaves cleanly.
pub(super) async fn consume(
    deps: Arc<PaymentDeps>,
    jobs: mpsc::Sender<PaymentJob>,
    shutdown: CancellationToken,
) {
    let Some(mut member) = join(&deps, &shutdown).await else {
        return;
    };
    let mut consumer = Consumer {
        deps: &deps,
        jobs: &jobs,
        owned: HashMap::new(),
        shutdown: &shutdown,
    };
    let mut leaving = false;
    let mut deferred: Option<GroupEvent> = None;
    loop {
        let event = match deferred.take() {
            Some(event) => Some(event),
            None if leaving => member.next().await,
            None => tokio::select! {
                () = shutdown.cancelled() => {
                    // Keeps handling events: the revocation of every owned partition
                    // comes before the channel closes.
                    member.leave();
                    leaving = true;
                    continue;
                }
                event = member.next() => event,
            },
        };
        let Some(event) = event else { break };
        match event {
            GroupEvent::Assigned {
                partitions,
                start_at,
            } => {
                let starts = consumer.assigned(&partitions).await;
                let _ = start_at.send(starts);
            }
            GroupEvent::Revoked { partitions, done } => {
                consumer.revoked(&partitions);
                let _ = done.send(());
            }
            GroupEvent::Record(first) => {
                // Whatever is already queued joins the batch, up to the first event
                // that is not a record (handled next, after this batch).
                // librdkafka hands records over one by one: linger briefly so that a
                // busy partition is written in batches, not a transaction per record.
                let mut batch = vec![first];
                let linger_until = tokio::time::Instant::now() + BATCH_LINGER;
                while batch.len() < WRITE_BATCH {
                    let next = match member.try_next() {
                        Some(event) => Some(event),
                        None => tokio::time::timeout_at(linger_until, member.next())
                            .await
                            .ok()
                            .flatten(),
                    };
                    match next {
                        Some(GroupEvent::Record(record)) => batch.push(record),
                        Some(other) => {
                            deferred = Some(other);
                            break;
                        }
                        None => break,
                    }
                }
                for (partition, next) in consumer.records(batch).await {
                    member.record_progress(partition, next);
                }
            }
        }
    }
    // Closing the consumer talks to the broker; keep that off the async workers.
    let _ = tokio::task::spawn_blocking(move || drop(member)).await;
}

/// Joins the group, retrying until it works or the role stops.
async fn join(deps: &PaymentDeps, shutdown: &CancellationToken) -> Option<GroupMember> {
    loop {
        match GroupMember::join(&deps.group, deps.queue, deps.metrics.lag.clone()) {
            Ok(member) => return Some(member),
            Err(error) => {
                tracing::warn!(%error, "could not join the payment consumer group; retrying")
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return None,
            () = tokio::time::sleep(RETRY_PAUSE) => {}
        }
    }
}

struct Consumer<'a> {
    deps: &'a Arc<PaymentDeps>,
    jobs: &'a mpsc::Sender<PaymentJob>,
    owned: HashMap<i32, Owned>,
    shutdown: &'a CancellationToken,
}

impl Consumer<'_> {
    /// Claims each assigned partition and answers where each starts; a partition that
    /// cannot be claimed before shutdown is left out (not started).
    async fn assigned(&mut self, partitions: &[i32]) -> HashMap<i32, i64> {
        let mut starts = HashMap::new();
        for &partition in partitions {
            let Some(claim) = self.claim(partition).await else {
                continue;
            };
            tracing::info!(
                partition,
                epoch = claim.epoch,
                offset = claim.next_offset,
                "partition assigned"
            );
            let stop = self.shutdown.child_token();
            tokio::spawn(release_failed(self.deps.clone(), partition, stop.clone()));
            match pending_in_partition(self.deps, partition).await {
                Ok(pending) if !pending.is_empty() => {
                    tracing::info!(
                        partition,
                        orders = pending.len(),
                        "resuming interrupted payments"
                    );
                    tokio::spawn(resume(pending, self.jobs.clone(), stop.clone()));
                }
                Ok(_) => {}
                // The orders stay PENDING; the partition's next owner (or this instance
                // after a restart) resumes them.
                Err(error) => {
                    tracing::warn!(partition, %error, "could not read interrupted payments")
                }
            }
            self.owned.insert(
                partition,
                Owned {
                    epoch: claim.epoch,
                    next: claim.next_offset,
                    fenced: false,
                    stop,
                },
            );
            starts.insert(partition, claim.next_offset);
        }
        self.set_owned_metric();
        starts
    }

    async fn claim(&self, partition: i32) -> Option<consumer_offsets::Claim> {
        let topic = &self.deps.group.topic;
        loop {
            let claimed = self
                .deps
                .mysql
                .with_conn(async |conn| consumer_offsets::claim(conn, topic, partition).await)
                .await;
            match claimed {
                Ok(claim) => return Some(claim),
                Err(error) => {
                    tracing::warn!(partition, %error, "could not claim an assigned partition; retrying")
                }
            }
            tokio::select! {
                () = self.shutdown.cancelled() => return None,
                () = tokio::time::sleep(RETRY_PAUSE) => {}
            }
        }
    }

    fn revoked(&mut self, partitions: &[i32]) {
        for partition in partitions {
            if let Some(owned) = self.owned.remove(partition) {
                owned.stop.cancel();
                tracing::info!(partition, "partition revoked");
            }
        }
        self.set_owned_metric();
    }

    fn set_owned_metric(&self) {
        self.deps
            .metrics
            .owned_partitions
            .set(i64::try_from(self.owned.len()).unwrap_or(0));
    }

    /// Writes a batch partition by partition; answers each partition's new next offset.
    async fn records(&mut self, batch: Vec<GroupRecord>) -> Vec<(i32, i64)> {
        let mut by_partition: HashMap<i32, Vec<GroupRecord>> = HashMap::new();
        for record in batch {
            by_partition
                .entry(record.partition)
                .or_default()
                .push(record);
        }
        let mut progress = Vec::new();
        for (partition, records) in by_partition {
            let Some(owned) = self.owned.get(&partition) else {
                continue;
            };
            if owned.fenced {
                continue;
            }
            let next = owned.next;
            let fresh: Vec<GroupRecord> =
                records.into_iter().filter(|r| r.offset >= next).collect();
            let Some(last) = fresh.last().map(|r| r.offset) else {
                continue;
            };
            match self
                .write_with_retries(partition, owned.epoch, &fresh)
                .await
            {
                Ok(()) => {
                    if let Some(owned) = self.owned.get_mut(&partition) {
                        owned.next = last + 1;
                    }
                    self.deps
                        .metrics
                        .consumed
                        .with_label_values(&[&partition.to_string()])
                        .inc_by(fresh.len() as u64);
                    progress.push((partition, last + 1));
                }
                Err(ConsumeError::Commit(CommitError::Fenced(fenced))) => {
                    self.deps.metrics.fenced.inc();
                    tracing::warn!(%fenced, "a newer owner claimed the partition; skipping its records until revoked");
                    if let Some(owned) = self.owned.get_mut(&partition) {
                        owned.fenced = true;
                        owned.stop.cancel();
                    }
                }
                // Shutting down mid-batch: nothing of it was committed; the partition's
                // next owner reads it again.
                Err(_) => {
                    if let Some(owned) = self.owned.get_mut(&partition) {
                        owned.fenced = true;
                    }
                }
            }
        }
        progress
    }

    /// Writes a partition's records; MySQL or Redis failures are retried (the batch
    /// cannot be skipped) until it works, the partition is fenced, or shutdown.
    async fn write_with_retries(
        &self,
        partition: i32,
        epoch: i64,
        records: &[GroupRecord],
    ) -> Result<(), ConsumeError> {
        for chunk in records.chunks(WRITE_BATCH) {
            loop {
                match write_chunk(self.deps, partition, epoch, chunk, self.jobs, self.shutdown)
                    .await
                {
                    Ok(()) => break,
                    Err(
                        error @ (ConsumeError::Commit(CommitError::Fenced(_))
                        | ConsumeError::PoolClosed),
                    ) => {
                        return Err(error);
                    }
                    Err(error) => {
                        tracing::warn!(partition, %error, "writing orders failed; retrying");
                        tokio::select! {
                            () = self.shutdown.cancelled() => return Err(error),
                            () = tokio::time::sleep(RETRY_PAUSE) => {}
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Writes one chunk's new orders and the next offset in one transaction, then hands the
/// new orders to the payment pool.
async fn write_chunk(
    deps: &PaymentDeps,
    partition: i32,
    epoch: i64,
    chunk: &[GroupRecord],
    jobs: &mpsc::Sender<PaymentJob>,
    stop: &CancellationToken,
) -> Result<(), ConsumeError> {
    let next = chunk.last().map_or(0, |r| r.offset + 1);
    let events: Vec<OrderPlaced> = chunk
        .iter()
        .filter_map(|r| match decode_order_placed_parts(r.kind.as_deref(), r.value.as_deref()) {
            Ok(event) => Some(event),
            Err(error) => {
                // A record we cannot read would block the partition forever: skip it, loudly.
                tracing::error!(partition, offset = r.offset, %error, "skipping an unreadable order event");
                None
            }
        })
        .collect();
    let events = claim_orders(deps, events).await?;
    let rows: Vec<OrderRow> = events.iter().map(order_row).collect();
    let topic = &deps.group.topic;
    let timeout = deps.mysql.query_timeout();
    let write = async {
        let mut conn = deps.mysql.get().await?;
        conn.transaction::<_, CommitError, _>(async |conn| {
            let fresh = orders::insert_new(conn, &rows).await?;
            consumer_offsets::commit(conn, topic, partition, next, epoch).await?;
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
    Ok(())
}

/// Claims each event's order before it is written: from then on the api cannot give
/// its unit back. Events the api released first (their publication could not be
/// confirmed, the shopper heard 503) are dropped.
async fn claim_orders(
    deps: &PaymentDeps,
    events: Vec<OrderPlaced>,
) -> Result<Vec<OrderPlaced>, ConsumeError> {
    let orders: Vec<_> = events.iter().map(|e| (e.coupon_id, e.order_id)).collect();
    let claimed = deps.gate.claim_for_writing(&orders).await?;
    Ok(events
        .into_iter()
        .zip(claimed)
        .filter_map(|(event, claimed)| {
            if !claimed {
                tracing::info!(order.id = %event.order_id, "skipping an order whose unit was given back");
            }
            claimed.then_some(event)
        })
        .collect())
}

/// Every PENDING order of the partition's coupons: payments a previous owner accepted
/// but did not finish. Read in pages over the status index.
async fn pending_in_partition(
    deps: &PaymentDeps,
    partition: i32,
) -> Result<Vec<PaymentJob>, MysqlError> {
    let mut cursor: Option<orders::PendingCursor> = None;
    let mut jobs = Vec::new();
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
        let Some(last) = page.last() else {
            return Ok(jobs);
        };
        cursor = Some((last.created_at, last.id.clone()));
        for row in page {
            let (Some(order_id), Some(coupon_id), Ok(user_id)) = (
                OrderId::parse(&row.id),
                CouponId::new(row.coupon_id),
                UserId::parse(&row.user_id),
            ) else {
                tracing::error!(order.id = %row.id, "skipping an unreadable PENDING order");
                continue;
            };
            jobs.push(PaymentJob {
                order_id,
                user_id,
                coupon_id,
                price_cents: row.price_cents,
                idempotency_digest: None,
            });
        }
    }
}

/// How far back a new owner looks for failed payments whose unit a crash kept from
/// being given back (the settler marks an order FAILED, then releases its unit).
const RELEASE_LOOKBACK: chrono::Duration = chrono::Duration::hours(24);

/// Gives back the units of recent FAILED orders of the partition's coupons that a
/// crashed owner settled but did not release. Idempotent: a released order is skipped
/// by its claim.
async fn release_failed(deps: Arc<PaymentDeps>, partition: i32, stop: CancellationToken) {
    let mut cursor: orders::PendingCursor =
        ((Utc::now() - RELEASE_LOOKBACK).naive_utc(), String::new());
    let mut released = 0usize;
    loop {
        let page = deps
            .mysql
            .with_conn(async |conn| {
                orders::in_partition(
                    conn,
                    OrderStatus::Failed,
                    deps.partitions,
                    partition,
                    Some(&cursor),
                    RECOVERY_BATCH,
                )
                .await
            })
            .await;
        let page = match page {
            Ok(page) => page,
            Err(error) => {
                tracing::warn!(partition, %error, "could not look for unreleased failed payments");
                return;
            }
        };
        let Some(last) = page.last() else { break };
        cursor = (last.created_at, last.id.clone());
        for row in &page {
            if stop.is_cancelled() {
                return;
            }
            let (Some(order_id), Some(coupon), Ok(user)) = (
                OrderId::parse(&row.id),
                CouponId::new(row.coupon_id),
                UserId::parse(&row.user_id),
            ) else {
                continue;
            };
            loop {
                match deps
                    .gate
                    .release(coupon, &user, order_id, None, ReleaseReason::PaymentFailed)
                    .await
                {
                    Ok(Release::Released) => released += 1,
                    Ok(Release::AfterRebuild) => {
                        tokio::select! {
                            () = stop.cancelled() => return,
                            () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        }
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(partition, %error, "could not release a failed payment's unit");
                        return;
                    }
                }
                break;
            }
        }
    }
    if released > 0 {
        tracing::info!(
            partition,
            orders = released,
            "gave back units of failed payments a crash left held"
        );
    }
}

/// Hands resumed payments to the pool (a charge is idempotent on the order id, settling
/// is guarded: a payment also resumed elsewhere is harmless).
async fn resume(pending: Vec<PaymentJob>, jobs: mpsc::Sender<PaymentJob>, stop: CancellationToken) {
    for job in pending {
        if !matches!(send_job(&jobs, job, &stop).await, Ok(true)) {
            return;
        }
    }
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
