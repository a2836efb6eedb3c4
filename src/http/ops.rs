//! Operational endpoints every role serves: liveness, readiness, metrics.

use std::time::Duration;

use actix_web::{HttpResponse, get, web};
use serde::Serialize;

use crate::app::health::{Check, Health};
use crate::error::AppError;
use crate::metrics::Metrics;

/// What `/readyz` reports besides the dependency checks.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceInfo {
    pub role: &'static str,
    /// UUID generated at start-up; ws instances are addressed by it.
    pub server_id: uuid::Uuid,
    pub version: &'static str,
}

/// Bound on each dependency probe of `/readyz`.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(healthz)
        .service(readyz)
        .service(metrics)
        .service(openapi);
}

/// Liveness: the process answers HTTP. Never touches dependencies, so an outage of
/// MySQL does not make an orchestrator restart every replica.
#[get("/healthz")]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

#[derive(Serialize)]
struct Readiness<'a> {
    status: &'static str,
    #[serde(flatten)]
    instance: &'a InstanceInfo,
    /// Names of the dependencies that failed their probe.
    failing: Vec<&'static str>,
    checks: Vec<Check>,
}

/// Readiness: every dependency of this role answered within the probe timeout.
/// 503 names the ones that did not.
#[get("/readyz")]
async fn readyz(health: web::Data<Health>, instance: web::Data<InstanceInfo>) -> HttpResponse {
    let checks = health.checks(PROBE_TIMEOUT).await;
    let failing: Vec<_> = checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.dependency)
        .collect();
    let ready = failing.is_empty();
    let body = Readiness {
        status: if ready { "ready" } else { "unavailable" },
        instance: &instance,
        failing,
        checks,
    };
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

#[get("/metrics")]
async fn metrics(metrics: web::Data<Metrics>) -> Result<HttpResponse, AppError> {
    let text = metrics
        .render()
        .map_err(|e| AppError::Unexpected(anyhow::anyhow!("rendering metrics: {e}")))?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(text))
}

/// The public HTTP contract as OpenAPI 3.1 (kept next to the handlers; a test checks
/// that every mounted API route is in it).
pub const OPENAPI: &str = include_str!("openapi.json");

#[get("/api/openapi.json")]
async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(OPENAPI)
}
