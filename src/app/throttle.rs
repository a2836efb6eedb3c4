//! Token buckets per key (an account, a client IP) in this instance's memory, from the
//! `governor` crate (GCRA, the token bucket without a refill task).
//!
//! In memory rather than in Redis: a refused request then costs no Redis round trip and
//! no script run, which is the point when one client floods. The price is that each api
//! or ws instance counts on its own, so behind N instances a client gets at most N times
//! the rate; the edge proxy's per-IP limit is the global one.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use prometheus::IntCounterVec;

use crate::domain::identity::UserId;

/// A request refused because its account or client asks too often; nothing was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many requests from this account or client")]
pub struct Throttled {
    pub retry_after_secs: u64,
}

/// How often a bucket is refilled and how many requests it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_sec: u32,
    pub burst: u32,
}

/// One token bucket per key. Buckets that have refilled completely are forgotten by
/// [`Throttle::forget_idle`], so memory follows the clients active in the last seconds.
pub struct Throttle {
    buckets: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

impl Throttle {
    /// `None` when either figure is 0 (no limit).
    pub fn new(rate: Rate) -> Option<Self> {
        let quota = Quota::per_second(NonZeroU32::new(rate.per_sec)?)
            .allow_burst(NonZeroU32::new(rate.burst)?);
        Some(Self {
            buckets: RateLimiter::dashmap(quota),
            clock: DefaultClock::default(),
        })
    }

    /// Takes one token from `key`'s bucket; when it is empty, the wait until the next.
    pub fn take(&self, key: &str) -> Result<(), Duration> {
        self.buckets
            .check_key(&key.to_owned())
            .map_err(|empty| empty.wait_time_from(self.clock.now()))
    }

    /// Drops the buckets that are full again (their clients went quiet).
    pub fn forget_idle(&self) {
        self.buckets.retain_recent();
        self.buckets.shrink_to_fit();
    }
}

/// Admission by account and by client IP, each with its own bucket, counted in a
/// `<name>_throttled_total{limit="user"|"ip"}` counter.
pub struct Admission {
    per_user: Option<Throttle>,
    per_ip: Option<Throttle>,
    throttled: IntCounterVec,
}

impl Admission {
    /// A rate of 0 turns that limit off.
    pub fn new(
        name: &str,
        help: &str,
        per_user: Rate,
        per_ip: Rate,
    ) -> Result<Self, prometheus::Error> {
        let throttled = IntCounterVec::new(
            prometheus::Opts::new(format!("{name}_throttled_total"), help),
            &["limit"],
        )?;
        Ok(Self {
            per_user: Throttle::new(per_user),
            per_ip: Throttle::new(per_ip),
            throttled,
        })
    }

    pub fn collector(&self) -> Box<dyn prometheus::core::Collector> {
        Box::new(self.throttled.clone())
    }

    /// Takes a token from the client IP's bucket, then from the account's.
    pub fn admit(&self, user: &UserId, client_ip: &str) -> Result<(), Throttled> {
        self.admit_ip(client_ip)?;
        self.admit_user(user)
    }

    /// The account's bucket alone.
    pub fn admit_user(&self, user: &UserId) -> Result<(), Throttled> {
        self.take(&self.per_user, user.as_str(), "user")
    }

    /// The IP's bucket alone, for a request not yet authenticated.
    pub fn admit_ip(&self, client_ip: &str) -> Result<(), Throttled> {
        self.take(&self.per_ip, client_ip, "ip")
    }

    fn take(&self, throttle: &Option<Throttle>, key: &str, limit: &str) -> Result<(), Throttled> {
        match throttle.as_ref().map(|t| t.take(key)) {
            Some(Err(wait)) => {
                self.throttled.with_label_values(&[limit]).inc();
                Err(Throttled {
                    retry_after_secs: retry_after_secs(wait),
                })
            }
            _ => Ok(()),
        }
    }

    /// Forgets the buckets of clients gone quiet; called every few seconds.
    pub fn forget_idle(&self) {
        for throttle in [&self.per_user, &self.per_ip].into_iter().flatten() {
            throttle.forget_idle();
        }
    }
}

/// The whole seconds a client should wait, at least 1 (`Retry-After` has no fractions).
fn retry_after_secs(wait: Duration) -> u64 {
    u64::try_from(wait.as_millis().div_ceil(1000))
        .unwrap_or(u64::MAX)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_holds_its_burst_then_refuses_with_a_wait() {
        let throttle = Throttle::new(Rate {
            per_sec: 1,
            burst: 3,
        })
        .unwrap();
        for _ in 0..3 {
            throttle.take("bot").unwrap();
        }
        let wait = throttle.take("bot").unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        // Another key has its own bucket.
        throttle.take("shopper").unwrap();
        assert_eq!(throttle.buckets.len(), 2);
    }

    #[test]
    fn zero_means_no_limit() {
        assert!(
            Throttle::new(Rate {
                per_sec: 0,
                burst: 5
            })
            .is_none()
        );
        assert!(
            Throttle::new(Rate {
                per_sec: 5,
                burst: 0
            })
            .is_none()
        );
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1_001)), 2);
    }
}
