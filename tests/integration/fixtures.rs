//! The set-up tests share, in one place: coupons and open sales, identities and tokens,
//! purchases and crowds of shoppers, events on the orders topic, and reading back what a
//! sale left in MySQL and Redis. `helpers.rs` is the harness underneath (contexts,
//! processes); these build on it in the shop's own terms.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use deadpool_redis::redis::AsyncCommands;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use flash_sale::adapters::kafka::codec::{decode_order_placed, partition_for};
use flash_sale::adapters::kafka::consumer::PartitionReader;
use flash_sale::adapters::kafka::producer::{OrderPublisher, PublisherLimits};
use flash_sale::adapters::kafka::{Kafka, TopicSpec};
use flash_sale::adapters::mysql::schema::{consumer_offsets, orders};
use flash_sale::config::{KafkaSettings, Settings};
use flash_sale::domain::coupon::CouponId;
use flash_sale::domain::identity::UserId;
use flash_sale::domain::order::{OrderId, OrderPlaced};
use flash_sale::roles::Role;
use flash_sale::shutdown::Shutdown;
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestContext, eventually};

// --- Coupons ---------------------------------------------------------------------------

/// A coupon of `total` units at 500 cents, one per user, on sale from `starts_in_secs`
/// from now (negative: already open) for `lasts_secs`.
pub fn coupon_body(name: &str, total: i64, starts_in_secs: i64, lasts_secs: i64) -> Value {
    let start = chrono::Utc::now() + chrono::Duration::seconds(starts_in_secs);
    json!({
        "name": name,
        "description": "test coupon",
        "price_cents": 500,
        "total_quantity": total,
        "per_user_limit": 1,
        "sale_starts_at": start.to_rfc3339(),
        "sale_ends_at": (start + chrono::Duration::seconds(lasts_secs)).to_rfc3339(),
    })
}

impl TestApp {
    /// Creates a coupon as `admin` (201 expected); the coupon as the api returned it.
    pub async fn create_coupon(&self, admin: &str, body: &Value) -> Value {
        let (status, coupon) = self
            .send(Method::POST, "/api/admin/coupons", Some(admin), Some(body))
            .await;
        assert_eq!(status, 201, "{coupon}");
        coupon
    }

    /// Like [`Self::create_coupon`]; just the new coupon's id.
    pub async fn coupon_id(&self, admin: &str, body: &Value) -> i64 {
        self.create_coupon(admin, body).await["id"]
            .as_i64()
            .expect("coupon id")
    }

    /// A coupon of `stock` units whose sale opened 5 s ago and lasts an hour, created by
    /// a new admin; its id.
    pub async fn open_coupon(&self, ctx: &TestContext, name: &str, stock: i64) -> i64 {
        let admin = self.admin_token(ctx).await;
        self.coupon_id(&admin, &coupon_body(name, stock, -5, 3600))
            .await
    }
}

// --- Identities ------------------------------------------------------------------------

/// The body of a registration or a login.
pub fn credentials(email: &str, password: &str) -> Value {
    json!({"email": email, "password": password})
}

/// A token of `issuer` for subject `sub` with one role, signed with the context's key
/// (no registration: the token is the identity).
pub fn sign_token(ctx: &TestContext, issuer: &str, sub: &str, role: &str) -> String {
    let pem =
        std::fs::read_to_string(&ctx.settings.identity.embedded.signing_key).expect("signing key");
    let keys = flash_sale::adapters::oidc::SigningKeys::from_pem(&pem).expect("key");
    let now = chrono::Utc::now().timestamp();
    keys.sign(&serde_json::json!({
        "iss": issuer, "sub": sub, "aud": ctx.settings.identity.audience,
        "iat": now, "nbf": now, "exp": now + 900, "roles": [role],
    }))
    .expect("sign")
}

