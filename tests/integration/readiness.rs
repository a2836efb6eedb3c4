use flash_sale::roles::Role;
use secrecy::SecretString;

use crate::fixtures::checked_dependencies;
use crate::helpers::{TestContext, free_port};

#[tokio::test(flavor = "multi_thread")]
async fn all_role_is_ready_when_every_dependency_answers() {
    let ctx = TestContext::new().await;
    let app = ctx.spawn(Role::All).await;

    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["role"], "all");
    assert_eq!(
        checked_dependencies(&body),
        ["mysql", "redis", "kafka", "object_store"]
    );
    assert!(body["failing"].as_array().unwrap().is_empty());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_down_makes_readiness_503_naming_redis_but_liveness_stays_200() {
    let ctx = TestContext::new().await;
    let mut settings = ctx.settings.clone();
    // Nothing listens on a port we just freed.
    settings.redis.mode = flash_sale::config::RedisMode::Standalone;
    settings.redis.url = SecretString::from(format!("redis://127.0.0.1:{}", free_port()));
    let app = ctx.spawn_with(Role::All, settings).await;

    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["failing"], serde_json::json!(["redis"]));
    let redis = body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["dependency"] == "redis")
        .unwrap();
    assert_eq!(redis["ok"], false);
    assert!(
        redis["error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("redis"),
        "{redis}"
    );

    let (status, _) = app.get_json("/healthz").await;
    assert_eq!(status, 200, "liveness must not depend on Redis");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_and_kafka_down_are_both_named() {
    let ctx = TestContext::new().await;
    let mut settings = ctx.settings.clone();
    settings.mysql.url = SecretString::from(format!("mysql://root@127.0.0.1:{}/x", free_port()));
    settings.kafka.brokers = vec![format!("127.0.0.1:{}", free_port())];
    let app = ctx.spawn_with(Role::Payment, settings).await;

    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["failing"], serde_json::json!(["mysql", "kafka"]));
    app.stop().await;
}
