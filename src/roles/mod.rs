//! Wiring only: which adapters a role needs, which HTTP modules it mounts, which
//! workers it starts, and the order things stop in.
//!
//! Roles are cargo features too (`api`, `payment`, `ws`), so an operator can build a slim
//! binary; asking at run time for a role that was not compiled in is a configuration
//! error.

use std::collections::BTreeSet;

use crate::adapters::Dependency;

#[cfg(feature = "api")]
mod api;
#[cfg(feature = "payment")]
mod payment;
#[cfg(feature = "ws")]
mod ws;

mod modules;
mod server;

pub use server::{RunningApp, start};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// Catalog, purchase and auth endpoints.
    Api,
    /// Kafka consumer, payment worker pool, order state in MySQL.
    Payment,
    /// WebSocket relay of payment results.
    Ws,
    /// Every role in one process (local development).
    All,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Payment => "payment",
            Self::Ws => "ws",
            Self::All => "all",
        }
    }

    /// The single roles this one stands for (`all` is every role).
    fn parts(self) -> &'static [Role] {
        match self {
            Self::Api => &[Self::Api],
            Self::Payment => &[Self::Payment],
            Self::Ws => &[Self::Ws],
            Self::All => &[Self::Api, Self::Payment, Self::Ws],
        }
    }

    fn compiled_in(self) -> bool {
        match self {
            Self::Api => cfg!(feature = "api"),
            Self::Payment => cfg!(feature = "payment"),
            Self::Ws => cfg!(feature = "ws"),
            Self::All => Self::All.parts().iter().all(|r| r.compiled_in()),
        }
    }

    /// External services this role talks to; `/readyz` probes exactly these.
    pub fn dependencies(self) -> BTreeSet<Dependency> {
        self.parts()
            .iter()
            .flat_map(|part| match part {
                Self::Api => &[
                    Dependency::Mysql,
                    Dependency::Redis,
                    Dependency::Kafka,
                    Dependency::ObjectStore,
                ][..],
                Self::Payment => &[Dependency::Mysql, Dependency::Redis, Dependency::Kafka][..],
                Self::Ws => &[Dependency::Redis][..],
                Self::All => &[][..],
            })
            .copied()
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The operator's mistake: exit code 2.
    #[error("{0}")]
    Configuration(String),
    #[error("{0}")]
    Runtime(String),
}

impl StartupError {
    pub fn runtime(error: impl std::fmt::Display) -> Self {
        Self::Runtime(error.to_string())
    }
}

/// The adapter a module needs; an error means the role's dependency list did not build
/// it (a wiring bug).
#[cfg_attr(
    not(any(feature = "api", feature = "payment", feature = "ws")),
    allow(dead_code)
)]
fn required<T: Clone>(adapter: &Option<T>, what: &str) -> Result<T, StartupError> {
    adapter
        .clone()
        .ok_or_else(|| StartupError::Runtime(format!("this role needs the {what} adapter")))
}

/// Per-account and per-IP token buckets: their counter registered, and the buckets of
/// clients gone quiet forgotten every 10 s.
#[cfg(any(feature = "api", feature = "ws"))]
fn start_admission(
    name: &str,
    help: &str,
    [per_user, per_ip]: [crate::app::throttle::Rate; 2],
    metrics: &crate::metrics::Metrics,
    shutdown: &crate::shutdown::Shutdown,
) -> Result<std::sync::Arc<crate::app::throttle::Admission>, StartupError> {
    let admission = std::sync::Arc::new(
        crate::app::throttle::Admission::new(name, help, per_user, per_ip)
            .map_err(StartupError::runtime)?,
    );
    metrics
        .register(admission.collector())
        .map_err(StartupError::runtime)?;
    let sweeping = admission.clone();
    shutdown.spawn(crate::workers::sweep::run(
        move || sweeping.forget_idle(),
        std::time::Duration::from_secs(10),
        shutdown.token(),
    ));
    Ok(admission)
}

/// Creates the orders topic if absent and answers its partition count, which is
/// `kafka.orders_partitions`: a topic that already has another count stops the start
/// (the error says why). A broker that is down now is retried by the producers and
/// consumers themselves, so that only warns.
#[cfg(any(feature = "api", feature = "payment"))]
async fn ensure_orders_topic(
    settings: &crate::config::Settings,
    kafka: &crate::adapters::kafka::Kafka,
) -> Result<i32, StartupError> {
    use crate::adapters::kafka::KafkaError;

    let topic = settings.kafka.orders_topic_name();
    let configured = settings.kafka.orders_partitions;
    let spec = crate::adapters::kafka::TopicSpec {
        partitions: configured,
        replication_factor: settings.kafka.orders_replication_factor,
        min_insync_replicas: settings.kafka.orders_min_insync_replicas,
    };
    match kafka.ensure_topic(&topic, &spec).await {
        Ok(()) => Ok(configured),
        Err(KafkaError::PartitionCount { actual, .. }) => {
            let remedy = if actual < configured {
                format!(
                    "set kafka.orders_partitions = {actual}, or add partitions to the topic \
                     first (kafka-topics --alter --partitions {configured})"
                )
            } else {
                format!("set kafka.orders_partitions = {actual} (Kafka cannot remove partitions)")
            };
            Err(StartupError::Configuration(format!(
                "kafka.orders_partitions = {configured}, but the orders topic {topic} has \
                 {actual} partitions on the brokers. Events are routed by the configured \
                 count: fewer partitions than configured mis-route them (a coupon routed to \
                 a partition that does not exist cannot be sold, and reconcile reads the \
                 wrong one), more leave the payment consumers of partitions nobody writes \
                 idle. To start, {remedy}."
            )))
        }
        Err(error) => {
            tracing::warn!(%error, topic, "orders topic not reachable yet; retried on first use");
            Ok(configured)
        }
    }
}
