//! The waiting room of a drop: shoppers join before or during the sale, those who came
//! before the opening are put in a random order by a recorded draw, everyone is
//! admitted at the sale's rate, and an admitted shopper buys with a signed pass. Every
//! step is a script on the sale's Redis state, so any api instance serves any shopper
//! and a restart loses nothing.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGaugeVec, Opts};
use serde::Serialize;
use utoipa::ToSchema;

use crate::adapters::redis::RedisError;
use crate::adapters::redis::notifier::PaymentNotifier;
use crate::adapters::redis::waiting_room::{Admission, RoomState, Standing, WaitingRoomStore};
use crate::domain::coupon::CouponId;
use crate::domain::failure::Failure;
use crate::domain::identity::UserId;
use crate::domain::order::{PurchaseError, PurchaseRejection};
use crate::domain::waiting_room::{PassSigner, lottery_order};

/// Pushes sent at once when a batch of shoppers is admitted or the sale sells out.
const PUSHES_AT_ONCE: usize = 64;

/// Where a shopper stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QueueState {
    NotJoined,
    /// Joined before the opening: the draw at the opening gives the place.
    Drawing,
    Waiting,
    /// May buy now, with `pass`.
    Admitted,
    SoldOut,
}

/// A shopper's place in a sale's waiting room.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QueueStatus {
    pub coupon_id: CouponId,
    pub state: QueueState,
    /// The shopper's number in the queue (1 is first); null before the draw.
    pub queue_number: Option<i64>,
    /// Shoppers before this one not yet admitted.
    pub ahead: Option<i64>,
    /// Shoppers admitted per second.
    pub admit_per_sec: i64,
    /// Seconds until this shopper's turn at the admission rate.
    pub estimate_secs: Option<i64>,
    /// Send as `X-Admission-Pass` with the purchase; only when admitted.
    pub pass: Option<String>,
    pub pass_expires_at: Option<DateTime<Utc>>,
}

/// What the catalog says of a sale's room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomTerms {
    pub admit_per_sec: i64,
    pub opens_at: DateTime<Utc>,
}

/// A sale's room as an operator sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RoomView {
    pub coupon_id: CouponId,
    /// The draw's seed (a decimal u64), null before the opening: with the early
    /// arrivals' account ids it reproduces their order.
    pub seed: Option<String>,
    /// Early arrivals the draw ordered.
    pub drawn: i64,
    /// Everyone given a place so far.
    pub queued: i64,
    /// Places admitted so far (1 to this).
    pub admitted: i64,
    pub sold_out: bool,
}

#[derive(Clone)]
pub struct WaitingRoomMetrics {
    waiting: IntGaugeVec,
    admitted: IntCounterVec,
    wait: Histogram,
}

impl WaitingRoomMetrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        Ok(Self {
            waiting: IntGaugeVec::new(
                Opts::new(
                    "waiting_room_queued",
                    "Shoppers with a place in a sale's waiting room not yet admitted",
                ),
                &["coupon"],
            )?,
            admitted: IntCounterVec::new(
                Opts::new(
                    "waiting_room_admitted_total",
                    "Shoppers admitted from a sale's waiting room",
                ),
                &["coupon"],
            )?,
            wait: Histogram::with_opts(
                HistogramOpts::new(
                    "waiting_room_wait_seconds",
                    "From joining a waiting room to first seeing the admission",
                )
                .buckets(vec![
                    0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0,
                ]),
            )?,
        })
    }

    pub fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.waiting.clone()),
            Box::new(self.admitted.clone()),
            Box::new(self.wait.clone()),
        ]
    }
}

pub struct WaitingRooms {
    store: WaitingRoomStore,
    passes: PassSigner,
    notifier: PaymentNotifier,
    pass_ttl: Duration,
    metrics: WaitingRoomMetrics,
}

fn unavailable(e: RedisError) -> PurchaseError {
    PurchaseError::Unavailable(Failure::from(e))
}

impl WaitingRooms {
    pub fn new(
        store: WaitingRoomStore,
        passes: PassSigner,
        notifier: PaymentNotifier,
        pass_ttl: Duration,
        metrics: WaitingRoomMetrics,
    ) -> Self {
        Self {
            store,
            passes,
            notifier,
            pass_ttl,
            metrics,
        }
    }

    /// The room's rate and opening; `NoWaitingRoom` for a coupon without one (or
    /// unknown: the join answers that more precisely).
    pub async fn terms(&self, coupon: CouponId) -> Result<RoomTerms, PurchaseError> {
        let (admit_per_sec, opens_ms) = self
            .store
            .terms(coupon)
            .await
            .map_err(unavailable)?
            .ok_or(PurchaseRejection::NoWaitingRoom)?;
        Ok(RoomTerms {
            admit_per_sec,
            opens_at: DateTime::from_timestamp_millis(opens_ms).unwrap_or_default(),
        })
    }

    /// Takes a place (or answers the one taken before). A shopper who comes after the
    /// opening holds the draw if no instance has yet, so the place is known at once.
    pub async fn join(
        &self,
        user: &UserId,
        coupon: CouponId,
        terms: RoomTerms,
    ) -> Result<QueueStatus, PurchaseError> {
        let standing = rejected(self.store.join(coupon, user).await.map_err(unavailable)?)?;
        if standing == Standing::Drawing && Utc::now() >= terms.opens_at {
            self.draw(coupon).await.map_err(unavailable)?;
        }
        self.status(user, coupon, terms.admit_per_sec).await
    }