/// A wrong password for `email` and an unknown e-mail get the same 401
/// INVALID_CREDENTIALS, so answers never tell whether an account exists.
pub async fn assert_login_gives_no_account_away(app: &TestApp, email: &str, password: &str) {
    let (wrong_status, wrong) = app
        .post_json("/api/auth/login", &credentials(email, "not the password"))
        .await;
    let (unknown_status, unknown) = app
        .post_json(
            "/api/auth/login",
            &credentials("nobody@example.com", password),
        )
        .await;
    assert_eq!((wrong_status, unknown_status), (401, 401));
    assert_eq!(wrong["error"]["code"], "INVALID_CREDENTIALS");
    assert_eq!(wrong, unknown, "no account probing through messages");
}

impl TestApp {
    /// The issuer this app names in its discovery document (its tokens' `iss`).
    pub async fn issuer(&self) -> String {
        let (_, discovery) = self.get_json("/.well-known/openid-configuration").await;
        discovery["issuer"].as_str().expect("issuer").to_owned()
    }

    /// Registers `email` and logs in; returns the access token.
    pub async fn register_and_login(&self, email: &str, password: &str) -> String {
        let credentials = credentials(email, password);
        let (status, body) = self.post_json("/api/auth/register", &credentials).await;
        assert_eq!(status, 201, "register {email}: {body}");
        let (status, body) = self.post_json("/api/auth/login", &credentials).await;
        assert_eq!(status, 200, "login {email}: {body}");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// A token for subject `sub`, signed with this app's key (no registration: the
    /// token is the identity, which lets tests act as hundreds of users cheaply).
    pub async fn mint_token(&self, ctx: &TestContext, sub: &str) -> String {
        sign_token(ctx, &self.issuer().await, sub, "user")
    }

    /// A token for a new user who has the admin role.
    pub async fn admin_token(&self, ctx: &TestContext) -> String {
        let email = format!("admin-{}@example.com", uuid::Uuid::new_v4().simple());
        let credentials = credentials(&email, "admin password");
        let (status, body) = self.post_json("/api/auth/register", &credentials).await;
        assert_eq!(status, 201, "{body}");
        let pool = flash_sale::adapters::mysql::MysqlPool::new(&ctx.settings.mysql).expect("pool");
        flash_sale::app::identity::set_admin(&pool, &email, true)
            .await
            .expect("promote");
        let (status, body) = self.post_json("/api/auth/login", &credentials).await;
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().expect("token").to_owned()
    }
}

// --- Purchases -------------------------------------------------------------------------

impl TestApp {
    /// Buys one unit of `coupon` (202 expected); the order id.
    pub async fn buy(&self, token: &str, coupon: i64) -> String {
        let (status, body) = self.purchase(token, coupon, None).await;
        assert_eq!(status, 202, "{body}");
        body["order_id"].as_str().expect("order_id").to_owned()
    }

    /// `count` new shoppers `<prefix>-<n>` buy one unit of `coupon` each, one after the
    /// other (202 expected); their tokens and order ids.
    pub async fn sell_one_each(
        &self,
        ctx: &TestContext,
        coupon: i64,
        prefix: &str,
        count: usize,
    ) -> Vec<(String, String)> {
        let mut sold = Vec::new();
        for n in 0..count {
            let token = self.mint_token(ctx, &format!("{prefix}-{n}")).await;
            let order = self.buy(&token, coupon).await;
            sold.push((token, order));
        }
        sold
    }
}

/// An api and a payment role in-process with `settings`, selling `stock` units of a
/// coupon that opened 5 s ago.
pub struct OpenSale {
    pub api: Arc<TestApp>,
    pub payment: TestApp,
    pub coupon: i64,
}

impl OpenSale {
    pub async fn start(ctx: &TestContext, settings: Settings, name: &str, stock: i64) -> Self {
        let api = Arc::new(ctx.spawn_with(Role::Api, settings.clone()).await);
        let payment = ctx.spawn_with(Role::Payment, settings).await;
        let coupon = api.open_coupon(ctx, name, stock).await;
        Self {
            api,
            payment,
            coupon,
        }
    }

