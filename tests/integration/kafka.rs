//! The Kafka adapter against the real broker (Apache Kafka 4 of the local stack).

use std::collections::BTreeMap;

use flash_sale::adapters::kafka::{Kafka, KafkaError, TopicSpec};
use rskafka::client::partition::{Compression, UnknownTopicHandling};
use rskafka::record::Record;

use flash_sale::adapters::kafka::codec::partition_for;
use flash_sale::domain::coupon::CouponId;
use flash_sale::roles::Role;

use crate::fixtures::coupon_body;
use crate::helpers::{TestContext, free_port};

#[tokio::test(flavor = "multi_thread")]
async fn ensure_topic_is_idempotent_and_records_round_trip() {
    let ctx = TestContext::new().await;
    let kafka = Kafka::new(&ctx.settings.kafka);
    let topic = ctx.settings.kafka.orders_topic_name();
    assert!(topic.starts_with(&ctx.settings.kafka.topic_prefix));

    assert_eq!(
        kafka
            .ensure_topic(&topic, &TopicSpec::single_copy(2))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        kafka
            .ensure_topic(&topic, &TopicSpec::single_copy(2))
            .await
            .unwrap(),
        2
    );

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

#[tokio::test(flavor = "multi_thread")]
async fn a_topic_with_fewer_partitions_than_configured_is_used_as_it_is() {
    let ctx = TestContext::new().await;
    let kafka = Kafka::new(&ctx.settings.kafka);
    let topic = ctx.settings.kafka.orders_topic_name();
    // An operator made the topic by hand with one partition; the setting says 4.
    assert_eq!(
        kafka
            .ensure_topic(&topic, &TopicSpec::single_copy(1))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        kafka
            .ensure_topic(&topic, &TopicSpec::single_copy(4))
            .await
            .unwrap(),
        1
    );
    assert_eq!(ctx.settings.kafka.orders_partitions, 4);

    // The api role reports it at start (a warning) and publishes to the partition that
    // exists: coupons that would map to partitions 1-3 still sell.
    let app = ctx.spawn(Role::Api).await;
    let admin = app.admin_token(&ctx).await;
    let shopper = app.mint_token(&ctx, "shopper").await;
    let mut partitions_seen = std::collections::BTreeSet::new();
    for n in 0..8 {
        let coupon = app
            .coupon_id(&admin, &coupon_body(&format!("P{n}"), 5, -5, 3600))
            .await;
        partitions_seen.insert(partition_for(CouponId::new(coupon).unwrap(), 4));
        let (status, body) = app.purchase(&shopper, coupon, None).await;
        assert_eq!(status, 202, "coupon {coupon}: {body}");
    }
    assert!(partitions_seen.len() > 1, "{partitions_seen:?}");
    let client = kafka.client().await.unwrap();
    let partition = client
        .partition_client(topic, 0, UnknownTopicHandling::Error)
        .await
        .unwrap();
    let (_, high_watermark) = partition.fetch_records(0, 1..1_000_000, 100).await.unwrap();
    assert_eq!(high_watermark, 8, "every event on the one partition");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_created_topic_carries_its_min_insync_replicas() {
    use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
    use rdkafka::client::DefaultClientContext;

    let ctx = TestContext::new().await;
    let kafka = Kafka::new(&ctx.settings.kafka);
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
    let kafka = Kafka::new(&ctx.settings.kafka);
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
