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

/// actix cannot list the routes an app mounts, so every documented operation is called
/// (each path parameter `1`, no token, no body) on a process serving every role: any
/// answer but the 404 NOT_FOUND fallback means a handler is mounted there. A documented
/// `bearer` requirement must also be what the handler enforces.
#[tokio::test(flavor = "multi_thread")]
async fn openapi_document_covers_the_public_contract() {
    let ctx = TestContext::new().await;
    let app = ctx.spawn(Role::All).await;
    let (status, spec) = app.get_json("/api/openapi.json").await;
    assert_eq!(status, 200);
    let generated: serde_json::Value =
        serde_json::from_slice(&flash_sale::http::openapi::json().unwrap()).unwrap();
    assert_eq!(spec, generated, "the served document is the generated one");
    assert_eq!(spec["openapi"], "3.1.0");

    let mut probed = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        let url = with_placeholders(path);
        for (method, operation) in item.as_object().unwrap() {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let (status, body) = app.send(method.clone(), &url, None, None).await;
            let code = body["error"]["code"].as_str().unwrap_or_default();
            // A missing object is a 404 NOT_FOUND like a missing route (a file server's
            // answer); the catalog tests fetch real objects through that route.
            assert!(
                !(status == 404 && code == "NOT_FOUND") || path == "/objects/{key}",
                "{method} {path} is documented but not mounted"
            );
            // The WebSocket takes its token from the handshake, not from `Authorization`.
            if path != "/ws" {
                let documented = operation["security"][0]["bearer"].is_array();
                let enforced = status == 401 && code == "UNAUTHORIZED";
                assert_eq!(documented, enforced, "{method} {path}: bearer security");
            }
            probed += 1;
        }
    }
    assert!(probed >= 20, "only {probed} operations documented");
    let (status, body) = app.get_json("/api/undocumented").await;
    assert_eq!((status, &body["error"]["code"]), (404, &"NOT_FOUND".into()));

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

/// A concrete URL for a path template: every `{param}` becomes `1`.
fn with_placeholders(template: &str) -> String {
    template
        .split('/')
        .map(|segment| {
            if segment.starts_with('{') && segment.ends_with('}') {
                "1"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// A documented path asked with another method is a JSON 405 naming the methods it
/// takes; an unknown path is a JSON 404 whatever the method.
#[tokio::test(flavor = "multi_thread")]
async fn wrong_methods_and_unknown_paths_get_json_errors() {
    let ctx = TestContext::new().await;
    let app = ctx.spawn(Role::All).await;
    let response = app
        .client
        .delete(app.url("/api/coupons/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["Allow"], "GET, HEAD");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "METHOD_NOT_ALLOWED");
    for method in [reqwest::Method::POST, reqwest::Method::DELETE] {
        let (status, body) = app.send(method, "/api/nope", None, None).await;
        assert_eq!(
            (status, &body["error"]["code"]),
            (404, &serde_json::json!("NOT_FOUND"))
        );
    }
    app.stop().await;
}
