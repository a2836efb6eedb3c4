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

/// Where a partition's new owner starts, and the epoch that fences every earlier owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    pub next_offset: i64,
    pub epoch: i64,
}

/// Takes a partition over: bumps its epoch (so commits of any earlier owner are refused
/// from now on) and answers the committed next offset (0 when nothing was consumed).
pub async fn claim(
    conn: &mut AsyncMysqlConnection,
    topic: &str,
    partition: i32,
) -> Result<Claim, MysqlError> {
    use diesel_async::AsyncConnection;
    conn.transaction::<_, MysqlError, _>(async |conn| {
        diesel::insert_into(consumer_offsets::table)
            .values((
                consumer_offsets::topic.eq(topic),
                consumer_offsets::partition_id.eq(partition),
                consumer_offsets::next_offset.eq(0),
                consumer_offsets::owner_epoch.eq(1),
            ))
            .on_conflict(diesel::dsl::DuplicatedKeys)
            .do_update()
            .set(consumer_offsets::owner_epoch.eq(consumer_offsets::owner_epoch + 1))
            .execute(conn)
            .await?;
        let (next_offset, epoch) = consumer_offsets::table
            .find((topic, partition))
            .select((consumer_offsets::next_offset, consumer_offsets::owner_epoch))
            .first::<(i64, i64)>(conn)
            .await?;
        Ok(Claim { next_offset, epoch })
    })
    .await
}

/// A newer owner has claimed the partition: this consumer must stop.
#[derive(Debug, thiserror::Error)]
#[error("partition {partition} of {topic} was taken over (epoch {stored} > {ours})")]
pub struct Fenced {
    pub topic: String,
    pub partition: i32,
    pub stored: i64,
    pub ours: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error(transparent)]
    Fenced(#[from] Fenced),
    #[error(transparent)]
    Mysql(#[from] MysqlError),
}

impl From<diesel::result::Error> for CommitError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Mysql(e.into())
    }
}

/// Stores `next_offset` for a partition unless a newer owner has claimed it.
/// Call inside the transaction that wrote the batch's effects (it locks the row).
pub async fn commit(
    conn: &mut AsyncMysqlConnection,
    topic: &str,
    partition: i32,
    next_offset: i64,
    epoch: i64,
) -> Result<(), CommitError> {
    let stored: Option<i64> = consumer_offsets::table
        .find((topic, partition))
        .select(consumer_offsets::owner_epoch)
        .for_update()
        .first(conn)
        .await
        .optional()?;
    if let Some(stored) = stored
        && stored > epoch
    {
        return Err(Fenced {
            topic: topic.to_owned(),
            partition,
            stored,
            ours: epoch,
        }
        .into());
    }
    diesel::insert_into(consumer_offsets::table)
        .values((
            consumer_offsets::topic.eq(topic),
            consumer_offsets::partition_id.eq(partition),
            consumer_offsets::next_offset.eq(next_offset),
            consumer_offsets::owner_epoch.eq(epoch),
        ))
        .on_conflict(diesel::dsl::DuplicatedKeys)
        .do_update()
        .set((
            consumer_offsets::next_offset.eq(next_offset),
            consumer_offsets::owner_epoch.eq(epoch),
        ))
        .execute(conn)
        .await?;
    Ok(())
}
