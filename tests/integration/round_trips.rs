//! What an accepted purchase costs Redis on the request path: one round trip (the
//! purchase script). A private redis-server sits behind a proxy that delays each answer
//! by far more than anything else the request does, so a purchase's latency counts the
//! round trips it waited for; the server's command statistics count the script calls.
//! The same for the pool the other adapters use: one round trip per command, no check
//! round trip on each checkout.

use std::time::{Duration, Instant};

use flash_sale::adapters::redis::RedisPool;
use flash_sale::roles::Role;
use secrecy::SecretString;

use crate::fault_proxy::{CutProxy, DelayProxy};
use crate::helpers::TestContext;
use crate::private_servers::PrivateRedis;

const ANSWER_DELAY: Duration = Duration::from_millis(300);
const PURCHASES: usize = 5;

async fn script_calls(redis: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(redis)
        .await
        .unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |calls| calls.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_accepted_purchase_waits_for_one_redis_round_trip() {
    let redis = PrivateRedis::start().await;
    let redis_port: u16 = redis.url.rsplit(':').next().unwrap().parse().unwrap();
    let proxy = DelayProxy::start(redis_port, ANSWER_DELAY).await;
    let mut ctx = TestContext::new().await;
    ctx.use_redis(&format!("redis://127.0.0.1:{}", proxy.port));
    let mut settings = ctx.settings.clone();
    // Only purchases talk to Redis while the statistics are taken.
    settings.purchase.audit_interval_secs = 0;
    settings.redis.timeout_ms = 5_000;
    let api = ctx.spawn_with(Role::Api, settings).await;
    let coupon = api.open_coupon(&ctx, "one round trip", 100).await;
    let mut tokens = Vec::new();
    for n in 0..PURCHASES {
        tokens.push(api.mint_token(&ctx, &format!("round-trip-{n}")).await);
    }
    // One unanswered purchase first: connections and the script cache are warm after it.
    let (status, body) = api.purchase(&tokens[0], coupon, None).await;
    assert_eq!(status, 202, "{body}");

    let mut stats = redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let calls_before = script_calls(&mut stats).await;
    for token in &tokens[1..] {
        let started = Instant::now();
        let (status, body) = api.purchase(token, coupon, Some("once")).await;
        let took = started.elapsed();
        assert_eq!(status, 202, "{body}");
        assert!(
            took >= ANSWER_DELAY && took < ANSWER_DELAY * 2,
            "a purchase waited {took:?}: not exactly one Redis round trip of {ANSWER_DELAY:?}"
        );
        // The pending record was written after the answer, yet the order reads back.
        let order_id = body["order_id"].as_str().unwrap();
        let (status, order) = api
            .get_authed(&format!("/api/orders/{order_id}"), token)
            .await;
        assert_eq!(status, 200, "{order}");
        assert_eq!(order["status"], "PENDING");
    }
    assert_eq!(
        script_calls(&mut stats).await - calls_before,
        u64::try_from(PURCHASES - 1).unwrap(),
        "one purchase script call per purchase and no other script"
    );
    api.stop().await;
}

/// A pool for the Redis server behind `port` (a proxy), calls bounded by 5 s.
fn pool_behind(ctx: &TestContext, port: u16) -> RedisPool {
    let mut settings = ctx.settings.redis.clone();
    settings.mode = flash_sale::config::RedisMode::Standalone;
    settings.url = SecretString::from(format!("redis://127.0.0.1:{port}"));
    settings.timeout_ms = 5_000;
    RedisPool::new(&settings).unwrap()
}

async fn get(pool: &RedisPool) -> Result<Option<String>, flash_sale::adapters::redis::RedisError> {
    pool.run(|mut conn| async move {
        redis::cmd("GET")
            .arg("round-trips:absent")
            .query_async(&mut conn)
            .await
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pooled_command_waits_for_one_redis_round_trip() {
    const DELAY: Duration = Duration::from_millis(200);
    let redis = PrivateRedis::start().await;
    let redis_port: u16 = redis.url.rsplit(':').next().unwrap().parse().unwrap();
    let proxy = DelayProxy::start(redis_port, DELAY).await;
    let ctx = TestContext::new().await;
    let pool = pool_behind(&ctx, proxy.port);
    // Connects; the connection is then trusted for a second.
    pool.ping().await.unwrap();
    for _ in 0..2 {
        let started = Instant::now();
        assert_eq!(get(&pool).await.unwrap(), None);
        let took = started.elapsed();
        assert!(
            took >= DELAY && took < DELAY * 2,
            "a pooled GET waited {took:?}: not exactly one Redis round trip of {DELAY:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pooled_connection_that_broke_is_replaced_before_its_next_use() {
    let redis = PrivateRedis::start().await;
    let redis_port: u16 = redis.url.rsplit(':').next().unwrap().parse().unwrap();
    let proxy = CutProxy::start(redis_port).await;
    let ctx = TestContext::new().await;
    let pool = pool_behind(&ctx, proxy.port);
    pool.ping().await.unwrap();
    // The server becomes unreachable: the pooled connection is closed under the pool.
    proxy.cut(true);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(get(&pool).await.is_err(), "a command while cut must fail");
    proxy.cut(false);
    // Within the second the connection would be trusted for: the failure made the pool
    // check it, find it closed and connect again.
    for _ in 0..3 {
        assert_eq!(get(&pool).await.unwrap(), None);
    }
}
