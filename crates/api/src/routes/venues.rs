//! Venues: commitment letters, closures with a notice, reopening, and
//! enforcement against gaming venues that defied closure.

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, NaiveDate, Utc};
use fangkong_domain::venue::{EnforcementAction, Venue, VenueCommand};
use fangkong_domain::{Count, Name, VenueId, VenueKind, VillageId, ZoneId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::{entity, field, path_id, query, run, schemas, written, Page, ReadErrors, WriteErrors};
use crate::access::{Authorized, Field};
use crate::extract::{Json, WriteHeaders};
use crate::problem::ApiError;
use crate::write::Written;
use crate::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(register_venue)
        .service(list_venues)
        .service(get_venue)
        .service(sign_commitment)
        .service(close_venue)
        .service(reopen_venue)
        .service(record_enforcement);
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"zone_id": "0190f5a2-0000-7000-8000-000000000001", "kind": "mahjong_parlour", "name": "老王麻将馆"}))]
pub struct RegisterVenueBody {
    pub venue_id: Option<Uuid>,
    pub zone_id: Uuid,
    pub village_id: Option<Uuid>,
    #[schema(schema_with = schemas::venue_kind)]
    pub kind: VenueKind,
    pub name: String,
    pub occurred_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"signed_by": "店主王某"}))]
pub struct CommitmentBody {
    pub signed_by: String,
    pub occurred_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"notice_posted": true}))]
pub struct ClosureBody {
    /// A closure notice (停业通告) was posted at the door.
    pub notice_posted: bool,
    pub occurred_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({}))]
pub struct ReopeningBody {
    pub occurred_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum ActionKind {
    Dismantled,
    TablesConfiscated,
    Detained,
    OwnersAdmonished,
    PlayersAdmonished,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"action": "players_admonished", "count": 6}))]
