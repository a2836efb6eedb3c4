//! Request extractors: the verified caller, ids in the path, the Idempotency-Key.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use futures_util::future::{Either, Ready, ready};
use utoipa::openapi::{Content, Ref, RefOr, Response, ResponseBuilder};

use crate::app::access::Authenticator;
use crate::domain::coupon::{CatalogError, CouponId};
use crate::domain::identity::{IdentityError, Principal};
use crate::domain::order::{OrderError, OrderId};
use crate::error::{AppError, ErrorBody, ErrorCode};

/// The caller, from `Authorization: Bearer <token>`; 401 otherwise.
pub struct AuthUser(pub Principal);

/// A caller with the `admin` role; 401 without a token, 403 without the role.
pub struct AdminUser(pub Principal);

/// The answers [`AuthUser`] gives on its own, for the OpenAPI operations that take it.
pub struct AuthRejections;

impl utoipa::IntoResponses for AuthRejections {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        error_responses(&[ErrorCode::Unauthorized])
    }
}

/// The answers [`AdminUser`] gives on its own, for the OpenAPI operations that take it.
pub struct AdminRejections;

impl utoipa::IntoResponses for AdminRejections {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        error_responses(&[ErrorCode::Unauthorized, ErrorCode::Forbidden])
    }
}

fn error_responses(codes: &[ErrorCode]) -> BTreeMap<String, RefOr<Response>> {
    use utoipa::ToSchema;
    let body = Content::new(Some(Ref::from_schema_name(ErrorBody::name())));
    codes
        .iter()
        .map(|code| {
            let response = ResponseBuilder::new()
                .description(format!("error: {code}"))
                .content("application/json", body.clone())
                .build();
            (code.status().as_str().to_owned(), response.into())
        })
        .collect()
}

/// The bearer token of a request, if it has one in the `Authorization` header.
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .as_bytes();
    let (scheme, token) = value.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    // Tokens are ASCII (a JWT is base64url and dots); the verifier judges the rest.
    let token = token.trim_ascii();
    if token.is_empty() || !token.is_ascii() {
        return None;
    }
    std::str::from_utf8(token).ok()
}

async fn authenticate(req: HttpRequest) -> Result<Principal, AppError> {
    let authenticator = req
        .app_data::<web::Data<Authenticator>>()
        .cloned()
        .ok_or_else(|| AppError::Unexpected(anyhow::anyhow!("no authenticator mounted")))?;
    let token = bearer_token(&req)
        .ok_or(IdentityError::Unauthorized("missing bearer token"))?
        .to_owned();
    Ok(authenticator.verify(&token).await?)
}

impl FromRequest for AuthUser {
    type Error = AppError;
    type Future = Either<Ready<Result<Self, AppError>>, BoxedAuth<Self>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Nearly every request carries a token verified before: answered without a
        // future of its own or a copy of the token.
        let cached = req
            .app_data::<web::Data<Authenticator>>()
            .zip(bearer_token(req))
            .and_then(|(authenticator, token)| authenticator.cached(token));
        if let Some(principal) = cached {
            return Either::Left(ready(Ok(AuthUser(principal))));
        }
        let req = req.clone();
        Either::Right(Box::pin(
            async move { authenticate(req).await.map(AuthUser) },
        ))
    }
}

type BoxedAuth<T> = Pin<Box<dyn Future<Output = Result<T, AppError>>>>;

impl FromRequest for AdminUser {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let principal = authenticate(req).await?;
            if principal.is_admin() {
                Ok(AdminUser(principal))
            } else {
                Err(IdentityError::Forbidden.into())
            }
        })
    }
}

/// The `{id}` segment of a coupon route. Not a number: 400; a number no coupon can have
/// (zero, negative): 404, like any unknown id.
pub struct CouponPath(pub CouponId);

