//! `ws`: memory per idle socket on a ws instance, then publish-to-socket latency.

use std::path::Path;
use std::time::{Duration, Instant};

use flash_sale::bench_report::{Entry, Figure};
use futures_util::{SinkExt, StreamExt};
use secrecy::ExposeSecret;

use crate::common::{emit, load_settings, mint, signing_keys};

#[derive(clap::Args)]
pub struct Args {
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
}

pub async fn run(args: Args, config_dir: &Path) -> anyhow::Result<()> {
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let Args {
        url,
        issuer,
        server_pid,
        server_id,
        sockets,
        messages,
    } = args;
    let settings = &load_settings(config_dir)?;
    let keys = signing_keys(settings)?;
    let before = rss_kib(server_pid)?;
    let mut held = Vec::with_capacity(sockets);
    let started = Instant::now();
    for n in 0..sockets {
        let token = mint(&keys, settings, &issuer, &format!("ws-bench-{n}"))?;
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

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS for pid {pid}"))
}
