use std::time::{Duration, Instant};

use flash_sale::roles::Role;

use crate::fixtures::checked_dependencies;
use crate::helpers::TestContext;

/// Each role alone starts, reports ready with exactly its dependencies, and stops.
#[tokio::test(flavor = "multi_thread")]
async fn each_role_starts_reports_ready_and_stops() {
    let ctx = TestContext::new().await;
    for (role, expected) in [
        (Role::Api, vec!["mysql", "redis", "kafka", "object_store"]),
        (Role::Payment, vec!["mysql", "redis", "kafka"]),
        (Role::Ws, vec!["redis"]),
    ] {
        let app = ctx.spawn(role).await;
        let (status, body) = app.get_json("/readyz").await;
        assert_eq!(status, 200, "{role:?}: {body}");
        assert_eq!(body["role"], role.name());
        assert_eq!(checked_dependencies(&body), expected, "{role:?}");
        uuid::Uuid::parse_str(body["server_id"].as_str().unwrap()).expect("server_id is a UUID");

        let started = Instant::now();
        app.stop().await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{role:?} stopped in {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_instance_gets_its_own_server_id() {
    let ctx = TestContext::new().await;
    let a = ctx.spawn(Role::Ws).await;
    let b = ctx.spawn(Role::Ws).await;
    assert_ne!(a.app().instance().server_id, b.app().instance().server_id);
    a.stop().await;
    b.stop().await;
}
