//! The test harness every integration test uses.
//!
//! [`TestContext::new`] loads `config/test.toml` (plus `FLASH__*` from the environment,
//! which `make test` points at the local stack), then gives the test its own MariaDB
//! database (migrated), Redis key namespace and Kafka topic prefix. Dropping the context
//! drops the database and deletes the namespace's keys; databases left behind by crashed
//! runs are swept at the next start. Nothing is mocked: MariaDB, Redis and the broker are
//! the real servers.
//!
//! Migrations run once per run of the test binary, into a template database; each
//! context's database is a copy of the template's tables (MariaDB has no `CREATE
//! DATABASE ... TEMPLATE`), which is cheaper than migrating, and tests that start
//! together no longer queue on the migrations' advisory lock.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::sync::Once;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deadpool_redis::redis;
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl, SimpleAsyncConnection};
use flash_sale::adapters::mysql::{MysqlPool, migrate};
use flash_sale::adapters::redis::pool::Connection;
use flash_sale::adapters::redis::{Keys, RedisPool};
use flash_sale::config::{RedisMode, RedisSettings, Settings};
use flash_sale::roles::{self, Role, RunningApp};
use secrecy::{ExposeSecret, SecretString};

/// Databases made by this harness start with this prefix, then the creation time.
const DB_PREFIX: &str = "fst_";
/// A leftover database older than this belongs to a crashed run.
const STALE_AFTER_SECS: u64 = 2 * 60 * 60;
/// Issuer for processes that verify no token in a test (nothing listens on port 9).
pub const NO_ISSUER: &str = "http://127.0.0.1:9";

pub fn config_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config")
}

/// `config/test.toml` plus the environment, untouched.
pub fn base_settings() -> Settings {
    Settings::load_from(&config_dir(), "test", std::env::vars())
        .unwrap_or_else(|e| panic!("test settings: {e}"))
}

