//! The purchase gate done in MySQL, the two ways the requirements considered and rejected
//! for speed: pessimistic locking (`SELECT … FOR UPDATE` on the stock row) and optimistic
//! locking (a version column, retried on conflict). Same semantics as `lua/purchase.lua`
//! (window, per-user limit, stock), so `make bench` compares like with like. Not used by
//! the default (Redis) strategy.

use chrono::Utc;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};

use super::MysqlError;
use super::schema::{coupons, sale_buyers, sale_stock};
use crate::domain::coupon::{CouponId, SaleState, SaleWindow};
use crate::domain::identity::UserId;
use crate::domain::order::PurchaseRejection;

/// Optimistic attempts before answering "busy".
const OPTIMISTIC_RETRIES: usize = 50;

#[derive(Debug, thiserror::Error)]
pub enum SaleStockError {
    #[error(transparent)]
    Mysql(#[from] MysqlError),
    #[error("too much contention: gave up after {0} optimistic retries")]
    Contention(usize),
}

impl From<diesel::result::Error> for SaleStockError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Mysql(e.into())
    }
}

/// A reservation decided in MySQL: the price of the unit, or why not.
pub type Decision = Result<i64, PurchaseRejection>;

struct SaleRules {
    limit: i32,
    price_cents: i64,
}

async fn rules(
    conn: &mut AsyncMysqlConnection,
    coupon: CouponId,
) -> Result<Result<SaleRules, PurchaseRejection>, SaleStockError> {
    use chrono::TimeZone;
    let row: Option<(i32, i64, chrono::NaiveDateTime, chrono::NaiveDateTime, bool)> =
        coupons::table
            .find(coupon.get())
            .select((
                coupons::per_user_limit,
                coupons::price_cents,
                coupons::sale_starts_at,
                coupons::sale_ends_at,
                coupons::is_deleted,
            ))
            .first(conn)
            .await
            .optional()?;
    let Some((limit, price_cents, starts, ends, deleted)) = row else {
        return Ok(Err(PurchaseRejection::CouponNotFound));
    };
    if deleted {
        return Ok(Err(PurchaseRejection::CouponNotFound));
    }
    let window = SaleWindow {
        starts_at: Utc.from_utc_datetime(&starts),
        ends_at: Utc.from_utc_datetime(&ends),
    };
    match window.state(Utc::now()) {
        SaleState::NotStarted => return Ok(Err(PurchaseRejection::SaleNotStarted)),
        SaleState::Ended => return Ok(Err(PurchaseRejection::SaleEnded)),
        SaleState::Open => {}
    }
    Ok(Ok(SaleRules { limit, price_cents }))
}

/// Creates the coupon's stock row from its total on first use.
async fn ensure_stock_row(
    conn: &mut AsyncMysqlConnection,
    coupon: CouponId,
) -> Result<(), SaleStockError> {
    diesel::sql_query(
        "INSERT IGNORE INTO sale_stock (coupon_id, remaining, version) \
         SELECT id, total_quantity, 0 FROM coupons WHERE id = ?",
    )
    .bind::<diesel::sql_types::BigInt, _>(coupon.get())
    .execute(conn)
    .await?;
    Ok(())
}

async fn units_of(
    conn: &mut AsyncMysqlConnection,
    coupon: CouponId,
    user: &UserId,
    lock: bool,
) -> Result<i32, SaleStockError> {
    let query = sale_buyers::table
        .find((coupon.get(), user.as_str()))
        .select(sale_buyers::units);
    let units = if lock {
        query.for_update().first(conn).await.optional()?
    } else {
        query.first(conn).await.optional()?
    };
    Ok(units.unwrap_or(0))
}

async fn add_unit(
    conn: &mut AsyncMysqlConnection,
    coupon: CouponId,
    user: &UserId,
) -> Result<(), SaleStockError> {
    diesel::insert_into(sale_buyers::table)
        .values((
            sale_buyers::coupon_id.eq(coupon.get()),
            sale_buyers::user_id.eq(user.as_str()),
            sale_buyers::units.eq(1),
        ))
        .on_conflict(diesel::dsl::DuplicatedKeys)
        .do_update()
        .set(sale_buyers::units.eq(sale_buyers::units + 1))
        .execute(conn)
        .await?;
    Ok(())
}

