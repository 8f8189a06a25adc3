//! `POST /v1/batches`: many commands in one call, each with its own
//! idempotency key and its own answer, in order. A field app that was
//! offline for a day replays its queue through it; a failing command does not
//! fail the others, and replaying the whole batch again appends nothing.

use actix_web::{post, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::{activity, banquets, checkpoints, reports, returnees, venues, zones, WriteErrors};
use crate::extract::{canonical_hash, from_value, Json, WriteHeaders};
use crate::problem::{ApiError, Problem};
use crate::write::Written;
use crate::AppState;

/// Most commands one batch may carry.
pub const MAX_BATCH: usize = 1_000;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(run_batch);
}

/// One command, as it would be sent on its own.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchCommand {
    /// POST or PUT.
    pub method: String,
    /// The route, e.g. `/v1/returnees/{id}/health-checks` with the id filled in.
    pub path: String,
    /// Makes this command safe to replay: strongly advised for offline queues.
    pub idempotency_key: Option<String>,
    /// The expected stream version, as `If-Match` would give it.
    #[serde(default, deserialize_with = "crate::extract::within_i64")]
    pub if_match: Option<u64>,
    pub body: serde_json::Value,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"commands": [
    {"method": "POST", "path": "/v1/returnees/0190f5a2-0000-7000-8000-00000000000a/health-checks",
     "idempotency_key": "device-7:1042", "body": {"temperature": 36.5, "occurred_at": "2020-02-03T08:10:00+08:00"}},
    {"method": "POST", "path": "/v1/zones/0190f5a2-0000-7000-8000-000000000001/publicity",
     "idempotency_key": "device-7:1043", "body": {"channel": "leaflet", "quantity": 200}}
]}))]
pub struct BatchBody {
    pub commands: Vec<BatchCommand>,
}

/// The answer to one command of a batch: `result` on success, `problem`
/// otherwise.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResult {
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Written>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<Problem>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchAnswer {
    pub results: Vec<BatchResult>,
}

/// Run many commands, in order, each on its own: answered 207 with one
/// result per command.
#[utoipa::path(
    tag = "batches",
    request_body = BatchBody,
    responses((status = 207, description = "One result per command, in order", body = BatchAnswer), WriteErrors)
)]
#[post("/batches")]
async fn run_batch(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Json<BatchBody>,
) -> Result<HttpResponse, ApiError> {
    let commands = body.value.commands;
    if commands.len() > MAX_BATCH {
        return Err(ApiError::field(
            "commands",
            format!("at most {MAX_BATCH} commands per batch"),
        ));
    }
    let request_headers = WriteHeaders::parse(&req)?;
    let results = run_commands(&state, &request_headers, &commands).await;
    Ok(
        HttpResponse::build(actix_web::http::StatusCode::MULTI_STATUS)
            .json(BatchAnswer { results }),
    )
}

/// Runs commands in order, each on its own, as separate requests would.
pub async fn run_commands(
    state: &AppState,
    request_headers: &WriteHeaders,
    commands: &[BatchCommand],
) -> Vec<BatchResult> {
    let mut results = Vec::with_capacity(commands.len());
    for command in commands {
        let headers = WriteHeaders {
            idempotency_key: command.idempotency_key.clone(),
            if_match: command.if_match,
            correlation_id: request_headers.correlation_id.clone(),
            request_id: request_headers.request_id.clone(),
            caller: request_headers.caller.clone(),
        };
        let outcome = dispatch(state, &headers, command).await;
        results.push(match outcome {
            Ok((written, created)) => BatchResult {
                status: if created { 201 } else { 200 },
                result: Some(written),
                problem: None,
            },
            Err(error) => {
                let problem = error.problem();
                BatchResult {
                    status: problem.status,
                    result: None,
                    problem: Some(problem),
                }
            }
        });
    }
    results
}

fn body<T: serde::de::DeserializeOwned>(value: &serde_json::Value) -> Result<Json<T>, ApiError> {
    Ok(Json {
        canonical_hash: canonical_hash(value),
        value: from_value(value.clone())?,
    })
}

