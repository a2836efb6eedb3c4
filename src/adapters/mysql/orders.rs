//! Order rows (written by the payment role; read by the orders endpoints).

use chrono::{NaiveDateTime, TimeZone, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};

use super::MysqlError;
use super::schema::orders;
use crate::domain::coupon::CouponId;
use crate::domain::identity::UserId;
use crate::domain::order::{OrderId, OrderStatus, OrderView};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = orders)]
pub struct OrderRow {
    pub id: String,
    pub user_id: String,
    pub coupon_id: i64,
    pub price_cents: i64,
    pub status: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl OrderRow {
    pub fn view(&self) -> Result<OrderView, MysqlError> {
        let corrupt = |what: &str| MysqlError::Corrupt(format!("order {}: bad {what}", self.id));
        Ok(OrderView {
            order_id: OrderId::parse(&self.id).ok_or_else(|| corrupt("id"))?,
            coupon_id: CouponId::new(self.coupon_id).ok_or_else(|| corrupt("coupon id"))?,
            status: OrderStatus::parse(&self.status).ok_or_else(|| corrupt("status"))?,
            created_at: Utc.from_utc_datetime(&self.created_at),
            updated_at: Utc.from_utc_datetime(&self.updated_at),
        })
    }
}

/// The order `id` if it belongs to `user`.
pub async fn find_for_user(
    conn: &mut AsyncMysqlConnection,
    user: &UserId,
    id: OrderId,
) -> Result<Option<OrderView>, MysqlError> {
    orders::table
        .find(id.to_string())
        .filter(orders::user_id.eq(user.as_str()))
        .select(OrderRow::as_select())
        .first(conn)
        .await
        .optional()?
        .map(|row| row.view())
        .transpose()
}

/// The user's orders, newest first.
pub async fn list_for_user(
    conn: &mut AsyncMysqlConnection,
    user: &UserId,
    limit: i64,
) -> Result<Vec<OrderView>, MysqlError> {
    let rows: Vec<OrderRow> = orders::table
        .filter(orders::user_id.eq(user.as_str()))
        .order((orders::created_at.desc(), orders::id.desc()))
        .limit(limit)
        .select(OrderRow::as_select())
        .load(conn)
        .await?;
    rows.iter().map(OrderRow::view).collect()
}

/// Units of a coupon held by orders that did not fail, per user (for reconciling).
pub async fn live_units_by_user(
    conn: &mut AsyncMysqlConnection,
    coupon: CouponId,
) -> Result<Vec<(String, i64)>, MysqlError> {
    use diesel::dsl::count_star;
    Ok(orders::table
        .filter(orders::coupon_id.eq(coupon.get()))
        .filter(orders::status.ne(OrderStatus::Failed.as_str()))
        .group_by(orders::user_id)
        .select((orders::user_id, count_star()))
        .load(conn)
        .await?)
}

/// How many orders are PENDING and when the oldest was created (it walks
/// `idx_orders_status_created`; normally only the orders of the last moments are).
pub async fn pending_summary(
    conn: &mut AsyncMysqlConnection,
) -> Result<(i64, Option<NaiveDateTime>), MysqlError> {
    use diesel::dsl::{count_star, min};
    Ok(orders::table
        .filter(orders::status.eq(OrderStatus::Pending.as_str()))
        .select((count_star(), min(orders::created_at)))
        .first(conn)
        .await?)
}

/// The FAILED orders of a coupon: (order id, user id).
pub async fn failed_of_coupon(
    conn: &mut AsyncMysqlConnection,
    coupon: CouponId,
) -> Result<Vec<(String, String)>, MysqlError> {
    Ok(orders::table
        .filter(orders::coupon_id.eq(coupon.get()))
        .filter(orders::status.eq(OrderStatus::Failed.as_str()))
        .select((orders::id, orders::user_id))
        .load(conn)
        .await?)
}

/// Which of `ids` exist as rows (any status).
pub async fn existing_ids(
    conn: &mut AsyncMysqlConnection,
    ids: &[String],
) -> Result<Vec<String>, MysqlError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(orders::table
        .filter(orders::id.eq_any(ids))
        .select(orders::id)
        .load(conn)
        .await?)
}

/// The coupon's orders as one consistent snapshot: an order of the log is either among
/// them or not, whatever the payment role commits meanwhile.
pub struct CouponOrders {
    /// Units of orders that did not fail, per user.
    pub live: Vec<(String, i64)>,
    /// (order id, user) of FAILED orders.
    pub failed: Vec<(String, String)>,
    /// Which of the asked ids exist (any status).
    pub existing: std::collections::HashSet<String>,
}

pub async fn snapshot_of_coupon(
    conn: &mut AsyncMysqlConnection,
    coupon_id: CouponId,
    ids: &[String],
) -> Result<CouponOrders, MysqlError> {
    // Applies to the next transaction only; REPEATABLE READ reads one snapshot.
    diesel::sql_query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(conn)
        .await?;
    conn.transaction::<_, MysqlError, _>(async |conn| {
        Ok(CouponOrders {
            live: live_units_by_user(conn, coupon_id).await?,
            failed: failed_of_coupon(conn, coupon_id).await?,
            existing: existing_ids(conn, ids).await?.into_iter().collect(),
        })
    })
    .await
}

