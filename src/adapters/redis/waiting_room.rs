//! A sale's waiting room in Redis, in the coupon's hash tag: the pre-queue of early
//! arrivals, the queue (user -> place), and the state (seed of the draw, tail, the
//! admission cursor and its clock). The scripts of `lua/wr_*.lua` keep each step atomic,
//! so any api instance may run any of them.

use deadpool_redis::redis::{self, AsyncCommands};

use super::scripts::{WR_ADMIT, WR_DRAW, WR_JOIN, WR_STATUS};
use super::{Keys, RedisError, RedisPool};
use crate::domain::coupon::CouponId;
use crate::domain::identity::UserId;

/// Where a shopper stands, as the scripts answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    NotJoined,
    /// In the pre-queue: the draw at the opening decides the place.
    Drawing,
    Queued {
        place: i64,
        cursor: i64,
    },
    /// The cursor passed the place: may buy with a pass; `joined_ms` only on the first
    /// look after admission (for the wait-time metric).
    Admitted {
        place: i64,
        admitted_ms: i64,
        joined_ms: Option<i64>,
    },
    SoldOut {
        place: i64,
    },
    CouponNotFound,
    SaleEnded,
    NoWaitingRoom,
}

/// What one admission step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    NotDrawn,
    /// Places `from + 1 ..= to` were admitted now (none when equal).
    Admitted {
        from: i64,
        to: i64,
        tail: i64,
    },
    /// The stock is gone; `first`: this step found it so (tell the queue).
    SoldOut {
        cursor: i64,
        tail: i64,
        first: bool,
    },
}

/// The room as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoomState {
    pub seed: Option<u64>,
    /// Early arrivals put in order by the draw.
    pub drawn: i64,
    pub tail: i64,
    pub cursor: i64,
    pub sold_out: bool,
}

/// The state hash's seed, drawn, tail, cursor and sold-out flag.
type StateFields = (
    Option<u64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<String>,
);

#[derive(Clone)]
pub struct WaitingRoomStore {
    redis: RedisPool,
    keys: Keys,
}

impl WaitingRoomStore {
    pub fn new(redis: RedisPool, keys: Keys) -> Self {
        Self { redis, keys }
    }

    fn key(&self, coupon: CouponId, part: &str) -> String {
        self.keys.waiting_room(coupon.get(), part)
    }

