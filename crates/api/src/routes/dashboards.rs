//! Dashboards per zone and for the township, and the county's daily pull
//! (JSON, CSV, DHIS2): read from the projections, live (optionally waiting
//! for a position) or exactly as they stood at an earlier position or
//! instant.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{get, post, web, HttpRequest, HttpResponse, HttpResponseBuilder};
use chrono::{DateTime, NaiveDate, Utc};
use fangkong_projections::views::{DailyAggregates, TownshipDashboard, ZoneDashboard};
use fangkong_projections::{Clock, ProjectorError, ReadModels, Reading};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::{path_id, query, ReadErrors};
use crate::access::{Authorized, FeedCaller, Figures, FiguresFeed};
use crate::export;
use crate::feeds::FeedLease;
use crate::problem::ApiError;
use crate::renders::{Moment, Rendered};
use crate::AppState;

/// Longest a read waits for the projections to reach `min_position`.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(2);
/// Longest span of days one county pull covers.
const MAX_DAYS: i64 = 366;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(zone_dashboard)
        .service(live_figures)
        .service(live_figures_ticket)
        .service(township_dashboard)
        .service(daily_reports);
}

/// Which moment a projection read reflects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AsOf {
    Position(u64),
    Instant(DateTime<Utc>),
}

impl AsOf {
    pub(crate) fn parse(raw: &str) -> Result<AsOf, ApiError> {
        if let Ok(position) = raw.parse::<u64>() {
            return Ok(AsOf::Position(position));
        }
        DateTime::parse_from_rfc3339(raw)
            .map(|t| AsOf::Instant(t.with_timezone(&Utc)))
            .map_err(|_| {
                ApiError::field(
                    "as_of",
                    "must be a log position or an RFC 3339 instant like 2020-02-01T10:00:00+08:00",
                )
            })
    }
}

/// The position an answer reflects, and the one asked for when it could
/// not be reached in time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Freshness {
    pub position: u64,
    pub wanted: Option<u64>,
}

impl Freshness {
    pub(crate) fn headers(&self, response: &mut HttpResponseBuilder) {
        response.insert_header(("X-Projection-Position", self.position.to_string()));
        if let Some(wanted) = self.wanted {
            response.insert_header(("X-Projection-Wanted", wanted.to_string()));
        }
    }
}

/// Reads the projections: live (after waiting, bounded, for
/// `min_position`), or rebuilt as of a position or instant, with the clock
/// of that moment so "late", "missing" and "missed" read as they did then.
pub(crate) async fn read_models<T>(
    state: &AppState,
    requester: uuid::Uuid,
    as_of: Option<&str>,
    min_position: Option<u64>,
    read: impl FnOnce(&ReadModels, Clock) -> T,
) -> Result<(T, Freshness), ApiError> {
    let township = *state.projector.township();
    let (models, clock): (Arc<ReadModels>, Clock) = match as_of.map(AsOf::parse).transpose()? {
        None => {
            state.figures_current()?;
            let wanted = match min_position {
                Some(wanted) => state
                    .projector
                    .wait_for(wanted, MAX_WAIT)
                    .await
                    .is_err()
                    .then_some(wanted),
                None => None,
            };
            let clock = Clock::at(Utc::now(), &township);
            let (answer, position) = state.projector.read(|m| (read(m, clock), m.position()));
            return Ok((answer, Freshness { position, wanted }));
        }
        Some(AsOf::Position(position)) => {
            let models = as_of_models(state, requester, position).await?;
            let then = models.board.recorded_at().unwrap_or(DateTime::UNIX_EPOCH);
            (models, Clock::at(then, &township))
        }
        Some(AsOf::Instant(at)) => {
            if at > Utc::now() {
                return Err(ApiError::field("as_of", "lies in the future"));
            }
            let position = state.store().position_at(at).await?;
            (
                as_of_models(state, requester, position).await?,
                Clock::at(at, &township),
            )
        }
    };
    let position = models.position();
    Ok((
        read(&models, clock),
        Freshness {
            position,
            wanted: None,
        },
    ))
}

async fn as_of_models(
    state: &AppState,
    requester: uuid::Uuid,
    position: u64,
) -> Result<Arc<ReadModels>, ApiError> {
    state
        .projector
        .as_of_for(requester, position)
        .await
        .map_err(|error| match error {
            ProjectorError::BeyondTheLog { head, .. } => {
                ApiError::field("as_of", format!("the log ends at position {head}"))
            }
            ProjectorError::Store(e) => e.into(),
            ProjectorError::Unapplicable(refused) => ApiError::ProjectionStalled {
                position: refused.position,
            },
            other => {
                tracing::error!(error = %other, "as-of rebuild failed");
                ApiError::Internal
            }
        })
}

