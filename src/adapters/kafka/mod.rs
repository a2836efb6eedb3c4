//! Kafka through rskafka: a lazily connected client shared by the role, topic
//! the producer and partition readers; topic creation and the payment role's consumer
//! group go through librdkafka (see `group`). Both clients get the same TLS and SASL
//! settings (see `security`).
//!
//! rskafka retries forever by default; every client here gets a backoff deadline equal
//! to the configured timeout, so a broker outage surfaces as an error the caller handles.

pub mod codec;
pub mod consumer;
pub mod group;
pub mod producer;
pub mod security;

use std::sync::Arc;
use std::time::Duration;

use rskafka::BackoffConfig;
use rskafka::client::error::Error as ClientError;
use rskafka::client::{Client, ClientBuilder};
use tokio::sync::OnceCell;

use crate::adapters::tls::TlsError;
use crate::config::KafkaSettings;
use crate::domain::failure::Failure;
pub use security::KafkaSecurity;

#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("Kafka broker unreachable: {0}")]
    Unavailable(String),
    #[error("Kafka call failed: {0}")]
    Client(#[from] ClientError),
    #[error("Kafka call timed out after {0:?}")]
    Timeout(Duration),
    #[error("Kafka administration failed: {0}")]
    Admin(String),
    #[error("Kafka TLS settings: {0}")]
    Tls(#[from] TlsError),
    /// The topic exists with another layout than the one asked for.
    #[error("topic {topic} has {actual} partitions, not the {expected} asked for")]
    PartitionCount {
        topic: String,
        expected: i32,
        actual: i32,
    },
}

impl From<KafkaError> for Failure {
    fn from(error: KafkaError) -> Self {
        Failure::unavailable(error)
    }
}

/// How a topic the application creates is laid out.
#[derive(Debug, Clone, Copy)]
pub struct TopicSpec {
    pub partitions: i32,
    /// Copies of each partition.
    pub replication_factor: i16,
    /// Copies that must hold an event before the broker acknowledges it.
    pub min_insync_replicas: i16,
}

impl TopicSpec {
    /// One partition per `partitions`, a single copy: for tests and local runs.
    pub fn single_copy(partitions: i32) -> Self {
        Self {
            partitions,
            replication_factor: 1,
            min_insync_replicas: 1,
        }
    }
}

/// The role's Kafka connection. Cloning shares it.
#[derive(Clone)]
pub struct Kafka {
    brokers: Vec<String>,
    security: KafkaSecurity,
    timeout: Duration,
    client: Arc<OnceCell<Arc<Client>>>,
    signer: codec::EventSigner,
}

impl Kafka {
    /// Creates the handle without connecting: the first call connects. Fails only when
    /// the TLS settings cannot be used (an unreadable CA file, no root certificates).
    pub fn new(settings: &KafkaSettings) -> Result<Self, KafkaError> {
        Ok(Self {
            brokers: settings.brokers.clone(),
            security: KafkaSecurity::new(settings)?,
            timeout: Duration::from_millis(settings.timeout_ms),
            client: Arc::new(OnceCell::new()),
            signer: codec::EventSigner::new(&settings.event_signing_key),
        })
    }

    /// How the clients reach the brokers (for the consumer group's own client).
    pub fn security(&self) -> &KafkaSecurity {
        &self.security
    }

    /// Signs and checks this deployment's events.
    pub fn signer(&self) -> &codec::EventSigner {
        &self.signer
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn backoff(&self) -> BackoffConfig {
        BackoffConfig {
            init_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(500),
            base: 2.0,
            deadline: Some(self.timeout),
        }
    }

    /// The connected client; connects on first use (bounded by the timeout) and retries
    /// on the next call if that failed.
    pub async fn client(&self) -> Result<Arc<Client>, KafkaError> {
        self.client
            .get_or_try_init(|| self.connect())
            .await
            .cloned()
    }

    /// A client of its own, with fresh cluster metadata (bounded by the timeout).
    /// rskafka keeps a partition's leader from its metadata cache even after that broker
    /// says another one leads (seen after a broker rejoined and took its partitions
    /// back): a new client is the way out.
    pub async fn connect(&self) -> Result<Arc<Client>, KafkaError> {
        let builder = ClientBuilder::new(self.brokers.clone())
            .client_id("flash-sale")
            .backoff_config(self.backoff());
        let build = self.security.apply_rskafka(builder).build();
        match tokio::time::timeout(self.timeout, build).await {
            Ok(Ok(client)) => Ok(Arc::new(client)),
            Ok(Err(e)) => Err(KafkaError::Unavailable(e.to_string())),
            Err(_) => Err(KafkaError::Timeout(self.timeout)),
        }
    }

    async fn bounded<T>(
        &self,
        call: impl Future<Output = Result<T, ClientError>>,
    ) -> Result<T, KafkaError> {
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| KafkaError::Timeout(self.timeout))?
            .map_err(KafkaError::from)
    }

    /// Creates `topic` as `spec` says unless it exists already. A topic that exists (or
    /// that another process created meanwhile) with another partition count is
    /// [`KafkaError::PartitionCount`]: events are routed by the count the caller knows.
    pub async fn ensure_topic(&self, topic: &str, spec: &TopicSpec) -> Result<(), KafkaError> {
        let actual = match self.partition_count(topic).await? {
            Some(existing) => existing,
            None => {
                self.create_topic(topic, spec).await?;
                self.partition_count(topic)
                    .await?
                    .unwrap_or(spec.partitions)
            }
        };
        if actual != spec.partitions {
            return Err(KafkaError::PartitionCount {
                topic: topic.to_owned(),
                expected: spec.partitions,
                actual,
            });
        }
        Ok(())
    }

    /// Topic creation goes through librdkafka's admin client: rskafka's cannot send
    /// topic configs such as `min.insync.replicas`.
    async fn create_topic(&self, topic: &str, spec: &TopicSpec) -> Result<(), KafkaError> {
        use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
        use rdkafka::client::DefaultClientContext;
        use rdkafka::types::RDKafkaErrorCode;

        let mut config = rdkafka::ClientConfig::new();
        config
            .set("bootstrap.servers", self.brokers.join(","))
            .set("client.id", "flash-sale-admin")
            .set("socket.timeout.ms", self.timeout.as_millis().to_string());
        self.security.apply_rdkafka(&mut config);
        let admin: AdminClient<DefaultClientContext> = config
            .create()
            .map_err(|e| KafkaError::Unavailable(e.to_string()))?;
        let min_insync = spec.min_insync_replicas.to_string();
        let new_topic = NewTopic::new(
            topic,
            spec.partitions,
            TopicReplication::Fixed(i32::from(spec.replication_factor)),
        )
        .set("min.insync.replicas", &min_insync);
        let options = AdminOptions::new()
            .request_timeout(Some(self.timeout))
            .operation_timeout(Some(self.timeout));
        let results = tokio::time::timeout(
            self.timeout * 2,
            admin.create_topics([&new_topic], &options),
        )
        .await
        .map_err(|_| KafkaError::Timeout(self.timeout * 2))?
        .map_err(|e| KafkaError::Admin(e.to_string()))?;
        for result in results {
            match result {
                // Another process created it between our look and our create.
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(KafkaError::Admin(format!("creating topic {name}: {code}")));
                }
            }
        }
        Ok(())
    }

    /// The number of partitions of `topic`, or None when it does not exist.
    pub async fn partition_count(&self, topic: &str) -> Result<Option<i32>, KafkaError> {
        let client = self.client().await?;
        let topics = self.bounded(client.list_topics()).await?;
        Ok(topics
            .iter()
            .find(|t| t.name == topic)
            .map(|t| i32::try_from(t.partitions.len()).unwrap_or(i32::MAX)))
    }

    /// Readiness probe: connect if needed and list topics.
    pub async fn ping(&self) -> Result<(), KafkaError> {
        let client = self.client().await?;
        self.bounded(client.list_topics()).await.map(drop)
    }
}
