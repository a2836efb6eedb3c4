//! Embedded diesel migrations (`migrations/`), applied by `flash-sale migrate` or, in
//! development, at start-up. Several processes may start at once, so the run holds a
//! MySQL advisory lock: one applies, the others wait and then find nothing pending.

use diesel::sql_types::{BigInt, Nullable};
use diesel_async::{AsyncMigrationHarness, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use super::{MysqlError, MysqlPool};

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

const LOCK_NAME: &str = "flash_sale_migrations";
const LOCK_WAIT_SECS: i64 = 60;

#[derive(diesel::QueryableByName)]
struct LockResult {
    #[diesel(sql_type = Nullable<BigInt>)]
    acquired: Option<i64>,
}

/// Applies every pending migration; returns the versions applied (empty when up to date).
///
/// Must run on a multi-threaded tokio runtime (diesel's migration harness is synchronous
/// and `AsyncMigrationHarness` bridges it with `block_in_place`).
pub async fn run_pending(pool: &MysqlPool) -> Result<Vec<String>, MysqlError> {
    let mut conn = pool.get().await?;
    let lock: LockResult = diesel::sql_query(format!(
        "SELECT GET_LOCK('{LOCK_NAME}', {LOCK_WAIT_SECS}) AS acquired"
    ))
    .get_result(&mut conn)
    .await?;
    if lock.acquired != Some(1) {
        return Err(MysqlError::Migration(format!(
            "another process held the migration lock for {LOCK_WAIT_SECS} s"
        )));
    }
    let mut harness = AsyncMigrationHarness::new(conn);
    let applied = harness
        .run_pending_migrations(MIGRATIONS)
        .map(|versions| versions.iter().map(ToString::to_string).collect())
        .map_err(|e| MysqlError::Migration(e.to_string()));
    let mut conn = harness.into_inner();
    // The lock is per connection; release it before the connection returns to the pool.
    diesel::sql_query(format!("DO RELEASE_LOCK('{LOCK_NAME}')"))
        .execute(&mut conn)
        .await?;
    applied
}
