//! Request extractors of `flash_sale::http`: the `{id}` path segment of coupon and order
//! routes, the `Idempotency-Key` header, the bearer token of `Authorization`, the
//! WebSocket subprotocol token, and the client address taken from `X-Forwarded-For` /
//! `Forwarded` when proxy headers are trusted.

#![no_main]

use std::net::{Ipv4Addr, SocketAddr};

use actix_web::dev::Payload;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::test::TestRequest;
use actix_web::{FromRequest, HttpRequest, ResponseError, web};
use arbitrary::Arbitrary;
use flash_sale::domain::order::OrderId;
use flash_sale::http::auth::TrustProxyHeaders;
use flash_sale::http::extract::{ClientIp, CouponPath, IdempotencyKey, OrderPath, bearer_token};
use flash_sale::http::ws::handshake_token;
use futures_util::FutureExt;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    path_id: &'a str,
    idempotency_key: Option<&'a [u8]>,
    authorization: Option<&'a [u8]>,
    ws_protocol: Option<&'a [u8]>,
    x_forwarded_for: Option<&'a [u8]>,
    forwarded: Option<&'a [u8]>,
    trust_proxy_headers: bool,
    peer: ([u8; 4], u16),
}

/// Adds a header if the bytes are a value an HTTP parser could have produced.
fn with_header(req: TestRequest, name: &'static str, value: Option<&[u8]>) -> TestRequest {
    match value.map(HeaderValue::from_bytes) {
        Some(Ok(value)) => req.insert_header((HeaderName::from_static(name), value)),
        _ => req,
    }
}

fn request(input: &Input<'_>) -> HttpRequest {
    let mut req = TestRequest::default()
        .param("id", input.path_id.to_owned())
        .peer_addr(SocketAddr::from((
            Ipv4Addr::from(input.peer.0),
            input.peer.1,
        )));
    req = with_header(req, "idempotency-key", input.idempotency_key);
    req = with_header(req, "authorization", input.authorization);
    req = with_header(req, "sec-websocket-protocol", input.ws_protocol);
    req = with_header(req, "x-forwarded-for", input.x_forwarded_for);
    req = with_header(req, "forwarded", input.forwarded);
    if input.trust_proxy_headers {
        req = req.app_data(web::Data::new(TrustProxyHeaders(true)));
    }
    req.to_http_request()
}

/// Runs an extractor that answers at once (they all do: no body is read).
fn extract<T: FromRequest>(req: &HttpRequest) -> Result<T, T::Error> {
    T::from_request(req, &mut Payload::None)
        .now_or_never()
        .expect("a header/path extractor must be ready at once")
}

fuzz_target!(|input: Input<'_>| {
    let req = request(&input);

    match extract::<CouponPath>(&req) {
        Ok(CouponPath(id)) => {
            assert!(id.get() > 0, "coupon ids are positive");
            assert_eq!(input.path_id.parse::<i64>().ok(), Some(id.get()));
        }
        Err(e) => {
            let status = e.status_code().as_u16();
            assert!(
                status == 400 || status == 404,
                "coupon path answered {status}"
            );
            let _ = e.error_response();
        }
    }

    match extract::<OrderPath>(&req) {
        Ok(OrderPath(id)) => assert_eq!(OrderId::parse(&id.to_string()), Some(id)),
        Err(e) => {
            assert_eq!(e.status_code().as_u16(), 404);
            let _ = e.error_response();
        }
    }

    match extract::<IdempotencyKey>(&req) {
        Ok(key) => match key.as_deref() {
            None => assert!(!req.headers().contains_key("idempotency-key")),
            Some(k) => {
                assert!((1..=128).contains(&k.len()), "key of {} bytes", k.len());
                assert!(k.bytes().all(|b| b.is_ascii_graphic()), "{k:?}");
            }
        },
        Err(e) => {
            assert!(req.headers().contains_key("idempotency-key"));
            assert_eq!(e.status_code().as_u16(), 400);
            let _ = e.error_response();
        }
    }

    if let Some(token) = bearer_token(&req) {
        assert!(!token.is_empty());
        assert_eq!(token, token.trim());
    }

    if let Some(token) = handshake_token(&req) {
        let header = req.headers().get("sec-websocket-protocol");
        let header = header.and_then(|h| h.to_str().ok()).unwrap_or_default();
        assert!(header.contains(token.as_str()));
    }

    match extract::<ClientIp>(&req) {
        // Without trusted proxy headers the address is the peer's. With them it is the
        // first `Forwarded: for=` or `X-Forwarded-For` entry as sent (possibly empty).
        Ok(ClientIp(ip)) if !input.trust_proxy_headers => {
            assert_eq!(ip, Ipv4Addr::from(input.peer.0).to_string());
        }
        Ok(_) => {}
        Err(e) => panic!("ClientIp never refuses a request, got {e}"),
    }
});
