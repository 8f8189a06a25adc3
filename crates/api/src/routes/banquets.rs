//! Reported banquets (宴席) and the outcome of persuading the family.

use crate::personal::Shown;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, NaiveDate, Utc};
use fangkong_domain::banquet::{Banquet, BanquetCommand, BanquetHost};
use fangkong_domain::{BanquetId, BanquetKind, Count, Name, PhoneNumber, Text, VillageId, ZoneId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::{
    entity, field, optional, path_id, query, run, schemas, written, Page, ReadErrors, WriteErrors,
};
use crate::access::{Authorized, Field};
use crate::extract::{Json, WriteHeaders};
use crate::problem::ApiError;
use crate::write::Written;
use crate::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(report_banquet)
        .service(list_banquets)
        .service(get_banquet)
        .service(postpone)
        .service(cancel)
        .service(scale_down)
        .service(erase_host_data)
        .service(host_personal_data);
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HostBody {
    pub name: String,
    pub phone: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"zone_id": "0190f5a2-0000-7000-8000-000000000001", "kind": "wedding",
    "planned_date": "2020-02-02", "expected_guests": 200, "host": {"name": "刘家"}}))]
pub struct ReportBanquetBody {
    pub banquet_id: Option<Uuid>,
    pub zone_id: Uuid,
    pub village_id: Option<Uuid>,
    #[schema(schema_with = schemas::banquet_kind)]
    pub kind: BanquetKind,
    pub planned_date: NaiveDate,
    pub expected_guests: i64,
    /// The host family: personal data.
    pub host: HostBody,
    pub occurred_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"new_date": "2020-05-01"}))]
pub struct PostponeBody {
    /// Must be later than the currently planned date.
    pub new_date: NaiveDate,
    pub occurred_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reason": "疫情期间取消"}))]
pub struct CancelBody {
    pub reason: Option<String>,
    pub occurred_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"guests": 10}))]
