//! The quarantine roster (一人一户一专班): who is in home quarantine, day n of
//! the period, today's visit, missed visits.

use crate::personal::{open, Shown};
use actix_web::{get, web, HttpRequest, HttpResponse};
use chrono::NaiveDate;
use fangkong_domain::returnee::PersonalData;
use fangkong_domain::ReturneeId;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::{query, ReadErrors};
use crate::access::{Authorized, Field};
use crate::problem::ApiError;
use crate::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(quarantine_roster);
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RosterQuery {
    pub zone_id: Option<Uuid>,
    /// A log position or RFC 3339 instant: the roster as it stood then.
    pub as_of: Option<String>,
    /// Wait (up to 2 s) until the roster reflects this log position: pass the
    /// `position` of your last write to read it back.
    #[serde(default, deserialize_with = "crate::extract::within_i64")]
    pub min_position: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RosterItem {
    pub returnee_id: Uuid,
    #[schema(schema_with = fangkong_domain::personal::shown_schema::<String>)]
    pub name: Shown<String>,
    pub zone_id: Uuid,
    pub village_id: Uuid,
    pub grid_id: Uuid,
    /// high, medium, low
    pub origin_risk: String,
    pub started_on: NaiveDate,
    /// Day 1 of the current count (moves with a new exposure).
    pub count_start: NaiveDate,
    /// Day n of the period today.
    pub day_of_period: Option<u32>,
    pub planned_end: NaiveDate,
    pub visit_due_today: bool,
    pub visits_done: usize,
    /// Past days of the period without a visit: overdue.
    pub missed_days: Vec<NaiveDate>,
    pub last_temperature: Option<f64>,
    /// An abnormal finding awaits referral.
    pub abnormal_pending: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Roster {
    /// Today in the township's time zone.
    pub date: NaiveDate,
    /// The log position the roster reflects.
    pub position: u64,
    /// Most missed visits first.
    pub items: Vec<RosterItem>,
}

/// Everyone in home quarantine, most overdue first.
///
/// `X-Projection-Position` says which log position the answer reflects; when
/// `min_position` was not reached in time the answer is what there is, with
/// `X-Projection-Wanted` naming the position asked for.
#[utoipa::path(
    tag = "returnees",
    params(RosterQuery),
    responses((status = 200, description = "The roster", body = Roster), ReadErrors)
)]
#[get("/quarantine/roster")]
async fn quarantine_roster(
    caller: Authorized<Field>,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q: RosterQuery = query(&req)?;
    let (roster, freshness) = super::dashboards::read_models(
        &state,
        caller.token_id,
        q.as_of.as_deref(),
        q.min_position,
        |m, clock| {
            let today = clock.today;
            let mut items: Vec<RosterItem> = m
                .roster
                .entries()
                .filter(|e| {
                    caller.sees_zone(e.placement.zone_id)
                        && q.zone_id.is_none_or(|z| e.placement.zone_id == z)
                })
                .map(|e| RosterItem {
                    returnee_id: e.returnee_id,
                    name: open(
                        state.vault(),
                        &ReturneeId::from_uuid(e.returnee_id).stream_id(),
                        "ReturneeRegistered",
                        &["personal"],
                        &e.placement.personal,
                    )
                    .map(|p: PersonalData| p.name.to_string()),
                    zone_id: e.placement.zone_id,
                    village_id: e.placement.village_id,
                    grid_id: e.placement.grid_id,
                    origin_risk: super::code_of(e.placement.risk),
                    started_on: e.started_on,
                    count_start: e.schedule.count_start,
                    day_of_period: e.schedule.day_of_period(today),
                    planned_end: e.schedule.planned_end(),
                    visit_due_today: e.schedule.visit_due_today(&e.visits, today),
                    visits_done: e.visits.len(),
                    missed_days: e.schedule.missed_days(&e.visits, today),
                    last_temperature: e.last_temperature.map(|t| t.celsius()),
                    abnormal_pending: e.abnormal_pending,
                })
                .collect();
            items.sort_by_key(|item| std::cmp::Reverse(item.missed_days.len()));
            Roster {
                date: today,
                position: m.position(),
                items,
            }
        },
    )
    .await?;
    state
        .disclosures
        .record(
            &caller,
            "GET /v1/quarantine/roster",
            roster
                .items
                .iter()
                .filter(|item| item.name.is_clear())
                .map(|item| ReturneeId::from_uuid(item.returnee_id).stream_id()),
        )
        .await?;
    let mut response = HttpResponse::Ok();
    freshness.headers(&mut response);
    Ok(response.json(roster))
}