fn reading<'a>(state: &'a AppState, clock: Clock) -> Reading<'a> {
    Reading {
        township: state.projector.township(),
        rules: state.settings.rules,
        clock,
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DashboardQuery {
    /// The day the figures are for (township time); today when absent.
    pub date: Option<NaiveDate>,
    /// A log position, or an RFC 3339 instant: the dashboard exactly as it
    /// stood then (its "today" is that moment's).
    pub as_of: Option<String>,
    /// Wait (up to 2 s) until the projections reflect this log position:
    /// pass the `position` of your last write to read it back.
    #[serde(default, deserialize_with = "crate::extract::within_i64")]
    pub min_position: Option<u64>,
}

pub(crate) fn with_freshness<T: serde::Serialize>(freshness: Freshness, body: &T) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    freshness.headers(&mut response);
    response.json(body)
}

/// A zone's dashboard.
///
/// What stands now (people under quarantine, people awaiting referral, venues
/// closed by kind), the day's figures, the figures to date, and the day's
/// report state. `X-Projection-Position` names the log position it reflects;
/// `X-Projection-Wanted` appears when `min_position` was not reached in time.
#[utoipa::path(
    tag = "dashboards",
    params(("zone_id" = Uuid, Path), DashboardQuery),
    responses((status = 200, description = "The zone's dashboard", body = ZoneDashboard), ReadErrors)
)]
#[get("/zones/{zone_id}/dashboard")]
async fn zone_dashboard(
    caller: Authorized<Figures>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let zone_id = path_id(&path.into_inner(), "zone")?;
    caller.check_zone(Some(zone_id), "zone")?;
    let q: DashboardQuery = query(&req)?;
    let live = q.as_of.is_none();
    let (rendered, freshness) = read_models(
        &state,
        caller.token_id,
        q.as_of.as_deref(),
        q.min_position,
        |m, clock| {
            let render = |clock: Clock| {
                reading(&state, clock)
                    .zone_dashboard(&m.board, zone_id, q.date.unwrap_or(clock.today))
                    .map(|dashboard| serde_json::to_vec(&dashboard).map(Rendered::of))
                    .transpose()
            };
            if !live {
                return render(clock);
            }
            // Live: rendered once per position and second, for every
            // caller the zone is open to.
            let (moment, clock) = Moment::at(m.position(), clock.now, state.projector.township());
            let date = q.date.unwrap_or(clock.today);
            state
                .zone_dashboards
                .get_or_render(moment, zone_id, date, || render(clock))
        },
    )
    .await?;
    let rendered = rendered.map_err(|error| {
        tracing::error!(%error, "a zone dashboard did not render");
        ApiError::Internal
    })?;
    match rendered {
        Some(Rendered { body, digest }) => {
            let mut response = HttpResponse::Ok();
            freshness.headers(&mut response);
            response.extensions_mut().insert(digest);
            Ok(response.content_type("application/json").body(body))
        }
        None => {
            // Not on the board: unknown, or established after what the
            // board reflects.
            super::zones::established(&state, fangkong_domain::ZoneId::from_uuid(zone_id)).await?;
            Err(ApiError::NotFound(format!(
                "zone {zone_id} is not on the dashboard as of position {}",
                freshness.position
            )))
        }
    }
}

/// The township's dashboard.
///
/// The zones' figures summed (plus the township office's staff checks), what
/// stands now, reporting completeness for the day, and each zone's day and
/// report state.
#[utoipa::path(
    tag = "dashboards",
    params(DashboardQuery),
    responses((status = 200, description = "The township's dashboard", body = TownshipDashboard), ReadErrors)
)]
#[get("/dashboard")]
async fn township_dashboard(
    caller: Authorized<Figures>,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q: DashboardQuery = query(&req)?;
    let (mut dashboard, freshness) = read_models(
        &state,
        caller.token_id,
        q.as_of.as_deref(),
        q.min_position,
        |m, clock| {
            reading(&state, clock).township_dashboard(&m.board, q.date.unwrap_or(clock.today))
        },
    )
    .await?;
    // A zone worker sees its own zones' lines (and the township's totals,
    // which name no one), as its zone dashboards and the daily pull do.
    dashboard
        .zones
        .retain(|line| caller.sees_zone(line.zone_id));
    Ok(with_freshness(freshness, &dashboard))
}

