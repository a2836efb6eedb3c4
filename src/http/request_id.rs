//! Every request runs in a span carrying its request id: the one NGINX sent in
//! `X-Request-Id` (the id of its access log line), or a new one. Every log line the
//! request causes names it, and the answer echoes it, so one request can be found in the
//! proxy's log and the app's.

use std::future::{Ready, ready};

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use tracing::Instrument;

const HEADER: HeaderName = HeaderName::from_static("x-request-id");
/// Longest id taken from a client or proxy (NGINX's `$request_id` is 32 hex digits).
const MAX_LEN: usize = 64;

fn acceptable(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

pub async fn tag(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = req
        .headers()
        .get(&HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|id| acceptable(id))
        .map_or_else(|| uuid::Uuid::new_v4().simple().to_string(), str::to_owned);
    let span = tracing::info_span!("request", request_id = %id);
    req.extensions_mut().insert(RequestId(Some(id.clone())));
    let mut response = next.call(req).instrument(span).await?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, value);
    }
    Ok(response)
}

/// The request's id, for work that outlives the request (the order event carries it to
/// the payment role). None where the tagging middleware did not run.
#[derive(Debug, Clone)]
pub struct RequestId(pub Option<String>);

impl FromRequest for RequestId {
    type Error = std::convert::Infallible;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(req
            .extensions()
            .get::<RequestId>()
            .cloned()
            .unwrap_or(RequestId(None))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_plain_ids_are_taken_over() {
        assert!(acceptable("5f2b0c9e8d7a6b5c4d3e2f1a0b9c8d7e"));
        assert!(acceptable("req-1.a_b"));
        assert!(!acceptable(""));
        assert!(!acceptable("a b"));
        assert!(!acceptable("x\nInjected: 1"));
        assert!(!acceptable(&"a".repeat(65)));
    }
}
