//! Returnees (返镇人员): registration, screening, the five-for-one team, home
//! quarantine with its daily visits, findings, referral, end.

use std::collections::BTreeSet;

use actix_web::{get, post, put, web, HttpRequest, HttpResponse};
use chrono::{DateTime, NaiveDate, Utc};
use fangkong_domain::returnee::{
    PersonalData, RegisterReturnee, Returnee, ReturneeCommand, ScreenReturnee, TeamMember,
};
use fangkong_domain::{
    GridId, Name, Origin, PhoneNumber, QuarantineEndReason, ResidentIdNumber, ReturneeId,
    RiskLevel, Symptom, TeamRole, Temperature, Text, VillageId, ZoneId,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::{
    entity, field, optional, path_id, query, run, schemas, written, Page, ReadErrors, StreamEvent,
    WriteErrors,
};
use crate::access::{Authorized, Field};
use crate::extract::{Json, WriteHeaders};
use crate::personal::{open, Shown};
use crate::problem::ApiError;
use crate::write::Written;
use crate::AppState;
use fangkong_domain::personal::Personal;
use fangkong_vault::Vault;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(register_returnee)
        .service(list_returnees)
        .service(get_returnee)
        .service(returnee_events)
        .service(screen)
        .service(assign_team)
        .service(start_quarantine)
        .service(record_health_check)
        .service(report_abnormal_condition)
        .service(refer)
        .service(change_period)
        .service(record_exposure)
        .service(end_quarantine)
        .service(erase_personal_data)
        .service(personal_data);
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OriginBody {
    /// Where the person came from, as the county names it.
    pub region: String,
    #[schema(schema_with = schemas::risk)]
    pub risk: RiskLevel,
}

/// Personal data: shown in full only to those entitled to it.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonalBody {
    pub name: String,
    /// 18-character resident ID number with its check character.
    pub resident_id: String,
    /// Mainland mobile number.
    pub phone: String,
    pub address: String,
}

/// Register a returnee (登记造册).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "returnee_id": "0190f5a2-0000-7000-8000-00000000000a",
    "zone_id": "0190f5a2-0000-7000-8000-000000000001",
    "village_id": "0190f5a2-0000-7000-8000-000000000002",
    "grid_id": "0190f5a2-0000-7000-8000-000000000003",
    "arrival_date": "2020-01-24",
    "origin": {"region": "湖北省武汉市", "risk": "high"},
    "personal": {"name": "张三", "resident_id": "11010519491231002X", "phone": "13812345678", "address": "桥头村三组12号"}
}))]
pub struct RegisterReturneeBody {
    pub returnee_id: Option<Uuid>,
    pub zone_id: Uuid,
    pub village_id: Uuid,
    pub grid_id: Uuid,
    pub arrival_date: NaiveDate,
    pub origin: OriginBody,
    pub personal: PersonalBody,
    pub occurred_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"temperature": 36.6, "identity_checked": true, "came_from": "武汉", "going_to": "桥头村", "symptoms": [], "screened_by": "王医生"}))]
pub struct ScreeningBody {
    /// °C, 30.0 to 45.0, one decimal.
    pub temperature: f64,
    pub identity_checked: bool,
    pub came_from: String,
    pub going_to: Option<String>,
    #[serde(default)]
    #[schema(schema_with = schemas::symptoms)]
    pub symptoms: Vec<Symptom>,
    pub screened_by: String,
    pub occurred_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberBody {
    #[schema(schema_with = schemas::team_role)]
    pub role: TeamRole,
    pub name: String,
    pub phone: Option<String>,
}

/// Five for one (五包一): exactly one member in each of the five roles.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"members": [
    {"role": "village_stationed_cadre", "name": "赵一"},
    {"role": "village_cadre", "name": "钱二"},
    {"role": "group_leader", "name": "孙三"},
    {"role": "village_doctor", "name": "李四"},
    {"role": "auxiliary_police", "name": "周五"}
]}))]
pub struct TeamBody {
    pub members: Vec<MemberBody>,
    pub occurred_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"planned_days": 14}))]
pub struct QuarantineBody {
    /// 1 to 60; 14 when absent.
    pub planned_days: Option<i64>,
    pub occurred_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"temperature": 36.5, "symptoms": [], "visited_by": "王医生"}))]
pub struct HealthCheckBody {
    pub temperature: f64,
    #[serde(default)]
    #[schema(schema_with = schemas::symptoms)]
    pub symptoms: Vec<Symptom>,
    pub visited_by: Option<String>,
    pub occurred_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"temperature": 38.2, "symptoms": ["fever", "cough"], "notes": "发热伴咳嗽"}))]
pub struct AbnormalBody {
    pub temperature: Option<f64>,
    #[serde(default)]
    #[schema(schema_with = schemas::symptoms)]
    pub symptoms: Vec<Symptom>,
    pub notes: Option<String>,
    pub occurred_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"facility": "县人民医院发热门诊"}))]