fn server_url(settings: &Settings) -> String {
    let mut url = url::Url::parse(settings.mysql.url.expose_secret()).expect("mysql url");
    url.set_path("");
    url.to_string().trim_end_matches('/').to_owned()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub struct TestContext {
    /// Settings pointing at this test's database, namespace and topics.
    pub settings: Settings,
    pub db_name: String,
    server_url: String,
}

impl TestContext {
    /// A fresh, migrated database, a new Redis namespace and topic prefix.
    pub async fn new() -> Self {
        Self::create(true).await
    }

    /// Like [`TestContext::new`] but the database has no tables yet.
    pub async fn unmigrated() -> Self {
        Self::create(false).await
    }

    async fn create(migrated: bool) -> Self {
        init_logging();
        let mut settings = base_settings();
        let server_url = server_url(&settings);
        let id = uuid::Uuid::new_v4().simple().to_string();
        let db_name = format!("{DB_PREFIX}{}_{}", now_secs(), &id[..12]);

        let mut admin = admin_connection(&server_url).await;
        SWEPT
            .get_or_init(|| sweep_stale_databases(&mut admin))
            .await;
        diesel::sql_query(format!("CREATE DATABASE `{db_name}` CHARACTER SET utf8mb4"))
            .execute(&mut admin)
            .await
            .expect("create database");
        if migrated {
            let template = Template::of_this_run(&server_url, &mut admin).await;
            template.copy_into(&db_name, &mut admin).await;
        }

        settings.mysql.url = SecretString::from(format!("{server_url}/{db_name}"));
        settings.redis.namespace = format!("t:{}", &id[..16]);
        settings.kafka.topic_prefix = format!("t{}-", &id[..16]);
        // A signing key of its own, generated at first start (generate_key_if_missing).
        settings.identity.embedded.signing_key =
            std::env::temp_dir().join(format!("fst-keys/{id}.pem"));
        Self {
            settings,
            db_name,
            server_url,
        }
    }

    /// Points this context (its settings and its own connections) at another Redis, a
    /// single server.
    pub fn use_redis(&mut self, url: &str) {
        self.settings.redis.mode = RedisMode::Standalone;
        self.settings.redis.url = SecretString::from(url.to_owned());
    }

    /// Starts `role` in-process on a random port with this context's settings.
    pub async fn spawn(&self, role: Role) -> TestApp {
        self.spawn_with(role, self.settings.clone()).await
    }

    /// Starts `role` with settings derived from this context's (for fault injection).
    pub async fn spawn_with(&self, role: Role, mut settings: Settings) -> TestApp {
        if role == Role::Ws && settings.identity.issuer.is_empty() {
            // A ws process alone has no issuer to derive; tests that send tokens to it
            // point this at an api instance.
            settings.identity.issuer = NO_ISSUER.to_owned();
        }
        let app = roles::start(settings, role).await.expect("role starts");
        TestApp {
            base: format!("http://{}", app.addr()),
            app: Some(app),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("http client"),
        }
    }

    /// This context's Redis keys, spelled as the app spells them.
    pub fn keys(&self) -> Keys {
        Keys::new(self.settings.redis.namespace.clone())
    }

    /// Deletes every key of this context's namespace, as a Redis that lost its data
    /// would; how many there were.
    pub async fn delete_redis_keys(&self) -> usize {
        delete_namespace(&self.settings.redis)
            .await
            .expect("delete the namespace")
    }

    /// A connection to this context's Redis, the server or the cluster (keys must use
    /// this context's namespace).
    pub async fn redis(&self) -> Connection {
        RedisPool::new(&self.settings.redis)
            .expect("redis settings")
            .shared()
            .await
            .expect("Redis must be up (make test starts it)")
    }

    /// A direct connection to this test's database.
    pub async fn mysql(&self) -> AsyncMysqlConnection {
        AsyncMysqlConnection::establish(self.settings.mysql.url.expose_secret())
            .await
            .expect("connect to the test database")
    }
}

impl Drop for TestContext {
    fn drop(&mut self) {
        // Drop runs outside async context: clean up on a private runtime in a thread.
        let db = self.db_name.clone();
        let server = self.server_url.clone();
        let redis_settings = self.settings.redis.clone();
        let kafka = self.settings.kafka.clone();
        let _ = std::fs::remove_file(&self.settings.identity.embedded.signing_key);
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime");
            runtime.block_on(async move {
                if let Ok(mut conn) =
                    AsyncMysqlConnection::establish(&format!("{server}/test")).await
                {
                    let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS `{db}`"))
                        .execute(&mut conn)
                        .await;
                }
                let _ = delete_namespace(&redis_settings).await;
                delete_topics(&kafka).await;
            });
        });
        let _ = cleanup.join();
    }
}

/// Deletes the topics of this context's prefix: the broker keeps them on disk otherwise.
/// Best effort and bounded: a test that stopped the broker leaves nothing to delete here.
async fn delete_topics(settings: &flash_sale::config::KafkaSettings) {
    if settings.topic_prefix.is_empty() {
        return;
    }
    let Ok(kafka) = flash_sale::adapters::kafka::Kafka::new(settings) else {
        return;
    };
    let cleanup = async {
        let client = kafka.client().await.ok()?;
        let topics = client.list_topics().await.ok()?;
        let controller = client.controller_client().ok()?;
        for topic in topics {
            if topic.name.starts_with(&settings.topic_prefix) {
                let _ = controller.delete_topic(topic.name, 2_000).await;
            }
        }
        Some(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), cleanup).await;
}

/// Deletes every key of the settings' namespace (SCAN + DEL).
pub async fn delete_namespace(settings: &RedisSettings) -> redis::RedisResult<usize> {
    let keys = namespace_keys(settings).await?;
    if !keys.is_empty() {
        let pool = RedisPool::new(settings).map_err(io_error)?;
        let mut conn = pool.shared().await.map_err(io_error)?;
        // One key at a time: a cluster refuses a DEL across slots.
        for key in &keys {
            let _: () = redis::cmd("DEL").arg(key).query_async(&mut conn).await?;
        }
    }
    Ok(keys.len())
}