    /// [`spawn_shoppers`] buying this sale's coupon.
    pub async fn spawn_shoppers(
        &self,
        ctx: &TestContext,
        count: usize,
        spacing: Duration,
        with_keys: bool,
    ) -> Shoppers {
        spawn_shoppers(ctx, &self.api, self.coupon, count, spacing, with_keys).await
    }

    /// Stops both roles (the api once the shoppers have let go of it).
    pub async fn stop(self) {
        self.payment.stop().await;
        if let Ok(api) = Arc::try_unwrap(self.api) {
            api.stop().await;
        }
    }
}

/// Shoppers at work (each task ends with its order id, or None when sold out) and what
/// they have heard so far.
pub type Shoppers = (
    Vec<tokio::task::JoinHandle<Option<String>>>,
    Arc<CrowdCounts>,
);

/// What a crowd of shoppers has heard so far.
#[derive(Default)]
pub struct CrowdCounts {
    pub accepted: AtomicUsize,
    /// 503 answers (each followed by a retry).
    pub busy: AtomicUsize,
}

impl CrowdCounts {
    // Spelled out: diesel-async's `RunQueryDsl::load` would shadow the atomic's.
    pub fn accepted(&self) -> usize {
        AtomicUsize::load(&self.accepted, Ordering::SeqCst)
    }

    pub fn busy(&self) -> usize {
        AtomicUsize::load(&self.busy, Ordering::SeqCst)
    }