pub struct ReferralBody {
    pub facility: String,
    pub occurred_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"planned_days": 21, "reason": "同住家属出现症状"}))]
pub struct ExtensionBody {
    pub planned_days: i64,
    pub reason: String,
    pub occurred_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"description": "与确诊病例同桌就餐"}))]
pub struct ExposureBody {
    pub description: String,
    pub occurred_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reason": "completed"}))]
pub struct EndBody {
    #[schema(schema_with = schemas::end_reason)]
    pub reason: QuarantineEndReason,
    pub occurred_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QuarantineView {
    pub started_on: NaiveDate,
    /// Day 1 of the current count (moves with a new exposure).
    pub count_start: NaiveDate,
    pub planned_days: u16,
    pub planned_end: NaiveDate,
    /// Day n of the period today.
    pub day_of_period: Option<u32>,
    pub visits_done: usize,
    pub visit_due_today: bool,
    /// Past days of the period without a visit.
    pub missed_days: Vec<NaiveDate>,
    pub last_temperature: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReturneeView {
    pub returnee_id: Uuid,
    pub zone_id: Uuid,
    pub village_id: Uuid,
    pub grid_id: Uuid,
    pub arrival_date: NaiveDate,
    pub origin: OriginBody,
    #[schema(schema_with = fangkong_domain::personal::shown_schema::<PersonalBody>)]
    pub personal: Shown<PersonalBody>,
    /// unregistered, registered, in_quarantine, released, under_treatment, transferred, lost_to_follow_up
    #[schema(schema_with = schemas::returnee_status)]
    pub status: String,
    pub screenings: u32,
    pub last_screened_on: Option<NaiveDate>,
    pub team: Vec<MemberView>,
    pub quarantine: Option<QuarantineView>,
    pub abnormal_reports: u32,
    /// An abnormal finding awaits referral.
    pub abnormal_pending: bool,
    pub referrals: u32,
    pub version: u64,
}

impl ReturneeView {
    /// The data subject whose data this view shows unmasked, if any.
    fn disclosed(&self) -> Option<String> {
        let shown = self.personal.is_clear()
            || self
                .team
                .iter()
                .any(|m| m.phone.as_ref().is_some_and(Shown::is_clear));
        shown.then(|| ReturneeId::from_uuid(self.returnee_id).stream_id())
    }
}

/// A member of the five-for-one team as an answer shows them.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberView {
    #[schema(schema_with = schemas::team_role)]
    pub role: TeamRole,
    pub name: String,
    #[schema(schema_with = fangkong_domain::personal::shown_or_null_schema::<String>)]
    pub phone: Option<Shown<String>>,
}

/// The returnee as an answer shows them, personal data opened with the
/// vault (the caller is one entitled to it).
fn view(r: &Returnee, version: u64, today: NaiveDate, vault: &Vault) -> Option<ReturneeView> {
    let reg = r.registration.as_ref()?;
    let stream_id = reg.returnee_id.stream_id();
    Some(ReturneeView {
        returnee_id: reg.returnee_id.as_uuid(),
        zone_id: reg.zone_id.as_uuid(),
        village_id: reg.village_id.as_uuid(),
        grid_id: reg.grid_id.as_uuid(),
        arrival_date: reg.arrival_date,
        origin: OriginBody {
            region: reg.origin.region.to_string(),
            risk: reg.origin.risk,
        },
        personal: open(
            vault,
            &stream_id,
            "ReturneeRegistered",
            &["personal"],
            &reg.personal,
        )
        .map(|p: PersonalData| PersonalBody {
            name: p.name.to_string(),
            resident_id: p.resident_id.to_string(),
            phone: p.phone.to_string(),
            address: p.address.to_string(),
        }),
        status: r.status.code().to_owned(),
        screenings: r.screenings,
        last_screened_on: r.last_screened_on,
        team: r
            .team
            .iter()
            .map(|m| MemberView {
                role: m.role,
                name: m.name.to_string(),
                phone: m.phone.as_ref().map(|p| {
                    open(
                        vault,
                        &stream_id,
                        "ResponsibilityTeamAssigned",
                        &["members", "[]", "phone"],
                        p,
                    )
                    .map(|p: PhoneNumber| p.to_string())
                }),
            })
            .collect(),
        quarantine: r.quarantine.as_ref().map(|q| QuarantineView {
            started_on: q.started_on,
            count_start: q.schedule.count_start,
            planned_days: q.schedule.planned_days,
            planned_end: q.schedule.planned_end(),
            day_of_period: q.schedule.day_of_period(today),
            visits_done: q.visits.len(),
            visit_due_today: q.schedule.visit_due_today(&q.visits, today),
            missed_days: q.schedule.missed_days(&q.visits, today),
            last_temperature: q.last_temperature.map(Temperature::celsius),
        }),
        abnormal_reports: r.abnormal_reports,
        abnormal_pending: r.abnormal_pending,
        referrals: r.referrals,
        version,
    })
}

fn symptoms(list: Vec<Symptom>) -> Vec<Symptom> {
    list.into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

fn returnee_id(raw: &str) -> Result<ReturneeId, ApiError> {
    Ok(ReturneeId::from_uuid(path_id(raw, "returnee")?))
}

pub(crate) async fn register(
    state: &AppState,
    headers: &WriteHeaders<Field>,
    body: Json<RegisterReturneeBody>,
) -> Result<Written, ApiError> {
    let b = body.value;
    let zone_id = ZoneId::from_uuid(b.zone_id);
    let zone = super::zones::check_place(state, headers, b.zone_id, Some(b.village_id)).await?;
    let (village_id, grid_id) = (
        VillageId::from_uuid(b.village_id),
        GridId::from_uuid(b.grid_id),
    );
    if !zone.state.has_grid(village_id, grid_id) {
        return Err(ApiError::field("grid_id", "no such grid in this village"));
    }
    let returnee_id =
        ReturneeId::from_uuid(headers.new_entity_id(b.returnee_id, "returnee.register"));
    let command = ReturneeCommand::Register(RegisterReturnee {
        returnee_id,
        zone_id,
        village_id,
        grid_id,
        arrival_date: b.arrival_date,
        origin: Origin {
            region: field("origin.region", Name::parse(&b.origin.region))?,
            risk: b.origin.risk,
        },
        personal: PersonalData {
            name: field("personal.name", Name::parse(&b.personal.name))?,
            resident_id: field(
                "personal.resident_id",
                ResidentIdNumber::parse(&b.personal.resident_id),
            )?,
            phone: field("personal.phone", PhoneNumber::parse(&b.personal.phone))?,
            address: field("personal.address", Text::parse(&b.personal.address))?,
        },
    });
    run(
        state,
        headers,
        returnee_id,
        "returnee.register",
        body.canonical_hash,
        b.occurred_at,
        command,
    )
    .await
}

/// Register a returnee. The zone, village and grid must exist.
///
/// Enters a person who arrived from elsewhere in the register (登记造册): arrival date, origin
/// and its risk, and personal data. Admin, or a zone worker for one of its own zones; a zone,
/// village or grid that does not exist or lies outside the caller's zones is an invalid field
/// (422). `Idempotency-Key` makes a retry safe, and a client capturing offline may name
/// `returnee_id`. Refused with 409 when the rule it breaks is `returnee_already_registered`.
#[utoipa::path(
    tag = "returnees",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes the write safe to retry")),
    request_body = RegisterReturneeBody,
    responses((status = 201, description = "Registered", body = Written, headers(("Location" = String, description = "The new entity: GET it here"), ("ETag" = String, description = "Its stream version, quoted"))), WriteErrors)
)]
#[post("/returnees")]
async fn register_returnee(
    caller: Authorized<Field>,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Json<RegisterReturneeBody>,
) -> Result<HttpResponse, ApiError> {
    Ok(written(
        register(&state, &WriteHeaders::parse(&req, caller)?, body).await?,
        Some("/v1/returnees"),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReturneeQuery {
    pub zone_id: Option<Uuid>,
    /// registered, in_quarantine, released, under_treatment, transferred, lost_to_follow_up
    #[param(schema_with = schemas::returnee_status)]
    pub status: Option<String>,
    /// high, medium, low
    #[param(schema_with = schemas::risk)]
    pub risk: Option<String>,
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    pub cursor: Option<String>,
    /// Wait (up to 2 s) until the list reflects this log position: pass a
    /// write's `position` to read your own write.
    #[serde(default, deserialize_with = "crate::extract::within_i64")]
    pub min_position: Option<u64>,
}

/// Returnees in registration order, filtered by zone, status and origin risk.
///
/// Each item holds the registration, status, five-for-one team and quarantine schedule as of
/// today. Cursor-paged with `limit` and `cursor`; `min_position` waits up to 2 s for a write of
/// yours to show. Admin sees every zone, a zone worker only its own zones; personal data is shown
/// in full, since only those entitled to it may call.
#[utoipa::path(
    tag = "returnees",
    params(ReturneeQuery),
    responses((status = 200, description = "A page of returnees", body = super::ReturneePage), ReadErrors)
)]
#[get("/returnees")]
async fn list_returnees(
    caller: Authorized<Field>,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q: ReturneeQuery = query(&req)?;
    let status =
        super::filter::<fangkong_domain::returnee::ReturneeStatus>("status", q.status.as_deref())?;
    // No returnee listed is unregistered: a filter for it asks for nothing.
    if status == Some(fangkong_domain::returnee::ReturneeStatus::Unregistered) {
        return Err(ApiError::field(
            "status",
            "must be registered, in_quarantine, released, under_treatment, transferred or lost_to_follow_up",
        ));
    }
    let risk = super::filter::<RiskLevel>("risk", q.risk.as_deref())?;
    let today = state.commands.context(None)?.today;
    let page = Page {
        limit: q.limit,
        cursor: q.cursor,
    };
    super::listed(
        &state,
        &page,
        q.min_position,
        q.zone_id,
        |m| &m.directory.returnees,
        |e| {
            let (r, reg) = (&e.state, e.state.registration.as_ref()?);
            let keep = caller.sees_zone(reg.zone_id.as_uuid())
                && status.is_none_or(|s| r.status == s)
                && risk.is_none_or(|k| reg.origin.risk == k);
            keep.then(|| view(r, e.version, today, state.vault()))
                .flatten()
        },
        Some(super::Disclosed {
            caller: &caller,
            route: "GET /v1/returnees",
            subject: &ReturneeView::disclosed,
        }),
    )
    .await
}

fn zone_of(returnee: &Returnee) -> Option<Uuid> {
    returnee.registration.as_ref().map(|r| r.zone_id.as_uuid())
}

/// One returnee, with the quarantine schedule as of today. `ETag` leads with its version.
///
/// Holds the registration, status, screenings, abnormal findings and referrals, the
/// five-for-one team, and the quarantine: day n of the period, visits done, whether a visit is
/// due today, and the days missed. Admin, or a zone worker in the returnee's zone; another
/// zone's returnee answers 404. Personal data is shown in full to these callers.
#[utoipa::path(
    tag = "returnees",
    params(("returnee_id" = Uuid, Path)),
    responses((status = 200, description = "The returnee", body = ReturneeView), ReadErrors)
)]
#[get("/returnees/{returnee_id}")]
async fn get_returnee(
    caller: Authorized<Field>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = returnee_id(&path)?;
    let loaded = state.commands.load::<Returnee>(&id.stream_id()).await?;
    caller.check_zone(zone_of(&loaded.state), "returnee")?;
    let today = state.commands.context(None)?.today;
    let view = view(&loaded.state, loaded.version, today, state.vault())
        .ok_or_else(|| super::not_found("returnee"))?;
    state
        .disclosures
        .record(&caller, "GET /v1/returnees/{returnee_id}", view.disclosed())
        .await?;
    Ok(entity(loaded.version, &view))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// First stream version to return (default 1).
    #[serde(default, deserialize_with = "crate::extract::within_i64")]
    pub from_version: Option<u64>,
    /// At most this many events (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// The returnee's own stream of events, oldest first.
///
/// Each event with its stream version, log position, payload and metadata, from `from_version`
/// (default 1), at most `limit` (default 100, at most 1000). Admin, or a zone worker in the
/// returnee's zone; another zone's returnee answers 404. Personal data is shown in full.
#[utoipa::path(
    tag = "returnees",
    params(("returnee_id" = Uuid, Path), StreamQuery),
    responses((status = 200, description = "Events", body = Vec<StreamEvent>), ReadErrors)
)]
#[get("/returnees/{returnee_id}/events")]
async fn returnee_events(
    caller: Authorized<Field>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = returnee_id(&path)?;
    // The query first: a bad one is refused alike for every id.
    let q: StreamQuery = query(&req)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::field("limit", "must be 1 to 1000"));
    }
    let owner = state.commands.load::<Returnee>(&id.stream_id()).await?;
    caller.check_zone(zone_of(&owner.state), "returnee")?;
    let events = state
        .store()
        .read_stream(&id.stream_id(), q.from_version.unwrap_or(1).max(1), limit)
        .await?;
    if events.is_empty() && state.store().stream_version(&id.stream_id()).await? == 0 {
        return Err(super::not_found("returnee"));
    }
    let mut disclosed = false;
    let events: Vec<StreamEvent> = events
        .into_iter()
        .map(|e| {
            let (shown, personal) = StreamEvent::shown(e, state.vault());
            disclosed |= personal;
            shown
        })
        .collect();
    if disclosed {
        state
            .disclosures
            .record(
                &caller,
                "GET /v1/returnees/{returnee_id}/events",
                std::iter::once(id.stream_id()),
            )
            .await?;
    }
    Ok(HttpResponse::Ok().json(events))
}

