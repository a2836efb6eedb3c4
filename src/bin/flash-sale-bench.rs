//! Helper of `make bench` (scripts/bench.sh): mints tokens for wrk, turns wrk and
//! redis-benchmark output into report entries, checks a sale's final counts against
//! MySQL, Redis and Kafka, measures the payment drain and the WebSocket relay, and
//! writes the report. The HTTP load itself comes from wrk; this tool never generates it.
//!
//! Every subcommand reads the same configuration as the server (`--config-dir`,
//! `FLASH_ENV`, `FLASH__*`), so it looks at the very database, namespace and topics the
//! benchmarked processes use. Entries are printed as JSON lines on stdout.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use flash_sale::adapters::kafka::Kafka;
use flash_sale::adapters::kafka::codec::{decode_order_placed, partition_for};
use flash_sale::adapters::kafka::consumer::PartitionReader;
use flash_sale::adapters::oidc::SigningKeys;
use flash_sale::bench_report::{Check, Entry, Figure, Report, Run};
use flash_sale::config::Settings;
use flash_sale::domain::coupon::CouponId;
use futures_util::{SinkExt, StreamExt};
use secrecy::ExposeSecret;

#[derive(Parser)]
#[command(name = "flash-sale-bench", about = "Measurement helper of make bench")]
struct Cli {
    #[arg(long, default_value = "config", global = true)]
    config_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Writes a Lua file returning `count` bearer tokens (subjects `<prefix>-<n>`).
    Tokens {
        #[arg(long)]
        count: usize,
        #[arg(long)]
        prefix: String,
        /// The issuer the server expects (its own URL with the built-in issuer).
        #[arg(long)]
        issuer: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Converts the JSON line printed by bench/wrk/*.lua into a run entry.
    Wrk {
        #[arg(long)]
        scenario: String,
        #[arg(long)]
        connections: u32,
        #[arg(long)]
        baseline: Option<String>,
        /// Statuses that are expected answers, not errors (e.g. 409 on a sold-out sale).
        #[arg(long, value_delimiter = ',')]
        expected: Vec<u16>,
        #[arg(long)]
        input: PathBuf,
    },
    /// Converts `redis-benchmark --csv` output into a run entry.
    RedisBenchmark {
        #[arg(long)]
        scenario: String,
        #[arg(long)]
        connections: u32,
        #[arg(long)]
        input: PathBuf,
    },
    /// Checks a sale's final counts: Redis stock, buyer records, events on the topic
    /// (and, with --orders, order rows) against the number of accepted purchases.
    CheckSale {
        #[arg(long)]
        coupon: i64,
        #[arg(long)]
        total: i64,
        #[arg(long)]
        limit: i64,
        /// Purchases the server accepted (its purchases_total metric).
        #[arg(long)]
        accepted: i64,
        /// 202s wrk saw; requests still in flight when a run ends are accepted by the
        /// server but never counted by the client.
        #[arg(long)]
        client_accepted: i64,
        /// Most requests that can be in flight when the runs end (connections summed).
        #[arg(long)]
        in_flight: i64,
        /// Label prefixed to every check name.
        #[arg(long)]
        label: String,
        #[arg(long)]
        orders: bool,
    },
    /// Waits until `expected` orders are settled (PAID or FAILED); prints orders/s.
    Drain {
        #[arg(long)]
        coupon: i64,
        #[arg(long)]
        expected: i64,
        /// Seconds the load ran before this call (for the sustained rate).
        #[arg(long)]
        load_secs: f64,
        #[arg(long, default_value_t = 120)]
        timeout_secs: u64,
    },
    /// Holds idle sockets on a ws instance, reports memory per socket, then measures
    /// publish-to-socket latency.
    Ws {
        #[arg(long)]
        url: String,
        #[arg(long)]
        issuer: String,
        #[arg(long)]
        server_pid: u32,
        #[arg(long)]
        server_id: String,
        #[arg(long)]
        sockets: usize,
        #[arg(long, default_value_t = 1000)]
        messages: usize,
    },
    /// Prints a machine fact entry.
    Fact { name: String, value: String },
    /// Writes the Markdown and JSON report; exits 1 when a correctness check failed.
    Report {
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        markdown: PathBuf,
        #[arg(long)]
        json: PathBuf,
        #[arg(long)]
        title: String,
    },
}

fn emit(entry: &Entry) {
    match serde_json::to_string(entry) {
        Ok(line) => println!("{line}"),
        Err(error) => eprintln!("flash-sale-bench: {error}"),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("flash-sale-bench: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("flash-sale-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn settings(dir: &std::path::Path) -> anyhow::Result<Settings> {
    Ok(Settings::load(dir)?)
}

fn mint(
    keys: &SigningKeys,
    settings: &Settings,
    issuer: &str,
    sub: &str,
) -> anyhow::Result<String> {
    let now = chrono::Utc::now().timestamp();
    Ok(keys.sign(&serde_json::json!({
        "iss": issuer, "sub": sub, "aud": settings.identity.audience,
        "iat": now, "nbf": now, "exp": now + 3600, "roles": ["user"],
    }))?)
}

fn signing_keys(settings: &Settings) -> anyhow::Result<SigningKeys> {
    let pem = std::fs::read_to_string(&settings.identity.embedded.signing_key)?;
    Ok(SigningKeys::from_pem(&pem)?)
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Tokens {
            count,
            prefix,
            issuer,
            out,
        } => {
            let settings = settings(&cli.config_dir)?;
            let keys = signing_keys(&settings)?;
            let mut lua = String::from("return {\n");
            for n in 0..count {
                lua.push_str(&format!(
                    "\"{}\",\n",
                    mint(&keys, &settings, &issuer, &format!("{prefix}-{n}"))?
                ));
            }
            lua.push_str("}\n");
            std::fs::write(out, lua)?;
        }
        Command::Wrk {
            scenario,
            connections,
            baseline,
            expected,
            input,
        } => {
            let raw = std::fs::read_to_string(&input)?;
            let line = raw
                .lines()
                .rev()
                .find(|l| l.starts_with('{'))
                .ok_or_else(|| anyhow::anyhow!("no result line in {}", input.display()))?;
            let value: serde_json::Value = serde_json::from_str(line)?;
            let statuses: BTreeMap<String, u64> = value["statuses"]
                .as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                        .collect()
                })
                .unwrap_or_default();
            let unexpected: u64 = statuses
                .iter()
                .filter(|(status, _)| {
                    let code: u16 = status.parse().unwrap_or(0);
                    !(200..300).contains(&code) && !expected.contains(&code)
                })
                .map(|(_, n)| n)
                .sum();
            let requests = value["requests"].as_u64().unwrap_or(0);
            let secs = value["duration_us"].as_f64().unwrap_or(1.0) / 1e6;
            emit(&Entry::Run(Run {
                scenario,
                connections,
                requests,
                rps: requests as f64 / secs.max(1e-9),
                p50_ms: value["p50_us"].as_f64().unwrap_or(0.0) / 1000.0,
                p99_ms: value["p99_us"].as_f64().unwrap_or(0.0) / 1000.0,
                errors: value["socket_errors"].as_u64().unwrap_or(0) + unexpected,
                statuses,
                baseline,
            }));
        }
        Command::RedisBenchmark {
            scenario,
            connections,
            input,
        } => {
            // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
            let raw = std::fs::read_to_string(&input)?;
            let row = raw
                .lines()
                .rfind(|l| !l.starts_with("\"test\""))
                .ok_or_else(|| anyhow::anyhow!("no CSV row in {}", input.display()))?;
            let fields: Vec<f64> = row
                .split(',')
                .skip(1)
                .map(|f| f.trim_matches('"').parse().unwrap_or(0.0))
                .collect();
            let field = |i: usize| fields.get(i).copied().unwrap_or(0.0);
            emit(&Entry::Run(Run {
                scenario,
                connections,
                requests: 0,
                rps: field(0),
                p50_ms: field(3),
                p99_ms: field(5),
                errors: 0,
                statuses: BTreeMap::new(),
                baseline: None,
            }));
        }
        Command::CheckSale {
            coupon,
            total,
            limit,
            accepted,
            client_accepted,
            in_flight,
            label,
            orders,
        } => {
            emit(&Entry::Check(Check {
                name: format!("{label}: client 202s <= server accepted <= client 202s + in flight"),
                expected: format!("{client_accepted}..={}", client_accepted + in_flight),
                actual: accepted.to_string(),
                ok: (client_accepted..=client_accepted + in_flight).contains(&accepted),
            }));
            check_sale(
                &settings(&cli.config_dir)?,
                coupon,
                total,
                limit,
                accepted,
                &label,
                orders,
            )
            .await?
        }
        Command::Drain {
            coupon,
            expected,
            load_secs,
            timeout_secs,
        } => {
            drain(
                &settings(&cli.config_dir)?,
                coupon,
                expected,
                load_secs,
                timeout_secs,
            )
            .await?
        }
        Command::Ws {
            url,
            issuer,
            server_pid,
            server_id,
            sockets,
            messages,
        } => {
            ws(
                &settings(&cli.config_dir)?,
                &url,
                &issuer,
                server_pid,
                &server_id,
                sockets,
                messages,
            )
            .await?
        }
        Command::Fact { name, value } => emit(&Entry::Fact { name, value }),
        Command::Report {
            input,
            markdown,
            json,
            title,
        } => {
            let report = Report::from_lines(&std::fs::read_to_string(&input)?)?;
            std::fs::write(&markdown, report.to_markdown(&title))?;
            std::fs::write(&json, serde_json::to_string_pretty(&report)?)?;
            if !report.passed() {
                eprintln!(
                    "flash-sale-bench: a correctness check failed; see {}",
                    markdown.display()
                );
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn check_sale(
    settings: &Settings,
    coupon: i64,
    total: i64,
    limit: i64,
    accepted: i64,
    label: &str,
    with_orders: bool,
) -> anyhow::Result<()> {
    use deadpool_redis::redis::AsyncCommands;
    let keys = flash_sale::adapters::redis::Keys::new(settings.redis.namespace.clone());
    let mut redis = deadpool_redis::redis::Client::open(settings.redis.url.expose_secret())?
        .get_multiplexed_async_connection()
        .await?;
    let stock: Option<i64> = redis.get(keys.coupon_stock(coupon)).await?;
    let stock = stock.unwrap_or(-1);
    let buyers: BTreeMap<String, i64> = if limit == 1 {
        let members: Vec<String> = redis.smembers(keys.coupon_buyers(coupon)).await?;
        members.into_iter().map(|m| (m, 1)).collect()
    } else {
        redis.hgetall(keys.coupon_buyers(coupon)).await?
    };
    let sold: i64 = buyers.values().sum();
    let busiest = buyers.values().copied().max().unwrap_or(0);
    let name = |what: &str| format!("{label}: {what}");
    emit(&Entry::Check(Check::at_most(
        &name("units sold <= stock (no oversell)"),
        total,
        total - stock,
    )));
    emit(&Entry::Check(Check::equal(
        &name("Redis stock = total - accepted"),
        total - accepted,
        stock,
    )));
    emit(&Entry::Check(Check::equal(
        &name("buyer records = accepted"),
        accepted,
        sold,
    )));
    emit(&Entry::Check(Check::at_most(
        &name("units of the busiest user <= limit"),
        limit,
        busiest,
    )));

    let kafka = Kafka::new(&settings.kafka);
    let id = CouponId::new(coupon).ok_or_else(|| anyhow::anyhow!("bad coupon id"))?;
    let partition = partition_for(id, settings.kafka.orders_partitions);
    let reader =
        PartitionReader::new(&kafka, &settings.kafka.orders_topic_name(), partition).await?;
    let events = reader
        .read_to_end(0)
        .await?
        .iter()
        .filter_map(|r| decode_order_placed(&r.record).ok())
        .filter(|e| e.coupon_id == id)
        .count();
    emit(&Entry::Check(Check::equal(
        &name("events on the topic = accepted"),
        accepted,
        events,
    )));

    if with_orders {
        use diesel::prelude::*;
        use diesel_async::RunQueryDsl;
        use flash_sale::adapters::mysql::schema::orders;
        let pool = flash_sale::adapters::mysql::MysqlPool::new(&settings.mysql)?;
        let rows: i64 = pool
            .with_conn(async |conn| {
                Ok(orders::table
                    .filter(orders::coupon_id.eq(coupon))
                    .count()
                    .get_result(conn)
                    .await?)
            })
            .await?;
        emit(&Entry::Check(Check::equal(
            &name("order rows = accepted"),
            accepted,
            rows,
        )));
    }
    Ok(())
}

async fn drain(
    settings: &Settings,
    coupon: i64,
    expected: i64,
    load_secs: f64,
    timeout_secs: u64,
) -> anyhow::Result<()> {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    use flash_sale::adapters::mysql::schema::orders;
    let pool = flash_sale::adapters::mysql::MysqlPool::new(&settings.mysql)?;
    let count = async |pending: bool| -> anyhow::Result<i64> {
        Ok(pool
            .with_conn(async |conn| {
                let mut query = orders::table
                    .filter(orders::coupon_id.eq(coupon))
                    .into_boxed();
                if !pending {
                    query = query.filter(orders::status.ne("PENDING"));
                }
                Ok(query.count().get_result(conn).await?)
            })
            .await?)
    };
    let at_end_of_load = count(false).await?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(timeout_secs);
    while count(false).await? < expected {
        if Instant::now() > deadline {
            anyhow::bail!(
                "only {} of {expected} orders settled after {timeout_secs} s",
                count(false).await?
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drain_secs = started.elapsed().as_secs_f64();
    let total_secs = load_secs + drain_secs;
    emit(&Entry::Figure(Figure {
        name: "payment: orders settled per second (sustained)".into(),
        value: expected as f64 / total_secs,
        unit: "orders/s".into(),
        note: format!("{expected} orders in {load_secs:.1} s of load + {drain_secs:.1} s of drain"),
    }));
    emit(&Entry::Figure(Figure {
        name: "payment: lag at the end of the load".into(),
        value: (expected - at_end_of_load) as f64,
        unit: "orders".into(),
        note: "accepted but not yet settled when the load stopped".into(),
    }));
    Ok(())
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS for pid {pid}"))
}

async fn ws(
    settings: &Settings,
    url: &str,
    issuer: &str,
    server_pid: u32,
    server_id: &str,
    sockets: usize,
    messages: usize,
) -> anyhow::Result<()> {
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let keys = signing_keys(settings)?;
    let before = rss_kib(server_pid)?;
    let mut held = Vec::with_capacity(sockets);
    let started = Instant::now();
    for n in 0..sockets {
        let token = mint(&keys, settings, issuer, &format!("ws-bench-{n}"))?;
        let mut request = format!("{url}/ws").into_client_request()?;
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            format!("bearer, {token}").parse()?,
        );
        let (socket, _) = tokio_tungstenite::connect_async(request).await?;
        // Keep each socket alive by reading it (answers the server's pings).
        let (sink, mut stream) = socket.split();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
        tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                if matches!(message, Message::Text(_)) {
                    let _ = tx.send(Instant::now());
                }
            }
        });
        held.push((sink, rx));
    }
    let connect_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(server_pid)?;
    let per_socket = (after.saturating_sub(before)) as f64 * 1024.0 / sockets.max(1) as f64;
    emit(&Entry::Figure(Figure {
        name: format!("ws: memory per idle socket ({sockets} sockets)"),
        value: per_socket / 1024.0,
        unit: "KiB".into(),
        note: format!("server RSS {before} KiB -> {after} KiB; connected in {connect_secs:.1} s"),
    }));

    // Publish-to-socket latency: publish on the server's channel, time until the socket
    // gets it; one message in flight at a time.
    let mut redis = deadpool_redis::redis::Client::open(settings.redis.url.expose_secret())?
        .get_multiplexed_async_connection()
        .await?;
    let channel = format!("payment_update:{server_id}");
    let mut samples = Vec::with_capacity(messages);
    for n in 0..messages {
        let target = n % held.len().max(1);
        let message = serde_json::json!({
            "type": "payment_update",
            "order_id": flash_sale::domain::order::OrderId::generate(),
            "status": "PAID",
            "user_id": format!("ws-bench-{target}"),
        })
        .to_string();
        let sent = Instant::now();
        let _: i64 = deadpool_redis::redis::cmd("PUBLISH")
            .arg(&channel)
            .arg(message)
            .query_async(&mut redis)
            .await?;
        let received = tokio::time::timeout(Duration::from_secs(5), held[target].1.recv())
            .await
            .map_err(|_| anyhow::anyhow!("message {n} not received within 5 s"))?
            .ok_or_else(|| anyhow::anyhow!("socket {target} closed"))?;
        samples.push(received.duration_since(sent).as_secs_f64() * 1000.0);
    }
    samples.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        samples
            .get(((samples.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    for (label, value) in [("p50", pct(0.5)), ("p99", pct(0.99))] {
        emit(&Entry::Figure(Figure {
            name: format!("ws: publish-to-socket latency {label}"),
            value,
            unit: "ms".into(),
            note: format!("{messages} messages, one at a time, {sockets} sockets open"),
        }));
    }
    for (mut sink, _) in held {
        let _ = sink.send(Message::Close(None)).await;
    }
    Ok(())
}
