//! Coupon search with each engine: the index in each api process (the default, filled
//! from and following the real MariaDB), MariaDB's own full-text index, and a real
//! OpenSearch node, which `make test` starts.

use std::time::Duration;

use diesel_async::RunQueryDsl;
use flash_sale::config::SearchEngine;
use flash_sale::roles::Role;
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::fault_proxy::CutProxy;
use crate::fixtures::coupon_body;
use crate::helpers::{TestApp, TestContext, eventually, free_port};

/// Coupons 1–6 in id order: name, description, price, sale start and end relative to
/// now (seconds), deleted.
const FIXED_SET: [(&str, &str, i64, i64, i64, bool); 6] = [
    (
        "Coffee beans",
        "Fresh roast from Colombia",
        900,
        -60,
        3600,
        false,
    ),
    (
        "Tea sampler",
        "Pairs well with coffee cake",
        300,
        -60,
        7200,
        false,
    ),
    (
        "Espresso cups",
        "For coffee lovers",
        1500,
        3600,
        3600,
        false,
    ),
    (
        "Coffeemaker deluxe",
        "Brews twelve cups",
        5000,
        -7200,
        3600,
        false,
    ),
    (
        "Chocolate bar",
        "Dark, seventy percent",
        200,
        -60,
        1800,
        false,
    ),
    ("Coffee grinder", "Burr grinder", 2500, -60, 3600, true),
];

async fn insert_fixed_set(ctx: &TestContext) {
    let mut conn = ctx.mysql().await;
    for (name, description, price, starts, lasts, deleted) in FIXED_SET {
        diesel::sql_query(
            "INSERT INTO coupons (name, description, price_cents, total_quantity, \
             per_user_limit, sale_starts_at, sale_ends_at, is_deleted) VALUES (?, ?, ?, 10, 1, \
             UTC_TIMESTAMP(6) + INTERVAL ? SECOND, UTC_TIMESTAMP(6) + INTERVAL ? SECOND, ?)",
        )
        .bind::<diesel::sql_types::Text, _>(name)
        .bind::<diesel::sql_types::Text, _>(description)
        .bind::<diesel::sql_types::BigInt, _>(price)
        .bind::<diesel::sql_types::BigInt, _>(starts)
        .bind::<diesel::sql_types::BigInt, _>(starts + lasts)
        .bind::<diesel::sql_types::Bool, _>(deleted)
        .execute(&mut conn)
        .await
        .unwrap();
    }
}

async fn search(app: &TestApp, query: &str) -> Value {
    let (status, body) = app.get_json(&format!("/api/coupons/search?{query}")).await;
    assert_eq!(status, 200, "{query}: {body}");
    body
}

async fn ids(app: &TestApp, query: &str) -> Vec<i64> {
    item_ids(&search(app, query).await)
}

/// The coupon ids of a results body, in order.
fn item_ids(body: &Value) -> Vec<i64> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hit| hit["coupon"]["id"].as_i64().unwrap())
        .collect()
}

/// The index in each process: filled from MySQL at start, with typo tolerance.
#[tokio::test(flavor = "multi_thread")]
async fn relevance_filters_and_sorts_on_a_fixed_set() {
    let ctx = TestContext::new().await;
    assert_eq!(ctx.settings.catalog.search.engine, SearchEngine::Tantivy);
    insert_fixed_set(&ctx).await;
    let app = ctx.spawn(Role::Api).await;
    check_fixed_set(&app).await;
    // Typos are tolerated in whole words: exact prefixes rank above them.
    assert_eq!(ids(&app, "q=cofee").await, [1, 3, 2]);
    assert_eq!(ids(&app, "q=cofee%20beens").await, [1]);
    app.stop().await;
}

/// MariaDB's full-text index: the same answers, without typo tolerance.
#[tokio::test(flavor = "multi_thread")]
async fn mariadb_fulltext_engine_on_the_fixed_set() {
    let ctx = TestContext::new().await;
    insert_fixed_set(&ctx).await;
    let mut settings = ctx.settings.clone();
    settings.catalog.search.engine = SearchEngine::Mariadb;
    let app = ctx.spawn_with(Role::Api, settings).await;
    check_fixed_set(&app).await;
    assert_eq!(ids(&app, "q=cofee").await, Vec::<i64>::new());
    app.stop().await;
}

