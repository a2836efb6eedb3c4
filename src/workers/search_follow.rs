//! An api instance with its own search index looks every `catalog.search.follow_ms`
//! for the coupon changes made elsewhere and applies them.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::app::catalog::Catalog;
use crate::telemetry::{LogThrottle, REPEATED_ERROR_EVERY};

pub async fn run(catalog: Arc<Catalog>, every: Duration, stop: CancellationToken) {
    static THROTTLE: LogThrottle = LogThrottle::new(REPEATED_ERROR_EVERY);
    let mut timer = tokio::time::interval(every);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = timer.tick() => {}
        }
        match catalog.follow_search_changes().await {
            Ok(0) => {}
            Ok(applied) => tracing::debug!(coupons = applied, "search index caught up"),
            Err(error) => {
                if let Some(held_back) = THROTTLE.admit() {
                    tracing::warn!(
                        error = crate::domain::failure::chain(&error),
                        held_back,
                        "cannot follow the coupon changes; searches may lag until MySQL answers"
                    );
                }
            }
        }
    }
}
