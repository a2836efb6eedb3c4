//! The harness itself: isolation and cleanup.

use deadpool_redis::redis::AsyncCommands;
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};
use secrecy::ExposeSecret;

use flash_sale::adapters::mysql::{MysqlPool, migrate};

use crate::helpers::{TestContext, base_settings, namespace_keys};

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

async fn database_exists(name: &str) -> bool {
    let settings = base_settings();
    let mut conn = AsyncMysqlConnection::establish(settings.mysql.url.expose_secret())
        .await
        .unwrap();
    let count: Count = diesel::sql_query(format!(
        "SELECT COUNT(*) AS n FROM information_schema.schemata WHERE schema_name = '{name}'"
    ))
    .get_result(&mut conn)
    .await
    .unwrap();
    count.n == 1
}

#[tokio::test(flavor = "multi_thread")]
async fn contexts_are_isolated_and_cleaned_up() {
    let a = TestContext::new().await;
    let b = TestContext::new().await;
    assert_ne!(a.db_name, b.db_name);
    assert_ne!(a.settings.redis.namespace, b.settings.redis.namespace);
    assert_ne!(a.settings.kafka.topic_prefix, b.settings.kafka.topic_prefix);

    // Migrated: the tables exist in a's database.
    let mut conn = a.mysql().await;
    let tables: Count = diesel::sql_query(format!(
        "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = '{}' \
         AND table_name IN ('users', 'coupons', 'orders', 'consumer_offsets')",
        a.db_name
    ))
    .get_result(&mut conn)
    .await
    .unwrap();
    assert_eq!(tables.n, 4);
    drop(conn);

    // Keys written under a's namespace are invisible to b's and removed with a.
    let mut redis = a.redis().await;
    let key = a.keys().coupon_stock(1);
    let _: () = redis.set(&key, "1").await.unwrap();
    assert_eq!(namespace_keys(&a.settings.redis).await.unwrap(), vec![key]);
    assert!(namespace_keys(&b.settings.redis).await.unwrap().is_empty());

    let (a_db, a_redis) = (a.db_name.clone(), a.settings.redis.clone());
    drop(a);
    assert!(
        !database_exists(&a_db).await,
        "database dropped with its context"
    );
    assert!(
        namespace_keys(&a_redis).await.unwrap().is_empty(),
        "keys deleted"
    );
    assert!(
        database_exists(&b.db_name).await,
        "the other context is untouched"
    );
}

#[derive(diesel::QueryableByName)]
struct CreateTable {
    #[diesel(sql_type = diesel::sql_types::Text)]
    #[diesel(column_name = "Create Table")]
    sql: String,
}

#[derive(diesel::QueryableByName)]
struct TableName {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
}

/// Each table's `SHOW CREATE TABLE`, by name.
async fn schema(ctx: &TestContext) -> Vec<(String, String)> {
    let mut conn = ctx.mysql().await;
    let tables: Vec<TableName> = diesel::sql_query(format!(
        "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = '{}' \
         ORDER BY table_name",
        ctx.db_name
    ))
    .load(&mut conn)
    .await
    .unwrap();
    let mut schema = Vec::new();
    for TableName { name } in tables {
        let create: CreateTable = diesel::sql_query(format!("SHOW CREATE TABLE `{name}`"))
            .get_result(&mut conn)
            .await
            .unwrap();
        schema.push((name, create.sql));
    }
    schema
}

/// A context's database is a copy of this run's migrated template: it must be what
/// migrating would have made (indexes, checks, defaults), and migrated as far as the
/// app can tell.
#[tokio::test(flavor = "multi_thread")]
async fn a_copied_database_is_the_migrated_schema() {
    let copied = TestContext::new().await;
    let migrated = TestContext::unmigrated().await;
    let pool = MysqlPool::new(&migrated.settings.mysql).unwrap();
    assert!(!migrate::run_pending(&pool).await.unwrap().is_empty());

    let (copy, original) = (schema(&copied).await, schema(&migrated).await);
    assert!(copy.iter().any(|(name, _)| name == "coupons"), "{copy:?}");
    assert_eq!(copy, original);
    let pool = MysqlPool::new(&copied.settings.mysql).unwrap();
    assert!(
        migrate::run_pending(&pool).await.unwrap().is_empty(),
        "nothing pending in a copy"
    );
}
