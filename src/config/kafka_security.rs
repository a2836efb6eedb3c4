//! How the Kafka clients reach the brokers: TLS and SASL (Amazon MSK serves TLS on 9094,
//! SASL/SCRAM over TLS on 9096).

use secrecy::ExposeSecret;
use serde::Deserialize;

use super::{ConfigError, KafkaSettings};

/// Kafka's `security.protocol`, spelt as librdkafka and the Java client spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KafkaSecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl KafkaSecurityProtocol {
    /// Whether connections are encrypted.
    pub fn tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }

    /// Whether the client authenticates with SASL.
    pub fn sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }

    /// The value of librdkafka's `security.protocol`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plaintext => "plaintext",
            Self::Ssl => "ssl",
            Self::SaslPlaintext => "sasl_plaintext",
            Self::SaslSsl => "sasl_ssl",
        }
    }
}

/// The SASL mechanisms both Kafka clients of the application speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum KafkaSaslMechanism {
    #[serde(rename = "PLAIN")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl KafkaSaslMechanism {
    /// The value of librdkafka's `sasl.mechanisms`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

impl KafkaSettings {
    /// Rules of the security keys: credentials only with a SASL protocol and then both of
    /// them, a CA file only with TLS and then one that exists.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let protocol = self.security_protocol;
        let username = self.sasl_username.trim();
        let password = self.sasl_password.expose_secret();
        if protocol.sasl() {
            if username.is_empty() {
                return Err(ConfigError::invalid(
                    "kafka.sasl_username",
                    format!(
                        "must be set when kafka.security_protocol = {:?}",
                        protocol.as_str()
                    ),
                ));
            }
            if password.is_empty() {
                return Err(ConfigError::invalid(
                    "kafka.sasl_password",
                    format!(
                        "must be set when kafka.security_protocol = {:?} \
                         (FLASH__KAFKA__SASL_PASSWORD)",
                        protocol.as_str()
                    ),
                ));
            }
        } else if !username.is_empty() || !password.is_empty() {
            // Credentials that would never be sent point at a protocol left at its default.
            return Err(ConfigError::invalid(
                "kafka.security_protocol",
                "kafka.sasl_username/sasl_password are set but the protocol is not \
                 \"sasl_plaintext\" or \"sasl_ssl\"",
            ));
        }
        if username != self.sasl_username {
            return Err(ConfigError::invalid(
                "kafka.sasl_username",
                "must not begin or end with white space",
            ));
        }
        if !self.ca_file.is_empty() {
            if !protocol.tls() {
                return Err(ConfigError::invalid(
                    "kafka.ca_file",
                    "is only used with kafka.security_protocol = \"ssl\" or \"sasl_ssl\"",
                ));
            }
            if !std::path::Path::new(&self.ca_file).is_file() {
                return Err(ConfigError::invalid(
                    "kafka.ca_file",
                    format!("{:?} is not a readable file", self.ca_file),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::load;

    /// Loading validates every section, the Kafka one included.
    fn kafka(vars: &[(&str, &str)]) -> Result<(), ConfigError> {
        load("dev", vars).map(|_| ())
    }

    #[test]
    fn the_shipped_default_is_plaintext_without_credentials() {
        let settings = load("dev", &[]).unwrap().kafka;
        assert_eq!(settings.security_protocol, KafkaSecurityProtocol::Plaintext);
        assert!(settings.sasl_username.is_empty());
        settings.validate().unwrap();
    }

    #[test]
    fn msk_sasl_scram_over_tls_loads_from_the_environment() {
        let settings = load(
            "dev",
            &[
                ("FLASH__KAFKA__SECURITY_PROTOCOL", "sasl_ssl"),
                ("FLASH__KAFKA__SASL_MECHANISM", "SCRAM-SHA-512"),
                ("FLASH__KAFKA__SASL_USERNAME", "flash"),
                ("FLASH__KAFKA__SASL_PASSWORD", "s3cret"),
            ],
        )
        .unwrap()
        .kafka;
        assert_eq!(settings.security_protocol, KafkaSecurityProtocol::SaslSsl);
        assert_eq!(settings.sasl_mechanism, KafkaSaslMechanism::ScramSha512);
        assert!(settings.security_protocol.tls() && settings.security_protocol.sasl());
        settings.validate().unwrap();
        assert!(
            !format!("{settings:?}").contains("s3cret"),
            "the password never shows in Debug"
        );
    }

    #[test]
    fn every_protocol_and_mechanism_parses() {
        for (value, protocol) in [
            ("plaintext", KafkaSecurityProtocol::Plaintext),
            ("ssl", KafkaSecurityProtocol::Ssl),
            ("sasl_plaintext", KafkaSecurityProtocol::SaslPlaintext),
            ("sasl_ssl", KafkaSecurityProtocol::SaslSsl),
        ] {
            let mut vars = vec![("FLASH__KAFKA__SECURITY_PROTOCOL", value)];
            if protocol.sasl() {
                vars.extend([
                    ("FLASH__KAFKA__SASL_USERNAME", "flash"),
                    ("FLASH__KAFKA__SASL_PASSWORD", "s3cret"),
                ]);
            }
            let settings = load("dev", &vars).unwrap().kafka;
            assert_eq!(settings.security_protocol, protocol);
            assert_eq!(protocol.as_str(), value);
        }
        for (value, mechanism) in [
            ("PLAIN", KafkaSaslMechanism::Plain),
            ("SCRAM-SHA-256", KafkaSaslMechanism::ScramSha256),
            ("SCRAM-SHA-512", KafkaSaslMechanism::ScramSha512),
        ] {
            let settings = load(
                "dev",
                &[
                    ("FLASH__KAFKA__SECURITY_PROTOCOL", "sasl_ssl"),
                    ("FLASH__KAFKA__SASL_MECHANISM", value),
                    ("FLASH__KAFKA__SASL_USERNAME", "flash"),
                    ("FLASH__KAFKA__SASL_PASSWORD", "s3cret"),
                ],
            )
            .unwrap()
            .kafka;
            assert_eq!(settings.sasl_mechanism, mechanism);
            assert_eq!(mechanism.as_str(), value);
        }
    }

    #[test]
    fn unknown_protocol_or_mechanism_names_the_key() {
        let err = load("dev", &[("FLASH__KAFKA__SECURITY_PROTOCOL", "tls")]).unwrap_err();
        assert!(err.to_string().contains("security_protocol"), "{err}");
        let err = load("dev", &[("FLASH__KAFKA__SASL_MECHANISM", "GSSAPI")]).unwrap_err();
        assert!(err.to_string().contains("sasl_mechanism"), "{err}");
    }

    #[test]
    fn broken_rules_name_the_key_and_never_echo_the_password() {
        let ca = std::env::temp_dir().join(format!("fs-ca-{}.pem", uuid::Uuid::new_v4()));
        std::fs::write(&ca, "not checked here").unwrap();
        let ca_path = ca.to_str().unwrap().to_owned();
        for (vars, key) in [
            (
                vec![("FLASH__KAFKA__SECURITY_PROTOCOL", "sasl_ssl")],
                "kafka.sasl_username",
            ),
            (
                vec![
                    ("FLASH__KAFKA__SECURITY_PROTOCOL", "sasl_plaintext"),
                    ("FLASH__KAFKA__SASL_USERNAME", "flash"),
                ],
                "kafka.sasl_password",
            ),
            (
                vec![
                    ("FLASH__KAFKA__SECURITY_PROTOCOL", "sasl_ssl"),
                    ("FLASH__KAFKA__SASL_USERNAME", "   "),
                    ("FLASH__KAFKA__SASL_PASSWORD", "s3cret"),
                ],
                "kafka.sasl_username",
            ),
            (
                vec![
                    ("FLASH__KAFKA__SECURITY_PROTOCOL", "sasl_ssl"),
                    ("FLASH__KAFKA__SASL_USERNAME", " flash"),
                    ("FLASH__KAFKA__SASL_PASSWORD", "s3cret"),
                ],
                "kafka.sasl_username",
            ),
            (
                vec![("FLASH__KAFKA__SASL_USERNAME", "flash")],
                "kafka.security_protocol",
            ),
            (
                vec![
                    ("FLASH__KAFKA__SECURITY_PROTOCOL", "ssl"),
                    ("FLASH__KAFKA__SASL_PASSWORD", "s3cret"),
                ],
                "kafka.security_protocol",
            ),
            (
                vec![("FLASH__KAFKA__CA_FILE", ca_path.as_str())],
                "kafka.ca_file",
            ),
            (
                vec![
                    ("FLASH__KAFKA__SECURITY_PROTOCOL", "ssl"),
                    ("FLASH__KAFKA__CA_FILE", "/no/such/ca.pem"),
                ],
                "kafka.ca_file",
            ),
        ] {
            let err = kafka(&vars).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(key), "{vars:?}: {text}");
            assert!(!text.contains("s3cret"), "{vars:?}: {text}");
        }
        kafka(&[
            ("FLASH__KAFKA__SECURITY_PROTOCOL", "ssl"),
            ("FLASH__KAFKA__CA_FILE", ca_path.as_str()),
        ])
        .unwrap();
        kafka(&[
            ("FLASH__KAFKA__SECURITY_PROTOCOL", "sasl_plaintext"),
            ("FLASH__KAFKA__SASL_MECHANISM", "PLAIN"),
            ("FLASH__KAFKA__SASL_USERNAME", "flash"),
            ("FLASH__KAFKA__SASL_PASSWORD", "s3cret"),
        ])
        .unwrap();
        let _ = std::fs::remove_file(ca);
    }
}