pub(crate) async fn screening(
    state: &AppState,
    headers: &WriteHeaders<Field>,
    id: &str,
    body: Json<ScreeningBody>,
) -> Result<Written, ApiError> {
    let b = body.value;
    let command = ReturneeCommand::Screen(ScreenReturnee {
        temperature: field("temperature", Temperature::parse(b.temperature))?,
        identity_checked: b.identity_checked,
        came_from: field("came_from", Name::parse(&b.came_from))?,
        going_to: optional("going_to", b.going_to, |g| Name::parse(&g))?,
        symptoms: symptoms(b.symptoms),
        screened_by: field("screened_by", Name::parse(&b.screened_by))?,
    });
    run(
        state,
        headers,
        returnee_id(id)?,
        "returnee.screen",
        body.canonical_hash,
        b.occurred_at,
        command,
    )
    .await
}

/// Record a screening.
///
/// One test, two checks, three questions (一测二查三询). A fever or a symptom also
/// records an abnormal finding.
#[utoipa::path(
    tag = "returnees",
    params(("returnee_id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header), ("If-Match" = Option<String>, Header)),
    request_body = ScreeningBody,
    responses((status = 200, description = "Recorded", body = Written), WriteErrors)
)]
#[post("/returnees/{returnee_id}/screenings")]
async fn screen(
    caller: Authorized<Field>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: Json<ScreeningBody>,
) -> Result<HttpResponse, ApiError> {
    Ok(written(
        screening(&state, &WriteHeaders::parse(&req, caller)?, &path, body).await?,
        None,
    ))
}

