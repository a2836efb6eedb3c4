//! Tracing subscriber: JSON for log shippers, pretty for people. `RUST_LOG` beats the
//! configured level. Messages carry ids as fields (`order.id`), never secrets or bodies.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber. Calling it twice is harmless (the second call is ignored),
/// which keeps tests that start several apps in one process simple.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match settings.format {
        LogFormat::Json => registry
            .with(fmt::layer().json().with_current_span(false))
            .try_init(),
        LogFormat::Pretty => registry.with(fmt::layer().compact()).try_init(),
    };
    // Already installed (a second app in the same test process): keep the first one.
    drop(result);
}

/// Lets one log line through per interval and counts the ones held back, so a store
/// outage logs a line every few seconds (with how many were held back) instead of one
/// per request. One per call site, as a `static`.
pub struct LogThrottle {
    every: std::time::Duration,
    state: std::sync::Mutex<ThrottleState>,
}

struct ThrottleState {
    last: Option<std::time::Instant>,
    held_back: u64,
}

impl LogThrottle {
    pub const fn new(every: std::time::Duration) -> Self {
        Self {
            every,
            state: std::sync::Mutex::new(ThrottleState {
                last: None,
                held_back: 0,
            }),
        }
    }

    /// Some(lines held back since the last one) when this line may be logged.
    pub fn admit(&self) -> Option<u64> {
        let Ok(mut state) = self.state.lock() else {
            return Some(0);
        };
        let now = std::time::Instant::now();
        if state
            .last
            .is_some_and(|last| now.duration_since(last) < self.every)
        {
            state.held_back += 1;
            return None;
        }
        state.last = Some(now);
        Some(std::mem::take(&mut state.held_back))
    }
}

/// How often a throttled log line repeats at most.
pub const REPEATED_ERROR_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::LogThrottle;

    #[test]
    fn one_line_per_interval_with_the_count_held_back() {
        let throttle = LogThrottle::new(Duration::from_millis(200));
        assert_eq!(throttle.admit(), Some(0));
        for _ in 0..1000 {
            assert_eq!(throttle.admit(), None);
        }
        std::thread::sleep(Duration::from_millis(220));
        assert_eq!(throttle.admit(), Some(1000));
        assert_eq!(throttle.admit(), None);
    }
}
