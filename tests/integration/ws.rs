//! The WebSocket relay: routing of payment results to the instance holding the socket,
//! route lifecycle in Redis, authentication before the upgrade, graceful close.

use std::time::Duration;

use deadpool_redis::redis::AsyncCommands;
use flash_sale::roles::Role;
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::fixtures::{OpenSale, sign_token};
use crate::helpers::{ChildApp, TestApp, TestContext, eventually};

pub(crate) type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects like a browser: the token as the subprotocol pair `bearer, <token>`.
pub(crate) async fn connect(base: &str, token: &str) -> Socket {
    let url = format!("{}/ws", base.replacen("http", "ws", 1));
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        format!("bearer, {token}").parse().unwrap(),
    );
    let (socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], "bearer");
    socket
}

async fn route(ctx: &TestContext, user: &str) -> Option<String> {
    let mut redis = ctx.redis().await;
    redis.get(ctx.keys().ws_route(user)).await.unwrap()
}

/// The next text message (pings are answered by the client library).
async fn next_text(socket: &mut Socket, within: Duration) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .expect("a message in time")
            .expect("socket open")
            .expect("no protocol error");
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

/// Keeps a socket alive as a browser would: reading it, which answers the server's pings.
fn keep_open(mut socket: Socket) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move { while socket.next().await.is_some() {} })
}

pub(crate) async fn ws_app(ctx: &TestContext, issuer: &str) -> TestApp {
    let mut settings = ctx.settings.clone();
    settings.identity.issuer = issuer.to_owned();
    ctx.spawn_with(Role::Ws, settings).await
}