pub(crate) async fn team(
    state: &AppState,
    headers: &WriteHeaders<Field>,
    id: &str,
    body: Json<TeamBody>,
) -> Result<Written, ApiError> {
    let b = body.value;
    let mut members = Vec::with_capacity(b.members.len());
    for (i, m) in b.members.into_iter().enumerate() {
        members.push(TeamMember {
            role: m.role,
            name: field(&format!("members[{i}].name"), Name::parse(&m.name))?,
            phone: optional(&format!("members[{i}].phone"), m.phone, |p| {
                PhoneNumber::parse(&p)
            })?
            .map(Personal::Clear),
        });
    }
    let command = ReturneeCommand::AssignTeam { members };
    run(
        state,
        headers,
        returnee_id(id)?,
        "returnee.assign_team",
        body.canonical_hash,
        b.occurred_at,
        command,
    )
    .await
}

/// Assign the five-for-one responsibility team (五包一).
///
/// Names the five people answerable for the returnee, one in each role: village-stationed
/// cadre, village cadre, villager group leader, village doctor and auxiliary police. Admin, or a
/// zone worker in the returnee's zone; another zone's returnee answers 404. `Idempotency-Key`
/// makes a retry safe; `If-Match` with the returnee's version makes it conditional (412).
/// Refused with 409 when the rule it breaks is `team_incomplete`.
#[utoipa::path(
    tag = "returnees",
    params(("returnee_id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header), ("If-Match" = Option<String>, Header)),
    request_body = TeamBody,
    responses((status = 200, description = "Assigned (no events when unchanged)", body = Written), WriteErrors)
)]
#[put("/returnees/{returnee_id}/responsibility-team")]
async fn assign_team(
    caller: Authorized<Field>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: Json<TeamBody>,
) -> Result<HttpResponse, ApiError> {
    Ok(written(
        team(&state, &WriteHeaders::parse(&req, caller)?, &path, body).await?,
        None,
    ))
}

