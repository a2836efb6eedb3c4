//! The payment role: consumes `orders`, writes orders exactly once, runs payments.

use std::sync::Arc;
use std::time::Duration;

use super::{StartupError, ensure_orders_topic, required};
use crate::adapters::Adapters;
use crate::adapters::gateway::SimulatedGateway;
use crate::adapters::kafka::group::GroupSettings;
use crate::adapters::redis::notifier::PaymentNotifier;
use crate::adapters::redis::stock_gate::StockGate;
use crate::app::payments::Payments;
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::workers::payment::{self, PaymentDeps, PaymentMetrics};

pub(super) async fn start(
    settings: &Settings,
    adapters: &Adapters,
    owner: String,
    metrics: &Metrics,
    shutdown: &Shutdown,
) -> Result<(), StartupError> {
    let redis = required(&adapters.redis, "Redis")?;
    let kafka = required(&adapters.kafka, "Kafka")?;
    let keys = adapters.keys.clone();
    let topic = settings.kafka.orders_topic_name();
    let partitions = ensure_orders_topic(settings, &kafka).await?;
    let config = &settings.payment;
    let payment_metrics = PaymentMetrics::new(config.pool_size).map_err(StartupError::runtime)?;
    for collector in payment_metrics.collectors() {
        metrics.register(collector).map_err(StartupError::runtime)?;
    }
    let group = GroupSettings {
        brokers: settings.kafka.brokers.clone(),
        group_id: format!("{}{}", settings.kafka.topic_prefix, config.group_id),
        client_id: format!("flash-sale-payment-{owner}"),
        topic,
        session_timeout: Duration::from_millis(config.session_timeout_ms),
        fetch_max_wait: Duration::from_millis(config.fetch_max_wait_ms),
        request_timeout: Duration::from_millis(settings.kafka.timeout_ms),
        security: kafka.security().clone(),
    };
    let payments = Payments::new(
        required(&adapters.mysql, "MySQL")?,
        StockGate::new(
            redis.clone(),
            keys.clone(),
            Duration::from_secs(settings.purchase.idempotency_ttl_secs),
        ),
        PaymentNotifier::new(redis, keys),
        group.topic.clone(),
        partitions,
    );
    let deps = PaymentDeps {
        payments,
        group,
        gateway: Arc::new(SimulatedGateway::new(
            Duration::from_millis(config.gateway_latency_ms),
            config.gateway_failure_rate,
            config.gateway_seed,
        )),
        metrics: payment_metrics,
        pool_size: config.pool_size,
        queue: config.queue,
        signer: kafka.signer().clone(),
    };
    payment::start(deps, shutdown);
    Ok(())
}
