//! `flash-sale reconcile COUPON`: rebuild a sale's Redis state after a Redis loss.

use std::time::Duration;

use crate::adapters::kafka::{Kafka, producer::OrderPublisher};
use crate::app::reconcile::Reconciler;
use crate::config::Settings;
use crate::domain::coupon::CouponId;
use crate::roles::StartupError;

pub async fn run(settings: &Settings, coupon_id: i64) -> Result<(), StartupError> {
    let coupon = CouponId::new(coupon_id)
        .ok_or_else(|| StartupError::Configuration(format!("{coupon_id} is not a coupon id")))?;
    let gate = super::stock_gate(settings)?;
    let kafka =
        Kafka::new(&settings.kafka).map_err(|e| StartupError::Configuration(e.to_string()))?;
    let reconciler = Reconciler {
        mysql: super::mysql(settings)?,
        kafka: kafka.clone(),
        gate,
        topic: settings.kafka.orders_topic_name(),
        partitions: settings.kafka.orders_partitions,
        settle: OrderPublisher::deadline_for(&kafka)
            + Duration::from_millis(settings.redis.timeout_ms + 300),
    };
    let report = reconciler
        .reconcile(coupon)
        .await
        .map_err(StartupError::runtime)?;
    println!(
        "coupon {}: stock {} -> {} ({} units in MySQL orders, {} in unconsumed events, {} buyers)",
        report.coupon_id,
        report
            .previous_stock
            .map_or_else(|| "missing".to_owned(), |s| s.to_string()),
        report.stock,
        report.units_in_mysql,
        report.units_in_flight,
        report.buyers
    );
    Ok(())
}
