//! Floods: a client that asks too often is answered 429 before it reaches Redis, and
//! everyone else is served as if it were not there.
//!
//! Clients are told apart by `X-Forwarded-For` (the app trusts it here, as behind the
//! edge proxy), since every request of a test comes from 127.0.0.1.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use flash_sale::roles::Role;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::{TestApp, TestContext};

/// Latencies of honest shoppers, in milliseconds, sorted.
struct Latencies(Vec<f64>);

impl Latencies {
    fn p50(&self) -> f64 {
        self.0[self.0.len() / 2]
    }

    fn p99(&self) -> f64 {
        let index = (self.0.len() * 99).div_ceil(100).saturating_sub(1);
        self.0[index]
    }
}

/// `count` shoppers `<prefix>-<n>`, each from its own address, buy one unit each, one
/// every 10 ms (shoppers arrive spread out, not in lockstep); every one must get 202.
async fn honest_shoppers(
    app: &Arc<TestApp>,
    ctx: &TestContext,
    coupon: i64,
    prefix: &str,
    count: usize,
) -> Latencies {
    let mut tasks = Vec::new();
    for n in 0..count {
        let token = app.mint_token(ctx, &format!("{prefix}-{n}")).await;
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10 * n as u64)).await;
            let started = Instant::now();
            let response = app
                .client
                .post(app.url(&format!("/api/coupons/{coupon}/purchase")))
                .bearer_auth(token)
                .header("X-Forwarded-For", format!("198.51.100.{}", n % 250))
                .send()
                .await
                .expect("purchase");
            let elapsed = started.elapsed().as_secs_f64() * 1000.0;
            assert_eq!(response.status(), 202, "{:?}", response.text().await);
            elapsed
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.push(task.await.unwrap());
    }
    latencies.sort_by(f64::total_cmp);
    Latencies(latencies)
}

/// What a flooding bot heard.
#[derive(Default, Debug)]
struct Heard {
    throttled: usize,
    other: usize,
}

