//! Publication faults between the api and the broker.

use std::time::Duration;

use deadpool_redis::redis::{self, AsyncCommands};
use flash_sale::domain::coupon::CouponId;
use flash_sale::roles::Role;

use crate::fault_proxy::{CutProxy, KafkaFaultProxy};
use crate::fixtures::{OpenSale, answered, assert_sold_out_exactly, reconciler, with_broker};
use crate::helpers::{TestContext, free_port};
use crate::private_servers::{PrivateBroker, PrivateRedis};

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

/// The broker is down, so a purchase's event cannot be published, and Redis becomes
/// unreachable before the api can give the unit back: the shopper hears 503 and the unit
/// stays held with no order. Stock and buyer records still agree, so the drift audit
/// cannot see it; the api retries the give-back in the background, and once Redis answers
/// the unit is back, never counted as held (`purchase_units_held_total`).
#[tokio::test(flavor = "multi_thread")]
async fn a_unit_redis_did_not_take_back_is_given_back_once_redis_answers() {
    let redis = PrivateRedis::start().await;
    let redis_port: u16 = redis.url.rsplit(':').next().unwrap().parse().unwrap();
    let proxy = CutProxy::start(redis_port).await;
    let mut ctx = TestContext::new().await;
    ctx.use_redis(&format!("redis://127.0.0.1:{}", proxy.port));
    let mut broker = PrivateBroker::start_fresh().await;
    let settings = with_broker(&ctx, broker.address(), 1500);
    let app = ctx.spawn_with(Role::Api, settings.clone()).await;
    let coupon = app.open_coupon(&ctx, "Held", 10).await;
    let bob = app.mint_token(&ctx, "bob").await;
    let mut direct = redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let stock_key = ctx.keys().coupon_stock(coupon);

    broker.kill();
    // Redis is cut once the unit is reserved, while the api still waits for the broker.
    let cut_after_reserve = async {
        for _ in 0..200 {
            let stock: Option<i64> = direct.get(&stock_key).await.unwrap();
            if stock == Some(9) {
                proxy.cut(true);
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    };
    let ((status, body), cut) = tokio::join!(app.purchase(&bob, coupon, None), cut_after_reserve);
    assert!(cut, "the purchase reserved a unit");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("SERVER_BUSY")),
        "{body}"
    );
    // A few retries meet the cut too.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stock: Option<i64> = direct.get(&stock_key).await.unwrap();
    assert_eq!(
        stock,
        Some(9),
        "the unit is held with no order while Redis is away"
    );

    proxy.cut(false);
    let mut stock = None;
    for _ in 0..100 {
        stock = direct.get(&stock_key).await.unwrap();
        if stock == Some(10) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stock, Some(10), "the retried give-back returned the unit");
    let audit = reconciler(&settings)
        .gate
        .audit(CouponId::new(coupon).unwrap())
        .await
        .unwrap();
    assert_eq!(audit, (Some(10), 0), "no buyer holds a unit");
    assert_eq!(
        app.metric(&format!(
            "flash_sale_purchase_units_held_total{{coupon=\"{coupon}\"}}"
        ))
        .await,
        0.0,
        "nothing was left held"
    );
    app.stop().await;
}
