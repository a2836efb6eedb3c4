//! The order-event publisher: one batching task per partition.
//!
//! A purchase hands its event to the partition's queue and waits for the broker's
//! acknowledgement. The task produces whatever has queued up meanwhile as one
//! lz4-compressed batch, so batches grow with load without any linger delay, and keeps a
//! few produce calls under way at once. A batch is cut where its request would no longer
//! leave in one write (see [`frame_budget`]). Every produce is bounded by the Kafka
//! timeout and every queue is bounded, so a broker outage becomes a prompt error the
//! purchase path compensates.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

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
    /// Produce calls under way at once per partition: while one waits for the broker
    /// the next batch is already on its way.
    pub in_flight: usize,
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
                    max_in_flight: limits.in_flight.max(1),
                    budget: frame_budget(&topic),
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
    max_in_flight: usize,
    /// Bytes of records per batch (see [`frame_budget`]).
    budget: usize,
    client: Option<Arc<PartitionClient>>,
    /// After a failed batch the next partition client comes from a new Kafka client,
    /// whose metadata is fresh.
    own_client: Option<Arc<rskafka::client::Client>>,
    reconnect: bool,
}

/// A produce call under way, with the publishers waiting for its outcome.
type InFlight = Pin<Box<dyn Future<Output = (Result<(), KafkaError>, Vec<Ack>)> + Send>>;
type Ack = oneshot::Sender<Result<(), String>>;

impl PartitionTask {
    async fn run(mut self, mut queue: mpsc::Receiver<Queued>, shutdown: CancellationToken) {
        let mut in_flight = FuturesUnordered::<InFlight>::new();
        // An event taken from the queue that did not fit the previous batch.
        let mut carried: Option<Queued> = None;
        let mut closing = false;
        loop {
            let room = in_flight.len() < self.max_in_flight;
            let first = if room && carried.is_some() {
                carried.take()
            } else {
                tokio::select! {
                    Some((result, acks)) = in_flight.next(), if !in_flight.is_empty() => {
                        self.settle(result, acks);
                        continue;
                    }
                    next = queue.recv(), if room && carried.is_none() => next,
                    () = shutdown.cancelled(), if !closing => {
                        // Stop taking new events; publish what is queued, then exit.
                        queue.close();
                        closing = true;
                        continue;
                    }
                }
            };
            let Some(first) = first else {
                while let Some((result, acks)) = in_flight.next().await {
                    self.settle(result, acks);
                }
                return;
            };
            let (records, acks) =
                take_batch(first, &mut queue, &mut carried, self.max_batch, self.budget);
            match self.partition_client().await {
                Ok(client) => in_flight.push(Box::pin(produce(
                    client,
                    records,
                    self.kafka.timeout(),
                    acks,
                ))),
                Err(error) => self.settle(Err(error), acks),
            }
        }
    }

    fn settle(&mut self, result: Result<(), KafkaError>, acks: Vec<Ack>) {
        let result = result.map_err(|e| {
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

    async fn partition_client(&mut self) -> Result<Arc<PartitionClient>, KafkaError> {
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
            self.client = Some(Arc::new(partition_client));
        }
        self.client
            .clone()
            .ok_or_else(|| KafkaError::Unavailable("no partition client".into()))
    }
}

/// The next batch: `first` and whatever else is queued, up to `max_batch` events and
/// `budget` bytes. An event that would overflow the budget is carried to the next batch.
fn take_batch(
    first: Queued,
    queue: &mut mpsc::Receiver<Queued>,
    carried: &mut Option<Queued>,
    max_batch: usize,
    budget: usize,
) -> (Vec<Record>, Vec<Ack>) {
    let mut bytes = encoded_size(&first.record);
    let (mut records, mut acks) = (vec![first.record], vec![first.ack]);
    while records.len() < max_batch {
        let Ok(next) = queue.try_recv() else { break };
        bytes += encoded_size(&next.record);
        if bytes > budget {
            *carried = Some(next);
            break;
        }
        records.push(next.record);
        acks.push(next.ack);
    }
    (records, acks)
}

async fn produce(
    client: Arc<PartitionClient>,
    records: Vec<Record>,
    timeout: Duration,
    acks: Vec<Ack>,
) -> (Result<(), KafkaError>, Vec<Ack>) {
    let result = tokio::time::timeout(
        timeout + Duration::from_millis(100),
        client.produce(records, Compression::Lz4),
    )
    .await
    .map_err(|_| KafkaError::Timeout(timeout))
    .and_then(|produced| produced.map(drop).map_err(KafkaError::from));
    (result, acks)
}

/// rskafka writes each request through an 8 KiB buffer and leaves Nagle's algorithm on:
/// a request that overflows the buffer leaves in two writes, and the second waits for
/// the broker's delayed ACK of the first (~40 ms). A batch whose request fits the buffer
/// leaves in one write, so batches are cut at this many bytes of records (before
/// compression, which only shrinks them), less the request's own fields.
const WRITE_BUFFER: usize = 8 * 1024;
const REQUEST_OVERHEAD: usize = 512;

fn frame_budget(topic: &str) -> usize {
    WRITE_BUFFER - REQUEST_OVERHEAD - topic.len()
}

/// A record's bytes in a batch: its key, value and headers, plus the varints framing
/// them (at most a few bytes per field).
fn encoded_size(record: &Record) -> usize {
    record.approximate_size() + 24 + 4 * record.headers.len()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::Utc;
    use rskafka::record::Record;
    use tokio::sync::{mpsc, oneshot};

    use super::{Queued, encoded_size, frame_budget, take_batch};

    fn queued(value_bytes: usize) -> Queued {
        let record = Record {
            key: Some(b"42".to_vec()),
            value: Some(vec![b'x'; value_bytes]),
            headers: BTreeMap::from([("type".to_owned(), b"OrderPlaced".to_vec())]),
            timestamp: Utc::now(),
        };
        Queued {
            record,
            ack: oneshot::channel().0,
        }
    }

    #[test]
    fn a_batch_stops_at_the_byte_budget_and_carries_the_rest() {
        let (tx, mut rx) = mpsc::channel(100);
        for _ in 0..40 {
            tx.try_send(queued(400)).unwrap();
        }
        let budget = frame_budget("orders");
        let mut carried = None;
        let (records, acks) = take_batch(queued(400), &mut rx, &mut carried, 500, budget);
        assert_eq!(records.len(), acks.len());
        let bytes: usize = records.iter().map(encoded_size).sum();
        assert!(bytes <= budget, "{bytes} > {budget}");
        assert!(records.len() > 10, "{} records", records.len());
        assert!(
            carried.is_some(),
            "the event that did not fit waits for the next batch"
        );
        assert_eq!(rx.len(), 40 - records.len());
    }

    #[test]
    fn a_batch_stops_at_the_event_limit_and_takes_one_oversized_event_alone() {
        let (tx, mut rx) = mpsc::channel(100);
        for _ in 0..10 {
            tx.try_send(queued(10)).unwrap();
        }
        let mut carried = None;
        let (records, _) = take_batch(queued(10), &mut rx, &mut carried, 4, 8000);
        assert_eq!(records.len(), 4);
        assert!(carried.is_none());
        let (records, _) = take_batch(queued(20_000), &mut rx, &mut carried, 4, 8000);
        assert_eq!(
            records.len(),
            1,
            "an event over the budget still goes, alone"
        );
        assert!(carried.is_some());
    }
}
