//! Everything that talks to the outside world. Built once per process from [`Settings`]
//! by [`Adapters::connect`], holding only the adapters the running role needs, and
//! handed to the modules that role starts. Nothing here connects eagerly: a role starts
//! while a dependency is down and reports it on `/readyz`.

pub mod gateway;
pub mod kafka;
pub mod mysql;
pub mod object_store;
pub mod oidc;
pub mod opensearch;
pub mod redis;
pub mod tantivy_index;
pub mod tls;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::config::Settings;
use kafka::Kafka;
use mysql::MysqlPool;
use object_store::ObjectStore;
use redis::{Keys, RedisPool};

/// An external service a role depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dependency {
    Mysql,
    Redis,
    Kafka,
    ObjectStore,
}

impl Dependency {
    pub fn name(self) -> &'static str {
        match self {
            Self::Mysql => "mysql",
            Self::Redis => "redis",
            Self::Kafka => "kafka",
            Self::ObjectStore => "object_store",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    #[error(transparent)]
    Mysql(#[from] mysql::MysqlError),
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Kafka(#[from] kafka::KafkaError),
}

/// The adapters of one process. Fields are `None` for services the role does not use.
#[derive(Clone)]
pub struct Adapters {
    pub mysql: Option<MysqlPool>,
    pub redis: Option<RedisPool>,
    pub keys: Keys,
    pub kafka: Option<Kafka>,
    pub objects: Option<Arc<dyn ObjectStore>>,
}

/// How much of a connection pool is in use (the pool gauges).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUse {
    pub max: usize,
    pub in_use: usize,
    pub idle: usize,
    /// Callers waiting for a connection.
    pub waiting: usize,
}

impl Adapters {
    /// The pools this process holds, by name (`mysql`, `redis`). A Redis Cluster runs on
    /// multiplexed connections, without a pool.
    pub fn pool_usage(&self) -> Vec<(&'static str, PoolUse)> {
        let mut pools = Vec::new();
        if let Some(mysql) = &self.mysql {
            pools.push(("mysql", mysql.usage()));
        }
        if let Some(usage) = self.redis.as_ref().and_then(RedisPool::usage) {
            pools.push(("redis", usage));
        }
        pools
    }
}

/// The outcome of probing one dependency.
#[derive(Debug, Clone, Serialize)]
pub struct DependencyStatus {
    pub dependency: Dependency,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub latency_ms: u64,
}

impl Adapters {
    /// Builds the adapters for `needs`. Fails only on configuration that cannot work at
    /// all; unreachable services are reported by [`Adapters::readiness`] instead.
    pub async fn connect(
        settings: &Settings,
        needs: &BTreeSet<Dependency>,
    ) -> Result<Self, AdapterError> {
        tls::install_crypto_provider();
        let mysql = needs
            .contains(&Dependency::Mysql)
            .then(|| MysqlPool::new(&settings.mysql))
            .transpose()?;
        let redis = needs
            .contains(&Dependency::Redis)
            .then(|| RedisPool::new(&settings.redis))
            .transpose()?;
        let kafka = needs
            .contains(&Dependency::Kafka)
            .then(|| Kafka::new(&settings.kafka))
            .transpose()?;
        let objects = if needs.contains(&Dependency::ObjectStore) {
            Some(object_store::from_settings(&settings.object_store).await)
        } else {
            None
        };
        Ok(Self {
            mysql,
            redis,
            keys: Keys::new(settings.redis.namespace.clone()),
            kafka,
            objects,
        })
    }

    /// Probes every dependency this process holds, concurrently, each within `timeout`.
    pub async fn readiness(&self, timeout: Duration) -> Vec<DependencyStatus> {
        let mysql = async {
            match &self.mysql {
                Some(pool) => Some(probe(Dependency::Mysql, timeout, pool.ping()).await),
                None => None,
            }
        };
        let redis = async {
            match &self.redis {
                Some(pool) => Some(probe(Dependency::Redis, timeout, pool.ping()).await),
                None => None,
            }
        };
        let kafka = async {
            match &self.kafka {
                Some(kafka) => Some(probe(Dependency::Kafka, timeout, kafka.ping()).await),
                None => None,
            }
        };
        let objects = async {
            match &self.objects {
                Some(store) => Some(probe(Dependency::ObjectStore, timeout, store.ping()).await),
                None => None,
            }
        };
        let (mysql, redis, kafka, objects) = tokio::join!(mysql, redis, kafka, objects);
        [mysql, redis, kafka, objects]
            .into_iter()
            .flatten()
            .collect()
    }
}

async fn probe<E: std::fmt::Display>(
    dependency: Dependency,
    timeout: Duration,
    call: impl Future<Output = Result<(), E>>,
) -> DependencyStatus {
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(timeout, call).await;
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let error = match result {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!("no answer within {} ms", timeout.as_millis())),
    };
    DependencyStatus {
        dependency,
        ok: error.is_none(),
        error,
        latency_ms,
    }
}