/// `loops` loops asking to buy `coupon` as fast as answers come, from `address`, with
/// the tokens in turn, until `stop`.
fn flood(
    app: &Arc<TestApp>,
    coupon: i64,
    address: &'static str,
    tokens: Vec<String>,
    loops: usize,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Heard>> {
    let tokens = Arc::new(tokens);
    (0..loops)
        .map(|lane| {
            let (app, tokens, stop) = (app.clone(), tokens.clone(), stop.clone());
            // Its own connections, as a separate client would have.
            let client = reqwest::Client::new();
            tokio::spawn(async move {
                let mut heard = Heard::default();
                let mut turn = lane;
                while !stop.load(Ordering::Relaxed) {
                    let response = client
                        .post(app.url(&format!("/api/coupons/{coupon}/purchase")))
                        .bearer_auth(&tokens[turn % tokens.len()])
                        .header("X-Forwarded-For", address)
                        .send()
                        .await
                        .expect("flood request");
                    turn += 1;
                    if response.status() == 429 {
                        let retry_after = response.headers()["Retry-After"].to_str().unwrap();
                        assert!(retry_after.parse::<u64>().unwrap() >= 1);
                        let body: serde_json::Value = response.json().await.unwrap();
                        assert_eq!(body["error"]["code"], "TOO_MANY_REQUESTS");
                        heard.throttled += 1;
                    } else {
                        assert_eq!(response.status(), 409, "the bots' coupon is sold out");
                        heard.other += 1;
                    }
                }
                heard
            })
        })
        .collect()
}

async fn total(lanes: Vec<tokio::task::JoinHandle<Heard>>) -> Heard {
    let mut sum = Heard::default();
    for lane in lanes {
        let heard = lane.await.unwrap();
        sum.throttled += heard.throttled;
        sum.other += heard.other;
    }
    sum
}

/// One bot floods a sold-out coupon from one account; a second rotates 50 accounts from
/// one address. Both are held to their buckets (429 with Retry-After), while 100 honest
/// shoppers, each from their own address, all buy. Their latency with and without the
/// flood is printed; it is measured in release builds by `make bench` (the "purchase
/// while a bot floods" scenario), since a debug build sharing two cores with the other
/// tests says little about it.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "floods both cores: scripts/test.sh runs it alone"]
async fn a_flooding_client_is_throttled_while_honest_shoppers_buy() {
    let ctx = TestContext::new().await;
    let mut settings = ctx.settings.clone();
    settings.server.trusted_proxies = vec!["127.0.0.1".to_owned()];
    let purchase = &mut settings.purchase;
    (purchase.user_rate_per_sec, purchase.user_burst) = (5, 10);
    (purchase.ip_rate_per_sec, purchase.ip_burst) = (20, 40);
    let app = Arc::new(ctx.spawn_with(Role::Api, settings).await);
    let coupon = app.open_coupon(&ctx, "Honest", 200).await;
    let gone = app.open_coupon(&ctx, "Gone", 1).await;
    app.buy(&app.mint_token(&ctx, "early-bird").await, gone)
        .await;

    let quiet = honest_shoppers(&app, &ctx, coupon, "quiet", 100).await;

    let bot = vec![app.mint_token(&ctx, "bot").await];
    let mut farm = Vec::new();
    for n in 0..50 {
        farm.push(app.mint_token(&ctx, &format!("farm-{n}")).await);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flooding = Instant::now();
    let one_account = flood(&app, gone, "203.0.113.1", bot, 4, &stop);
    let many_accounts = flood(&app, gone, "203.0.113.2", farm, 4, &stop);
    // Let the bots empty their buckets first.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let flooded = honest_shoppers(&app, &ctx, coupon, "honest", 100).await;
    stop.store(true, Ordering::Relaxed);
    let (one_account, many_accounts) = (total(one_account).await, total(many_accounts).await);
    let secs = flooding.elapsed().as_secs_f64();
    println!(
        "honest shoppers p50/p99: {:.1}/{:.1} ms quiet, {:.1}/{:.1} ms while two bots flood \
         for {secs:.1} s ({one_account:?} from one account, {many_accounts:?} from 50 \
         accounts on one address)",
        quiet.p50(),
        quiet.p99(),
        flooded.p50(),
        flooded.p99()
    );

    // Past the burst, each bot reached the gate at most at its bucket's rate.
    let allowed = |burst: f64, rate: f64| (burst + rate * secs).ceil() as usize + 1;
    assert!(one_account.other <= allowed(10.0, 5.0), "{one_account:?}");
    assert!(
        many_accounts.other <= allowed(40.0, 20.0),
        "{many_accounts:?}"
    );
    assert!(
        one_account.throttled > 10 * one_account.other,
        "{one_account:?}"
    );
    assert!(
        many_accounts.throttled > many_accounts.other,
        "{many_accounts:?}"
    );
    let by_limit =
        |limit: &str| format!("flash_sale_purchases_throttled_total{{limit=\"{limit}\"}}");
    assert!(app.metric(&by_limit("user")).await > 0.0);
    assert!(app.metric(&by_limit("ip")).await > 0.0);
    Arc::into_inner(app).unwrap().stop().await;
}

/// The status and error code of a WebSocket handshake from `address`.
async fn upgrade(base: &str, token: &str, address: &str) -> (u16, Option<String>) {
    let url = format!("{}/ws", base.replacen("http", "ws", 1));
    let mut request = url.into_client_request().unwrap();
    let headers = request.headers_mut();
    headers.insert(
        "Sec-WebSocket-Protocol",
        format!("bearer, {token}").parse().unwrap(),
    );
    headers.insert("X-Forwarded-For", address.parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, response)) => {
            drop(socket);
            (response.status().as_u16(), None)
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body: serde_json::Value =
                serde_json::from_slice(response.body().as_deref().unwrap_or_default()).unwrap();
            let code = body["error"]["code"].as_str().map(str::to_owned);
            (response.status().as_u16(), code)
        }
        Err(other) => panic!("handshake failed: {other}"),
    }
}

/// A user reconnecting in a loop is refused after the burst (before any socket), while
/// another user connects; an address asking too often is refused before its token is
/// even checked.
#[tokio::test(flavor = "multi_thread")]
async fn websocket_upgrades_are_rate_limited_per_user_and_address() {
    let ctx = TestContext::new().await;
    let mut settings = ctx.settings.clone();
    settings.server.trusted_proxies = vec!["127.0.0.1".to_owned()];
    let ws = &mut settings.ws;
    (ws.upgrade_user_rate_per_sec, ws.upgrade_user_burst) = (1, 3);
    (ws.upgrade_ip_rate_per_sec, ws.upgrade_ip_burst) = (1, 5);
    let app = ctx.spawn_with(Role::All, settings).await;
    let (restless, calm) = (
        app.mint_token(&ctx, "restless").await,
        app.mint_token(&ctx, "calm").await,
    );
    for n in 0..3 {
        let address = format!("198.51.100.{n}");
        assert_eq!(upgrade(&app.base, &restless, &address).await, (101, None));
    }
    let too_many = (429, Some("TOO_MANY_REQUESTS".to_owned()));
    assert_eq!(
        upgrade(&app.base, &restless, "198.51.100.9").await,
        too_many
    );
    assert_eq!(
        upgrade(&app.base, &calm, "198.51.100.10").await,
        (101, None)
    );

    // Five handshakes from one address, whatever their tokens, then 429 even for a
    // token that would be refused with 401.
    for n in 0..5 {
        let token = app.mint_token(&ctx, &format!("shared-{n}")).await;
        assert_eq!(upgrade(&app.base, &token, "203.0.113.7").await, (101, None));
    }
    assert_eq!(
        upgrade(&app.base, "not-a-token", "203.0.113.7").await,
        too_many
    );
    assert_eq!(
        upgrade(&app.base, "not-a-token", "203.0.113.8").await.0,
        401
    );
    app.stop().await;
}
