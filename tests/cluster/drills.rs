//! The drills: each breaks one part of the cluster while shoppers buy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_redis::redis;
use flash_sale::adapters::redis::Keys;
use flash_sale::adapters::redis::slot_router::key_slot;

use crate::crowd::{Heard, Sale, assert_exact, sale_with_fault, shop};
use crate::harness::{Cluster, Outcome, address, buy, next_update};

fn cluster() -> Option<Arc<Cluster>> {
    let cluster = Cluster::from_env().map(Arc::new);
    if cluster.is_none() {
        eprintln!("skipped: no cluster (make test-cluster runs the drills)");
    }
    cluster
}

/// Purchases counted by one api instance, read from its own /metrics.
async fn accepted_by(port: u16) -> f64 {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix("flash_sale_purchases_total{outcome=\"accepted\"} "))
        .map_or(0.0, |value| value.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_race_through_nginx_over_two_api_instances_sells_exactly_the_stock() {
    let Some(cluster) = cluster() else { return };
    let before = (accepted_by(18081).await, accepted_by(18082).await);
    let coupon = cluster.open_coupon("Race", 100).await;
    // 400 shoppers, two tabs each, all at once.
    let (first, second) = tokio::join!(
        shop(
            cluster.clone(),
            coupon,
            "racer".into(),
            400,
            200,
            Duration::ZERO
        ),
        shop(
            cluster.clone(),
            coupon,
            "racer".into(),
            400,
            200,
            Duration::ZERO
        ),
    );
    let heard = Heard {
        outcomes: first.outcomes.into_iter().chain(second.outcomes).collect(),
    };
    println!("race: {:?}", heard.summary());
    assert_eq!(heard.accepted().len(), 100, "exactly the stock accepted");
    assert_exact(&cluster, coupon, 100, &heard).await;
    let served = (
        accepted_by(18081).await - before.0,
        accepted_by(18082).await - before.1,
    );
    println!(
        "race: accepted by api-1 {}, by api-2 {}",
        served.0, served.1
    );
    assert!(
        served.0 > 0.0 && served.1 > 0.0,
        "both api instances sold: {served:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_of_an_api_instance_mid_sale_loses_no_accepted_purchase() {
    let Some(cluster) = cluster() else { return };
    let sale = Sale {
        total: 150,
        shoppers: 300,
        concurrency: 20,
        spacing: Duration::from_millis(10),
    };
    let (coupon, heard, killed) = sale_with_fault(&cluster, "Api kill", sale, 40, async |_| {
        cluster.script(&["kill", "api-1"]);
    })
    .await;
    println!("api kill: {:?}", heard.summary());
    assert_eq!(heard.accepted().len(), 150, "sold out through the survivor");
    let sold = assert_exact(&cluster, coupon, 150, &heard).await;
    let after_kill = heard
        .outcomes
        .iter()
        .filter(|(_, o, at)| matches!(o, Outcome::Accepted(_)) && *at > killed)
        .count();
    println!("api kill: {sold} sold, {after_kill} of them after the kill");
    cluster.script(&["start", "api-1"]);
}

/// A socket that closes (or fails) within `within`: true; still open: false.
async fn closes_within(socket: &mut crate::harness::Socket, within: Duration) -> bool {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let deadline = Instant::now() + within;
    loop {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return false;
        };
        match tokio::time::timeout(left, socket.next()).await {
            Err(_) => return false,
            Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return true,
            Ok(Some(Ok(_))) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_of_a_ws_instance_its_shoppers_reconnect_and_get_their_results() {
    let Some(cluster) = cluster() else { return };
    let coupon = cluster.open_coupon("Ws kill", 100).await;
    let shoppers = 40;
    let mut sockets = Vec::new();
    for n in 0..shoppers {
        let token = cluster.token(&format!("ws-kill-{n}"), "user");
        let socket = cluster.socket_with_retries(&token, &address(n)).await;
        sockets.push((n, token, socket));
    }
    cluster.script(&["kill", "ws-1"]);
    let tasks = sockets.into_iter().map(|(n, token, mut socket)| {
        let cluster = cluster.clone();
        tokio::spawn(async move {
            let reconnected = closes_within(&mut socket, Duration::from_secs(3)).await;
            if reconnected {
                // Like the pages: back again after a jittered pause, through NGINX.
                let mut attempt = 0;
                socket = loop {
                    tokio::time::sleep(Duration::from_millis(200 + 50 * (n as u64 % 10))).await;
                    match cluster.socket(&token, &address(n)).await {
                        Ok(socket) => break socket,
                        Err(error) => {
                            attempt += 1;
                            assert!(attempt < 50, "shopper {n} cannot reconnect: {error}");
                        }
                    }
                };
            }
            let outcome = buy(
                &cluster,
                &token,
                &address(n),
                coupon,
                Duration::from_secs(30),
            )
            .await;
            let Outcome::Accepted(order) = outcome else {
                panic!("shopper {n}: {outcome:?}");
            };
            let update = next_update(&mut socket, Duration::from_secs(30))
                .await
                .unwrap_or_else(|| panic!("shopper {n} got no result for {order}"));
            assert_eq!(update["order_id"], order.as_str());
            assert_eq!(update["status"], "PAID");
            reconnected
        })
    });
    let reconnected = futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .filter(|r| *r)
        .count();
    println!("ws kill: {reconnected} of {shoppers} shoppers reconnected, all got their results");
    assert!(reconnected > 0, "the killed instance held some sockets");
    cluster.script(&["start", "ws-1"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_of_a_payment_instance_moves_its_partitions_and_pays_each_order_once() {
    let Some(cluster) = cluster() else { return };
    let sale = Sale {
        total: 200,
        shoppers: 200,
        concurrency: 10,
        spacing: Duration::from_millis(20),
    };
    let (coupon, heard, killed) = sale_with_fault(&cluster, "Payment kill", sale, 50, async |_| {
        cluster.script(&["kill", "payment-1"]);
    })
    .await;
    println!("payment kill: {:?}", heard.summary());
    let sold = assert_exact(&cluster, coupon, 200, &heard).await;
    println!(
        "payment kill: {sold} orders, each PAID once, all settled {:.1} s after the kill",
        killed.elapsed().as_secs_f64()
    );
    cluster.script(&["start", "payment-1"]);
}

/// The longest time without an accepted purchase from `since` to the last acceptance.
fn longest_pause_after(heard: &Heard, since: Instant) -> Duration {
    let mut times: Vec<Instant> = heard
        .outcomes
        .iter()
        .filter(|(_, o, _)| matches!(o, Outcome::Accepted(_)))
        .map(|(_, _, at)| *at)
        .filter(|at| *at > since)
        .collect();
    times.sort();
    let mut previous = since;
    let mut longest = Duration::ZERO;
    for at in times {
        longest = longest.max(at.duration_since(previous));
        previous = at;
    }
    longest
}

/// The port of the Redis primary that holds a coupon's sale state.
async fn primary_of(coupon: i64) -> u16 {
    let namespace = std::env::var("CLUSTER_NAMESPACE").unwrap_or_else(|_| "fs".to_owned());
    let slot = i64::from(key_slot(
        Keys::new(namespace).coupon_stock(coupon).as_bytes(),
    ));
    for port in 7001..=7006 {
        let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}")) else {
            continue;
        };
        let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
            continue;
        };
        let ranges: Vec<(i64, i64, (String, i64))> = match redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async::<Vec<redis::Value>>(&mut conn)
            .await
        {
            Ok(ranges) => ranges
                .into_iter()
                .filter_map(|range| {
                    let redis::Value::Array(fields) = range else {
                        return None;
                    };
                    let (redis::Value::Int(start), redis::Value::Int(end)) =
                        (fields.first()?, fields.get(1)?)
                    else {
                        return None;
                    };
                    let redis::Value::Array(primary) = fields.get(2)? else {
                        return None;
                    };
                    let redis::Value::Int(port) = primary.get(1)? else {
                        return None;
                    };
                    Some((*start, *end, (String::new(), *port)))
                })
                .collect(),
            Err(_) => continue,
        };
        if let Some((_, _, (_, port))) = ranges.iter().find(|(s, e, _)| (*s..=*e).contains(&slot)) {
            return u16::try_from(*port).unwrap();
        }
    }
    panic!("no Redis node answers CLUSTER SLOTS");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_of_a_redis_primary_fails_over_and_the_counts_hold_or_are_repaired() {
    let Some(cluster) = cluster() else { return };
    let total = 300;
    let sale = Sale {
        total,
        shoppers: 400,
        concurrency: 20,
        spacing: Duration::from_millis(10),
    };
    let primary = std::sync::OnceLock::new();
    let (coupon, heard, killed) =
        sale_with_fault(&cluster, "Redis kill", sale, 60, async |coupon| {
            let port = primary_of(coupon).await;
            cluster.kill_recorded(&format!("redis-{port}"));
            primary.set(port).unwrap();
        })
        .await;
    let primary = *primary.get().unwrap();
    println!("redis kill: {:?}", heard.summary());
    assert!(heard.failures().is_empty(), "{:?}", heard.failures());
    let pause = longest_pause_after(&heard, killed);
    let new_primary = primary_of(coupon).await;
    println!(
        "redis kill: primary {primary} -> {new_primary}; longest pause between accepted purchases after the kill {pause:?}"
    );
    assert!(
        pause < Duration::from_secs(15),
        "purchases resumed within seconds"
    );
    assert_ne!(primary, new_primary, "a replica took over");
    let accepted = heard.accepted();
    let orders = cluster.settled(coupon, accepted.len()).await;
    assert!(orders.iter().all(|(_, _, s)| s == "PAID"));
    let audit = cluster.script(&["cli", "audit"]);
    let line = audit
        .lines()
        .find(|l| l.starts_with(&format!("coupon {coupon}:")))
        .unwrap_or_default()
        .to_owned();
    let drifted = !line.ends_with("ok");
    println!("redis kill: audit says {line:?}");
    if drifted {
        // An asynchronous failover lost the primary's last writes: reconcile repairs
        // the sale state from MySQL and the events not yet consumed.
        println!(
            "redis kill: {}",
            cluster.script(&["cli", "reconcile", &coupon.to_string()])
        );
    }
    let stock = cluster.stock(coupon).await;
    let sold = i64::try_from(orders.len()).unwrap();
    println!(
        "redis kill: {sold} sold, {stock} left of {total} (drift found and repaired: {drifted})"
    );
    assert_eq!(
        stock + sold,
        total,
        "after the audit (and reconcile): stock + sold = total"
    );
    cluster.services(&["redis", "up"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_of_a_kafka_broker_loses_no_accepted_purchase() {
    let Some(cluster) = cluster() else { return };
    let sale = Sale {
        total: 200,
        shoppers: 300,
        concurrency: 20,
        spacing: Duration::from_millis(10),
    };
    let (coupon, heard, killed) = sale_with_fault(&cluster, "Broker kill", sale, 40, async |_| {
        cluster.kill_recorded("kafka-1");
    })
    .await;
    println!(
        "broker kill: {:?}; longest pause between accepted purchases after the kill {:?}",
        heard.summary(),
        longest_pause_after(&heard, killed)
    );
    assert_eq!(heard.accepted().len(), 200, "sold out on two brokers");
    let sold = assert_exact(&cluster, coupon, 200, &heard).await;
    println!("broker kill: {sold} sold, every one PAID");

    // The broker returns and takes its partitions back: purchases go on, to the new
    // leaders, within seconds.
    cluster.services(&["kafka", "up"]);
    cluster.elect_preferred_leaders();
    let sale = Sale {
        total: 100,
        shoppers: 100,
        concurrency: 10,
        spacing: Duration::from_millis(20),
    };
    let (coupon, heard, _) = sale_with_fault(&cluster, "Broker back", sale, 1, async |_| {}).await;
    println!(
        "broker back: {:?}; longest pause between accepted purchases {:?}",
        heard.summary(),
        longest_pause_after(
            &heard,
            heard.outcomes.iter().map(|(_, _, at)| *at).min().unwrap()
        )
    );
    assert_exact(&cluster, coupon, 100, &heard).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rolling_restart_under_load_fails_no_purchase_and_loses_no_result() {
    let Some(cluster) = cluster() else { return };
    let coupon = cluster.open_coupon("Rolling", 10_000).await;
    let restart = {
        let cluster = cluster.clone();
        tokio::task::spawn_blocking(move || cluster.script(&["restart-all"]))
    };
    let shoppers = 300;
    let tasks = (0..shoppers).map(|n| {
        let cluster = cluster.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(150 * n as u64)).await;
            let token = cluster.token(&format!("rolling-{n}"), "user");
            let mut socket = cluster.socket_with_retries(&token, &address(n)).await;
            let outcome = buy(
                &cluster,
                &token,
                &address(n),
                coupon,
                Duration::from_secs(60),
            )
            .await;
            let Outcome::Accepted(order) = outcome else {
                return (outcome, false);
            };
            // The result over the socket; a socket closed by a restarting ws instance is
            // replaced, and the page then reads its orders (what the pages do).
            if let Some(update) = next_update(&mut socket, Duration::from_secs(20)).await {
                assert_eq!(update["order_id"], order.as_str());
                return (Outcome::Accepted(order), true);
            }
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let answer = cluster
                    .http
                    .get(format!("{}/api/orders/{order}", cluster.url))
                    .bearer_auth(&token)
                    .send()
                    .await;
                if let Ok(response) = answer
                    && response.status() == 200
                    && response.json::<serde_json::Value>().await.unwrap()["status"] == "PAID"
                {
                    return (Outcome::Accepted(order), false);
                }
                assert!(Instant::now() < deadline, "shopper {n}: {order} never PAID");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    });
    let results: Vec<(Outcome, bool)> = futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    restart.await.unwrap();
    let heard = Heard {
        outcomes: results
            .iter()
            .enumerate()
            .map(|(n, (o, _))| (format!("rolling-{n}"), o.clone(), Instant::now()))
            .collect(),
    };
    let over_socket = results.iter().filter(|(_, ws)| *ws).count();
    println!(
        "rolling restart: {:?}; {over_socket} results over the socket, the rest read back after a reconnect",
        heard.summary()
    );
    assert_eq!(heard.accepted().len(), shoppers, "every purchase accepted");
    assert_exact(&cluster, coupon, 10_000, &heard).await;
}
