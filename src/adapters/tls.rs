//! TLS client settings for the adapters that build their own: Kafka (rskafka takes a
//! rustls configuration), Redis with `redis.ca_file` and MySQL with `mysql.ca_file` (both
//! drivers take the PEM text). The S3 SDK brings its own; librdkafka uses OpenSSL.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{key}: cannot read {path:?}: {source}")]
    ReadCaFile {
        key: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{key}: {path:?} is not a PEM file: {source}")]
    CaFile {
        key: &'static str,
        path: String,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("{key}: {path:?} holds no PEM certificate")]
    NoCertificate { key: &'static str, path: String },
    #[error("{key}: a certificate in {path:?} is not usable: {source}")]
    BadCertificate {
        key: &'static str,
        path: String,
        #[source]
        source: rustls::Error,
    },
    /// The platform's store is empty or unreadable (a container image without the
    /// ca-certificates package, say).
    #[error("no root certificates could be loaded from the platform's store{}", .first.as_ref().map(|e| format!(": {e}")).unwrap_or_default())]
    PlatformRoots {
        #[source]
        first: Option<rustls_native_certs::Error>,
    },
    #[error("TLS client configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// Makes aws-lc-rs the process's rustls provider (idempotent). Two providers are compiled
/// in (rskafka's TLS brings ring), so rustls cannot choose one itself, and the libraries
/// that ask it for the process default (redis, mysql_async) would panic on their first
/// TLS connection.
pub fn install_crypto_provider() {
    if CryptoProvider::get_default().is_none() {
        // Losing a race to another caller is fine: one provider gets installed.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
}

/// The text of a PEM file of CA certificates (the bundle an operator points `key` at),
/// checked to hold at least one certificate.
pub fn ca_pem(key: &'static str, path: &str) -> Result<Vec<u8>, TlsError> {
    let pem = read(key, Path::new(path))?;
    parse_certificates(key, path, &pem)?;
    Ok(pem)
}

/// Like [`ca_pem`], and every certificate must also be usable as a root: for drivers that
/// would otherwise find a bad one only when they open their first connection.
pub fn ca_bundle(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    let pem = read(key, path)?;
    let shown = path.display().to_string();
    let mut roots = RootCertStore::empty();
    for certificate in parse_certificates(key, &shown, &pem)? {
        roots
            .add(certificate)
            .map_err(|source| TlsError::BadCertificate {
                key,
                path: shown.clone(),
                source,
            })?;
    }
    Ok(pem)
}

/// The certificates of a PEM file of CA certificates.
pub fn ca_certificates(
    key: &'static str,
    path: &str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    parse_certificates(key, path, &read(key, Path::new(path))?)
}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::ReadCaFile {
        key,
        path: path.display().to_string(),
        source,
    })
}

fn parse_certificates(
    key: &'static str,
    path: &str,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::CaFile {
            key,
            path: path.to_owned(),
            source,
        })?;
    if certificates.is_empty() {
        return Err(TlsError::NoCertificate {
            key,
            path: path.to_owned(),
        });
    }
    Ok(certificates)
}

/// The roots a server certificate is checked against: those of `ca_file`, or the
/// platform's store (`/etc/ssl/certs`, or `SSL_CERT_FILE`) when it is empty.
pub fn root_store(key: &'static str, ca_file: &str) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    if ca_file.is_empty() {
        let mut loaded = rustls_native_certs::load_native_certs();
        // An unparsable certificate among many is skipped, as browsers do.
        roots.add_parsable_certificates(loaded.certs);
        if roots.is_empty() {
            return Err(TlsError::PlatformRoots {
                first: loaded.errors.pop(),
            });
        }
        return Ok(roots);
    }
    for certificate in ca_certificates(key, ca_file)? {
        roots
            .add(certificate)
            .map_err(|source| TlsError::BadCertificate {
                key,
                path: ca_file.to_owned(),
                source,
            })?;
    }
    Ok(roots)
}

/// A client configuration that checks the server's certificate and name against
/// [`root_store`]; no client certificate.
pub fn client_config(
    key: &'static str,
    ca_file: &str,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(root_store(key, ca_file)?)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
pub(crate) mod testing {
    /// A self-signed CA certificate (made with openssl, valid until 2126; its key was
    /// thrown away).
    pub(crate) const TEST_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBkDCCATegAwIBAgIUArdyayiyzrUF62VDiJLXf1utAlAwCgYIKoZIzj0EAwIw
HTEbMBkGA1UEAwwSZmxhc2gtc2FsZSB0ZXN0IENBMCAXDTI2MTEyOTA0MzMxM1oY
DzIxMjYxMTA1MDQzMzEzWjAdMRswGQYDVQQDDBJmbGFzaC1zYWxlIHRlc3QgQ0Ew
WTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAARsDYOCxaM1aFM0bzkYdtgDb/n+y0eP
XUcrTVrkHwYxBls8sYPQO1VzD3sOn9RqYt9J15PSq3c025cBqtKNKyFgo1MwUTAd
BgNVHQ4EFgQUO9BrfquE3QJn82BOpFjHYLm96qcwHwYDVR0jBBgwFoAUO9BrfquE
3QJn82BOpFjHYLm96qcwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNHADBE
AiBDTwCuvI6JH9jrApzijSPkW7OFkdEmlQH10a7S830CggIgKWXXO5EtFPNd8B/P
NEKm9zp9p7jpFgDTVp+LNVsOu1Q=
-----END CERTIFICATE-----
";

    pub(crate) fn temp_file(contents: &str) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("fs-tls-{}.pem", uuid::Uuid::new_v4()));
        std::fs::write(&path, contents).unwrap();
        path
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{TEST_CA, temp_file};
    use super::*;

    #[test]
    fn platform_roots_load() {
        install_crypto_provider();
        assert!(!root_store("kafka.ca_file", "").unwrap().is_empty());
        client_config("kafka.ca_file", "").unwrap();
    }

    #[test]
    fn a_ca_file_must_hold_a_certificate_and_errors_name_the_key() {
        let empty = temp_file("no certificate here\n");
        let err = root_store("kafka.ca_file", empty.to_str().unwrap()).unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
        assert!(err.to_string().contains("kafka.ca_file"), "{err}");
        let err = root_store("redis.ca_file", "/no/such/ca.pem").unwrap_err();
        assert!(err.to_string().contains("redis.ca_file"), "{err}");
        assert!(std::error::Error::source(&err).is_some());
        let _ = std::fs::remove_file(empty);
    }

    #[test]
    fn a_ca_file_replaces_the_platform_roots() {
        let ca = temp_file(TEST_CA);
        let roots = root_store("kafka.ca_file", ca.to_str().unwrap()).unwrap();
        assert_eq!(roots.len(), 1);
        client_config("kafka.ca_file", ca.to_str().unwrap()).unwrap();
        assert_eq!(ca_bundle("mysql.ca_file", &ca).unwrap(), TEST_CA.as_bytes());
        let _ = std::fs::remove_file(ca);
    }

    #[test]
    fn a_ca_bundle_refuses_a_certificate_that_cannot_be_a_root() {
        let bad = temp_file(
            "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
        );
        let err = ca_bundle("mysql.ca_file", &bad).unwrap_err();
        assert!(matches!(err, TlsError::BadCertificate { .. }), "{err}");
        assert!(err.to_string().contains("mysql.ca_file"), "{err}");
        let err = ca_bundle("mysql.ca_file", Path::new("/no/such/ca.pem")).unwrap_err();
        assert!(matches!(err, TlsError::ReadCaFile { .. }), "{err}");
        let _ = std::fs::remove_file(bad);
    }
}