pub struct ScaleDownBody {
    /// Fewer than now expected.
    pub guests: i64,
    pub occurred_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BanquetView {
    pub banquet_id: Uuid,
    pub zone_id: Uuid,
    pub village_id: Option<Uuid>,
    #[schema(schema_with = schemas::banquet_kind)]
    pub kind: String,
    pub planned_date: Option<NaiveDate>,
    pub guests: u32,
    /// planned, postponed, cancelled, scaled_down
    #[schema(schema_with = schemas::banquet_status)]
    pub status: String,
    #[schema(schema_with = fangkong_domain::personal::shown_schema::<HostBody>)]
    pub host: Shown<HostBody>,
    pub version: u64,
}

impl BanquetView {
    /// The data subject whose data this view shows unmasked, if any.
    fn disclosed(&self) -> Option<String> {
        self.host
            .is_clear()
            .then(|| BanquetId::from_uuid(self.banquet_id).stream_id())
    }
}

fn view(b: &Banquet, version: u64, vault: &fangkong_vault::Vault) -> Option<BanquetView> {
    let r = b.report.as_ref()?;
    Some(BanquetView {
        banquet_id: r.banquet_id.as_uuid(),
        zone_id: r.zone_id.as_uuid(),
        village_id: r.village_id.map(|v| v.as_uuid()),
        kind: r.kind.code().to_owned(),
        planned_date: b.planned_date,
        guests: b.guests,
        status: super::code_of(b.status),
        host: crate::personal::open(
            vault,
            &r.banquet_id.stream_id(),
            "BanquetReported",
            &["personal"],
            &r.personal,
        )
        .map(|host: fangkong_domain::banquet::BanquetHost| HostBody {
            name: host.name.to_string(),
            phone: host.phone.as_ref().map(|p| p.to_string()),
        }),
        version,
    })
}

fn banquet_id(raw: &str) -> Result<BanquetId, ApiError> {
    Ok(BanquetId::from_uuid(path_id(raw, "banquet")?))
}

pub(crate) async fn report(
    state: &AppState,
    headers: &WriteHeaders<Field>,
    body: Json<ReportBanquetBody>,
) -> Result<Written, ApiError> {
    let b = body.value;
    super::zones::check_place(state, headers, b.zone_id, b.village_id).await?;
    let id = BanquetId::from_uuid(headers.new_entity_id(b.banquet_id, "banquet.report"));
    let command = BanquetCommand::Report {
        banquet_id: id,
        zone_id: ZoneId::from_uuid(b.zone_id),
        village_id: b.village_id.map(VillageId::from_uuid),
        kind: b.kind,
        planned_date: b.planned_date,
        expected_guests: field("expected_guests", Count::parse(b.expected_guests))?,
        host: BanquetHost {
            name: field("host.name", Name::parse(&b.host.name))?,
            phone: optional("host.phone", b.host.phone, |p| PhoneNumber::parse(&p))?,
        },
    };
    run(
        state,
        headers,
        id,
        "banquet.report",
        body.canonical_hash,
        b.occurred_at,
        command,
    )
    .await
}

/// Report a planned banquet: a wedding, funeral, birthday...
///
/// Records a family's planned banquet (kind, date, expected guests) so it can be dissuaded; the
/// host's name and phone are personal data. Admin, or a zone worker for its own zones; a zone
/// or village that does not exist or lies outside the caller's zones is an invalid field (422).
/// `Idempotency-Key` makes a retry safe, and a client may name `banquet_id`. Refused with 409
/// when the rule it breaks is `banquet_already_reported`.
#[utoipa::path(
    tag = "banquets",
    params(("Idempotency-Key" = Option<String>, Header)),
    request_body = ReportBanquetBody,
    responses((status = 201, description = "Reported", body = Written, headers(("Location" = String, description = "The new entity: GET it here"), ("ETag" = String, description = "Its stream version, quoted"))), WriteErrors)
)]
#[post("/banquets")]
async fn report_banquet(
    caller: Authorized<Field>,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Json<ReportBanquetBody>,
) -> Result<HttpResponse, ApiError> {
    Ok(written(
        report(&state, &WriteHeaders::parse(&req, caller)?, body).await?,
        Some("/v1/banquets"),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BanquetQuery {
    pub zone_id: Option<Uuid>,
    /// planned, postponed, cancelled, scaled_down
    #[param(schema_with = schemas::banquet_status)]
    pub status: Option<String>,
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    pub cursor: Option<String>,
    /// Wait (up to 2 s) until the list reflects this log position: pass a
    /// write's `position` to read your own write.
    #[serde(default, deserialize_with = "crate::extract::within_i64")]
    pub min_position: Option<u64>,
}

/// Reported banquets, filtered by zone and status.
///
/// In the order reported, each with the date now planned, the guests now expected, its status
/// and its host. Cursor-paged with `limit` and `cursor`; `min_position` waits up to 2 s for a
/// write of yours to show. Admin sees every zone, a zone worker only its own zones; the host is
/// shown in full, since only those entitled to it may call.
#[utoipa::path(
    tag = "banquets",
    params(BanquetQuery),
    responses((status = 200, description = "A page of banquets", body = super::BanquetPage), ReadErrors)
)]
#[get("/banquets")]
async fn list_banquets(
    caller: Authorized<Field>,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q: BanquetQuery = query(&req)?;
    let status =
        super::filter::<fangkong_domain::banquet::BanquetStatus>("status", q.status.as_deref())?;
    let page = Page {
        limit: q.limit,
        cursor: q.cursor,
    };
    super::listed(
        &state,
        &page,
        q.min_position,
        q.zone_id,
        |m| &m.directory.banquets,
        |e| {
            let report = e.state.report.as_ref()?;
            let keep = caller.sees_zone(report.zone_id.as_uuid())
                && status.is_none_or(|s| e.state.status == s);
            keep.then(|| view(&e.state, e.version, state.vault()))
                .flatten()
        },
        Some(super::Disclosed {
            caller: &caller,
            route: "GET /v1/banquets",
            subject: &BanquetView::disclosed,
        }),
    )
    .await
}

/// One banquet. `ETag` leads with its version.
///
/// Holds its kind, the date now planned, the guests now expected, its status (planned,
/// postponed, cancelled, scaled_down) and the host in full. Admin, or a zone worker in the
/// banquet's zone; another zone's banquet answers 404.
#[utoipa::path(
    tag = "banquets",
    params(("banquet_id" = Uuid, Path)),
    responses((status = 200, description = "The banquet", body = BanquetView), ReadErrors)
)]
#[get("/banquets/{banquet_id}")]
async fn get_banquet(
    caller: Authorized<Field>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = banquet_id(&path)?;
    let loaded = state.commands.load::<Banquet>(&id.stream_id()).await?;
    let view = view(&loaded.state, loaded.version, state.vault())
        .ok_or_else(|| super::not_found("banquet"))?;
    caller.check_zone(Some(view.zone_id), "banquet")?;
    state
        .disclosures
        .record(&caller, "GET /v1/banquets/{banquet_id}", view.disclosed())
        .await?;
    Ok(entity(loaded.version, &view))
}

