//! The Kafka adapter against the real broker (Apache Kafka 4 of the local stack).

use std::collections::BTreeMap;

use flash_sale::adapters::kafka::{Kafka, KafkaError, TopicSpec};
use rskafka::client::partition::{Compression, UnknownTopicHandling};
use rskafka::record::Record;

use flash_sale::roles::{Role, StartupError};

use crate::helpers::{TestContext, free_port};

#[tokio::test(flavor = "multi_thread")]
async fn ensure_topic_is_idempotent_and_records_round_trip() {
    let ctx = TestContext::new().await;
    let kafka = Kafka::new(&ctx.settings.kafka).unwrap();
    let topic = ctx.settings.kafka.orders_topic_name();
    assert!(topic.starts_with(&ctx.settings.kafka.topic_prefix));

    for _ in 0..2 {
        kafka
            .ensure_topic(&topic, &TopicSpec::single_copy(2))
            .await
            .unwrap();
    }
    assert_eq!(kafka.partition_count(&topic).await.unwrap(), Some(2));

    let client = kafka.client().await.unwrap();
    let partition = client
        .partition_client(topic.clone(), 1, UnknownTopicHandling::Error)
        .await
        .unwrap();
    let records: Vec<Record> = (0..10)
        .map(|i| Record {
            key: Some(b"coupon-1".to_vec()),
            value: Some(format!("event {i}").into_bytes()),
            headers: BTreeMap::new(),
            timestamp: chrono::Utc::now(),
        })
        .collect();
    // Both codecs the producer may use, each a batch of its own.
    let offsets = partition
        .produce(records[..5].to_vec(), Compression::Lz4)
        .await
        .unwrap();
    assert_eq!(offsets, (0..5).collect::<Vec<i64>>());
    let offsets = partition
        .produce(records[5..].to_vec(), Compression::Zstd)
        .await
        .unwrap();
    assert_eq!(offsets, (5..10).collect::<Vec<i64>>());

    let (fetched, high_watermark) = partition
        .fetch_records(0, 1..1_000_000, 1_000)
        .await
        .unwrap();
    assert_eq!(high_watermark, 10);
    let values: Vec<String> = fetched
        .iter()
        .map(|r| String::from_utf8(r.record.value.clone().unwrap()).unwrap())
        .collect();
    assert_eq!(
        values,
        (0..10).map(|i| format!("event {i}")).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_broker_fails_within_the_timeout() {
    let ctx = TestContext::new().await;
    let mut settings = ctx.settings.kafka.clone();
    settings.brokers = vec![format!("127.0.0.1:{}", free_port())];
    settings.timeout_ms = 500;
    let kafka = Kafka::new(&settings).unwrap();
    let started = std::time::Instant::now();
    let result = kafka.ping().await;
    assert!(
        matches!(
            result,
            Err(KafkaError::Unavailable(_) | KafkaError::Timeout(_))
        ),
        "{:?}",
        result.err()
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

/// The orders topic made by hand with another partition count than
/// `kafka.orders_partitions`: neither role that writes or reads it starts, and the error
/// says which setting and both numbers.
#[tokio::test(flavor = "multi_thread")]
async fn an_orders_topic_with_another_partition_count_stops_the_start() {
    let ctx = TestContext::new().await;
    let kafka = Kafka::new(&ctx.settings.kafka).unwrap();
    let topic = ctx.settings.kafka.orders_topic_name();
    assert_eq!(ctx.settings.kafka.orders_partitions, 4);
    kafka
        .ensure_topic(&topic, &TopicSpec::single_copy(1))
        .await
        .unwrap();
    let error = kafka
        .ensure_topic(&topic, &TopicSpec::single_copy(4))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            KafkaError::PartitionCount {
                expected: 4,
                actual: 1,
                ..
            }
        ),
        "{error}"
    );

    for role in [Role::Api, Role::Payment] {
        let Err(error) = flash_sale::roles::start(ctx.settings.clone(), role).await else {
            panic!("{role:?} started against a topic of 1 partition, 4 configured");
        };
        let StartupError::Configuration(message) = &error else {
            panic!("{role:?}: not a configuration error: {error}");
        };
        for part in [
            "kafka.orders_partitions = 4",
            &format!("{topic} has 1 partitions"),
            "idle",
            "set kafka.orders_partitions = 1",
        ] {
            assert!(message.contains(part), "{role:?}: {part:?} in {message}");
        }
    }

    // More partitions than configured is refused too: Kafka cannot remove them.
    let mut wider = ctx.settings.clone();
    wider.kafka.orders_topic = format!("{}-wide", wider.kafka.orders_topic);
    let wide = wider.kafka.orders_topic_name();
    kafka
        .ensure_topic(&wide, &TopicSpec::single_copy(6))
        .await
        .unwrap();
    let Err(StartupError::Configuration(message)) =
        flash_sale::roles::start(wider, Role::Payment).await
    else {
        panic!("payment started against a topic of 6 partitions, 4 configured");
    };
    assert!(message.contains("has 6 partitions"), "{message}");
    assert!(message.contains("cannot remove partitions"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_created_topic_carries_its_min_insync_replicas() {
    use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
    use rdkafka::client::DefaultClientContext;

    let ctx = TestContext::new().await;
    let kafka = Kafka::new(&ctx.settings.kafka).unwrap();
    let topic = ctx.settings.kafka.orders_topic_name();
    kafka
        .ensure_topic(&topic, &TopicSpec::single_copy(2))
        .await
        .unwrap();

    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", ctx.settings.kafka.brokers.join(","))
        .create()
        .unwrap();
    let described = admin
        .describe_configs([&ResourceSpecifier::Topic(&topic)], &AdminOptions::new())
        .await
        .unwrap();
    let config = described.into_iter().next().unwrap().unwrap();
    let entry = config.get("min.insync.replicas").unwrap();
    assert_eq!(entry.value.as_deref(), Some("1"));
    assert!(
        !entry.is_default,
        "set on the topic, not inherited: {entry:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn more_replicas_than_brokers_is_a_clear_error() {
    let ctx = TestContext::new().await;
    let kafka = Kafka::new(&ctx.settings.kafka).unwrap();
    let topic = ctx.settings.kafka.orders_topic_name();
    let spec = TopicSpec {
        partitions: 4,
        replication_factor: 3,
        min_insync_replicas: 2,
    };
    let error = kafka.ensure_topic(&topic, &spec).await.unwrap_err();
    assert!(error.to_string().contains("replication factor"), "{error}");
    assert_eq!(kafka.partition_count(&topic).await.unwrap(), None);
}
