//! The flash purchase against real Redis, Kafka (tansu) and MariaDB: exact counts under
//! racing, the Kafka hand-off and its compensation, windows, idempotency, reconciling.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use deadpool_redis::redis::AsyncCommands;
use flash_sale::domain::coupon::CouponId;
use flash_sale::roles::Role;
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};

use crate::fixtures::{coupon_body, coupon_events, reconciler, redis_stock, with_broker};
use crate::helpers::TestContext;
use crate::private_servers::PrivateBroker;

/// 500 users × 4 concurrent attempts on stock 100: exactly the stock is sold, to
/// distinct users within the limit, with exactly one event per sale.
async fn race(limit: i64) {
    let ctx = TestContext::new().await;
    let app = ctx.spawn(Role::Api).await;
    let admin = app.admin_token(&ctx).await;
    let mut body = coupon_body("Race", 100, -5, 3600);
    body["per_user_limit"] = json!(limit);
    let coupon = app.coupon_id(&admin, &body).await;

    let mut tokens = Vec::new();
    for user in 0..500 {
        tokens.push((
            format!("racer-{user}"),
            app.mint_token(&ctx, &format!("racer-{user}")).await,
        ));
    }
    let attempts: Vec<(String, String)> = tokens
        .iter()
        .flat_map(|(user, token)| std::iter::repeat_n((user.clone(), token.clone()), 4))
        .collect();
    let answers: Vec<(String, u16, Value)> = futures_util::stream::iter(attempts)
        .map(|(user, token)| {
            let app = &app;
            async move {
                // A 503 decided nothing (its unit was given back): retry as a client
                // told Retry-After would, so a slow moment of the machine cannot
                // leave a unit unsold.
                loop {
                    let (status, body) = app.purchase(&token, coupon, None).await;
                    if status != 503 {
                        return (user, status, body);
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        })
        .buffer_unordered(400)
        .collect()
        .await;

    let accepted: Vec<&(String, u16, Value)> =
        answers.iter().filter(|(_, s, _)| *s == 202).collect();
    assert_eq!(accepted.len(), 100, "exactly the stock is sold");
    let mut per_user: BTreeMap<&str, i64> = BTreeMap::new();
    for (user, _, body) in &accepted {
        assert_eq!(body["status"], "PENDING");
        *per_user.entry(user.as_str()).or_default() += 1;
    }
    assert!(
        per_user.values().all(|units| *units <= limit),
        "no user over the limit: {per_user:?}"
    );
    if limit == 1 {
        assert_eq!(per_user.len(), 100, "100 distinct users");
    }
    for (_, status, body) in answers.iter().filter(|(_, s, _)| *s != 202) {
        let code = body["error"]["code"].as_str().unwrap_or_default();
        assert!(
            *status == 409 && (code == "SOLD_OUT" || code == "PURCHASE_LIMIT_REACHED"),
            "unexpected answer {status} {body}"
        );
    }
    assert_eq!(redis_stock(&ctx, coupon).await, Some(0));
    let (_, stock) = app.get_json(&format!("/api/coupons/{coupon}/stock")).await;
    assert_eq!(stock["remaining"], 0);

    let events = coupon_events(&ctx.settings.kafka, coupon).await;
    assert_eq!(events.len(), 100, "exactly one event per sale");
    let event_orders: BTreeSet<String> = events.iter().map(|e| e.order_id.to_string()).collect();
    let answered: BTreeSet<String> = accepted
        .iter()
        .map(|(_, _, b)| b["order_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(event_orders, answered, "the events are the accepted orders");
    assert!(events.iter().all(|e| e.price_cents == 500));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn race_sells_exactly_the_stock_with_limit_one() {
    race(1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn race_sells_exactly_the_stock_with_limit_three() {
    race(3).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn windows_deleted_and_unknown_coupons() {
    let ctx = TestContext::new().await;
    let app = ctx.spawn(Role::Api).await;
    let admin = app.admin_token(&ctx).await;
    let token = app.mint_token(&ctx, "window-user").await;

    let soon = app
        .coupon_id(&admin, &coupon_body("Soon", 5, 2, 3600))
        .await;
    let (status, body) = app.purchase(&token, soon, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("SALE_NOT_STARTED"))
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        app.purchase(&token, soon, None).await.0,
        202,
        "open from its first instant"
    );

    let ending = app
        .coupon_id(&admin, &coupon_body("Ending", 5, -5, 6))
        .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = app.purchase(&token, ending, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("SALE_ENDED"))
    );

    let gone = app
        .coupon_id(&admin, &coupon_body("Gone", 5, -5, 3600))
        .await;
    app.send(
        Method::DELETE,
        &format!("/api/admin/coupons/{gone}"),
        Some(&admin),
        None,
    )
    .await;
    let (status, body) = app.purchase(&token, gone, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("COUPON_NOT_FOUND"))
    );

    let (status, body) = app.purchase(&token, 987_654, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("COUPON_NOT_FOUND"))
    );
    let (status, body) = app
        .send(
            Method::POST,
            "/api/coupons/abc/purchase",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("INVALID_REQUEST"))
    );
    let (status, _) = app
        .send(
            Method::POST,
            &format!("/api/coupons/{soon}/purchase"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 401);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn idempotency_key_returns_the_first_answer_and_orders_are_readable() {
    let ctx = TestContext::new().await;
    let app = ctx.spawn(Role::Api).await;
    let coupon = app.open_coupon(&ctx, "Once", 10).await;
    let token = app.mint_token(&ctx, "double-clicker").await;

    let (status, first) = app.purchase(&token, coupon, Some("click-1")).await;
    assert_eq!(status, 202, "{first}");
    let (status, again) = app.purchase(&token, coupon, Some("click-1")).await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(
        first["order_id"], again["order_id"],
        "a retry gets the first answer"
    );
    assert_eq!(redis_stock(&ctx, coupon).await, Some(9), "sold once");
    let (status, other) = app.purchase(&token, coupon, Some("click-2")).await;
    assert_eq!(
        (status, other["error"]["code"].as_str()),
        (409, Some("PURCHASE_LIMIT_REACHED"))
    );
    let long_key = "k".repeat(200);
    let (status, _) = app.purchase(&token, coupon, Some(&long_key)).await;
    assert_eq!(status, 400);
    assert_eq!(coupon_events(&ctx.settings.kafka, coupon).await.len(), 1);

    // Accepted but not yet written by the payment role: readable as PENDING.
    let order_id = first["order_id"].as_str().unwrap();
    let (status, order) = app
        .get_authed(&format!("/api/orders/{order_id}"), &token)
        .await;
    assert_eq!(status, 200, "{order}");
    assert_eq!(order["status"], "PENDING");
    assert_eq!(order["coupon_id"], coupon);
    let (status, list) = app.get_authed("/api/orders", &token).await;
    assert_eq!(status, 200);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["order_id"], order_id);
    // Someone else's order is not found, nor is a made-up one.
    let stranger = app.mint_token(&ctx, "stranger").await;
    let (status, body) = app
        .get_authed(&format!("/api/orders/{order_id}"), &stranger)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("ORDER_NOT_FOUND"))
    );
    assert_eq!(
        app.get_authed("/api/orders/not-a-uuid", &token).await.0,
        404
    );
    let (_, list) = app.get_authed("/api/orders", &stranger).await;
    assert_eq!(list["items"], json!([]));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn broker_down_means_503_and_nothing_sold_then_purchases_resume() {
    let ctx = TestContext::new().await;
    let mut broker = PrivateBroker::start_fresh().await;
    let settings = with_broker(&ctx, broker.address(), 1500);
    let app = ctx.spawn_with(Role::Api, settings.clone()).await;
    let coupon = app.open_coupon(&ctx, "Outage", 10).await;
    let alice = app.mint_token(&ctx, "alice").await;
    let bob = app.mint_token(&ctx, "bob").await;
    assert_eq!(app.purchase(&alice, coupon, None).await.0, 202);
    assert_eq!(redis_stock(&ctx, coupon).await, Some(9));

    broker.kill();
    let started = std::time::Instant::now();
    let (status, body) = app.purchase(&bob, coupon, Some("bob-1")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("SERVER_BUSY")),
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "answered within the timeout"
    );
    assert_eq!(
        redis_stock(&ctx, coupon).await,
        Some(9),
        "the unit was given back"
    );
    let mut redis = ctx.redis().await;
    let buyers: Vec<String> = redis
        .smembers(ctx.keys().coupon_buyers(coupon))
        .await
        .unwrap();
    assert_eq!(buyers, ["alice"], "bob's buyer record was removed");

    broker.restart().await;
    assert_eq!(
        coupon_events(&settings.kafka, coupon).await.len(),
        1,
        "nothing of bob's on the topic"
    );
    // The client reconnects on its own; allow it a few attempts.
    let mut status = 0;
    for _ in 0..20 {
        status = app.purchase(&bob, coupon, Some("bob-1")).await.0;
        if status == 202 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(status, 202, "purchases work again once the broker is back");
    assert_eq!(redis_stock(&ctx, coupon).await, Some(8));
    assert_eq!(coupon_events(&settings.kafka, coupon).await.len(), 2);
    app.stop().await;
}

/// Redis loses the sale mid-sale: the next purchase answers 503 SERVER_BUSY and starts
/// a rebuild from MySQL and Kafka; purchases wait (503) until it is done, then sell the
/// rest exactly. A reconcile run by hand afterwards changes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_lost_sale_state_is_rebuilt_automatically() {
    let ctx = TestContext::new().await;
    let app = ctx.spawn(Role::Api).await;
    let coupon = app.open_coupon(&ctx, "Lost", 20).await;
    let buyers = app.sell_one_each(&ctx, coupon, "early", 5).await;
    assert_eq!(redis_stock(&ctx, coupon).await, Some(15));

    // Redis loses the namespace mid-sale.
    assert!(ctx.delete_redis_keys().await > 0);
    let newcomer = app.mint_token(&ctx, "newcomer").await;
    let (status, body) = app.purchase(&newcomer, coupon, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("SERVER_BUSY")),
        "no sale state: wait rather than oversell"
    );
    buy_once_rebuilt(&app, &newcomer, coupon).await;
    assert_eq!(redis_stock(&ctx, coupon).await, Some(14));
    for (token, _) in &buyers {
        let (status, body) = app.purchase(token, coupon, None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (409, Some("PURCHASE_LIMIT_REACHED"))
        );
    }

    // Idempotent: a run by hand afterwards finds the same.
    let report = reconciler(&ctx.settings)
        .reconcile(CouponId::new(coupon).unwrap())
        .await
        .unwrap();
    assert_eq!(
        (
            report.previous_stock,
            report.stock,
            report.buyers,
            report.units_in_flight
        ),
        (Some(14), 14, 6, 6),
        "no payment role: every sale is an unconsumed event"
    );
    app.stop().await;
}

/// The MySQL strategies (compiled into benchmark builds only) keep the same promise
/// under racing.
#[cfg(feature = "bench")]
#[tokio::test(flavor = "multi_thread")]
async fn mysql_strategies_also_sell_exactly_the_stock() {
    use flash_sale::config::PurchaseStrategy;
    for strategy in [
        PurchaseStrategy::MysqlPessimistic,
        PurchaseStrategy::MysqlOptimistic,
    ] {
        let ctx = TestContext::new().await;
        let mut settings = ctx.settings.clone();
        settings.purchase.strategy = strategy;
        let app = ctx.spawn_with(Role::Api, settings).await;
        let coupon = app.open_coupon(&ctx, "Locked", 20).await;
        let mut tokens = Vec::new();
        for n in 0..50 {
            tokens.push(app.mint_token(&ctx, &format!("locker-{n}")).await);
        }
        let attempts: Vec<String> = tokens.iter().flat_map(|t| [t.clone(), t.clone()]).collect();
        let statuses: Vec<(u16, Value)> = futures_util::stream::iter(attempts)
            .map(|token| {
                let app = &app;
                async move { app.purchase(&token, coupon, None).await }
            })
            .buffer_unordered(50)
            .collect()
            .await;
        let accepted = statuses.iter().filter(|(s, _)| *s == 202).count();
        assert_eq!(accepted, 20, "{strategy:?}");
        for (status, body) in statuses.iter().filter(|(s, _)| *s != 202) {
            let code = body["error"]["code"].as_str().unwrap_or_default();
            assert!(
                *status == 409 && (code == "SOLD_OUT" || code == "PURCHASE_LIMIT_REACHED"),
                "{strategy:?}: {status} {body}"
            );
        }
        assert_eq!(
            coupon_events(&ctx.settings.kafka, coupon).await.len(),
            20,
            "{strategy:?}"
        );
        app.stop().await;
    }
}

/// Redis loses a live sale's keys, then the api restarts: its start-up warm-up must not
/// re-create the stock at the full quantity (that sold 16 of 10 before). The sale answers
/// 503 until a reconcile rebuilds it.
#[tokio::test(flavor = "multi_thread")]
async fn lost_sale_state_is_not_recreated_by_a_restart() {
    let ctx = TestContext::new().await;
    let app = ctx.spawn(Role::Api).await;
    let coupon = app.open_coupon(&ctx, "Lost keys", 10).await;
    app.sell_one_each(&ctx, coupon, "early", 6).await;
    ctx.delete_redis_keys().await;
    app.stop().await;

    let app = ctx.spawn(Role::Api).await;
    let admin = app.admin_token(&ctx).await;
    assert_eq!(redis_stock(&ctx, coupon).await, None, "not re-created");
    for n in 0..10 {
        let token = app.mint_token(&ctx, &format!("newcomer-{n}")).await;
        let (status, body) = app.purchase(&token, coupon, None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (503, Some("SERVER_BUSY")),
            "newcomer {n}: {body}"
        );
    }
    // An admin edit does not re-create it either.
    let mut edit = coupon_body("Lost keys", 10, -5, 3600);
    edit["description"] = json!("edited while the state is lost");
    let (status, body) = app
        .send(
            Method::PUT,
            &format!("/api/admin/coupons/{coupon}"),
            Some(&admin),
            Some(&edit),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(redis_stock(&ctx, coupon).await, None);
    app.stop().await;
}

/// A sold-out sale is postponed, edited and moved back: the stock stays what is left
/// (it was reset to the total while the buyers stayed, selling 4 of 2), and the total
/// cannot change while units are sold.
#[tokio::test(flavor = "multi_thread")]
async fn postponing_and_editing_a_sold_sale_never_resets_its_stock() {
    let ctx = TestContext::new().await;
    let app = ctx.spawn(Role::Api).await;
    let admin = app.admin_token(&ctx).await;
    let coupon = app
        .coupon_id(&admin, &coupon_body("Moved", 2, -5, 3600))
        .await;
    app.sell_one_each(&ctx, coupon, "first", 2).await;
    assert_eq!(redis_stock(&ctx, coupon).await, Some(0));
    let path = format!("/api/coupons/{coupon}");
    let admin_path = format!("/api/admin/coupons/{coupon}");
    let put = |body: Value| {
        let (app, admin, admin_path) = (&app, &admin, &admin_path);
        async move {
            app.send(Method::PUT, admin_path, Some(admin), Some(&body))
                .await
        }
    };

    let postponed = coupon_body("Moved", 2, 3600, 3600);
    assert_eq!(put(postponed.clone()).await.0, 200);
    let mut described = postponed.clone();
    described["description"] = json!("now with a better description");
    assert_eq!(put(described).await.0, 200);
    let mut bigger = postponed.clone();
    bigger["total_quantity"] = json!(5);
    let (status, body) = put(bigger).await;
    assert_eq!(
        (
            status,
            body["error"]["code"].as_str(),
            body["error"]["field"].as_str()
        ),
        (409, Some("SALE_IN_PROGRESS"), Some("total_quantity")),
        "{body}"
    );
    assert_eq!(
        app.get_json(&path).await.1["total_quantity"],
        2,
        "row put back"
    );
    assert_eq!(put(coupon_body("Moved", 2, -5, 3600)).await.0, 200);

    assert_eq!(redis_stock(&ctx, coupon).await, Some(0), "still sold out");
    for n in 0..2 {
        let token = app.mint_token(&ctx, &format!("later-{n}")).await;
        let (status, body) = app.purchase(&token, coupon, None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (409, Some("SOLD_OUT"))
        );
    }

    // Before anything is sold, a new total moves the stock with it.
    let fresh = app
        .coupon_id(&admin, &coupon_body("Resized", 3, 3600, 3600))
        .await;
    let (status, body) = app
        .send(
            Method::PUT,
            &format!("/api/admin/coupons/{fresh}"),
            Some(&admin),
            Some(&coupon_body("Resized", 7, 3600, 3600)),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(redis_stock(&ctx, fresh).await, Some(7));
    app.stop().await;
}

/// Redis answers after the client's timeout: the shopper heard 503, yet the script ran
/// (a unit reserved, the idempotency record written) and no event was published. The
/// retry with the same Idempotency-Key must get an order that exists, not an id whose
/// GET is 404 forever.
#[tokio::test(flavor = "multi_thread")]
async fn a_retry_after_a_redis_stall_gets_an_order_that_exists() {
    let mut ctx = TestContext::new().await;
    let private = crate::private_servers::PrivateRedis::start().await;
    ctx.use_redis(&private.url);
    let app = ctx.spawn(Role::Api).await;
    let coupon = app.open_coupon(&ctx, "Stalled", 5).await;
    let token = app.mint_token(&ctx, "patient").await;
    let timeout_ms = ctx.settings.redis.timeout_ms;
    // One purchase first: this Redis is new, and the script must be loaded (as it is in
    // any running shop) for the stalled call to run at all.
    let early = app.mint_token(&ctx, "early").await;
    assert_eq!(app.purchase(&early, coupon, None).await.0, 202);

    // Writes (and scripts) wait past the client's timeout, then run.
    let mut redis = ctx.redis().await;
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(timeout_ms * 2 + 500)
        .arg("WRITE")
        .query_async(&mut redis)
        .await
        .unwrap();
    let (status, body) = app.purchase(&token, coupon, Some("intent-1")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("SERVER_BUSY")),
        "{body}"
    );
    crate::helpers::eventually(
        Duration::from_secs(10),
        "the stalled script ran",
        || async { redis_stock(&ctx, coupon).await == Some(3) },
    )
    .await;
    assert_eq!(
        coupon_events(&ctx.settings.kafka, coupon).await.len(),
        1,
        "nothing published but the early purchase"
    );

    let (status, body) = app.purchase(&token, coupon, Some("intent-1")).await;
    assert_eq!(status, 202, "{body}");
    let order_id = body["order_id"].as_str().unwrap().to_owned();
    let (status, order) = app
        .get_authed(&format!("/api/orders/{order_id}"), &token)
        .await;
    assert_eq!(status, 200, "the order exists: {order}");
    let published: Vec<String> = coupon_events(&ctx.settings.kafka, coupon)
        .await
        .iter()
        .map(|e| e.order_id.to_string())
        .filter(|id| *id == order_id)
        .collect();
    assert_eq!(published.len(), 1, "placed once, under the same id");
    assert_eq!(
        redis_stock(&ctx, coupon).await,
        Some(3),
        "one unit, not two"
    );

    // A further replay finds the order and publishes nothing more.
    let (status, again) = app.purchase(&token, coupon, Some("intent-1")).await;
    assert_eq!(
        (status, again["order_id"].as_str()),
        (202, Some(order_id.as_str()))
    );
    assert_eq!(coupon_events(&ctx.settings.kafka, coupon).await.len(), 2);
    app.stop().await;
}

/// Retries with the same Idempotency-Key after Redis lost the sale and it was rebuilt:
/// - a purchase whose script ran after the client's timeout (a unit reserved, no event)
///   holds no unit in the rebuilt stock, so its retry reserves it again, or the sale
///   would sell one unit twice;
/// - a purchase whose event was on the log (counted by the rebuild as in flight) is
///   replayed as it was, without taking a second unit.
///
/// Stock 4: early (on the log), the stalled one, a newcomer, then one more; a fifth
/// shopper finds it sold out.
#[tokio::test(flavor = "multi_thread")]
async fn retries_after_a_lost_and_rebuilt_state_take_exactly_one_unit() {
    let mut ctx = TestContext::new().await;
    let private = crate::private_servers::PrivateRedis::start().await;
    ctx.use_redis(&private.url);
    let app = ctx.spawn(Role::Api).await;
    let coupon = app.open_coupon(&ctx, "Stale", 4).await;
    let early = app.mint_token(&ctx, "early").await;
    let (status, body) = app.purchase(&early, coupon, Some("early-1")).await;
    assert_eq!(status, 202, "{body}");
    let early_order = body["order_id"].as_str().unwrap().to_owned();

    // The stalled purchase: the script runs after the api gave up on it.
    let patient = app.mint_token(&ctx, "patient").await;
    let timeout_ms = ctx.settings.redis.timeout_ms;
    let mut redis = ctx.redis().await;
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(timeout_ms * 2 + 500)
        .arg("WRITE")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(
        app.purchase(&patient, coupon, Some("intent-1")).await.0,
        503
    );
    crate::helpers::eventually(
        Duration::from_secs(10),
        "the stalled script ran",
        || async { redis_stock(&ctx, coupon).await == Some(2) },
    )
    .await;

    // Redis loses the sale's keys and the pending records (not the idempotency
    // records): early's order now exists only as an event on the log.
    let keys = ctx.keys();
    let mut lost = vec![
        keys.coupon_stock(coupon),
        keys.coupon_meta(coupon),
        keys.coupon_buyers(coupon),
    ];
    lost.extend(
        crate::helpers::namespace_keys(&ctx.settings.redis)
            .await
            .unwrap()
            .into_iter()
            .filter(|key| key.ends_with(":pending_orders")),
    );
    let _: i64 = redis.del(&lost).await.unwrap();
    let newcomer = app.mint_token(&ctx, "newcomer").await;
    buy_once_rebuilt(&app, &newcomer, coupon).await;
    assert_eq!(
        redis_stock(&ctx, coupon).await,
        Some(2),
        "rebuilt from the one event on the log, then the newcomer's unit"
    );

    let (status, body) = app.purchase(&early, coupon, Some("early-1")).await;
    assert_eq!(
        (status, body["order_id"].as_str()),
        (202, Some(early_order.as_str())),
        "{body}"
    );
    assert_eq!(
        redis_stock(&ctx, coupon).await,
        Some(2),
        "replayed, not re-sold"
    );

    let (status, body) = app.purchase(&patient, coupon, Some("intent-1")).await;
    assert_eq!(status, 202, "{body}");
    let patient_order = body["order_id"].as_str().unwrap().to_owned();
    assert_eq!(
        redis_stock(&ctx, coupon).await,
        Some(1),
        "the stalled purchase's unit, reserved again"
    );
    let (status, body) = app.purchase(&patient, coupon, Some("intent-1")).await;
    assert_eq!(
        (status, body["order_id"].as_str()),
        (202, Some(patient_order.as_str()))
    );
    assert_eq!(redis_stock(&ctx, coupon).await, Some(1));

    let last = app.mint_token(&ctx, "last").await;
    assert_eq!(app.purchase(&last, coupon, None).await.0, 202);
    let late = app.mint_token(&ctx, "late").await;
    let (status, body) = app.purchase(&late, coupon, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("SOLD_OUT"))
    );
    let orders: BTreeSet<String> = coupon_events(&ctx.settings.kafka, coupon)
        .await
        .iter()
        .map(|e| e.order_id.to_string())
        .collect();
    assert_eq!(orders.len(), 4, "four orders for four units: {orders:?}");
    assert!(orders.contains(&early_order) && orders.contains(&patient_order));
    app.stop().await;
}

/// `flash-sale audit` checks every live sale in Redis (stock + units held = total) and
/// fails when one drifted (as the old warm-up's reset did) or lost its state.
#[tokio::test(flavor = "multi_thread")]
async fn audit_reports_drift_and_lost_state() {
    let ctx = TestContext::new().await;
    let mut settings = ctx.settings.clone();
    settings.purchase.audit_interval_secs = 1;
    let app = ctx.spawn_with(Role::Api, settings).await;
    let coupon = app.open_coupon(&ctx, "Audited", 10).await;
    app.sell_one_each(&ctx, coupon, "audited", 3).await;
    let audit = || {
        let output = crate::helpers::flash_sale_command(&ctx)
            .arg("audit")
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };
    let (code, out) = audit();
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!(
            "coupon {coupon}: total 10, stock 7, units held 3: ok"
        )),
        "{out}"
    );

    // The stock reset to the total while the buyers stay: 3 units too many for sale.
    let mut redis = ctx.redis().await;
    let _: () = redis
        .set(ctx.keys().coupon_stock(coupon), 10)
        .await
        .unwrap();
    let (code, out) = audit();
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("DRIFT +3"), "{out}");
    // The api's own audit exports it.
    let drift = format!("flash_sale_sale_stock_drift{{coupon=\"{coupon}\"}}");
    crate::helpers::eventually(Duration::from_secs(10), "drift exported", || async {
        app.metric(&drift).await == 3.0
    })
    .await;

    ctx.delete_redis_keys().await;
    let (code, out) = audit();
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("STATE MISSING"), "{out}");
    app.stop().await;
}

/// Retries a purchase while the sale state is rebuilt (503) and expects it sold.
async fn buy_once_rebuilt(app: &crate::helpers::TestApp, token: &str, coupon: i64) {
    let mut status = 503;
    for _ in 0..60 {
        status = app.purchase(token, coupon, None).await.0;
        if status != 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(status, 202, "sold once the state is rebuilt");
}
