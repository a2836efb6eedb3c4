//! Accepted purchases the payment role has not written to MySQL yet, so that
//! `GET /api/orders/{id}` never loses an order it just answered 202 for. Short-lived: the
//! MySQL row is the record once it exists.
//!
//! Recording is off the purchase's request path: a background task writes whatever has
//! queued up as one pipeline, so an accepted purchase costs the request one Redis round
//! trip (the purchase script). Until its record is written an order is answered from
//! this instance's memory; another instance can miss it for that moment (well under a
//! millisecond while Redis is healthy).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use deadpool_redis::redis::{self, AsyncCommands};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Keys, RedisError, RedisPool};
use crate::domain::identity::UserId;
use crate::domain::order::{OrderId, OrderView};
use crate::shutdown::Shutdown;

/// Records waiting to be written before new ones are dropped (the order is safe in
/// Kafka; only its read-back before payment would miss it).
const QUEUE: usize = 16_384;
/// Largest pipeline written at once.
const MAX_BATCH: usize = 512;
/// Pending ids kept per user (the orders list shows 100 at most); older ones, and ids
/// whose record has expired, are trimmed on every write.
const KEPT_PER_USER: isize = 100;

#[derive(Clone, Serialize, Deserialize)]
struct PendingRecord {
    user_id: UserId,
    order: OrderView,
}

/// Records queued or being written, by order id.
type InFlight = Arc<Mutex<HashMap<OrderId, PendingRecord>>>;

#[derive(Clone)]
pub struct PendingOrders {
    redis: RedisPool,
    keys: Keys,
    queue: mpsc::Sender<PendingRecord>,
    in_flight: InFlight,
}

fn lock(in_flight: &InFlight) -> std::sync::MutexGuard<'_, HashMap<OrderId, PendingRecord>> {
    // The map holds plain data; a panic elsewhere cannot leave it half-updated.
    in_flight.lock().unwrap_or_else(PoisonError::into_inner)
}

impl PendingOrders {
    /// Starts the writer; it drains its queue and stops on shutdown.
    pub fn start(redis: RedisPool, keys: Keys, ttl: Duration, shutdown: &Shutdown) -> Self {
        let (queue, records) = mpsc::channel(QUEUE);
        let in_flight = InFlight::default();
        let writer = Writer {
            redis: redis.clone(),
            keys: keys.clone(),
            ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
            in_flight: in_flight.clone(),
        };
        shutdown.spawn(writer.run(records, shutdown.token()));
        Self {
            redis,
            keys,
            queue,
            in_flight,
        }
    }

    /// Queues an accepted order's record; never waits.
    pub fn record(&self, user: &UserId, order: &OrderView) {
        let record = PendingRecord {
            user_id: user.clone(),
            order: order.clone(),
        };
        lock(&self.in_flight).insert(order.order_id, record.clone());
        if self.queue.try_send(record).is_err() {
            lock(&self.in_flight).remove(&order.order_id);
            tracing::warn!(order.id = %order.order_id, "pending-order queue full; the order is readable once the payment role has written it");
        }
    }

    fn queued(&self, user: &UserId, id: OrderId) -> Option<OrderView> {
        lock(&self.in_flight)
            .get(&id)
            .filter(|record| &record.user_id == user)
            .map(|record| record.order.clone())
    }

    /// The pending order `id` if it belongs to `user`.
    pub async fn get(&self, user: &UserId, id: OrderId) -> Result<Option<OrderView>, RedisError> {
        if let Some(order) = self.queued(user, id) {
            return Ok(Some(order));
        }
        let key = self.keys.pending_order(user.as_str(), &id.to_string());
        let json: Option<String> = self
            .redis
            .run_shared(|mut conn| async move { conn.get(key).await })
            .await?;
        Ok(json
            .and_then(|j| serde_json::from_str::<PendingRecord>(&j).ok())
            .filter(|record| &record.user_id == user)
            .map(|record| record.order)
            // Written while we asked: the record just left the queue.
            .or_else(|| self.queued(user, id)))
    }

