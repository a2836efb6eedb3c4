//! The payment role: its worker pool, consumer group and simulated gateway.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentSettings {
    /// Payments running at once.
    pub pool_size: usize,
    /// Payments waiting for a worker; when full, the consumer waits (backpressure).
    pub queue: usize,
    /// Simulated gateway: time per charge and share of declined charges (0.0-1.0).
    pub gateway_latency_ms: u64,
    pub gateway_failure_rate: f64,
    /// Seed of the simulated gateway's decisions (same seed, same outcomes).
    pub gateway_seed: u64,
    /// Consumer group of the payment instances (the topic prefix is prepended).
    pub group_id: String,
    /// A payment instance silent this long leaves the group; its partitions move.
    pub session_timeout_ms: u64,
    /// How long one fetch waits for new events.
    pub fetch_max_wait_ms: u64,
}