async fn check_fixed_set(app: &TestApp) {
    // Name matches first (1 and 4, "Coffeemaker" by prefix), then description matches;
    // the deleted grinder (6) never.
    let found = ids(app, "q=coffee").await;
    assert_eq!(found.len(), 4, "{found:?}");
    let (names, descriptions) = found.split_at(2);
    assert_eq!(sorted(names), [1, 4], "{found:?}");
    assert_eq!(sorted(descriptions), [2, 3], "{found:?}");
    // Prefixes match whole words; every term is required.
    assert_eq!(sorted(&ids(app, "q=cof").await), [1, 2, 3, 4]);
    assert_eq!(ids(app, "q=coffee%20roast").await, [1]);
    assert_eq!(ids(app, "q=COFFEE%20Colombia").await, [1]);

    // Each filter.
    assert_eq!(sorted(&ids(app, "status=live").await), [1, 2, 5]);
    assert_eq!(ids(app, "status=upcoming").await, [3]);
    assert_eq!(ids(app, "status=ended").await, [4]);
    assert_eq!(sorted(&ids(app, "q=coffee&status=live").await), [1, 2]);
    assert_eq!(
        sorted(&ids(app, "min_price=300&max_price=1500").await),
        [1, 2, 3]
    );
    assert_eq!(ids(app, "min_price=5000").await, [4]);
    assert_eq!(ids(app, "max_price=200").await, [5]);

    // Each sort, ties broken by id.
    assert_eq!(ids(app, "sort=price").await, [5, 2, 1, 3, 4]);
    assert_eq!(ids(app, "sort=price_desc").await, [4, 3, 1, 2, 5]);
    assert_eq!(ids(app, "sort=newest").await, [5, 4, 3, 2, 1]);
    assert_eq!(ids(app, "").await, [5, 4, 3, 2, 1], "newest without q");
    assert_eq!(ids(app, "sort=ending_soon").await, [4, 5, 1, 2, 3]);
    assert_eq!(ids(app, "sort=ending_soon&status=live").await, [5, 1, 2]);
    assert_eq!(ids(app, "q=coffee&sort=price").await, [2, 1, 3, 4]);

    // Pages do not overlap; has_more tells whether another follows.
    let first = search(app, "sort=price&size=2").await;
    let second = search(app, "sort=price&size=2&page=2").await;
    let third = search(app, "sort=price&size=2&page=3").await;
    assert_eq!(first["has_more"], true);
    assert_eq!(second["has_more"], true);
    assert_eq!(third["has_more"], false);
    let pages: Vec<i64> = [&first, &second, &third]
        .iter()
        .flat_map(|page| item_ids(page))
        .collect();
    assert_eq!(pages, [5, 2, 1, 3, 4]);

    // Matches are marked; stock is a labelled snapshot.
    let body = search(app, "q=colombia%20cof").await;
    let hit = &body["items"][0];
    assert_eq!(
        hit["highlight"]["name"],
        json!([{ "text": "Coffee", "hit": true }, { "text": " beans" }])
    );
    assert_eq!(
        hit["highlight"]["description"],
        json!([{ "text": "Fresh roast from " }, { "text": "Colombia", "hit": true }])
    );
    assert_eq!(hit["coupon"]["remaining"], 10);
    assert_eq!(body["stock_is_snapshot"], true);
    assert!(body["stock_as_of"].as_str().is_some(), "{body}");

    // Words the index never holds (stopwords, under 3 letters) match nothing.
    let body = search(app, "q=the%20of%20tv").await;
    assert_eq!(
        (body["items"].clone(), &body["has_more"]),
        (json!([]), &json!(false))
    );
}

