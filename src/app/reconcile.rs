//! Rebuilds a coupon's Redis sale state after a Redis loss, from the records of truth:
//!
//! - units sold = orders in MySQL that did not fail (and failed ones whose unit is not
//!   given back yet: their release waits for the rebuild), plus `OrderPlaced` events on the
//!   coupon's partition that the payment role has not consumed yet (after its committed
//!   offset) and that are not in MySQL, nor given back by the api;
//! - stock = total − units sold; buyer records = the same, per user.
//!
//! Safe under live traffic and idempotent: it first takes the coupon's rebuild mark in
//! Redis (one rebuild per coupon at a time, kept alive by a watchdog), so purchases of
//! the coupon answer 503 with Retry-After meanwhile; then it waits until every purchase
//! decided before the mark has been published or given back (the publish bound), reads
//! the records of truth, and swaps the state in atomically, only if the mark is still
//! its own. The api starts it by itself when a sale's state is missing.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::adapters::kafka::Kafka;
use crate::adapters::kafka::codec::{decode_order_placed, partition_for};
use crate::adapters::kafka::consumer::PartitionReader;
use crate::adapters::mysql::{MysqlPool, consumer_offsets, coupons, orders};
use crate::adapters::redis::stock_gate::{InFlightOrder, RebuiltSale, StockGate};
use crate::domain::coupon::CouponId;
use crate::domain::failure::Failure;
use crate::domain::identity::UserId;

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("coupon {0} not found")]
    NotFound(CouponId),
    #[error("coupon {0} is being rebuilt by another reconcile; try again shortly")]
    Busy(CouponId),
    #[error("reconcile failed")]
    Unavailable(#[source] Failure),
}

fn unavailable(e: impl Into<Failure>) -> ReconcileError {
    ReconcileError::Unavailable(e.into())
}

/// What the reconciler found and changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReconcileReport {
    pub coupon_id: CouponId,
    /// Stock in Redis before (None: it was gone).
    pub previous_stock: Option<i64>,
    pub stock: i64,
    pub units_in_mysql: i64,
    pub units_in_flight: i64,
    pub buyers: usize,
}

pub struct Reconciler {
    pub mysql: MysqlPool,
    pub kafka: Kafka,
    pub gate: StockGate,
    pub topic: String,
    pub partitions: i32,
    /// The longest a purchase decided in Redis can take to be published or given back
    /// (the publish timeout and some margin): waited out after taking the mark.
    pub settle: Duration,
}

/// The rebuild mark's lifetime; the watchdog renews it while the rebuild runs, so a
/// crashed rebuild blocks the coupon's purchases for this long at most.
const MARK_TTL: Duration = Duration::from_secs(15);

impl Reconciler {
    /// Rebuilds the coupon's sale state (see the module notes).
    pub async fn reconcile(&self, coupon_id: CouponId) -> Result<ReconcileReport, ReconcileError> {
        let token = uuid::Uuid::new_v4().to_string();
        if !self
            .gate
            .begin_rebuild(coupon_id, &token, MARK_TTL)
            .await
            .map_err(unavailable)?
        {
            return Err(ReconcileError::Busy(coupon_id));
        }
        let watchdog = tokio::spawn({
            let (gate, token) = (self.gate.clone(), token.clone());
            async move {
                loop {
                    tokio::time::sleep(MARK_TTL / 3).await;
                    match gate.keep_rebuild(coupon_id, &token, Some(MARK_TTL)).await {
                        Ok(true) => {}
                        Ok(false) => return,
                        Err(error) => {
                            tracing::warn!(coupon.id = %coupon_id, %error, "could not renew the rebuild mark")
                        }
                    }
                }
            }
        });
        let rebuilt = self.rebuild(coupon_id, &token).await;
        watchdog.abort();
        if rebuilt.is_err()
            && let Err(error) = self.gate.keep_rebuild(coupon_id, &token, None).await
        {
            tracing::warn!(coupon.id = %coupon_id, %error, "could not clear the rebuild mark; it lapses by itself");
        }
        rebuilt
    }