/// Inserts the rows whose ids are not stored yet; returns the ids that were new (the
/// orders whose payment must run). Idempotent: a replayed event inserts nothing.
pub async fn insert_new(
    conn: &mut AsyncMysqlConnection,
    rows: &[OrderRow],
) -> Result<Vec<String>, MysqlError> {
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let existing: std::collections::HashSet<String> =
        existing_ids(conn, &ids).await?.into_iter().collect();
    let mut seen = std::collections::HashSet::new();
    let fresh: Vec<&OrderRow> = rows
        .iter()
        .filter(|r| !existing.contains(&r.id) && seen.insert(r.id.clone()))
        .collect();
    if fresh.is_empty() {
        return Ok(Vec::new());
    }
    let values: Vec<OrderRow> = fresh.iter().map(|r| (*r).clone()).collect();
    // INSERT IGNORE so that a row another writer committed since the read above is no
    // SQL error; but then this transaction cannot tell which rows are its own, so it
    // fails as a conflict and the caller retries (the retry reads them as existing).
    let inserted = diesel::insert_or_ignore_into(orders::table)
        .values(&values)
        .execute(conn)
        .await?;
    if inserted != values.len() {
        return Err(MysqlError::Conflict(format!(
            "{} of {} orders were written by another consumer meanwhile",
            values.len() - inserted,
            values.len()
        )));
    }
    Ok(values.into_iter().map(|r| r.id).collect())
}

/// Moves a PENDING order to `status`; false when it was not PENDING (already final).
pub async fn settle(
    conn: &mut AsyncMysqlConnection,
    id: OrderId,
    status: OrderStatus,
) -> Result<bool, MysqlError> {
    let changed = diesel::update(
        orders::table
            .find(id.to_string())
            .filter(orders::status.eq(OrderStatus::Pending.as_str())),
    )
    .set((
        orders::status.eq(status.as_str()),
        orders::updated_at.eq(Utc::now().naive_utc()),
    ))
    .execute(conn)
    .await?;
    Ok(changed == 1)
}

/// Where a page of [`pending_in_partition`] ended: the next page starts after it.
pub type PendingCursor = (NaiveDateTime, String);

/// A page of the PENDING orders of the coupons that map to `partition` (payments
/// interrupted by a crash, resumed by the partition's next owner), oldest first, after
/// `after`. Walks `idx_orders_status_created`; the partition is a filter on top.
pub async fn pending_in_partition(
    conn: &mut AsyncMysqlConnection,
    partitions: i32,
    partition: i32,
    after: Option<&PendingCursor>,
    limit: i64,
) -> Result<Vec<OrderRow>, MysqlError> {
    in_partition(
        conn,
        OrderStatus::Pending,
        partitions,
        partition,
        after,
        limit,
    )
    .await
}

/// Like [`pending_in_partition`], for another status; `after` may start the walk at a
/// creation time (with an empty id).
pub async fn in_partition(
    conn: &mut AsyncMysqlConnection,
    status: OrderStatus,
    partitions: i32,
    partition: i32,
    after: Option<&PendingCursor>,
    limit: i64,
) -> Result<Vec<OrderRow>, MysqlError> {
    use diesel::dsl::sql;
    use diesel::sql_types::Bool;
    let mut query = orders::table
        .filter(orders::status.eq(status.as_str()))
        .filter(sql::<Bool>(&format!(
            "MOD(coupon_id, {}) = {}",
            partitions.max(1),
            partition
        )))
        .into_boxed();
    if let Some((created_at, id)) = after {
        query = query.filter(
            orders::created_at.gt(*created_at).or(orders::created_at
                .eq(*created_at)
                .and(orders::id.gt(id.clone()))),
        );
    }
    Ok(query
        .order((orders::created_at.asc(), orders::id.asc()))
        .limit(limit)
        .select(OrderRow::as_select())
        .load(conn)
        .await?)
}

/// Of `ids`, those still PENDING, locked until the end of the caller's transaction.
pub async fn lock_pending(
    conn: &mut AsyncMysqlConnection,
    ids: &[String],
) -> Result<Vec<String>, MysqlError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(orders::table
        .filter(orders::id.eq_any(ids))
        .filter(orders::status.eq(OrderStatus::Pending.as_str()))
        .select(orders::id)
        .for_update()
        .load(conn)
        .await?)
}

/// Moves the given PENDING orders to `status` in one statement; returns rows changed.
pub async fn settle_many(
    conn: &mut AsyncMysqlConnection,
    ids: &[String],
    status: OrderStatus,
) -> Result<usize, MysqlError> {
    if ids.is_empty() {
        return Ok(0);
    }
    Ok(diesel::update(
        orders::table
            .filter(orders::id.eq_any(ids))
            .filter(orders::status.eq(OrderStatus::Pending.as_str())),
    )
    .set((
        orders::status.eq(status.as_str()),
        orders::updated_at.eq(Utc::now().naive_utc()),
    ))
    .execute(conn)
    .await?)
}