pub(crate) async fn quarantine(
    state: &AppState,
    headers: &WriteHeaders<Field>,
    id: &str,
    body: Json<QuarantineBody>,
) -> Result<Written, ApiError> {
    let b = body.value;
    let command = ReturneeCommand::StartQuarantine {
        planned_days: b.planned_days,
    };
    run(
        state,
        headers,
        returnee_id(id)?,
        "returnee.start_quarantine",
        body.canonical_hash,
        b.occurred_at,
        command,
    )
    .await
}

/// Start home quarantine observation (居家隔离观察), 14 days unless said otherwise.
///
/// Day 1 is the day it starts, and a temperature visit is due at the door on every day of the
/// planned period (1 to 60 days). Admin, or a zone worker in the returnee's zone; another zone's
/// returnee answers 404. `Idempotency-Key` makes a retry safe; `If-Match` with the returnee's
/// version makes it conditional (412). Refused with 409 when the rule it breaks is one of:
/// `quarantine_already_active`, `quarantine_before_arrival`, `quarantine_period_out_of_range`.
#[utoipa::path(
    tag = "returnees",
    params(("returnee_id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header), ("If-Match" = Option<String>, Header)),
    request_body = QuarantineBody,
    responses((status = 200, description = "Started", body = Written), WriteErrors)
)]
#[post("/returnees/{returnee_id}/quarantine")]
async fn start_quarantine(
    caller: Authorized<Field>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: Json<QuarantineBody>,
) -> Result<HttpResponse, ApiError> {
    Ok(written(
        quarantine(&state, &WriteHeaders::parse(&req, caller)?, &path, body).await?,
        None,
    ))
}