/// Routes one command to the handler its path names.
async fn dispatch(
    state: &AppState,
    h: &WriteHeaders,
    c: &BatchCommand,
) -> Result<(Written, bool), ApiError> {
    let path = c.path.trim_end_matches('/');
    let segments: Vec<&str> = path.split('/').collect();
    let b = &c.body;
    let method = c.method.to_ascii_uppercase();
    let not_routed = || {
        ApiError::field(
            "path",
            format!("{} {} is not a write route of this API", c.method, c.path),
        )
    };
    // Each command is held to the rule of its own route.
    if let Some(caller) = &h.caller {
        match crate::access::rule_for_path(&method, path) {
            Some(rule) if rule.admits(caller.role) => {}
            Some(_) => {
                return Err(ApiError::Forbidden(format!(
                    "a {} token cannot {} {}",
                    caller.role.code(),
                    c.method,
                    c.path
                )))
            }
            None => return Err(not_routed()),
        }
    }
    let done = |w: Written| Ok((w, false));
    let created = |w: Written| Ok((w, true));
    match (method.as_str(), &segments[..]) {
        ("POST", ["", "v1", "zones"]) => created(zones::establish(state, h, body(b)?).await?),
        ("PUT", ["", "v1", "zones", z, "leader"]) => {
            done(zones::leader(state, h, z, body(b)?).await?)
        }
        ("POST", ["", "v1", "zones", z, "villages"]) => {
            done(zones::village(state, h, z, body(b)?).await?)
        }
        ("POST", ["", "v1", "zones", z, "grids"]) => {
            done(zones::grid(state, h, z, body(b)?).await?)
        }
        ("POST", ["", "v1", "zones", z, "gathering-dispersals"]) => {
            done(activity::gathering(state, h, z, body(b)?).await?)
        }
        ("POST", ["", "v1", "zones", z, "publicity"]) => {
            done(activity::publicity(state, h, z, body(b)?).await?)
        }
        ("POST", ["", "v1", "zones", z, "patrols"]) => {
            done(activity::patrol(state, h, z, body(b)?).await?)
        }
        ("PUT", ["", "v1", "zones", z, "daily-reports", d]) => {
            done(reports::submit(state, h, z, d, body(b)?).await?)
        }
        ("POST", ["", "v1", "staff-health-checks"]) => {
            done(activity::staff_check(state, h, body(b)?).await?)
        }
        ("POST", ["", "v1", "returnees"]) => {
            created(returnees::register(state, h, body(b)?).await?)
        }
        ("POST", ["", "v1", "returnees", r, "screenings"]) => {
            done(returnees::screening(state, h, r, body(b)?).await?)
        }
        ("PUT", ["", "v1", "returnees", r, "responsibility-team"]) => {
            done(returnees::team(state, h, r, body(b)?).await?)
        }
        ("POST", ["", "v1", "returnees", r, "quarantine"]) => {
            done(returnees::quarantine(state, h, r, body(b)?).await?)
        }
        ("POST", ["", "v1", "returnees", r, "health-checks"]) => {
            done(returnees::health_check(state, h, r, body(b)?).await?)
        }
        ("POST", ["", "v1", "returnees", r, "abnormal-conditions"]) => {
            done(returnees::abnormal(state, h, r, body(b)?).await?)
        }
        ("POST", ["", "v1", "returnees", r, "referrals"]) => {
            done(returnees::referral(state, h, r, body(b)?).await?)
        }
        ("POST", ["", "v1", "returnees", r, "quarantine", "extension"]) => {
            done(returnees::extension(state, h, r, body(b)?).await?)
        }
        ("POST", ["", "v1", "returnees", r, "exposures"]) => {
            done(returnees::exposure(state, h, r, body(b)?).await?)
        }
        ("POST", ["", "v1", "returnees", r, "quarantine", "end"]) => {
            done(returnees::end(state, h, r, body(b)?).await?)
        }
        ("POST", ["", "v1", "checkpoints"]) => {
            created(checkpoints::establish(state, h, body(b)?).await?)
        }
        ("POST", ["", "v1", "checkpoints", k, "crossings"]) => {
            done(checkpoints::crossing(state, h, k, body(b)?).await?)
        }
        ("POST", ["", "v1", "venues"]) => created(venues::register(state, h, body(b)?).await?),
        ("POST", ["", "v1", "venues", v, "commitments"]) => {
            done(venues::commitment(state, h, v, body(b)?).await?)
        }
        ("POST", ["", "v1", "venues", v, "closure"]) => {
            done(venues::closure(state, h, v, body(b)?).await?)
        }
        ("POST", ["", "v1", "venues", v, "reopening"]) => {
            done(venues::reopening(state, h, v, body(b)?).await?)
        }
        ("POST", ["", "v1", "venues", v, "enforcement-actions"]) => {
            done(venues::enforcement(state, h, v, body(b)?).await?)
        }
        ("POST", ["", "v1", "banquets"]) => created(banquets::report(state, h, body(b)?).await?),
        ("POST", ["", "v1", "banquets", q, "postponement"]) => {
            done(banquets::postponement(state, h, q, body(b)?).await?)
        }
        ("POST", ["", "v1", "banquets", q, "cancellation"]) => {
            done(banquets::cancellation(state, h, q, body(b)?).await?)
        }
        ("POST", ["", "v1", "banquets", q, "scale-down"]) => {
            done(banquets::scale(state, h, q, body(b)?).await?)
        }
        _ => Err(not_routed()),
    }
}
