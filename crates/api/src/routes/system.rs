//! Liveness, readiness and metrics.

use actix_web::{get, web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::access::MetricsReader;
use crate::problem::{ApiError, Problem};
use crate::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(healthz).service(readyz).service(metrics);
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
}

/// Liveness: the process answers.
///
/// Needs no token and looks at nothing but the process itself, so it says nothing about the
/// store; ask `/readyz` whether the service can serve.
#[utoipa::path(tag = "system", security(()), responses((status = 200, body = Health)))]
#[get("/healthz")]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// Readiness.
///
/// The log's head can be read (from the very file opened, for SQLite), and the
/// figures are not stopped at an event they cannot apply.
#[utoipa::path(
    tag = "system",
    security(()),
    responses(
        (status = 200, body = Health),
        (status = 503, description = "The store does not answer", body = Problem, content_type = "application/problem+json")
    )
)]
#[get("/readyz")]
async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.store().ping().await?;
    state.figures_current()?;
    if let Some(position) = state.commands.corrupt_at() {
        return Err(ApiError::LogCorrupt { position });
    }
    Ok(HttpResponse::Ok().json(Health { status: "ready" }))
}

/// Prometheus metrics: open on a loopback bind or with `--metrics-public`;
/// otherwise an admin or auditor token.
///
/// In the Prometheus text format: requests answered by route and status, request latency,
/// writes and events appended by this instance, appends lost to another writer, and the log's
/// last position.
#[utoipa::path(tag = "system", security((), ("bearer" = [])), responses((status = 200, content_type = "text/plain", body = String), crate::routes::ReadErrors))]
#[get("/metrics")]
async fn metrics(_reader: MetricsReader, state: web::Data<AppState>) -> HttpResponse {
    let head = state.store().subscribe().borrow().to_owned();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render(head, state.commands.write_counts()))
}
