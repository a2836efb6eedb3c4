//! Accepted purchases the payment role has not written to MySQL yet, so that
//! `GET /api/orders/{id}` never loses an order it just answered 202 for. Short-lived: the
//! MySQL row is the record once it exists.
//!
//! Recording is off the purchase's request path: a background task writes whatever has
//! queued up as one pipeline, so an accepted purchase costs the request one Redis round
//! trip (the purchase script). Until its record is written an order is answered from
//! this instance's memory; another instance can miss it for that moment (well under a
//! millisecond while Redis is healthy).
//!
//! A shopper's records share one hash (order id -> "<coupon id> <accepted at, ms>"),
//! which expires `ttl` after their latest purchase: three cheap commands per order, and
//! values small enough for Redis to keep the hash in its compact encoding. Readers skip
//! records older than `ttl`; a hash grown past [`KEPT_PER_USER`] by [`TRIM_SLACK`] is
//! cut back to its newest records (order ids are UUIDv7: text order is time order).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use deadpool_redis::redis::{self, AsyncCommands};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Keys, RedisError, RedisPool};
use crate::domain::coupon::CouponId;
use crate::domain::identity::UserId;
use crate::domain::order::{OrderId, OrderStatus, OrderView};
use crate::shutdown::Shutdown;

/// Records waiting to be written before new ones are dropped (the order is safe in
/// Kafka; only its read-back before payment would miss it).
const QUEUE: usize = 16_384;
/// Largest pipeline written at once.
const MAX_BATCH: usize = 512;
/// Pending records kept per user (the orders list shows 100 at most).
const KEPT_PER_USER: usize = 100;
/// Records a user's hash may hold beyond [`KEPT_PER_USER`] before it is trimmed, so that
/// a trim (a read of the ids) happens once per this many purchases, not on every one.
const TRIM_SLACK: usize = 20;

#[derive(Clone)]
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
    ttl: Duration,
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
            ttl,
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
        let key = self.keys.user_pending_orders(user.as_str());
        let stored: Option<String> = self
            .redis
            .run_shared(|mut conn| async move { conn.hget(key, id.to_string()).await })
            .await?;
        Ok(stored
            .and_then(|value| self.current(id, &value))
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
        let key = self.keys.user_pending_orders(user.as_str());
        let records: Vec<(String, String)> = self
            .redis
            .run_shared(|mut conn| async move { conn.hgetall(key).await })
            .await?;
        let stored = records
            .iter()
            .filter_map(|(id, value)| self.current(OrderId::parse(id)?, value));
        for order in stored {
            if !orders.iter().any(|o| o.order_id == order.order_id) {
                orders.push(order);
            }
        }
        orders.sort_by_key(|order| std::cmp::Reverse(order.created_at));
        orders.truncate(limit);
        Ok(orders)
    }

    /// A stored record's order, when it is younger than the TTL.
    fn current(&self, order_id: OrderId, value: &str) -> Option<OrderView> {
        let (coupon, accepted_ms) = value.split_once(' ')?;
        let created_at = chrono::DateTime::from_timestamp_millis(accepted_ms.parse().ok()?)?;
        let ttl = chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::MAX);
        (created_at + ttl > chrono::Utc::now()).then_some(OrderView {
            order_id,
            coupon_id: CouponId::new(coupon.parse().ok()?)?,
            status: OrderStatus::Pending,
            created_at,
            updated_at: created_at,
        })
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
    /// one slot there), sent at once; then trims the hashes that grew too long.
    async fn write(&self, batch: &[PendingRecord]) {
        let cluster = self.redis.is_cluster();
        let mut pipes: HashMap<&str, (redis::Pipeline, Vec<String>)> = HashMap::new();
        for record in batch {
            let user = record.user_id.as_str();
            let (pipe, keys) = pipes
                .entry(if cluster { user } else { "" })
                .or_insert_with(|| (redis::pipe(), Vec::new()));
            let key = self.keys.user_pending_orders(user);
            let order = &record.order;
            let value = format!(
                "{} {}",
                order.coupon_id,
                order.created_at.timestamp_millis()
            );
            pipe.hset(&key, order.order_id.to_string(), value)
                .ignore()
                .pexpire(&key, i64::try_from(self.ttl_ms).unwrap_or(i64::MAX))
                .ignore()
                .hlen(&key);
            keys.push(key);
        }
        let writes = pipes.into_values().map(|(pipe, keys)| async move {
            let lengths: Vec<usize> = self
                .redis
                .run_shared(|mut conn| async move { pipe.query_async(&mut conn).await })
                .await?;
            Ok::<_, RedisError>(
                keys.into_iter()
                    .zip(lengths)
                    .filter(|(_, len)| *len > KEPT_PER_USER + TRIM_SLACK)
                    .map(|(key, _)| key)
                    .collect::<Vec<_>>(),
            )
        });
        match futures_util::future::try_join_all(writes).await {
            Ok(overgrown) => {
                let mut overgrown: Vec<String> = overgrown.into_iter().flatten().collect();
                overgrown.sort();
                overgrown.dedup();
                for key in overgrown {
                    if let Err(error) = self.trim(key).await {
                        tracing::warn!(%error, "could not trim a shopper's pending orders");
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%error, orders = batch.len(), "could not record pending orders; they are readable once the payment role has written them");
            }
        }
    }

    /// Cuts a user's hash back to its newest [`KEPT_PER_USER`] records.
    async fn trim(&self, key: String) -> Result<(), RedisError> {
        let hash = key.clone();
        let mut ids: Vec<String> = self
            .redis
            .run_shared(|mut conn| async move { conn.hkeys(hash).await })
            .await?;
        if ids.len() <= KEPT_PER_USER {
            return Ok(());
        }
        ids.sort_unstable();
        ids.truncate(ids.len() - KEPT_PER_USER);
        self.redis
            .run_shared(|mut conn| async move { conn.hdel::<_, _, ()>(key, ids).await })
            .await
    }
}
