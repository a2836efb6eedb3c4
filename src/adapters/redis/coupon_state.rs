//! A coupon's sale state in Redis: the real-time stock string the purchase script
//! decrements, and the meta hash (limit, window, deleted) it checks.

use deadpool_redis::redis::{self, AsyncCommands};

use super::scripts::WARM_UP;
use super::{Keys, RedisError, RedisPool};
use crate::domain::coupon::{Coupon, CouponId};

/// What a warm-up did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarmUp {
    /// The sale state is in Redis as the coupon says; `stock` remains.
    Written { stock: i64 },
    /// The sale had a state that is gone: nothing was written (a reconcile rebuilds it).
    StateLost,
    /// Units are sold, so the stock cannot follow a new total: nothing was written.
    TotalFixedBySales { stock: i64 },
}

#[derive(Clone)]
pub struct CouponState {
    redis: RedisPool,
    keys: Keys,
}

impl CouponState {
    pub fn new(redis: RedisPool, keys: Keys) -> Self {
        Self { redis, keys }
    }

    /// Writes the sale's limit, window, deleted flag and price; creates the stock only
    /// when `may_create` (the sale's state never existed), and lets it follow a changed
    /// total only while nothing is sold (`lua/warm_up.lua`).
    pub async fn warm_up(&self, coupon: &Coupon, may_create: bool) -> Result<WarmUp, RedisError> {
        let id = coupon.id.get();
        let invocation = {
            let mut script = WARM_UP.prepare_invoke();
            script
                .key(self.keys.coupon_stock(id))
                .key(self.keys.coupon_meta(id))
                .key(self.keys.coupon_buyers(id))
                .arg(coupon.total_quantity)
                .arg(coupon.per_user_limit)
                .arg(coupon.sale.starts_at.timestamp_millis())
                .arg(coupon.sale.ends_at.timestamp_millis())
                .arg(i32::from(coupon.is_deleted))
                .arg(i32::from(may_create))
                .arg(coupon.price_cents)
                .arg(coupon.sale.state_expires_at_ms())
                .arg(coupon.waiting_room_per_sec.unwrap_or(0));
            script
        };
        let (code, stock): (i64, i64) = self
            .redis
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        Ok(match code {
            1 => WarmUp::Written { stock },
            -2 => WarmUp::TotalFixedBySales { stock },
            _ => WarmUp::StateLost,
        })
    }

    /// Real-time remaining stock; `None` when the coupon's sale is not in Redis.
    pub async fn stock(&self, id: CouponId) -> Result<Option<i64>, RedisError> {
        let key = self.keys.coupon_stock(id.get());
        self.redis
            .run(|mut conn| async move { conn.get(key).await })
            .await
    }

    /// The real-time stock and whether the sale state says the coupon is deleted, in one
    /// round trip; `None` when Redis holds no sale state for it.
    pub async fn live_stock(&self, id: CouponId) -> Result<Option<(i64, bool)>, RedisError> {
        let (meta, stock) = (
            self.keys.coupon_meta(id.get()),
            self.keys.coupon_stock(id.get()),
        );
        let (deleted, stock): (Option<String>, Option<i64>) = self
            .redis
            .run_shared(|mut conn| async move {
                redis::pipe()
                    .hget(meta, "deleted")
                    .get(stock)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        Ok(match (deleted, stock) {
            (Some(deleted), Some(stock)) => Some((stock, deleted == "1")),
            _ => None,
        })
    }

    /// Remaining stock of several coupons in one round trip.
    pub async fn stocks(&self, ids: &[CouponId]) -> Result<Vec<Option<i64>>, RedisError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids
            .iter()
            .map(|id| self.keys.coupon_stock(id.get()))
            .collect();
        self.redis
            .run(
                |mut conn| async move { redis::cmd("MGET").arg(keys).query_async(&mut conn).await },
            )
            .await
    }
}
