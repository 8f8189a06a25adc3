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
use crate::access::{Authorized, Field};
use crate::extract::{Json, WriteHeaders};
use crate::problem::ApiError;
use crate::write::Written;
use crate::AppState;
use fangkong_app::Target;

/// How long a report waits for the projections to see the latest writes.
const CATCH_UP: Duration = Duration::from_secs(5);

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(submit_report).service(get_report);
}

/// The zone leader's attestation of a day.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"zero_report": false, "figures": {"returnees_registered": 3, "health_visits_made": 41}, "submitted_by": "李明"}))]
pub struct DailyReportBody {
    /// Nothing happened in the zone that day (零报告): refused if anything was recorded.
    pub zero_report: bool,
    /// The figures attested, by figure code (see the dashboard's `day`).
    /// When left out, the zone's recorded figures for the day are attested.
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
    /// Submitted, zero, late, missing, pending or amended, with what
    /// changed since the submission.
    pub status: Option<fangkong_projections::views::ReportStatus>,
    pub version: u64,
}

fn date(raw: &str) -> Result<NaiveDate, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::field("date", "must be a date, YYYY-MM-DD"))
}

/// Field events recorded for the zone and day, and the day's figures, as
/// of every write so far.
async fn recorded_day(
    state: &AppState,
    zone: ZoneId,
    date: NaiveDate,
) -> Result<(u64, BTreeMap<String, u64>), ApiError> {
    state.figures_current()?;
    // In a batch, the figures include what the commands before this one
    // recorded.
    state.commands.settle().await;
    let head = state.store().head().await?.position;
    state
        .projector
        .wait_for(head, CATCH_UP)
        .await
        .map_err(|error| {
            tracing::warn!(%error, "daily report: projections behind");
            ApiError::Unavailable
        })?;
    Ok(state.projector.read(|m| {
        let figures = m
            .board
            .zone(zone.as_uuid())
            .and_then(|z| z.day(date))
            .map(|day| {
                day.iter()
                    .filter(|(_, v)| *v > 0)
                    .map(|(f, v)| (f.code().to_owned(), v))
                    .collect()
            })
            .unwrap_or_default();
        (m.board.field_events(zone.as_uuid(), date), figures)
    }))
}

/// Attested figures must be figures: a misspelt code would attest nothing.
fn known_figures(figures: &BTreeMap<String, u64>) -> Result<(), ApiError> {
    let unknown: Vec<_> = figures
        .keys()
        .filter(|code| fangkong_projections::Figure::from_code(code).is_none())
        .map(|code| crate::problem::FieldError {
            field: format!("figures.{code}"),
            message: "is not a figure code".into(),
        })
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Invalid(unknown))
    }
}

pub(crate) async fn submit(
    state: &AppState,
    headers: &WriteHeaders<Field>,
    raw_zone: &str,
    raw_date: &str,
    body: Json<DailyReportBody>,
) -> Result<Written, ApiError> {
    let zone_id = ZoneId::from_uuid(path_id(raw_zone, "zone")?);
    // Out of the caller's zones reads as no zone at all, before anything
    // else is looked at (the date, the body, the figures).
    headers.caller.check_zone(Some(zone_id.as_uuid()), "zone")?;
    super::zones::established(state, zone_id).await?;
    let date = date(raw_date)?;
    let b = body.value;
    known_figures(&b.figures)?;
    let submitted_by = field("submitted_by", Name::parse(&b.submitted_by))?;
    let (recorded_activity, recorded) = recorded_day(state, zone_id, date).await?;
    let figures = if b.figures.is_empty() && !b.zero_report {
        recorded
    } else {
        b.figures
    };
    let command = SubmitDailyReport {
        zone_id,
        date,
        zero_report: b.zero_report,
        figures,
        submitted_by,
        recorded_activity,
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

/// Submit (attest) the zone's report for a day.
///
/// A resubmission is the next revision. A zero report is refused when the zone
/// recorded anything that day, and no day can be reported before it has come.
#[utoipa::path(
    tag = "reports",
    params(("zone_id" = Uuid, Path), ("date" = NaiveDate, Path), ("Idempotency-Key" = Option<String>, Header), ("If-Match" = Option<String>, Header)),
    request_body = DailyReportBody,
    responses((status = 200, description = "Submitted", body = Written), WriteErrors)
)]
#[put("/zones/{zone_id}/daily-reports/{date}")]
async fn submit_report(
    caller: Authorized<Field>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: Json<DailyReportBody>,
) -> Result<HttpResponse, ApiError> {
    let (zone, day) = path.into_inner();
    Ok(written(
        submit(
            &state,
            &WriteHeaders::parse(&req, caller)?,
            &zone,
            &day,
            body,
        )
        .await?,
        None,
    ))
}

/// The zone's report for a day: what was attested (if anything yet) and how
/// much the zone has recorded that day.
///
/// Holds the last submission (zero report or not, the figures attested, by whom, its revision),
/// the field events the zone recorded that day, and the report's status: submitted, zero, late,
/// missing, pending or amended. It waits up to 5 s for the figures to catch up with every write
/// (503 when they do not). Admin, or a zone worker in the zone; another zone answers 404.
#[utoipa::path(
    tag = "reports",
    params(("zone_id" = Uuid, Path), ("date" = NaiveDate, Path)),
    responses((status = 200, description = "The report", body = ReportView), ReadErrors)
)]
#[get("/zones/{zone_id}/daily-reports/{date}")]
async fn get_report(
    caller: Authorized<Field>,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (zone, day) = path.into_inner();
    let zone_id = ZoneId::from_uuid(path_id(&zone, "zone")?);
    caller.check_zone(Some(zone_id.as_uuid()), "zone")?;
    let date = date(&day)?;
    super::zones::established(&state, zone_id).await?;
    let loaded = state
        .commands
        .load::<DailyReport>(&DailyReport::stream_id(zone_id, date))
        .await?;
    let last = loaded.state.last.as_ref();
    let (recorded_activity, _) = recorded_day(&state, zone_id, date).await?;
    let status = state.projector.read(|m| {
        let reading = fangkong_projections::Reading {
            township: state.projector.township(),
            rules: state.settings.rules,
            clock: fangkong_projections::Clock::at(Utc::now(), state.projector.township()),
        };
        m.board
            .zone(zone_id.as_uuid())
            .and_then(|zone| reading.report_of(zone, date))
    });
    let view = ReportView {
        zone_id: zone_id.as_uuid(),
        date,
        submitted: last.is_some(),
        zero_report: last.map(|r| r.zero_report),
        figures: last.map(|r| r.figures.clone()).unwrap_or_default(),
        submitted_by: last.map(|r| r.submitted_by.to_string()),
        revision: last.map_or(0, |r| r.revision),
        recorded_activity,
        status,
        version: loaded.version,
    };
    Ok(entity(loaded.version, &view))
}