fn io_error(error: impl std::fmt::Display) -> redis::RedisError {
    std::io::Error::other(error.to_string()).into()
}

/// Every key of the settings' namespace: SCAN on the server, or on every node of the
/// cluster (each holds its own slots).
pub async fn namespace_keys(settings: &RedisSettings) -> redis::RedisResult<Vec<String>> {
    let nodes: Vec<&SecretString> = match settings.mode {
        RedisMode::Standalone => vec![&settings.url],
        RedisMode::Cluster => settings.nodes.iter().collect(),
    };
    let mut keys = std::collections::BTreeSet::new();
    for node in nodes {
        let mut conn = redis::Client::open(node.expose_secret())?
            .get_multiplexed_async_connection()
            .await?;
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(Keys::new(&settings.namespace).all_pattern())
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await?;
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    Ok(keys.into_iter().collect())
}

async fn admin_connection(server_url: &str) -> AsyncMysqlConnection {
    AsyncMysqlConnection::establish(&format!("{server_url}/test"))
        .await
        .unwrap_or_else(|e| panic!("MariaDB at {server_url} must be up (make test starts it): {e}"))
}

/// Set once the stale databases of crashed runs are gone (once a run is enough).
static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

/// The migrated database of this run that every [`TestContext::new`] copies.
static TEMPLATE: tokio::sync::OnceCell<Template> = tokio::sync::OnceCell::const_new();

struct Template {
    /// Named like a test database, so a crashed or finished run's template is swept
    /// with them; the run's own id keeps concurrent runs apart.
    name: String,
    /// Every table the migrations made, diesel's record of them included.
    tables: Vec<String>,
}

#[derive(diesel::QueryableByName)]
struct TableName {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
}

impl Template {
    /// This run's template, migrated by the first caller.
    async fn of_this_run(server_url: &str, admin: &mut AsyncMysqlConnection) -> &'static Self {
        TEMPLATE
            .get_or_init(|| async {
                let id = uuid::Uuid::new_v4().simple().to_string();
                let name = format!("{DB_PREFIX}{}_template_{}", now_secs(), &id[..12]);
                diesel::sql_query(format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
                    .execute(admin)
                    .await
                    .expect("create template database");
                let mut mysql = base_settings().mysql;
                mysql.url = SecretString::from(format!("{server_url}/{name}"));
                let pool = MysqlPool::new(&mysql).expect("pool");
                migrate::run_pending(&pool).await.expect("migrations");
                let tables = diesel::sql_query(format!(
                    "SELECT table_name AS name FROM information_schema.tables \
                     WHERE table_schema = '{name}' ORDER BY table_name"
                ))
                .load::<TableName>(admin)
                .await
                .expect("template tables")
                .into_iter()
                .map(|t| t.name)
                .collect();
                Self { name, tables }
            })
            .await
    }

    /// Gives the empty database `db` the template's tables and diesel's record of the
    /// migrations, so the app (and `migrate::run_pending`) sees it as migrated.
    async fn copy_into(&self, db: &str, admin: &mut AsyncMysqlConnection) {
        let template = &self.name;
        let mut sql = String::new();
        for table in &self.tables {
            sql.push_str(&format!(
                "CREATE TABLE `{db}`.`{table}` LIKE `{template}`.`{table}`;\n"
            ));
        }
        // The migrations may leave rows behind; today only diesel's record has any.
        for table in &self.tables {
            sql.push_str(&format!(
                "INSERT INTO `{db}`.`{table}` SELECT * FROM `{template}`.`{table}`;\n"
            ));
        }
        admin.batch_execute(&sql).await.expect("copy the template");
    }
}

#[derive(diesel::QueryableByName)]
struct DatabaseName {
    #[diesel(sql_type = diesel::sql_types::Text)]
    #[diesel(column_name = "Database")]
    name: String,
}

/// Drops `fst_<epoch>_*` databases older than [`STALE_AFTER_SECS`] (crashed runs).
async fn sweep_stale_databases(admin: &mut AsyncMysqlConnection) {
    let Ok(names) = diesel::sql_query("SHOW DATABASES LIKE 'fst\\_%'")
        .load::<DatabaseName>(admin)
        .await
    else {
        return;
    };
    let now = now_secs();
    for DatabaseName { name } in names {
        let created = name
            .strip_prefix(DB_PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<u64>().ok());
        if created.is_some_and(|t| now.saturating_sub(t) > STALE_AFTER_SECS) {
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS `{name}`"))
                .execute(admin)
                .await;
        }
    }
}

fn init_logging() {
    static ONCE: Once = Once::new();
    // Silent unless TEST_LOG=1 (then the test.toml level, or RUST_LOG).
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            flash_sale::telemetry::init(&base_settings().log);
        }
    });
}

