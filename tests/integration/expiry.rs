//! Bounded Redis state: a sale's state expires a day after the sale, and a shopper's
//! pending-order index keeps only recent ids.

use std::time::Duration;

use flash_sale::domain::coupon::SALE_STATE_GRACE;
use flash_sale::roles::Role;
use redis::AsyncCommands;
use serde_json::json;

use crate::fixtures::coupon_body;
use crate::helpers::TestContext;
use flash_sale::adapters::redis::pool::Connection;

/// Milliseconds until `key` expires (-1: never, -2: no such key).
async fn pttl(redis: &mut Connection, key: &str) -> i64 {
    redis.pttl(key).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sale_state_expires_a_day_after_the_sale_and_then_answers_sale_ended() {
    let ctx = TestContext::new().await;
    let app = ctx.spawn(Role::Api).await;
    let admin = app.admin_token(&ctx).await;
    // Opened a second ago, ends in 3 s.
    let body = coupon_body("Brief", 5, -1, 4);
    let ends_at: chrono::DateTime<chrono::Utc> =
        body["sale_ends_at"].as_str().unwrap().parse().unwrap();
    let coupon = app.coupon_id(&admin, &body).await;
    app.buy(&app.mint_token(&ctx, "first").await, coupon).await;

    let keys = ctx.keys();
    let state = [
        keys.coupon_stock(coupon),
        keys.coupon_meta(coupon),
        keys.coupon_buyers(coupon),
    ];
    let mut redis = ctx.redis().await;
    let expected = (ends_at + SALE_STATE_GRACE - chrono::Utc::now()).num_milliseconds();
    for key in &state {
        let left = pttl(&mut redis, key).await;
        assert!(
            (expected - left).abs() < 10_000,
            "{key} expires in {left} ms, expected about {expected} ms"
        );
    }

    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let late = app.mint_token(&ctx, "late").await;
    let (status, body) = app.purchase(&late, coupon, None).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (409, &json!("SALE_ENDED"))
    );
    // Once the state has expired, the answer is the same, and nothing is rebuilt.
    let _: () = redis.del(&state).await.unwrap();
    let (status, body) = app.purchase(&late, coupon, None).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (409, &json!("SALE_ENDED"))
    );
    let exists: i64 = redis.exists(&state).await.unwrap();
    assert_eq!(exists, 0, "no state written back for a finished sale");
    app.stop().await;
}

/// A shopper's pending orders keep (at least) the 100 newest, with an expiry: a hash
/// grown 20 past 100 is cut back to the newest 100.
#[tokio::test(flavor = "multi_thread")]
async fn a_shoppers_pending_orders_are_trimmed() {
    let ctx = TestContext::new().await;
    let app = ctx.spawn(Role::Api).await;
    let admin = app.admin_token(&ctx).await;
    let mut body = coupon_body("Bulk", 100, -5, 3600);
    body["per_user_limit"] = json!(100);
    let coupons = [
        app.coupon_id(&admin, &body).await,
        app.coupon_id(&admin, &body).await,
    ];
    let token = app.mint_token(&ctx, "collector").await;
    let mut bought = Vec::new();
    for n in 0..160 {
        bought.push(app.buy(&token, coupons[n / 100]).await);
    }
    let hash = ctx.keys().user_pending_orders("collector");
    let mut redis = ctx.redis().await;
    let mut kept: Vec<String> = Vec::new();
    for _ in 0..50 {
        kept = redis.hkeys(&hash).await.unwrap();
        if kept.contains(bought.last().unwrap()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        (100..=120).contains(&kept.len()),
        "{} records kept",
        kept.len()
    );
    let newest = bought.split_off(60);
    assert!(
        newest.iter().all(|id| kept.contains(id)),
        "the 100 newest are all kept"
    );
    assert!(pttl(&mut redis, &hash).await > 0);
    // The orders list still shows the newest 100 (none is in MySQL: no payment role).
    let (status, list) = app.get_authed("/api/orders", &token).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(100));
    app.stop().await;
}
