//! A consumer-group member through librdkafka (the `rdkafka` crate): the broker assigns
//! partitions (cooperative-sticky rebalancing), the application decides where each
//! assigned partition starts reading (its offsets live in MySQL, next to the orders).
//!
//! librdkafka is driven by blocking `poll` calls, so one OS thread owns the consumer and
//! turns what it sees into [`GroupEvent`]s on a bounded channel, in order. A rebalance
//! blocks that thread until the application has answered: on assignment with the offset
//! to start each partition at, on revocation once the partition's last batch is
//! committed. Records of a revoked partition are therefore never processed after its
//! new owner started.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use prometheus::IntGaugeVec;
use rdkafka::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError as RdKafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use tokio::sync::{mpsc, oneshot};

use super::{KafkaError, KafkaSecurity};

/// How a member joins its group.
#[derive(Debug, Clone)]
pub struct GroupSettings {
    pub brokers: Vec<String>,
    pub group_id: String,
    /// Names this member in the broker's logs and group listings.
    pub client_id: String,
    pub topic: String,
    /// A member silent this long is considered dead and its partitions move.
    pub session_timeout: Duration,
    /// Longest wait of one fetch when the log has nothing new.
    pub fetch_max_wait: Duration,
    /// Bound on each broker request.
    pub request_timeout: Duration,
    /// TLS and SASL, as for the application's other Kafka clients.
    pub security: KafkaSecurity,
}

