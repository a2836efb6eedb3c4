//! The worker pool: a fixed number of workers charge orders through the gateway. Jobs
//! wait in a bounded queue; a full queue makes the sender wait (backpressure).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;

use super::PaymentDeps;
use crate::domain::payment::{PaymentJob, PaymentOutcome};
use crate::shutdown::Shutdown;

/// The pool's queue is closed: the role is stopping.
#[derive(Debug, thiserror::Error)]
#[error("worker pool stopped")]
pub struct PoolClosed;

pub(super) fn start(
    deps: Arc<PaymentDeps>,
    queue: mpsc::Receiver<PaymentJob>,
    charged: mpsc::Sender<(PaymentJob, PaymentOutcome)>,
    shutdown: &Shutdown,
) {
    let queue = Arc::new(Mutex::new(queue));
    let busy = Arc::new(AtomicUsize::new(0));
    for _ in 0..deps.pool_size.max(1) {
        shutdown.spawn(worker(
            deps.clone(),
            queue.clone(),
            busy.clone(),
            charged.clone(),
        ));
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

/// Hands a job to the pool, waiting while the queue is full, but never past `stop`:
/// false when stopped first (the job stays PENDING for the partition's next owner).
pub(super) async fn send(
    jobs: &mpsc::Sender<PaymentJob>,
    job: PaymentJob,
    stop: &CancellationToken,
) -> Result<bool, PoolClosed> {
    tokio::select! {
        () = stop.cancelled() => Ok(false),
        sent = jobs.send(job) => sent.map(|()| true).map_err(|_| PoolClosed),
    }
}

/// Hands resumed payments to the pool (a charge is idempotent on the order id, settling
/// is guarded: a payment also resumed elsewhere is harmless).
pub(super) async fn resume(
    pending: Vec<PaymentJob>,
    jobs: mpsc::Sender<PaymentJob>,
    stop: CancellationToken,
) {
    for job in pending {
        if !matches!(send(&jobs, job, &stop).await, Ok(true)) {
            return;
        }
    }
}