pub(crate) async fn health_check(
    state: &AppState,
    headers: &WriteHeaders<Field>,
    id: &str,
    body: Json<HealthCheckBody>,
) -> Result<Written, ApiError> {
    let b = body.value;
    let command = ReturneeCommand::RecordHealthCheck {
        temperature: field("temperature", Temperature::parse(b.temperature))?,
        symptoms: symptoms(b.symptoms),
        visited_by: optional("visited_by", b.visited_by, |v| Name::parse(&v))?,
    };
    run(
        state,
        headers,
        returnee_id(id)?,
        "returnee.health_check",
        body.canonical_hash,
        b.occurred_at,
        command,
    )
    .await
}

/// Record the daily temperature visit at the door. A fever (37.3 °C and up)
/// or a symptom also records an abnormal finding.
///
/// A health worker or village doctor took the temperature on a day of the home quarantine, so
/// that day no longer counts as a missed visit. Admin, or a zone worker in the returnee's zone;
/// another zone's returnee answers 404. `Idempotency-Key` makes a retry safe; `If-Match` with the
/// returnee's version makes it conditional (412). Refused with 409 when the rule it breaks is
/// one of: `no_active_quarantine`, `health_check_before_quarantine`.
#[utoipa::path(
    tag = "returnees",
    params(("returnee_id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header), ("If-Match" = Option<String>, Header)),
    request_body = HealthCheckBody,
    responses((status = 200, description = "Recorded", body = Written), WriteErrors)
)]
#[post("/returnees/{returnee_id}/health-checks")]
async fn record_health_check(
    caller: Authorized<Field>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: Json<HealthCheckBody>,
) -> Result<HttpResponse, ApiError> {
    Ok(written(
        health_check(&state, &WriteHeaders::parse(&req, caller)?, &path, body).await?,
        None,
    ))
}

pub(crate) async fn abnormal(
    state: &AppState,
    headers: &WriteHeaders<Field>,
    id: &str,
    body: Json<AbnormalBody>,
) -> Result<Written, ApiError> {
    let b = body.value;
    let command = ReturneeCommand::ReportAbnormalCondition {
        temperature: optional("temperature", b.temperature, Temperature::parse)?,
        symptoms: symptoms(b.symptoms),
        notes: optional("notes", b.notes, |n| Text::parse(&n))?,
    };
    run(
        state,
        headers,
        returnee_id(id)?,
        "returnee.report_abnormal",
        body.canonical_hash,
        b.occurred_at,
        command,
    )
    .await
}

/// Report an abnormal condition (fever, symptoms).
///
/// Records a fever or symptoms found outside a screening or visit, with notes; the person then
/// awaits referral for medical care. No quarantine needs to be under way. Admin, or a zone worker
/// in the returnee's zone; another zone's returnee answers 404. `Idempotency-Key` makes a retry
/// safe; `If-Match` with the returnee's version makes it conditional (412). No domain rule
/// refuses it with 409.
#[utoipa::path(
    tag = "returnees",
    params(("returnee_id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header), ("If-Match" = Option<String>, Header)),
    request_body = AbnormalBody,
    responses((status = 200, description = "Reported", body = Written), WriteErrors)
)]
#[post("/returnees/{returnee_id}/abnormal-conditions")]
async fn report_abnormal_condition(
    caller: Authorized<Field>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: Json<AbnormalBody>,
) -> Result<HttpResponse, ApiError> {
    Ok(written(
        abnormal(&state, &WriteHeaders::parse(&req, caller)?, &path, body).await?,
        None,
    ))
}

pub(crate) async fn referral(
    state: &AppState,
    headers: &WriteHeaders<Field>,
    id: &str,
    body: Json<ReferralBody>,
) -> Result<Written, ApiError> {
    let b = body.value;
    let command = ReturneeCommand::ReferForTreatment {
        facility: field("facility", Name::parse(&b.facility))?,
    };
    run(
        state,
        headers,
        returnee_id(id)?,
        "returnee.refer",
        body.canonical_hash,
        b.occurred_at,
        command,
    )
    .await
}

/// Refer the person for medical care; needs an abnormal finding not yet referred.
///
/// Records the facility the person was sent to, so they no longer count as awaiting referral; a
/// quarantine under way goes on until it is ended (reason `referred_for_treatment`). Admin, or a
/// zone worker in the returnee's zone; another zone's returnee answers 404. `Idempotency-Key`
/// makes a retry safe; `If-Match` with the returnee's version makes it conditional (412).
/// Refused with 409 when the rule it breaks is `referral_without_abnormal_condition`.
#[utoipa::path(
    tag = "returnees",
    params(("returnee_id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header), ("If-Match" = Option<String>, Header)),
    request_body = ReferralBody,
    responses((status = 200, description = "Referred", body = Written), WriteErrors)
)]
#[post("/returnees/{returnee_id}/referrals")]
async fn refer(
    caller: Authorized<Field>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: Json<ReferralBody>,
) -> Result<HttpResponse, ApiError> {
    Ok(written(
        referral(&state, &WriteHeaders::parse(&req, caller)?, &path, body).await?,
        None,
    ))
}