#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ExportFormat {
    #[default]
    Json,
    Csv,
    /// For DHIS2's `POST /api/dataValueSets`.
    Dhis2,
    /// For DHIS2's `POST /api/completeDataSetRegistrations`.
    Dhis2Completions,
}

/// Each zone's DHIS2 org unit: linked through the API, or, for a zone never
/// linked, from the mapping file.
pub(crate) fn effective_org_units(state: &AppState) -> std::collections::BTreeMap<Uuid, String> {
    let mut units = state
        .settings
        .dhis2
        .as_ref()
        .map(|m| m.org_units.clone())
        .unwrap_or_default();
    units.extend(linked_org_units(state));
    units
}

/// The county pull in JSON: the aggregates, or one of the DHIS2 documents
/// `format` asks for.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum DailyPull {
    Aggregates(DailyAggregates),
    Dhis2DataValueSet(export::Dhis2DataValueSet),
    Dhis2CompleteRegistrations(export::Dhis2CompleteRegistrations),
}

/// Each zone's DHIS2 org unit as linked through the API, from the live
/// directory: a link says where the county files a zone's figures now, so
/// a pull as of an earlier time files them there too (its read models hold
/// figures only).
fn linked_org_units(state: &AppState) -> std::collections::BTreeMap<Uuid, String> {
    state.projector.read(|m| {
        m.directory
            .zones
            .after(0, None)
            .filter_map(|entry| {
                let unit = entry.state.dhis2_org_unit.as_ref()?;
                Some((entry.id, unit.to_string()))
            })
            .collect()
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DailyQuery {
    /// One day; or use `from` and `to`. Yesterday when none is given.
    pub date: Option<NaiveDate>,
    pub from: Option<NaiveDate>,
    /// Inclusive; at most 366 days after `from`.
    pub to: Option<NaiveDate>,
    /// `json` (default), `csv` (a row per zone and day), `dhis2` (a
    /// document for DHIS2's `POST /api/dataValueSets`) or
    /// `dhis2-completions` (one for `POST /api/completeDataSetRegistrations`).
    /// Without it, `Accept: text/csv` asks for the CSV form.
    #[param(inline)]
    pub format: Option<ExportFormat>,
    /// The CSV starts with a UTF-8 byte-order mark (default true), so
    /// Excel on a Chinese-locale Windows reads the zone names as written;
    /// `false` omits it.
    pub bom: Option<bool>,
    /// DHIS2 forms: also send the recorded figures of days a zone did not
    /// report. Default false: DHIS2 gets only what zone leaders attested.
    pub include_unattested: Option<bool>,
    /// Only this zone's rows.
    pub zone_id: Option<Uuid>,
    /// A log position or RFC 3339 instant: the aggregates as they stood then.
    pub as_of: Option<String>,
    /// Wait (up to 2 s) until the projections reflect this log position.
    #[serde(default, deserialize_with = "crate::extract::within_i64")]
    pub min_position: Option<u64>,
}

impl DailyQuery {
    fn span(&self, today: NaiveDate) -> Result<(NaiveDate, NaiveDate), ApiError> {
        let (from, to) = match (self.date, self.from, self.to) {
            (Some(date), None, None) => (date, date),
            (None, Some(from), Some(to)) => (from, to),
            (None, None, None) => {
                let yesterday = today.pred_opt().unwrap_or(today);
                (yesterday, yesterday)
            }
            (Some(_), _, _) => {
                return Err(ApiError::field("date", "give either date or from and to"))
            }
            (None, None, Some(_)) => return Err(ApiError::field("from", "is required with to")),
            (None, Some(_), None) => return Err(ApiError::field("to", "is required with from")),
        };
        if to < from {
            return Err(ApiError::field("to", "must not be before from"));
        }
        if (to - from).num_days() >= MAX_DAYS {
            return Err(ApiError::field(
                "to",
                format!("at most {MAX_DAYS} days in one pull"),
            ));
        }
        Ok((from, to))
    }
}

/// The county pull.
///
/// Per zone and day the figures and the report state, the township's total per
/// day, and reporting completeness (zones expected, submitted, on time; the
/// reporting rate). `format=csv` gives one row per zone and day under a header
/// of stable column names; `format=dhis2` gives DHIS2 data values (period
/// `yyyyMMdd`) through the server's mapping file, with a complete registration
/// per submitted report.
#[utoipa::path(
    tag = "dashboards",
    params(DailyQuery),
    responses(
        (status = 200, description = "The daily aggregates: JSON (`DailyAggregates`); with `format=csv` or `Accept: text/csv` the CSV; with `format=dhis2` a `Dhis2DataValueSet`, with `format=dhis2-completions` a `Dhis2CompleteRegistrations` (both `application/json`)",
            content(
                (DailyPull = "application/json"),
                (String = "text/csv", example = json!("\u{feff}date,zone_id,zone_name,report_state,submitted,zero_report,late,amended,revision,first_submitted_at,returnees_registered\n2020-02-01,0190a3c2-6f1e-7c1a-9d2b-4f5e6a7b8c9d,一片区,submitted,true,false,false,false,1,2020-02-01T10:00:00Z,3\n")),
            ),
            headers(("Content-Disposition" = String, description = "For the CSV: `attachment` with a file name naming the days"))),
        (status = 409, description = "A DHIS2 form the server cannot make: `dhis2_not_configured` (no mapping), `dhis2_zone_unmapped` (a zone with something to send has no org unit), `dhis2_org_unit_shared` (two zones under one org unit)", body = crate::problem::Problem, content_type = "application/problem+json"),
        ReadErrors
    )
)]
#[get("/reports/daily")]
async fn daily_reports(
    caller: Authorized<Figures>,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q: DailyQuery = query(&req)?;
    let (aggregates, freshness) = read_models(
        &state,
        caller.token_id,
        q.as_of.as_deref(),
        q.min_position,
        |m, clock| {
            let (from, to) = q.span(clock.today)?;
            let mut aggregates = reading(&state, clock).daily(&m.board, from, to);
            // A zone worker's pull holds its own zones' rows (and the
            // township's totals, which name no one).
            aggregates.rows.retain(|r| {
                caller.sees_zone(r.zone_id) && q.zone_id.is_none_or(|z| r.zone_id == z)
            });
            Ok::<_, ApiError>(aggregates)
        },
    )
    .await?;
    let aggregates = aggregates?;
    let mut response = HttpResponse::Ok();
    freshness.headers(&mut response);
    response.insert_header((header::VARY, "Accept"));
    let format = q.format.unwrap_or_else(|| {
        let wants_csv = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|a| a.to_str().ok())
            .is_some_and(|a| a.split(',').any(|t| t.trim().starts_with("text/csv")));
        if wants_csv {
            ExportFormat::Csv
        } else {
            ExportFormat::Json
        }
    });
    match format {
        ExportFormat::Json => Ok(response.json(DailyPull::Aggregates(aggregates))),
        ExportFormat::Csv => Ok(response
            .content_type("text/csv; charset=utf-8")
            .insert_header((
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"fangkong-daily-{}-{}.csv\"",
                    aggregates.from, aggregates.to
                ),
            ))
            .body(if q.bom.unwrap_or(true) {
                format!("\u{feff}{}", export::csv(&aggregates))
            } else {
                export::csv(&aggregates)
            })),
        ExportFormat::Dhis2 | ExportFormat::Dhis2Completions => {
            let mapping = state
                .settings
                .dhis2
                .as_ref()
                .ok_or_else(|| ApiError::Unmet {
                    code: "dhis2_not_configured",
                    detail: "this server has no DHIS2 mapping (start it with --dhis2-mapping FILE)"
                        .into(),
                })?;
            let linked = linked_org_units(&state);
            let out = export::dhis2(
                &aggregates,
                mapping,
                state.projector.township(),
                &linked,
                q.include_unattested.unwrap_or(false),
            )
            .map_err(|e| ApiError::Unmet {
                code: match e {
                    export::MappingError::OrgUnitShared { .. } => "dhis2_org_unit_shared",
                    _ => "dhis2_zone_unmapped",
                },
                detail: e.to_string(),
            })?;
            Ok(response.json(match format {
                ExportFormat::Dhis2 => DailyPull::Dhis2DataValueSet(out.values),
                _ => DailyPull::Dhis2CompleteRegistrations(out.completions),
            }))
        }
    }
}

