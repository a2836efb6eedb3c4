//! The partitions this instance owns and what it does with them. On assignment each
//! partition is claimed in MySQL (a new epoch fences every earlier owner, however late
//! its writes arrive) and starts at the offset committed there; PENDING orders a
//! previous owner left behind are resumed and units it failed to give back are
//! released. Records are written in batches, one transaction with the partition's next
//! offset per batch.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::PaymentDeps;
use super::consumer::WRITE_BATCH;
use super::pool::{self, PoolClosed};
use crate::adapters::kafka::codec::decode_order_placed_parts;
use crate::adapters::kafka::group::GroupRecord;
use crate::adapters::mysql::consumer_offsets::Claim;
use crate::app::payments::PaymentError;
use crate::domain::order::OrderPlaced;
use crate::domain::payment::PaymentJob;

/// Pause between attempts when MySQL or Redis fails under a batch.
pub(super) const RETRY_PAUSE: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error(transparent)]
    Payment(#[from] PaymentError),
    #[error(transparent)]
    PoolClosed(#[from] PoolClosed),
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

pub(super) struct Coordinator<'a> {
    deps: &'a Arc<PaymentDeps>,
    jobs: &'a mpsc::Sender<PaymentJob>,
    owned: HashMap<i32, Owned>,
    shutdown: &'a CancellationToken,
}

impl<'a> Coordinator<'a> {
    pub(super) fn new(
        deps: &'a Arc<PaymentDeps>,
        jobs: &'a mpsc::Sender<PaymentJob>,
        shutdown: &'a CancellationToken,
    ) -> Self {
        Self {
            deps,
            jobs,
            owned: HashMap::new(),
            shutdown,
        }
    }

    /// Claims each assigned partition and answers where each starts; a partition that
    /// cannot be claimed before shutdown is left out (not started).
    pub(super) async fn assigned(&mut self, partitions: &[i32]) -> HashMap<i32, i64> {
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
            // PENDING first, FAILED after: an order the previous owner settles meanwhile
            // is then in one of the two reads (resumed, or its unit given back).
            match self.deps.payments.pending_in_partition(partition).await {
                Ok(pending) if !pending.is_empty() => {
                    tracing::info!(
                        partition,
                        orders = pending.len(),
                        "resuming interrupted payments"
                    );
                    tokio::spawn(pool::resume(pending, self.jobs.clone(), stop.clone()));
                }
                Ok(_) => {}
                // The orders stay PENDING; the partition's next owner (or this instance
                // after a restart) resumes them.
                Err(error) => {
                    tracing::warn!(partition, %error, "could not read interrupted payments")
                }
            }
            tokio::spawn(release_failed(self.deps.clone(), partition, stop.clone()));
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

    async fn claim(&self, partition: i32) -> Option<Claim> {
        loop {
            match self.deps.payments.claim_partition(partition).await {
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

    pub(super) fn revoked(&mut self, partitions: &[i32]) {
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
    pub(super) async fn records(&mut self, batch: Vec<GroupRecord>) -> Vec<(i32, i64)> {
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
                Err(WriteError::Payment(fenced)) if fenced.is_fenced() => {
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
    ) -> Result<(), WriteError> {
        for chunk in records.chunks(WRITE_BATCH) {
            loop {
                match self.write_chunk(partition, epoch, chunk).await {
                    Ok(()) => break,
                    Err(error @ WriteError::PoolClosed(_)) => return Err(error),
                    Err(WriteError::Payment(error)) if error.is_fenced() => {
                        return Err(WriteError::Payment(error));
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

    /// Records one chunk's new orders with the partition's next offset, then hands the
    /// new orders to the payment pool.
    async fn write_chunk(
        &self,
        partition: i32,
        epoch: i64,
        chunk: &[GroupRecord],
    ) -> Result<(), WriteError> {
        let next = chunk.last().map_or(0, |r| r.offset + 1);
        let events: Vec<OrderPlaced> = chunk
            .iter()
            .filter_map(|r| {
                let decoded = decode_order_placed_parts(
                    r.kind.as_deref(),
                    r.signature.as_deref(),
                    r.value.as_deref(),
                    &self.deps.signer,
                );
                match decoded {
                    Ok(event) => Some(event),
                    Err(error) => {
                        // A record we cannot read (or must not trust) would block the
                        // partition forever: skip it, loudly, and never charge it.
                        tracing::error!(partition, offset = r.offset, %error, "skipping an order event");
                        self.deps
                            .metrics
                            .skipped
                            .with_label_values(&[error.reason()])
                            .inc();
                        None
                    }
                }
            })
            .collect();
        let recorded = self
            .deps
            .payments
            .record(partition, epoch, next, events)
            .await?;
        self.deps
            .metrics
            .written
            .with_label_values(&[&partition.to_string()])
            .inc_by(recorded.fresh.len() as u64);
        for job in recorded.fresh {
            // Stopped while the pool is full: the rest are PENDING rows that the
            // partition's next owner resumes.
            if !pool::send(self.jobs, job, self.shutdown).await? {
                break;
            }
        }
        Ok(())
    }
}

/// Gives back units a crashed owner kept held (see [`crate::app::payments::Payments::release_failed`]),
/// retrying outages until done or the partition is given up: a unit not given back here
/// stays held for good, since nothing else looks for it. Corrupt data is reported, not
/// retried.
async fn release_failed(deps: Arc<PaymentDeps>, partition: i32, stop: CancellationToken) {
    let mut backoff = Duration::from_millis(200);
    loop {
        match deps.payments.release_failed(partition, &stop).await {
            Ok(0) => return,
            Ok(released) => {
                tracing::info!(
                    partition,
                    orders = released,
                    "gave back units of failed payments a crash left held"
                );
                return;
            }
            Err(error) if error.is_corrupt() => {
                tracing::error!(partition, %error, "could not look for unreleased failed payments: corrupt data");
                return;
            }
            Err(error) => {
                tracing::warn!(partition, %error, "could not look for unreleased failed payments; retrying")
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
