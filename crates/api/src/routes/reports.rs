//! Each zone's daily report (日报告), zero report included (零报告): the
//! zone leader attests a day.

use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::{get, put, web, HttpRequest, HttpResponse};
use chrono::{DateTime, NaiveDate, Utc};
use fangkong_domain::report::{DailyReport, SubmitDailyReport};
use fangkong_domain::{Name, ZoneId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::{entity, field, path_id, run_on, written, ReadErrors, WriteErrors};
use crate::extract::{Json, WriteHeaders};
use crate::problem::ApiError;
use crate::write::{Target, Written};
use crate::AppState;

/// How long a report waits for the projections to see the latest writes.
const CATCH_UP: Duration = Duration::from_secs(5);

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(submit_report).service(get_report);
}

/// The zone leader's attestation of a day.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"zero_report": false, "figures": {"returnees_registered": 3, "health_visits": 41}, "submitted_by": "李明"}))]
pub struct ReportBody {
    /// Nothing happened in the zone that day (零报告): refused if anything was recorded.
    pub zero_report: bool,
    /// The figures attested, by figure code.
    #[serde(default)]
    pub figures: BTreeMap<String, u64>,
    pub submitted_by: String,
    pub occurred_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReportView {
    pub zone_id: Uuid,
    pub date: NaiveDate,
    pub submitted: bool,
    pub zero_report: Option<bool>,
    pub figures: BTreeMap<String, u64>,
    pub submitted_by: Option<String>,
    /// 1 for the first submission, then 2, 3... for resubmissions.
    pub revision: u32,
    /// Field events the zone has recorded for the day so far.
    pub recorded_activity: u64,
    pub version: u64,
}

fn date(raw: &str) -> Result<NaiveDate, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::field("date", "must be a date, YYYY-MM-DD"))
}

/// Field events recorded for the zone and day, as of every write so far.
async fn recorded_activity(
    state: &AppState,
    zone: ZoneId,
    date: NaiveDate,
) -> Result<u64, ApiError> {
    let head = state.store().head().await?.position;
    state
        .projector
        .wait_for(head, CATCH_UP)
        .await
        .map_err(|error| {
            tracing::warn!(%error, "daily report: projections behind");
            ApiError::Unavailable
        })?;
    Ok(state.projector.zone_day_activity(zone.as_uuid(), date))
}

pub(crate) async fn submit(
    state: &AppState,
    headers: &WriteHeaders,
    raw_zone: &str,
    raw_date: &str,
    body: Json<ReportBody>,
) -> Result<Written, ApiError> {
    let zone_id = ZoneId::from_uuid(path_id(raw_zone, "zone")?);
    let date = date(raw_date)?;
    super::zones::established(state, zone_id).await?;
    let b = body.value;
    let command = SubmitDailyReport {
        zone_id,
        date,
        zero_report: b.zero_report,
        figures: b.figures,
        submitted_by: field("submitted_by", Name::parse(&b.submitted_by))?,
        recorded_activity: recorded_activity(state, zone_id, date).await?,
    };
    let target = Target {
        stream_id: DailyReport::stream_id(zone_id, date),
        entity_id: zone_id.as_uuid(),
        operation: "report.submit",
    };
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

/// Submit (attest) the zone's report for a day; a resubmission is the next
/// revision. A zero report is refused when the zone recorded anything that
/// day, and no day can be reported before it has come.
#[utoipa::path(
    tag = "reports",
    params(("zone_id" = Uuid, Path), ("date" = NaiveDate, Path), ("Idempotency-Key" = Option<String>, Header), ("If-Match" = Option<String>, Header)),
    request_body = ReportBody,
    responses((status = 200, description = "Submitted", body = Written), WriteErrors)
)]
#[put("/zones/{zone_id}/daily-reports/{date}")]
async fn submit_report(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: Json<ReportBody>,
) -> Result<HttpResponse, ApiError> {
    let (zone, day) = path.into_inner();
    Ok(written(
        submit(&state, &WriteHeaders::parse(&req)?, &zone, &day, body).await?,
        false,
    ))
}

/// The zone's report for a day: what was attested (if anything yet) and how
/// much the zone has recorded that day.
#[utoipa::path(
    tag = "reports",
    params(("zone_id" = Uuid, Path), ("date" = NaiveDate, Path)),
    responses((status = 200, description = "The report", body = ReportView), ReadErrors)
)]
#[get("/zones/{zone_id}/daily-reports/{date}")]
async fn get_report(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (zone, day) = path.into_inner();
    let zone_id = ZoneId::from_uuid(path_id(&zone, "zone")?);
    let date = date(&day)?;
    super::zones::established(&state, zone_id).await?;
    let loaded = state
        .commands
        .load::<DailyReport>(&DailyReport::stream_id(zone_id, date))
        .await?;
    let last = loaded.state.last.as_ref();
    let view = ReportView {
        zone_id: zone_id.as_uuid(),
        date,
        submitted: last.is_some(),
        zero_report: last.map(|r| r.zero_report),
        figures: last.map(|r| r.figures.clone()).unwrap_or_default(),
        submitted_by: last.map(|r| r.submitted_by.to_string()),
        revision: last.map_or(0, |r| r.revision),
        recorded_activity: recorded_activity(&state, zone_id, date).await?,
        version: loaded.version,
    };
    Ok(entity(loaded.version, &view))
}
