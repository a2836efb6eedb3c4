//! Coupon rows. Times are stored as UTC `DATETIME(6)`.

use chrono::{NaiveDateTime, TimeZone, Utc};
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel_async::{AsyncMysqlConnection, RunQueryDsl};

use super::MysqlError;
use super::schema::coupons;
use crate::domain::coupon::{Coupon, CouponDraft, CouponId, SaleWindow};

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = coupons)]
pub struct NewCouponRow {
    pub name: String,
    pub description: String,
    pub price_cents: i64,
    pub image_key: Option<String>,
    pub total_quantity: i32,
    pub per_user_limit: i32,
    pub sale_starts_at: NaiveDateTime,
    pub sale_ends_at: NaiveDateTime,
    pub waiting_room_per_sec: Option<i32>,
}

impl From<&CouponDraft> for NewCouponRow {
    fn from(draft: &CouponDraft) -> Self {
        Self {
            name: draft.name.clone(),
            description: draft.description.clone(),
            price_cents: draft.price_cents,
            image_key: None,
            // Bounded by the draft's validation (≤ 10,000,000 and ≤ 100).
            total_quantity: i32::try_from(draft.total_quantity).unwrap_or(i32::MAX),
            per_user_limit: i32::try_from(draft.per_user_limit).unwrap_or(i32::MAX),
            sale_starts_at: draft.sale.starts_at.naive_utc(),
            sale_ends_at: draft.sale.ends_at.naive_utc(),
            // Bounded by the draft's validation (≤ 10,000).
            waiting_room_per_sec: draft
                .waiting_room_per_sec
                .map(|rate| i32::try_from(rate).unwrap_or(i32::MAX)),
        }
    }
}

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = coupons)]
pub struct CouponRow {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub price_cents: i64,
    pub image_key: Option<String>,
    pub total_quantity: i32,
    pub per_user_limit: i32,
    pub sale_starts_at: NaiveDateTime,
    pub sale_ends_at: NaiveDateTime,
    pub is_deleted: bool,
    pub waiting_room_per_sec: Option<i32>,
}

impl CouponRow {
    pub fn into_domain(self) -> Result<Coupon, MysqlError> {
        let id = CouponId::new(self.id)
            .ok_or_else(|| MysqlError::Corrupt(format!("coupon id {} is not positive", self.id)))?;
        Ok(Coupon {
            id,
            name: self.name,
            description: self.description,
            price_cents: self.price_cents,
            image_key: self.image_key,
            total_quantity: i64::from(self.total_quantity),
            per_user_limit: i64::from(self.per_user_limit),
            sale: SaleWindow {
                starts_at: Utc.from_utc_datetime(&self.sale_starts_at),
                ends_at: Utc.from_utc_datetime(&self.sale_ends_at),
            },
            is_deleted: self.is_deleted,
            waiting_room_per_sec: self.waiting_room_per_sec.map(i64::from),
        })
    }
}

/// The page query (a "deferred join"): the inner select walks the covering index
/// `(is_deleted, id)` in order to find the page's ids, so skipped rows cost index
/// entries only (no row reads, no filesort); the outer join reads just the page's rows
/// by primary key. The outer result is put back in id order in Rust: an outer
/// `ORDER BY` would make MySQL filesort the (small) derived table.
pub const PAGE_SQL: &str = "SELECT c.id, c.name, c.description, c.price_cents, c.image_key, \
     c.total_quantity, c.per_user_limit, c.sale_starts_at, c.sale_ends_at, c.is_deleted, \
     c.waiting_room_per_sec \
     FROM (SELECT id FROM coupons WHERE is_deleted = FALSE ORDER BY id LIMIT ? OFFSET ?) page \
     JOIN coupons c ON c.id = page.id";

/// One page of coupons that are not deleted, in id order.
pub async fn page(
    conn: &mut AsyncMysqlConnection,
    limit: i64,
    offset: i64,
) -> Result<Vec<Coupon>, MysqlError> {
    let mut rows: Vec<CouponRow> = diesel::sql_query(PAGE_SQL)
        .bind::<BigInt, _>(limit)
        .bind::<BigInt, _>(offset)
        .load(conn)
        .await?;
    rows.sort_unstable_by_key(|row| row.id);
    rows.into_iter().map(CouponRow::into_domain).collect()
}

/// A coupon by id, deleted or not (callers decide what a deleted one means).
pub async fn find(
    conn: &mut AsyncMysqlConnection,
    id: CouponId,
) -> Result<Option<Coupon>, MysqlError> {
    coupons::table
        .find(id.get())
        .select(CouponRow::as_select())
        .first(conn)
        .await
        .optional()?
        .map(CouponRow::into_domain)
        .transpose()
}