pub(crate) async fn extension(
    state: &AppState,
    headers: &WriteHeaders<Field>,
    id: &str,
    body: Json<ExtensionBody>,
) -> Result<Written, ApiError> {
    let b = body.value;
    let command = ReturneeCommand::ChangeQuarantinePeriod {
        planned_days: b.planned_days,
        reason: field("reason", Text::parse(&b.reason))?,
    };
    run(
        state,
        headers,
        returnee_id(id)?,
        "returnee.change_period",
        body.canonical_hash,
        b.occurred_at,
        command,
    )
    .await
}

/// Extend or shorten the planned quarantine period, with a reason.
///
/// Sets the planned length to `planned_days` (1 to 60), counted from the current count's start,
/// which moves the planned end; the reason stays in the log. Admin, or a zone worker in the
/// returnee's zone; another zone's returnee answers 404. `Idempotency-Key` makes a retry safe;
/// `If-Match` with the returnee's version makes it conditional (412). Refused with 409 when the
/// rule it breaks is one of: `no_active_quarantine`, `quarantine_period_out_of_range`,
/// `quarantine_period_unchanged`.
#[utoipa::path(
    tag = "returnees",
    params(("returnee_id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header), ("If-Match" = Option<String>, Header)),
    request_body = ExtensionBody,
    responses((status = 200, description = "Changed", body = Written), WriteErrors)
)]
#[post("/returnees/{returnee_id}/quarantine/extension")]
async fn change_period(
    caller: Authorized<Field>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: Json<ExtensionBody>,
) -> Result<HttpResponse, ApiError> {
    Ok(written(
        extension(&state, &WriteHeaders::parse(&req, caller)?, &path, body).await?,
        None,
    ))
}

pub(crate) async fn exposure(
    state: &AppState,
    headers: &WriteHeaders<Field>,
    id: &str,
    body: Json<ExposureBody>,
) -> Result<Written, ApiError> {
    let b = body.value;
    let command = ReturneeCommand::RecordExposure {
        description: field("description", Text::parse(&b.description))?,
    };
    run(
        state,
        headers,
        returnee_id(id)?,
        "returnee.exposure",
        body.canonical_hash,
        b.occurred_at,
        command,
    )
    .await
}

/// Record a new exposure: the quarantine count restarts from its date.
///
/// Day 1 of the count becomes the day of the exposure and the planned length is kept, so the
/// planned end moves later. Admin, or a zone worker in the returnee's zone; another zone's
/// returnee answers 404. `Idempotency-Key` makes a retry safe; `If-Match` with the returnee's
/// version makes it conditional (412). Refused with 409 when the rule it breaks is one of:
/// `no_active_quarantine`, `exposure_before_quarantine`.
#[utoipa::path(
    tag = "returnees",
    params(("returnee_id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header), ("If-Match" = Option<String>, Header)),
    request_body = ExposureBody,
    responses((status = 200, description = "Recorded", body = Written), WriteErrors)
)]
#[post("/returnees/{returnee_id}/exposures")]
async fn record_exposure(
    caller: Authorized<Field>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: Json<ExposureBody>,
) -> Result<HttpResponse, ApiError> {
    Ok(written(
        exposure(&state, &WriteHeaders::parse(&req, caller)?, &path, body).await?,
        None,
    ))
}

pub(crate) async fn end(
    state: &AppState,
    headers: &WriteHeaders<Field>,
    id: &str,
    body: Json<EndBody>,
) -> Result<Written, ApiError> {
    let b = body.value;
    let command = ReturneeCommand::EndQuarantine { reason: b.reason };
    run(
        state,
        headers,
        returnee_id(id)?,
        "returnee.end_quarantine",
        body.canonical_hash,
        b.occurred_at,
        command,
    )
    .await
}

