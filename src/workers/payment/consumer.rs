//! The consumer: one member of the payment instances' consumer group.
//!
//! Events arrive in order from [`GroupMember`]: assignments, records, revocations.
//! Records are gathered into batches (librdkafka hands them over one by one) and passed
//! to the [`Coordinator`] with everything else. A revocation is answered only after
//! every record before it was handled, so a partition's new owner never races this one.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::PaymentDeps;
use super::coordinator::{Coordinator, RETRY_PAUSE};
use crate::adapters::kafka::group::{GroupEvent, GroupMember};
use crate::domain::payment::PaymentJob;

/// Records handed to the coordinator at once.
pub(super) const WRITE_BATCH: usize = 1_000;

/// Longest wait for more records before a batch is written.
const BATCH_LINGER: Duration = Duration::from_millis(10);

/// Runs until shutdown: joins the group, handles its events, leaves cleanly.
pub(super) async fn run(
    deps: Arc<PaymentDeps>,
    jobs: mpsc::Sender<PaymentJob>,
    shutdown: CancellationToken,
) {
    let Some(mut member) = join(&deps, &shutdown).await else {
        return;
    };
    let mut coordinator = Coordinator::new(&deps, &jobs, &shutdown);
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
                let starts = coordinator.assigned(&partitions).await;
                let _ = start_at.send(starts);
            }
            GroupEvent::Revoked { partitions, done } => {
                coordinator.revoked(&partitions);
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
                for (partition, next) in coordinator.records(batch).await {
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
