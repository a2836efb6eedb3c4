//! Rebuilds a coupon's Redis sale state after a Redis loss, from the records of truth:
//!
//! - units sold = orders in MySQL that did not fail, plus `OrderPlaced` events on the
//!   coupon's partition that the payment role has not consumed yet (after its committed
//!   offset) and that are not in MySQL, nor given back by the api;
//! - stock = total − units sold; buyer records = the same, per user.
//!
//! Run it while the coupon's purchases are failing on missing state (they answer 503
//! until then), so no purchase races it. Events still being published at that very
//! moment are the one gap: run it again after a few seconds if in doubt — it is
//! idempotent.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::adapters::kafka::Kafka;
use crate::adapters::kafka::codec::{decode_order_placed, partition_for};
use crate::adapters::kafka::consumer::PartitionReader;
use crate::adapters::mysql::{MysqlPool, consumer_offsets, coupons, orders};
use crate::adapters::redis::stock_gate::StockGate;
use crate::domain::coupon::CouponId;
use crate::domain::identity::UserId;

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("coupon {0} not found")]
    NotFound(CouponId),
    #[error("reconcile failed: {0}")]
    Unavailable(String),
}

fn unavailable(e: impl std::fmt::Display) -> ReconcileError {
    ReconcileError::Unavailable(e.to_string())
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
}

impl Reconciler {
    pub async fn reconcile(&self, coupon_id: CouponId) -> Result<ReconcileReport, ReconcileError> {
        let coupon = self
            .mysql
            .with_conn(async |conn| coupons::find(conn, coupon_id).await)
            .await
            .map_err(unavailable)?
            .ok_or(ReconcileError::NotFound(coupon_id))?;
        let partition = partition_for(coupon_id, self.partitions);

        let (stored, committed) = self
            .mysql
            .with_conn(async |conn| {
                let stored = orders::live_units_by_user(conn, coupon_id).await?;
                let committed = consumer_offsets::get(conn, &self.topic, partition).await?;
                Ok((stored, committed))
            })
            .await
            .map_err(unavailable)?;

        let reader = PartitionReader::new(&self.kafka, &self.topic, partition)
            .await
            .map_err(unavailable)?;
        let records = reader
            .read_to_end(committed.unwrap_or(0))
            .await
            .map_err(unavailable)?;
        let in_flight: Vec<_> = records
            .iter()
            .filter_map(|r| decode_order_placed(&r.record).ok())
            .filter(|event| event.coupon_id == coupon_id)
            .collect();
        let ids: Vec<String> = in_flight.iter().map(|e| e.order_id.to_string()).collect();
        let already_stored = self
            .mysql
            .with_conn(async |conn| orders::existing_ids(conn, &ids).await)
            .await
            .map_err(unavailable)?;
        // Events the api gave the unit back for (publication unconfirmed) never become
        // orders.
        let event_orders: Vec<_> = in_flight.iter().map(|e| e.order_id).collect();
        let released: std::collections::HashSet<String> = self
            .gate
            .released_among(coupon_id, &event_orders)
            .await
            .map_err(unavailable)?
            .iter()
            .map(ToString::to_string)
            .collect();

        let mut per_user: BTreeMap<String, i64> = BTreeMap::new();
        let mut units_in_mysql = 0;
        for (user, units) in stored {
            units_in_mysql += units;
            *per_user.entry(user).or_default() += units;
        }
        let mut units_in_flight = 0;
        for event in in_flight {
            let id = event.order_id.to_string();
            if already_stored.contains(&id) || released.contains(&id) {
                continue;
            }
            units_in_flight += 1;
            *per_user
                .entry(event.user_id.as_str().to_owned())
                .or_default() += 1;
        }
        let stock = (coupon.total_quantity - units_in_mysql - units_in_flight).max(0);
        let buyers: Vec<(UserId, i64)> = per_user
            .into_iter()
            .filter_map(|(user, units)| UserId::parse(&user).ok().map(|u| (u, units)))
            .collect();
        let previous_stock = self
            .gate
            .reconcile(&coupon, stock, &buyers)
            .await
            .map_err(unavailable)?;
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