pub(crate) async fn postponement(
    state: &AppState,
    headers: &WriteHeaders<Field>,
    raw: &str,
    body: Json<PostponeBody>,
) -> Result<Written, ApiError> {
    let b = body.value;
    let command = BanquetCommand::Postpone {
        new_date: b.new_date,
    };
    run(
        state,
        headers,
        banquet_id(raw)?,
        "banquet.postpone",
        body.canonical_hash,
        b.occurred_at,
        command,
    )
    .await
}

/// The family agreed to postpone: the new date must be later.
///
/// Records the persuasion on the day it happened and moves the planned date to `new_date`.
/// Admin, or a zone worker in the banquet's zone; another zone's banquet answers 404.
/// `Idempotency-Key` makes a retry safe; `If-Match` with the banquet's version makes it
/// conditional (412). Refused with 409 when the rule it breaks is one of: `banquet_cancelled`,
/// `postponement_not_later`.
#[utoipa::path(
    tag = "banquets",
    params(("banquet_id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header), ("If-Match" = Option<String>, Header)),
    request_body = PostponeBody,
    responses((status = 200, description = "Postponed", body = Written), WriteErrors)
)]
#[post("/banquets/{banquet_id}/postponement")]
async fn postpone(
    caller: Authorized<Field>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: Json<PostponeBody>,
) -> Result<HttpResponse, ApiError> {
    Ok(written(
        postponement(&state, &WriteHeaders::parse(&req, caller)?, &path, body).await?,
        None,
    ))
}

pub(crate) async fn cancellation(
    state: &AppState,
    headers: &WriteHeaders<Field>,
    raw: &str,
    body: Json<CancelBody>,
) -> Result<Written, ApiError> {
    let b = body.value;
    let command = BanquetCommand::Cancel {
        reason: optional("reason", b.reason, |r| Text::parse(&r))?,
    };
    run(
        state,
        headers,
        banquet_id(raw)?,
        "banquet.cancel",
        body.canonical_hash,
        b.occurred_at,
        command,
    )
    .await
}

/// The family agreed to cancel.
///
/// Records the persuasion on the day it happened, with an optional reason; a cancelled banquet
/// can no longer be postponed or scaled down. Admin, or a zone worker in the banquet's zone;
/// another zone's banquet answers 404. `Idempotency-Key` makes a retry safe; `If-Match` with the
/// banquet's version makes it conditional (412). Refused with 409 when the rule it breaks is
/// `banquet_cancelled` (already cancelled).
#[utoipa::path(
    tag = "banquets",
    params(("banquet_id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header), ("If-Match" = Option<String>, Header)),
    request_body = CancelBody,
    responses((status = 200, description = "Cancelled", body = Written), WriteErrors)
)]
#[post("/banquets/{banquet_id}/cancellation")]
async fn cancel(
    caller: Authorized<Field>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: Json<CancelBody>,
) -> Result<HttpResponse, ApiError> {
    Ok(written(
        cancellation(&state, &WriteHeaders::parse(&req, caller)?, &path, body).await?,
        None,
    ))
}

pub(crate) async fn scale(
    state: &AppState,
    headers: &WriteHeaders<Field>,
    raw: &str,
    body: Json<ScaleDownBody>,
) -> Result<Written, ApiError> {
    let b = body.value;
    let command = BanquetCommand::ScaleDown {
        guests: field("guests", Count::parse(b.guests))?,
    };
    run(
        state,
        headers,
        banquet_id(raw)?,
        "banquet.scale_down",
        body.canonical_hash,
        b.occurred_at,
        command,
    )
    .await
}

