//! Request extractors: the verified caller.

use std::future::Future;
use std::pin::Pin;

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use crate::adapters::oidc::TokenVerifier;
use crate::domain::identity::{IdentityError, Principal};
use crate::error::AppError;

/// The caller, from `Authorization: Bearer <token>`; 401 otherwise.
pub struct AuthUser(pub Principal);

/// A caller with the `admin` role; 401 without a token, 403 without the role.
pub struct AdminUser(pub Principal);

/// The bearer token of a request, if it has one in the `Authorization` header.
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

async fn authenticate(req: HttpRequest) -> Result<Principal, AppError> {
    let verifier = req
        .app_data::<web::Data<TokenVerifier>>()
        .cloned()
        .ok_or_else(|| AppError::Unexpected(anyhow::anyhow!("no token verifier mounted")))?;
    let token = bearer_token(&req)
        .ok_or(IdentityError::Unauthorized("missing bearer token"))?
        .to_owned();
    Ok(verifier.verify(&token).await?)
}

impl FromRequest for AuthUser {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { authenticate(req).await.map(AuthUser) })
    }
}

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
