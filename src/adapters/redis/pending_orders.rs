//! Accepted purchases the payment role has not written to MySQL yet, so that
//! `GET /api/orders/{id}` never loses an order it just answered 202 for. Short-lived: the
//! MySQL row is the record once it exists.

use std::time::Duration;

use deadpool_redis::redis::{self, AsyncCommands};
use serde::{Deserialize, Serialize};

use super::{Keys, RedisError, RedisPool};
use crate::domain::identity::UserId;
use crate::domain::order::{OrderId, OrderView};

#[derive(Serialize, Deserialize)]
struct PendingRecord {
    user_id: UserId,
    order: OrderView,
}

#[derive(Clone)]
pub struct PendingOrders {
    redis: RedisPool,
    keys: Keys,
    ttl: Duration,
}

impl PendingOrders {
    pub fn new(redis: RedisPool, keys: Keys, ttl: Duration) -> Self {
        Self { redis, keys, ttl }
    }

    /// Records an accepted order (one round trip).
    pub async fn put(&self, user: &UserId, order: &OrderView) -> Result<(), RedisError> {
        let record = PendingRecord {
            user_id: user.clone(),
            order: order.clone(),
        };
        let json =
            serde_json::to_string(&record).map_err(|e| RedisError::Unavailable(e.to_string()))?;
        let order_key = self.keys.pending_order(&order.order_id.to_string());
        let user_key = self.keys.user_pending_orders(user.as_str());
        let ms = i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX);
        let score = order.created_at.timestamp_millis();
        let member = order.order_id.to_string();
        self.redis
            .run_shared(|mut conn| async move {
                redis::pipe()
                    .pset_ex(&order_key, json, u64::try_from(ms).unwrap_or(u64::MAX))
                    .zadd(&user_key, member, score)
                    .pexpire(&user_key, ms)
                    .query_async::<()>(&mut conn)
                    .await
            })
            .await
    }

    /// The pending order `id` if it belongs to `user`.
    pub async fn get(&self, user: &UserId, id: OrderId) -> Result<Option<OrderView>, RedisError> {
        let key = self.keys.pending_order(&id.to_string());
        let json: Option<String> = self
            .redis
            .run_shared(|mut conn| async move { conn.get(key).await })
            .await?;
        Ok(json
            .and_then(|j| serde_json::from_str::<PendingRecord>(&j).ok())
            .filter(|record| &record.user_id == user)
            .map(|record| record.order))
    }

    /// The user's pending orders, newest first (at most `limit`).
    pub async fn list(&self, user: &UserId, limit: usize) -> Result<Vec<OrderView>, RedisError> {
        let user_key = self.keys.user_pending_orders(user.as_str());
        let stop = isize::try_from(limit)
            .unwrap_or(isize::MAX)
            .saturating_sub(1);
        let ids: Vec<String> = self
            .redis
            .run_shared(|mut conn| async move { conn.zrevrange(user_key, 0, stop).await })
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| self.keys.pending_order(id)).collect();
        let records: Vec<Option<String>> = self
            .redis
            .run_shared(|mut conn| async move {
                redis::cmd("MGET").arg(keys).query_async(&mut conn).await
            })
            .await?;
        Ok(records
            .into_iter()
            .flatten()
            .filter_map(|j| serde_json::from_str::<PendingRecord>(&j).ok())
            .filter(|record| &record.user_id == user)
            .map(|record| record.order)
            .collect())
    }
}
