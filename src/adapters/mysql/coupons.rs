//! Coupon rows.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::{AsyncMysqlConnection, RunQueryDsl};

use super::MysqlError;
use super::schema::coupons;

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
