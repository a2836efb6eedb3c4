//! Catalog: admin management, browsing through the cache levels, and the protections
//! against cache breakdown and penetration, each proven against the real MariaDB and
//! Redis.

use std::time::Duration;

use diesel_async::RunQueryDsl;
use flash_sale::roles::Role;
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};

use crate::fixtures::coupon_body;
use crate::helpers::{TestApp, TestContext};

const DB_LOADS: &str = r#"flash_sale_catalog_lookups_total{kind="coupon",outcome="db_load"}"#;
const PAGE_LOADS: &str = r#"flash_sale_catalog_lookups_total{kind="page",outcome="db_load"}"#;

#[tokio::test(flavor = "multi_thread")]
async fn admin_manages_coupons_and_shoppers_browse_them() {
    let ctx = TestContext::new().await;
    let app = ctx.spawn(Role::Api).await;
    let admin = app.admin_token(&ctx).await;
    let shopper = app
        .register_and_login("shopper@example.com", "shopper password")
        .await;

    // Only admins manage coupons.
    let body = coupon_body("Coffee", 100, 3600, 3600);
    let (status, err) = app
        .send(Method::POST, "/api/admin/coupons", None, Some(&body))
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (401, Some("UNAUTHORIZED"))
    );
    let (status, err) = app
        .send(
            Method::POST,
            "/api/admin/coupons",
            Some(&shopper),
            Some(&body),
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (403, Some("FORBIDDEN"))
    );

    let coupon = app.create_coupon(&admin, &body).await;
    let id = coupon["id"].as_i64().unwrap();
    assert_eq!(coupon["name"], "Coffee");
    assert_eq!(coupon["remaining"], 100);
    assert_eq!(coupon["per_user_limit"], 1);
    assert!(coupon["image_url"].is_null());

    let (status, page) = app.get_json("/api/coupons?page=1&size=10").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["page"], 1);
    assert_eq!(page["size"], 10);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["id"], id);
    let (status, one) = app.get_json(&format!("/api/coupons/{id}")).await;
    assert_eq!((status, &one), (200, &coupon));
    let (status, stock) = app.get_json(&format!("/api/coupons/{id}/stock")).await;
    assert_eq!(
        (status, stock),
        (200, json!({"coupon_id": id, "remaining": 100}))
    );

    // Before the sale starts the quantity may change; the real-time stock follows.
    let changed = coupon_body("Coffee 2", 120, 3600, 3600);
    let (status, updated) = app
        .send(
            Method::PUT,
            &format!("/api/admin/coupons/{id}"),
            Some(&admin),
            Some(&changed),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["name"], "Coffee 2");
    assert_eq!(updated["total_quantity"], 120);
    let (_, stock) = app.get_json(&format!("/api/coupons/{id}/stock")).await;
    assert_eq!(stock["remaining"], 120);
    // The admin change invalidated the caches: readers see it at once on this instance.
    let (_, one) = app.get_json(&format!("/api/coupons/{id}")).await;
    assert_eq!(one["name"], "Coffee 2");

    // A running sale's quantity is fixed.
    let live = app
        .create_coupon(&admin, &coupon_body("Live", 10, -10, 3600))
        .await;
    let live_id = live["id"].as_i64().unwrap();
    let (status, err) = app
        .send(
            Method::PUT,
            &format!("/api/admin/coupons/{live_id}"),
            Some(&admin),
            Some(&coupon_body("Live", 11, -10, 3600)),
        )
        .await;
    assert_eq!(status, 409, "{err}");
    assert_eq!(err["error"]["code"], "SALE_IN_PROGRESS");
    assert_eq!(err["error"]["field"], "total_quantity");

    // Invalid fields are 422 naming the field.
    let mut bad = coupon_body("Bad", 10, 0, 3600);
    bad["per_user_limit"] = json!(0);
    let (status, err) = app
        .send(Method::POST, "/api/admin/coupons", Some(&admin), Some(&bad))
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (422, Some("INVALID_COUPON"))
    );
    assert_eq!(err["error"]["field"], "per_user_limit");
    let bad = coupon_body("Bad", 10, 0, -5);
    let (_, err) = app
        .send(Method::POST, "/api/admin/coupons", Some(&admin), Some(&bad))
        .await;
    assert_eq!(err["error"]["field"], "sale_ends_at");

    // Soft delete: gone from browsing, stock and purchase checks; the row stays.
    let (status, _) = app
        .send(
            Method::DELETE,
            &format!("/api/admin/coupons/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = app
        .send(
            Method::DELETE,
            &format!("/api/admin/coupons/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 404, "deleting twice");
    for path in [
        format!("/api/coupons/{id}"),
        format!("/api/coupons/{id}/stock"),
    ] {
        let (status, err) = app.get_json(&path).await;
        assert_eq!(
            (status, err["error"]["code"].as_str()),
            (404, Some("COUPON_NOT_FOUND")),
            "{path}"
        );
    }
    let (_, page) = app.get_json("/api/coupons").await;
    let ids: Vec<i64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [live_id]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_browse_input_gets_the_documented_4xx() {
    let ctx = TestContext::new().await;
    let app = ctx.spawn(Role::Api).await;
    for (path, status, code, field) in [
        ("/api/coupons?page=0", 422, "INVALID_PAGE", Some("page")),
        ("/api/coupons?size=10000", 422, "INVALID_PAGE", Some("size")),
        ("/api/coupons?size=0", 422, "INVALID_PAGE", Some("size")),
        ("/api/coupons?page=abc", 422, "INVALID_PAGE", Some("page")),
        ("/api/coupons?page=-1", 422, "INVALID_PAGE", Some("page")),
        ("/api/coupons/abc", 400, "INVALID_REQUEST", None),
        (
            "/api/coupons/99999999999999999999",
            400,
            "INVALID_REQUEST",
            None,
        ),
        ("/api/coupons/-1", 404, "COUPON_NOT_FOUND", None),
        ("/api/coupons/424242", 404, "COUPON_NOT_FOUND", None),
        ("/api/coupons/abc/stock", 400, "INVALID_REQUEST", None),
    ] {
        let (got, body) = app.get_json(path).await;
        assert_eq!(got, status, "{path}: {body}");
        assert_eq!(body["error"]["code"], code, "{path}");
        assert_eq!(body["error"]["field"].as_str(), field, "{path}");
    }
    let (status, page) = app.get_json("/api/coupons?page=5&size=100").await;
    assert_eq!(status, 200, "past the end is an empty page: {page}");
    assert_eq!(page["items"], json!([]));
    app.stop().await;
}

#[derive(diesel::QueryableByName, Debug)]
struct ExplainRow {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    table: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    r#type: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    key: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>, column_name = "Extra")]
    extra: Option<String>,
}

/// The page query walks the `(is_deleted, id)` index: no filesort, no full scan.
#[tokio::test(flavor = "multi_thread")]
async fn page_query_uses_the_composite_index_on_100k_rows() {
    let ctx = TestContext::new().await;
    let mut conn = ctx.mysql().await;
    diesel::sql_query("SET SESSION max_recursive_iterations = 200000")
        .execute(&mut conn)
        .await
        .unwrap();
    diesel::sql_query(
        "INSERT INTO coupons (name, description, price_cents, total_quantity, per_user_limit, \
         sale_starts_at, sale_ends_at, is_deleted) \
         WITH RECURSIVE seq (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 100000) \
         SELECT CONCAT('coupon ', n), '', 100, 10, 1, NOW(), NOW() + INTERVAL 1 DAY, n % 10 = 0 FROM seq",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    diesel::sql_query("ANALYZE TABLE coupons")
        .execute(&mut conn)
        .await
        .unwrap();

    for (limit, offset) in [(20, 0), (20, 50_000)] {
        let explain = format!(
            "EXPLAIN {}",
            flash_sale::adapters::mysql::coupons::PAGE_SQL
                .replacen('?', &limit.to_string(), 1)
                .replacen('?', &offset.to_string(), 1)
        );
        let rows: Vec<ExplainRow> = diesel::sql_query(&explain).load(&mut conn).await.unwrap();
        let plan = format!("{rows:#?}");
        for row in &rows {
            let extra = row.extra.clone().unwrap_or_default();
            assert!(
                !extra.contains("filesort"),
                "filesort at offset {offset}: {plan}"
            );
            // The derived table holds just the page's ids; scanning it is not a table scan.
            let derived = row
                .table
                .as_deref()
                .is_some_and(|t| t.starts_with("<derived"));
            if !derived {
                assert_ne!(
                    row.r#type.as_deref(),
                    Some("ALL"),
                    "full scan at offset {offset}: {plan}"
                );
            }
        }
        // The inner select (the derived table's source) reads the composite index only.
        let inner = rows
            .iter()
            .find(|r| r.key.as_deref() == Some("idx_coupons_is_deleted_id"))
            .unwrap_or_else(|| panic!("index not used: {plan}"));
        assert!(
            inner
                .extra
                .clone()
                .unwrap_or_default()
                .contains("Using index"),
            "not covering: {plan}"
        );
        // The outer join reads page rows by primary key.
        assert!(
            rows.iter()
                .any(|r| r.table.as_deref() == Some("c") && r.key.as_deref() == Some("PRIMARY")),
            "{plan}"
        );
    }

    // And the query itself returns the right rows (deleted ones skipped, id order).
    let page = flash_sale::adapters::mysql::coupons::page(&mut conn, 5, 0)
        .await
        .unwrap();
    let ids: Vec<i64> = page.iter().map(|c| c.id.get()).collect();
    assert_eq!(ids, [1, 2, 3, 4, 5]);
    let page = flash_sale::adapters::mysql::coupons::page(&mut conn, 3, 8)
        .await
        .unwrap();
    let ids: Vec<i64> = page.iter().map(|c| c.id.get()).collect();
    assert_eq!(ids, [9, 11, 12], "id 10 is soft-deleted");
}

/// Cache breakdown: when a hot coupon's cache entry expires, 1,000 concurrent requests
/// cause exactly one MySQL load; the others are answered from cache or told 503 at once.
/// The table is write-locked while the requests arrive, so the single rebuilder is held
/// in MySQL far longer than the lock's base TTL (the watchdog must keep the lock).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "holds a table lock for six seconds under 1,000 requests: scripts/test.sh runs it alone"]
async fn expired_hot_coupon_is_rebuilt_by_exactly_one_request() {
    let ctx = TestContext::new().await;
    // A lock of 2 s (production: 5 s), so that a watchdog late by a second on a busy
    // machine still keeps it; MySQL may wait out the table lock held below.
    let mut settings = ctx.settings.clone();
    settings.catalog.lock_ttl_ms = 2000;
    settings.mysql.acquire_timeout_ms = 6000;
    let app = ctx.spawn_with(Role::Api, settings.clone()).await;
    let admin = app.admin_token(&ctx).await;
    let id = app
        .coupon_id(&admin, &coupon_body("Hot", 1000, -10, 3600))
        .await;
    let path = format!("/api/coupons/{id}");
    assert_eq!(app.get_json(&path).await.0, 200);
    let loads_before = app.metric(DB_LOADS).await;
    assert_eq!(loads_before, 1.0);

    // Let both cache levels expire (test.toml: 300 ms local, 1.5 s Redis).
    let redis_ttl = Duration::from_millis(ctx.settings.catalog.redis_ttl_ms);
    tokio::time::sleep(redis_ttl + Duration::from_millis(200)).await;

    let mut locker = ctx.mysql().await;
    diesel::sql_query("LOCK TABLES coupons WRITE")
        .execute(&mut locker)
        .await
        .unwrap();
    let requests = futures_util::stream::iter(0..1000)
        .map(|_| {
            let app = &app;
            let path = &path;
            async move { app.get(path).await.status().as_u16() }
        })
        .buffer_unordered(1000)
        .collect::<Vec<u16>>();
    let unlock = async {
        // Hold the table three times the lock's base TTL.
        tokio::time::sleep(Duration::from_millis(settings.catalog.lock_ttl_ms * 3)).await;
        diesel::sql_query("UNLOCK TABLES")
            .execute(&mut locker)
            .await
            .unwrap();
    };
    let (statuses, ()) = tokio::join!(requests, unlock);

    let ok = statuses.iter().filter(|s| **s == 200).count();
    let busy = statuses.iter().filter(|s| **s == 503).count();
    assert_eq!(ok + busy, 1000, "only 200 or 503: {statuses:?}");
    assert!(ok >= 1, "the rebuilder answers");
    assert!(busy > 0, "requests during the rebuild are told to retry");
    assert_eq!(
        app.metric(DB_LOADS).await - loads_before,
        1.0,
        "exactly one MySQL load"
    );

    // After the rebuild everyone is served from cache.
    for _ in 0..20 {
        assert_eq!(app.get_json(&path).await.0, 200);
    }
    assert_eq!(app.metric(DB_LOADS).await - loads_before, 1.0);
    app.stop().await;
}

/// Cache penetration: a missing id reaches MySQL once, then the null marker answers.
#[tokio::test(flavor = "multi_thread")]
async fn nonexistent_id_hits_mysql_once() {
    let ctx = TestContext::new().await;
    // The burst below must end while the marker lives, even on a busy machine.
    let mut settings = ctx.settings.clone();
    settings.catalog.null_ttl_ms = 5_000;
    let app = ctx.spawn_with(Role::Api, settings.clone()).await;
    let path = "/api/coupons/777777";
    let (status, _) = app.get_json(path).await;
    assert_eq!(status, 404);
    let statuses = futures_util::stream::iter(0..999)
        .map(|_| async { app.get(path).await.status().as_u16() })
        .buffer_unordered(200)
        .collect::<Vec<u16>>()
        .await;
    assert!(statuses.iter().all(|s| *s == 404), "{statuses:?}");
    assert_eq!(
        app.metric(DB_LOADS).await,
        1.0,
        "one MySQL query for 1,000 requests"
    );

    // The marker is short-lived: once it expires, a coupon created under that id
    // would be found (here: the next miss queries MySQL again).
    tokio::time::sleep(Duration::from_millis(settings.catalog.null_ttl_ms + 200)).await;
    assert_eq!(app.get_json(path).await.0, 404);
    assert_eq!(app.metric(DB_LOADS).await, 2.0);
    app.stop().await;
}

/// Both cache levels honour their TTLs.
#[tokio::test(flavor = "multi_thread")]
async fn ttls_are_honoured_at_both_levels() {
    let ctx = TestContext::new().await;
    let app = ctx.spawn(Role::Api).await;
    let admin = app.admin_token(&ctx).await;
    let id = app
        .coupon_id(&admin, &coupon_body("TTL", 5, 3600, 3600))
        .await;
    let path = format!("/api/coupons/{id}");
    let local = Duration::from_millis(ctx.settings.catalog.local_ttl_ms);
    let shared = Duration::from_millis(ctx.settings.catalog.redis_ttl_ms);
    let hits = |outcome: &str| {
        format!(r#"flash_sale_catalog_lookups_total{{kind="coupon",outcome="{outcome}"}}"#)
    };

    app.get_json(&path).await;
    assert_eq!(app.metric(DB_LOADS).await, 1.0);
    let mut redis = ctx.redis().await;
    let pttl: i64 = deadpool_redis::redis::cmd("PTTL")
        .arg(ctx.keys().catalog_coupon(id))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(
        pttl > 0 && pttl <= shared.as_millis() as i64,
        "Redis TTL {pttl} ms"
    );

    app.get_json(&path).await;
    assert_eq!(
        app.metric(&hits("local_hit")).await,
        1.0,
        "within the local TTL"
    );

    tokio::time::sleep(local + Duration::from_millis(100)).await;
    app.get_json(&path).await;
    assert_eq!(
        app.metric(&hits("redis_hit")).await,
        1.0,
        "local expired, Redis still holds it"
    );
    assert_eq!(app.metric(DB_LOADS).await, 1.0);

    tokio::time::sleep(shared).await;
    app.get_json(&path).await;
    assert_eq!(app.metric(DB_LOADS).await, 2.0, "both expired: MySQL again");

    // Pages too.
    app.get_json("/api/coupons").await;
    app.get_json("/api/coupons").await;
    assert_eq!(app.metric(PAGE_LOADS).await, 1.0);
    tokio::time::sleep(shared + Duration::from_millis(100)).await;
    app.get_json("/api/coupons").await;
    assert_eq!(app.metric(PAGE_LOADS).await, 2.0);
    app.stop().await;
}

/// The rebuild lock: a holder outliving the base TTL keeps it (watchdog); a crashed
/// holder's lock lapses so the next rebuild can happen.
#[tokio::test(flavor = "multi_thread")]
async fn rebuild_lock_watchdog_and_crashed_holder() {
    use flash_sale::adapters::redis::RedisPool;
    use flash_sale::adapters::redis::rebuild_lock::RebuildLocks;

    let ctx = TestContext::new().await;
    let ttl = Duration::from_millis(300);
    let pool = RedisPool::new(&ctx.settings.redis).unwrap();
    let locks = RebuildLocks::new(pool, ttl);
    let keys = ctx.keys();
    let resource = keys.rebuild_lock(&keys.catalog_coupon(1));

    let holder = locks
        .try_acquire(&resource)
        .await
        .unwrap()
        .expect("free lock");
    assert!(
        locks.try_acquire(&resource).await.unwrap().is_none(),
        "held"
    );
    tokio::time::sleep(ttl * 4).await;
    assert!(
        locks.try_acquire(&resource).await.unwrap().is_none(),
        "watchdog kept it past 4 TTLs"
    );
    holder.release().await;
    let again = locks
        .try_acquire(&resource)
        .await
        .unwrap()
        .expect("released lock is free");

    // A crash: the holder vanishes without releasing (dropping stops the watchdog).
    drop(again);
    assert!(
        locks.try_acquire(&resource).await.unwrap().is_none(),
        "still held right after"
    );
    tokio::time::sleep(ttl + Duration::from_millis(150)).await;
    let next = locks.try_acquire(&resource).await.unwrap();
    assert!(
        next.is_some(),
        "a crashed holder's lock lapses after its TTL"
    );
    next.unwrap().release().await;
}

fn png() -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend_from_slice(&[0u8; 64]);
    bytes
}

async fn upload(
    app: &TestApp,
    token: &str,
    id: i64,
    field: &str,
    bytes: Vec<u8>,
    mime: &str,
) -> (u16, Value) {
    let part = reqwest::multipart::Part::bytes(bytes)
        .file_name("x")
        .mime_str(mime)
        .unwrap();
    let form = reqwest::multipart::Form::new().part(field.to_owned(), part);
    let response = app
        .client
        .post(app.url(&format!("/api/admin/coupons/{id}/image")))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Uploads an image to a new coupon as the admin and checks that the api serves it at
/// the `/objects/` URL the coupon names; answers the coupon id, the admin token and URL.
async fn upload_and_fetch(ctx: &TestContext, app: &TestApp, name: &str) -> (i64, String, String) {
    let admin = app.admin_token(ctx).await;
    let id = app
        .coupon_id(&admin, &coupon_body(name, 5, 3600, 3600))
        .await;
    let (status, coupon) = upload(app, &admin, id, "image", png(), "image/png").await;
    assert_eq!(status, 200, "{coupon}");
    let url = coupon["image_url"].as_str().unwrap().to_owned();
    assert!(url.starts_with("/objects/coupons/"), "{url}");
    let response = app.get(&url).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/png");
    assert_eq!(response.bytes().await.unwrap().as_ref(), png().as_slice());
    (id, admin, url)
}

/// Image upload through the API with the filesystem store, and bad uploads.
#[tokio::test(flavor = "multi_thread")]
async fn image_upload_round_trip_and_bad_uploads() {
    let ctx = TestContext::new().await;
    let mut settings = ctx.settings.clone();
    let root = std::env::temp_dir().join(format!("fst-objects-{}", uuid::Uuid::new_v4()));
    settings.object_store.filesystem.root = root.clone();
    let app = ctx.spawn_with(Role::Api, settings).await;
    let shopper = app
        .register_and_login("pic@example.com", "shopper password")
        .await;
    let (id, admin, url) = upload_and_fetch(&ctx, &app, "Pic").await;
    let (_, listed) = app.get_json(&format!("/api/coupons/{id}")).await;
    assert_eq!(listed["image_url"], url.as_str());

    // A second upload replaces the first, whose object is removed.
    let (_, coupon) = upload(&app, &admin, id, "image", png(), "image/png").await;
    assert_ne!(coupon["image_url"], url.as_str());
    assert_eq!(app.get(&url).await.status(), 404);

    let too_big = {
        let mut b = png();
        b.resize(ctx.settings.catalog.max_image_bytes + 1, 0);
        b
    };
    for (token, field, bytes, mime, status, code) in [
        (
            &admin,
            "image",
            too_big,
            "image/png",
            413,
            "IMAGE_TOO_LARGE",
        ),
        (
            &admin,
            "image",
            b"<svg onload=alert(1)>".to_vec(),
            "image/png",
            415,
            "UNSUPPORTED_IMAGE",
        ),
        (&admin, "photo", png(), "image/png", 400, "INVALID_REQUEST"),
        (&shopper, "image", png(), "image/png", 403, "FORBIDDEN"),
    ] {
        let (got, body) = upload(&app, token, id, field, bytes, mime).await;
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{body}"
        );
    }
    let (status, _) = upload(&app, &admin, 999_999, "image", png(), "image/png").await;
    assert_eq!(status, 404);
    app.stop().await;
    let _ = std::fs::remove_dir_all(root);
}

/// The S3 store against a real S3-compatible server (moto, started by `make test`).
#[tokio::test(flavor = "multi_thread")]
async fn s3_store_round_trip() {
    use flash_sale::adapters::object_store::{ObjectStore, ObjectStoreError, S3Store};
    let (endpoint, bucket) = moto_bucket().await;

    let mut settings = crate::helpers::base_settings().object_store.s3;
    settings.bucket = bucket;
    settings.endpoint = endpoint;
    settings.path_style = true;
    settings.access_key_id = "test".into();
    settings.secret_access_key = "test".to_owned().into();
    let store = S3Store::new(&settings).await;
    store.ping().await.unwrap();
    store
        .put("coupons/1/a.png", png().into(), "image/png")
        .await
        .unwrap();
    let got = store.get("coupons/1/a.png").await.unwrap();
    assert_eq!(got.bytes.as_ref(), png().as_slice());
    assert_eq!(got.content_type, "image/png");
    store.delete("coupons/1/a.png").await.unwrap();
    assert!(matches!(
        store.get("coupons/1/a.png").await,
        Err(ObjectStoreError::NotFound(_))
    ));

    settings.bucket = "no-such-bucket-here".into();
    assert!(
        S3Store::new(&settings).await.ping().await.is_err(),
        "a missing bucket is not ready"
    );
}

/// The moto server of `make test` and a fresh bucket on it.
async fn moto_bucket() -> (String, String) {
    let endpoint = std::env::var("FLASH_TEST_S3_ENDPOINT").expect(
        "FLASH_TEST_S3_ENDPOINT must point at an S3-compatible server (make test starts moto)",
    );
    let bucket = format!("fst-{}", uuid::Uuid::new_v4().simple());
    // moto accepts an unsigned bucket creation.
    let created = reqwest::Client::new()
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "{}", created.status());
    (endpoint, bucket)
}

/// Marks the child process of [`s3_store_without_keys_uses_the_default_credential_chain`].
const DEFAULT_CHAIN_CHILD: &str = "FLASH_TEST_S3_DEFAULT_CHAIN_CHILD";

/// No keys in the settings: the store finds credentials through AWS's default chain,
/// here its first link, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY. The environment of a
/// running test cannot be changed safely, so the test runs itself again as a child
/// process with those variables set.
#[tokio::test(flavor = "multi_thread")]
async fn s3_store_without_keys_uses_the_default_credential_chain() {
    use flash_sale::adapters::object_store::{ObjectStore, S3Store};

    let name = "catalog::s3_store_without_keys_uses_the_default_credential_chain";
    if std::env::var_os(DEFAULT_CHAIN_CHILD).is_none() {
        let run = |with_keys: bool| {
            let mut child = tokio::process::Command::new(std::env::current_exe().unwrap());
            child
                .args([name, "--exact", "--nocapture", "--test-threads=1"])
                .env(DEFAULT_CHAIN_CHILD, if with_keys { "keys" } else { "none" })
                // Nothing else of the chain may answer: no profile, no instance role.
                .env("AWS_CONFIG_FILE", "/nonexistent")
                .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .env_remove("AWS_PROFILE")
                .env_remove("AWS_SESSION_TOKEN")
                .env_remove("AWS_ROLE_ARN")
                .env_remove("AWS_WEB_IDENTITY_TOKEN_FILE")
                .env_remove("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
                .env_remove("AWS_CONTAINER_CREDENTIALS_FULL_URI")
                .kill_on_drop(true);
            if with_keys {
                child
                    .env("AWS_ACCESS_KEY_ID", "chain-key")
                    .env("AWS_SECRET_ACCESS_KEY", "chain-secret");
            } else {
                child
                    .env_remove("AWS_ACCESS_KEY_ID")
                    .env_remove("AWS_SECRET_ACCESS_KEY");
            }
            async move {
                let output = tokio::time::timeout(Duration::from_secs(60), child.output())
                    .await
                    .expect("the child test ends within 60 s")
                    .unwrap();
                let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
                assert!(
                    output.status.success() && stdout.contains("1 passed"),
                    "child with_keys={with_keys}: {}\n{stdout}\n{}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr)
                );
            }
        };
        run(true).await;
        run(false).await;
        return;
    }

    let (endpoint, bucket) = moto_bucket().await;
    let mut settings = crate::helpers::base_settings().object_store.s3;
    settings.bucket = bucket;
    settings.endpoint = endpoint;
    settings.path_style = true;
    settings.access_key_id = String::new();
    settings.secret_access_key = String::new().into();
    let store = S3Store::new(&settings).await;
    if std::env::var(DEFAULT_CHAIN_CHILD).as_deref() == Ok("keys") {
        store.ping().await.unwrap();
        store
            .put("coupons/1/chain.png", png().into(), "image/png")
            .await
            .unwrap();
        let got = store.get("coupons/1/chain.png").await.unwrap();
        assert_eq!(got.bytes.as_ref(), png().as_slice());
    } else {
        // With nothing in the chain the SDK refuses to send the request unsigned.
        let error = store.ping().await.unwrap_err();
        assert!(error.to_string().contains("credentials"), "{error}");
    }
}

/// With kind = "s3" and no public_base_url, image URLs point at the bucket itself
/// (path style on an S3-compatible server), and the image is there.
#[tokio::test(flavor = "multi_thread")]
async fn s3_image_urls_point_at_the_bucket() {
    use flash_sale::adapters::object_store::{ObjectStore, S3Store};

    let (endpoint, bucket) = moto_bucket().await;
    let ctx = TestContext::new().await;
    let mut settings = ctx.settings.clone();
    let store = &mut settings.object_store;
    store.kind = flash_sale::config::ObjectStoreKind::S3;
    store.public_base_url = String::new();
    store.s3.bucket = bucket.clone();
    store.s3.endpoint = endpoint.clone();
    store.s3.path_style = true;
    store.s3.access_key_id = "test".into();
    store.s3.secret_access_key = "test".to_owned().into();
    let store_settings = store.s3.clone();
    let app = ctx.spawn_with(Role::Api, settings).await;
    let admin = app.admin_token(&ctx).await;
    let id = app
        .coupon_id(&admin, &coupon_body("S3 pic", 5, 3600, 3600))
        .await;

    let (status, coupon) = upload(&app, &admin, id, "image", png(), "image/png").await;
    assert_eq!(status, 200, "{coupon}");
    let url = coupon["image_url"].as_str().unwrap();
    let prefix = format!("{endpoint}/{bucket}/");
    let key = url
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{url} is not under {prefix}"));
    assert!(key.starts_with("coupons/"), "{url}");
    // moto refuses anonymous reads (a real bucket would be made public or put behind a
    // CDN), so the object at that key is read with the store's own credentials.
    let stored = S3Store::new(&store_settings).await.get(key).await.unwrap();
    assert_eq!(stored.bytes.as_ref(), png().as_slice());
    app.stop().await;
}

/// S3 behind the entrance: with `public_base_url = "/objects"` the image URLs are paths
/// on this host and the api serves them from the bucket (the deployments' setting, so
/// the pages need no other image origin).
#[tokio::test(flavor = "multi_thread")]
async fn s3_images_can_be_served_through_the_api() {
    let (endpoint, bucket) = moto_bucket().await;
    let ctx = TestContext::new().await;
    let mut settings = ctx.settings.clone();
    let store = &mut settings.object_store;
    store.kind = flash_sale::config::ObjectStoreKind::S3;
    store.public_base_url = "/objects".into();
    store.s3.bucket = bucket;
    store.s3.endpoint = endpoint;
    store.s3.path_style = true;
    store.s3.access_key_id = "test".into();
    store.s3.secret_access_key = "test".to_owned().into();
    let app = ctx.spawn_with(Role::Api, settings).await;
    upload_and_fetch(&ctx, &app, "S3 via api").await;
    assert_eq!(app.get("/objects/coupons/none.png").await.status(), 404);
    app.stop().await;
}

/// A rebuild that loaded from MySQL before an admin change must not write its stale
/// entry back after the invalidation.
#[tokio::test(flavor = "multi_thread")]
async fn a_rebuild_that_began_before_an_admin_change_does_not_write() {
    use flash_sale::adapters::redis::RedisPool;
    use flash_sale::adapters::redis::catalog_cache::{Cached, CatalogCache};

    let ctx = TestContext::new().await;
    let keys = ctx.keys();
    let cache = CatalogCache::new(RedisPool::new(&ctx.settings.redis).unwrap(), keys.clone());
    let ttl = Duration::from_secs(60);
    let (page, coupon) = (keys.catalog_page(1, 20), keys.catalog_coupon(7));

    let (page_before, coupon_before) = (
        cache.version(&page).await.unwrap(),
        cache.version(&coupon).await.unwrap(),
    );
    cache.invalidate(&coupon).await.unwrap(); // the admin change lands mid-rebuild
    assert!(
        !cache
            .put_page(&page, &["{\"stale\":true}".to_owned()], ttl, page_before)
            .await
            .unwrap()
    );
    assert!(
        !cache
            .put_coupon(&coupon, Some("{}"), ttl, coupon_before)
            .await
            .unwrap()
    );
    assert_eq!(cache.get_page(&page).await.unwrap(), Cached::Miss);
    assert_eq!(cache.get_coupon(&coupon).await.unwrap(), Cached::Miss);

    let now = cache.version(&page).await.unwrap();
    assert!(
        cache
            .put_page(&page, &["{}".to_owned()], ttl, now)
            .await
            .unwrap()
    );
    assert_eq!(
        cache.get_page(&page).await.unwrap(),
        Cached::Hit(vec!["{}".to_owned()])
    );
    // The invalidation drops it again.
    cache.invalidate(&coupon).await.unwrap();
    assert_eq!(cache.get_page(&page).await.unwrap(), Cached::Miss);
}