    async fn rebuild(
        &self,
        coupon_id: CouponId,
        token: &str,
    ) -> Result<ReconcileReport, ReconcileError> {
        // Purchases decided just before the mark finish publishing (or give their unit
        // back) within this bound; after it, the log and the claims are complete.
        tokio::time::sleep(self.settle).await;
        let coupon = self
            .mysql
            .with_conn(async |conn| coupons::find(conn, coupon_id).await)
            .await
            .map_err(unavailable)?
            .ok_or(ReconcileError::NotFound(coupon_id))?;
        let partition = partition_for(coupon_id, self.partitions);

        // The committed offset first, the orders after it: the payment role writes orders
        // and moves the offset in one transaction, so the log read from this offset
        // overlaps the orders read later rather than leaving a gap between them.
        let committed = self
            .mysql
            .with_conn(async |conn| consumer_offsets::get(conn, &self.topic, partition).await)
            .await
            .map_err(unavailable)?;
        let reader = PartitionReader::new(&self.kafka, &self.topic, partition)
            .await
            .map_err(unavailable)?;
        let records = reader
            .read_to_end(committed.unwrap_or(0))
            .await
            .map_err(unavailable)?;
        // An order may be on the log more than once (a replay re-publishes an order not
        // yet written; a produce retried after a lost answer): count each order once.
        let mut seen = std::collections::HashSet::new();
        let in_flight: Vec<_> = records
            .iter()
            // Unsigned or forged events hold no unit: the payment role never charges them.
            .filter_map(|r| decode_order_placed(&r.record, self.kafka.signer()).ok())
            .filter(|event| event.coupon_id == coupon_id && seen.insert(event.order_id))
            .collect();
        let ids: Vec<String> = in_flight.iter().map(|e| e.order_id.to_string()).collect();
        let stored = self
            .mysql
            .with_conn(async |conn| orders::snapshot_of_coupon(conn, coupon_id, &ids).await)
            .await
            .map_err(unavailable)?;
        // Events the api gave the unit back for (publication unconfirmed) never become
        // orders.
        let released: std::collections::HashSet<String> = ids
            .iter()
            .zip(
                self.gate
                    .claims(coupon_id, &ids)
                    .await
                    .map_err(unavailable)?,
            )
            .filter(|(_, claim)| claim.as_deref() == Some("R"))
            .map(|(id, _)| id.clone())
            .collect();
        // A FAILED order whose unit has not been given back yet (its release waits for
        // this rebuild) still holds it: the release gives it back to the rebuilt stock.
        let failed_ids: Vec<String> = stored.failed.iter().map(|(id, _)| id.clone()).collect();
        let releasing: Vec<String> = stored
            .failed
            .into_iter()
            .zip(
                self.gate
                    .claims(coupon_id, &failed_ids)
                    .await
                    .map_err(unavailable)?,
            )
            .filter(|(_, claim)| claim.as_deref() != Some("F"))
            .map(|((_, user), _)| user)
            .collect();

        let mut per_user: BTreeMap<String, i64> = BTreeMap::new();
        let mut units_in_mysql = 0;
        for (user, units) in stored.live {
            units_in_mysql += units;
            *per_user.entry(user).or_default() += units;
        }
        for user in releasing {
            units_in_mysql += 1;
            *per_user.entry(user).or_default() += 1;
        }
        let counted: Vec<_> = in_flight
            .iter()
            .filter(|event| {
                let id = event.order_id.to_string();
                !stored.existing.contains(&id) && !released.contains(&id)
            })
            .collect();
        let units_in_flight = i64::try_from(counted.len()).unwrap_or(i64::MAX);
        for event in &counted {
            *per_user
                .entry(event.user_id.as_str().to_owned())
                .or_default() += 1;
        }
        let stock = (coupon.total_quantity - units_in_mysql - units_in_flight).max(0);
        let buyers: Vec<(UserId, i64)> = per_user
            .into_iter()
            .filter_map(|(user, units)| UserId::parse(&user).ok().map(|u| (u, units)))
            .collect();
        let records: Vec<InFlightOrder<'_>> = counted
            .iter()
            .filter_map(|event| {
                Some(InFlightOrder {
                    order_id: event.order_id,
                    user: &event.user_id,
                    idempotency_digest: event.idempotency_digest.as_deref()?,
                })
            })
            .collect();
        let rebuilt = RebuiltSale {
            stock,
            buyers: &buyers,
            in_flight: &records,
        };
        let previous_stock = self
            .gate
            .reconcile(&coupon, token, &rebuilt)
            .await
            .map_err(unavailable)?
            .map_err(|fenced| unavailable(Failure::unavailable(fenced)))?;
        let report = ReconcileReport {
            coupon_id,
            previous_stock,
            stock,
            units_in_mysql,
            units_in_flight,
            buyers: buyers.len(),
        };
        tracing::info!(coupon.id = %coupon_id, ?report, "reconciled sale state");
        Ok(report)
    }
}

/// Automatic rebuilds: at most one running per coupon in this process (and one across
/// processes, by the rebuild mark).
pub struct SaleRebuilds {
    reconciler: std::sync::Arc<Reconciler>,
    running: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<CouponId>>>,
}

impl SaleRebuilds {
    pub fn new(reconciler: Reconciler) -> Self {
        Self {
            reconciler: std::sync::Arc::new(reconciler),
            running: std::sync::Arc::default(),
        }
    }

    /// Starts rebuilding the coupon's sale state in the background unless this process
    /// is already at it.
    pub fn start(&self, coupon_id: CouponId) {
        let Ok(mut running) = self.running.lock() else {
            return;
        };
        if !running.insert(coupon_id) {
            return;
        }
        let (reconciler, running) = (self.reconciler.clone(), self.running.clone());
        tokio::spawn(async move {
            match reconciler.reconcile(coupon_id).await {
                Ok(_) | Err(ReconcileError::Busy(_)) => {}
                Err(error) => {
                    tracing::error!(coupon.id = %coupon_id, %error, "automatic rebuild of a lost sale state failed; the next purchase retries it");
                }
            }
            if let Ok(mut running) = running.lock() {
                running.remove(&coupon_id);
            }
        });
    }
}
