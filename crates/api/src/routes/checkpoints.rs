//! Duty posts (值守点) and the people and vehicles that crossed them.

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use fangkong_domain::checkpoint::{Checkpoint, CheckpointCommand, RecordCrossing};
use fangkong_domain::{
    CheckpointId, CheckpointKind, Count, CrossingOutcome, CrossingSubject, Name, Origin,
    Temperature, VillageId, ZoneId,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::returnees::OriginBody;
use super::{
    entity, field, optional, path_id, query, run, schemas, written, Page, ReadErrors, WriteErrors,
};
use crate::access::{Authorized, Field};
use crate::extract::{Json, WriteHeaders};
use crate::problem::ApiError;
use crate::write::Written;
use crate::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(establish_checkpoint)
        .service(list_checkpoints)
        .service(get_checkpoint)
        .service(record_crossing);
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"zone_id": "0190f5a2-0000-7000-8000-000000000001", "name": "桥头村路口", "kind": "village_entrance"}))]
pub struct EstablishBody {
    pub checkpoint_id: Option<Uuid>,
    pub zone_id: Uuid,
    pub village_id: Option<Uuid>,
    pub name: String,
    #[schema(schema_with = schemas::checkpoint_kind)]
    pub kind: CheckpointKind,
    pub occurred_at: Option<DateTime<Utc>>,
}

/// One person or vehicle at the post.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"subject": "person", "people": 1, "temperature": 36.5,
    "origin": {"region": "湖北省武汉市", "risk": "high"}, "destination": "桥头村", "outcome": "turned_back"}))]
pub struct CrossingBody {
    #[schema(schema_with = schemas::subject)]
    pub subject: CrossingSubject,
    /// 1 for a person (default); the occupants for a vehicle.
    pub people: Option<i64>,
    /// Required for a vehicle.
    pub plate: Option<String>,
    pub temperature: Option<f64>,
    pub origin: Option<OriginBody>,
    pub destination: Option<String>,
    #[schema(schema_with = schemas::outcome)]
    pub outcome: CrossingOutcome,
    pub occurred_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckpointView {
    pub checkpoint_id: Uuid,
    pub zone_id: Uuid,
    pub village_id: Option<Uuid>,
    pub name: String,
    #[schema(schema_with = schemas::checkpoint_kind)]
    pub kind: String,
    pub crossings: u64,
    pub turned_back: u64,
    pub version: u64,
}

fn view(c: &Checkpoint, version: u64) -> Option<CheckpointView> {
    let e = c.established.as_ref()?;
    Some(CheckpointView {
        checkpoint_id: e.checkpoint_id.as_uuid(),
        zone_id: e.zone_id.as_uuid(),
        village_id: e.village_id.map(|v| v.as_uuid()),
        name: e.name.to_string(),
        kind: e.kind.code().to_owned(),
        crossings: c.crossings,
        turned_back: c.turned_back,
        version,
    })
}

pub(crate) async fn establish(
    state: &AppState,
    headers: &WriteHeaders<Field>,
    body: Json<EstablishBody>,
) -> Result<Written, ApiError> {
    let b = body.value;
    super::zones::check_place(state, headers, b.zone_id, b.village_id).await?;
    let id =
        CheckpointId::from_uuid(headers.new_entity_id(b.checkpoint_id, "checkpoint.establish"));
    let command = CheckpointCommand::Establish {
        checkpoint_id: id,
        zone_id: ZoneId::from_uuid(b.zone_id),
        village_id: b.village_id.map(VillageId::from_uuid),
        name: field("name", Name::parse(&b.name))?,
        kind: b.kind,
    };
    run(
        state,
        headers,
        id,
        "checkpoint.establish",
        body.canonical_hash,
        b.occurred_at,
        command,
    )
    .await
}

/// Establish a duty post at a village entrance, a road, or the compound gate.
///
/// Sets up a checkpoint (值守点) in a zone, optionally at one village, where the people and
/// vehicles crossing are then recorded. Admin, or a zone worker for its own zones; a zone or
/// village that does not exist or lies outside the caller's zones is an invalid field (422).
/// `Idempotency-Key` makes a retry safe, and a client may name `checkpoint_id`. Refused with 409
/// when the rule it breaks is `checkpoint_already_established`.
#[utoipa::path(
    tag = "checkpoints",
    params(("Idempotency-Key" = Option<String>, Header)),
    request_body = EstablishBody,
    responses((status = 201, description = "Established", body = Written, headers(("Location" = String, description = "The new entity: GET it here"), ("ETag" = String, description = "Its stream version, quoted"))), WriteErrors)
)]
#[post("/checkpoints")]
async fn establish_checkpoint(
    caller: Authorized<Field>,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Json<EstablishBody>,
) -> Result<HttpResponse, ApiError> {
    Ok(written(
        establish(&state, &WriteHeaders::parse(&req, caller)?, body).await?,
        Some("/v1/checkpoints"),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CheckpointQuery {
    pub zone_id: Option<Uuid>,
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    pub cursor: Option<String>,
    /// Wait (up to 2 s) until the list reflects this log position: pass a
    /// write's `position` to read your own write.
    #[serde(default, deserialize_with = "crate::extract::within_i64")]
    pub min_position: Option<u64>,
}

/// Checkpoints, filtered by zone.
///
/// In the order established, each with its kind, the crossings recorded and how many of them
/// were turned back (劝返). Cursor-paged with `limit` and `cursor`; `min_position` waits up to
/// 2 s for a write of yours to show. Admin sees every zone, a zone worker only its own zones.
#[utoipa::path(
    tag = "checkpoints",
    params(CheckpointQuery),
    responses((status = 200, description = "A page of checkpoints", body = super::CheckpointPage), ReadErrors)
)]
#[get("/checkpoints")]
async fn list_checkpoints(
    caller: Authorized<Field>,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q: CheckpointQuery = query(&req)?;
    let page = Page {
        limit: q.limit,
        cursor: q.cursor,
    };
    super::listed(
        &state,
        &page,
        q.min_position,
        q.zone_id,
        |m| &m.directory.checkpoints,
        |e| view(&e.state, e.version).filter(|v| caller.sees_zone(v.zone_id)),
        None,
    )
    .await
}

/// One checkpoint with its counts. `ETag` leads with its version.
///
/// Holds its zone, village, name and kind, the crossings recorded and how many of them were
/// turned back (劝返). Admin, or a zone worker in the checkpoint's zone; another zone's
/// checkpoint answers 404.
#[utoipa::path(
    tag = "checkpoints",
    params(("checkpoint_id" = Uuid, Path)),
    responses((status = 200, description = "The checkpoint", body = CheckpointView), ReadErrors)
)]
#[get("/checkpoints/{checkpoint_id}")]
async fn get_checkpoint(
    caller: Authorized<Field>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = CheckpointId::from_uuid(path_id(&path, "checkpoint")?);
    let loaded = state.commands.load::<Checkpoint>(&id.stream_id()).await?;
    caller.check_zone(
        loaded
            .state
            .established
            .as_ref()
            .map(|e| e.zone_id.as_uuid()),
        "checkpoint",
    )?;
    let view = view(&loaded.state, loaded.version).ok_or_else(|| super::not_found("checkpoint"))?;
    Ok(entity(loaded.version, &view))
}

