//! Migrations apply, revert and re-apply cleanly, and leave the indexes the design needs.

use diesel_async::{AsyncMigrationHarness, RunQueryDsl};
use diesel_migrations::MigrationHarness;
use flash_sale::adapters::mysql::{MysqlPool, migrate};

use crate::helpers::TestContext;

#[derive(diesel::QueryableByName, Debug, PartialEq)]
struct IndexColumn {
    #[diesel(sql_type = diesel::sql_types::Text)]
    column_name: String,
}

#[tokio::test(flavor = "multi_thread")]
async fn up_down_up_and_the_browse_index_exists() {
    let ctx = TestContext::unmigrated().await;
    let pool = MysqlPool::new(&ctx.settings.mysql).unwrap();

    let shipped = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .count();
    let applied = migrate::run_pending(&pool).await.unwrap();
    assert_eq!(applied.len(), shipped, "{applied:?}");
    assert!(
        migrate::run_pending(&pool).await.unwrap().is_empty(),
        "second run applies nothing"
    );

    let mut harness = AsyncMigrationHarness::new(pool.get().await.unwrap());
    harness.revert_all_migrations(migrate::MIGRATIONS).unwrap();
    drop(harness);
    assert_eq!(
        migrate::run_pending(&pool).await.unwrap().len(),
        shipped,
        "re-applies after revert"
    );

    let mut conn = ctx.mysql().await;
    let columns: Vec<IndexColumn> = diesel::sql_query(format!(
        "SELECT column_name AS column_name FROM information_schema.statistics \
         WHERE table_schema = '{}' AND table_name = 'coupons' \
         AND index_name = 'idx_coupons_is_deleted_id' ORDER BY seq_in_index",
        ctx.db_name
    ))
    .load(&mut conn)
    .await
    .unwrap();
    let columns: Vec<_> = columns.into_iter().map(|c| c.column_name).collect();
    assert_eq!(columns, ["is_deleted", "id"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_migrators_apply_each_migration_once() {
    let ctx = TestContext::unmigrated().await;
    let pool = MysqlPool::new(&ctx.settings.mysql).unwrap();
    // Separate tasks, as separate processes would be: the harness blocks its thread.
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { migrate::run_pending(&pool).await })
        })
        .collect();
    let shipped = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .count();
    let mut total = 0;
    for run in runs {
        total += run.await.unwrap().unwrap().len();
    }
    assert_eq!(
        total, shipped,
        "the advisory lock lets one process apply, the others find nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn seeding_demo_coupons_is_idempotent() {
    let ctx = TestContext::new().await;
    let pool = MysqlPool::new(&ctx.settings.mysql).unwrap();
    let first = flash_sale::app::seed_demo::run(&pool).await.unwrap();
    assert!(first > 0);
    assert_eq!(flash_sale::app::seed_demo::run(&pool).await.unwrap(), 0);
}
