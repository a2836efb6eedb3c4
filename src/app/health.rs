//! Readiness: every dependency of this process probed, concurrently and bounded.

use std::time::Duration;

use serde::Serialize;

use crate::adapters::Adapters;

/// The outcome of probing one dependency.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Check {
    /// `mysql`, `redis`, `kafka` or `object_store`.
    pub dependency: &'static str,
    pub ok: bool,
    /// Why the probe failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub error: Option<String>,
    pub latency_ms: u64,
}

/// Bound on each dependency probe (`/readyz`, the health gauges).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Health {
    adapters: Adapters,
}

impl Health {
    pub fn new(adapters: Adapters) -> Self {
        Self { adapters }
    }

    /// One check per dependency this process holds, each within `timeout`.
    pub async fn checks(&self, timeout: Duration) -> Vec<Check> {
        self.adapters
            .readiness(timeout)
            .await
            .into_iter()
            .map(|status| Check {
                dependency: status.dependency.name(),
                ok: status.ok,
                error: status.error,
                latency_ms: status.latency_ms,
            })
            .collect()
    }
}
