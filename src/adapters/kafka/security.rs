//! TLS and SASL towards the brokers, applied the same way to both clients: rskafka (the
//! producer and partition readers) and librdkafka (the consumer group, topic creation).

use std::sync::Arc;

use rskafka::client::{ClientBuilder, Credentials, SaslConfig};
use secrecy::{ExposeSecret, SecretString};

use crate::adapters::tls::{self, TlsError};
use crate::config::{KafkaSaslMechanism, KafkaSecurityProtocol, KafkaSettings};

/// The resolved `kafka.security_protocol`, `sasl_*` and `ca_file` settings. Cloning
/// shares the TLS configuration.
#[derive(Clone)]
pub struct KafkaSecurity {
    protocol: KafkaSecurityProtocol,
    sasl: Option<Sasl>,
    /// `kafka.ca_file`; empty: the platform's roots.
    ca_file: String,
    /// rskafka's TLS settings, built once (certificates are read at start-up, so a bad
    /// CA file stops the start instead of every connection attempt).
    tls: Option<Arc<rustls::ClientConfig>>,
}

#[derive(Clone)]
struct Sasl {
    mechanism: KafkaSaslMechanism,
    username: String,
    password: SecretString,
}

impl std::fmt::Debug for KafkaSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: the password never reaches a log line.
        f.debug_struct("KafkaSecurity")
            .field("protocol", &self.protocol)
            .field("sasl_mechanism", &self.sasl.as_ref().map(|s| s.mechanism))
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

impl KafkaSecurity {
    /// Reads the CA file (or the platform's roots) when the protocol uses TLS.
    pub fn new(settings: &KafkaSettings) -> Result<Self, TlsError> {
        let protocol = settings.security_protocol;
        let tls = if protocol.tls() {
            tls::install_crypto_provider();
            Some(tls::client_config("kafka.ca_file", &settings.ca_file)?)
        } else {
            None
        };
        let sasl = protocol.sasl().then(|| Sasl {
            mechanism: settings.sasl_mechanism,
            username: settings.sasl_username.clone(),
            password: settings.sasl_password.clone(),
        });
        Ok(Self {
            protocol,
            sasl,
            ca_file: settings.ca_file.clone(),
            tls,
        })
    }

    /// rskafka's builder with TLS and SASL as configured.
    pub(super) fn apply_rskafka(&self, mut builder: ClientBuilder) -> ClientBuilder {
        if let Some(tls) = &self.tls {
            builder = builder.tls_config(tls.clone());
        }
        if let Some(sasl) = &self.sasl {
            let credentials = Credentials::new(
                sasl.username.clone(),
                sasl.password.expose_secret().to_owned(),
            );
            builder = builder.sasl_config(match sasl.mechanism {
                KafkaSaslMechanism::Plain => SaslConfig::Plain(credentials),
                KafkaSaslMechanism::ScramSha256 => SaslConfig::ScramSha256(credentials),
                KafkaSaslMechanism::ScramSha512 => SaslConfig::ScramSha512(credentials),
            });
        }
        builder
    }

    /// librdkafka's `security.protocol`, `sasl.*` and `ssl.ca.location`. Without a CA
    /// file librdkafka uses OpenSSL's default store, the platform's roots. The
    /// configuration then holds the password: it is never logged.
    pub fn apply_rdkafka(&self, config: &mut rdkafka::ClientConfig) {
        config.set("security.protocol", self.protocol.as_str());
        if let Some(sasl) = &self.sasl {
            config
                .set("sasl.mechanisms", sasl.mechanism.as_str())
                .set("sasl.username", &sasl.username)
                .set("sasl.password", sasl.password.expose_secret());
        }
        if self.protocol.tls() && !self.ca_file.is_empty() {
            config.set("ssl.ca.location", &self.ca_file);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::config::FromClientConfig;

    fn settings(vars: &[(&str, &str)]) -> KafkaSettings {
        crate::config::tests::load("dev", vars).unwrap().kafka
    }

    fn rdkafka_config(security: &KafkaSecurity) -> rdkafka::ClientConfig {
        let mut config = rdkafka::ClientConfig::new();
        config.set("bootstrap.servers", "127.0.0.1:1");
        security.apply_rdkafka(&mut config);
        config
    }

    #[test]
    fn plaintext_sets_nothing_but_the_protocol() {
        let security = KafkaSecurity::new(&settings(&[])).unwrap();
        assert!(security.tls.is_none() && security.sasl.is_none());
        let config = rdkafka_config(&security);
        assert_eq!(config.get("security.protocol"), Some("plaintext"));
        assert_eq!(config.get("sasl.mechanisms"), None);
        assert_eq!(config.get("ssl.ca.location"), None);
    }

    #[test]
    fn sasl_ssl_configures_both_clients_and_librdkafka_accepts_it() {
        let ca = crate::adapters::tls::testing::temp_file(crate::adapters::tls::testing::TEST_CA);
        let security = KafkaSecurity::new(&settings(&[
            ("FLASH__KAFKA__SECURITY_PROTOCOL", "sasl_ssl"),
            ("FLASH__KAFKA__SASL_MECHANISM", "SCRAM-SHA-512"),
            ("FLASH__KAFKA__SASL_USERNAME", "flash"),
            ("FLASH__KAFKA__SASL_PASSWORD", "s3cret"),
            ("FLASH__KAFKA__CA_FILE", ca.to_str().unwrap()),
        ]))
        .unwrap();
        assert!(security.tls.is_some());
        assert!(!format!("{security:?}").contains("s3cret"));
        let config = rdkafka_config(&security);
        assert_eq!(config.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(config.get("sasl.mechanisms"), Some("SCRAM-SHA-512"));
        assert_eq!(config.get("sasl.username"), Some("flash"));
        assert_eq!(config.get("sasl.password"), Some("s3cret"));
        assert_eq!(config.get("ssl.ca.location"), ca.to_str());
        // librdkafka refuses ssl and SCRAM when built without OpenSSL: creating a client
        // (no connection yet) proves the build supports them and reads the CA file.
        let client =
            rdkafka::consumer::BaseConsumer::<rdkafka::consumer::DefaultConsumerContext>::from_config(
                &config,
            );
        assert!(client.is_ok(), "{:?}", client.err());
        let _ = std::fs::remove_file(ca);
    }

    #[test]
    fn sasl_plaintext_has_no_tls() {
        let security = KafkaSecurity::new(&settings(&[
            ("FLASH__KAFKA__SECURITY_PROTOCOL", "sasl_plaintext"),
            ("FLASH__KAFKA__SASL_MECHANISM", "PLAIN"),
            ("FLASH__KAFKA__SASL_USERNAME", "flash"),
            ("FLASH__KAFKA__SASL_PASSWORD", "s3cret"),
        ]))
        .unwrap();
        assert!(security.tls.is_none());
        let config = rdkafka_config(&security);
        assert_eq!(config.get("sasl.mechanisms"), Some("PLAIN"));
        assert_eq!(config.get("ssl.ca.location"), None);
    }

    #[test]
    fn an_unreadable_ca_file_is_an_error_naming_the_key() {
        let mut kafka = settings(&[("FLASH__KAFKA__SECURITY_PROTOCOL", "ssl")]);
        kafka.ca_file = "/no/such/ca.pem".to_owned();
        let err = KafkaSecurity::new(&kafka).unwrap_err();
        assert!(err.to_string().contains("kafka.ca_file"), "{err}");
    }
}