/// A role running in-process; stopped (gracefully) by [`TestApp::stop`].
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    app: Option<RunningApp>,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn app(&self) -> &RunningApp {
        self.app.as_ref().expect("running")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// GET returning status and JSON body.
    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let response = self.get(path).await;
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(serde_json::Value::Null);
        (status, body)
    }

    /// POST a JSON body; returns status and JSON body.
    pub async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let response = self
            .client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let status = response.status().as_u16();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    /// GET with a bearer token; returns status and JSON body.
    pub async fn get_authed(&self, path: &str, token: &str) -> (u16, serde_json::Value) {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = response.status().as_u16();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    /// POST /api/coupons/{coupon}/purchase; returns status and JSON body.
    pub async fn purchase(
        &self,
        token: &str,
        coupon: i64,
        idempotency_key: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let mut request = self
            .client
            .post(self.url(&format!("/api/coupons/{coupon}/purchase")))
            .bearer_auth(token);
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await.expect("purchase request");
        let status = response.status().as_u16();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    /// A request with a method, optional token and optional JSON body.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = response.status().as_u16();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    /// The value of one Prometheus sample, e.g.
    /// `flash_sale_catalog_lookups_total{kind="coupon",outcome="db_load"}`; 0 if absent.
    pub async fn metric(&self, sample: &str) -> f64 {
        metric(&self.client, &self.base, sample).await
    }

    pub async fn stop(mut self) {
        if let Some(app) = self.app.take() {
            app.stop().await;
        }
    }
}

/// A free TCP port on loopback (for processes that need a fixed one).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// One Prometheus sample of the process at `base` (0 when absent).
async fn metric(client: &reqwest::Client, base: &str, sample: &str) -> f64 {
    metrics_text(client, base)
        .await
        .lines()
        .find_map(|line| line.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The Prometheus exposition of the process at `base`.
async fn metrics_text(client: &reqwest::Client, base: &str) -> String {
    client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text")
}

/// The `flash-sale` binary configured for `ctx` (test overlay, its database, Redis,
/// namespace, topics and signing key), as an operator would run it. Every test that
/// runs the binary starts here: one-shot commands directly, roles through [`ChildApp`].
pub fn flash_sale_command(ctx: &TestContext) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_flash-sale"));
    cmd.arg("--config-dir")
        .arg(config_dir())
        .env("FLASH_ENV", "test")
        .env("FLASH__MYSQL__URL", ctx.settings.mysql.url.expose_secret())
        .env("FLASH__REDIS__URL", ctx.settings.redis.url.expose_secret())
        .env("FLASH__REDIS__NAMESPACE", &ctx.settings.redis.namespace)
        .env(
            "FLASH__KAFKA__TOPIC_PREFIX",
            &ctx.settings.kafka.topic_prefix,
        )
        .env(
            "FLASH__IDENTITY__EMBEDDED__SIGNING_KEY",
            &ctx.settings.identity.embedded.signing_key,
        )
        .env_remove("FLASH_ROLE")
        .stdin(std::process::Stdio::null());
    cmd
}

/// A role running as a child process on its own port; SIGKILLed on drop.
pub struct ChildApp {
    child: std::process::Child,
    pub base: String,
    client: reqwest::Client,
}

impl ChildApp {
    /// Starts `--role role` and waits until `/readyz` answers 200.
    pub async fn start(ctx: &TestContext, role: &str) -> Self {
        Self::start_on(ctx, role, free_port(), &[] as &[(&str, &str)]).await
    }

    /// Like [`Self::start`] with more environment (settings of this process only).
    pub async fn start_with<K, V>(ctx: &TestContext, role: &str, env: &[(K, V)]) -> Self
    where
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        Self::start_on(ctx, role, free_port(), env).await
    }

    /// Like [`Self::start`] on a given port (a restart keeps its address). `env` is
    /// applied last, over the context's settings.
    pub async fn start_on<K, V>(ctx: &TestContext, role: &str, port: u16, env: &[(K, V)]) -> Self
    where
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        let mut cmd = flash_sale_command(ctx);
        cmd.args(["--role", role])
            .env("FLASH__SERVER__PORT", port.to_string())
            // Logs go to stdout; `TEST_LOG=1` shows them with the test's output.
            .stdout(child_output())
            .stderr(child_output());
        if role == "ws" && ctx.settings.identity.issuer.is_empty() {
            // As in [`TestContext::spawn_with`]: a ws process alone has no issuer to
            // derive; tests that send tokens to it pass one in `env`.
            cmd.env("FLASH__IDENTITY__ISSUER", NO_ISSUER);
        }
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        let mut app = Self {
            child: cmd.spawn().expect("spawn flash-sale"),
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client"),
        };
        let readyz = format!("{}/readyz", app.base);
        for _ in 0..200 {
            let probe = app.client.get(&readyz).timeout(Duration::from_secs(2));
            if let Ok(response) = probe.send().await
                && response.status() == 200
            {
                return app;
            }
            if let Ok(Some(status)) = app.child.try_wait() {
                panic!("{role} process exited early: {status}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{role} process did not become ready");
    }

    /// SIGKILL: a crash, no graceful anything.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends a signal by name (`TERM`, `STOP`, `CONT`...).
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal}");
    }

    /// How the process exited, if it does within `timeout`.
    pub async fn exit_within(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The issuer this process names in its discovery document.
    pub async fn issuer(&self) -> String {
        let discovery: serde_json::Value = self
            .client
            .get(format!("{}/.well-known/openid-configuration", self.base))
            .send()
            .await
            .expect("discovery")
            .json()
            .await
            .expect("discovery document");
        discovery["issuer"].as_str().expect("issuer").to_owned()
    }

    /// One Prometheus sample of this process (0 when absent).
    pub async fn metric(&self, sample: &str) -> f64 {
        metric(&self.client, &self.base, sample).await
    }

    /// The label sets of every series of `name` this process exports, e.g.
    /// `{partition="2"}`.
    pub async fn series(&self, name: &str) -> Vec<String> {
        let text = metrics_text(&self.client, &self.base).await;
        text.lines()
            .filter_map(|line| line.strip_prefix(name))
            .filter(|rest| rest.starts_with('{'))
            .filter_map(|rest| {
                rest.split_once('}')
                    .map(|(labels, _)| format!("{labels}}}"))
            })
            .collect()
    }
}

impl Drop for ChildApp {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `check` every 100 ms until it returns true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

fn child_output() -> std::process::Stdio {
    if std::env::var_os("TEST_LOG").is_some() {
        std::process::Stdio::inherit()
    } else {
        std::process::Stdio::null()
    }
}
