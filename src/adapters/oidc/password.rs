//! argon2id password hashing, on the blocking pool: one hash takes tens of milliseconds
//! of CPU and must not stall the async workers.

use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

#[derive(Debug, thiserror::Error)]
pub enum PasswordHashError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("stored password hash is not a PHC string: {0}")]
    Stored(String),
    #[error("hashing task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Hashes with argon2id and the crate's defaults (m = 19 MiB, t = 2, p = 1: OWASP's
/// baseline) and a random salt; returns the PHC string.
pub async fn hash_password(password: String) -> Result<String, PasswordHashError> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|e| PasswordHashError::Hash(e.to_string()))
    })
    .await?
}

/// Checks a password against a stored PHC string (its own parameters apply).
pub async fn verify_password(password: String, hash: Arc<str>) -> Result<bool, PasswordHashError> {
    tokio::task::spawn_blocking(move || {
        let parsed =
            PasswordHash::new(&hash).map_err(|e| PasswordHashError::Stored(e.to_string()))?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_salted_and_verify() {
        let a = hash_password("correct horse".into()).await.unwrap();
        let b = hash_password("correct horse".into()).await.unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "random salt");
        assert!(
            verify_password("correct horse".into(), a.clone().into())
                .await
                .unwrap()
        );
        assert!(
            !verify_password("wrong horse".into(), a.into())
                .await
                .unwrap()
        );
    }
}