fn sorted(ids: &[i64]) -> Vec<i64> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_search_input_answers_422_with_the_field() {
    let ctx = TestContext::new().await;
    let app = ctx.spawn(Role::Api).await;
    let long = "a".repeat(10_000);
    let cases = [
        ("q=".to_owned(), "q"),
        ("q=%20%20".to_owned(), "q"),
        (format!("q={long}"), "q"),
        ("q=coffee&page=0".to_owned(), "page"),
        ("page=51".to_owned(), "page"),
        ("page=abc".to_owned(), "page"),
        ("size=0".to_owned(), "size"),
        ("size=101".to_owned(), "size"),
        ("sort=cheapest".to_owned(), "sort"),
        ("status=soon".to_owned(), "status"),
        ("min_price=-1".to_owned(), "min_price"),
        ("max_price=1.5".to_owned(), "max_price"),
        ("min_price=500&max_price=100".to_owned(), "max_price"),
    ];
    for (query, field) in cases {
        let (status, body) = app.get_json(&format!("/api/coupons/search?{query}")).await;
        let shown = &query[..query.len().min(40)];
        assert_eq!(status, 422, "{shown}: {body}");
        assert_eq!(body["error"]["code"], "INVALID_SEARCH", "{shown}");
        assert_eq!(body["error"]["field"], field, "{shown}");
    }
    // "search" is not taken for a coupon id.
    let (status, _) = app.get_json("/api/coupons/search").await;
    assert_eq!(status, 200);
    app.stop().await;
}

/// What a debug build on a loaded machine may add to the stated delay: a follower pass
/// (two queries and an index commit) that a busy scheduler runs late.
const SLACK: Duration = Duration::from_millis(400);