/// Coupons not deleted whose sale has not ended (stock warm-up at start-up).
pub async fn live(conn: &mut AsyncMysqlConnection) -> Result<Vec<Coupon>, MysqlError> {
    let rows: Vec<CouponRow> = coupons::table
        .filter(coupons::is_deleted.eq(false))
        .filter(coupons::sale_ends_at.gt(Utc::now().naive_utc()))
        .select(CouponRow::as_select())
        .load(conn)
        .await?;
    rows.into_iter().map(CouponRow::into_domain).collect()
}

/// Of `ids`, those whose sale state was put into Redis once (see the migration
/// `coupons_sale_state_created`).
pub async fn with_sale_state_created(
    conn: &mut AsyncMysqlConnection,
    ids: &[i64],
) -> Result<Vec<i64>, MysqlError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(coupons::table
        .filter(coupons::id.eq_any(ids))
        .filter(coupons::sale_state_created_at.is_not_null())
        .select(coupons::id)
        .load(conn)
        .await?)
}

/// Records that the coupon's sale state is in Redis (idempotent: the first time stays).
pub async fn mark_sale_state_created(
    conn: &mut AsyncMysqlConnection,
    id: CouponId,
) -> Result<(), MysqlError> {
    diesel::update(
        coupons::table
            .find(id.get())
            .filter(coupons::sale_state_created_at.is_null()),
    )
    .set(coupons::sale_state_created_at.eq(Utc::now().naive_utc()))
    .execute(conn)
    .await?;
    Ok(())
}

/// Coupons not soft-deleted.
pub async fn count_active(conn: &mut AsyncMysqlConnection) -> Result<i64, MysqlError> {
    Ok(coupons::table
        .filter(coupons::is_deleted.eq(false))
        .count()
        .get_result(conn)
        .await?)
}

pub async fn insert_many(
    conn: &mut AsyncMysqlConnection,
    rows: &[NewCouponRow],
) -> Result<usize, MysqlError> {
    Ok(diesel::insert_into(coupons::table)
        .values(rows)
        .execute(conn)
        .await?)
}

/// Inserts one coupon and returns it with its id.
pub async fn insert(
    conn: &mut AsyncMysqlConnection,
    draft: &CouponDraft,
) -> Result<Coupon, MysqlError> {
    let row = NewCouponRow::from(draft);
    diesel::insert_into(coupons::table)
        .values(&row)
        .execute(conn)
        .await?;
    // MySQL has no RETURNING; LAST_INSERT_ID is per connection, so it is ours.
    let id: i64 = diesel::select(last_insert_id()).get_result(conn).await?;
    let row: CouponRow = coupons::table
        .find(id)
        .select(CouponRow::as_select())
        .first(conn)
        .await?;
    row.into_domain()
}

diesel::define_sql_function! {
    #[sql_name = "LAST_INSERT_ID"]
    fn last_insert_id() -> BigInt;
}

/// Replaces the editable fields of a coupon that is not deleted; false if none.
pub async fn update(
    conn: &mut AsyncMysqlConnection,
    id: CouponId,
    draft: &CouponDraft,
) -> Result<bool, MysqlError> {
    let row = NewCouponRow::from(draft);
    let changed = diesel::update(
        coupons::table
            .find(id.get())
            .filter(coupons::is_deleted.eq(false)),
    )
    .set((
        coupons::name.eq(row.name),
        coupons::description.eq(row.description),
        coupons::price_cents.eq(row.price_cents),
        coupons::total_quantity.eq(row.total_quantity),
        coupons::per_user_limit.eq(row.per_user_limit),
        coupons::sale_starts_at.eq(row.sale_starts_at),
        coupons::sale_ends_at.eq(row.sale_ends_at),
        coupons::waiting_room_per_sec.eq(row.waiting_room_per_sec),
    ))
    .execute(conn)
    .await?;
    Ok(changed > 0)
}

/// Soft delete; false when there was no such coupon (or it was deleted already).
pub async fn soft_delete(
    conn: &mut AsyncMysqlConnection,
    id: CouponId,
) -> Result<bool, MysqlError> {
    let changed = diesel::update(
        coupons::table
            .find(id.get())
            .filter(coupons::is_deleted.eq(false)),
    )
    .set(coupons::is_deleted.eq(true))
    .execute(conn)
    .await?;
    Ok(changed > 0)
}

/// Points the coupon at a new image; returns the previous key (to delete it).
pub async fn set_image(
    conn: &mut AsyncMysqlConnection,
    id: CouponId,
    image_key: &str,
) -> Result<Option<Option<String>>, MysqlError> {
    let Some(coupon) = find(conn, id).await?.filter(|c| !c.is_deleted) else {
        return Ok(None);
    };
    diesel::update(coupons::table.find(id.get()))
        .set(coupons::image_key.eq(image_key))
        .execute(conn)
        .await?;
    Ok(Some(coupon.image_key))
}

