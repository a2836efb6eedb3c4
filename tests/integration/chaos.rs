//! A seeded chaos sale: hundreds of shoppers buy while, at moments drawn from the seed,
//! the sale's Redis keys vanish, the api is SIGKILLed and restarted, Redis stalls, an
//! admin edits the coupon, the payment role is SIGKILLed and restarted, and the broker
//! stops answering produce requests. Afterwards, once every order is settled, every
//! promise must hold with exact counts. Each seed is printed first (shown on failure);
//! `CHAOS_SEED=n` runs just that one.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use flash_sale::adapters::mysql::schema::orders;
use redis::AsyncCommands;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::fault_proxy::KafkaFaultProxy;
use crate::fixtures::{count_orders, coupon_body, redis_stock, sign_token};
use crate::helpers::{ChildApp, TestContext, eventually, free_port};
use crate::private_servers::{PrivateBroker, PrivateRedis};

const STOCK: i64 = 120;
const SHOPPERS: usize = 200;
const FAULTS: usize = 8;

/// Four seeds, one after the other (each starts its own broker and redis-server; in
/// parallel they would crowd the other tests' brokers on a small machine). Seed 11 once
/// left units held by a payment crash during a Redis stall.
#[tokio::test(flavor = "multi_thread")]
async fn chaos_sales_keep_every_promise() {
    let seeds = match std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(seed) => vec![seed],
        None => vec![20_261_128, 7, 4_242, 11],
    };
    for seed in seeds {
        chaos_sale(seed).await;
    }
}

/// xorshift64*: reproducible from the seed, no dependency.
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    LoseSaleKeys,
    RestartApi,
    StallRedis,
    EditCoupon,
    RestartPayment,
    StallBroker,
}

const ALL_FAULTS: [Fault; 6] = [
    Fault::LoseSaleKeys,
    Fault::RestartApi,
    Fault::StallRedis,
    Fault::EditCoupon,
    Fault::RestartPayment,
    Fault::StallBroker,
];

struct Sale {
    ctx: TestContext,
    env: Vec<(String, String)>,
    api_port: u16,
    api: Mutex<ChildApp>,
    payment: Mutex<ChildApp>,
    proxy: KafkaFaultProxy,
    http: reqwest::Client,
    base: String,
    issuer: String,
    coupon: i64,
}

async fn chaos_sale(seed: u64) {
    println!("chaos seed {seed} (rerun with CHAOS_SEED={seed})");
    let mut draw = Draw(seed.max(1));
    let mut ctx = TestContext::new().await;
    let redis = PrivateRedis::start().await;
    ctx.use_redis(&redis.url);
    let proxy_port = free_port();
    let broker = PrivateBroker::start_behind(proxy_port).await;
    let proxy = KafkaFaultProxy::start(proxy_port, broker.port).await;
    // The processes use the private Redis through the context (`use_redis`).
    let env: Vec<(String, String)> = [
        ("FLASH__KAFKA__BROKERS", format!("127.0.0.1:{proxy_port}")),
        ("FLASH__KAFKA__TIMEOUT_MS", "1000".to_owned()),
        ("FLASH__PAYMENT__GATEWAY_LATENCY_MS", "20".to_owned()),
        ("FLASH__PAYMENT__GATEWAY_FAILURE_RATE", "0.15".to_owned()),
        ("FLASH__PAYMENT__GATEWAY_SEED", seed.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let api_port = free_port();
    let api = ChildApp::start_on(&ctx, "api", api_port, &env).await;
    let payment = ChildApp::start_with(&ctx, "payment", &env).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let base = api.base.clone();
    let issuer = api.issuer().await;
    let mut sale = Sale {
        ctx,
        env,
        api_port,
        api: Mutex::new(api),
        payment: Mutex::new(payment),
        proxy,
        http,
        base,
        issuer,
        coupon: 0,
    };
    let admin = sale.token("chaos-admin", "admin");
    let (status, coupon) = sale
        .send(
            reqwest::Method::POST,
            "/api/admin/coupons",
            &admin,
            Some(&coupon_body("Chaos", STOCK, -5, 3600)),
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{coupon}");
    sale.coupon = coupon["id"].as_i64().unwrap();
    let sale = Arc::new(sale);

    let shoppers: Vec<_> = (0..SHOPPERS)
        .map(|n| {
            let sale = sale.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(15) * u32::try_from(n).unwrap()).await;
                sale.shop(n).await
            })
        })
        .collect();

    for _ in 0..FAULTS {
        tokio::time::sleep(Duration::from_millis(200 + draw.below(900))).await;
        let fault = ALL_FAULTS[usize::try_from(draw.below(6)).unwrap()];
        println!("fault: {fault:?}");
        sale.inject(fault, &admin).await;
    }

    let mut answered = BTreeMap::new();
    for (n, shopper) in shoppers.into_iter().enumerate() {
        if let Some(order) = shopper.await.unwrap() {
            answered.insert(order, format!("chaos-{n}"));
        }
    }
    // A last shopper after the chaos: restores a sale state lost late, if need be.
    if let Some(order) = sale.shop(SHOPPERS).await {
        answered.insert(order, format!("chaos-{SHOPPERS}"));
    }
    sale.check(&answered).await;
    drop(broker);
}