    pub async fn join(&self, coupon: CouponId, user: &UserId) -> Result<Standing, RedisError> {
        let mut invocation = WR_JOIN.prepare_invoke();
        invocation
            .key(self.keys.coupon_meta(coupon.get()))
            .key(self.key(coupon, "state"))
            .key(self.key(coupon, "pre"))
            .key(self.key(coupon, "queue"))
            .key(self.key(coupon, "joined"))
            .arg(user.as_str());
        let (code, place): (i64, i64) = self
            .redis
            .run_shared(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        Ok(match code {
            1 => Standing::Drawing,
            2 => Standing::Queued { place, cursor: 0 },
            other => rejection(other)?,
        })
    }

    pub async fn standing(&self, coupon: CouponId, user: &UserId) -> Result<Standing, RedisError> {
        let mut invocation = WR_STATUS.prepare_invoke();
        invocation
            .key(self.keys.coupon_meta(coupon.get()))
            .key(self.key(coupon, "state"))
            .key(self.key(coupon, "pre"))
            .key(self.key(coupon, "queue"))
            .key(self.keys.coupon_stock(coupon.get()))
            .key(self.key(coupon, "admitted"))
            .key(self.key(coupon, "joined"))
            .arg(user.as_str());
        let (code, place, cursor, _tail, admitted_ms, joined_ms): (i64, i64, i64, i64, i64, i64) =
            self.redis
                .run_shared(|mut conn| async move { invocation.invoke_async(&mut conn).await })
                .await?;
        Ok(match code {
            0 => Standing::NotJoined,
            1 => Standing::Drawing,
            2 => Standing::Queued { place, cursor },
            3 => Standing::Admitted {
                place,
                admitted_ms,
                joined_ms: (joined_ms > 0).then_some(joined_ms),
            },
            4 => Standing::SoldOut { place },
            other => rejection(other)?,
        })
    }

    /// The early arrivals waiting for the draw (arrival order is not kept: the draw
    /// sorts them).
    pub async fn early_arrivals(&self, coupon: CouponId) -> Result<Vec<String>, RedisError> {
        let key = self.key(coupon, "pre");
        self.redis
            .run(|mut conn| async move { conn.zrange(key, 0, -1).await })
            .await
    }

    /// Records the draw: `order` heads the queue. False when it was drawn before or the
    /// sale has not opened.
    pub async fn draw(
        &self,
        coupon: CouponId,
        seed: u64,
        order: &[String],
    ) -> Result<bool, RedisError> {
        let mut invocation = WR_DRAW.prepare_invoke();
        invocation
            .key(self.keys.coupon_meta(coupon.get()))
            .key(self.key(coupon, "state"))
            .key(self.key(coupon, "pre"))
            .key(self.key(coupon, "queue"))
            .arg(seed.to_string());
        for user in order {
            invocation.arg(user);
        }
        let tail: i64 = self
            .redis
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        Ok(tail >= 0)
    }

    /// Moves the admission cursor by what the rate earned since the last step.
    pub async fn admit(&self, coupon: CouponId) -> Result<Admission, RedisError> {
        let mut invocation = WR_ADMIT.prepare_invoke();
        invocation
            .key(self.keys.coupon_meta(coupon.get()))
            .key(self.key(coupon, "state"))
            .key(self.keys.coupon_stock(coupon.get()));
        let (code, from, to, tail): (i64, i64, i64, i64) = self
            .redis
            .run_shared(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        Ok(match code {
            -1 => Admission::NotDrawn,
            1 => Admission::Admitted { from, to, tail },
            2 | 3 => Admission::SoldOut {
                cursor: to,
                tail,
                first: code == 2,
            },
            other => {
                return Err(RedisError::Corrupt(format!(
                    "admission script returned code {other}"
                )));
            }
        })
    }

    /// The users at places `from ..= to`, in place order.
    pub async fn users_at(
        &self,
        coupon: CouponId,
        from: i64,
        to: i64,
    ) -> Result<Vec<String>, RedisError> {
        let key = self.key(coupon, "queue");
        self.redis
            .run(|mut conn| async move { conn.zrangebyscore(key, from, to).await })
            .await
    }

    /// The room's rate and opening from the sale's state; `None` when the coupon has no
    /// sale state or no waiting room (rate 0), so the room's endpoints never wait on the
    /// catalog's caches.
    pub async fn terms(&self, coupon: CouponId) -> Result<Option<(i64, i64)>, RedisError> {
        let key = self.keys.coupon_meta(coupon.get());
        let (rate, starts_ms, deleted): (Option<i64>, Option<i64>, Option<String>) = self
            .redis
            .run_shared(|mut conn| async move {
                redis::cmd("HMGET")
                    .arg(key)
                    .arg(&["wr_rate", "starts_ms", "deleted"])
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        Ok(match (rate, starts_ms, deleted.as_deref()) {
            (Some(rate), Some(starts_ms), Some("0")) if rate > 0 => Some((rate, starts_ms)),
            _ => None,
        })
    }

    pub async fn state(&self, coupon: CouponId) -> Result<RoomState, RedisError> {
        let key = self.key(coupon, "state");
        let (seed, drawn, tail, cursor, sold_out): StateFields = self
            .redis
            .run(|mut conn| async move {
                redis::cmd("HMGET")
                    .arg(key)
                    .arg(&["seed", "drawn", "tail", "cursor", "sold_out"])
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        Ok(RoomState {
            seed,
            drawn: drawn.unwrap_or(0),
            tail: tail.unwrap_or(0),
            cursor: cursor.unwrap_or(0),
            sold_out: sold_out.as_deref() == Some("1"),
        })
    }
}

fn rejection(code: i64) -> Result<Standing, RedisError> {
    match code {
        -1 => Ok(Standing::CouponNotFound),
        -3 => Ok(Standing::SaleEnded),
        -8 => Ok(Standing::NoWaitingRoom),
        other => Err(RedisError::Corrupt(format!(
            "waiting room script returned code {other}"
        ))),
    }
}
