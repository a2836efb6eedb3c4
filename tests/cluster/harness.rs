//! The drills' view of `make cluster`: HTTPS and WSS through NGINX (trusting the local
//! CA), tokens signed with the cluster's key, the cluster's MariaDB, and the script that
//! starts, stops and kills its processes. Settings come from `scripts/cluster.sh env`.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};
use flash_sale::adapters::mysql::schema::orders;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

pub struct Cluster {
    pub url: String,
    ca: PathBuf,
    signing_key: PathBuf,
    mysql_url: String,
    pub http: reqwest::Client,
    root: PathBuf,
}

impl Cluster {
    /// The running cluster, or `None` outside `make test-cluster` (the drills then skip).
    pub fn from_env() -> Option<Self> {
        let url = std::env::var("CLUSTER_URL").ok()?;
        let ca = PathBuf::from(std::env::var("CLUSTER_CA").expect("CLUSTER_CA"));
        let pem = std::fs::read(&ca).expect("the cluster's CA");
        let http = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&pem).expect("CA pem")])
            .timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(64)
            .build()
            .expect("client");
        Some(Self {
            url,
            ca,
            signing_key: std::env::var("CLUSTER_SIGNING_KEY").expect("key").into(),
            mysql_url: std::env::var("CLUSTER_MYSQL_URL").expect("mysql url"),
            http,
            root: PathBuf::from(env!("CARGO_MANIFEST_DIR")),
        })
    }

    /// A token for `sub`, signed like the cluster's api instances sign theirs.
    pub fn token(&self, sub: &str, role: &str) -> String {
        let pem = std::fs::read_to_string(&self.signing_key).expect("signing key");
        let keys = flash_sale::adapters::oidc::SigningKeys::from_pem(&pem).expect("key");
        let now = chrono::Utc::now().timestamp();
        keys.sign(&json!({
            "iss": self.url, "sub": sub, "aud": "flash-sale",
            "iat": now, "nbf": now, "exp": now + 1800, "roles": [role],
        }))
        .expect("sign")
    }

    /// A coupon of `stock` units, one per shopper, on sale from now for an hour.
    pub async fn open_coupon(&self, name: &str, stock: i64) -> i64 {
        let start = chrono::Utc::now() - chrono::Duration::seconds(5);
        let body = json!({
            "name": name, "description": "a drill", "price_cents": 100,
            "total_quantity": stock, "per_user_limit": 1,
            "sale_starts_at": start.to_rfc3339(),
            "sale_ends_at": (start + chrono::Duration::hours(1)).to_rfc3339(),
        });
        // A 503 decided nothing (no instance took it, or one was busy): retried, as an
        // admin page would after its Retry-After.
        for _ in 0..50 {
            let response = self
                .http
                .post(format!("{}/api/admin/coupons", self.url))
                .bearer_auth(self.token("drill-admin", "admin"))
                .json(&body)
                .send()
                .await
                .expect("create coupon");
            if response.status() == 503 {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            assert_eq!(response.status(), 201);
            return response.json::<Value>().await.unwrap()["id"]
                .as_i64()
                .unwrap();
        }
        panic!("no coupon created: 503 for 25 s")
    }

    /// Runs `scripts/cluster.sh` (start, stop, kill an instance; restart-all; cli).
    pub fn script(&self, args: &[&str]) -> String {
        let output = Command::new(self.root.join("scripts/cluster.sh"))
            .args(args)
            .output()
            .expect("scripts/cluster.sh");
        assert!(
            output.status.success(),
            "cluster.sh {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Runs `scripts/cluster-services.sh` (redis up, kafka up).
    pub fn services(&self, args: &[&str]) {
        let status = Command::new(self.root.join("scripts/cluster-services.sh"))
            .args(args)
            .status()
            .expect("scripts/cluster-services.sh");
        assert!(status.success(), "cluster-services.sh {args:?}");
    }

    /// Moves every partition back to its preferred leader (after a broker rejoined), as
    /// Kafka does by itself within `leader.imbalance.check.interval.seconds`.
    pub fn elect_preferred_leaders(&self) {
        let status = Command::new(self.root.join("scripts/kafka-broker.sh"))
            .args([
                "tool",
                "org.apache.kafka.tools.LeaderElectionCommand",
                "--bootstrap-server",
                &std::env::var("CLUSTER_KAFKA_BROKERS").expect("brokers"),
                "--election-type",
                "PREFERRED",
                "--all-topic-partitions",
            ])
            .status()
            .expect("scripts/kafka-broker.sh tool");
        // Exit 1 also means "nothing to move": only a failure to run is one.
        assert!(status.code().is_some(), "leader election");
    }

    /// SIGKILL of a process the cluster scripts recorded (`redis-7002`, `kafka-1`).
    pub fn kill_recorded(&self, name: &str) {
        let pid = std::fs::read_to_string(self.root.join(format!(".cluster/pids/{name}.pid")))
            .expect("pid file");
        let status = Command::new("kill")
            .args(["-KILL", pid.trim()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {name}");
    }

    pub async fn mysql(&self) -> AsyncMysqlConnection {
        AsyncMysqlConnection::establish(&self.mysql_url)
            .await
            .expect("the cluster's MariaDB")
    }

    /// Orders of a coupon by status.
    pub async fn orders(&self, coupon: i64) -> Vec<(String, String, String)> {
        let mut conn = self.mysql().await;
        orders::table
            .filter(orders::coupon_id.eq(coupon))
            .select((orders::id, orders::user_id, orders::status))
            .load(&mut conn)
            .await
            .unwrap()
    }

    /// Waits until every order of the coupon is settled and `expected` exist; the
    /// orders.
    pub async fn settled(&self, coupon: i64, expected: usize) -> Vec<(String, String, String)> {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let orders = self.orders(coupon).await;
            if orders.len() >= expected && orders.iter().all(|(_, _, s)| s != "PENDING") {
                return orders;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {expected} orders stored, {} pending after 90 s",
                orders.len(),
                orders.iter().filter(|(_, _, s)| s == "PENDING").count()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The coupon's real-time stock, through NGINX.
    pub async fn stock(&self, coupon: i64) -> i64 {
        let body: Value = self
            .http
            .get(format!("{}/api/coupons/{coupon}/stock", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["remaining"].as_i64().expect("remaining")
    }

    /// A socket through NGINX (TLS, the token as subprotocol), like the pages open it.
    pub async fn socket(&self, token: &str, address: &str) -> Result<Socket, String> {
        let host = self
            .url
            .trim_start_matches("https://")
            .trim_end_matches('/')
            .to_owned();
        let mut request = format!("wss://{host}/ws").into_client_request().unwrap();
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            format!("bearer, {token}").parse().unwrap(),
        );
        request
            .headers_mut()
            .insert("X-Forwarded-For", address.parse().unwrap());
        let tcp = tokio::net::TcpStream::connect(host.replace("localhost", "127.0.0.1"))
            .await
            .map_err(|e| e.to_string())?;
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tls_connector(&self.ca)
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        let (socket, _) = tokio_tungstenite::client_async(request, tls)
            .await
            .map_err(|e| e.to_string())?;
        Ok(socket)
    }
}

impl Cluster {
    /// A socket, retried like the pages retry (a 503 while an instance drains or a
    /// dependency recovers, a refused connection).
    pub async fn socket_with_retries(&self, token: &str, address: &str) -> Socket {
        let mut last = String::new();
        for _ in 0..50 {
            match self.socket(token, address).await {
                Ok(socket) => return socket,
                Err(error) => last = error,
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        panic!("no socket after 50 attempts: {last}");
    }
}

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

fn tls_connector(ca: &PathBuf) -> tokio_rustls::TlsConnector {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("CA pem") {
        roots.add(cert.expect("CA cert")).expect("CA");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    // NGINX speaks WebSocket over HTTP/1.1 only.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// The next `payment_update` on a socket within `within` (pings are answered by the
/// library); `None` when the socket closed or nothing came.
pub async fn next_update(socket: &mut Socket, within: Duration) -> Option<Value> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match tokio::time::timeout(left, socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                let body: Value = serde_json::from_str(&text).ok()?;
                if body["type"] == "payment_update" {
                    return Some(body);
                }
            }
            Ok(Some(Ok(Message::Ping(bytes)))) => {
                let _ = socket.send(Message::Pong(bytes)).await;
            }
            Ok(Some(Ok(Message::Close(_)) | Err(_)) | None) | Err(_) => return None,
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// What one purchase ended as, after the retries a page makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Accepted(String),
    /// 409 with this code (SOLD_OUT, PURCHASE_LIMIT_REACHED).
    Refused(String),
    /// Anything else after the retries ran out: a failure the drill counts.
    Failed(String),
}

/// Buys like a page does: from the shopper's own address (the drills play the load
/// balancer NGINX trusts), with an Idempotency-Key, retrying 429/5xx and lost connections
/// with the same key for up to `patience`.
pub async fn buy(
    cluster: &Cluster,
    token: &str,
    address: &str,
    coupon: i64,
    patience: Duration,
) -> Outcome {
    let key = uuid::Uuid::new_v4().to_string();
    let deadline = Instant::now() + patience;
    let mut last = String::new();
    while Instant::now() < deadline {
        let answer = cluster
            .http
            .post(format!("{}/api/coupons/{coupon}/purchase", cluster.url))
            .bearer_auth(token)
            .header("Idempotency-Key", &key)
            .header("X-Forwarded-For", address)
            .send()
            .await;
        match answer {
            Ok(response) => {
                let status = response.status().as_u16();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                match status {
                    202 => return Outcome::Accepted(body["order_id"].as_str().unwrap().to_owned()),
                    409 => {
                        return Outcome::Refused(
                            body["error"]["code"].as_str().unwrap_or("").to_owned(),
                        );
                    }
                    429 | 502 | 503 | 504 => last = format!("{status} {body}"),
                    _ => return Outcome::Failed(format!("{status} {body}")),
                }
            }
            Err(error) => last = error.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200 + rand_jitter())).await;
    }
    Outcome::Failed(last)
}

fn rand_jitter() -> u64 {
    u64::from(uuid::Uuid::new_v4().as_bytes()[0])
}

/// An address of its own for shopper `n` (TEST-NET ranges).
pub fn address(n: usize) -> String {
    format!("198.51.{}.{}", 100 + n / 250, 1 + n % 250)
}
