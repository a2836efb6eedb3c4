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
/// that unit until the partition's next owner looks for it. A shutdown that cannot wait
/// leaves the same state as a crash, which that owner repairs. Corrupt data is not
/// retried: it would stop every later batch.
async fn settle_with_retries(deps: &PaymentDeps, batch: &[(PaymentJob, PaymentOutcome)]) {
    let mut backoff = Duration::from_millis(50);
    for attempt in 1u64.. {
        match deps.payments.settle(batch).await {
            Ok(settled) => {
                for status in settled {
                    deps.metrics
                        .settled
                        .with_label_values(&[status.as_str()])
                        .inc();
                }
                return;
            }
            Err(error) if error.is_corrupt() => {
                tracing::error!(orders = batch.len(), %error, "settling a batch failed on corrupt data; its orders stay PENDING, or FAILED with their units held, until their partition's next owner looks at them");
                return;
            }
            Err(error) => {
                tracing::warn!(orders = batch.len(), attempt, %error, "settling failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}
