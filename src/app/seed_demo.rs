//! Demo catalog for `make dev`: a few coupons with sales open now, one opening soon and
//! one sold in small quantities, so every state of the pages can be seen at once.

use chrono::{Duration, Utc};

use crate::adapters::mysql::coupons::{self, NewCouponRow};
use crate::adapters::mysql::{MysqlError, MysqlPool};

/// Inserts the demo coupons when the catalog has no active coupon; returns how many.
pub async fn run(pool: &MysqlPool) -> Result<usize, MysqlError> {
    let mut conn = pool.get().await?;
    if coupons::count_active(&mut conn).await? > 0 {
        return Ok(0);
    }
    let now = Utc::now().naive_utc();
    let open = (now - Duration::hours(1), now + Duration::days(7));
    let soon = (now + Duration::minutes(10), now + Duration::days(7));
    let demo = [
        (
            "Coffee 50% off",
            "Half price on any coffee, any size.",
            250,
            1_000,
            1,
            open,
        ),
        (
            "Free dessert",
            "A free dessert with any main course.",
            0,
            200,
            1,
            open,
        ),
        (
            "Cinema ticket",
            "One 2D cinema ticket, any day.",
            699,
            50,
            2,
            open,
        ),
        (
            "Last ten: spa day",
            "Full spa day for one. Only ten exist.",
            4_999,
            10,
            1,
            open,
        ),
        (
            "Bookshop voucher",
            "10 off a purchase of 30 or more.",
            100,
            500,
            3,
            open,
        ),
        (
            "Midnight drop: sneakers",
            "Limited sneakers at cost. Opens soon.",
            8_900,
            25,
            1,
            soon,
        ),
    ];
    let rows: Vec<NewCouponRow> = demo
        .into_iter()
        .map(
            |(name, description, price_cents, total, limit, (starts, ends))| NewCouponRow {
                name: name.to_owned(),
                description: description.to_owned(),
                price_cents,
                image_key: None,
                total_quantity: total,
                per_user_limit: limit,
                sale_starts_at: starts,
                sale_ends_at: ends,
                waiting_room_per_sec: None,
            },
        )
        .collect();
    coupons::insert_many(&mut conn, &rows).await
}
