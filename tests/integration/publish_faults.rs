//! Publication faults between the api and the broker.

use std::time::Duration;

use deadpool_redis::redis::{self, AsyncCommands};
use flash_sale::domain::coupon::CouponId;
use flash_sale::roles::Role;

use crate::fault_proxy::{CutProxy, KafkaFaultProxy};
use crate::fixtures::{OpenSale, answered, assert_sold_out_exactly, reconciler, with_broker};
use crate::helpers::{TestApp, TestContext, free_port};
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
/// unreachable before the api can give the unit back: the shopper has heard 503 and the
/// unit is held with no order (stock 9 of 10) while Redis stays away. Stock and buyer
/// records still agree, so the drift audit cannot see it: the api retries the give-back.
struct HeldUnit {
    _redis: PrivateRedis,
    proxy: CutProxy,
    _broker: PrivateBroker,
    ctx: TestContext,
    settings: flash_sale::config::Settings,
    coupon: i64,
    direct: redis::aio::MultiplexedConnection,
}

impl HeldUnit {
    /// The scene, and the api that holds the unit.
    async fn start() -> (Self, TestApp) {
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
        let ((status, body), cut) =
            tokio::join!(app.purchase(&bob, coupon, None), cut_after_reserve);
        assert!(cut, "the purchase reserved a unit");
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (503, Some("SERVER_BUSY")),
            "{body}"
        );
        // Retries meet the cut too (after 0.25, 0.75 and 1.75 s; the next at 3.75 s).
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut scene = Self {
            _redis: redis,
            proxy,
            _broker: broker,
            ctx,
            settings,
            coupon,
            direct,
        };
        assert_eq!(
            scene.stock().await,
            Some(9),
            "the unit is held with no order while Redis is away"
        );
        (scene, app)
    }

    async fn stock(&mut self) -> Option<i64> {
        let key = self.ctx.keys().coupon_stock(self.coupon);
        self.direct.get(&key).await.unwrap()
    }

    /// Waits (up to 10 s) for the unit to be back.
    async fn assert_given_back(&mut self) {
        let mut stock = None;
        for _ in 0..100 {
            stock = self.stock().await;
            if stock == Some(10) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(stock, Some(10), "the retried give-back returned the unit");
        let audit = reconciler(&self.settings)
            .gate
            .audit(CouponId::new(self.coupon).unwrap())
            .await
            .unwrap();
        assert_eq!(audit, (Some(10), 0), "no buyer holds a unit");
    }
}

/// Once Redis answers, the unit is back, never counted as held
/// (`purchase_units_held_total`).
#[tokio::test(flavor = "multi_thread")]
async fn a_unit_redis_did_not_take_back_is_given_back_once_redis_answers() {
    let (mut scene, app) = HeldUnit::start().await;
    scene.proxy.cut(false);
    scene.assert_given_back().await;
    assert_eq!(
        app.metric(&format!(
            "flash_sale_purchase_units_held_total{{coupon=\"{}\"}}",
            scene.coupon
        ))
        .await,
        0.0,
        "nothing was left held"
    );
    app.stop().await;
}

/// Redis answers again just before the api stops, with the next retry seconds away: a
/// stopping api keeps trying its waiting give-backs for a moment, and the unit is back.
#[tokio::test(flavor = "multi_thread")]
async fn a_stopping_api_tries_its_waiting_give_backs_once_more() {
    let (mut scene, app) = HeldUnit::start().await;
    scene.proxy.cut(false);
    app.stop().await;
    scene.assert_given_back().await;
}
