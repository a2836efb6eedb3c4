//! Runs a cheap housekeeping step every few seconds until shutdown (forgetting the rate
//! buckets of clients gone quiet, for one).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub async fn run(step: impl Fn() + Send, every: Duration, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => step(),
            () = stop.cancelled() => return,
        }
    }
}