    /// The user's pending orders, newest first (at most `limit`).
    pub async fn list(&self, user: &UserId, limit: usize) -> Result<Vec<OrderView>, RedisError> {
        let mut orders: Vec<OrderView> = lock(&self.in_flight)
            .values()
            .filter(|record| &record.user_id == user)
            .map(|record| record.order.clone())
            .collect();
        let user_key = self.keys.user_pending_orders(user.as_str());
        let stop = isize::try_from(limit)
            .unwrap_or(isize::MAX)
            .saturating_sub(1);
        let ids: Vec<String> = self
            .redis
            .run_shared(|mut conn| async move { conn.zrevrange(user_key, 0, stop).await })
            .await?;
        if !ids.is_empty() {
            let keys: Vec<String> = ids
                .iter()
                .map(|id| self.keys.pending_order(user.as_str(), id))
                .collect();
            let records: Vec<Option<String>> = self
                .redis
                .run_shared(|mut conn| async move {
                    redis::cmd("MGET").arg(keys).query_async(&mut conn).await
                })
                .await?;
            for record in records
                .into_iter()
                .flatten()
                .filter_map(|j| serde_json::from_str::<PendingRecord>(&j).ok())
                .filter(|record| &record.user_id == user)
            {
                if !orders.iter().any(|o| o.order_id == record.order.order_id) {
                    orders.push(record.order);
                }
            }
        }
        orders.sort_by_key(|order| std::cmp::Reverse(order.created_at));
        orders.truncate(limit);
        Ok(orders)
    }
}

/// Writes queued records in pipelines.
struct Writer {
    redis: RedisPool,
    keys: Keys,
    ttl_ms: u64,
    in_flight: InFlight,
}

impl Writer {
    async fn run(self, mut records: mpsc::Receiver<PendingRecord>, shutdown: CancellationToken) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            let received = tokio::select! {
                received = records.recv_many(&mut batch, MAX_BATCH) => received,
                () = shutdown.cancelled() => {
                    // Whatever is queued still gets written: those orders were answered 202.
                    records.close();
                    records.recv_many(&mut batch, QUEUE).await
                }
            };
            if received == 0 {
                return;
            }
            self.write(&batch).await;
            let mut in_flight = lock(&self.in_flight);
            for record in batch.drain(..) {
                in_flight.remove(&record.order.order_id);
            }
        }
    }

    /// Writes a batch: one pipeline, or on a cluster one per user (a pipeline keeps to
    /// one slot there), sent at once.
    async fn write(&self, batch: &[PendingRecord]) {
        let cluster = self.redis.is_cluster();
        let mut pipes: HashMap<&str, redis::Pipeline> = HashMap::new();
        for record in batch {
            let Ok(json) = serde_json::to_string(record) else {
                continue;
            };
            let user = record.user_id.as_str();
            let pipe = pipes
                .entry(if cluster { user } else { "" })
                .or_insert_with(redis::pipe);
            let order = &record.order;
            let user_key = self.keys.user_pending_orders(user);
            pipe.pset_ex(
                self.keys.pending_order(user, &order.order_id.to_string()),
                json,
                self.ttl_ms,
            )
            .ignore()
            .zadd(
                &user_key,
                order.order_id.to_string(),
                order.created_at.timestamp_millis(),
            )
            .ignore()
            .zrembyscore(
                &user_key,
                "-inf",
                order.created_at.timestamp_millis() - i64::try_from(self.ttl_ms).unwrap_or(0),
            )
            .ignore()
            .zremrangebyrank(&user_key, 0, -(KEPT_PER_USER + 1))
            .ignore()
            .pexpire(&user_key, i64::try_from(self.ttl_ms).unwrap_or(i64::MAX))
            .ignore();
        }
        let writes = pipes.into_values().map(|pipe| {
            self.redis
                .run_shared(|mut conn| async move { pipe.query_async::<()>(&mut conn).await })
        });
        let written = futures_util::future::try_join_all(writes).await;
        if let Err(error) = written {
            tracing::warn!(%error, orders = batch.len(), "could not record pending orders; they are readable once the payment role has written them");
        }
    }
}
