//! The payment role's use cases: recording consumed orders (claimed in Redis, written
//! with the partition's offset in one MySQL transaction fenced by the owner's epoch),
//! finding payments a previous owner left unfinished, and settling charged orders
//! (PENDING → PAID | FAILED, a FAILED order's unit given back once, the shopper told).

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use diesel_async::AsyncConnection;
use tokio_util::sync::CancellationToken;

use crate::adapters::mysql::consumer_offsets::{self, Claim, CommitError};
use crate::adapters::mysql::orders::{self, OrderRow, PendingCursor};
use crate::adapters::mysql::{MysqlError, MysqlPool};
use crate::adapters::redis::RedisError;
use crate::adapters::redis::notifier::PaymentNotifier;
use crate::adapters::redis::stock_gate::{Release, ReleaseReason, StockGate};
use crate::domain::coupon::CouponId;
use crate::domain::identity::UserId;
use crate::domain::order::{OrderId, OrderPlaced, OrderStatus};
use crate::domain::payment::{PaymentJob, PaymentOutcome};

/// Orders read per query when a partition is taken over.
const RECOVERY_BATCH: i64 = 1_000;

/// How far back a new owner looks for failed payments whose unit a crash kept from
/// being given back (settling marks an order FAILED, then releases its unit).
const RELEASE_LOOKBACK: chrono::Duration = chrono::Duration::hours(24);

