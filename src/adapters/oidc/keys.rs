//! RS256 signing keys of the built-in issuer.
//!
//! The active key signs; retired keys listed in `previous_signing_keys` stay in the JWKS
//! so tokens they signed verify until they expire (rotation: generate a new key, move
//! the old path to `previous_signing_keys`, restart, drop it after `token_ttl_secs`).
//! A key's `kid` is its RFC 7638 thumbprint, so it is stable across restarts.

use std::path::Path;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

use crate::config::EmbeddedIssuerSettings;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("signing key {path}: {message}")]
    Load { path: String, message: String },
    #[error("cannot generate a signing key: {0}")]
    Generate(String),
    #[error("{0} exists already; refusing to overwrite a signing key")]
    Exists(String),
    #[error("cannot sign a token: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    jwk: Jwk,
}

pub struct SigningKeys {
    active: SigningKey,
    jwks: JwkSet,
}

impl SigningKeys {
    /// Loads the active and the retired keys; creates the active one first when it is
    /// missing and `generate_key_if_missing` is set.
    pub fn load(settings: &EmbeddedIssuerSettings) -> Result<Self, KeyError> {
        let path = &settings.signing_key;
        if !path.exists() && settings.generate_key_if_missing {
            match write_new_key(path) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "generated a new RS256 signing key")
                }
                // Another process created it at the same moment: use theirs.
                Err(KeyError::Exists(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let active = load_key(path)?;
        let mut keys = vec![active.jwk.clone()];
        for previous in &settings.previous_signing_keys {
            let key = load_key(previous)?;
            if key.kid != active.kid {
                keys.push(key.jwk);
            }
        }
        Ok(Self {
            active,
            jwks: JwkSet { keys },
        })
    }

    /// Keys from PEM text (tests).
    pub fn from_pem(active: &str) -> Result<Self, KeyError> {
        let active = key_from_pem(active.as_bytes(), "<memory>")?;
        let jwks = JwkSet {
            keys: vec![active.jwk.clone()],
        };
        Ok(Self { active, jwks })
    }

    pub fn active_kid(&self) -> &str {
        &self.active.kid
    }

    /// The public keys, for `/.well-known/jwks.json`.
    pub fn jwks(&self) -> &JwkSet {
        &self.jwks
    }

    pub fn sign<T: serde::Serialize>(&self, claims: &T) -> Result<String, KeyError> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.active.kid.clone());
        Ok(jsonwebtoken::encode(
            &header,
            claims,
            &self.active.encoding,
        )?)
    }
}

/// A new 2048-bit RSA private key as PKCS#8 PEM.
pub fn generate_pem() -> Result<String, KeyError> {
    let pair =
        KeyPair::generate(KeySize::Rsa2048).map_err(|e| KeyError::Generate(e.to_string()))?;
    let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair)
        .map_err(|e| KeyError::Generate(e.to_string()))?;
    Ok(pem::encode(&pem::Pem::new(
        "PRIVATE KEY",
        der.as_ref().to_vec(),
    )))
}

/// Writes a new private key to `path` (mode 0600, parent directories created); never
/// overwrites an existing file.
pub fn write_new_key(path: &Path) -> Result<(), KeyError> {
    let fail = |message: String| KeyError::Load {
        path: path.display().to_string(),
        message,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| fail(e.to_string()))?;
    }
    let pem = generate_pem()?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600); // a private key: owner only
    }
    use std::io::Write;
    let mut file = match options.open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(KeyError::Exists(path.display().to_string()));
        }
        Err(e) => return Err(fail(e.to_string())),
    };
    file.write_all(pem.as_bytes())
        .map_err(|e| fail(e.to_string()))
}

fn load_key(path: &Path) -> Result<SigningKey, KeyError> {
    let pem = std::fs::read(path).map_err(|e| KeyError::Load {
        path: path.display().to_string(),
        message: format!(
            "{e} (create one with `flash-sale keys generate {}`)",
            path.display()
        ),
    })?;
    key_from_pem(&pem, &path.display().to_string())
}

fn key_from_pem(pem: &[u8], origin: &str) -> Result<SigningKey, KeyError> {
    let fail = |message: String| KeyError::Load {
        path: origin.to_owned(),
        message,
    };
    let encoding =
        EncodingKey::from_rsa_pem(pem).map_err(|e| fail(format!("not an RSA private key: {e}")))?;
    let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::RS256)
        .map_err(|e| fail(format!("cannot derive the public key: {e}")))?;
    let kid = jwk.thumbprint(ThumbprintHash::SHA256);
    jwk.common.key_id = Some(kid.clone());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    jwk.common.key_algorithm = Some(KeyAlgorithm::RS256);
    Ok(SigningKey { kid, encoding, jwk })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_load_and_get_stable_distinct_kids() {
        let a = generate_pem().unwrap();
        let b = generate_pem().unwrap();
        let a1 = SigningKeys::from_pem(&a).unwrap();
        let a2 = SigningKeys::from_pem(&a).unwrap();
        let b1 = SigningKeys::from_pem(&b).unwrap();
        assert_eq!(
            a1.active_kid(),
            a2.active_kid(),
            "kid is derived from the key"
        );
        assert_ne!(a1.active_kid(), b1.active_kid());
        let jwk = &a1.jwks().keys[0];
        assert_eq!(jwk.common.key_id.as_deref(), Some(a1.active_kid()));
        let json = serde_json::to_value(a1.jwks()).unwrap();
        assert_eq!(json["keys"][0]["kty"], "RSA");
        assert!(
            json["keys"][0].get("d").is_none(),
            "JWKS must not publish the private part"
        );
    }

    #[test]
    fn previous_keys_stay_in_the_jwks() {
        let dir = std::env::temp_dir().join(format!("keys-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let old = dir.join("old.pem");
        std::fs::write(&old, generate_pem().unwrap()).unwrap();
        let settings = EmbeddedIssuerSettings {
            token_ttl_secs: 60,
            signing_key: dir.join("new.pem"),
            previous_signing_keys: vec![old.clone()],
            generate_key_if_missing: true,
        };
        let keys = SigningKeys::load(&settings).unwrap();
        assert_eq!(keys.jwks().keys.len(), 2);
        let old_kid = SigningKeys::from_pem(&std::fs::read_to_string(&old).unwrap())
            .unwrap()
            .active_kid()
            .to_owned();
        assert_ne!(keys.active_kid(), old_kid, "the new key signs");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("new.pem"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn missing_key_without_generation_names_the_file() {
        let settings = EmbeddedIssuerSettings {
            token_ttl_secs: 60,
            signing_key: "/nonexistent/signing.pem".into(),
            previous_signing_keys: vec![],
            generate_key_if_missing: false,
        };
        let err = SigningKeys::load(&settings).err().unwrap().to_string();
        assert!(err.contains("/nonexistent/signing.pem"), "{err}");
    }
}