/// Pessimistic: lock the stock row for the whole check-and-decrement.
pub async fn reserve_pessimistic(
    conn: &mut AsyncMysqlConnection,
    coupon: CouponId,
    user: &UserId,
) -> Result<Decision, SaleStockError> {
    ensure_stock_row(conn, coupon).await?;
    conn.transaction::<_, SaleStockError, _>(async |conn| {
        let rules = match rules(conn, coupon).await? {
            Ok(rules) => rules,
            Err(rejection) => return Ok(Err(rejection)),
        };
        let remaining: i32 = sale_stock::table
            .find(coupon.get())
            .select(sale_stock::remaining)
            .for_update()
            .first(conn)
            .await?;
        if units_of(conn, coupon, user, true).await? >= rules.limit {
            return Ok(Err(PurchaseRejection::LimitReached));
        }
        if remaining <= 0 {
            return Ok(Err(PurchaseRejection::SoldOut));
        }
        diesel::update(sale_stock::table.find(coupon.get()))
            .set(sale_stock::remaining.eq(sale_stock::remaining - 1))
            .execute(conn)
            .await?;
        add_unit(conn, coupon, user).await?;
        Ok(Ok(rules.price_cents))
    })
    .await
}

/// Optimistic: read without locks, then decrement only if the version is unchanged;
/// a conflict rolls back and retries.
pub async fn reserve_optimistic(
    conn: &mut AsyncMysqlConnection,
    coupon: CouponId,
    user: &UserId,
) -> Result<Decision, SaleStockError> {
    ensure_stock_row(conn, coupon).await?;
    for _ in 0..OPTIMISTIC_RETRIES {
        let attempt = conn
            .transaction::<_, SaleStockError, _>(async |conn| {
                let rules = match rules(conn, coupon).await? {
                    Ok(rules) => rules,
                    Err(rejection) => return Ok(Some(Err(rejection))),
                };
                let (remaining, version): (i32, i64) = sale_stock::table
                    .find(coupon.get())
                    .select((sale_stock::remaining, sale_stock::version))
                    .first(conn)
                    .await?;
                if units_of(conn, coupon, user, false).await? >= rules.limit {
                    return Ok(Some(Err(PurchaseRejection::LimitReached)));
                }
                if remaining <= 0 {
                    return Ok(Some(Err(PurchaseRejection::SoldOut)));
                }
                let won = diesel::update(
                    sale_stock::table
                        .find(coupon.get())
                        .filter(sale_stock::version.eq(version)),
                )
                .set((
                    sale_stock::remaining.eq(sale_stock::remaining - 1),
                    sale_stock::version.eq(sale_stock::version + 1),
                ))
                .execute(conn)
                .await?;
                if won == 0 {
                    // Someone else moved the version: roll back and try again.
                    return Err(SaleStockError::Contention(0));
                }
                add_unit(conn, coupon, user).await?;
                Ok(Some(Ok(rules.price_cents)))
            })
            .await;
        match attempt {
            Ok(Some(decision)) => return Ok(decision),
            Ok(None) | Err(SaleStockError::Contention(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(SaleStockError::Contention(OPTIMISTIC_RETRIES))
}

/// Gives a unit back (the event could not be published).
pub async fn release(
    conn: &mut AsyncMysqlConnection,
    coupon: CouponId,
    user: &UserId,
) -> Result<(), SaleStockError> {
    conn.transaction::<_, SaleStockError, _>(async |conn| {
        diesel::update(sale_stock::table.find(coupon.get()))
            .set(sale_stock::remaining.eq(sale_stock::remaining + 1))
            .execute(conn)
            .await?;
        diesel::update(sale_buyers::table.find((coupon.get(), user.as_str())))
            .set(sale_buyers::units.eq(sale_buyers::units - 1))
            .execute(conn)
            .await?;
        Ok(())
    })
    .await
}
