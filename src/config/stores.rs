//! The services the roles talk to: MySQL, Redis, Kafka and object storage.

use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::ConfigError;
use super::kafka_security::{KafkaSaslMechanism, KafkaSecurityProtocol};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlSettings {
    /// `mysql://user:password@host:port/database`; may carry a password, so never logged.
    pub url: SecretString,
    pub max_connections: usize,
    pub connect_timeout_ms: u64,
    pub acquire_timeout_ms: u64,
    pub migrate_on_start: bool,
    /// PEM file of the certificate authorities that sign the server's certificate (the
    /// RDS global bundle, say). Set, every connection uses TLS and trusts these roots
    /// only; empty leaves TLS to the URL's options and the driver's built-in roots.
    pub ca_file: PathBuf,
}

impl MysqlSettings {
    /// Rules of `ca_file`. The pool reads the file again when it is built, so a file that
    /// disappears in between still stops the start.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.ca_file.as_os_str().is_empty() {
            return Ok(());
        }
        if !self.ca_file.is_file() {
            return Err(ConfigError::invalid(
                "mysql.ca_file",
                format!("{:?} is not a readable file", self.ca_file),
            ));
        }
        // The driver reads these options as exactly "true" or "false".
        let url = url::Url::parse(self.url.expose_secret())
            .map_err(|e| ConfigError::invalid("mysql.url", e.to_string()))?;
        for (option, value) in url.query_pairs() {
            if value != "false" {
                continue;
            }
            let conflict = match option.as_ref() {
                "require_ssl" => {
                    "every connection uses TLS, so mysql.url must not say \
                                  require_ssl=false"
                }
                "verify_ca" => {
                    "certificates are checked against it, so mysql.url must not \
                                say verify_ca=false"
                }
                _ => continue,
            };
            return Err(ConfigError::invalid("mysql.ca_file", conflict));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// `standalone`: one server at `url`. `cluster`: a Redis Cluster reached through
    /// `nodes`.
    pub mode: RedisMode,
    /// The server in standalone mode; may carry a password, so never logged.
    pub url: SecretString,
    /// Seed nodes of the cluster (`redis://host:port`, any subset of its nodes): the
    /// client learns the slot map from the first that answers.
    pub nodes: Vec<SecretString>,
    /// Prefix of every key this deployment writes.
    pub namespace: String,
    pub pool_size: usize,
    pub timeout_ms: u64,
    /// PEM file of the certificate authorities that sign the servers' certificates, for
    /// `rediss://` URLs; empty trusts the platform's root certificates.
    pub ca_file: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisMode {
    Standalone,
    Cluster,
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
    /// HMAC key of order events, the same in every api and payment instance: the
    /// payment role reads only events signed with it.
    pub event_signing_key: SecretString,
    /// Encryption and authentication towards the brokers (rules in `kafka_security`).
    pub security_protocol: KafkaSecurityProtocol,
    /// Used only with a SASL protocol.
    pub sasl_mechanism: KafkaSaslMechanism,
    pub sasl_username: String,
    /// From the environment only (FLASH__KAFKA__SASL_PASSWORD); never logged.
    pub sasl_password: SecretString,
    /// PEM file of the certificate authorities that sign the brokers' certificates;
    /// empty trusts the platform's root certificates.
    pub ca_file: String,
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
    /// Prefix of public image URLs; empty derives it from the store (see
    /// `adapters::object_store::public_base_url`).
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::tests::load;

    /// Checks the fields directly, so that `load`'s own validation cannot refuse them first.
    fn mysql(url: &str, ca_file: &Path) -> Result<(), ConfigError> {
        let mut settings = load("dev", &[]).unwrap().mysql;
        settings.url = url.to_owned().into();
        settings.ca_file = ca_file.to_owned();
        settings.validate()
    }

    #[test]
    fn the_shipped_default_has_no_ca_file() {
        let settings = load("dev", &[]).unwrap().mysql;
        assert!(settings.ca_file.as_os_str().is_empty());
        settings.validate().unwrap();
    }

    #[test]
    fn a_ca_file_loads_from_the_environment() {
        let ca = std::env::temp_dir().join(format!("fs-rds-ca-{}.pem", uuid::Uuid::new_v4()));
        std::fs::write(&ca, "the pool parses it").unwrap();
        let path = ca.to_str().unwrap();
        let settings = load("dev", &[("FLASH__MYSQL__CA_FILE", path)])
            .unwrap()
            .mysql;
        assert_eq!(settings.ca_file, Path::new(path));
        let _ = std::fs::remove_file(ca);
    }

    #[test]
    fn a_ca_file_must_exist_and_keep_tls_and_certificate_checks_on() {
        let ca = std::env::temp_dir().join(format!("fs-mysql-ca-{}.pem", uuid::Uuid::new_v4()));
        std::fs::write(&ca, "any text: the pool parses it").unwrap();
        let url =
            |options: &str| format!("mysql://app:s3cret@db.example:3306/flash_sale?{options}");
        for (url, ca_file) in [
            (url(""), Path::new("/no/such/ca.pem")),
            (url("require_ssl=true&verify_ca=false"), &ca),
            (url("require_ssl=false"), &ca),
        ] {
            let text = mysql(&url, ca_file).unwrap_err().to_string();
            assert!(text.contains("mysql.ca_file"), "{url}: {text}");
            assert!(!text.contains("s3cret"), "{url}: {text}");
        }
        for url in [url(""), url("require_ssl=true&verify_identity=false")] {
            mysql(&url, &ca).unwrap();
        }
        mysql(&url("verify_ca=false"), Path::new("")).unwrap();
        let _ = std::fs::remove_file(ca);
    }
}
