//! Settling charged orders: PENDING → PAID | FAILED in batches (one transaction per
//! batch, guarded in SQL so a replay cannot move an order backwards), FAILED orders'
//! units given back in Redis exactly once, and the shoppers told.

use std::time::Duration;

use diesel_async::AsyncConnection;
use tokio::sync::mpsc;

use super::{PaymentDeps, PaymentJob};
use crate::adapters::mysql::MysqlError;
use crate::adapters::mysql::orders;
use crate::adapters::redis::stock_gate::{Release, ReleaseReason};
use crate::domain::order::OrderStatus;
use crate::domain::payment::PaymentOutcome;
use std::sync::Arc;

/// Largest batch settled in one transaction.
const SETTLE_BATCH: usize = 1_000;

pub(super) async fn settler(
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
    // Long enough to outlast a sale-state rebuild (its mark lives 15 s at most).
    for attempt in 1..=60 {
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
                ReleaseReason::PaymentFailed,
            )
        });
    for released in futures_util::future::join_all(releases).await {
        if released.map_err(|e| e.to_string())? == Release::AfterRebuild {
            // Settled in MySQL already; the retry only redoes the release.
            return Err("the sale state is being rebuilt; releasing after it".to_owned());
        }
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
