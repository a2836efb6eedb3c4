//! The drift audit on a timer (api role): every interval, each live sale is checked in
//! Redis (`app::audit`) and the result exported as metrics; a drifted or missing sale is
//! logged with the command that repairs it.

use std::sync::Arc;
use std::time::Duration;

use prometheus::{IntGauge, IntGaugeVec, Opts};
use tokio_util::sync::CancellationToken;

use crate::adapters::mysql::MysqlPool;
use crate::adapters::redis::stock_gate::StockGate;
use crate::app::audit::{audit_live, pending_orders};
use crate::app::reconcile::SaleRebuilds;

/// Gauges per live coupon: `sale_stock_drift` (stock + units held − total; 0 is
/// consistent), `sale_state_missing` (1 when Redis lost the sale's state) and
/// `sale_stock_left`; and `orders_pending` with `orders_pending_oldest_seconds`.
#[derive(Clone)]
pub struct AuditMetrics {
    drift: IntGaugeVec,
    missing: IntGaugeVec,
    stock_left: IntGaugeVec,
    pending: IntGauge,
    pending_oldest: IntGauge,
}

impl AuditMetrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        Ok(Self {
            drift: IntGaugeVec::new(
                Opts::new(
                    "sale_stock_drift",
                    "Redis stock + units held by buyers - total, per live coupon (0 = consistent)",
                ),
                &["coupon"],
            )?,
            missing: IntGaugeVec::new(
                Opts::new(
                    "sale_state_missing",
                    "1 when a live coupon's sale state is missing from Redis",
                ),
                &["coupon"],
            )?,
            stock_left: IntGaugeVec::new(
                Opts::new(
                    "sale_stock_left",
                    "Units left in Redis per live coupon (at the last audit)",
                ),
                &["coupon"],
            )?,
            pending: IntGauge::new("orders_pending", "Orders written but not settled yet")?,
            pending_oldest: IntGauge::new(
                "orders_pending_oldest_seconds",
                "Age of the oldest order not settled yet (0 with none)",
            )?,
        })
    }

    pub fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.drift.clone()),
            Box::new(self.missing.clone()),
            Box::new(self.stock_left.clone()),
            Box::new(self.pending.clone()),
            Box::new(self.pending_oldest.clone()),
        ]
    }
}

/// Audits every `interval`; a sale whose state is missing is rebuilt through `rebuilds`.
pub async fn run(
    mysql: MysqlPool,
    gate: StockGate,
    rebuilds: Arc<SaleRebuilds>,
    metrics: AuditMetrics,
    interval: Duration,
    stop: CancellationToken,
) {
    let mut ticks = tokio::time::interval(interval);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        match audit_live(&mysql, &gate).await {
            Ok(lines) => {
                // Coupons that ended or were deleted leave the gauges.
                metrics.drift.reset();
                metrics.missing.reset();
                metrics.stock_left.reset();
                for line in lines {
                    let coupon = line.coupon_id.to_string();
                    if let Some(stock) = line.stock {
                        metrics.stock_left.with_label_values(&[&coupon]).set(stock);
                    }
                    metrics
                        .missing
                        .with_label_values(&[&coupon])
                        .set(i64::from(line.stock.is_none()));
                    if let Some(drift) = line.drift() {
                        metrics.drift.with_label_values(&[&coupon]).set(drift);
                    }
                    if line.stock.is_none() {
                        tracing::warn!(coupon.id = %coupon, total = line.total, "sale state missing from Redis; rebuilding it from MySQL and Kafka");
                        rebuilds.start(line.coupon_id);
                    } else if !line.is_consistent() {
                        tracing::warn!(coupon.id = %coupon, total = line.total, stock = ?line.stock, units_held = line.units_held, "sale state drifted; run `flash-sale reconcile {coupon}`");
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "drift audit could not run"),
        }
        match pending_orders(&mysql).await {
            Ok(pending) => {
                metrics.pending.set(pending.count);
                metrics.pending_oldest.set(pending.oldest_secs);
            }
            Err(error) => tracing::warn!(%error, "could not count the pending orders"),
        }
    }
}