/// A ticket for a browser's EventSource on `/v1/dashboard/live`.
///
/// As `POST /v1/events/live/tickets`, for the figures' feed, which every role may open: the
/// ticket stands for the calling token, must open the feed within a minute, holds one
/// connection at a time, and reopens it only as a browser resumes it (`Last-Event-ID`) within
/// 12 hours. It opens no other feed. Tickets live in the instance that issued them.
#[utoipa::path(
    tag = "dashboards",
    responses(
        (status = 201, description = "Issued", body = crate::tickets::LiveTicket, headers(("Location" = String, description = "The feed the ticket opens"))),
        ReadErrors
    )
)]
#[post("/dashboard/live/tickets")]
async fn live_figures_ticket(
    caller: Authorized<Figures>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    crate::tickets::issued(
        &state.tickets,
        caller.token_id,
        crate::tickets::Feed::Figures,
    )
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LiveFiguresQuery {
    /// A ticket from `POST /v1/dashboard/live/tickets`, for a client that
    /// cannot send `Authorization` (a browser's `EventSource`).
    pub ticket: Option<String>,
    /// Seconds between heartbeat comments while nothing happens (1-60,
    /// default 5: a client gone without closing its connection is noticed,
    /// and its place among the token's feeds freed, when a write fails).
    pub heartbeat_seconds: Option<u64>,
}

/// One frame's `data` on the figures' feed: the position the figures now
/// reflect. The frames are written from this type.
#[derive(Debug, Serialize)]
pub struct FiguresMoved {
    pub position: u64,
}

/// The figures' live feed, as Server-Sent Events.
///
/// A frame `event: position` whenever the dashboards' figures move on, naming the log position
/// they now reflect (the first at once, for the position when the feed opened); read the
/// dashboard again with `min_position` set to it. Changes closer together than a quarter of a
/// second are sent as one. It carries positions only, never figures or personal data, so every
/// role may open it: a browser with a ticket from `POST /v1/dashboard/live/tickets`. Heartbeat
/// comments keep an idle connection open; the feed ends when its token is revoked or the
/// server shuts down, and the browser reconnects.
#[utoipa::path(
    tag = "dashboards",
    params(LiveFiguresQuery, ("Last-Event-ID" = Option<u64>, Header, description = "Ignored: the first frame is always the current position")),
    responses((status = 200, description = "Server-Sent Events (text/event-stream), without end: `retry: 2000`, then frames `id: <position>`, `event: position`, `data: {\"position\": <position>}`; comment lines (`: heartbeat`) while nothing moves.", content_type = "text/event-stream", body = String,
        example = json!("retry: 2000\n\nid: 4812\nevent: position\ndata: {\"position\":4812}\n\n: heartbeat\n\n")), ReadErrors)
)]
#[get("/dashboard/live")]
async fn live_figures(
    FeedCaller { caller, ticket, .. }: FeedCaller<Figures, FiguresFeed>,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q: LiveFiguresQuery = query(&req)?;
    let heartbeat = crate::feeds::heartbeat(q.heartbeat_seconds, 5)?;
    state.figures_current()?;
    let lease = FeedLease::take(&state, caller.token_id, ticket)?;
    let mut positions = state.projector.watch_position();
    // The first frame is the position now.
    positions.mark_changed();
    let feed = FiguresFeedState {
        lease,
        last_sent: tokio::time::Instant::now(),
        positions,
        pending: Some(web::Bytes::from(format!(
            "retry: {}\n\n",
            crate::feeds::RECONNECT_MS
        ))),
        heartbeat,
    };
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(futures::stream::unfold(feed, FiguresFeedState::next)))
}