/// The family agreed to scale down (丧事简办 for funerals).
///
/// Records the persuasion on the day it happened and the smaller number of guests now expected.
/// Admin, or a zone worker in the banquet's zone; another zone's banquet answers 404.
/// `Idempotency-Key` makes a retry safe; `If-Match` with the banquet's version makes it
/// conditional (412). Refused with 409 when the rule it breaks is one of: `banquet_cancelled`,
/// `scale_down_not_smaller`.
#[utoipa::path(
    tag = "banquets",
    params(("banquet_id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header), ("If-Match" = Option<String>, Header)),
    request_body = ScaleDownBody,
    responses((status = 200, description = "Scaled down", body = Written), WriteErrors)
)]
#[post("/banquets/{banquet_id}/scale-down")]
async fn scale_down(
    caller: Authorized<Field>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: Json<ScaleDownBody>,
) -> Result<HttpResponse, ApiError> {
    Ok(written(
        scale(&state, &WriteHeaders::parse(&req, caller)?, &path, body).await?,
        None,
    ))
}

/// Erase a banquet host family's personal data. Admin only.
///
/// Records `BanquetHostDataErased` (holding no personal data) and destroys the key the host's
/// name and phone were sealed under: from then on every view, list, export, live feed, as-of
/// read, rebuild and saved state shows them as `{"erased": true}`, while the banquet, its
/// outcome and every figure stay as they were and the log still verifies. Sent again, it
/// records nothing more. A banquet never reported answers 404. Refused
/// with 409 when the rule it breaks is `personal_data_not_encrypted` (reported before this
/// store sealed personal data: start a new store to erase by key).
#[utoipa::path(
    tag = "banquets",
    params(("banquet_id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "Makes the write safe to retry")),
    request_body = super::returnees::ErasureBody,
    responses((status = 200, description = "Erased (or already erased)", body = Written, headers(("ETag" = String, description = "Its stream version, quoted"))), WriteErrors)
)]
#[post("/banquets/{banquet_id}/erasure")]
async fn erase_host_data(
    caller: Authorized<crate::access::Admin>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: Json<super::returnees::ErasureBody>,
) -> Result<HttpResponse, ApiError> {
    let id = banquet_id(&path)?;
    super::returnees::erasure(
        &state,
        WriteHeaders::parse(&req, caller)?,
        (id.stream_id(), id.as_uuid()),
        fangkong_app::personal::DataSubject::BanquetHost,
        body,
    )
    .await
}

/// Everything the service holds about one banquet's host family.
#[derive(Debug, Serialize, ToSchema)]
pub struct HostDataReport {
    pub banquet_id: Uuid,
    /// When this report was made.
    pub generated_at: DateTime<Utc>,
    /// The host's data was erased: the fields below show `{"erased": true}`.
    pub erased: bool,
    /// The banquet as the service shows it today, the host in full.
    pub banquet: BanquetView,
    /// Every event of the banquet's record, personal fields opened: where
    /// each piece of data comes from.
    pub events: Vec<super::StreamEvent>,
}

/// Everything held about one banquet's host family, decrypted, with its sources. Admin only.
///
/// The JSON document to hand over on the family's request for their data: the banquet as shown
/// today and every event of its record with the host's fields opened, each with its position,
/// time and metadata. The read is noted in the personal data access record.
#[utoipa::path(
    tag = "banquets",
    params(("banquet_id" = Uuid, Path)),
    responses((status = 200, description = "The host family's data", body = HostDataReport), ReadErrors)
)]
#[get("/banquets/{banquet_id}/personal-data")]
async fn host_personal_data(
    caller: Authorized<crate::access::Admin>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = banquet_id(&path)?;
    let loaded = state.commands.load::<Banquet>(&id.stream_id()).await?;
    let banquet = view(&loaded.state, loaded.version, state.vault())
        .ok_or_else(|| super::not_found("banquet"))?;
    let (events, shown_any) = super::StreamEvent::whole_stream(&state, &id.stream_id()).await?;
    let subject = (shown_any || banquet.disclosed().is_some()).then(|| id.stream_id());
    state
        .disclosures
        .record(
            &caller,
            "GET /v1/banquets/{banquet_id}/personal-data",
            subject,
        )
        .await?;
    Ok(HttpResponse::Ok().json(HostDataReport {
        banquet_id: id.as_uuid(),
        generated_at: Utc::now(),
        erased: loaded.state.host_data_erased(),
        banquet,
        events,
    }))
}
