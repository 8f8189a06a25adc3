//! The auditors' surface: the global log by position, the chain head to
//! keep, verification, and the proof that today's log extends a head kept
//! earlier.

use actix_web::{get, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::{query, Paged, ReadErrors};
use crate::problem::ApiError;
use crate::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_events)
        .service(audit_head)
        .service(verify)
        .service(proof);
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Stream category: zone, returnee, checkpoint, venue, banquet, activity, staff, report.
    pub category: Option<String>,
    /// One event type, e.g. QuarantineStarted.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub event_type: Option<String>,
    /// Items per page, 1 to 1000 (default 100).
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page (a log position).
    pub cursor: Option<String>,
}

/// One event of the global log, with its hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogEvent {
    pub position: u64,
    pub stream_id: String,
    pub stream_version: u64,
    pub event_id: uuid::Uuid,
    #[serde(rename = "type")]
    pub event_type: String,
    pub schema_version: u32,
    pub data: serde_json::Value,
    pub metadata: serde_json::Value,
    pub recorded_at: DateTime<Utc>,
    /// SHA-256 over the previous hash and this event, hex.
    pub hash: String,
}

/// The global log in position order.
#[utoipa::path(
    tag = "audit",
    params(EventsQuery),
    responses((status = 200, description = "A page of the log", body = Paged<LogEvent>), ReadErrors)
)]
#[get("/events")]
async fn list_events(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q: EventsQuery = query(&req)?;
    let page = super::Page {
        limit: q.limit,
        cursor: q.cursor,
    };
    let limit = page.limit()?;
    let filter = fangkong_store::LogFilter {
        category: q.category,
        event_types: q.event_type.into_iter().collect(),
    };
    let events = state
        .store()
        .read_all(page.after()?, limit, &filter)
        .await?;
    let next_cursor = (events.len() == limit)
        .then(|| events.last().map(|e| e.position.to_string()))
        .flatten();
    let items = events
        .into_iter()
        .map(|e| LogEvent {
            position: e.position,
            stream_id: e.stream_id,
            stream_version: e.stream_version,
            event_id: e.event_id,
            event_type: e.event_type,
            schema_version: e.schema_version,
            data: e.payload,
            metadata: e.metadata,
            recorded_at: e.recorded_at,
            hash: hex::encode(e.hash),
        })
        .collect();
    Ok(HttpResponse::Ok().json(Paged { items, next_cursor }))
}

/// The chain head: keep it, and later prove the log only grew from it.
#[derive(Debug, Serialize, ToSchema)]
pub struct HeadView {
    pub position: u64,
    /// Hex SHA-256; 64 zeros for an empty log.
    pub hash: String,
    /// When it was read.
    pub read_at: DateTime<Utc>,
}

/// The last position of the log and its hash.
#[utoipa::path(
    tag = "audit",
    responses((status = 200, description = "The head", body = HeadView), ReadErrors)
)]
#[get("/audit/head")]
async fn audit_head(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let head = state.store().head().await?;
    Ok(HttpResponse::Ok().json(HeadView {
        position: head.position,
        hash: hex::encode(head.hash),
        read_at: Utc::now(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct VerifyQuery {
    /// First position to check (default 1); the stored hash before it is trusted.
    pub from: Option<u64>,
    /// Last position to check (default: the head).
    pub to: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BreakView {
    pub position: u64,
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyView {
    pub intact: bool,
    pub checked: u64,
    /// The last position that verified, and its hash.
    pub verified_position: u64,
    pub verified_hash: String,
    pub first_break: Option<BreakView>,
}

/// Recompute the chain over a range and report the first broken position.
#[utoipa::path(
    tag = "audit",
    params(VerifyQuery),
    responses((status = 200, description = "The verification", body = VerifyView), ReadErrors)
)]
#[get("/audit/verify")]
async fn verify(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let q: VerifyQuery = query(&req)?;
    let report = state.store().verify(q.from.unwrap_or(1), q.to).await?;
    Ok(HttpResponse::Ok().json(VerifyView {
        intact: report.is_intact(),
        checked: report.checked,
        verified_position: report.verified_head.position,
        verified_hash: hex::encode(report.verified_head.hash),
        first_break: report.first_break.map(|b| BreakView {
            position: b.position(),
            reason: b.to_string(),
        }),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ProofQuery {
    /// The position of a head kept earlier.
    pub position: u64,
    /// Its hash, hex.
    pub hash: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProofView {
    /// The kept head is in today's log and everything after it verifies.
    pub extends: bool,
    /// The hash stored today at the kept position, if the log reaches it.
    pub stored_hash: Option<String>,
    pub head_position: u64,
    pub head_hash: String,
    pub first_break: Option<BreakView>,
}

/// Prove that today's log extends a head kept earlier: the kept hash is
/// still the one at its position, and the chain from there to the head
/// verifies.
#[utoipa::path(
    tag = "audit",
    params(ProofQuery),
    responses((status = 200, description = "The proof", body = ProofView), ReadErrors)
)]
#[get("/audit/proof")]
async fn proof(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let q: ProofQuery = query(&req)?;
    let kept = q.hash.trim().to_ascii_lowercase();
    if kept.len() != 64 || !kept.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(ApiError::field("hash", "must be 64 hex characters"));
    }
    let store = state.store();
    let stored = store.hash_at(q.position).await?.map(hex::encode);
    let head = store.head().await?;
    let report = store.verify(q.position.saturating_add(1), None).await?;
    let extends = stored.as_deref() == Some(kept.as_str()) && report.is_intact();
    Ok(HttpResponse::Ok().json(ProofView {
        extends,
        stored_hash: stored,
        head_position: head.position,
        head_hash: hex::encode(head.hash),
        first_break: report.first_break.map(|b| BreakView {
            position: b.position(),
            reason: b.to_string(),
        }),
    }))
}