/// One record of the subscribed topic.
#[derive(Debug)]
pub struct GroupRecord {
    pub partition: i32,
    pub offset: i64,
    /// The `type` header, when present.
    pub kind: Option<Vec<u8>>,
    /// The `signature` header, when present.
    pub signature: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

/// What the member sees, in the order it happened.
#[derive(Debug)]
pub enum GroupEvent {
    /// These partitions are now ours: answer with the next offset to read of each (a
    /// partition left out is not started).
    Assigned {
        partitions: Vec<i32>,
        start_at: oneshot::Sender<HashMap<i32, i64>>,
    },
    /// These partitions go to another member: answer once their work is committed.
    Revoked {
        partitions: Vec<i32>,
        done: oneshot::Sender<()>,
    },
    Record(GroupRecord),
}

/// A running group member. Events stop (the channel closes) after [`Self::leave`] once
/// the member has handed its partitions back.
pub struct GroupMember {
    events: mpsc::Receiver<GroupEvent>,
    progress: std_mpsc::Sender<(i32, i64)>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl GroupMember {
    /// Joins the group and subscribes to the topic. `lag` receives each owned
    /// partition's distance to the end of the log (from librdkafka's statistics).
    pub fn join(
        settings: &GroupSettings,
        queue: usize,
        lag: IntGaugeVec,
    ) -> Result<Self, KafkaError> {
        let (sender, events) = mpsc::channel(queue.max(1));
        let (progress, progress_rx) = std_mpsc::channel();
        let context = MemberContext {
            events: sender.clone(),
            progress: Mutex::new(Progress {
                reported: progress_rx,
                unstored: HashMap::new(),
            }),
            topic: settings.topic.clone(),
            lag,
        };
        let consumer: BaseConsumer<MemberContext> = member_config(settings)
            .create_with_context(context)
            .map_err(|e| KafkaError::Unavailable(e.to_string()))?;
        consumer
            .subscribe(&[settings.topic.as_str()])
            .map_err(|e| KafkaError::Unavailable(e.to_string()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("kafka-group".to_owned())
            .spawn({
                let stop = stop.clone();
                move || poll_loop(&consumer, &sender, &stop)
            })
            .map_err(|e| KafkaError::Unavailable(e.to_string()))?;
        Ok(Self {
            events,
            progress,
            stop,
            thread: Some(thread),
        })
    }

    /// The next event; `None` once the member has left.
    pub async fn next(&mut self) -> Option<GroupEvent> {
        self.events.recv().await
    }

    /// The next event if one is already queued.
    pub fn try_next(&mut self) -> Option<GroupEvent> {
        self.events.try_recv().ok()
    }

    /// Tells the broker how far a partition is done (for the group's lag as operators
    /// see it in Kafka's tools; the offsets that count are the application's).
    pub fn record_progress(&self, partition: i32, next_offset: i64) {
        let _ = self.progress.send((partition, next_offset));
    }

    /// Starts leaving: the owned partitions are revoked (events keep coming until that
    /// is answered), then the channel closes.
    pub fn leave(&self) {
        self.stop.store(true, Ordering::Release);
    }
}

impl Drop for GroupMember {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Answers to a rebalance can no longer come: close the channel and drop what is
        // queued (with any pending answer) so the thread never waits on us.
        self.events.close();
        while self.events.try_recv().is_ok() {}
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn member_config(settings: &GroupSettings) -> ClientConfig {
    let ms = |d: Duration| d.as_millis().to_string();
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", settings.brokers.join(","))
        .set("client.id", &settings.client_id)
        .set("group.id", &settings.group_id)
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("session.timeout.ms", ms(settings.session_timeout))
        .set(
            "heartbeat.interval.ms",
            ms((settings.session_timeout / 3).max(Duration::from_millis(100))),
        )
        // Backpressure from the payment pool can hold the poll thread; a member is only
        // dropped when it makes no progress for a long time.
        .set("max.poll.interval.ms", "300000")
        .set("fetch.wait.max.ms", ms(settings.fetch_max_wait))
        // A fetch may wait fetch.wait.max.ms on the broker: librdkafka wants the socket
        // timeout at least a second above it.
        .set(
            "socket.timeout.ms",
            ms(settings
                .request_timeout
                .max(settings.fetch_max_wait + Duration::from_secs(1))),
        )
        .set("auto.offset.reset", "earliest")
        // Offsets that count are in MySQL; Kafka gets the same progress as a courtesy.
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed")
        .set("statistics.interval.ms", "5000")
        .set_log_level(RDKafkaLogLevel::Warning);
    settings.security.apply_rdkafka(&mut config);
    config
}

fn poll_loop(
    consumer: &BaseConsumer<MemberContext>,
    events: &mpsc::Sender<GroupEvent>,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Acquire) {
        consumer.context().store_progress(consumer);
        let Some(polled) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        match polled {
            Ok(message) => {
                let header = |name: &str| {
                    message.headers().and_then(|headers| {
                        headers
                            .iter()
                            .find(|h| h.key == name)
                            .and_then(|h| h.value.map(<[u8]>::to_vec))
                    })
                };
                let record = GroupRecord {
                    partition: message.partition(),
                    offset: message.offset(),
                    kind: header("type"),
                    signature: header(super::codec::SIGNATURE),
                    value: message.payload().map(<[u8]>::to_vec),
                };
                if events.blocking_send(GroupEvent::Record(record)).is_err() {
                    break;
                }
            }
            Err(error) => tracing::warn!(%error, "Kafka consumer error"),
        }
    }
    // Dropping the consumer (the caller owns it) closes it: the owned partitions are
    // revoked through the context, answered by the application, then the group is left.
}

struct MemberContext {
    events: mpsc::Sender<GroupEvent>,
    progress: Mutex<Progress>,
    topic: String,
    lag: IntGaugeVec,
}

/// Next offsets the application has committed, to store for the broker.
struct Progress {
    reported: std_mpsc::Receiver<(i32, i64)>,
    unstored: HashMap<i32, i64>,
}

impl MemberContext {
    /// Stores the progress reported so far (auto-commit sends it). `store_offsets`
    /// takes the next offset as given, unlike `store_offset` (a message's, plus one).
    /// librdkafka refuses a store until an assignment is active, so what fails for a
    /// partition still assigned is kept and tried again on the next poll.
    fn store_progress(&self, consumer: &BaseConsumer<Self>) {
        let Ok(mut progress) = self.progress.lock() else {
            return;
        };
        let Progress { reported, unstored } = &mut *progress;
        while let Ok((partition, next)) = reported.try_recv() {
            unstored.insert(partition, next);
        }
        if unstored.is_empty() {
            return;
        }
        let mut list = TopicPartitionList::new();
        for (&partition, &next) in unstored.iter() {
            let _ = list.add_partition_offset(&self.topic, partition, Offset::Offset(next));
        }
        if consumer.store_offsets(&list).is_ok() {
            unstored.clear();
            return;
        }
        let assigned: Vec<i32> = consumer
            .assignment()
            .map(|a| self.partitions(&a))
            .unwrap_or_default();
        let stored: Vec<i32> = list
            .elements()
            .iter()
            .filter(|e| e.error().is_ok() || !assigned.contains(&e.partition()))
            .map(rdkafka::topic_partition_list::TopicPartitionListElem::partition)
            .collect();
        for partition in stored {
            unstored.remove(&partition);
        }
    }

    /// Forgets progress of partitions this member no longer owns.
    fn forget_progress(&self, partitions: &[i32]) {
        if let Ok(mut progress) = self.progress.lock() {
            for partition in partitions {
                progress.unstored.remove(partition);
            }
        }
    }

    /// Where a partition starts is progress too (the broker may have none yet).
    fn start_progress(&self, starts: &HashMap<i32, i64>) {
        if let Ok(mut progress) = self.progress.lock() {
            progress.unstored.extend(starts);
        }
    }

    fn partitions(&self, list: &TopicPartitionList) -> Vec<i32> {
        list.elements_for_topic(&self.topic)
            .iter()
            .map(rdkafka::topic_partition_list::TopicPartitionListElem::partition)
            .collect()
    }

    fn assign(&self, consumer: &BaseConsumer<Self>, list: &mut TopicPartitionList) {
        let partitions = self.partitions(list);
        let (start_at, answer) = oneshot::channel();
        let offsets = self
            .events
            .blocking_send(GroupEvent::Assigned {
                partitions: partitions.clone(),
                start_at,
            })
            .ok()
            .and_then(|()| answer.blocking_recv().ok())
            .unwrap_or_default();
        let mut assignment = TopicPartitionList::new();
        for partition in partitions {
            if let Some(&offset) = offsets.get(&partition) {
                let _ =
                    assignment.add_partition_offset(&self.topic, partition, Offset::Offset(offset));
            }
        }
        let assigned = match consumer.rebalance_protocol() {
            RebalanceProtocol::Cooperative => consumer.incremental_assign(&assignment),
            _ => consumer.assign(&assignment),
        };
        match assigned {
            Ok(()) => self.start_progress(&offsets),
            Err(error) => tracing::error!(%error, "could not take the assigned partitions"),
        }
    }

    fn revoke(&self, consumer: &BaseConsumer<Self>, list: &TopicPartitionList) {
        let partitions = self.partitions(list);
        let (done, answer) = oneshot::channel();
        if self
            .events
            .blocking_send(GroupEvent::Revoked {
                partitions: partitions.clone(),
                done,
            })
            .is_ok()
        {
            let _ = answer.blocking_recv();
        }
        // The answer came after the last batch's progress was reported: store it, so
        // the commit made on revocation carries it.
        self.store_progress(consumer);
        self.forget_progress(&partitions);
        for partition in &partitions {
            let _ = self.lag.remove_label_values(&[&partition.to_string()]);
        }
        let revoked = match consumer.rebalance_protocol() {
            RebalanceProtocol::Cooperative => consumer.incremental_unassign(list),
            _ => consumer.unassign(),
        };
        if let Err(error) = revoked {
            tracing::error!(%error, "could not hand the revoked partitions back");
        }
    }
}

impl ClientContext for MemberContext {
    fn stats(&self, statistics: Statistics) {
        let Some(topic) = statistics.topics.get(&self.topic) else {
            return;
        };
        for (partition, stats) in &topic.partitions {
            // librdkafka lists an internal partition -1 and answers -1 when unknown.
            if *partition < 0 {
                continue;
            }
            let label = partition.to_string();
            // Statistics cover every partition the client knows, and may arrive just after
            // a revocation: only a partition this member is fetching has a lag of its
            // own, or a sum over the group would count a moved partition twice.
            if stats.fetch_state == "active" && stats.consumer_lag >= 0 {
                self.lag
                    .with_label_values(&[&label])
                    .set(stats.consumer_lag);
            } else {
                let _ = self.lag.remove_label_values(&[&label]);
            }
        }
    }

    fn error(&self, error: RdKafkaError, reason: &str) {
        tracing::warn!(%error, reason, "Kafka consumer");
    }
}

impl ConsumerContext for MemberContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        list: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => self.assign(consumer, list),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => self.revoke(consumer, list),
            other => {
                tracing::error!(error = ?other, "consumer group rebalance failed; leaving the assignment as it is");
            }
        }
    }
}