#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    #[error(transparent)]
    Mysql(#[from] MysqlError),
    /// Another instance claimed the partition since: this owner must stop writing.
    #[error(transparent)]
    Commit(#[from] CommitError),
    #[error(transparent)]
    Redis(#[from] RedisError),
    #[error("the sale state is being rebuilt; releasing after it")]
    Rebuilding,
}

impl PaymentError {
    pub fn is_fenced(&self) -> bool {
        matches!(self, Self::Commit(CommitError::Fenced(_)))
    }

    /// Data that breaks what the code relies on, as opposed to an outage that passes:
    /// retrying cannot mend it.
    pub fn is_corrupt(&self) -> bool {
        match self {
            Self::Mysql(e) => e.is_corrupt(),
            Self::Redis(e) => e.is_corrupt(),
            Self::Commit(_) | Self::Rebuilding => false,
        }
    }
}

/// Orders written by one [`Payments::record`].
pub struct Recorded {
    /// Orders new to MySQL: their payments are to run.
    pub fresh: Vec<PaymentJob>,
}

pub struct Payments {
    mysql: MysqlPool,
    gate: StockGate,
    notifier: PaymentNotifier,
    topic: String,
    partitions: i32,
}

impl Payments {
    pub fn new(
        mysql: MysqlPool,
        gate: StockGate,
        notifier: PaymentNotifier,
        topic: String,
        partitions: i32,
    ) -> Self {
        Self {
            mysql,
            gate,
            notifier,
            topic,
            partitions,
        }
    }

    /// Takes a partition over: a new epoch fences every earlier owner; answers where
    /// this owner starts reading.
    pub async fn claim_partition(&self, partition: i32) -> Result<Claim, MysqlError> {
        let topic = &self.topic;
        self.mysql
            .with_conn(async |conn| consumer_offsets::claim(conn, topic, partition).await)
            .await
    }

    /// Claims each event's order (from then on the api cannot give its unit back; an
    /// order the api already released is dropped), then writes the new orders as
    /// PENDING and `next_offset` as the partition's progress in one transaction.
    pub async fn record(
        &self,
        partition: i32,
        epoch: i64,
        next_offset: i64,
        events: Vec<OrderPlaced>,
    ) -> Result<Recorded, PaymentError> {
        let events = self.claim(events).await?;
        let rows: Vec<OrderRow> = events.iter().map(order_row).collect();
        let topic = &self.topic;
        let write = async {
            let mut conn = self.mysql.get().await?;
            conn.transaction::<_, CommitError, _>(async |conn| {
                let fresh = orders::insert_new(conn, &rows).await?;
                consumer_offsets::commit(conn, topic, partition, next_offset, epoch).await?;
                Ok(fresh)
            })
            .await
        };
        let fresh: HashSet<String> = self.mysql.bounded(write).await?.into_iter().collect();
        Ok(Recorded {
            fresh: events
                .iter()
                .filter(|e| fresh.contains(&e.order_id.to_string()))
                .map(PaymentJob::from)
                .collect(),
        })
    }

    async fn claim(&self, events: Vec<OrderPlaced>) -> Result<Vec<OrderPlaced>, RedisError> {
        let orders: Vec<_> = events.iter().map(|e| (e.coupon_id, e.order_id)).collect();
        let claimed = self.gate.claim_for_writing(&orders).await?;
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

    /// Every PENDING order of the partition's coupons: payments a previous owner
    /// accepted but did not finish. Read in pages over the status index.
    pub async fn pending_in_partition(
        &self,
        partition: i32,
    ) -> Result<Vec<PaymentJob>, MysqlError> {
        let mut cursor: Option<PendingCursor> = None;
        let mut jobs = Vec::new();
        loop {
            let page = self
                .mysql
                .with_conn(async |conn| {
                    orders::pending_in_partition(
                        conn,
                        self.partitions,
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
                let Some((order_id, coupon_id, user_id)) = parse_row(&row) else {
                    tracing::error!(order.id = %row.id, "skipping an unreadable PENDING order");
                    continue;
                };
                jobs.push(PaymentJob {
                    order_id,
                    user_id,
                    coupon_id,
                    price_cents: row.price_cents,
                    idempotency_digest: None,
                    request_id: None,
                });
            }
        }
    }

    /// Gives back the units of recent FAILED orders of the partition's coupons that a
    /// crashed owner settled but did not release; answers how many. Idempotent: a
    /// released order is skipped by its claim.
    pub async fn release_failed(
        &self,
        partition: i32,
        stop: &CancellationToken,
    ) -> Result<usize, PaymentError> {
        let mut cursor: PendingCursor =
            ((Utc::now() - RELEASE_LOOKBACK).naive_utc(), String::new());
        let mut released = 0usize;
        loop {
            let page = self
                .mysql
                .with_conn(async |conn| {
                    orders::in_partition(
                        conn,
                        OrderStatus::Failed,
                        self.partitions,
                        partition,
                        Some(&cursor),
                        RECOVERY_BATCH,
                    )
                    .await
                })
                .await?;
            let Some(last) = page.last() else {
                return Ok(released);
            };
            cursor = (last.created_at, last.id.clone());
            for (order_id, coupon, user) in page.iter().filter_map(parse_row) {
                loop {
                    if stop.is_cancelled() {
                        return Ok(released);
                    }
                    let outcome = match self
                        .gate
                        .release(coupon, &user, order_id, None, ReleaseReason::PaymentFailed)
                        .await
                    {
                        Ok(outcome) => outcome,
                        // One order's bad data must not keep the others' units held.
                        Err(error) if error.is_corrupt() => {
                            tracing::error!(order.id = %order_id, %error, "cannot give back the unit of a failed payment: corrupt data");
                            break;
                        }
                        Err(error) => return Err(error.into()),
                    };
                    match outcome {
                        Release::Released => released += 1,
                        // Waits out a sale-state rebuild, then gives the unit back.
                        Release::AfterRebuild => {
                            tokio::select! {
                                () = stop.cancelled() => return Ok(released),
                                () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                            }
                        }
                        Release::AlreadyReleased | Release::Consumed | Release::Rebuilt => {}
                    }
                    break;
                }
            }
        }
    }

    /// Settles charged orders in one transaction (only orders still PENDING move, so a
    /// replay cannot undo a result), gives back the units of declined ones (once per
    /// order) and tells the shoppers. Answers the orders this call moved.
    pub async fn settle(
        &self,
        batch: &[(PaymentJob, PaymentOutcome)],
    ) -> Result<Vec<OrderStatus>, PaymentError> {
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
        let write = async {
            let mut conn = self.mysql.get().await?;
            conn.transaction::<_, MysqlError, _>(async |conn| {
                let pending: HashSet<String> = orders::lock_pending(conn, &all)
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
        let changed = self.mysql.bounded(write).await?;

        // Idempotent (a per-order marker): safe for orders a previous attempt already
        // settled but could not release, and a no-op on any replay.
        let releases = batch
            .iter()
            .filter(|(_, outcome)| *outcome == PaymentOutcome::Declined)
            .map(|(job, _)| {
                self.gate.release(
                    job.coupon_id,
                    &job.user_id,
                    job.order_id,
                    job.idempotency_digest.as_deref(),
                    ReleaseReason::PaymentFailed,
                )
            });
        for released in futures_util::future::join_all(releases).await {
            if released? == Release::AfterRebuild {
                // Settled in MySQL already; the retry only redoes the release.
                return Err(PaymentError::Rebuilding);
            }
        }

        let settled: Vec<&(PaymentJob, PaymentOutcome)> = batch
            .iter()
            .filter(|(job, _)| changed.contains(&job.order_id.to_string()))
            .collect();
        // Pub/sub is best effort: the order is readable through the API.
        let pushes = settled.iter().map(|(job, outcome)| {
            // One line per order at debug level: enough to follow a purchase end to end
            // without a line per order at the production level.
            tracing::debug!(
                order.id = %job.order_id,
                request_id = job.request_id.as_deref().unwrap_or("-"),
                status = outcome.order_status().as_str(),
                "order settled"
            );
            self.notifier.notify(
                &job.user_id,
                job.order_id,
                outcome.order_status(),
                job.request_id.as_deref(),
            )
        });
        for pushed in futures_util::future::join_all(pushes).await {
            if let Err(error) = pushed {
                tracing::debug!(%error, "payment result not pushed");
            }
        }
        Ok(settled
            .iter()
            .map(|(_, outcome)| outcome.order_status())
            .collect())
    }
}

fn parse_row(row: &OrderRow) -> Option<(OrderId, CouponId, UserId)> {
    Some((
        OrderId::parse(&row.id)?,
        CouponId::new(row.coupon_id)?,
        UserId::parse(&row.user_id).ok()?,
    ))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_corrupt_data_is_not_worth_a_retry() {
        let corrupt = [
            PaymentError::Redis(RedisError::Corrupt("a claim of 'X'".into())),
            PaymentError::Mysql(MysqlError::Corrupt("a negative price".into())),
        ];
        let passing = [
            PaymentError::Redis(RedisError::Timeout(Duration::from_secs(1))),
            PaymentError::Mysql(MysqlError::Unavailable("refused".into())),
            PaymentError::Rebuilding,
        ];
        assert!(corrupt.iter().all(PaymentError::is_corrupt));
        assert!(!passing.iter().any(PaymentError::is_corrupt));
    }
}
