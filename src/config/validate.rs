//! The rules a deserialised [`Settings`] must also satisfy; the first one broken is
//! reported with its key.

use std::path::Path;

use super::{
    ConfigError, IdentityProviderKind, ObjectStoreKind, PurchaseStrategy, RedisMode, SearchEngine,
    Settings,
};

/// The event signing key of config/default.toml, public by design: refused in production.
const DEVELOPMENT_EVENT_KEY: &str = "development-only-event-signing-key";

impl Settings {
    /// Cross-field and format rules that serde's types cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        use secrecy::ExposeSecret;

        if self.server.host.trim().is_empty() {
            return Err(ConfigError::invalid("server.host", "must not be empty"));
        }
        if let Some(bad) = self
            .server
            .trusted_proxies
            .iter()
            .find(|hop| crate::http::client_ip::parse_hop(hop).is_none())
        {
            return Err(ConfigError::invalid(
                "server.trusted_proxies",
                format!("{bad:?} is not an IP address or CIDR range"),
            ));
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
        match self.redis.mode {
            RedisMode::Standalone => check_url(
                "redis.url",
                self.redis.url.expose_secret(),
                &["redis", "rediss"],
            )?,
            RedisMode::Cluster => {
                if self.redis.nodes.is_empty() {
                    return Err(ConfigError::invalid(
                        "redis.nodes",
                        "cluster mode needs at least one seed node, e.g. redis://127.0.0.1:7001",
                    ));
                }
                for node in &self.redis.nodes {
                    check_url("redis.nodes", node.expose_secret(), &["redis", "rediss"])?;
                }
            }
        }
        positive("mysql.max_connections", self.mysql.max_connections as u64)?;
        positive(
            "ws.max_sockets_per_user",
            self.ws.max_sockets_per_user as u64,
        )?;
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
        if self.kafka.brokers.iter().all(|b| b.trim().is_empty()) {
            return Err(ConfigError::invalid(
                "kafka.brokers",
                "needs at least one host:port (FLASH__KAFKA__BROKERS=host1:9092,host2:9092)",
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
        if self.kafka.event_signing_key.expose_secret().len() < 32 {
            return Err(ConfigError::invalid(
                "kafka.event_signing_key",
                "must be at least 32 characters, the same in every api and payment \
                 instance (FLASH__KAFKA__EVENT_SIGNING_KEY)",
            ));
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
        self.mysql.validate()?;
        self.kafka.validate()?;
        self.validate_identity()?;
        if self.server.production {
            self.validate_production()?;
        }
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
        positive("catalog.shared_pages", u64::from(catalog.shared_pages))?;
        positive(
            "catalog.unshared_page_loads",
            catalog.unshared_page_loads as u64,
        )?;
        if catalog.default_page_size == 0 || catalog.default_page_size > catalog.max_page_size {
            return Err(ConfigError::invalid(
                "catalog.default_page_size",
                "must be between 1 and catalog.max_page_size",
            ));
        }
        positive("catalog.max_image_bytes", catalog.max_image_bytes as u64)?;
        self.validate_search()?;
        positive(
            "purchase.admission_pass_ttl_secs",
            self.purchase.admission_pass_ttl_secs,
        )?;
        if !(10..=5000).contains(&self.purchase.waiting_room_tick_ms) {
            return Err(ConfigError::invalid(
                "purchase.waiting_room_tick_ms",
                "must be between 10 and 5000",
            ));
        }
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
        positive(
            "purchase.publish_in_flight",
            self.purchase.publish_in_flight as u64,
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

    /// What a deployment must get right that development may leave loose: nothing
    /// resolved against the working directory, the pages where the image has them, no
    /// public development key, only the production purchase gate.
    fn validate_production(&self) -> Result<(), ConfigError> {
        use secrecy::ExposeSecret;

        if self.purchase.strategy != PurchaseStrategy::Redis {
            return Err(ConfigError::invalid(
                "purchase.strategy",
                "only \"redis\" in production; the MySQL strategies exist for `make bench`",
            ));
        }
        let static_dir = &self.server.static_dir;
        if !static_dir.as_os_str().is_empty() {
            absolute("server.static_dir", static_dir)?;
            if !static_dir.join("index.html").is_file() {
                return Err(ConfigError::invalid(
                    "server.static_dir",
                    format!(
                        "{} holds no index.html (the built pages); set it to \"\" when only \
                         NGINX serves the pages",
                        static_dir.display()
                    ),
                ));
            }
        }
        if self.object_store.kind == ObjectStoreKind::Filesystem {
            absolute(
                "object_store.filesystem.root",
                &self.object_store.filesystem.root,
            )?;
        }
        if self.identity.provider == IdentityProviderKind::Embedded {
            let embedded = &self.identity.embedded;
            absolute("identity.embedded.signing_key", &embedded.signing_key)?;
            for previous in &embedded.previous_signing_keys {
                absolute("identity.embedded.previous_signing_keys", previous)?;
            }
            if embedded.generate_key_if_missing {
                return Err(ConfigError::invalid(
                    "identity.embedded.generate_key_if_missing",
                    "must be false in production: every api instance must sign with the \
                     same mounted key",
                ));
            }
            if self.identity.issuer.is_empty() {
                return Err(ConfigError::invalid(
                    "identity.issuer",
                    "must be the public URL in production (tokens name it; several api \
                     instances must agree)",
                ));
            }
        }
        if self.kafka.event_signing_key.expose_secret() == DEVELOPMENT_EVENT_KEY {
            return Err(ConfigError::invalid(
                "kafka.event_signing_key",
                "is the public development key; set FLASH__KAFKA__EVENT_SIGNING_KEY",
            ));
        }
        Ok(())
    }

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
        positive(
            "identity.registrations_per_ip",
            u64::from(identity.registrations_per_ip),
        )?;
        positive(
            "identity.registrations_total",
            u64::from(identity.registrations_total),
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

fn absolute(key: &'static str, path: &Path) -> Result<(), ConfigError> {
    if path.is_absolute() {
        return Ok(());
    }
    Err(ConfigError::invalid(
        key,
        format!(
            "{} is relative; production needs an absolute path (the working directory \
             of a container is not the image's layout)",
            path.display()
        ),
    ))
}

/// The environment variable that sets `key`, for error messages.
fn env_name(key: &str) -> String {
    format!("FLASH__{}", key.replace('.', "__").to_ascii_uppercase())
}

fn check_url(key: &'static str, value: &str, schemes: &[&str]) -> Result<(), ConfigError> {
    if value.trim().is_empty() {
        return Err(ConfigError::invalid(
            key,
            format!("must be set ({})", env_name(key)),
        ));
    }
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

impl Settings {
    fn validate_search(&self) -> Result<(), ConfigError> {
        let search = &self.catalog.search;
        positive(
            "catalog.search.concurrent_loads",
            search.concurrent_loads as u64,
        )?;
        if search.engine == SearchEngine::Tantivy {
            positive("catalog.search.follow_ms", search.follow_ms)?;
            if search.niceness > 19 {
                return Err(ConfigError::invalid(
                    "catalog.search.niceness",
                    "must be between 0 and 19 (Linux nice levels)",
                ));
            }
        }
        if search.engine == SearchEngine::Opensearch {
            check_url(
                "catalog.search.opensearch_url",
                &search.opensearch_url,
                &["http", "https"],
            )?;
            if search.opensearch_index.is_empty()
                || !search
                    .opensearch_index
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_".contains(c))
            {
                return Err(ConfigError::invalid(
                    "catalog.search.opensearch_index",
                    "must be lower-case letters, digits, '-' or '_'",
                ));
            }
            positive(
                "catalog.search.opensearch_timeout_ms",
                search.opensearch_timeout_ms,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use crate::config::tests::load;

    /// The least a production deployment sets (the Keycloak provider, as the manifests
    /// use; the pages left to NGINX, as a unit test has no image layout).
    pub(in crate::config) const PRODUCTION_VARS: [(&str, &str); 7] = [
        (
            "FLASH__MYSQL__URL",
            "mysql://u:p@db.internal:3306/flash_sale",
        ),
        ("FLASH__REDIS__URL", "redis://cache.internal:6379"),
        ("FLASH__KAFKA__BROKERS", "k1.internal:9092,k2.internal:9092"),
        (
            "FLASH__KAFKA__EVENT_SIGNING_KEY",
            "a production key of 32 characters+",
        ),
        ("FLASH__IDENTITY__PROVIDER", "keycloak"),
        (
            "FLASH__IDENTITY__ISSUER",
            "https://sso.example.com/realms/flash-sale",
        ),
        ("FLASH__SERVER__STATIC_DIR", ""),
    ];

    fn production(overrides: &[(&'static str, &'static str)]) -> Result<(), String> {
        let mut vars: Vec<(&str, &str)> = PRODUCTION_VARS
            .into_iter()
            .filter(|(k, _)| !overrides.iter().any(|(o, _)| o == k))
            .collect();
        vars.extend(overrides.iter().copied());
        load("production", &vars)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn production_has_no_development_store_defaults() {
        for (unset, key) in [
            (
                "FLASH__MYSQL__URL",
                "mysql.url: must be set (FLASH__MYSQL__URL)",
            ),
            (
                "FLASH__REDIS__URL",
                "redis.url: must be set (FLASH__REDIS__URL)",
            ),
            ("FLASH__KAFKA__BROKERS", "kafka.brokers"),
        ] {
            let vars: Vec<_> = PRODUCTION_VARS
                .into_iter()
                .filter(|(k, _)| *k != unset)
                .collect();
            let err = load("production", &vars).unwrap_err().to_string();
            assert!(err.contains(key), "without {unset}: {err}");
        }
    }

    #[test]
    fn production_refuses_what_only_development_or_benchmarks_may_use() {
        for (overrides, key) in [
            (
                vec![("FLASH__PURCHASE__STRATEGY", "mysql_pessimistic")],
                "purchase.strategy",
            ),
            (
                vec![("FLASH__SERVER__STATIC_DIR", "static")],
                "server.static_dir",
            ),
            (
                vec![("FLASH__SERVER__STATIC_DIR", "/nonexistent/pages")],
                "holds no index.html",
            ),
            (
                vec![
                    ("FLASH__OBJECT_STORE__KIND", "filesystem"),
                    ("FLASH__OBJECT_STORE__FILESYSTEM__ROOT", "var/objects"),
                ],
                "object_store.filesystem.root",
            ),
            (
                vec![
                    ("FLASH__IDENTITY__PROVIDER", "embedded"),
                    (
                        "FLASH__IDENTITY__EMBEDDED__SIGNING_KEY",
                        "var/keys/signing.pem",
                    ),
                ],
                "identity.embedded.signing_key",
            ),
            (
                vec![
                    ("FLASH__IDENTITY__PROVIDER", "embedded"),
                    ("FLASH__IDENTITY__EMBEDDED__GENERATE_KEY_IF_MISSING", "true"),
                ],
                "generate_key_if_missing",
            ),
            (
                vec![
                    ("FLASH__IDENTITY__PROVIDER", "embedded"),
                    ("FLASH__IDENTITY__ISSUER", ""),
                ],
                "identity.issuer",
            ),
            (
                vec![(
                    "FLASH__KAFKA__EVENT_SIGNING_KEY",
                    "development-only-event-signing-key",
                )],
                "public development key",
            ),
        ] {
            let err = production(&overrides).unwrap_err();
            assert!(err.contains(key), "{overrides:?}: {err}");
        }
        production(&[]).unwrap();
        // The same values pass outside production: development keeps its conveniences.
        load("dev", &[("FLASH__PURCHASE__STRATEGY", "mysql_optimistic")]).unwrap();
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
}
