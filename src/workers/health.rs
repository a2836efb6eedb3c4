//! Readiness as metrics: every few seconds the instance probes its stores, as /readyz
//! does, and sets `dependency_up` and `ready`, so an alert can say which store an instance
//! cannot reach and whether a role has any ready instance left.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::app::health::{Health, PROBE_TIMEOUT};
use crate::metrics::HealthGauges;
use crate::shutdown::Draining;

pub async fn run(
    health: Health,
    gauges: HealthGauges,
    draining: Draining,
    interval: Duration,
    stop: CancellationToken,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let checks = health.checks(PROBE_TIMEOUT).await;
        for check in &checks {
            gauges
                .dependency_up
                .with_label_values(&[check.dependency])
                .set(i64::from(check.ok));
        }
        let ready = !draining.is_set() && checks.iter().all(|c| c.ok);
        gauges.ready.set(i64::from(ready));
    }
}