/// The coupons of `ids` that exist and are not deleted, in the order of `ids`.
pub async fn find_active(
    conn: &mut AsyncMysqlConnection,
    ids: &[CouponId],
) -> Result<Vec<Coupon>, MysqlError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let raw: Vec<i64> = ids.iter().map(|id| id.get()).collect();
    let mut rows: Vec<CouponRow> = coupons::table
        .filter(coupons::id.eq_any(&raw))
        .filter(coupons::is_deleted.eq(false))
        .select(CouponRow::as_select())
        .load(conn)
        .await?;
    rows.sort_by_key(|row| raw.iter().position(|id| *id == row.id));
    rows.into_iter().map(CouponRow::into_domain).collect()
}

/// Up to `limit` coupons with ids above `after`, deleted ones included, in id order
/// (a walk over the whole table, one chunk at a time).
pub async fn chunk_after(
    conn: &mut AsyncMysqlConnection,
    after: i64,
    limit: i64,
) -> Result<Vec<Coupon>, MysqlError> {
    let rows: Vec<CouponRow> = coupons::table
        .filter(coupons::id.gt(after))
        .order(coupons::id)
        .limit(limit)
        .select(CouponRow::as_select())
        .load(conn)
        .await?;
    rows.into_iter().map(CouponRow::into_domain).collect()
}

#[derive(QueryableByName)]
struct ClockRow {
    #[diesel(sql_type = diesel::sql_types::Datetime)]
    now: NaiveDateTime,
}

/// The database's clock as `updated_at` columns are stamped with it (`NOW(6)`, in the
/// session's time zone, as `CURRENT_TIMESTAMP(6)` is).
pub async fn clock(conn: &mut AsyncMysqlConnection) -> Result<NaiveDateTime, MysqlError> {
    let row: ClockRow = diesel::sql_query("SELECT NOW(6) AS now")
        .get_result(conn)
        .await?;
    Ok(row.now)
}

/// Up to `limit` (id, `updated_at`) pairs of the coupons changed at or after `since`
/// (deleted ones included), ordered by that time and id: read from the index on
/// (updated_at, id) alone. `after` continues a walk: `Some((at, id))` skips the rows up
/// to and including that one.
pub async fn stamps_since(
    conn: &mut AsyncMysqlConnection,
    since: NaiveDateTime,
    after: Option<(NaiveDateTime, i64)>,
    limit: i64,
) -> Result<Vec<(i64, NaiveDateTime)>, MysqlError> {
    let mut query = coupons::table
        .filter(coupons::updated_at.ge(since))
        .order((coupons::updated_at, coupons::id))
        .limit(limit)
        .select((coupons::id, coupons::updated_at))
        .into_boxed();
    if let Some((at, id)) = after {
        query = query.filter(
            coupons::updated_at
                .gt(at)
                .or(coupons::updated_at.eq(at).and(coupons::id.gt(id))),
        );
    }
    Ok(query.load(conn).await?)
}

/// The coupons of `ids` (deleted ones included) with the time of their last change.
pub async fn find_with_stamps(
    conn: &mut AsyncMysqlConnection,
    ids: &[i64],
) -> Result<Vec<(Coupon, NaiveDateTime)>, MysqlError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<(CouponRow, NaiveDateTime)> = coupons::table
        .filter(coupons::id.eq_any(ids))
        .select((CouponRow::as_select(), coupons::updated_at))
        .load(conn)
        .await?;
    rows.into_iter()
        .map(|(row, at)| Ok((row.into_domain()?, at)))
        .collect()
}

/// Coupons with a waiting room whose sale opens within a minute or is open: their ids
/// and opening times.
pub async fn waiting_rooms(
    conn: &mut AsyncMysqlConnection,
    now: chrono::DateTime<Utc>,
) -> Result<Vec<(CouponId, chrono::DateTime<Utc>)>, MysqlError> {
    let now = now.naive_utc();
    let rows: Vec<(i64, NaiveDateTime)> = coupons::table
        .filter(coupons::is_deleted.eq(false))
        .filter(coupons::waiting_room_per_sec.is_not_null())
        .filter(coupons::sale_starts_at.le(now + chrono::TimeDelta::minutes(1)))
        .filter(coupons::sale_ends_at.gt(now))
        .select((coupons::id, coupons::sale_starts_at))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, starts)| Some((CouponId::new(id)?, Utc.from_utc_datetime(&starts))))
        .collect())
}
