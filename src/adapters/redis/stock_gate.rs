//! The purchase gate in Redis: `lua/purchase.lua` reserves a unit atomically,
//! `lua/release.lua` gives one back (exactly once per order, never for an order the
//! payment role has claimed with `lua/claim.lua`), `lua/reconcile.lua`
//! rebuilds a coupon's state after a Redis loss. One round trip each, on the shared
//! multiplexed connection.

use std::time::Duration;

use deadpool_redis::redis::Value;
use sha2::{Digest, Sha256};

use super::scripts::{AUDIT, CLAIM, PURCHASE, REBUILD_MARK, RECONCILE, RELEASE};
use super::{Keys, RedisError, RedisPool};
use crate::domain::coupon::Coupon;
use crate::domain::coupon::CouponId;
use crate::domain::identity::UserId;
use crate::domain::order::{OrderId, PurchaseRejection, Reservation, StateGeneration};

/// How long an order's claim is kept (longer than any replay of the topic would take).
const CLAIM_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

fn claim_ttl_ms() -> u64 {
    u64::try_from(CLAIM_TTL.as_millis()).unwrap_or(u64::MAX)
}

/// The rebuild mark was no longer the caller's: another rebuild took over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the rebuild mark was taken over; this rebuild's result was discarded")]
pub struct RebuildFenced;

/// A sale state rebuilt from the records of truth, to be swapped in.
pub struct RebuiltSale<'a> {
    pub stock: i64,
    /// Units held per buyer.
    pub buyers: &'a [(UserId, i64)],
    /// Orders counted from the log only (not in MySQL yet) that carry an
    /// Idempotency-Key: their records stay current, so a retry replays the order.
    pub in_flight: &'a [InFlightOrder<'a>],
}

/// An order counted as still in flight, with its idempotency record's digest.
pub struct InFlightOrder<'a> {
    pub order_id: OrderId,
    pub user: &'a UserId,
    pub idempotency_digest: &'a str,
}

/// Why a unit goes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseReason<'a> {
    /// The api could not confirm that the order's event was published.
    Unpublished,
    /// The same, retried after the first give-back failed: done only in the state the
    /// unit was reserved in, never during or after a rebuild, which counts the unit
    /// where it belongs ([`Release::Rebuilt`]).
    UnpublishedRetried { reserved_in: &'a StateGeneration },
    /// The order's payment was declined.
    PaymentFailed,
}

/// What a release did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    Released,
    /// Released before: nothing changed.
    AlreadyReleased,
    /// Refused: the payment role had claimed the order, which exists or will.
    Consumed,
    /// Not yet: the sale state is being rebuilt; try again after it.
    AfterRebuild,
    /// Nothing changed: the state was rebuilt (or lost) since the unit was reserved, and
    /// the rebuild counts the unit from the records of truth.
    Rebuilt,
}

#[derive(Clone)]
pub struct StockGate {
    redis: RedisPool,
    keys: Keys,
    idempotency_ttl: Duration,
}