struct FiguresFeedState {
    lease: FeedLease,
    last_sent: tokio::time::Instant,
    positions: tokio::sync::watch::Receiver<u64>,
    pending: Option<web::Bytes>,
    heartbeat: Duration,
}

/// Changes of the figures closer together than this go out as one frame.
const COALESCE: Duration = Duration::from_millis(250);

impl FiguresFeedState {
    async fn next(mut self) -> Option<(Result<web::Bytes, actix_web::Error>, Self)> {
        loop {
            if !self.lease.holds() {
                return None;
            }
            if let Some(bytes) = self.pending.take() {
                self.last_sent = tokio::time::Instant::now();
                return Some((Ok(bytes), self));
            }
            if self.positions.has_changed().unwrap_or(false) {
                let position = *self.positions.borrow_and_update();
                let data = serde_json::to_string(&FiguresMoved { position })
                    .unwrap_or_else(|_| "{}".into());
                self.pending = Some(web::Bytes::from(format!(
                    "id: {position}\nevent: position\ndata: {data}\n\n"
                )));
                continue;
            }
            let heartbeat_at = self.last_sent + self.heartbeat;
            tokio::select! {
                changed = self.positions.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                    // Let a burst of writes settle into one frame; the
                    // value is read after the pause, so none is missed.
                    self.positions.mark_changed();
                    tokio::time::sleep(COALESCE).await;
                }
                _ = self.lease.stopping() => return None,
                _ = tokio::time::sleep_until(heartbeat_at) => {
                    self.pending = Some(web::Bytes::from_static(b": heartbeat\n\n"));
                }
                _ = tokio::time::sleep(FeedLease::REVOCATION_CHECK) => {}
            }
        }
    }
}
