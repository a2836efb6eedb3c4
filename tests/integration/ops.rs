use flash_sale::roles::Role;

use crate::helpers::TestContext;

#[tokio::test(flavor = "multi_thread")]
async fn unknown_route_is_a_json_404() {
    let ctx = TestContext::new().await;
    let app = ctx.spawn(Role::Api).await;
    let (status, body) = app.get_json("/api/nope").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "NOT_FOUND");
    assert!(body["error"]["message"].is_string());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_requests_per_route_pattern() {
    let ctx = TestContext::new().await;
    let app = ctx.spawn(Role::Ws).await;
    for _ in 0..3 {
        assert_eq!(app.get("/healthz").await.status(), 200);
    }
    assert_eq!(app.get("/no/such/path").await.status(), 404);

    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"),
        "Prometheus text format"
    );
    let text = response.text().await.unwrap();
    assert!(
        text.contains(
            r#"flash_sale_http_requests_total{method="GET",route="/healthz",status="200"} 3"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"route="<unmatched>",status="404"} 1"#),
        "unmatched paths share one label: {text}"
    );
    assert!(
        text.contains("flash_sale_http_request_duration_seconds_bucket"),
        "{text}"
    );
    app.stop().await;
}