pub(crate) async fn crossing(
    state: &AppState,
    headers: &WriteHeaders<Field>,
    raw_id: &str,
    body: Json<CrossingBody>,
) -> Result<Written, ApiError> {
    let id = CheckpointId::from_uuid(path_id(raw_id, "checkpoint")?);
    let b = body.value;
    let command = CheckpointCommand::RecordCrossing(RecordCrossing {
        subject: b.subject,
        people: field("people", Count::parse(b.people.unwrap_or(1)))?,
        plate: optional("plate", b.plate, |p| Name::parse(&p))?,
        temperature: optional("temperature", b.temperature, Temperature::parse)?,
        origin: b
            .origin
            .map(|o| {
                Ok::<_, ApiError>(Origin {
                    region: field("origin.region", Name::parse(&o.region))?,
                    risk: o.risk,
                })
            })
            .transpose()?,
        destination: optional("destination", b.destination, |d| Name::parse(&d))?,
        outcome: b.outcome,
    });
    run(
        state,
        headers,
        id,
        "checkpoint.crossing",
        body.canonical_hash,
        b.occurred_at,
        command,
    )
    .await
}

/// Record a person or vehicle at the post.
///
/// Admitted, turned back (劝返), or referred to quarantine. A person from a
/// high-risk area or with a fever cannot be simply admitted.
#[utoipa::path(
    tag = "checkpoints",
    params(("checkpoint_id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = CrossingBody,
    responses((status = 200, description = "Recorded", body = Written), WriteErrors)
)]
#[post("/checkpoints/{checkpoint_id}/crossings")]
async fn record_crossing(
    caller: Authorized<Field>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: Json<CrossingBody>,
) -> Result<HttpResponse, ApiError> {
    Ok(written(
        crossing(&state, &WriteHeaders::parse(&req, caller)?, &path, body).await?,
        None,
    ))
}
