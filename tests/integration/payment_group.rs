//! The payment instances as one Kafka consumer group: the broker assigns partitions,
//! offsets live in MySQL with the orders, and an owner that lost its partitions is
//! fenced by the epoch its successor claimed.

use std::collections::BTreeSet;
use std::time::Duration;

use flash_sale::adapters::mysql::consumer_offsets::{self, CommitError};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::fixtures::{committed_offsets, count_orders, publish_stream, stored_ids};
use crate::helpers::{ChildApp, TestContext, eventually};

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_owner_cannot_commit_after_the_partition_is_claimed_again() {
    let ctx = TestContext::new().await;
    let topic = ctx.settings.kafka.orders_topic_name();
    let mut conn = ctx.mysql().await;

    let first = consumer_offsets::claim(&mut conn, &topic, 0).await.unwrap();
    assert_eq!(first.next_offset, 0, "nothing consumed yet");
    consumer_offsets::commit(&mut conn, &topic, 0, 40, first.epoch)
        .await
        .unwrap();

    let second = consumer_offsets::claim(&mut conn, &topic, 0).await.unwrap();
    assert!(second.epoch > first.epoch, "{second:?} after {first:?}");
    assert_eq!(
        second.next_offset, 40,
        "the successor starts where it ended"
    );

    let stale = consumer_offsets::commit(&mut conn, &topic, 0, 90, first.epoch).await;
    assert!(matches!(stale, Err(CommitError::Fenced(_))), "{stale:?}");
    consumer_offsets::commit(&mut conn, &topic, 0, 55, second.epoch)
        .await
        .unwrap();
    let third = consumer_offsets::claim(&mut conn, &topic, 0).await.unwrap();
    assert_eq!(third.next_offset, 55, "the stale commit left no trace");
}

/// Freezes (SIGSTOP) one of two instances mid-backlog, long past its session: the
/// broker gives its partitions to the other, which claims them. Woken (SIGCONT), the
/// frozen one still holds records it read before; its commit is refused (fenced), it
/// rejoins, and the group shares the partitions again. Every event becomes exactly one
/// order, every order is paid, and the broker's view of the group's progress matches
/// MySQL's.
#[tokio::test(flavor = "multi_thread")]
async fn a_frozen_instance_is_fenced_and_nothing_is_doubled() {
    let ctx = TestContext::new().await;
    let partitions = ctx.settings.kafka.orders_partitions;
    let owned = "flash_sale_payment_owned_partitions";
    // A small, slow pool keeps `a` behind, with records read but not yet written.
    let slow = [
        ("FLASH__PAYMENT__POOL_SIZE", "4"),
        ("FLASH__PAYMENT__QUEUE", "16"),
        ("FLASH__PAYMENT__GATEWAY_LATENCY_MS", "50"),
    ];
    let a = ChildApp::start_with(&ctx, "payment", &slow).await;
    let b = ChildApp::start(&ctx, "payment").await;
    eventually(Duration::from_secs(30), "partitions shared", || async {
        a.metric(owned).await + b.metric(owned).await == f64::from(partitions)
            && a.metric(owned).await > 0.0
            && b.metric(owned).await > 0.0
    })
    .await;

    let total = 4_000;
    let ids = publish_stream(&ctx, total).await;
    eventually(Duration::from_secs(30), "some orders written", || async {
        count_orders(&ctx, None).await >= 300
    })
    .await;
    a.signal("STOP");
    // The group expels the frozen member after its session timeout, then waits for the
    // survivor to rejoin between batches; on a loaded two-core machine that has taken
    // longer than 60 s.
    eventually(
        Duration::from_secs(120),
        "the survivor owns every partition",
        || async { b.metric(owned).await == f64::from(partitions) },
    )
    .await;
    a.signal("CONT");

    eventually(
        Duration::from_secs(30),
        "the woken instance was fenced",
        || async { a.metric("flash_sale_payment_fenced_batches_total").await > 0.0 },
    )
    .await;
    eventually(Duration::from_secs(120), "every order paid", || async {
        count_orders(&ctx, Some("PAID")).await == i64::try_from(total).unwrap()
    })
    .await;
    let stored = stored_ids(&ctx).await;
    assert_eq!(stored.len(), total, "no order doubled");
    assert_eq!(stored.into_iter().collect::<BTreeSet<_>>(), ids);
    assert_eq!(committed_offsets(&ctx).await, i64::try_from(total).unwrap());
    eventually(
        Duration::from_secs(30),
        "the woken instance rejoined",
        || async {
            a.metric(owned).await > 0.0
                && a.metric(owned).await + b.metric(owned).await == f64::from(partitions)
        },
    )
    .await;
    eventually(
        Duration::from_secs(30),
        "the broker's committed offsets match MySQL's",
        || async { broker_committed(&ctx).await == i64::try_from(total).unwrap() },
    )
    .await;
}

/// The sum of the offsets the payment group committed to the broker.
async fn broker_committed(ctx: &TestContext) -> i64 {
    let kafka = &ctx.settings.kafka;
    let group = format!("{}{}", kafka.topic_prefix, ctx.settings.payment.group_id);
    let topic = kafka.orders_topic_name();
    let brokers = kafka.brokers.join(",");
    let partitions = kafka.orders_partitions;
    tokio::task::spawn_blocking(move || {
        // Reads the group's offsets without joining it (no subscription).
        let reader: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", group)
            .create()
            .expect("consumer");
        let mut list = TopicPartitionList::new();
        for partition in 0..partitions {
            list.add_partition(&topic, partition);
        }
        let committed = reader
            .committed_offsets(list, Duration::from_secs(5))
            .expect("committed offsets");
        committed
            .elements()
            .iter()
            .map(|e| match e.offset() {
                Offset::Offset(n) => n,
                _ => 0,
            })
            .sum()
    })
    .await
    .unwrap()
}