/// Another instance shows an admin change once it has followed it (every
/// `catalog.search.follow_ms`, 250 ms) and its cached results expire (`ttl_ms`,
/// 500 ms); the instance that made it, at once. A change made straight in MySQL is
/// followed the same way.
#[tokio::test(flavor = "multi_thread")]
async fn admin_changes_are_searchable_within_the_stated_delay() {
    let ctx = TestContext::new().await;
    let search = &ctx.settings.catalog.search;
    let ttl = Duration::from_millis(search.ttl_ms + search.follow_ms);
    assert!(
        ttl <= Duration::from_secs(1),
        "the stated delay is under a second"
    );
    let editor = ctx.spawn(Role::Api).await;
    let other = ctx.spawn(Role::Api).await;
    let admin = editor.admin_token(&ctx).await;
    let id = editor
        .coupon_id(&admin, &coupon_body("Plain mug", 10, -5, 3600))
        .await;
    eventually(
        Duration::from_secs(5),
        "the other instance to follow",
        || async { ids(&other, "q=mug").await == [id] },
    )
    .await;
    // Both instances now hold "no zanzibar" in memory.
    assert!(ids(&editor, "q=zanzibar").await.is_empty());
    assert!(ids(&other, "q=zanzibar").await.is_empty());

    let renamed = coupon_body("Zanzibar mug", 10, -5, 3600);
    let (status, body) = editor
        .send(
            Method::PUT,
            &format!("/api/admin/coupons/{id}"),
            Some(&admin),
            Some(&renamed),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        ids(&editor, "q=zanzibar").await,
        [id],
        "at once where it was made"
    );
    tokio::time::sleep(ttl + SLACK).await;
    assert_eq!(
        ids(&other, "q=zanzibar").await,
        [id],
        "after the stated delay"
    );

    let (status, _) = editor
        .send(
            Method::DELETE,
            &format!("/api/admin/coupons/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert!(
        ids(&editor, "q=zanzibar").await.is_empty(),
        "deleted: gone at once"
    );
    tokio::time::sleep(ttl + SLACK).await;
    assert!(
        ids(&other, "q=mug").await.is_empty(),
        "deleted: gone everywhere"
    );

    // Behind the api's back: no instance made the change, both follow it.
    let mut conn = ctx.mysql().await;
    diesel::sql_query("UPDATE coupons SET name = 'Zanzibar cup', is_deleted = FALSE WHERE id = ?")
        .bind::<diesel::sql_types::BigInt, _>(id)
        .execute(&mut conn)
        .await
        .unwrap();
    tokio::time::sleep(ttl + SLACK).await;
    assert_eq!(ids(&editor, "q=zanzibar%20cup").await, [id]);
    assert_eq!(ids(&other, "q=zanzibar%20cup").await, [id]);
    editor.stop().await;
    other.stop().await;
}

/// What the OpenSearch index holds for one coupon id (asked directly).
async fn indexed(http: &reqwest::Client, index: &str, id: i64) -> Value {
    http.post(format!("{}/{index}/_search", opensearch_url()))
        .json(&json!({ "query": { "ids": { "values": [id.to_string()] } } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn opensearch_url() -> String {
    std::env::var("FLASH_TEST_OPENSEARCH_URL").unwrap_or_else(|_| "http://127.0.0.1:19200".into())
}

/// OpenSearch as the engine: typo tolerance, admin changes written through, the index
/// rebuilt from MySQL at start (so a change it missed is repaired), and deleted coupons
/// kept out even while the index still holds them.
#[tokio::test(flavor = "multi_thread")]
async fn opensearch_engine_against_a_real_node() {
    let ctx = TestContext::new().await;
    insert_fixed_set(&ctx).await;
    let mut settings = ctx.settings.clone();
    let index = format!("fst-{}", ctx.db_name.to_lowercase().replace('_', "-"));
    settings.catalog.search.engine = SearchEngine::Opensearch;
    settings.catalog.search.opensearch_url = opensearch_url();
    settings.catalog.search.opensearch_index = index.clone();
    let http = reqwest::Client::new();
    let reachable = http
        .get(opensearch_url())
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(
        reachable.is_ok(),
        "no OpenSearch at {} (make test starts one: scripts/stack.sh with STACK_SERVICES=opensearch)",
        opensearch_url()
    );
    // Start-up fills the index from MySQL.
    let app = ctx.spawn_with(Role::Api, settings.clone()).await;
    let found = ids(&app, "q=coffee").await;
    assert_eq!(found.len(), 4, "{found:?}");
    assert_eq!(sorted(&found[..2]), [1, 4], "name matches first: {found:?}");
    // Typos are tolerated; the last word may be a prefix.
    assert_eq!(sorted(&ids(&app, "q=cofee%20beens").await), [1]);
    assert_eq!(ids(&app, "q=colombia%20cof").await, [1]);
    assert_eq!(sorted(&ids(&app, "q=cofee&status=live").await), [1, 2]);
    assert_eq!(ids(&app, "sort=price").await, [5, 2, 1, 3, 4]);
    assert_eq!(ids(&app, "sort=ending_soon&status=live").await, [5, 1, 2]);
    assert_eq!(
        ids(&app, "min_price=300&max_price=1500&sort=price").await,
        [2, 1, 3]
    );

    // Admin changes are written through (searchable when the call returns).
    let admin = app.admin_token(&ctx).await;
    let id = app
        .coupon_id(&admin, &coupon_body("Zanzibar spice", 10, -5, 3600))
        .await;
    assert_eq!(ids(&app, "q=zanzibr").await, [id]);
    let (status, _) = app
        .send(
            Method::DELETE,
            &format!("/api/admin/coupons/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 204);
    tokio::time::sleep(Duration::from_millis(
        ctx.settings.catalog.search.ttl_ms + 100,
    ))
    .await;
    assert!(ids(&app, "q=zanzibar").await.is_empty());

    // A change the index missed (made behind the app's back): the index still finds
    // the coupon, MySQL says it is deleted, so it is not shown; the next start repairs
    // the index.
    let mut conn = ctx.mysql().await;
    diesel::sql_query("UPDATE coupons SET is_deleted = TRUE WHERE id = 1")
        .execute(&mut conn)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(
        ctx.settings.catalog.search.ttl_ms + 100,
    ))
    .await;
    assert_eq!(ids(&app, "q=coffee%20beans").await, Vec::<i64>::new());
    let raw = indexed(&http, &index, 1).await;
    assert_eq!(
        raw["hits"]["hits"].as_array().map(Vec::len),
        Some(1),
        "{raw}"
    );
    app.stop().await;
    let restarted = ctx.spawn_with(Role::Api, settings).await;
    let raw = indexed(&http, &index, 1).await;
    assert_eq!(raw["hits"]["hits"], json!([]), "removed at start: {raw}");
    restarted.stop().await;
    http.delete(format!("{}/{index}", opensearch_url()))
        .send()
        .await
        .unwrap();
}

/// The engine down: searches answer 503 SERVER_BUSY (never a 500), and admin changes
/// still land in MySQL and the other caches.
#[tokio::test(flavor = "multi_thread")]
async fn a_search_engine_that_is_down_gives_503_and_blocks_no_admin_change() {
    let ctx = TestContext::new().await;
    let mut settings = ctx.settings.clone();
    settings.catalog.search.engine = SearchEngine::Opensearch;
    // Nothing listens there.
    settings.catalog.search.opensearch_url = format!("http://127.0.0.1:{}", free_port());
    settings.catalog.search.opensearch_timeout_ms = 500;
    let app = ctx.spawn_with(Role::Api, settings).await;
    let (status, body) = app.get_json("/api/coupons/search?q=coffee").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "SERVER_BUSY");
    let admin = app.admin_token(&ctx).await;
    let id = app
        .coupon_id(&admin, &coupon_body("Coffee", 10, -5, 3600))
        .await;
    let (status, coupon) = app.get_json(&format!("/api/coupons/{id}")).await;
    assert_eq!((status, coupon["name"].as_str()), (200, Some("Coffee")));
    eventually(
        Duration::from_secs(5),
        "the browse page to show it",
        || async {
            let (_, page) = app.get_json("/api/coupons").await;
            page["items"][0]["id"] == id
        },
    )
    .await;
    app.stop().await;
}

const SEARCH_LOADS: &str = r#"flash_sale_catalog_lookups_total{kind="search",outcome="db_load"}"#;
const SEARCH_SHARED: &str =
    r#"flash_sale_catalog_lookups_total{kind="search",outcome="redis_hit"}"#;

/// With an engine outside the process, one instance's search serves the others through
/// Redis, until an admin change voids it: then the next search loads afresh and shows
/// the change. (An index in each process is never shared: see the next test.)
#[tokio::test(flavor = "multi_thread")]
async fn instances_share_results_until_an_admin_change() {
    let ctx = TestContext::new().await;
    let mut settings = ctx.settings.clone();
    settings.catalog.search.engine = SearchEngine::Mariadb;
    let first = ctx.spawn_with(Role::Api, settings.clone()).await;
    let second = ctx.spawn_with(Role::Api, settings).await;
    let admin = first.admin_token(&ctx).await;
    let id = first
        .coupon_id(&admin, &coupon_body("Saffron tea", 10, -5, 3600))
        .await;
    assert_eq!(ids(&first, "q=saffron").await, [id]);
    assert_eq!(first.metric(SEARCH_LOADS).await, 1.0);
    assert_eq!(ids(&second, "q=saffron").await, [id]);
    assert_eq!(
        second.metric(SEARCH_SHARED).await,
        1.0,
        "answered from Redis"
    );
    assert_eq!(second.metric(SEARCH_LOADS).await, 0.0);

    let renamed = coupon_body("Saffron rice", 10, -5, 3600);
    let (status, body) = first
        .send(
            Method::PUT,
            &format!("/api/admin/coupons/{id}"),
            Some(&admin),
            Some(&renamed),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    tokio::time::sleep(Duration::from_millis(
        ctx.settings.catalog.search.ttl_ms + 100,
    ))
    .await;
    let body = search(&second, "q=saffron").await;
    assert_eq!(body["items"][0]["coupon"]["name"], "Saffron rice", "{body}");
    assert_eq!(
        second.metric(SEARCH_LOADS).await,
        1.0,
        "the shared entry was void"
    );
    first.stop().await;
    second.stop().await;
}

/// Each instance answers from its own index; nothing is put in Redis for the others.
#[tokio::test(flavor = "multi_thread")]
async fn an_index_in_each_process_is_not_shared_through_redis() {
    let ctx = TestContext::new().await;
    let first = ctx.spawn(Role::Api).await;
    let second = ctx.spawn(Role::Api).await;
    let admin = first.admin_token(&ctx).await;
    let id = first
        .coupon_id(&admin, &coupon_body("Saffron tea", 10, -5, 3600))
        .await;
    assert_eq!(ids(&first, "q=saffron").await, [id]);
    eventually(
        Duration::from_secs(5),
        "the other instance to follow",
        || async { ids(&second, "q=saffron").await == [id] },
    )
    .await;
    assert_eq!(second.metric(SEARCH_SHARED).await, 0.0);
    assert!(second.metric(SEARCH_LOADS).await >= 1.0);
    first.stop().await;
    second.stop().await;
}

/// An instance cut off from MySQL misses nothing: its follower keeps its place while
/// every read fails, and once MySQL answers again it applies the edit, the new coupon
/// and the delete made meanwhile on another instance.
#[tokio::test(flavor = "multi_thread")]
async fn an_instance_cut_off_from_mysql_catches_up_when_it_is_back() {
    let ctx = TestContext::new().await;
    let editor = ctx.spawn(Role::Api).await;
    let mut url = url::Url::parse(ctx.settings.mysql.url.expose_secret()).unwrap();
    let proxy = CutProxy::start(url.port().unwrap_or(3306)).await;
    url.set_port(Some(proxy.port)).unwrap();
    // Otherwise the driver moves to MySQL's Unix socket after connecting, round the proxy.
    url.query_pairs_mut().append_pair("prefer_socket", "false");
    let mut settings = ctx.settings.clone();
    settings.mysql.url = secrecy::SecretString::from(url.to_string());
    let follower = ctx.spawn_with(Role::Api, settings).await;
    let admin = editor.admin_token(&ctx).await;
    let kettle = editor
        .coupon_id(&admin, &coupon_body("Plain kettle", 10, -5, 3600))
        .await;
    let mug = editor
        .coupon_id(&admin, &coupon_body("Zanzibar mug", 10, -5, 3600))
        .await;
    eventually(
        Duration::from_secs(5),
        "the follower to show both",
        || async {
            ids(&follower, "q=kettle").await == [kettle] && ids(&follower, "q=mug").await == [mug]
        },
    )
    .await;

    proxy.cut(true);
    let (status, body) = editor
        .send(
            Method::PUT,
            &format!("/api/admin/coupons/{kettle}"),
            Some(&admin),
            Some(&coupon_body("Zanzibar kettle", 10, -5, 3600)),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let pot = editor
        .coupon_id(&admin, &coupon_body("Zanzibar pot", 10, -5, 3600))
        .await;
    let (status, _) = editor
        .send(
            Method::DELETE,
            &format!("/api/admin/coupons/{mug}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 204);
    // Several of the follower's passes fail meanwhile.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (status, _) = follower.get_json("/api/coupons/search?q=zanzibar").await;
    assert_ne!(status, 500, "a cut-off instance never answers 500");
    // Its own copy of the rows is no longer kept current: it must not answer with it
    // (it would still show the deleted mug).
    let (status, body) = follower.get_json("/api/coupons/search?q=mug").await;
    assert_eq!(status, 503, "{body}");

    proxy.cut(false);
    eventually(
        Duration::from_secs(10),
        "the follower to catch up",
        || async {
            let (status, body) = follower.get_json("/api/coupons/search?q=zanzibar").await;
            status == 200 && sorted(&item_ids(&body)) == sorted(&[kettle, pot])
        },
    )
    .await;
    assert!(ids(&follower, "q=mug").await.is_empty(), "the delete too");
    editor.stop().await;
    follower.stop().await;
}

/// A change whose transaction commits seconds after its `updated_at` was stamped (a
/// statement that waited for a lock, a bulk load) is found: passes that began after
/// the stamp saw nothing, and the look-back still reaches it.
#[tokio::test(flavor = "multi_thread")]
async fn a_change_committed_seconds_after_its_stamp_is_still_found() {
    let ctx = TestContext::new().await;
    let app = ctx.spawn(Role::Api).await;
    let admin = app.admin_token(&ctx).await;
    let id = app
        .coupon_id(&admin, &coupon_body("Plain kettle", 10, -5, 3600))
        .await;
    let mut conn = ctx.mysql().await;
    diesel::sql_query("START TRANSACTION")
        .execute(&mut conn)
        .await
        .unwrap();
    diesel::sql_query("UPDATE coupons SET name = 'Zanzibar kettle' WHERE id = ?")
        .bind::<diesel::sql_types::BigInt, _>(id)
        .execute(&mut conn)
        .await
        .unwrap();
    // A dozen passes begin while the change is stamped but not visible.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        ids(&app, "q=zanzibar").await.is_empty(),
        "not committed yet"
    );
    diesel::sql_query("COMMIT")
        .execute(&mut conn)
        .await
        .unwrap();
    eventually(
        Duration::from_secs(5),
        "the late commit to be found",
        || async { ids(&app, "q=zanzibar").await == [id] },
    )
    .await;
    app.stop().await;
}
