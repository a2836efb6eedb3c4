//! Register, log in, who am I; and, with the built-in issuer, its discovery document
//! and JWKS.

use actix_web::{HttpResponse, get, post, web};
use serde::Deserialize;

use crate::app::access::IssuerDocuments;
use crate::app::identity::Identity;
use crate::error::AppError;
use crate::http::extract::{AuthUser, ClientIp};

/// Whether to take the client address from `X-Forwarded-For`.
#[derive(Clone, Copy)]
pub struct TrustProxyHeaders(pub bool);

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    email: String,
    password: String,
}

/// Creates an account (no e-mail verification).
#[post("/api/auth/register")]
async fn register(
    identity: web::Data<Identity>,
    ClientIp(client_ip): ClientIp,
    body: web::Json<Credentials>,
) -> Result<HttpResponse, AppError> {
    let user_id = identity
        .register(&body.email, &body.password, &client_ip)
        .await?;
    Ok(HttpResponse::Created().json(serde_json::json!({ "user_id": user_id })))
}

/// Exchanges e-mail and password for a bearer token.
#[post("/api/auth/login")]
async fn login(
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshToken {
    refresh_token: String,
}

/// A new access token (and refresh token) for a refresh token: a shopper waiting for a
/// sale stays logged in.
#[post("/api/auth/refresh")]
async fn refresh(
    identity: web::Data<Identity>,
    body: web::Json<RefreshToken>,
) -> Result<HttpResponse, AppError> {
    let token = identity.refresh(&body.refresh_token).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(token))
}

/// Ends the session: the refresh token is revoked at the provider.
#[post("/api/auth/logout")]
async fn logout(
    identity: web::Data<Identity>,
    body: web::Json<RefreshToken>,
) -> Result<HttpResponse, AppError> {
    identity.logout(&body.refresh_token).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The caller as the token describes them.
#[get("/api/me")]
async fn me(AuthUser(principal): AuthUser) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "user_id": principal.user_id,
        "email": principal.email,
        "roles": principal.roles,
    }))
}

#[get("/.well-known/openid-configuration")]
async fn discovery(issuer: web::Data<IssuerDocuments>) -> HttpResponse {
    HttpResponse::Ok().json(issuer.discovery())
}

#[get("/.well-known/jwks.json")]
async fn jwks(issuer: web::Data<IssuerDocuments>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "public, max-age=300"))
        .json(issuer.jwks())
}
