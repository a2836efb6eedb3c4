//! The order-event publisher: one batching task per partition.
//!
//! A purchase hands its event to the partition's queue and waits for the broker's
//! acknowledgement. The task produces whatever has queued up meanwhile as one
//! lz4-compressed batch, so batches grow with load without any linger delay (an
//! uncompressed produce stalls ~46 ms against tansu, see DESIGN.md). Every produce is
//! bounded by the Kafka timeout and every queue is bounded, so a broker outage becomes a
//! prompt error the purchase path compensates.

use std::sync::Arc;
use std::time::Duration;

use rskafka::client::partition::{Compression, PartitionClient, UnknownTopicHandling};
use rskafka::record::Record;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::codec::{EventSigner, encode_order_placed, partition_for};
use super::{Kafka, KafkaError};
use crate::domain::order::OrderPlaced;
use crate::shutdown::Shutdown;

struct Queued {
    record: Record,
    ack: oneshot::Sender<Result<(), String>>,
}

#[derive(Clone)]
pub struct OrderPublisher {
    queues: Vec<mpsc::Sender<Queued>>,
    partitions: i32,
    /// Longest a publisher waits for its event's fate (queue time included).
    deadline: Duration,
    signer: EventSigner,
}

/// Tuning of the publisher.
#[derive(Debug, Clone, Copy)]
pub struct PublisherLimits {
    /// Events waiting per partition before publishers are told the service is busy.
    pub queue: usize,
    /// Largest batch sent in one produce call.
    pub max_batch: usize,
}

impl OrderPublisher {
    /// Starts one task per partition of `topic`; they drain their queues and stop on
    /// shutdown.
    pub fn start(
        kafka: Kafka,
        topic: String,
        partitions: i32,
        limits: PublisherLimits,
        shutdown: &Shutdown,
    ) -> Self {
        let deadline = Self::deadline_for(&kafka);
        let signer = kafka.signer().clone();
        let queues = (0..partitions.max(1))
            .map(|partition| {
                let (tx, rx) = mpsc::channel(limits.queue.max(1));
                let task = PartitionTask {
                    kafka: kafka.clone(),
                    topic: topic.clone(),
                    partition,
                    max_batch: limits.max_batch.max(1),
                    client: None,
                    own_client: None,
                    reconnect: false,
                };
                shutdown.spawn(task.run(rx, shutdown.token()));
                tx
            })
            .collect();
        Self {
            queues,
            partitions: partitions.max(1),
            deadline,
            signer,
        }
    }

    /// The longest [`Self::publish`] takes: two produce attempts' worth. An event still
    /// queued then is reported unconfirmed (its unit is given back, and the payment role
    /// skips it should it still reach the log).
    pub fn deadline_for(kafka: &Kafka) -> Duration {
        kafka.timeout() * 2 + Duration::from_millis(200)
    }

    /// Events waiting across the partitions' queues, and the queues' total room.
    pub fn queued(&self) -> (usize, usize) {
        self.queues.iter().fold((0, 0), |(depth, room), queue| {
            (
                depth + queue.max_capacity().saturating_sub(queue.capacity()),
                room + queue.max_capacity(),
            )
        })
    }

    /// Publishes one event and waits for the broker's acknowledgement. An error means
    /// the event was not stored (or could not be confirmed within the timeout).
    pub async fn publish(&self, event: &OrderPlaced) -> Result<(), KafkaError> {
        let record = encode_order_placed(event, &self.signer)
            .map_err(|e| KafkaError::Unavailable(e.to_string()))?;
        let partition = partition_for(event.coupon_id, self.partitions);
        let queue = usize::try_from(partition)
            .ok()
            .and_then(|p| self.queues.get(p))
            .ok_or_else(|| {
                KafkaError::Unavailable(format!("no queue for partition {partition}"))
            })?;
        let (ack, acked) = oneshot::channel();
        queue
            .try_send(Queued { record, ack })
            .map_err(|e| KafkaError::Unavailable(format!("publish queue unavailable: {e}")))?;
        match tokio::time::timeout(self.deadline, acked).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(message))) => Err(KafkaError::Unavailable(message)),
            Ok(Err(_)) => Err(KafkaError::Unavailable("publisher stopped".into())),
            Err(_) => Err(KafkaError::Timeout(self.deadline)),
        }
    }
}

struct PartitionTask {
    kafka: Kafka,
    topic: String,
    partition: i32,
    max_batch: usize,
    client: Option<PartitionClient>,
    /// After a failed batch the next partition client comes from a new Kafka client,
    /// whose metadata is fresh.
    own_client: Option<Arc<rskafka::client::Client>>,
    reconnect: bool,
}

impl PartitionTask {
    async fn run(mut self, mut queue: mpsc::Receiver<Queued>, shutdown: CancellationToken) {
        loop {
            let first = tokio::select! {
                next = queue.recv() => next,
                () = shutdown.cancelled() => {
                    // Stop taking new events; publish what is queued, then exit.
                    queue.close();
                    queue.recv().await
                }
            };
            let Some(first) = first else { return };
            let mut batch = vec![first];
            while batch.len() < self.max_batch {
                match queue.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            let (records, acks): (Vec<Record>, Vec<_>) =
                batch.into_iter().map(|q| (q.record, q.ack)).unzip();
            let result = self.produce(records).await.map_err(|e| {
                tracing::warn!(topic = %self.topic, partition = self.partition, error = %e, "publishing order events failed");
                // Reconnect on the next batch, with fresh metadata.
                self.client = None;
                self.reconnect = true;
                e.to_string()
            });
            for ack in acks {
                // The publisher may have gone (request cancelled): nothing to tell.
                let _ = ack.send(result.clone());
            }
        }
    }

    async fn produce(&mut self, records: Vec<Record>) -> Result<(), KafkaError> {
        let timeout = self.kafka.timeout();
        let client = self.partition_client().await?;
        tokio::time::timeout(
            timeout + Duration::from_millis(100),
            client.produce(records, Compression::Lz4),
        )
        .await
        .map_err(|_| KafkaError::Timeout(timeout))??;
        Ok(())
    }

    async fn partition_client(&mut self) -> Result<&PartitionClient, KafkaError> {
        if self.client.is_none() {
            let timeout = self.kafka.timeout();
            if std::mem::take(&mut self.reconnect) {
                self.own_client = Some(self.kafka.connect().await?);
            }
            let client = match &self.own_client {
                Some(client) => client.clone(),
                None => self.kafka.client().await?,
            };
            let connect = client.partition_client(
                self.topic.clone(),
                self.partition,
                UnknownTopicHandling::Error,
            );
            // A missing topic is an error, never re-created here: the role creates it at
            // start with the configured layout, and a deleted topic needs an operator.
            let partition_client = tokio::time::timeout(timeout, connect)
                .await
                .map_err(|_| KafkaError::Timeout(timeout))??;
            self.client = Some(partition_client);
        }
        self.client
            .as_ref()
            .ok_or_else(|| KafkaError::Unavailable("no partition client".into()))
    }
}
