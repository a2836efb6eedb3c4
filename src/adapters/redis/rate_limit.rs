//! Fixed-window counters: login attempts per e-mail and per client IP, sign-ups per
//! client IP and in total. Both fail open when Redis is down (logged): they limit
//! abuse, they must not lock everyone out.

use prometheus::IntCounter;
use sha2::{Digest, Sha256};

use super::{Keys, RedisPool};
use crate::domain::identity::IdentityError;
use crate::telemetry::{LogThrottle, REPEATED_ERROR_EVERY};

/// Length of a counting window.
const WINDOW_SECS: u64 = 60;

pub struct LoginLimiter {
    redis: RedisPool,
    keys: Keys,
    per_email: u32,
    per_ip: u32,
    /// Attempts let through unchecked because Redis did not answer.
    fail_open: IntCounter,
}

fn digest(value: &str) -> String {
    let hash = Sha256::digest(value.as_bytes());
    hash.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

impl LoginLimiter {
    pub fn new(
        redis: RedisPool,
        keys: Keys,
        [per_email, per_ip]: [u32; 2],
        fail_open: IntCounter,
    ) -> Self {
        Self {
            redis,
            keys,
            per_email,
            per_ip,
            fail_open,
        }
    }

    /// Forgets an e-mail's failed attempts after a successful login (the per-IP count
    /// stays). Best effort.
    pub async fn forget_email(&self, email: &str) {
        let key = self.keys.login_attempts_email(&digest(email));
        let forgotten = self
            .redis
            .run(|mut conn| async move {
                deadpool_redis::redis::cmd("DEL")
                    .arg(key)
                    .query_async::<()>(&mut conn)
                    .await
            })
            .await;
        if let Err(error) = forgotten {
            tracing::debug!(%error, "could not reset the login counter");
        }
    }

    /// Counts one attempt for `email` and `ip`; `TooManyAttempts` once either is over its
    /// limit in the current window. If Redis is down the attempt is allowed (and logged):
    /// the limiter protects against guessing, it must not lock everyone out.
    pub async fn attempt(&self, email: &str, ip: &str) -> Result<(), IdentityError> {
        let email_key = self.keys.login_attempts_email(&digest(email));
        let ip_key = self.keys.login_attempts_ip(&digest(ip));
        count_window(
            &self.redis,
            [(email_key, self.per_email), (ip_key, self.per_ip)],
            "login",
            &self.fail_open,
        )
        .await
    }
}

/// Limits sign-ups: unlimited accounts would make per-user purchase limits meaningless,
/// and each sign-up costs a password hash.
pub struct RegistrationLimiter {
    redis: RedisPool,
    keys: Keys,
    per_ip: u32,
    total: u32,
    fail_open: IntCounter,
}

impl RegistrationLimiter {
    pub fn new(
        redis: RedisPool,
        keys: Keys,
        [per_ip, total]: [u32; 2],
        fail_open: IntCounter,
    ) -> Self {
        Self {
            redis,
            keys,
            per_ip,
            total,
            fail_open,
        }
    }

    /// Counts one sign-up from `ip`; `TooManyAttempts` once this IP or everyone together
    /// is over the limit in the current window.
    pub async fn attempt(&self, ip: &str) -> Result<(), IdentityError> {
        let ip_key = self.keys.registrations_ip(&digest(ip));
        let all_key = self.keys.registrations_all();
        count_window(
            &self.redis,
            [(ip_key, self.per_ip), (all_key, self.total)],
            "sign-up",
            &self.fail_open,
        )
        .await
    }
}

/// Counts one event on each key (a window of [`WINDOW_SECS`] starting at its first
/// event); `TooManyAttempts` once any key is over its limit, with the time until that
/// window ends. Allows the event when Redis does not answer.
async fn count_window(
    redis: &RedisPool,
    limits: [(String, u32); 2],
    what: &'static str,
    fail_open: &IntCounter,
) -> Result<(), IdentityError> {
    // One pipeline per key (the keys live in different slots of a cluster), sent at once.
    let counted = futures_util::future::try_join_all(limits.iter().map(|(key, _)| {
        let key = key.clone();
        redis.run(|mut conn| async move {
            let mut pipe = deadpool_redis::redis::pipe();
            pipe.incr(&key, 1)
                .cmd("EXPIRE")
                .arg(&key)
                .arg(WINDOW_SECS)
                .arg("NX")
                .ignore()
                .ttl(&key);
            // One reply per command not ignored: the count, then the TTL.
            pipe.query_async::<Vec<i64>>(&mut conn).await
        })
    }))
    .await;
    let counts: Vec<i64> = match counted {
        Ok(counts) => counts.concat(),
        Err(error) => {
            fail_open.inc();
            static THROTTLE: LogThrottle = LogThrottle::new(REPEATED_ERROR_EVERY);
            if let Some(held_back) = THROTTLE.admit() {
                tracing::warn!(%error, limiter = what, held_back, "rate limiter unavailable; allowing the attempt");
            }
            return Ok(());
        }
    };
    for ((_, limit), reply) in limits.iter().zip(counts.chunks(2)) {
        let (count, ttl) = (reply[0], reply.get(1).copied().unwrap_or(-1));
        if count > i64::from(*limit) {
            return Err(IdentityError::TooManyAttempts {
                retry_after_secs: u64::try_from(ttl).unwrap_or(WINDOW_SECS).max(1),
            });
        }
    }
    Ok(())
}
