//! A zone's counted work (gatherings dispersed, publicity, patrols) and the
//! township staff's morning checks.

use actix_web::{post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use fangkong_domain::activity::{
    Activity, ActivityCommand, RecordStaffHealthCheck, StaffChecks, StaffCommand, ZoneActivity,
};
use fangkong_domain::{Count, Name, PublicityChannel, Symptom, Temperature, ZoneId};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::{field, path_id, run_on, schemas, written, WriteErrors};
use crate::access::{Authorized, Field};
use crate::extract::{Json, WriteHeaders};
use crate::problem::ApiError;
use crate::write::Written;
use crate::AppState;
use fangkong_app::Target;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(disperse_gathering)
        .service(record_publicity)
        .service(complete_patrol)
        .service(record_staff_check);
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"people": 8, "location": "桥头村小卖部"}))]
pub struct GatheringBody {
    pub people: i64,
    pub location: String,
    pub occurred_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"channel": "leaflet", "quantity": 300}))]
pub struct PublicityBody {
    #[schema(schema_with = schemas::channel)]
    pub channel: PublicityChannel,
    pub quantity: i64,
    pub occurred_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"patrol_group": "二组巡逻队", "persuaded": 12}))]
pub struct PatrolBody {
    pub patrol_group: String,
    /// Villagers persuaded to go home or wear a mask on the round.
    #[serde(default)]
    pub persuaded: i64,
    pub occurred_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"staff": "镇干部甲", "temperature": 36.4, "symptoms": []}))]
pub struct StaffCheckBody {
    pub staff: String,
    pub temperature: f64,
    #[serde(default)]
    #[schema(schema_with = schemas::symptoms)]
    pub symptoms: Vec<Symptom>,
    pub occurred_at: Option<DateTime<Utc>>,
}

async fn zone_activity(
    state: &AppState,
    headers: &WriteHeaders<Field>,
    raw_zone: &str,
    operation: &'static str,
    body_hash: [u8; 32],
    occurred_at: Option<DateTime<Utc>>,
    activity: Activity,
) -> Result<Written, ApiError> {
    let zone_id = ZoneId::from_uuid(path_id(raw_zone, "zone")?);
    // Out of the caller's zones reads as no zone at all, before anything
    // else is looked at.
    headers.caller.check_zone(Some(zone_id.as_uuid()), "zone")?;
    super::zones::established(state, zone_id).await?;
    let target = Target {
        stream_id: ZoneActivity::stream_id(zone_id),
        entity_id: zone_id.as_uuid(),
        operation,
    };
    let command = ActivityCommand { zone_id, activity };
    run_on(state, headers, &target, body_hash, occurred_at, command).await
}

pub(crate) async fn gathering(
    state: &AppState,
    headers: &WriteHeaders<Field>,
    zone: &str,
    body: Json<GatheringBody>,
) -> Result<Written, ApiError> {
    let b = body.value;
    let command = Activity::DisperseGathering {
        people: field("people", Count::parse(b.people))?,
        location: field("location", Name::parse(&b.location))?,
    };
    zone_activity(
        state,
        headers,
        zone,
        "activity.gathering",
        body.canonical_hash,
        b.occurred_at,
        command,
    )
    .await
}

/// A card or mahjong gathering was dispersed (劝停聚众打牌).
///
/// Counts the people sent home, and where, in the zone's figures for the day it happened.
/// Admin, or a zone worker for its own zone; another zone answers 404. `Idempotency-Key` makes
/// a retry safe. Refused with 409 when the rule it breaks is `nothing_to_record` (no people).
#[utoipa::path(
    tag = "activity",
    params(("zone_id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = GatheringBody,
    responses((status = 200, description = "Recorded", body = Written), WriteErrors)
)]
#[post("/zones/{zone_id}/gathering-dispersals")]
async fn disperse_gathering(
    caller: Authorized<Field>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: Json<GatheringBody>,
) -> Result<HttpResponse, ApiError> {
    Ok(written(
        gathering(&state, &WriteHeaders::parse(&req, caller)?, &path, body).await?,
        None,
    ))
}

pub(crate) async fn publicity(
    state: &AppState,
    headers: &WriteHeaders<Field>,
    zone: &str,
    body: Json<PublicityBody>,
) -> Result<Written, ApiError> {
    let b = body.value;
    let command = Activity::RecordPublicity {
        channel: b.channel,
        quantity: field("quantity", Count::parse(b.quantity))?,
    };
    zone_activity(
        state,
        headers,
        zone,
        "activity.publicity",
        body.canonical_hash,
        b.occurred_at,
        command,
    )
    .await
}