/// End the quarantine: completed (not before the planned end), referred for
/// treatment, transferred, or lost to follow-up.
///
/// Closes the home quarantine and sets the returnee's status to released, under treatment,
/// transferred or lost to follow-up; no more visits are due. Admin, or a zone worker in the
/// returnee's zone; another zone's returnee answers 404. `Idempotency-Key` makes a retry safe;
/// `If-Match` with the returnee's version makes it conditional (412). Refused with 409 when the
/// rule it breaks is one of: `no_active_quarantine`, `quarantine_ends_before_start`,
/// `released_before_planned_end`.
#[utoipa::path(
    tag = "returnees",
    params(("returnee_id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header), ("If-Match" = Option<String>, Header)),
    request_body = EndBody,
    responses((status = 200, description = "Ended", body = Written), WriteErrors)
)]
#[post("/returnees/{returnee_id}/quarantine/end")]
async fn end_quarantine(
    caller: Authorized<Field>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: Json<EndBody>,
) -> Result<HttpResponse, ApiError> {
    Ok(written(
        end(&state, &WriteHeaders::parse(&req, caller)?, &path, body).await?,
        None,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reason": "本人申请删除个人信息"}))]
pub struct ErasureBody {
    /// Why (kept in the log: write no personal data here).
    pub reason: String,
}

/// Erase a returnee's personal data. Admin only.
///
/// Records `PersonalDataErased` (holding no personal data) and destroys the key the person's
/// name, resident ID number, phone, address and team phones were sealed under: from then on
/// every view, list, export, live feed, as-of read, rebuild and saved state shows them as
/// `{"erased": true}`, while every figure stays as it was and the log still verifies. Sent
/// again, it records nothing more. Refused with 409 when the rule it breaks is
/// `personal_data_not_encrypted` (the person was recorded before this store sealed personal
/// data: start a new store to erase by key).
#[utoipa::path(
    tag = "returnees",
    params(("returnee_id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "Makes the write safe to retry")),
    request_body = ErasureBody,
    responses((status = 200, description = "Erased (or already erased)", body = Written, headers(("ETag" = String, description = "Its stream version, quoted"))), WriteErrors)
)]
#[post("/returnees/{returnee_id}/erasure")]
async fn erase_personal_data(
    caller: Authorized<crate::access::Admin>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: Json<ErasureBody>,
) -> Result<HttpResponse, ApiError> {
    let id = returnee_id(&path)?;
    erasure(
        &state,
        WriteHeaders::parse(&req, caller)?,
        (id.stream_id(), id.as_uuid()),
        fangkong_app::personal::DataSubject::Returnee,
        body,
    )
    .await
}

/// Erases a data subject's personal data on request: the answer to either
/// erasure route.
pub(crate) async fn erasure(
    state: &AppState,
    headers: WriteHeaders<crate::access::Admin>,
    (stream_id, entity): (String, Uuid),
    subject: fangkong_app::personal::DataSubject,
    body: Json<ErasureBody>,
) -> Result<HttpResponse, ApiError> {
    let reason = field("reason", Text::parse(&body.value.reason))?;
    let target = fangkong_app::Target::new(
        stream_id,
        entity,
        fangkong_app::personal::erase_operation(subject),
    );
    let envelope = headers.envelope(body.canonical_hash, None);
    let outcome = state
        .commands
        .erase_subject(
            &envelope,
            &target,
            subject,
            fangkong_domain::returnee::ErasureBasis::Request,
            reason,
        )
        .await?;
    Ok(written(
        super::shown_write(state, &headers.caller, target.operation, outcome).await?,
        None,
    ))
}

/// Everything the service holds about one person, for a subject access request.
#[derive(Debug, Serialize, ToSchema)]
pub struct PersonalDataReport {
    pub returnee_id: Uuid,
    /// When this report was made.
    pub generated_at: DateTime<Utc>,
    /// The person's data was erased: the fields below show `{"erased": true}`.
    pub erased: bool,
    /// The returnee as the service shows them today.
    pub returnee: ReturneeView,
    /// Every event of the person's record, personal fields opened: where
    /// each piece of data comes from.
    pub events: Vec<StreamEvent>,
}

/// Everything held about one returnee, decrypted, with its sources. Admin only.
///
/// The JSON document to hand over on a person's request for their data: the returnee as shown
/// today (personal data, team, quarantine) and every event of their record with its personal
/// fields opened, each with its position, time and metadata. The read is noted in the personal
/// data access record.
#[utoipa::path(
    tag = "returnees",
    params(("returnee_id" = Uuid, Path)),
    responses((status = 200, description = "The person's data", body = PersonalDataReport), ReadErrors)
)]
#[get("/returnees/{returnee_id}/personal-data")]
async fn personal_data(
    caller: Authorized<crate::access::Admin>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = returnee_id(&path)?;
    let loaded = state.commands.load::<Returnee>(&id.stream_id()).await?;
    let today = state.commands.context(None)?.today;
    let returnee = view(&loaded.state, loaded.version, today, state.vault())
        .ok_or_else(|| super::not_found("returnee"))?;
    let (events, shown_any) = StreamEvent::whole_stream(&state, &id.stream_id()).await?;
    // Whatever the view or any event shows, opened, is on record.
    let subject = (shown_any || returnee.disclosed().is_some()).then(|| id.stream_id());
    state
        .disclosures
        .record(
            &caller,
            "GET /v1/returnees/{returnee_id}/personal-data",
            subject,
        )
        .await?;
    Ok(HttpResponse::Ok().json(PersonalDataReport {
        returnee_id: id.as_uuid(),
        generated_at: Utc::now(),
        erased: loaded.state.personal_data_erased(),
        returnee,
        events,
    }))
}