impl Sale {
    fn token(&self, sub: &str, role: &str) -> String {
        sign_token(&self.ctx, &self.issuer, sub, role)
    }

    /// A request; `None` when the api did not answer (restarting, say).
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> Option<(u16, Value)> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.ok()?;
        let status = response.status().as_u16();
        Some((status, response.json().await.unwrap_or(Value::Null)))
    }

    /// One shopper buying one unit with one Idempotency-Key, retrying whatever is not
    /// an answer (503, no answer at all) until 202 (the order id) or 409.
    async fn shop(&self, n: usize) -> Option<String> {
        let token = self.token(&format!("chaos-{n}"), "user");
        let path = format!("/api/coupons/{}/purchase", self.coupon);
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            let request = self
                .http
                .post(format!("{}{path}", self.base))
                .bearer_auth(&token)
                .header("Idempotency-Key", format!("chaos-key-{n}"));
            if let Ok(response) = request.send().await {
                let status = response.status().as_u16();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                match status {
                    202 => return Some(body["order_id"].as_str().unwrap().to_owned()),
                    409 => return None,
                    503 => {}
                    other => panic!("shopper {n}: unexpected {other}: {body}"),
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("shopper {n} never got an answer");
    }

    async fn inject(&self, fault: Fault, admin: &str) {
        match fault {
            Fault::LoseSaleKeys => {
                let keys = self.ctx.keys();
                let keys = [
                    keys.coupon_stock(self.coupon),
                    keys.coupon_meta(self.coupon),
                    keys.coupon_buyers(self.coupon),
                ];
                let mut redis = self.ctx.redis().await;
                let _: Result<i64, _> = redis::cmd("DEL").arg(&keys).query_async(&mut redis).await;
            }
            Fault::RestartApi => {
                let mut api = self.api.lock().await;
                api.kill();
                *api = ChildApp::start_on(&self.ctx, "api", self.api_port, &self.env).await;
            }
            Fault::StallRedis => {
                let mut redis = self.ctx.redis().await;
                let _: Result<(), _> = redis::cmd("CLIENT")
                    .arg("PAUSE")
                    .arg(1_500)
                    .arg("ALL")
                    .query_async(&mut redis)
                    .await;
                tokio::time::sleep(Duration::from_millis(1_500)).await;
            }
            Fault::EditCoupon => {
                let mut body = coupon_body("Chaos", STOCK, -5, 3600);
                body["description"] = json!(format!("edited at {}", chrono::Utc::now()));
                // The window must stay as it was: keep the original start and end.
                let (_, current) = self
                    .send(
                        reqwest::Method::GET,
                        &format!("/api/coupons/{}", self.coupon),
                        admin,
                        None,
                    )
                    .await
                    .unwrap_or((0, Value::Null));
                if current.is_object() {
                    body["sale_starts_at"] = current["sale_starts_at"].clone();
                    body["sale_ends_at"] = current["sale_ends_at"].clone();
                    let answer = self
                        .send(
                            reqwest::Method::PUT,
                            &format!("/api/admin/coupons/{}", self.coupon),
                            admin,
                            Some(&body),
                        )
                        .await;
                    println!("edit answered {:?}", answer.map(|(status, _)| status));
                }
            }
            Fault::RestartPayment => {
                let mut payment = self.payment.lock().await;
                payment.kill();
                *payment = ChildApp::start_with(&self.ctx, "payment", &self.env).await;
            }
            Fault::StallBroker => {
                self.proxy.drop_produce_answers(true);
                tokio::time::sleep(Duration::from_millis(1_500)).await;
                self.proxy.drop_produce_answers(false);
            }
        }
    }

    /// Every promise, once every order is settled.
    async fn check(&self, answered: &BTreeMap<String, String>) {
        let ctx = &self.ctx;
        let ids: Vec<String> = answered.keys().cloned().collect();
        eventually(
            Duration::from_secs(90),
            "every answered order written, none PENDING",
            || async {
                let mut conn = ctx.mysql().await;
                let written: i64 = orders::table
                    .filter(orders::id.eq_any(&ids))
                    .count()
                    .get_result(&mut conn)
                    .await
                    .unwrap();
                written == i64::try_from(ids.len()).unwrap()
                    && count_orders(ctx, Some("PENDING")).await == 0
            },
        )
        .await;
        // Late events (a publication the api could not confirm) land within the
        // publish deadline; give them that and settle again.
        tokio::time::sleep(Duration::from_secs(3)).await;
        eventually(Duration::from_secs(60), "none PENDING", || async {
            count_orders(ctx, Some("PENDING")).await == 0
        })
        .await;
        let stored: Vec<(String, String, String)> = {
            let mut conn = ctx.mysql().await;
            orders::table
                .select((orders::id, orders::user_id, orders::status))
                .load(&mut conn)
                .await
                .unwrap()
        };
        let by_id: BTreeMap<&String, (&String, &String)> = stored
            .iter()
            .map(|(id, user, status)| (id, (user, status)))
            .collect();
        for (order, user) in answered {
            let (owner, _) = by_id
                .get(order)
                .unwrap_or_else(|| panic!("202 for {order} but no such order"));
            assert_eq!(*owner, user, "order {order} belongs to its shopper");
        }
        let mut held: BTreeMap<&String, i64> = BTreeMap::new();
        let mut sold = 0;
        for (id, user, status) in &stored {
            match status.as_str() {
                "PAID" => {
                    sold += 1;
                    *held.entry(user).or_default() += 1;
                }
                "FAILED" => {}
                other => panic!("order {id} ended {other}"),
            }
            assert!(
                answered.contains_key(id) || status == "FAILED",
                "order {id} ({status}) was never answered 202"
            );
        }
        assert!(sold <= STOCK, "{sold} sold of {STOCK}");
        let over: Vec<_> = held.iter().filter(|(_, units)| **units > 1).collect();
        assert!(over.is_empty(), "over the limit: {over:?}");
        let stock = redis_stock(ctx, self.coupon)
            .await
            .expect("sale state present");
        if stock + sold != STOCK {
            self.explain_held_units(&stored, answered).await;
        }
        assert_eq!(
            stock + sold,
            STOCK,
            "Redis stock {stock} + units sold {sold}"
        );
        let paid_ids: BTreeSet<&String> = stored
            .iter()
            .filter(|(_, _, status)| status == "PAID")
            .map(|(id, _, _)| id)
            .collect();
        println!(
            "{} orders ({} paid, {} failed), {} answered 202, stock left {stock}",
            stored.len(),
            paid_ids.len(),
            stored.len() - paid_ids.len(),
            answered.len()
        );
    }

    /// Prints every buyer Redis holds a unit for without a PAID order: their orders,
    /// those orders' claims and whether the shopper heard 202.
    async fn explain_held_units(
        &self,
        stored: &[(String, String, String)],
        answered: &BTreeMap<String, String>,
    ) {
        let keys = self.ctx.keys();
        let mut redis = self.ctx.redis().await;
        let buyers: Vec<String> = redis
            .smembers(keys.coupon_buyers(self.coupon))
            .await
            .unwrap_or_default();
        for buyer in buyers {
            let orders: Vec<_> = stored
                .iter()
                .filter(|(_, user, _)| *user == buyer)
                .collect();
            if orders.iter().any(|(_, _, status)| status == "PAID") {
                continue;
            }
            let mut seen = Vec::new();
            for (id, _, status) in &orders {
                let claim: Option<String> = redis
                    .get(keys.coupon_order_claim(self.coupon, id))
                    .await
                    .unwrap_or_default();
                seen.push(format!(
                    "{id} {status} claim {claim:?} answered {}",
                    answered.contains_key(id)
                ));
            }
            println!("held without a PAID order: {buyer}: {seen:?}");
        }
    }
}
