//! The payment role's metrics.

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec};

/// Metrics of the payment role.
#[derive(Clone)]
pub struct PaymentMetrics {
    /// Events behind the end of the log, per owned partition.
    pub(super) lag: IntGaugeVec,
    /// Records consumed per partition by this instance.
    pub(super) consumed: IntCounterVec,
    /// Orders settled, by outcome (PAID, FAILED).
    pub(super) settled: IntCounterVec,
    /// Orders written to MySQL.
    pub(super) written: IntCounterVec,
    pub(super) busy_workers: IntGauge,
    pool_size: IntGauge,
    pub(super) owned_partitions: IntGauge,
    /// Batches refused because another instance had claimed their partition since.
    pub(super) fenced: IntCounter,
    /// Records skipped, by reason (unreadable, wrong_type, bad_signature).
    pub(super) skipped: IntCounterVec,
}

impl PaymentMetrics {
    pub fn new(pool_size: usize) -> Result<Self, prometheus::Error> {
        use prometheus::Opts;
        let metrics = Self {
            lag: IntGaugeVec::new(
                Opts::new("payment_consumer_lag", "Events behind the end of the log"),
                &["partition"],
            )?,
            consumed: IntCounterVec::new(
                Opts::new("payment_consumed_records_total", "Order events consumed"),
                &["partition"],
            )?,
            settled: IntCounterVec::new(
                Opts::new("payment_settled_total", "Orders settled by status"),
                &["status"],
            )?,
            written: IntCounterVec::new(
                Opts::new("payment_orders_written_total", "Order rows written"),
                &["partition"],
            )?,
            busy_workers: IntGauge::new("payment_pool_busy", "Payment workers busy")?,
            pool_size: IntGauge::new("payment_pool_size", "Payment workers")?,
            owned_partitions: IntGauge::new(
                "payment_owned_partitions",
                "Partitions this instance consumes",
            )?,
            fenced: IntCounter::new(
                "payment_fenced_batches_total",
                "Batches refused: another instance had claimed the partition",
            )?,
            skipped: IntCounterVec::new(
                Opts::new(
                    "payment_skipped_records_total",
                    "Order events skipped and never charged, by reason",
                ),
                &["reason"],
            )?,
        };
        metrics
            .pool_size
            .set(i64::try_from(pool_size).unwrap_or(i64::MAX));
        Ok(metrics)
    }

    pub fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.lag.clone()),
            Box::new(self.consumed.clone()),
            Box::new(self.settled.clone()),
            Box::new(self.written.clone()),
            Box::new(self.busy_workers.clone()),
            Box::new(self.pool_size.clone()),
            Box::new(self.owned_partitions.clone()),
            Box::new(self.fenced.clone()),
            Box::new(self.skipped.clone()),
        ]
    }
}
