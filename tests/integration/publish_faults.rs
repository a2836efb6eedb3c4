//! Publication faults between the api and the broker.

use std::time::Duration;

use crate::fault_proxy::KafkaFaultProxy;
use crate::fixtures::{OpenSale, answered, assert_sold_out_exactly, with_broker};
use crate::helpers::{TestContext, free_port};
use crate::private_servers::PrivateBroker;

/// The broker's answers to produce requests are lost for a while (the events are on
/// the log, the api never hears so) while shoppers buy and retry with their
/// Idempotency-Key. For each such event either the payment role claimed it first (the
/// api's release is refused and the shopper hears 202) or the api gave the unit back
/// first (the payment role skips it and the shopper hears 503, then retries). Either
/// way: every 202 is an order, no order without a 202, the stock sells out exactly,
/// nobody buys twice, and Redis stock + units sold == total.
#[tokio::test(flavor = "multi_thread")]
async fn lost_produce_answers_never_make_a_phantom_or_an_oversell() {
    const STOCK: i64 = 120;
    const SHOPPERS: usize = 160;
    let ctx = TestContext::new().await;
    let proxy_port = free_port();
    let broker = PrivateBroker::start_behind(proxy_port).await;
    let proxy = KafkaFaultProxy::start(proxy_port, broker.port).await;
    let settings = with_broker(&ctx, format!("127.0.0.1:{proxy_port}"), 1000);
    let sale = OpenSale::start(&ctx, settings, "Lost acks", STOCK).await;

    let (shoppers, counts) = sale
        .spawn_shoppers(&ctx, SHOPPERS, Duration::from_millis(25), true)
        .await;
    // A quarter sold.
    counts.wait_for_accepted(30).await;
    proxy.drop_produce_answers(true);
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.drop_produce_answers(false);

    let answered = answered(shoppers).await;
    assert!(proxy.dropped_answers() > 0, "the fault was felt");
    eprintln!(
        "produce answers lost: {}, purchases answered 503 meanwhile: {}",
        proxy.dropped_answers(),
        counts.busy()
    );
    assert_eq!(answered.len(), STOCK as usize, "sold out exactly");

    assert_sold_out_exactly(&ctx, sale.coupon, STOCK, &answered).await;

    sale.stop().await;
    drop(proxy);
}
