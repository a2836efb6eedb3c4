//! Thin HTTP layer: each sub-module offers a `configure` function that a role mounts.
//! Handlers parse, authorise, call the application layer and map errors through
//! [`crate::error::AppError`]; no SQL, Redis or Kafka here.

pub mod admin;
pub mod auth;
pub mod catalog;
pub mod client_ip;
pub mod extract;
pub mod metrics;
pub mod openapi;
pub mod ops;
pub mod pages;
#[cfg(feature = "profile")]
pub mod profile;
pub mod purchase;
pub mod request_id;
pub mod waiting_room;
pub mod ws;

use actix_web::{HttpRequest, HttpResponse, web};

use crate::error::AppError;

/// JSON error bodies for requests the extractors reject, instead of actix's plain text.
pub fn configure_extractors(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(64 * 1024)
            .error_handler(|err, _req| AppError::BadRequest(err.to_string()).into()),
    )
    .app_data(
        web::QueryConfig::default()
            .error_handler(|err, _req| AppError::BadRequest(err.to_string()).into()),
    )
    .app_data(
        web::PathConfig::default()
            .error_handler(|err, _req| AppError::BadRequest(err.to_string()).into()),
    );
}

/// Fallback for requests no module serves.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, AppError> {
    Err(unrouted(&req))
}

/// The answer to a request no route took: 405 with `Allow` when the API document has the
/// path with other methods, 404 otherwise (a documented method this role does not
/// serve is a 404 too: another role serves it).
pub fn unrouted(req: &HttpRequest) -> AppError {
    static DOCUMENTED: std::sync::LazyLock<Vec<(actix_web::dev::ResourceDef, Vec<&str>)>> =
        std::sync::LazyLock::new(openapi::documented_methods);
    let path = req.path();
    match DOCUMENTED.iter().find(|(route, _)| route.is_match(path)) {
        Some((_, methods)) if !methods.contains(&req.method().as_str()) => {
            AppError::MethodNotAllowed(methods.join(", "))
        }
        _ => AppError::RouteNotFound,
    }
}