/// The digest of an Idempotency-Key that names its record in Redis.
pub fn idempotency_digest(value: &str) -> String {
    Sha256::digest(value.as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl StockGate {
    pub fn new(redis: RedisPool, keys: Keys, idempotency_ttl: Duration) -> Self {
        Self {
            redis,
            keys,
            idempotency_ttl,
        }
    }

    fn idempotency_key(
        &self,
        coupon: CouponId,
        user: &UserId,
        key: Option<&str>,
    ) -> Option<String> {
        key.map(|k| {
            self.keys
                .coupon_idempotency(coupon.get(), user.as_str(), &idempotency_digest(k))
        })
    }

    /// Runs the purchase script: window, waiting room pass, limit, stock, record the
    /// buyer. `has_pass`: the request carries a valid admission pass for this sale.
    /// `reserve_stale`: the order of a stale idempotency record
    /// ([`Reservation::Stale`]) exists nowhere, so it is reserved again under its id.
    pub async fn reserve(
        &self,
        coupon: CouponId,
        user: &UserId,
        order_id: OrderId,
        idempotency_key: Option<&str>,
        has_pass: bool,
        reserve_stale: bool,
    ) -> Result<Reservation, RedisError> {
        let id = coupon.get();
        let idem = self.idempotency_key(coupon, user, idempotency_key);
        let mut invocation = PURCHASE.prepare_invoke();
        invocation
            .key(self.keys.coupon_stock(id))
            .key(self.keys.coupon_meta(id))
            .key(self.keys.coupon_buyers(id))
            // Without a real record the stock key stands in: KEYS must stay in one slot.
            .key(idem.clone().unwrap_or_else(|| self.keys.coupon_stock(id)))
            .key(self.keys.coupon_rebuild(id))
            .arg(user.as_str())
            .arg(order_id.to_string())
            .arg(u64::try_from(self.idempotency_ttl.as_millis()).unwrap_or(u64::MAX))
            .arg(i32::from(idem.is_some()))
            .arg(i32::from(has_pass))
            .arg(i32::from(reserve_stale));
        let (code, value, price, generation): (i64, String, i64, String) = self
            .redis
            .run_shared(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        let order = || {
            OrderId::parse(&value).ok_or_else(|| {
                RedisError::Corrupt(format!("purchase script returned a bad order id {value:?}"))
            })
        };
        Ok(match code {
            1 => Reservation::Accepted(order()?, price, StateGeneration::new(generation)),
            2 => Reservation::Replayed(order()?, price, StateGeneration::new(generation)),
            3 => Reservation::Stale(order()?),
            -1 => Reservation::Rejected(PurchaseRejection::CouponNotFound),
            -2 => Reservation::Rejected(PurchaseRejection::SaleNotStarted),
            -3 => Reservation::Rejected(PurchaseRejection::SaleEnded),
            -4 => Reservation::Rejected(PurchaseRejection::LimitReached),
            -5 => Reservation::Rejected(PurchaseRejection::SoldOut),
            -6 => Reservation::Rebuilding,
            -7 => Reservation::Rejected(PurchaseRejection::PassRequired),
            other => {
                return Err(RedisError::Corrupt(format!(
                    "purchase script returned code {other}"
                )));
            }
        })
    }

    /// Gives an order's unit back (stock + 1, buyer record - 1) and drops the purchase's
    /// idempotency record (named by its digest), at most once per order, and for an
    /// unpublished order only while the payment role has not claimed it.
    pub async fn release(
        &self,
        coupon: CouponId,
        user: &UserId,
        order_id: OrderId,
        idempotency_digest: Option<&str>,
        reason: ReleaseReason<'_>,
    ) -> Result<Release, RedisError> {
        let id = coupon.get();
        let idem = idempotency_digest.map(|d| self.keys.coupon_idempotency(id, user.as_str(), d));
        let mut invocation = RELEASE.prepare_invoke();
        invocation
            .key(self.keys.coupon_stock(id))
            .key(self.keys.coupon_meta(id))
            .key(self.keys.coupon_buyers(id))
            .key(self.keys.coupon_order_claim(id, &order_id.to_string()))
            .key(idem.clone().unwrap_or_else(|| self.keys.coupon_stock(id)))
            .key(self.keys.coupon_rebuild(id))
            .arg(user.as_str())
            .arg(claim_ttl_ms())
            .arg(i32::from(idem.is_some()))
            .arg(match reason {
                ReleaseReason::Unpublished | ReleaseReason::UnpublishedRetried { .. } => {
                    "unpublished"
                }
                ReleaseReason::PaymentFailed => "failed",
            });
        if let ReleaseReason::UnpublishedRetried { reserved_in } = reason {
            invocation.arg(reserved_in.as_str());
        }
        let released: i64 = self
            .redis
            .run_shared(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        Ok(match released {
            1 => Release::Released,
            0 => Release::AlreadyReleased,
            -1 => Release::Consumed,
            -3 => Release::Rebuilt,
            _ => Release::AfterRebuild,
        })
    }

    /// Claims orders for writing: true for each order that may be written (now
    /// claimed), false for one the api released first. One script call per coupon.
    pub async fn claim_for_writing(
        &self,
        orders: &[(CouponId, OrderId)],
    ) -> Result<Vec<bool>, RedisError> {
        let mut by_coupon: std::collections::BTreeMap<CouponId, Vec<usize>> =
            std::collections::BTreeMap::new();
        for (i, (coupon, _)) in orders.iter().enumerate() {
            by_coupon.entry(*coupon).or_default().push(i);
        }
        // Concurrent calls share the multiplexed connection (pipelined on the wire).
        let calls = by_coupon.into_iter().map(|(coupon, positions)| {
            let keys: Vec<String> = positions
                .iter()
                .map(|&i| {
                    self.keys
                        .coupon_order_claim(coupon.get(), &orders[i].1.to_string())
                })
                .collect();
            async move {
                let claimed = self.claim(keys, "C").await?;
                Ok::<_, RedisError>(positions.into_iter().zip(claimed).collect::<Vec<_>>())
            }
        });
        let mut claimed = vec![false; orders.len()];
        for group in futures_util::future::try_join_all(calls).await? {
            for (i, may_write) in group {
                claimed[i] = may_write;
            }
        }
        Ok(claimed)
    }

    /// Claims an order whose re-publication (a replay) was just confirmed, so that the
    /// first attempt's release can no longer give its unit back; false when that release
    /// came first (the order will not exist).
    pub async fn confirm_published(
        &self,
        coupon: CouponId,
        order: OrderId,
    ) -> Result<bool, RedisError> {
        let key = self
            .keys
            .coupon_order_claim(coupon.get(), &order.to_string());
        Ok(self.claim(vec![key], "P").await?.first() == Some(&true))
    }

    /// Claims orders of one coupon (their keys share its slot).
    async fn claim(&self, keys: Vec<String>, mark: &'static str) -> Result<Vec<bool>, RedisError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let ttl = claim_ttl_ms();
        let claimed: Vec<i64> = self
            .redis
            .run_shared(move |mut conn| async move {
                let mut invocation = CLAIM.prepare_invoke();
                for key in &keys {
                    invocation.key(key);
                }
                invocation.arg(ttl).arg(mark).invoke_async(&mut conn).await
            })
            .await?;
        Ok(claimed.into_iter().map(|c| c == 1).collect())
    }

    /// The claim of each order (of one coupon): 'C', 'P', 'R', 'F' or none.
    pub async fn claims(
        &self,
        coupon: CouponId,
        orders: &[String],
    ) -> Result<Vec<Option<String>>, RedisError> {
        if orders.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = orders
            .iter()
            .map(|order| self.keys.coupon_order_claim(coupon.get(), order))
            .collect();
        self.redis
            .run_shared(|mut conn| async move {
                deadpool_redis::redis::cmd("MGET")
                    .arg(&keys)
                    .query_async(&mut conn)
                    .await
            })
            .await
    }

    /// The coupon's stock (None when its state is gone) and the units its buyer records
    /// hold, read in one atomic step.
    pub async fn audit(&self, coupon: CouponId) -> Result<(Option<i64>, i64), RedisError> {
        let id = coupon.get();
        let mut invocation = AUDIT.prepare_invoke();
        invocation
            .key(self.keys.coupon_stock(id))
            .key(self.keys.coupon_meta(id))
            .key(self.keys.coupon_buyers(id));
        let (stock, units): (i64, i64) = self
            .redis
            .run_shared(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        Ok(((stock >= 0).then_some(stock), units))
    }

    /// Replaces a coupon's stock and buyer records; returns the previous stock (None
    /// when Redis had none).
    /// Takes the coupon's rebuild mark for `ttl` (purchases of the coupon wait while it
    /// is held); false when another rebuild holds it.
    pub async fn begin_rebuild(
        &self,
        coupon: CouponId,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, RedisError> {
        let key = self.keys.coupon_rebuild(coupon.get());
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let token = token.to_owned();
        let set: Option<String> = self
            .redis
            .run_shared(|mut conn| async move {
                deadpool_redis::redis::cmd("SET")
                    .arg(&key)
                    .arg(&token)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_ms)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        Ok(set.is_some())
    }

    /// Extends (`Some(ttl)`) or clears (`None`) the rebuild mark if it is still ours.
    pub async fn keep_rebuild(
        &self,
        coupon: CouponId,
        token: &str,
        ttl: Option<Duration>,
    ) -> Result<bool, RedisError> {
        let mut invocation = REBUILD_MARK.prepare_invoke();
        invocation
            .key(self.keys.coupon_rebuild(coupon.get()))
            .arg(token)
            .arg(if ttl.is_some() { "extend" } else { "clear" })
            .arg(ttl.map_or(0, |t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)));
        let done: i64 = self
            .redis
            .run_shared(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        Ok(done == 1)
    }

    /// Replaces the coupon's sale state with the rebuilt one and clears the rebuild
    /// mark, if the mark is still `token`'s; the idempotency records of the orders
    /// counted in flight stay current. Answers the previous stock (None: it was gone),
    /// or `Err(Fenced)` when the mark was lost.
    pub async fn reconcile(
        &self,
        coupon: &Coupon,
        token: &str,
        rebuilt: &RebuiltSale<'_>,
    ) -> Result<Result<Option<i64>, RebuildFenced>, RedisError> {
        let id = coupon.id.get();
        let mut invocation = RECONCILE.prepare_invoke();
        invocation
            .key(self.keys.coupon_stock(id))
            .key(self.keys.coupon_meta(id))
            .key(self.keys.coupon_buyers(id))
            .key(self.keys.coupon_rebuild(id));
        for order in rebuilt.in_flight {
            invocation.key(self.keys.coupon_idempotency(
                id,
                order.user.as_str(),
                order.idempotency_digest,
            ));
        }
        invocation
            .arg(token)
            .arg(rebuilt.stock)
            .arg(coupon.per_user_limit)
            .arg(coupon.sale.starts_at.timestamp_millis())
            .arg(coupon.sale.ends_at.timestamp_millis())
            .arg(i32::from(coupon.is_deleted))
            .arg(coupon.price_cents)
            .arg(coupon.total_quantity)
            .arg(coupon.sale.state_expires_at_ms())
            .arg(coupon.waiting_room_per_sec.unwrap_or(0))
            .arg(rebuilt.in_flight.len());
        for order in rebuilt.in_flight {
            invocation.arg(order.order_id.to_string());
        }
        for (user, count) in rebuilt.buyers {
            invocation.arg(user.as_str()).arg(*count);
        }
        let previous: i64 = self
            .redis
            .run_shared(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        Ok(match previous {
            -2 => Err(RebuildFenced),
            -1 => Ok(None),
            stock => Ok(Some(stock)),
        })
    }

    /// The buyer records of a coupon: user → units bought.
    pub async fn buyers(
        &self,
        coupon: CouponId,
        per_user_limit: i64,
    ) -> Result<Vec<(String, i64)>, RedisError> {
        let key = self.keys.coupon_buyers(coupon.get());
        let value: Value = self
            .redis
            .run_shared(|mut conn| async move {
                let command = if per_user_limit == 1 {
                    "SMEMBERS"
                } else {
                    "HGETALL"
                };
                deadpool_redis::redis::cmd(command)
                    .arg(key)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        let strings: Vec<String> = deadpool_redis::redis::from_redis_value(value)
            .map_err(|e| RedisError::Corrupt(format!("unexpected buyer records: {e}")))?;
        Ok(if per_user_limit == 1 {
            strings.into_iter().map(|user| (user, 1)).collect()
        } else {
            strings
                .chunks(2)
                .filter_map(|pair| match pair {
                    [user, count] => Some((user.clone(), count.parse().unwrap_or(0))),
                    _ => None,
                })
                .collect()
        })
    }
}
