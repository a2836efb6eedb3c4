//! Operational endpoints every role serves: liveness, readiness, metrics.

use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::health::{Check, Health, PROBE_TIMEOUT};
use crate::error::{AppError, ErrorBody};
use crate::metrics::Metrics;
use crate::shutdown::Draining;

/// What `/readyz` reports besides the dependency checks.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InstanceInfo {
    /// The role(s) this process runs: `api`, `payment`, `ws` or `all`.
    pub role: &'static str,
    /// UUID generated at start-up; ws instances are addressed by it.
    pub server_id: uuid::Uuid,
    /// The build's version.
    pub version: &'static str,
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(healthz)
        .service(readyz)
        .service(metrics)
        .service(openapi);
    #[cfg(feature = "profile")]
    cfg.configure(super::profile::configure);
}

#[derive(Serialize, ToSchema)]
pub(super) struct Liveness {
    #[schema(example = "ok")]
    status: &'static str,
}

/// Liveness: the process answers HTTP.
///
/// Never touches dependencies, so an outage of MySQL does not make an orchestrator
/// restart every replica.
#[utoipa::path(
    tag = "ops",
    responses((status = 200, description = "Alive", body = Liveness)),
)]
#[get("/healthz")]
pub(super) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Liveness { status: "ok" })
}

#[derive(Serialize, ToSchema)]
pub(super) struct Readiness<'a> {
    /// `ready`, `unavailable`, or `draining` (stopping: take it out of rotation).
    status: &'static str,
    #[serde(flatten)]
    instance: &'a InstanceInfo,
    /// Names of the dependencies that failed their probe.
    failing: Vec<&'static str>,
    checks: Vec<Check>,
}

/// Readiness: every dependency of this role answered within the probe timeout.
///
/// 503 names the ones that did not, or says `draining` once the instance is stopping.
#[utoipa::path(
    tag = "ops",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready: `failing` names the dependencies, or `status` is `draining`", body = Readiness),
    ),
)]
#[get("/readyz")]
pub(super) async fn readyz(
    health: web::Data<Health>,
    instance: web::Data<InstanceInfo>,
    draining: Option<web::Data<Draining>>,
) -> HttpResponse {
    if draining.is_some_and(|d| d.is_set()) {
        return HttpResponse::ServiceUnavailable().json(Readiness {
            status: "draining",
            instance: &instance,
            failing: Vec::new(),
            checks: Vec::new(),
        });
    }
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

/// Prometheus metrics of this process.
#[utoipa::path(
    tag = "ops",
    responses(
        (status = 200, description = "Prometheus text exposition format", body = String,
         content_type = "text/plain; version=0.0.4"),
        (status = 500, description = "INTERNAL", body = ErrorBody),
    ),
)]
#[get("/metrics")]
pub(super) async fn metrics(metrics: web::Data<Metrics>) -> Result<HttpResponse, AppError> {
    let text = metrics
        .render()
        .map_err(|e| AppError::Unexpected(anyhow::anyhow!("rendering metrics: {e}")))?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(text))
}

/// The public HTTP contract as OpenAPI 3.1: this document.
#[utoipa::path(
    tag = "ops",
    responses(
        (status = 200, description = "The OpenAPI document", body = Object),
        (status = 500, description = "INTERNAL", body = ErrorBody),
    ),
)]
#[get("/api/openapi.json")]
pub(super) async fn openapi() -> Result<HttpResponse, AppError> {
    let document = super::openapi::json().map_err(|e| {
        AppError::Unexpected(anyhow::anyhow!("rendering the OpenAPI document: {e}"))
    })?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(document))
}