#[tokio::test(flavor = "multi_thread")]
async fn result_reaches_the_instance_holding_the_socket_only() {
    let ctx = TestContext::new().await;
    let sale = OpenSale::start(&ctx, ctx.settings.clone(), "Live", 5).await;
    let (api, coupon) = (&sale.api, sale.coupon);
    let issuer = api.issuer().await;
    let a = ws_app(&ctx, &issuer).await;
    let b = ws_app(&ctx, &issuer).await;

    let token = api
        .register_and_login("socket@example.com", "socket password")
        .await;
    let (_, me) = api.get_authed("/api/me", &token).await;
    let user = me["user_id"].as_str().unwrap().to_owned();

    let mut socket = connect(&b.base, &token).await;
    let b_id = b.app().instance().server_id.to_string();
    eventually(Duration::from_secs(5), "route to B", || async {
        route(&ctx, &user).await.as_deref() == Some(b_id.as_str())
    })
    .await;

    let order_id = api.buy(&token, coupon).await;

    let update = next_text(&mut socket, Duration::from_secs(15)).await;
    assert_eq!(
        update,
        serde_json::json!({"type": "payment_update", "order_id": order_id, "status": "PAID"})
    );
    let relayed = "flash_sale_ws_messages_relayed_total";
    assert_eq!(b.metric(relayed).await, 1.0);
    assert_eq!(a.metric(relayed).await, 0.0, "instance A relays nothing");
    assert_eq!(b.metric("flash_sale_ws_open_sockets").await, 1.0);
    for app in [a, b] {
        app.stop().await;
    }
    sale.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn routes_follow_connects_and_disconnects_and_stale_ones_expire() {
    let ctx = TestContext::new().await;
    let api = ctx.spawn(Role::Api).await;
    let issuer = api.issuer().await;
    let a = ws_app(&ctx, &issuer).await;
    let b = ws_app(&ctx, &issuer).await;
    let (a_id, b_id) = (
        a.app().instance().server_id.to_string(),
        b.app().instance().server_id.to_string(),
    );
    let token = api.mint_token(&ctx, "wanderer").await;

    // Two tabs on A: the route stays until the last one closes.
    let mut tab1 = connect(&a.base, &token).await;
    let mut tab2 = connect(&a.base, &token).await;
    eventually(Duration::from_secs(5), "route to A", || async {
        route(&ctx, "wanderer").await.as_deref() == Some(a_id.as_str())
    })
    .await;
    tab1.close(None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        route(&ctx, "wanderer").await.as_deref(),
        Some(a_id.as_str()),
        "one tab still open"
    );
    tab2.close(None).await.unwrap();
    eventually(Duration::from_secs(5), "route removed", || async {
        route(&ctx, "wanderer").await.is_none()
    })
    .await;

    // Reconnecting elsewhere moves it.
    let on_a = keep_open(connect(&a.base, &token).await);
    let on_b = keep_open(connect(&b.base, &token).await);
    eventually(Duration::from_secs(5), "route moved to B", || async {
        route(&ctx, "wanderer").await.as_deref() == Some(b_id.as_str())
    })
    .await;

    // The route outlives neither its TTL nor a killed instance: refreshed while alive...
    let ttl = Duration::from_millis(ctx.settings.ws.route_ttl_ms);
    tokio::time::sleep(ttl * 2).await;
    assert_eq!(
        route(&ctx, "wanderer").await.as_deref(),
        Some(b_id.as_str()),
        "kept alive by heartbeats"
    );

    // ...and gone by TTL after a crash.
    let mut child = ChildApp::start_with(&ctx, "ws", &[("FLASH__IDENTITY__ISSUER", &issuer)]).await;
    let stale_token = api.mint_token(&ctx, "crashed").await;
    let on_child = keep_open(connect(&child.base, &stale_token).await);
    eventually(Duration::from_secs(5), "route to the child", || async {
        route(&ctx, "crashed").await.is_some()
    })
    .await;
    child.kill();
    assert!(
        route(&ctx, "crashed").await.is_some(),
        "still there right after the crash"
    );
    eventually(ttl * 3, "stale route expired", || async {
        route(&ctx, "crashed").await.is_none()
    })
    .await;
    for socket in [on_a, on_b, on_child] {
        socket.abort();
    }
    for app in [a, b, api] {
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unauthenticated_upgrade_is_refused_before_any_socket() {
    let ctx = TestContext::new().await;
    let api = ctx.spawn(Role::Api).await;
    let ws = ws_app(&ctx, &api.issuer().await).await;
    let url = format!("{}/ws", ws.base.replacen("http", "ws", 1));
    for request in [
        url.clone().into_client_request().unwrap(),
        format!("{url}?access_token=garbage")
            .into_client_request()
            .unwrap(),
    ] {
        match tokio_tungstenite::connect_async(request).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 401)
            }
            other => panic!("expected 401, got {:?}", other.map(|(_, r)| r.status())),
        }
    }
    assert_eq!(ws.metric("flash_sale_ws_open_sockets").await, 0.0);
    // A valid token in the URL is refused too: URLs end up in proxy and access logs.
    let token = api.mint_token(&ctx, "query-user").await;
    match tokio_tungstenite::connect_async(format!("{url}?access_token={token}")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401)
        }
        other => panic!("expected 401, got {:?}", other.map(|(_, r)| r.status())),
    }
    ws.stop().await;
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_user_cannot_take_every_socket() {
    let ctx = TestContext::new().await;
    let app = ctx.spawn(Role::All).await;
    let cap = ctx.settings.ws.max_sockets_per_user;
    let greedy = app.mint_token(&ctx, "greedy").await;
    let mut held = Vec::new();
    for _ in 0..cap {
        held.push(connect(&app.base, &greedy).await);
    }
    let url = format!("{}/ws", app.base.replacen("http", "ws", 1));
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        format!("bearer, {greedy}").parse().unwrap(),
    );
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429);
            let body: serde_json::Value =
                serde_json::from_slice(response.body().as_deref().unwrap_or_default()).unwrap();
            assert_eq!(body["error"]["code"], "TOO_MANY_CONNECTIONS");
        }
        other => panic!("expected 429, got {:?}", other.map(|(_, r)| r.status())),
    }
    // Everyone else still gets in, and a closed socket frees its place.
    let _other = connect(&app.base, &app.mint_token(&ctx, "modest").await).await;
    drop(held.pop());
    eventually(Duration::from_secs(5), "a freed place", || async {
        app.metric("flash_sale_ws_open_sockets").await == f64::from(u32::try_from(cap).unwrap())
    })
    .await;
    held.push(connect(&app.base, &greedy).await);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_message_leaves_the_order_readable_and_shutdown_closes_sockets() {
    let ctx = TestContext::new().await;
    let app = ctx.spawn(Role::All).await;
    let coupon = app.open_coupon(&ctx, "Quiet", 5).await;
    // No socket: the result is published to nobody and lost.
    let token = app.mint_token(&ctx, "offline").await;
    let path = format!("/api/orders/{}", app.buy(&token, coupon).await);
    eventually(
        Duration::from_secs(15),
        "the order readable as PAID",
        || async { app.get_authed(&path, &token).await.1["status"] == "PAID" },
    )
    .await;

    // Graceful stop closes open sockets with 1012 "service restart".
    let mut socket = connect(&app.base, &token).await;
    let stopping = tokio::spawn(app.stop());
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(message) = socket.next().await {
            if let Ok(Message::Close(frame)) = message {
                return frame.map(|f| u16::from(f.code));
            }
        }
        None
    })
    .await
    .expect("closed in time");
    assert_eq!(closed, Some(1012));
    tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_clients_are_dropped_never_buffered() {
    use flash_sale::adapters::redis::RedisPool;
    use flash_sale::adapters::redis::notifier::PaymentUpdate;
    use flash_sale::adapters::redis::ws_routes::WsRoutes;
    use flash_sale::domain::identity::UserId;
    use flash_sale::domain::order::{OrderId, OrderStatus};
    use flash_sale::live::Hub;
    use flash_sale::live::hub::{SocketLimits, WsMetrics};

    let ctx = TestContext::new().await;
    let routes = WsRoutes::new(
        RedisPool::new(&ctx.settings.redis).unwrap(),
        ctx.keys(),
        "server-x".into(),
        Duration::from_secs(5),
    );
    let metrics = WsMetrics::new().unwrap();
    let limits = SocketLimits {
        total: 100,
        per_user: 3,
    };
    let hub = std::sync::Arc::new(Hub::new(routes, 4, limits, metrics.clone()));
    let user = UserId::parse("slowpoke").unwrap();
    let (registration, mut outbox) = hub.register(&user).await.unwrap();
    let update = PaymentUpdate {
        kind: "payment_update".into(),
        order_id: OrderId::generate(),
        status: OrderStatus::Paid,
        user_id: user.clone(),
        request_id: None,
    };
    for _ in 0..10 {
        hub.deliver(&update);
    }
    assert_eq!(metrics.relayed.get(), 4, "the queue holds four");
    assert_eq!(metrics.dropped_slow.get(), 1, "the fifth drops the client");
    let mut received = 0;
    while outbox.recv().await.is_some() {
        received += 1;
    }
    assert_eq!(
        received, 4,
        "then the socket's queue ends: its loop closes the socket"
    );
    drop(registration);
    assert_eq!(hub.open_sockets(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_clients_are_closed_after_the_idle_timeout() {
    let ctx = TestContext::new().await;
    let app = ctx.spawn(Role::All).await;
    let token = app.mint_token(&ctx, "sleeper").await;
    let mut socket = connect(&app.base, &token).await;
    // Not reading: no pongs go back.
    tokio::time::sleep(Duration::from_millis(ctx.settings.ws.idle_timeout_ms + 800)).await;
    let mut close = None;
    while let Ok(Some(Ok(message))) =
        tokio::time::timeout(Duration::from_secs(3), socket.next()).await
    {
        if let Message::Close(frame) = message {
            close = frame.map(|f| f.reason.to_string());
            break;
        }
    }
    assert_eq!(close.as_deref(), Some("idle timeout"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_that_stops_answering_leaves_known_keys_working() {
    let ctx = TestContext::new().await;
    let api = ctx.spawn(Role::Api).await;
    let issuer = api.issuer().await;
    let mut settings = ctx.settings.clone();
    settings.identity.issuer = issuer.clone();
    // Every unknown key may ask the provider again, so each one meets the outage.
    settings.identity.jwks_min_refresh_secs = 0;
    let ws = ctx.spawn_with(Role::Ws, settings).await;
    // The ws role learns the provider's keys from the first token it sees.
    let _early = connect(&ws.base, &api.mint_token(&ctx, "early").await).await;
    api.stop().await;

    // Tokens of a key it knows still verify with the provider gone.
    let _later = connect(&ws.base, &sign_token(&ctx, &issuer, "later", "user")).await;
    // A key it does not know is refused (401), not answered 503, every time.
    let stranger_keys = flash_sale::adapters::oidc::SigningKeys::from_pem(
        &flash_sale::adapters::oidc::keys::generate_pem().unwrap(),
    )
    .unwrap();
    let now = chrono::Utc::now().timestamp();
    let stranger = stranger_keys
        .sign(&serde_json::json!({
            "iss": issuer, "sub": "stranger", "aud": ctx.settings.identity.audience,
            "iat": now, "nbf": now, "exp": now + 900, "roles": ["user"],
        }))
        .unwrap();
    let url = format!("{}/ws", ws.base.replacen("http", "ws", 1));
    for _ in 0..3 {
        let mut request = url.clone().into_client_request().unwrap();
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            format!("bearer, {stranger}").parse().unwrap(),
        );
        match tokio_tungstenite::connect_async(request).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 401)
            }
            other => panic!("expected 401, got {:?}", other.map(|(_, r)| r.status())),
        }
    }
    assert_eq!(ws.metric("flash_sale_jwks_fetch_failures_total").await, 3.0);
    ws.stop().await;
}

/// A stopping instance first drains: /readyz answers 503 "draining", its sockets close
/// with 1012 "service restart" (the pages reconnect elsewhere), new sockets are refused
/// with 503 and Retry-After, and every other request is still served.
#[tokio::test(flavor = "multi_thread")]
async fn draining_reports_not_ready_closes_sockets_for_a_restart_and_keeps_serving() {
    let ctx = TestContext::new().await;
    let app = ctx.spawn(Role::All).await;
    let token = app.mint_token(&ctx, "drained").await;
    let mut socket = connect(&app.base, &token).await;
    assert_eq!(app.get_json("/readyz").await.0, 200);

    app.app().begin_drain();
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(message) = socket.next().await {
            if let Ok(Message::Close(frame)) = message {
                return frame.map(|f| (u16::from(f.code), f.reason.to_string()));
            }
        }
        None
    })
    .await
    .expect("closed in time");
    assert_eq!(closed, Some((1012, "service restart".to_owned())));
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!((status, body["status"].as_str()), (503, Some("draining")));
    assert_eq!(app.get_json("/api/coupons").await.0, 200, "still serving");
    let mut request = format!("{}/ws", app.base.replacen("http", "ws", 1))
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        format!("bearer, {token}").parse().unwrap(),
    );
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503);
            assert_eq!(response.headers()["retry-after"], "1");
        }
        other => panic!("expected 503, got {:?}", other.map(|(_, r)| r.status())),
    }
    app.stop().await;
}