    pub async fn status(
        &self,
        user: &UserId,
        coupon: CouponId,
        admit_per_sec: i64,
    ) -> Result<QueueStatus, PurchaseError> {
        let standing = rejected(
            self.store
                .standing(coupon, user)
                .await
                .map_err(unavailable)?,
        )?;
        let mut status = QueueStatus {
            coupon_id: coupon,
            state: QueueState::NotJoined,
            queue_number: None,
            ahead: None,
            admit_per_sec,
            estimate_secs: None,
            pass: None,
            pass_expires_at: None,
        };
        match standing {
            Standing::Drawing => status.state = QueueState::Drawing,
            Standing::Queued { place, cursor } => {
                let ahead = (place - cursor - 1).max(0);
                status.state = QueueState::Waiting;
                status.queue_number = Some(place);
                status.ahead = Some(ahead);
                status.estimate_secs = Some((ahead + admit_per_sec) / admit_per_sec.max(1));
            }
            Standing::Admitted {
                place,
                admitted_ms,
                joined_ms,
            } => {
                if let Some(joined_ms) = joined_ms {
                    self.metrics
                        .wait
                        .observe((admitted_ms - joined_ms).max(0) as f64 / 1000.0);
                }
                let ttl_ms = i64::try_from(self.pass_ttl.as_millis()).unwrap_or(i64::MAX);
                let expires_ms = admitted_ms.saturating_add(ttl_ms);
                status.state = QueueState::Admitted;
                status.queue_number = Some(place);
                status.ahead = Some(0);
                status.estimate_secs = Some(0);
                status.pass = Some(self.passes.sign(user, coupon, expires_ms));
                status.pass_expires_at = DateTime::from_timestamp_millis(expires_ms);
            }
            Standing::SoldOut { place } => {
                status.state = QueueState::SoldOut;
                status.queue_number = Some(place);
            }
            _ => {}
        }
        Ok(status)
    }

    /// One step of a sale's room: the draw once the sale has opened, then admissions at
    /// its rate, and the pushes that tell the shoppers.
    pub async fn tick(&self, coupon: CouponId, opens_at: DateTime<Utc>) -> Result<(), RedisError> {
        let label = coupon.to_string();
        match self.store.admit(coupon).await? {
            Admission::NotDrawn => {
                if Utc::now() >= opens_at {
                    self.draw(coupon).await?;
                }
            }
            Admission::Admitted { from, to, tail } => {
                self.metrics
                    .waiting
                    .with_label_values(&[&label])
                    .set(tail - to);
                if to > from {
                    self.metrics
                        .admitted
                        .with_label_values(&[&label])
                        .inc_by(u64::try_from(to - from).unwrap_or(0));
                    self.push(coupon, from + 1, to, "admitted").await?;
                }
            }
            Admission::SoldOut {
                cursor,
                tail,
                first,
            } => {
                self.metrics.waiting.with_label_values(&[&label]).set(0);
                if first && tail > cursor {
                    tracing::info!(
                        coupon.id = %coupon,
                        told = tail - cursor,
                        "sold out: telling everyone still queued"
                    );
                    self.push(coupon, cursor + 1, tail, "sold_out").await?;
                }
            }
        }
        Ok(())
    }

    async fn draw(&self, coupon: CouponId) -> Result<(), RedisError> {
        let early = self.store.early_arrivals(coupon).await?;
        let seed = u64::from_le_bytes(
            uuid::Uuid::new_v4().as_bytes()[..8]
                .try_into()
                .unwrap_or([0; 8]),
        );
        let order = lottery_order(early, seed);
        if self.store.draw(coupon, seed, &order).await? {
            tracing::info!(
                coupon.id = %coupon,
                seed,
                early_arrivals = order.len(),
                "waiting room drawn: early arrivals sorted by account id, shuffled by the seed"
            );
        }
        Ok(())
    }

    /// Tells the shoppers at places `from ..= to` (lossy, like payment results: the
    /// queue endpoint always answers).
    async fn push(
        &self,
        coupon: CouponId,
        from: i64,
        to: i64,
        state: &'static str,
    ) -> Result<(), RedisError> {
        let users = self.store.users_at(coupon, from, to).await?;
        futures_util::stream::iter(users)
            .for_each_concurrent(PUSHES_AT_ONCE, |user| async move {
                let Ok(user) = UserId::parse(&user) else {
                    return;
                };
                if let Err(error) = self
                    .notifier
                    .notify_waiting_room(&user, coupon, state)
                    .await
                {
                    tracing::debug!(%error, "waiting room push failed");
                }
            })
            .await;
        Ok(())
    }

    pub async fn room(&self, coupon: CouponId) -> Result<RoomView, PurchaseError> {
        let RoomState {
            seed,
            drawn,
            tail,
            cursor,
            sold_out,
        } = self.store.state(coupon).await.map_err(unavailable)?;
        Ok(RoomView {
            coupon_id: coupon,
            seed: seed.map(|s| s.to_string()),
            drawn,
            queued: tail,
            admitted: cursor,
            sold_out,
        })
    }
}

fn rejected(standing: Standing) -> Result<Standing, PurchaseError> {
    match standing {
        Standing::CouponNotFound => Err(PurchaseRejection::CouponNotFound.into()),
        Standing::SaleEnded => Err(PurchaseRejection::SaleEnded.into()),
        Standing::NoWaitingRoom => Err(PurchaseRejection::NoWaitingRoom.into()),
        other => Ok(other),
    }
}
