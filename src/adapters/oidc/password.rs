//! argon2id password hashing, on the blocking pool: one hash takes tens of milliseconds
//! of CPU and must not stall the async workers. At most one hash per core runs at a
//! time (each holds 19 MiB); a request that cannot get a turn soon is told the server
//! is busy, so a flood of sign-ups or logins costs bounded memory.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug, thiserror::Error)]
pub enum PasswordHashError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("stored password hash is not a PHC string: {0}")]
    Stored(String),
    #[error("hashing task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("every password hashing slot is busy")]
    Busy,
}

/// Hashes running at once: more than the cores only adds memory.
static SLOTS: LazyLock<Arc<Semaphore>> = LazyLock::new(|| {
    Arc::new(Semaphore::new(
        std::thread::available_parallelism().map_or(2, |n| n.get()),
    ))
});

/// Longest wait for a hashing slot.
const SLOT_WAIT: Duration = Duration::from_secs(1);

/// A turn to hash, held by the blocking task itself (a caller that gives up does not
/// free it early).
async fn slot() -> Result<OwnedSemaphorePermit, PasswordHashError> {
    tokio::time::timeout(SLOT_WAIT, SLOTS.clone().acquire_owned())
        .await
        .map_err(|_| PasswordHashError::Busy)?
        .map_err(|_| PasswordHashError::Busy)
}

/// Hashes with argon2id and the crate's defaults (m = 19 MiB, t = 2, p = 1: OWASP's
/// baseline) and a random salt; returns the PHC string.
pub async fn hash_password(password: String) -> Result<String, PasswordHashError> {
    let slot = slot().await?;
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|e| PasswordHashError::Hash(e.to_string()))
    })
    .await?
}

/// Checks a password against a stored PHC string (its own parameters apply).
pub async fn verify_password(password: String, hash: Arc<str>) -> Result<bool, PasswordHashError> {
    let slot = slot().await?;
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
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
