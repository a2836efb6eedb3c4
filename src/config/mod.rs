//! Settings: `config/default.toml` <- `config/<env>.toml` <- `FLASH__SECTION__KEY`
//! environment variables, deserialised into plain structs and validated once.
//!
//! The environment overlay is picked by `FLASH_ENV` (`dev` when unset). Unknown keys are
//! rejected so that a typo in a file or a variable fails loudly instead of being ignored.

mod identity;
mod kafka_security;
mod payment;
mod sale;
mod server;
mod stores;
mod validate;

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use identity::{
    EmbeddedIssuerSettings, IdentityProviderKind, IdentitySettings, KeycloakSettings,
};
pub use kafka_security::{KafkaSaslMechanism, KafkaSecurityProtocol};
pub use payment::PaymentSettings;
pub use sale::{CatalogSettings, PurchaseSettings, PurchaseStrategy, SearchEngine, SearchSettings};
pub use server::{LogFormat, LogSettings, ServerSettings, WsSettings};
pub use stores::{
    FilesystemStoreSettings, KafkaSettings, MysqlSettings, ObjectStoreKind, ObjectStoreSettings,
    RedisMode, RedisSettings, S3StoreSettings,
};

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
                    .with_list_parse_key("redis.nodes")
                    .with_list_parse_key("server.trusted_proxies")
                    .try_parsing(true)
                    .source(Some(vars)),
            )
            .build()?
            .try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config")
    }

    /// Settings from the shipped files, with `vars` as the environment (tests anywhere
    /// in the crate).
    pub(crate) fn load(env: &str, vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
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
    fn missing_overlay_is_an_error() {
        let err = load("staging", &[]).unwrap_err();
        assert!(matches!(err, ConfigError::MissingOverlay { .. }), "{err}");
    }

    #[test]
    fn shipped_files_all_load() {
        for env in ["dev", "test", "bench"] {
            load(env, &[]).unwrap_or_else(|e| panic!("{env}: {e}"));
        }
        load("production", &validate::tests::PRODUCTION_VARS).unwrap();
    }

    #[test]
    fn production_needs_its_own_event_signing_key() {
        let vars: Vec<_> = validate::tests::PRODUCTION_VARS
            .into_iter()
            .filter(|(k, _)| *k != "FLASH__KAFKA__EVENT_SIGNING_KEY")
            .collect();
        let err = load("production", &vars).unwrap_err();
        assert!(err.to_string().contains("kafka.event_signing_key"), "{err}");
    }
}
