//! The settler: collects charged orders into batches and settles each batch (one
//! transaction), retrying failures; the charges are idempotent on the order id and
//! settling is guarded, so a retry never moves an order twice.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::PaymentDeps;
use crate::domain::payment::{PaymentJob, PaymentOutcome};

/// Largest batch settled in one transaction.
const SETTLE_BATCH: usize = 1_000;

pub(super) async fn run(
    deps: Arc<PaymentDeps>,
    mut results: mpsc::Receiver<(PaymentJob, PaymentOutcome)>,
) {
    let mut batch = Vec::with_capacity(SETTLE_BATCH);
    while results.recv_many(&mut batch, SETTLE_BATCH).await > 0 {
        settle_with_retries(&deps, &batch).await;
        batch.clear();
    }
}

/// Settles a batch, retrying outages of MySQL or Redis with a capped backoff until it is
/// done: a declined order settled in MySQL whose unit is not given back yet would hold
/// that unit until the partition's next owner looks for it. After a few minutes the
/// retries go on in the background, so that one stuck batch (a rebuild that does not
/// end, say) does not hold up every later one. A shutdown that cannot wait leaves the
/// same state as a crash, which the next owner repairs. Corrupt data is not retried.
async fn settle_with_retries(deps: &Arc<PaymentDeps>, batch: &[(PaymentJob, PaymentOutcome)]) {
    let first_backoff = Duration::from_millis(50);
    if settle_until_done(deps, batch, 1..=IN_LINE_ATTEMPTS, first_backoff).await {
        return;
    }
    tracing::warn!(
        orders = batch.len(),
        "a batch still cannot be settled; retrying it in the background"
    );
    let (deps, batch) = (deps.clone(), batch.to_vec());
    tokio::spawn(async move {
        settle_until_done(&deps, &batch, IN_LINE_ATTEMPTS + 1.., MAX_BACKOFF).await;
    });
}

/// Attempts `attempts`, doubling the pause between them up to [`MAX_BACKOFF`]; true once
/// no further attempt is worth making (settled, or corrupt data), false when they ran out.
async fn settle_until_done(
    deps: &PaymentDeps,
    batch: &[(PaymentJob, PaymentOutcome)],
    attempts: impl Iterator<Item = u64>,
    mut backoff: Duration,
) -> bool {
    for attempt in attempts {
        if !settle_once(deps, batch, attempt).await {
            return true;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    false
}

/// Attempts made before the settler moves on to the next batch (about five minutes).
const IN_LINE_ATTEMPTS: u64 = 64;
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// One attempt; true when it failed and another is worth making.
async fn settle_once(
    deps: &PaymentDeps,
    batch: &[(PaymentJob, PaymentOutcome)],
    attempt: u64,
) -> bool {
    match deps.payments.settle(batch).await {
        Ok(settled) => {
            for status in settled {
                deps.metrics
                    .settled
                    .with_label_values(&[status.as_str()])
                    .inc();
            }
            false
        }
        Err(error) if error.is_corrupt() => {
            tracing::error!(orders = batch.len(), %error, "settling a batch failed on corrupt data; its orders stay PENDING, or FAILED with their units held, unless the partition's next owner can repair them");
            false
        }
        Err(error) => {
            tracing::warn!(orders = batch.len(), attempt, %error, "settling failed; retrying");
            true
        }
    }
}
