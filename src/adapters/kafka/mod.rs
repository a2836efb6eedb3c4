//! Kafka through rskafka: a lazily connected client shared by the role, topic
//! administration, and (with the purchase and payment issues) producer and consumer.
//!
//! rskafka retries forever by default; every client here gets a backoff deadline equal
//! to the configured timeout, so a broker outage surfaces as an error the caller handles.

pub mod codec;
pub mod consumer;
pub mod producer;

use std::sync::Arc;
use std::time::Duration;

use rskafka::BackoffConfig;
use rskafka::client::error::{Error as ClientError, ProtocolError};
use rskafka::client::{Client, ClientBuilder};
use tokio::sync::OnceCell;

use crate::config::KafkaSettings;

#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("Kafka broker unreachable: {0}")]
    Unavailable(String),
    #[error("Kafka call failed: {0}")]
    Client(#[from] ClientError),
    #[error("Kafka call timed out after {0:?}")]
    Timeout(Duration),
}

/// The role's Kafka connection. Cloning shares it.
#[derive(Clone)]
pub struct Kafka {
    brokers: Vec<String>,
    timeout: Duration,
    client: Arc<OnceCell<Arc<Client>>>,
}

impl Kafka {
    /// Creates the handle without connecting: the first call connects.
    pub fn new(settings: &KafkaSettings) -> Self {
        Self {
            brokers: settings.brokers.clone(),
            timeout: Duration::from_millis(settings.timeout_ms),
            client: Arc::new(OnceCell::new()),
        }
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
            .get_or_try_init(|| async {
                let build = ClientBuilder::new(self.brokers.clone())
                    .client_id("flash-sale")
                    .backoff_config(self.backoff())
                    .build();
                match tokio::time::timeout(self.timeout, build).await {
                    Ok(Ok(client)) => Ok(Arc::new(client)),
                    Ok(Err(e)) => Err(KafkaError::Unavailable(e.to_string())),
                    Err(_) => Err(KafkaError::Timeout(self.timeout)),
                }
            })
            .await
            .cloned()
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

    /// Creates `topic` with `partitions` partitions and `replication_factor` copies of
    /// each unless it exists already; answers how many partitions the topic has.
    pub async fn ensure_topic(
        &self,
        topic: &str,
        partitions: i32,
        replication_factor: i16,
    ) -> Result<i32, KafkaError> {
        if let Some(existing) = self.partition_count(topic).await? {
            return Ok(existing);
        }
        let client = self.client().await?;
        let controller = client.controller_client()?;
        let timeout_ms = i32::try_from(self.timeout.as_millis()).unwrap_or(i32::MAX);
        match self
            .bounded(controller.create_topic(topic, partitions, replication_factor, timeout_ms))
            .await
        {
            Ok(()) => Ok(partitions),
            // Another process created it between our list and create.
            Err(KafkaError::Client(ClientError::ServerError {
                protocol_error: ProtocolError::TopicAlreadyExists,
                ..
            })) => Ok(self.partition_count(topic).await?.unwrap_or(partitions)),
            Err(e) => Err(e),
        }
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
