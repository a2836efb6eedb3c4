//! The bundled web pages (built from `web/` into `server.static_dir`), served by the api
//! role in development; NGINX serves the same files in deployments. Unknown paths that
//! are not API routes fall back to `index.html`, so the single-page app's own routes
//! survive a reload.

use std::path::{Path, PathBuf};

use actix_files::{Files, NamedFile};
use actix_web::dev::{ServiceRequest, ServiceResponse, fn_service};
use actix_web::{guard, web};

/// Prefixes that belong to the server, never to the pages.
const SERVER_PATHS: [&str; 6] = [
    "/api/",
    "/ws",
    "/objects/",
    "/.well-known/",
    "/healthz",
    "/readyz",
];

/// Mounts the pages at `/` when `dir` holds a built `index.html`.
pub fn configure(dir: &Path) -> impl FnOnce(&mut web::ServiceConfig) + use<> {
    let dir = dir.to_path_buf();
    move |cfg| {
        let index = dir.join("index.html");
        if !index.is_file() {
            return;
        }
        cfg.service(
            Files::new("/", dir)
                // Other methods fall through to the JSON 404/405 answers.
                .guard(guard::Any(guard::Get()).or(guard::Head()))
                .index_file("index.html")
                .default_handler(fn_service(move |req: ServiceRequest| {
                    spa_fallback(req, index.clone())
                })),
        );
    }
}

async fn spa_fallback(
    req: ServiceRequest,
    index: PathBuf,
) -> Result<ServiceResponse, actix_web::Error> {
    let (req, _) = req.into_parts();
    if SERVER_PATHS
        .iter()
        .any(|prefix| req.path().starts_with(prefix))
        || req.path() == "/metrics"
    {
        let response = super::unrouted(&req);
        return Ok(ServiceResponse::new(
            req,
            actix_web::ResponseError::error_response(&response),
        ));
    }
    let file = NamedFile::open(index)?;
    let response = file.into_response(&req);
    Ok(ServiceResponse::new(req, response))
}
