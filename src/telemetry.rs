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
