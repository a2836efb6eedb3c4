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

#[tokio::test(flavor = "multi_thread")]
async fn openapi_document_covers_the_public_contract() {
    let ctx = TestContext::new().await;
    let app = ctx.spawn(Role::Api).await;
    let (status, spec) = app.get_json("/api/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(spec["openapi"], "3.1.0");
    for (method, path) in [
        ("post", "/api/auth/register"),
        ("post", "/api/auth/login"),
        ("get", "/api/me"),
        ("get", "/api/coupons"),
        ("get", "/api/coupons/{id}"),
        ("get", "/api/coupons/{id}/stock"),
        ("post", "/api/coupons/{id}/purchase"),
        ("get", "/api/orders"),
        ("get", "/api/orders/{id}"),
        ("post", "/api/admin/coupons"),
        ("put", "/api/admin/coupons/{id}"),
        ("delete", "/api/admin/coupons/{id}"),
        ("post", "/api/admin/coupons/{id}/image"),
        ("get", "/ws"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
    ] {
        assert!(
            spec["paths"][path][method].is_object(),
            "{method} {path} missing"
        );
    }
    let purchase =
        &spec["paths"]["/api/coupons/{id}/purchase"]["post"]["responses"]["409"]["description"];
    for code in [
        "SOLD_OUT",
        "PURCHASE_LIMIT_REACHED",
        "SALE_NOT_STARTED",
        "SALE_ENDED",
    ] {
        assert!(purchase.as_str().unwrap().contains(code), "{code}");
    }
    app.stop().await;
}