impl FromRequest for CouponPath {
    type Error = AppError;
    type Future = Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let raw = req.match_info().get("id").unwrap_or_default();
        ready(match raw.parse::<i64>() {
            Err(_) => Err(AppError::BadRequest(format!(
                "coupon id must be a positive integer, got {raw:?}"
            ))),
            Ok(id) => CouponId::new(id)
                .map(CouponPath)
                .ok_or(AppError::Catalog(CatalogError::NotFound)),
        })
    }
}

/// The `{id}` segment of an order route; anything but an order id is simply not found
/// (no probing of the id format).
pub struct OrderPath(pub OrderId);

impl FromRequest for OrderPath {
    type Error = AppError;
    type Future = Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let raw = req.match_info().get("id").unwrap_or_default();
        ready(
            OrderId::parse(raw)
                .map(OrderPath)
                .ok_or(AppError::Order(OrderError::NotFound)),
        )
    }
}

/// Longest accepted `Idempotency-Key`.
const IDEMPOTENCY_KEY_MAX: usize = 128;

/// The optional `Idempotency-Key` header: 1-128 visible ASCII characters, else 400.
pub struct IdempotencyKey(pub Option<String>);

impl IdempotencyKey {
    pub fn as_deref(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl FromRequest for IdempotencyKey {
    type Error = AppError;
    type Future = Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(value) = req.headers().get("Idempotency-Key") else {
            return ready(Ok(IdempotencyKey(None)));
        };
        let key = value
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|k| {
                !k.is_empty()
                    && k.len() <= IDEMPOTENCY_KEY_MAX
                    && k.chars().all(|c| c.is_ascii_graphic())
            })
            .map(|k| IdempotencyKey(Some(k.to_owned())))
            .ok_or_else(|| {
                AppError::BadRequest(
                    "Idempotency-Key must be 1-128 visible ASCII characters".to_owned(),
                )
            });
        ready(key)
    }
}

/// `X-Admission-Pass`: the pass a sale's waiting room gave (checked by the purchase).
pub struct AdmissionPass(pub Option<String>);

impl FromRequest for AdmissionPass {
    type Error = AppError;
    type Future = Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let pass = req
            .headers()
            .get(crate::http::purchase::ADMISSION_PASS)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        ready(Ok(AdmissionPass(pass)))
    }
}

/// The client's address: the peer, or behind trusted proxies (`server.trusted_proxies`)
/// the right-most `X-Forwarded-For` address none of them is.
pub struct ClientIp(pub String);

impl FromRequest for ClientIp {
    type Error = AppError;
    type Future = Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(peer) = req.peer_addr().map(|addr| addr.ip()) else {
            return ready(Ok(ClientIp("unknown".to_owned())));
        };
        let ip = match req.app_data::<web::Data<crate::http::client_ip::TrustedHops>>() {
            Some(hops) => {
                let forwarded: Vec<&str> = req
                    .headers()
                    .get_all("X-Forwarded-For")
                    .filter_map(|value| value.to_str().ok())
                    .collect();
                hops.client(peer, &forwarded)
            }
            None => peer,
        };
        ready(Ok(ClientIp(ip.to_string())))
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::bearer_token;

    fn token_of(header: &[u8]) -> Option<String> {
        let value = actix_web::http::header::HeaderValue::from_bytes(header).unwrap();
        let req = TestRequest::default()
            .insert_header((actix_web::http::header::AUTHORIZATION, value))
            .to_http_request();
        bearer_token(&req).map(str::to_owned)
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_the_token_trimmed() {
        assert_eq!(token_of(b"Bearer abc.def").as_deref(), Some("abc.def"));
        assert_eq!(token_of(b"bEARER   abc  ").as_deref(), Some("abc"));
    }

    #[test]
    fn other_schemes_empty_and_non_ascii_tokens_are_no_token() {
        for header in [
            &b"Basic abc"[..],
            b"Bearer",
            b"Bearer   ",
            b"Bearerabc",
            b"Bearer \xc3\xa9",
        ] {
            assert_eq!(
                token_of(header),
                None,
                "{}",
                String::from_utf8_lossy(header)
            );
        }
        let req = TestRequest::default().to_http_request();
        assert_eq!(bearer_token(&req), None);
    }
}