pub struct EnforcementBody {
    pub action: ActionKind,
    /// Tables or people; not used for `dismantled`.
    pub count: Option<i64>,
    pub occurred_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VenueView {
    pub venue_id: Uuid,
    pub zone_id: Uuid,
    pub village_id: Option<Uuid>,
    #[schema(schema_with = schemas::venue_kind)]
    pub kind: String,
    pub name: String,
    /// open, closed, dismantled
    #[schema(schema_with = schemas::venue_status)]
    pub status: String,
    pub closed_since: Option<NaiveDate>,
    pub commitment_signed_on: Option<NaiveDate>,
    pub enforcement_actions: u32,
    pub version: u64,
}

fn view(v: &Venue, version: u64) -> Option<VenueView> {
    let r = v.registration.as_ref()?;
    Some(VenueView {
        venue_id: r.venue_id.as_uuid(),
        zone_id: r.zone_id.as_uuid(),
        village_id: r.village_id.map(|v| v.as_uuid()),
        kind: r.kind.code().to_owned(),
        name: r.name.to_string(),
        status: super::code_of(v.status),
        closed_since: v.closed_since,
        commitment_signed_on: v.commitment_signed_on,
        enforcement_actions: v.enforcement_actions,
        version,
    })
}

fn venue_id(raw: &str) -> Result<VenueId, ApiError> {
    Ok(VenueId::from_uuid(path_id(raw, "venue")?))
}

pub(crate) async fn register(
    state: &AppState,
    headers: &WriteHeaders<Field>,
    body: Json<RegisterVenueBody>,
) -> Result<Written, ApiError> {
    let b = body.value;
    super::zones::check_place(state, headers, b.zone_id, b.village_id).await?;
    let id = VenueId::from_uuid(headers.new_entity_id(b.venue_id, "venue.register"));
    let command = VenueCommand::Register {
        venue_id: id,
        zone_id: ZoneId::from_uuid(b.zone_id),
        village_id: b.village_id.map(VillageId::from_uuid),
        kind: b.kind,
        name: field("name", Name::parse(&b.name))?,
    };
    run(
        state,
        headers,
        id,
        "venue.register",
        body.canonical_hash,
        b.occurred_at,
        command,
    )
    .await
}

/// Register a venue: a shop, hotel, enterprise, mahjong parlour, card room...
///
/// Lists premises of a zone (and optionally of one village) for screening and control; mahjong
/// parlours and card rooms are the ones closed and raided. Admin, or a zone worker for its own
/// zones; a zone or village that does not exist or lies outside the caller's zones is an
/// invalid field (422). `Idempotency-Key` makes a retry safe, and a client may name `venue_id`.
/// Refused with 409 when the rule it breaks is `venue_already_registered`.
#[utoipa::path(
    tag = "venues",
    params(("Idempotency-Key" = Option<String>, Header)),
    request_body = RegisterVenueBody,
    responses((status = 201, description = "Registered", body = Written, headers(("Location" = String, description = "The new entity: GET it here"), ("ETag" = String, description = "Its stream version, quoted"))), WriteErrors)
)]
#[post("/venues")]
async fn register_venue(
    caller: Authorized<Field>,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Json<RegisterVenueBody>,
) -> Result<HttpResponse, ApiError> {
    Ok(written(
        register(&state, &WriteHeaders::parse(&req, caller)?, body).await?,
        Some("/v1/venues"),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct VenueQuery {
    pub zone_id: Option<Uuid>,
    /// A venue kind code, e.g. mahjong_parlour.
    #[param(schema_with = schemas::venue_kind)]
    pub kind: Option<String>,
    /// open, closed, dismantled
    #[param(schema_with = schemas::venue_status)]
    pub status: Option<String>,
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    pub cursor: Option<String>,
    /// Wait (up to 2 s) until the list reflects this log position: pass a
    /// write's `position` to read your own write.
    #[serde(default, deserialize_with = "crate::extract::within_i64")]
    pub min_position: Option<u64>,
}

/// Venues filtered by zone, kind and status.
///
/// In registration order, each with its status, the day it closed, the day it signed its
/// commitment letter and its count of enforcement actions. Cursor-paged with `limit` and
/// `cursor`; `min_position` waits up to 2 s for a write of yours to show. Admin sees every
/// zone, a zone worker only its own zones.
#[utoipa::path(
    tag = "venues",
    params(VenueQuery),
    responses((status = 200, description = "A page of venues", body = super::VenuePage), ReadErrors)
)]
#[get("/venues")]
async fn list_venues(
    caller: Authorized<Field>,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q: VenueQuery = query(&req)?;
    let kind = super::filter::<VenueKind>("kind", q.kind.as_deref())?;
    let status =
        super::filter::<fangkong_domain::venue::VenueStatus>("status", q.status.as_deref())?;
    let page = Page {
        limit: q.limit,
        cursor: q.cursor,
    };
    super::listed(
        &state,
        &page,
        q.min_position,
        q.zone_id,
        |m| &m.directory.venues,
        |e| {
            let reg = e.state.registration.as_ref()?;
            let keep = caller.sees_zone(reg.zone_id.as_uuid())
                && kind.is_none_or(|k| reg.kind == k)
                && status.is_none_or(|s| e.state.status == s);
            keep.then(|| view(&e.state, e.version)).flatten()
        },
        None,
    )
    .await
}

/// One venue. `ETag` leads with its version.
///
/// Holds its kind, status (open, closed, dismantled), the day it closed, the day it signed its
/// commitment letter and how many enforcement actions were recorded. Admin, or a zone worker in
/// the venue's zone; another zone's venue answers 404.
#[utoipa::path(
    tag = "venues",
    params(("venue_id" = Uuid, Path)),
    responses((status = 200, description = "The venue", body = VenueView), ReadErrors)
)]
#[get("/venues/{venue_id}")]
async fn get_venue(
    caller: Authorized<Field>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = venue_id(&path)?;
    let loaded = state.commands.load::<Venue>(&id.stream_id()).await?;
    let view = view(&loaded.state, loaded.version).ok_or_else(|| super::not_found("venue"))?;
    caller.check_zone(Some(view.zone_id), "venue")?;
    Ok(entity(loaded.version, &view))
}

pub(crate) async fn commitment(
    state: &AppState,
    headers: &WriteHeaders<Field>,
    raw: &str,
    body: Json<CommitmentBody>,
) -> Result<Written, ApiError> {
    let b = body.value;
    let command = VenueCommand::SignCommitment {
        signed_by: field("signed_by", Name::parse(&b.signed_by))?,
    };
    run(
        state,
        headers,
        venue_id(raw)?,
        "venue.commitment",
        body.canonical_hash,
        b.occurred_at,
        command,
    )
    .await
}

/// Record the venue's signed commitment letter (承诺书).
///
/// The owner or manager pledged to follow the epidemic-control rules; the day and the signer are
/// kept, and the letter counts in the zone's figures. Admin, or a zone worker in the venue's
/// zone; another zone's venue answers 404. `Idempotency-Key` makes a retry safe; `If-Match` with
/// the venue's version makes it conditional (412). Refused with 409 when the rule it breaks is
/// `commitment_already_signed`.
#[utoipa::path(
    tag = "venues",
    params(("venue_id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header), ("If-Match" = Option<String>, Header)),
    request_body = CommitmentBody,
    responses((status = 200, description = "Recorded", body = Written), WriteErrors)
)]
#[post("/venues/{venue_id}/commitments")]
async fn sign_commitment(
    caller: Authorized<Field>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: Json<CommitmentBody>,
) -> Result<HttpResponse, ApiError> {
    Ok(written(
        commitment(&state, &WriteHeaders::parse(&req, caller)?, &path, body).await?,
        None,
    ))
}