/// Publicity work by channel and quantity (leaflets, WeChat messages, loudspeakers...).
///
/// Adds `quantity` to the zone's figure for the channel on the day it happened: leaflets handed
/// out, messages sent, loudspeakers opened, banners put up, market days cancelled and the like.
/// Admin, or a zone worker for its own zone; another zone answers 404. `Idempotency-Key` makes
/// a retry safe. Refused with 409 when the rule it breaks is `nothing_to_record` (quantity 0).
#[utoipa::path(
    tag = "activity",
    params(("zone_id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = PublicityBody,
    responses((status = 200, description = "Recorded", body = Written), WriteErrors)
)]
#[post("/zones/{zone_id}/publicity")]
async fn record_publicity(
    caller: Authorized<Field>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: Json<PublicityBody>,
) -> Result<HttpResponse, ApiError> {
    Ok(written(
        publicity(&state, &WriteHeaders::parse(&req, caller)?, &path, body).await?,
        None,
    ))
}

pub(crate) async fn patrol(
    state: &AppState,
    headers: &WriteHeaders<Field>,
    zone: &str,
    body: Json<PatrolBody>,
) -> Result<Written, ApiError> {
    let b = body.value;
    let command = Activity::CompletePatrol {
        patrol_group: field("patrol_group", Name::parse(&b.patrol_group))?,
        persuaded: field("persuaded", Count::parse(b.persuaded))?,
    };
    zone_activity(
        state,
        headers,
        zone,
        "activity.patrol",
        body.canonical_hash,
        b.occurred_at,
        command,
    )
    .await
}

/// A patrol between villages was completed.
///
/// Counts one round by a patrol group (巡逻组) in the zone's figures for the day it happened,
/// with the villagers it persuaded to go home or wear a mask. Admin, or a zone worker for its own
/// zone; another zone answers 404. `Idempotency-Key` makes a retry safe. No domain rule refuses
/// it with 409.
#[utoipa::path(
    tag = "activity",
    params(("zone_id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = PatrolBody,
    responses((status = 200, description = "Recorded", body = Written), WriteErrors)
)]
#[post("/zones/{zone_id}/patrols")]
async fn complete_patrol(
    caller: Authorized<Field>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: Json<PatrolBody>,
) -> Result<HttpResponse, ApiError> {
    Ok(written(
        patrol(&state, &WriteHeaders::parse(&req, caller)?, &path, body).await?,
        None,
    ))
}

pub(crate) async fn staff_check(
    state: &AppState,
    headers: &WriteHeaders<Field>,
    body: Json<StaffCheckBody>,
) -> Result<Written, ApiError> {
    let b = body.value;
    let ctx = state.commands.context(b.occurred_at)?;
    let target = Target {
        stream_id: StaffChecks::stream_id(ctx.occurred_on),
        entity_id: uuid::Uuid::nil(),
        operation: "staff.check",
    };
    let command = StaffCommand::Record(RecordStaffHealthCheck {
        staff: field("staff", Name::parse(&b.staff))?,
        temperature: field("temperature", Temperature::parse(b.temperature))?,
        symptoms: b.symptoms,
    });
    // The day's stream is chosen by the clock: a keyed retry that crosses
    // midnight finds its first try on the day before.
    if headers.idempotency_key.is_some() {
        if let Some(yesterday) = ctx.occurred_on.pred_opt() {
            let earlier = Target {
                stream_id: StaffChecks::stream_id(yesterday),
                ..target.clone()
            };
            let envelope = headers.envelope(body.canonical_hash, b.occurred_at);
            if let Some(first) = state
                .commands
                .recorded(&envelope, &earlier, &command)
                .await?
            {
                return super::shown_write(state, &headers.caller, earlier.operation, first).await;
            }
        }
    }
    run_on(
        state,
        headers,
        &target,
        body.canonical_hash,
        b.occurred_at,
        command,
    )
    .await
}

/// A township employee's morning check (晨检).
///
/// Records one employee's temperature and symptoms for the day; a fever or a symptom counts the
/// check as abnormal in the township's figures. The checks belong to the township office, not to
/// a zone, so admin and every zone worker may record them. `Idempotency-Key` makes a retry safe,
/// even one that crosses midnight. Refused with 409 `personal_data_erased` only for a day whose
/// names the retention job has erased (a check backdated past the retention period).
#[utoipa::path(
    tag = "activity",
    params(("Idempotency-Key" = Option<String>, Header)),
    request_body = StaffCheckBody,
    responses((status = 200, description = "Recorded", body = Written), WriteErrors)
)]
#[post("/staff-health-checks")]
async fn record_staff_check(
    caller: Authorized<Field>,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Json<StaffCheckBody>,
) -> Result<HttpResponse, ApiError> {
    Ok(written(
        staff_check(&state, &WriteHeaders::parse(&req, caller)?, body).await?,
        None,
    ))
}