    /// Waits (up to 30 s) until `count` purchases were accepted.
    pub async fn wait_for_accepted(&self, count: usize) {
        eventually(
            Duration::from_secs(30),
            &format!("{count} purchases accepted"),
            || async { self.accepted() >= count },
        )
        .await;
    }
}

/// `count` shoppers arriving `spacing` apart, each buying one unit of `coupon` and
/// retrying on 503 (with the same Idempotency-Key when `with_keys`) until 202 (its order
/// id) or 409 (None). Anything else fails the test.
pub async fn spawn_shoppers(
    ctx: &TestContext,
    api: &Arc<TestApp>,
    coupon: i64,
    count: usize,
    spacing: Duration,
    with_keys: bool,
) -> Shoppers {
    let counts = Arc::new(CrowdCounts::default());
    let mut shoppers = Vec::new();
    for n in 0..count {
        let token = api.mint_token(ctx, &format!("shopper-{n}")).await;
        let (api, counts) = (api.clone(), counts.clone());
        shoppers.push(tokio::spawn(async move {
            tokio::time::sleep(spacing * u32::try_from(n).unwrap()).await;
            let key = with_keys.then(|| format!("key-{n}"));
            let deadline = std::time::Instant::now() + Duration::from_secs(90);
            while std::time::Instant::now() < deadline {
                let (status, body) = api.purchase(&token, coupon, key.as_deref()).await;
                match status {
                    202 => {
                        counts.accepted.fetch_add(1, Ordering::SeqCst);
                        return Some(body["order_id"].as_str().unwrap().to_owned());
                    }
                    409 => return None,
                    503 => {
                        counts.busy.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                    other => panic!("unexpected {other}: {body}"),
                }
            }
            panic!("shopper {n} never got an answer but 503");
        }));
    }
    (shoppers, counts)
}

/// The order ids the shoppers were answered 202 with, once all are done.
pub async fn answered(shoppers: Vec<tokio::task::JoinHandle<Option<String>>>) -> BTreeSet<String> {
    let mut answered = BTreeSet::new();
    for shopper in shoppers {
        if let Some(order) = shopper.await.unwrap() {
            answered.insert(order);
        }
    }
    answered
}

// --- The broker ------------------------------------------------------------------------

/// The context's settings with another broker (a private one, or a proxy in front of
/// it) and a client timeout of `timeout_ms`.
pub fn with_broker(ctx: &TestContext, address: String, timeout_ms: u64) -> Settings {
    let mut settings = ctx.settings.clone();
    settings.kafka.brokers = vec![address];
    settings.kafka.timeout_ms = timeout_ms;
    settings
}

/// Every OrderPlaced event on one partition of the orders topic, from the start.
async fn partition_events(settings: &KafkaSettings, partition: i32) -> Vec<OrderPlaced> {
    let kafka = Kafka::new(settings).unwrap();
    let reader = PartitionReader::new(&kafka, &settings.orders_topic_name(), partition)
        .await
        .unwrap();
    reader
        .read_to_end(0)
        .await
        .unwrap()
        .iter()
        .map(|r| decode_order_placed(&r.record, kafka.signer()).unwrap())
        .collect()
}

/// The OrderPlaced events of `coupon` on the orders topic.
pub async fn coupon_events(settings: &KafkaSettings, coupon: i64) -> Vec<OrderPlaced> {
    let coupon = CouponId::new(coupon).unwrap();
    let partition = partition_for(coupon, settings.orders_partitions);
    partition_events(settings, partition)
        .await
        .into_iter()
        .filter(|e| e.coupon_id == coupon)
        .collect()
}

/// The order ids of every event on the orders topic.
pub async fn logged_order_ids(settings: &KafkaSettings) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for partition in 0..settings.orders_partitions {
        for event in partition_events(settings, partition).await {
            ids.insert(event.order_id.to_string());
        }
    }
    ids
}

/// Publishes `count` events for coupons 1..=8 (spread over the partitions), in chunks of
/// `chunk` with `pause` between chunks (a stream, not one burst).
pub async fn publish_paced(
    ctx: &TestContext,
    count: usize,
    chunk: usize,
    pause: Duration,
) -> BTreeSet<String> {
    publish_to(ctx, count, 8, chunk, pause).await
}

/// Publishes `count` events for coupons 1..=8 at once.
pub async fn publish_stream(ctx: &TestContext, count: usize) -> BTreeSet<String> {
    publish_paced(ctx, count, count, Duration::ZERO).await
}

/// Like [`publish_paced`], over coupons 1..=`coupons`.
pub async fn publish_to(
    ctx: &TestContext,
    count: usize,
    coupons: usize,
    chunk: usize,
    pause: Duration,
) -> BTreeSet<String> {
    publish_with(&ctx.settings.kafka, count, coupons, chunk, pause).await
}

/// Like [`publish_to`], with these Kafka settings (another signing key, say).
pub async fn publish_with(
    settings: &KafkaSettings,
    count: usize,
    coupons: usize,
    chunk: usize,
    pause: Duration,
) -> BTreeSet<String> {
    let kafka = Kafka::new(settings).unwrap();
    let topic = settings.orders_topic_name();
    kafka
        .ensure_topic(&topic, &TopicSpec::single_copy(settings.orders_partitions))
        .await
        .unwrap();
    let shutdown = Shutdown::new();
    let publisher = OrderPublisher::start(
        kafka,
        topic,
        settings.orders_partitions,
        PublisherLimits {
            queue: 10_000,
            max_batch: 500,
            in_flight: 4,
        },
        &shutdown,
    );
    let events: Vec<OrderPlaced> = (0..count)
        .map(|n| OrderPlaced {
            order_id: OrderId::generate(),
            user_id: UserId::parse(&format!("streamer-{n}")).unwrap(),
            coupon_id: CouponId::new(i64::try_from(n % coupons + 1).unwrap()).unwrap(),
            price_cents: 100,
            placed_at: chrono::Utc::now(),
            idempotency_digest: None,
            request_id: None,
        })
        .collect();
    let ids = events.iter().map(|e| e.order_id.to_string()).collect();
    for part in events.chunks(chunk.max(1)) {
        futures_util::stream::iter(part)
            .map(|event| {
                let publisher = publisher.clone();
                async move { publisher.publish(event).await.unwrap() }
            })
            .buffer_unordered(500)
            .collect::<Vec<()>>()
            .await;
        tokio::time::sleep(pause).await;
    }
    shutdown.stop(Duration::from_secs(5)).await;
    ids
}

// --- What a sale left behind -----------------------------------------------------------

/// A coupon's real-time stock in Redis (None: no sale state).
pub async fn redis_stock(ctx: &TestContext, coupon: i64) -> Option<i64> {
    let mut redis = ctx.redis().await;
    redis.get(ctx.keys().coupon_stock(coupon)).await.unwrap()
}

/// Orders in MySQL, of one status or all.
pub async fn count_orders(ctx: &TestContext, status: Option<&str>) -> i64 {
    let mut conn = ctx.mysql().await;
    let mut query = orders::table.into_boxed();
    if let Some(status) = status {
        query = query.filter(orders::status.eq(status.to_owned()));
    }
    query.count().get_result(&mut conn).await.unwrap()
}

/// The ids of every order in MySQL.
pub async fn stored_ids(ctx: &TestContext) -> Vec<String> {
    let mut conn = ctx.mysql().await;
    orders::table
        .select(orders::id)
        .load(&mut conn)
        .await
        .unwrap()
}

/// The sum of the payment role's committed offsets over every partition.
pub async fn committed_offsets(ctx: &TestContext) -> i64 {
    let mut conn = ctx.mysql().await;
    let offsets: Vec<i64> = consumer_offsets::table
        .select(consumer_offsets::next_offset)
        .load(&mut conn)
        .await
        .unwrap();
    offsets.iter().sum()
}

/// After a sale of `stock` units sold out with every payment approved: once no order is
/// PENDING, exactly `stock` orders are PAID, their ids are exactly the `answered` 202s,
/// nobody holds two, and Redis has no stock left.
pub async fn assert_sold_out_exactly(
    ctx: &TestContext,
    coupon: i64,
    stock: i64,
    answered: &BTreeSet<String>,
) {
    // Total first, PENDING second: orders are recorded by batches, so the other order
    // could see "none pending" just before a late batch lands and then count it.
    eventually(Duration::from_secs(60), "every order settled", || async {
        count_orders(ctx, None).await >= stock && count_orders(ctx, Some("PENDING")).await == 0
    })
    .await;
    assert_eq!(count_orders(ctx, Some("PAID")).await, stock, "no oversell");
    let stored: Vec<(String, String)> = {
        let mut conn = ctx.mysql().await;
        orders::table
            .select((orders::id, orders::user_id))
            .load(&mut conn)
            .await
            .unwrap()
    };
    let ids: BTreeSet<String> = stored.iter().map(|(id, _)| id.clone()).collect();
    let buyers: BTreeSet<&String> = stored.iter().map(|(_, user)| user).collect();
    assert_eq!(&ids, answered, "every 202 is an order, and no other order");
    assert_eq!(buyers.len(), stored.len(), "nobody bought twice");
    assert_eq!(
        redis_stock(ctx, coupon).await,
        Some(0),
        "stock + units sold == total"
    );
}

/// A reconciler of the sale state, as `flash-sale reconcile` builds it.
pub fn reconciler(settings: &Settings) -> flash_sale::app::reconcile::Reconciler {
    flash_sale::app::reconcile::Reconciler {
        mysql: flash_sale::adapters::mysql::MysqlPool::new(&settings.mysql).unwrap(),
        kafka: Kafka::new(&settings.kafka).unwrap(),
        gate: flash_sale::adapters::redis::stock_gate::StockGate::new(
            flash_sale::adapters::redis::RedisPool::new(&settings.redis).unwrap(),
            flash_sale::adapters::redis::Keys::new(settings.redis.namespace.clone()),
            Duration::from_secs(60),
        ),
        topic: settings.kafka.orders_topic_name(),
        partitions: settings.kafka.orders_partitions,
        settle: Duration::from_millis(2 * settings.kafka.timeout_ms + 500),
    }
}

// --- Readiness -------------------------------------------------------------------------

/// The dependencies a `/readyz` body lists, in its order.
pub fn checked_dependencies(readyz: &Value) -> Vec<&str> {
    readyz["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["dependency"].as_str().unwrap())
        .collect()
}