pub(crate) async fn closure(
    state: &AppState,
    headers: &WriteHeaders<Field>,
    raw: &str,
    body: Json<ClosureBody>,
) -> Result<Written, ApiError> {
    let b = body.value;
    let command = VenueCommand::Close {
        notice_posted: b.notice_posted,
    };
    run(
        state,
        headers,
        venue_id(raw)?,
        "venue.close",
        body.canonical_hash,
        b.occurred_at,
        command,
    )
    .await
}

/// Close the venue (关停), with or without a posted notice.
///
/// The venue is closed from the day it happened; `notice_posted` says whether a closure notice
/// (停业通告) went up at the door. Admin, or a zone worker in the venue's zone; another zone's
/// venue answers 404. `Idempotency-Key` makes a retry safe; `If-Match` with the venue's version
/// makes it conditional (412). Refused with 409 when the rule it breaks is
/// `venue_already_closed` (a dismantled venue included).
#[utoipa::path(
    tag = "venues",
    params(("venue_id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header), ("If-Match" = Option<String>, Header)),
    request_body = ClosureBody,
    responses((status = 200, description = "Closed", body = Written), WriteErrors)
)]
#[post("/venues/{venue_id}/closure")]
async fn close_venue(
    caller: Authorized<Field>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: Json<ClosureBody>,
) -> Result<HttpResponse, ApiError> {
    Ok(written(
        closure(&state, &WriteHeaders::parse(&req, caller)?, &path, body).await?,
        None,
    ))
}

pub(crate) async fn reopening(
    state: &AppState,
    headers: &WriteHeaders<Field>,
    raw: &str,
    body: Json<ReopeningBody>,
) -> Result<Written, ApiError> {
    let b = body.value;
    run(
        state,
        headers,
        venue_id(raw)?,
        "venue.reopen",
        body.canonical_hash,
        b.occurred_at,
        VenueCommand::Reopen,
    )
    .await
}

/// Reopen a closed venue.
///
/// The venue may trade again from the day it happened; one that was dismantled never reopens.
/// Admin, or a zone worker in the venue's zone; another zone's venue answers 404.
/// `Idempotency-Key` makes a retry safe; `If-Match` with the venue's version makes it
/// conditional (412). Refused with 409 when the rule it breaks is one of: `venue_not_closed`,
/// `venue_dismantled`.
#[utoipa::path(
    tag = "venues",
    params(("venue_id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header), ("If-Match" = Option<String>, Header)),
    request_body = ReopeningBody,
    responses((status = 200, description = "Reopened", body = Written), WriteErrors)
)]
#[post("/venues/{venue_id}/reopening")]
async fn reopen_venue(
    caller: Authorized<Field>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: Json<ReopeningBody>,
) -> Result<HttpResponse, ApiError> {
    Ok(written(
        reopening(&state, &WriteHeaders::parse(&req, caller)?, &path, body).await?,
        None,
    ))
}

pub(crate) async fn enforcement(
    state: &AppState,
    headers: &WriteHeaders<Field>,
    raw: &str,
    body: Json<EnforcementBody>,
) -> Result<Written, ApiError> {
    let b = body.value;
    let count = || -> Result<Count, ApiError> {
        let n = b
            .count
            .ok_or_else(|| ApiError::field("count", "required for this action"))?;
        field("count", Count::parse(n))
    };
    let action = match b.action {
        ActionKind::Dismantled => EnforcementAction::Dismantled,
        ActionKind::TablesConfiscated => EnforcementAction::TablesConfiscated { tables: count()? },
        ActionKind::Detained => EnforcementAction::Detained { people: count()? },
        ActionKind::OwnersAdmonished => EnforcementAction::OwnersAdmonished { people: count()? },
        ActionKind::PlayersAdmonished => EnforcementAction::PlayersAdmonished { people: count()? },
    };
    run(
        state,
        headers,
        venue_id(raw)?,
        "venue.enforcement",
        body.canonical_hash,
        b.occurred_at,
        VenueCommand::RecordEnforcement(action),
    )
    .await
}

/// Record an enforcement action against a mahjong parlour or card room.
///
/// Dismantled (捣毁), tables confiscated (收缴), people detained (行政拘留), owners or
/// players admonished (训诫).
#[utoipa::path(
    tag = "venues",
    params(("venue_id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header), ("If-Match" = Option<String>, Header)),
    request_body = EnforcementBody,
    responses((status = 200, description = "Recorded", body = Written), WriteErrors)
)]
#[post("/venues/{venue_id}/enforcement-actions")]
async fn record_enforcement(
    caller: Authorized<Field>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: Json<EnforcementBody>,
) -> Result<HttpResponse, ApiError> {
    Ok(written(
        enforcement(&state, &WriteHeaders::parse(&req, caller)?, &path, body).await?,
        None,
    ))
}
