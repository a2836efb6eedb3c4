//! TLS to the stores against real servers: a redis-server with a TLS port (standalone and
//! a one-node cluster with TLS on the cluster bus), the Kafka broker behind a
//! TLS-terminating proxy (the broker advertises the proxy, so every connection of both
//! Kafka clients goes through it), and a private MariaDB with TLS. Certificates come from
//! a CA made per test with the openssl command, so the clients trust it only through
//! `ca_file` (or, for MySQL with `verify_ca=false` in the URL, not at all).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use deadpool_redis::redis;
use flash_sale::adapters::kafka::{Kafka, TopicSpec};
use flash_sale::adapters::redis::RedisPool;
use flash_sale::config::{KafkaSecurityProtocol, RedisMode, RedisSettings};
use tokio::net::{TcpListener, TcpStream};

use crate::fixtures::{OpenSale, count_orders, with_broker};
use crate::helpers::{TestContext, base_settings, eventually, free_port};
use crate::private_servers::PrivateBroker;

/// A CA and a server certificate for 127.0.0.1 and localhost, in a fresh directory.
struct TestPki {
    dir: PathBuf,
}

impl TestPki {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("fst-pki-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n\
             basicConstraints=CA:FALSE\n\
             extendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
        openssl(
            &dir,
            &format!(
                "req -x509 {ec} -keyout ca.key -out ca.pem -days 2 -subj /CN=flash-sale-test-CA \
                 -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign"
            ),
        );
        openssl(
            &dir,
            &format!("req {ec} -keyout server.key -out server.csr -subj /CN=localhost"),
        );
        openssl(
            &dir,
            "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
             -days 2 -extfile server.ext",
        );
        Self { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_str().unwrap().to_owned()
    }

    fn ca(&self) -> String {
        self.path("ca.pem")
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `openssl` with `args` (split on white space) in `dir`.
fn openssl(dir: &Path, args: &str) {
    let output = Command::new("openssl")
        .args(args.split_whitespace())
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("the openssl command (Debian's openssl package)");
    assert!(
        output.status.success(),
        "openssl {args}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A redis-server that speaks only TLS; killed on drop.
struct TlsRedis {
    child: tokio::process::Child,
    port: u16,
}

impl TlsRedis {
    async fn start(pki: &TestPki, cluster: bool) -> Self {
        let port = free_port();
        let mut command = tokio::process::Command::new("redis-server");
        command
            .args(["--bind", "127.0.0.1", "--port", "0"])
            .args(["--tls-port", &port.to_string()])
            .args(["--tls-cert-file", &pki.path("server.pem")])
            .args(["--tls-key-file", &pki.path("server.key")])
            .args(["--tls-ca-cert-file", &pki.ca()])
            .args(["--tls-auth-clients", "no"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--dir", &pki.path("")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if cluster {
            command
                .args(["--cluster-enabled", "yes", "--tls-cluster", "yes"])
                .args([
                    "--cluster-config-file",
                    &pki.path(&format!("nodes-{port}.conf")),
                ])
                .args(["--cluster-port", &free_port().to_string()])
                .args(["--cluster-announce-ip", "127.0.0.1"]);
        }
        let child = command
            .spawn()
            .expect("redis-server (make test installs it)");
        for _ in 0..100 {
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Self { child, port };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server did not listen on {port}");
    }

    fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.port)
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn redis_settings(mode: RedisMode, url: String, ca_file: String) -> RedisSettings {
    let mut settings = base_settings().redis;
    settings.mode = mode;
    settings.ca_file = ca_file;
    match mode {
        RedisMode::Standalone => settings.url = url.into(),
        RedisMode::Cluster => settings.nodes = vec![url.into()],
    }
    settings
}

/// A script with one key: on a cluster it goes through the slot router's own per-node
/// connection once the slot map is known.
async fn set_by_script(pool: &RedisPool, key: &str, value: &str) -> Result<(), String> {
    let (key, value) = (key.to_owned(), value.to_owned());
    pool.run_shared(|mut conn| async move {
        redis::cmd("EVAL")
            .arg("return redis.call('SET', KEYS[1], ARGV[1])")
            .arg(1)
            .arg(key)
            .arg(value)
            .query_async::<String>(&mut conn)
            .await
            .map(drop)
    })
    .await
    .map_err(|e| e.to_string())
}

async fn get(pool: &RedisPool, key: &str) -> Option<String> {
    let key = key.to_owned();
    pool.run(|mut conn| async move {
        redis::cmd("GET")
            .arg(key)
            .query_async::<Option<String>>(&mut conn)
            .await
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn rediss_standalone_checks_the_certificate_against_the_ca_file() {
    let pki = TestPki::new();
    let server = TlsRedis::start(&pki, false).await;

    let pool = RedisPool::new(&redis_settings(
        RedisMode::Standalone,
        server.url(),
        pki.ca(),
    ))
    .unwrap();
    pool.ping().await.unwrap();
    set_by_script(&pool, "tls:k", "v").await.unwrap();
    assert_eq!(get(&pool, "tls:k").await.as_deref(), Some("v"));
    // The pub/sub clients of the ws role carry the same TLS settings.
    let mut pubsub = pool.subscribers()[0].get_async_pubsub().await.unwrap();
    pubsub.subscribe("tls:channel").await.unwrap();

    // Without the CA, the platform's roots do not vouch for this server.
    let untrusted = RedisPool::new(&redis_settings(
        RedisMode::Standalone,
        server.url(),
        String::new(),
    ))
    .unwrap();
    let error = untrusted.ping().await.unwrap_err().to_string();
    assert!(error.to_lowercase().contains("certificate"), "{error}");

    // A CA file for a plaintext URL is a mistake worth stopping for.
    let Err(error) = RedisPool::new(&redis_settings(
        RedisMode::Standalone,
        "redis://127.0.0.1:6379".to_owned(),
        pki.ca(),
    )) else {
        panic!("a CA file with redis:// was accepted");
    };
    assert!(error.to_string().contains("redis.ca_file"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn rediss_cluster_reaches_every_node_over_tls() {
    let pki = TestPki::new();
    let node = TlsRedis::start(&pki, true).await;
    let settings = redis_settings(RedisMode::Cluster, node.url(), pki.ca());

    // A one-node cluster: this node owns every slot.
    let seed = redis::Client::build_with_tls(
        node.url(),
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(std::fs::read(pki.ca()).unwrap()),
        },
    )
    .unwrap();
    let mut admin = seed.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("CLUSTER")
        .arg("ADDSLOTSRANGE")
        .arg(0)
        .arg(16383)
        .query_async(&mut admin)
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "cluster_state:ok", || {
        let mut admin = admin.clone();
        async move {
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query_async(&mut admin)
                .await
                .unwrap();
            info.contains("cluster_state:ok")
        }
    })
    .await;

    let pool = RedisPool::new(&settings).unwrap();
    pool.ping().await.unwrap();
    // The first script learns the slot map; after the router's reload every script goes
    // over its own TLS connection to the node, which must also succeed.
    set_by_script(&pool, "{tls}:k", "first").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for n in 0..20 {
        set_by_script(&pool, "{tls}:k", &n.to_string())
            .await
            .unwrap_or_else(|e| panic!("script {n}: {e}"));
    }
    assert_eq!(get(&pool, "{tls}:k").await.as_deref(), Some("19"));
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(
        clients.lines().count() >= 3,
        "the library's, the router's and this admin connection:\n{clients}"
    );
}

/// Terminates TLS on `port` and forwards the plaintext to the broker.
async fn tls_proxy(pki: &TestPki, port: u16, broker_port: u16) -> tokio::task::JoinHandle<()> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let certificates = CertificateDer::pem_file_iter(pki.path("server.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(pki.path("server.key")).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certificates, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut client) = acceptor.accept(client).await else {
                    return;
                };
                let Ok(mut broker) = TcpStream::connect(("127.0.0.1", broker_port)).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut client, &mut broker).await;
            });
        }
    })
}

/// The whole purchase path over TLS to Kafka: the api role publishes through rskafka,
/// the payment role consumes through librdkafka (OpenSSL, `ssl.ca.location`), and topic
/// creation goes through librdkafka's admin client.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "starts a private broker (a JVM) next to the suite's timing-sensitive tests: scripts/test.sh runs it alone"]
async fn kafka_over_tls_carries_purchases_to_paid_orders() {
    let pki = TestPki::new();
    let ctx = TestContext::new().await;
    let proxy_port = free_port();
    let broker = PrivateBroker::start_behind(proxy_port).await;
    let proxy = tls_proxy(&pki, proxy_port, broker.port).await;

    let mut settings = with_broker(&ctx, format!("127.0.0.1:{proxy_port}"), 3000);
    settings.kafka.security_protocol = KafkaSecurityProtocol::Ssl;
    settings.kafka.ca_file = pki.ca();

    // Without the CA the broker's certificate is refused. rskafka retries a failed
    // connection until the call's deadline, so on a loaded machine the answer may be
    // the timeout rather than the certificate error; either way nothing is reachable.
    let mut untrusted = settings.kafka.clone();
    untrusted.ca_file = String::new();
    let error = Kafka::new(&untrusted).unwrap().ping().await.unwrap_err();
    let message = error.to_string().to_lowercase();
    assert!(
        message.contains("certificate") || message.contains("timed out"),
        "{error}"
    );

    let kafka = Kafka::new(&settings.kafka).unwrap();
    kafka
        .ensure_topic(
            &settings.kafka.orders_topic_name(),
            &TopicSpec::single_copy(settings.kafka.orders_partitions),
        )
        .await
        .unwrap();

    let sale = OpenSale::start(&ctx, settings, "TLS", 10).await;
    sale.api.sell_one_each(&ctx, sale.coupon, "tls", 5).await;
    eventually(Duration::from_secs(60), "5 PAID orders", || async {
        count_orders(&ctx, Some("PAID")).await == 5
    })
    .await;
    assert_eq!(count_orders(&ctx, None).await, 5);
    sale.stop().await;
    proxy.abort();
}

/// A private MariaDB serving TLS with the test CA's certificate; killed on drop.
struct TlsMariadb {
    child: tokio::process::Child,
    port: u16,
}

impl TlsMariadb {
    async fn start(pki: &TestPki) -> Self {
        let data = pki.path("mariadb");
        let installed = Command::new("mariadb-install-db")
            .args(["--no-defaults", "--auth-root-authentication-method=normal"])
            .args(["--skip-test-db", &format!("--datadir={data}")])
            .stdin(Stdio::null())
            .output()
            .expect("mariadb-install-db (make test installs mariadb-server)");
        assert!(
            installed.status.success(),
            "{}",
            String::from_utf8_lossy(&installed.stderr)
        );
        let port = free_port();
        let child = tokio::process::Command::new("mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={data}"))
            .arg(format!("--socket={}", pki.path("mariadb.sock")))
            .args(["--bind-address=127.0.0.1", &format!("--port={port}")])
            .arg(format!("--ssl-cert={}", pki.path("server.pem")))
            .arg(format!("--ssl-key={}", pki.path("server.key")))
            .arg(format!("--ssl-ca={}", pki.ca()))
            .args(["--skip-log-bin", "--user=root"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("mariadbd");
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Self { child, port };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("mariadbd did not listen on {port}");
    }
}

impl Drop for TlsMariadb {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

#[derive(diesel::QueryableByName)]
struct SessionCipher {
    #[diesel(sql_type = diesel::sql_types::Text)]
    cipher: String,
}

/// The TLS cipher of a connection's session (empty without TLS).
async fn session_cipher(conn: &mut diesel_async::AsyncMysqlConnection) -> String {
    use diesel_async::RunQueryDsl;

    diesel::sql_query(
        "SELECT VARIABLE_VALUE AS cipher FROM information_schema.SESSION_STATUS \
         WHERE VARIABLE_NAME = 'Ssl_cipher'",
    )
    .get_result::<SessionCipher>(conn)
    .await
    .unwrap()
    .cipher
}

/// Both ways of switching TLS to MySQL on, against one private MariaDB: starting one is
/// the costly part, and the other tests of this module run alongside on the same CPUs.
#[tokio::test(flavor = "multi_thread")]
async fn mysql_over_tls() {
    let pki = TestPki::new();
    let server = TlsMariadb::start(&pki).await;
    url_options_switch_tls_on(&server).await;
    ca_file_requires_tls_and_checks_the_certificate(&pki, &server).await;
}

/// `mysql.url` options switch TLS on: `require_ssl=true` with `verify_ca=false` (a
/// private CA, as RDS's) encrypts the session; without `verify_ca=false` the server's
/// certificate is checked against the built-in roots and refused.
async fn url_options_switch_tls_on(server: &TlsMariadb) {
    use flash_sale::adapters::mysql::MysqlPool;

    let pool = |options: &str| {
        let mut settings = base_settings().mysql;
        settings.url = format!("mysql://root@127.0.0.1:{}/mysql?{options}", server.port).into();
        MysqlPool::new(&settings).unwrap()
    };

    let encrypted = pool("require_ssl=true&verify_ca=false");
    let cipher = session_cipher(&mut encrypted.get().await.unwrap()).await;
    assert!(cipher.starts_with("TLS"), "{cipher}");

    let error = pool("require_ssl=true")
        .ping()
        .await
        .unwrap_err()
        .to_string();
    assert!(error.to_lowercase().contains("certificate"), "{error}");
}

#[derive(diesel::QueryableByName)]
struct TimeZone {
    #[diesel(sql_type = diesel::sql_types::Text)]
    zone: String,
}

/// `mysql.ca_file` alone switches TLS on for every connection (no URL option) and checks
/// the server's certificate against that CA only: another CA's file is refused, and a
/// missing file stops the pool from being built. Connections are set up as the URL-only
/// path sets them up, and the connect timeout still bounds a server that never answers.
async fn ca_file_requires_tls_and_checks_the_certificate(pki: &TestPki, server: &TlsMariadb) {
    use diesel_async::RunQueryDsl;
    use flash_sale::adapters::mysql::MysqlPool;

    let other_ca = TestPki::new();
    let settings = |port: u16, ca_file: &str| {
        let mut settings = base_settings().mysql;
        settings.url = format!("mysql://root@127.0.0.1:{port}/mysql").into();
        settings.ca_file = ca_file.into();
        settings
    };

    let trusted = MysqlPool::new(&settings(server.port, &pki.ca())).unwrap();
    // Two connections held at once: both were opened with the CA file's roots.
    let (mut first, mut second) = (trusted.get().await.unwrap(), trusted.get().await.unwrap());
    for conn in [&mut first, &mut second] {
        let cipher = session_cipher(conn).await;
        assert!(cipher.starts_with("TLS"), "{cipher:?}");
    }
    drop((first, second));
    let (zone, matched) = trusted
        .with_conn(async |conn| {
            let zone = diesel::sql_query("SELECT @@session.time_zone AS zone")
                .get_result::<TimeZone>(conn)
                .await?;
            diesel::sql_query("CREATE TEMPORARY TABLE found_rows (n INT)")
                .execute(conn)
                .await?;
            diesel::sql_query("INSERT INTO found_rows VALUES (1)")
                .execute(conn)
                .await?;
            // An update that changes nothing still counts the row it matched.
            let matched = diesel::sql_query("UPDATE found_rows SET n = 1")
                .execute(conn)
                .await?;
            Ok((zone.zone, matched))
        })
        .await
        .unwrap();
    assert_eq!(zone, "+00:00");
    assert_eq!(matched, 1);

    // Another CA of the same name: only its key tells it apart.
    let untrusted = MysqlPool::new(&settings(server.port, &other_ca.ca())).unwrap();
    let error = untrusted.ping().await.unwrap_err().to_string();
    assert!(error.to_lowercase().contains("certificate"), "{error}");

    let Err(error) = MysqlPool::new(&settings(server.port, &pki.path("missing.pem"))) else {
        panic!("a missing mysql.ca_file was accepted");
    };
    assert!(error.to_string().contains("mysql.ca_file"), "{error}");
    assert!(std::error::Error::source(&error).is_some(), "{error:?}");

    // A server that accepts the connection and never greets.
    let silent = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let mut bounded = settings(silent_port, &pki.ca());
    bounded.connect_timeout_ms = 300;
    bounded.acquire_timeout_ms = 300;
    let pool = MysqlPool::new(&bounded).unwrap();
    let started = std::time::Instant::now();
    pool.ping().await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    held.abort();
}
