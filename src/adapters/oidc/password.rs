//! argon2id password hashing on a few dedicated threads, one per core: one hash takes
//! tens of milliseconds of CPU and 19 MiB, and must not stall the async workers. A
//! fixed set of threads (not the blocking pool's hundreds) keeps the memory bounded
//! even after the allocator keeps freed blocks per thread; a request that cannot get a
//! turn within a second is told the server is busy, so a flood of sign-ups or logins
//! costs bounded memory and clear answers.

use std::sync::{Arc, LazyLock, Mutex, PoisonError, mpsc};
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

#[derive(Debug, thiserror::Error)]
pub enum PasswordHashError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("stored password hash is not a PHC string: {0}")]
    Stored(String),
    #[error("every password hashing slot is busy")]
    Busy,
}

type Job = Box<dyn FnOnce() + Send>;

/// The hashing threads and the turns to use them.
struct Hashers {
    jobs: mpsc::SyncSender<Job>,
    slots: Arc<Semaphore>,
}

static HASHERS: LazyLock<Hashers> = LazyLock::new(|| {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    // Holds as many jobs as there are turns, so handing one over never waits.
    let (jobs, queue) = mpsc::sync_channel::<Job>(threads);
    let queue = Arc::new(Mutex::new(queue));
    for n in 0..threads {
        let queue = queue.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("password-hash-{n}"))
            .spawn(move || {
                loop {
                    let next = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
                    match next {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                }
            });
        if let Err(error) = spawned {
            tracing::error!(%error, "could not start a password hashing thread");
        }
    }
    Hashers {
        jobs,
        slots: Arc::new(Semaphore::new(threads)),
    }
});

/// Longest wait for a turn to hash.
const SLOT_WAIT: Duration = Duration::from_secs(1);

/// Longest a hash may take once started (a stuck thread must not hang a request).
const HASH_DEADLINE: Duration = Duration::from_secs(30);

/// Runs `work` on a hashing thread once a turn is free; the turn is held by the job
/// itself (a caller that gives up does not free it early).
async fn on_hasher<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, PasswordHashError> {
    let slot: OwnedSemaphorePermit =
        tokio::time::timeout(SLOT_WAIT, HASHERS.slots.clone().acquire_owned())
            .await
            .map_err(|_| PasswordHashError::Busy)?
            .map_err(|_| PasswordHashError::Busy)?;
    let (done, result) = oneshot::channel();
    HASHERS
        .jobs
        .try_send(Box::new(move || {
            let _slot = slot;
            let _ = done.send(work());
        }))
        .map_err(|_| PasswordHashError::Busy)?;
    tokio::time::timeout(HASH_DEADLINE, result)
        .await
        .map_err(|_| PasswordHashError::Busy)?
        .map_err(|_| PasswordHashError::Busy)
}

/// Hashes with argon2id and the crate's defaults (m = 19 MiB, t = 2, p = 1: OWASP's
/// baseline) and a random salt; returns the PHC string.
pub async fn hash_password(password: String) -> Result<String, PasswordHashError> {
    on_hasher(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|e| PasswordHashError::Hash(e.to_string()))
    })
    .await?
}

/// Checks a password against a stored PHC string (its own parameters apply).
pub async fn verify_password(password: String, hash: Arc<str>) -> Result<bool, PasswordHashError> {
    on_hasher(move || {
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
