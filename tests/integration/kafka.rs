//! The Kafka adapter against the real broker (tansu).

use std::collections::BTreeMap;

use flash_sale::adapters::kafka::{Kafka, KafkaError};
use rskafka::client::partition::{Compression, UnknownTopicHandling};
use rskafka::record::Record;

use crate::helpers::{TestContext, free_port};

#[tokio::test(flavor = "multi_thread")]
async fn ensure_topic_is_idempotent_and_records_round_trip() {
    let ctx = TestContext::new().await;
    let kafka = Kafka::new(&ctx.settings.kafka);
    let topic = ctx.settings.kafka.orders_topic_name();
    assert!(topic.starts_with(&ctx.settings.kafka.topic_prefix));

    kafka.ensure_topic(&topic, 2).await.unwrap();
    kafka.ensure_topic(&topic, 2).await.unwrap();

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
    // lz4: uncompressed produce stalls ~46 ms per call against tansu (see DESIGN.md).
    let offsets = partition.produce(records, Compression::Lz4).await.unwrap();
    assert_eq!(offsets.len(), 10);

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
    let kafka = Kafka::new(&settings);
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
