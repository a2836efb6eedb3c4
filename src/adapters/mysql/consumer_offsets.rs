//! The next offset to consume per (topic, partition), committed in the same transaction
//! as the orders written from the records before it.

use diesel::prelude::*;
use diesel_async::{AsyncMysqlConnection, RunQueryDsl};

use super::MysqlError;
use super::schema::consumer_offsets;

/// The committed next offset, or `None` when nothing was consumed yet.
pub async fn get(
    conn: &mut AsyncMysqlConnection,
    topic: &str,
    partition: i32,
) -> Result<Option<i64>, MysqlError> {
    Ok(consumer_offsets::table
        .find((topic, partition))
        .select(consumer_offsets::next_offset)
        .first(conn)
        .await
        .optional()?)
}
