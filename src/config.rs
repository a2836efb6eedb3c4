//! Settings: `config/default.toml` <- `config/<env>.toml` <- `FLASH__SECTION__KEY`
//! environment variables, deserialised into plain structs and validated once.
//!
//! The environment overlay is picked by `FLASH_ENV` (`dev` when unset). Unknown keys are
//! rejected so that a typo in a file or a variable fails loudly instead of being ignored.

use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::Deserialize;

/// Environment variable that selects the overlay file.
pub const ENV_VAR: &str = "FLASH_ENV";
/// Overlay used when `FLASH_ENV` is not set.
pub const DEFAULT_ENV: &str = "dev";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read or a value had the wrong type; `config` names the key.
    #[error("configuration error: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration error: {key}: {message}")]
    Invalid { key: &'static str, message: String },
    #[error(
        "configuration error: overlay {path} does not exist (set {ENV_VAR} to one of the files in the config directory)"
    )]
    MissingOverlay { path: PathBuf },
}

impl ConfigError {
    fn invalid(key: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            key,
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub log: LogSettings,
    pub mysql: MysqlSettings,
    pub redis: RedisSettings,
    pub kafka: KafkaSettings,
    pub object_store: ObjectStoreSettings,
    pub identity: IdentitySettings,
    pub catalog: CatalogSettings,
    pub purchase: PurchaseSettings,
    pub payment: PaymentSettings,
    pub ws: WsSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WsSettings {
    /// Lifetime of a user → server route; refreshed every third of it while connected.
    pub route_ttl_ms: u64,
    /// Ping interval; a socket silent for `idle_timeout_ms` is closed.
    pub heartbeat_interval_ms: u64,
    pub idle_timeout_ms: u64,
    /// Messages queued per socket; a client that falls this far behind is disconnected.
    pub send_queue: usize,
    /// Open sockets this instance accepts at most.
    pub max_connections: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentSettings {
    /// Payments running at once.
    pub pool_size: usize,
    /// Payments waiting for a worker; when full, the consumer waits (backpressure).
    pub queue: usize,
    /// Simulated gateway: time per charge and share of declined charges (0.0-1.0).
    pub gateway_latency_ms: u64,
    pub gateway_failure_rate: f64,
    /// Seed of the simulated gateway's decisions (same seed, same outcomes).
    pub gateway_seed: u64,
    /// Consumer group of the payment instances (the topic prefix is prepended).
    pub group_id: String,
    /// A payment instance silent this long leaves the group; its partitions move.
    pub session_timeout_ms: u64,
    /// How long one fetch waits for new events.
    pub fetch_max_wait_ms: u64,
}

/// How the purchase gate decides. Only `redis` is for production; the MySQL ones are the
/// alternatives the requirements rejected, kept so `make bench` can measure them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PurchaseStrategy {
    Redis,
    MysqlPessimistic,
    MysqlOptimistic,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurchaseSettings {
    pub strategy: PurchaseStrategy,
    /// How long a retried request with the same `Idempotency-Key` gets the first answer.
    pub idempotency_ttl_secs: u64,
    /// How long an accepted purchase stays readable from Redis before the payment role
    /// has written its order (it normally takes milliseconds).
    pub pending_ttl_secs: u64,
    /// Order events queued per partition before purchases are answered 503.
    pub publish_queue: usize,
    /// Largest batch of order events per produce call.
    pub publish_max_batch: usize,
    /// How often each api instance audits the live sales in Redis (0: never).
    pub audit_interval_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogSettings {
    /// Lifetime of an entry in each instance's memory (requirements: 30 s).
    pub local_ttl_ms: u64,
    /// Lifetime of a page or coupon in Redis (requirements: 2 min).
    pub redis_ttl_ms: u64,
    /// Lifetime of the null marker cached for an id that does not exist.
    pub null_ttl_ms: u64,
    /// Base TTL of a rebuild lock; the holder's watchdog extends it every third.
    pub lock_ttl_ms: u64,
    /// Entries kept in each instance's memory.
    pub local_capacity: usize,
    pub max_page_size: u32,
    pub default_page_size: u32,
    /// Largest accepted image upload, in bytes.
    pub max_image_bytes: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    /// 0 picks a free port (tests).
    pub port: u16,
    /// Seconds in-flight requests get to finish after a stop signal.
    pub shutdown_timeout_secs: u64,
    /// HTTP worker threads; 0 means one per core.
    pub workers: usize,
    /// Built web pages served at `/` by the api role (empty: none; NGINX serves them in
    /// deployments).
    pub static_dir: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlSettings {
    /// `mysql://user:password@host:port/database`; may carry a password, so never logged.
    pub url: SecretString,
    pub max_connections: usize,
    pub connect_timeout_ms: u64,
    pub acquire_timeout_ms: u64,
    pub migrate_on_start: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    pub url: SecretString,
    /// Prefix of every key this deployment writes.
    pub namespace: String,
    pub pool_size: usize,
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSettings {
    pub brokers: Vec<String>,
    pub topic_prefix: String,
    pub orders_topic: String,
    pub orders_partitions: i32,
    /// Copies of each partition when the application creates the topic.
    pub orders_replication_factor: i16,
    /// Replicas that must hold an event before the broker acknowledges it (the topic's
    /// `min.insync.replicas`, set when the application creates the topic).
    pub orders_min_insync_replicas: i16,
    pub timeout_ms: u64,
}

impl KafkaSettings {
    /// Full name of the orders topic, with the deployment's prefix.
    pub fn orders_topic_name(&self) -> String {
        format!("{}{}", self.topic_prefix, self.orders_topic)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectStoreKind {
    Filesystem,
    S3,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectStoreSettings {
    pub kind: ObjectStoreKind,
    pub public_base_url: String,
    pub filesystem: FilesystemStoreSettings,
    pub s3: S3StoreSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesystemStoreSettings {
    pub root: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3StoreSettings {
    pub bucket: String,
    pub region: String,
    /// Empty for AWS itself; the URL of an S3-compatible server otherwise.
    pub endpoint: String,
    pub path_style: bool,
    pub timeout_ms: u64,
    pub access_key_id: String,
    pub secret_access_key: SecretString,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentityProviderKind {
    /// Built-in issuer: users in MySQL, RS256 tokens signed by this service.
    Embedded,
    /// Keycloak: registration through its admin API, login through its token endpoint.
    Keycloak,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentitySettings {
    pub provider: IdentityProviderKind,
    /// The `iss` of accepted tokens and the base of the discovery document. Empty means
    /// this server's own address (single-process development and tests, embedded only).
    pub issuer: String,
    /// The `aud` tokens must carry.
    pub audience: String,
    /// Clock skew accepted on `exp`/`nbf`, in seconds.
    pub leeway_secs: u64,
    /// Dot path of the roles array in the token (`roles`, or `realm_access.roles` for Keycloak).
    pub roles_claim: String,
    /// An unknown `kid` refetches the JWKS at most this often.
    pub jwks_min_refresh_secs: u64,
    pub http_timeout_ms: u64,
    /// Login attempts allowed per e-mail and per client IP in one minute.
    pub login_attempts_per_email: u32,
    pub login_attempts_per_ip: u32,
    /// Take the client IP from `X-Forwarded-For` (only behind a proxy that sets it).
    pub trust_proxy_headers: bool,
    pub embedded: EmbeddedIssuerSettings,
    pub keycloak: KeycloakSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedIssuerSettings {
    pub token_ttl_secs: u64,
    /// PEM (PKCS#8) RSA private key that signs new tokens.
    pub signing_key: PathBuf,
    /// Retired keys still published in the JWKS until their tokens have expired.
    pub previous_signing_keys: Vec<PathBuf>,
    /// Create `signing_key` when the file does not exist (development).
    pub generate_key_if_missing: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeycloakSettings {
    /// e.g. `https://sso.example.com`; the realm issuer is `<base_url>/realms/<realm>`.
    pub base_url: String,
    pub realm: String,
    /// Confidential client with direct access grants and a service account allowed to
    /// manage users (`deploy/keycloak/realm.json`).
    pub client_id: String,
    pub client_secret: SecretString,
}

impl Settings {
    /// Loads `dir/default.toml`, the overlay named by `FLASH_ENV` and the `FLASH__*`
    /// environment variables, then validates the result.
    pub fn load(dir: &Path) -> Result<Self, ConfigError> {
        let env = std::env::var(ENV_VAR).unwrap_or_else(|_| DEFAULT_ENV.to_owned());
        Self::load_from(dir, &env, std::env::vars())
    }

    /// Like [`Settings::load`], with the overlay and the environment passed in (tests).
    pub fn load_from(
        dir: &Path,
        env: &str,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let overlay = dir.join(format!("{env}.toml"));
        if !overlay.is_file() {
            return Err(ConfigError::MissingOverlay { path: overlay });
        }
        let vars = vars
            .into_iter()
            .filter(|(k, _)| k.starts_with("FLASH__"))
            .collect();
        let settings: Settings = config::Config::builder()
            .add_source(config::File::from(dir.join("default.toml")))
            .add_source(config::File::from(overlay))
            .add_source(
                config::Environment::with_prefix("FLASH")
                    .prefix_separator("__")
                    .separator("__")
                    .list_separator(",")
                    .with_list_parse_key("kafka.brokers")
                    .try_parsing(true)
                    .source(Some(vars)),
            )
            .build()?
            .try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Cross-field and format rules that serde's types cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        use secrecy::ExposeSecret;

        if self.server.host.trim().is_empty() {
            return Err(ConfigError::invalid("server.host", "must not be empty"));
        }
        check_url("mysql.url", self.mysql.url.expose_secret(), &["mysql"])?;
        let mysql = url::Url::parse(self.mysql.url.expose_secret())
            .map_err(|e| ConfigError::invalid("mysql.url", e.to_string()))?;
        if mysql.path().trim_start_matches('/').is_empty() {
            return Err(ConfigError::invalid(
                "mysql.url",
                "must name a database, e.g. mysql://root@127.0.0.1:3306/flash_sale",
            ));
        }
        check_url(
            "redis.url",
            self.redis.url.expose_secret(),
            &["redis", "rediss"],
        )?;
        positive("mysql.max_connections", self.mysql.max_connections as u64)?;
        positive("mysql.connect_timeout_ms", self.mysql.connect_timeout_ms)?;
        positive("mysql.acquire_timeout_ms", self.mysql.acquire_timeout_ms)?;
        positive("redis.pool_size", self.redis.pool_size as u64)?;
        positive("redis.timeout_ms", self.redis.timeout_ms)?;
        positive("kafka.timeout_ms", self.kafka.timeout_ms)?;
        if !is_key_safe(&self.redis.namespace) {
            return Err(ConfigError::invalid(
                "redis.namespace",
                "must be 1-64 characters of [A-Za-z0-9_.-] (no braces: they would break hash tags)",
            ));
        }
        if self.kafka.brokers.is_empty() {
            return Err(ConfigError::invalid(
                "kafka.brokers",
                "needs at least one host:port",
            ));
        }
        for broker in &self.kafka.brokers {
            let ok = broker
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !ok {
                return Err(ConfigError::invalid(
                    "kafka.brokers",
                    format!("{broker:?} is not host:port"),
                ));
            }
        }
        if !(1..=1024).contains(&self.kafka.orders_partitions) {
            return Err(ConfigError::invalid(
                "kafka.orders_partitions",
                "must be between 1 and 1024",
            ));
        }
        if !(1..=16).contains(&self.kafka.orders_replication_factor) {
            return Err(ConfigError::invalid(
                "kafka.orders_replication_factor",
                "must be between 1 and 16",
            ));
        }
        if !(1..=self.kafka.orders_replication_factor)
            .contains(&self.kafka.orders_min_insync_replicas)
        {
            return Err(ConfigError::invalid(
                "kafka.orders_min_insync_replicas",
                "must be between 1 and kafka.orders_replication_factor",
            ));
        }
        let topic = self.kafka.orders_topic_name();
        if topic.is_empty()
            || topic.len() > 249
            || !topic
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(ConfigError::invalid(
                "kafka.orders_topic",
                format!("{topic:?} is not a valid Kafka topic name"),
            ));
        }
        self.validate_identity()?;
        let catalog = &self.catalog;
        positive("catalog.local_ttl_ms", catalog.local_ttl_ms)?;
        positive("catalog.redis_ttl_ms", catalog.redis_ttl_ms)?;
        positive("catalog.null_ttl_ms", catalog.null_ttl_ms)?;
        if catalog.lock_ttl_ms < 30 {
            return Err(ConfigError::invalid(
                "catalog.lock_ttl_ms",
                "must be at least 30",
            ));
        }
        positive("catalog.local_capacity", catalog.local_capacity as u64)?;
        if catalog.default_page_size == 0 || catalog.default_page_size > catalog.max_page_size {
            return Err(ConfigError::invalid(
                "catalog.default_page_size",
                "must be between 1 and catalog.max_page_size",
            ));
        }
        positive("catalog.max_image_bytes", catalog.max_image_bytes as u64)?;
        positive(
            "purchase.idempotency_ttl_secs",
            self.purchase.idempotency_ttl_secs,
        )?;
        positive("purchase.pending_ttl_secs", self.purchase.pending_ttl_secs)?;
        positive("purchase.publish_queue", self.purchase.publish_queue as u64)?;
        positive(
            "purchase.publish_max_batch",
            self.purchase.publish_max_batch as u64,
        )?;
        if self.object_store.kind == ObjectStoreKind::S3 {
            if self.object_store.s3.bucket.is_empty() {
                return Err(ConfigError::invalid(
                    "object_store.s3.bucket",
                    "must be set when object_store.kind = \"s3\"",
                ));
            }
            if !self.object_store.s3.endpoint.is_empty() {
                check_url(
                    "object_store.s3.endpoint",
                    &self.object_store.s3.endpoint,
                    &["http", "https"],
                )?;
            }
            positive(
                "object_store.s3.timeout_ms",
                self.object_store.s3.timeout_ms,
            )?;
        }
        Ok(())
    }
}

impl Settings {
    fn validate_identity(&self) -> Result<(), ConfigError> {
        let identity = &self.identity;
        if !identity.issuer.is_empty() {
            check_url("identity.issuer", &identity.issuer, &["http", "https"])?;
        }
        if identity.audience.is_empty() {
            return Err(ConfigError::invalid(
                "identity.audience",
                "must not be empty",
            ));
        }
        if identity.leeway_secs > 300 {
            return Err(ConfigError::invalid(
                "identity.leeway_secs",
                "clock skew above 300 s would accept long-expired tokens",
            ));
        }
        positive("identity.http_timeout_ms", identity.http_timeout_ms)?;
        positive(
            "identity.login_attempts_per_email",
            u64::from(identity.login_attempts_per_email),
        )?;
        positive(
            "identity.login_attempts_per_ip",
            u64::from(identity.login_attempts_per_ip),
        )?;
        match identity.provider {
            IdentityProviderKind::Embedded => {
                positive(
                    "identity.embedded.token_ttl_secs",
                    identity.embedded.token_ttl_secs,
                )?;
            }
            IdentityProviderKind::Keycloak => {
                check_url(
                    "identity.keycloak.base_url",
                    &identity.keycloak.base_url,
                    &["http", "https"],
                )?;
                if identity.issuer.is_empty() {
                    return Err(ConfigError::invalid(
                        "identity.issuer",
                        "must be set for Keycloak (<base_url>/realms/<realm>)",
                    ));
                }
                if identity.keycloak.realm.is_empty() || identity.keycloak.client_id.is_empty() {
                    return Err(ConfigError::invalid(
                        "identity.keycloak.realm",
                        "realm and client_id must be set",
                    ));
                }
            }
        }
        Ok(())
    }
}

fn check_url(key: &'static str, value: &str, schemes: &[&str]) -> Result<(), ConfigError> {
    // Parse errors never echo the value: URLs may carry passwords.
    let parsed = url::Url::parse(value)
        .map_err(|e| ConfigError::invalid(key, format!("not a valid URL ({e})")))?;
    if !schemes.contains(&parsed.scheme()) {
        return Err(ConfigError::invalid(
            key,
            format!(
                "scheme must be one of {schemes:?}, got {:?}",
                parsed.scheme()
            ),
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::invalid(key, "has no host"));
    }
    Ok(())
}

fn positive(key: &'static str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(ConfigError::invalid(key, "must be greater than 0"));
    }
    Ok(())
}

fn is_key_safe(namespace: &str) -> bool {
    (1..=64).contains(&namespace.len())
        && namespace
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | ':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config")
    }

    fn load(env: &str, vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        Settings::load_from(
            &dir(),
            env,
            vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
    }

    #[test]
    fn overlay_overrides_default_and_env_overrides_overlay() {
        let base = load("dev", &[]).unwrap();
        assert_eq!(base.server.port, 8080, "from default.toml");
        assert!(base.mysql.migrate_on_start, "from dev.toml");
        assert_eq!(
            base.log.format,
            LogFormat::Pretty,
            "dev.toml beats default.toml"
        );

        let test = load("test", &[]).unwrap();
        assert_eq!(test.server.port, 0);
        assert!(
            !test.mysql.migrate_on_start,
            "test.toml does not set it: default wins"
        );

        let env = load(
            "dev",
            &[
                ("FLASH__SERVER__PORT", "9999"),
                ("FLASH__KAFKA__BROKERS", "a:1,b:2"),
                ("FLASH__MYSQL__MIGRATE_ON_START", "false"),
                ("UNRELATED", "x"),
            ],
        )
        .unwrap();
        assert_eq!(env.server.port, 9999);
        assert_eq!(env.kafka.brokers, vec!["a:1".to_owned(), "b:2".to_owned()]);
        assert!(!env.mysql.migrate_on_start);
    }

    #[test]
    fn wrong_type_names_the_key() {
        let err = load("dev", &[("FLASH__SERVER__PORT", "eighty")]).unwrap_err();
        assert!(err.to_string().contains("server.port"), "{err}");
    }

    #[test]
    fn unknown_key_is_rejected() {
        let err = load("dev", &[("FLASH__REDIS__URLL", "redis://x")]).unwrap_err();
        assert!(err.to_string().contains("urll"), "{err}");
    }

    #[test]
    fn invalid_values_name_the_key() {
        for (var, value, key) in [
            ("FLASH__REDIS__URL", "not a url", "redis.url"),
            ("FLASH__REDIS__URL", "http://127.0.0.1:6379", "redis.url"),
            (
                "FLASH__MYSQL__URL",
                "mysql://root@127.0.0.1:3306",
                "mysql.url",
            ),
            ("FLASH__KAFKA__BROKERS", "no-port", "kafka.brokers"),
            ("FLASH__REDIS__NAMESPACE", "a{b}", "redis.namespace"),
            ("FLASH__REDIS__POOL_SIZE", "0", "redis.pool_size"),
        ] {
            let err = load("dev", &[(var, value)]).unwrap_err();
            assert!(err.to_string().contains(key), "{var}={value}: {err}");
        }
    }

    #[test]
    fn url_errors_never_echo_the_password() {
        let err = load(
            "dev",
            &[("FLASH__MYSQL__URL", "mysql://u:s3cret@h:notaport/db")],
        )
        .unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }

    #[test]
    fn missing_overlay_is_an_error() {
        let err = load("staging", &[]).unwrap_err();
        assert!(matches!(err, ConfigError::MissingOverlay { .. }), "{err}");
    }

    #[test]
    fn shipped_files_all_load() {
        for env in ["dev", "test", "production", "bench"] {
            load(env, &[]).unwrap_or_else(|e| panic!("{env}: {e}"));
        }
    }
}
