//! Register, log in, who am I; and, with the built-in issuer, its discovery document
//! and JWKS.

use actix_web::{HttpResponse, get, post, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::access::IssuerDocuments;
use crate::app::identity::Identity;
use crate::domain::identity::{Role, UserId};
use crate::domain::ports::IssuedToken;
use crate::error::{AppError, ErrorBody};
use crate::http::extract::{AuthRejections, AuthUser, ClientIp};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(register)
        .service(login)
        .service(refresh)
        .service(logout)
        .service(me);
}

/// Discovery and JWKS of the built-in issuer (mounted only when it is the provider).
pub fn configure_issuer(cfg: &mut web::ServiceConfig) {
    cfg.service(discovery).service(jwks);
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Credentials {
    #[schema(format = Email, max_length = 254)]
    email: String,
    /// 8 to 128 characters at registration; at login any length up to 128 is checked
    /// (the rules may have changed since the account was made).
    #[schema(format = Password, max_length = 128)]
    password: String,
}

/// A new account's e-mail and password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Registration {
    #[schema(format = Email, max_length = 254)]
    email: String,
    /// 8 to 128 characters, not only spaces.
    #[schema(format = Password, min_length = 8, max_length = 128, pattern = r"\S")]
    password: String,
}

#[derive(Serialize, ToSchema)]
pub(super) struct Registered {
    user_id: UserId,
}

/// Creates an account (no e-mail verification).
#[utoipa::path(
    tag = "auth",
    request_body = Registration,
    responses(
        (status = 201, description = "Created", body = Registered),
        (status = 400, description = "error: INVALID_REQUEST", body = ErrorBody),
        (status = 409, description = "error: EMAIL_TAKEN", body = ErrorBody),
        (status = 422, description = "error: INVALID_EMAIL, WEAK_PASSWORD", body = ErrorBody),
        (status = 429, description = "error: TOO_MANY_ATTEMPTS (sign-ups from this client or in all; `Retry-After`)", body = ErrorBody),
        (status = 503, description = "error: SERVER_BUSY", body = ErrorBody),
    ),
)]
#[post("/api/auth/register")]
pub(super) async fn register(
    identity: web::Data<Identity>,
    ClientIp(client_ip): ClientIp,
    body: web::Json<Registration>,
) -> Result<HttpResponse, AppError> {
    let user_id = identity
        .register(&body.email, &body.password, &client_ip)
        .await?;
    Ok(HttpResponse::Created().json(Registered { user_id }))
}

/// Exchanges e-mail and password for a bearer token.
#[utoipa::path(
    tag = "auth",
    request_body = Credentials,
    responses(
        (status = 200, description = "The token (`Cache-Control: no-store`)", body = IssuedToken),
        (status = 400, description = "error: INVALID_REQUEST", body = ErrorBody),
        (status = 401, description = "error: INVALID_CREDENTIALS", body = ErrorBody),
        (status = 429, description = "error: TOO_MANY_ATTEMPTS (with `Retry-After`)", body = ErrorBody),
        (status = 503, description = "error: SERVER_BUSY", body = ErrorBody),
    ),
)]
#[post("/api/auth/login")]
pub(super) async fn login(
    identity: web::Data<Identity>,
    ClientIp(client_ip): ClientIp,
    body: web::Json<Credentials>,
) -> Result<HttpResponse, AppError> {
    let token = identity
        .login(&body.email, &body.password, &client_ip)
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(token))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RefreshToken {
    /// From the last login or refresh.
    refresh_token: String,
}

/// A new access token (and refresh token) for a refresh token.
///
/// A shopper waiting for a sale stays logged in.
#[utoipa::path(
    tag = "auth",
    request_body = RefreshToken,
    responses(
        (status = 200, description = "The new token (`Cache-Control: no-store`)", body = IssuedToken),
        (status = 400, description = "error: INVALID_REQUEST", body = ErrorBody),
        (status = 401, description = "error: INVALID_REFRESH_TOKEN", body = ErrorBody),
        (status = 503, description = "error: SERVER_BUSY", body = ErrorBody),
    ),
)]
#[post("/api/auth/refresh")]
pub(super) async fn refresh(
    identity: web::Data<Identity>,
    body: web::Json<RefreshToken>,
) -> Result<HttpResponse, AppError> {
    let token = identity.refresh(&body.refresh_token).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(token))
}

/// Ends the session: the refresh token is revoked at the provider.
#[utoipa::path(
    tag = "auth",
    request_body = RefreshToken,
    responses(
        (status = 204, description = "Logged out"),
        (status = 400, description = "error: INVALID_REQUEST", body = ErrorBody),
        (status = 401, description = "error: INVALID_REFRESH_TOKEN", body = ErrorBody),
        (status = 503, description = "error: SERVER_BUSY", body = ErrorBody),
    ),
)]
#[post("/api/auth/logout")]
pub(super) async fn logout(
    identity: web::Data<Identity>,
    body: web::Json<RefreshToken>,
) -> Result<HttpResponse, AppError> {
    identity.logout(&body.refresh_token).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Serialize, ToSchema)]
pub(super) struct Me {
    user_id: UserId,
    /// Null when the token carries none.
    email: Option<String>,
    roles: Vec<Role>,
}

/// The caller as the token describes them.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = Me),
        (status = 503, description = "error: SERVER_BUSY", body = ErrorBody),
        AuthRejections,
    ),
)]
#[get("/api/me")]
pub(super) async fn me(AuthUser(principal): AuthUser) -> HttpResponse {
    HttpResponse::Ok().json(Me {
        user_id: principal.user_id,
        email: principal.email,
        roles: principal.roles,
    })
}

/// OpenID Connect discovery document of the built-in issuer.
///
/// Served only when the built-in issuer is the identity provider.
#[utoipa::path(
    tag = "issuer",
    responses((status = 200, description = "OpenID Provider Metadata", body = Object)),
)]
#[get("/.well-known/openid-configuration")]
pub(super) async fn discovery(issuer: web::Data<IssuerDocuments>) -> HttpResponse {
    HttpResponse::Ok().json(issuer.discovery())
}

/// Public signing keys of the built-in issuer, as a JSON Web Key Set.
///
/// Served only when the built-in issuer is the identity provider.
#[utoipa::path(
    tag = "issuer",
    responses((status = 200, description = "JWK Set (`Cache-Control: public, max-age=300`)", body = Object)),
)]
#[get("/.well-known/jwks.json")]
pub(super) async fn jwks(issuer: web::Data<IssuerDocuments>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "public, max-age=300"))
        .json(issuer.jwks())
}
