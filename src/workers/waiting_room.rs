//! The waiting rooms' steps on a timer in the api role: the list of open rooms from
//! MySQL every two seconds, each room's step (draw, admissions, pushes) every tick.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::adapters::mysql::{MysqlPool, coupons};
use crate::app::waiting_room::WaitingRooms;
use crate::domain::coupon::CouponId;
use crate::telemetry::{LogThrottle, REPEATED_ERROR_EVERY};

/// How often the list of rooms to step is read again.
const REFRESH: Duration = Duration::from_secs(2);

/// Every api instance runs this; the steps are atomic and take only what time earned,
/// so several instances never admit twice.
pub async fn run(
    rooms: Arc<WaitingRooms>,
    mysql: MysqlPool,
    tick: Duration,
    stop: CancellationToken,
) {
    static THROTTLE: LogThrottle = LogThrottle::new(REPEATED_ERROR_EVERY);
    let mut open: Vec<(CouponId, DateTime<Utc>)> = Vec::new();
    let mut refreshed: Option<tokio::time::Instant> = None;
    let mut timer = tokio::time::interval(tick);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = timer.tick() => {}
        }
        if refreshed.is_none_or(|at| at.elapsed() >= REFRESH) {
            let found = mysql
                .with_conn(async |conn| coupons::waiting_rooms(conn, Utc::now()).await)
                .await;
            match found {
                Ok(found) => open = found,
                Err(error) => {
                    if let Some(held_back) = THROTTLE.admit() {
                        tracing::warn!(%error, held_back, "cannot list the waiting rooms");
                    }
                }
            }
            refreshed = Some(tokio::time::Instant::now());
        }
        for (coupon, opens_at) in &open {
            if let Err(error) = rooms.tick(*coupon, *opens_at).await
                && let Some(held_back) = THROTTLE.admit()
            {
                tracing::warn!(coupon.id = %coupon, %error, held_back, "waiting room step failed");
            }
        }
    }
}
