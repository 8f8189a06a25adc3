//! `POST /v1/batches`: many commands in one call, each with its own
//! idempotency key and its own answer, in order. A field app that was
//! offline for a day replays its queue through it; a failing command does not
//! fail the others, and replaying the whole batch again appends nothing.

use actix_web::{post, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use std::sync::OnceLock;

use actix_web::dev::{Path, ResourceDef};

use super::{activity, banquets, checkpoints, reports, returnees, venues, zones, WriteErrors};
use crate::access::{Authorized, Field, Policy};
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

/// Run many commands, in order, each on its own.
///
/// Answered 207 with one result per command. Each command is held to the policy
/// of the route it names, and answered exactly as if the commands before it had
/// been sent alone and answered first: a later command sees what earlier ones
/// recorded. One refusal never undoes its neighbours, and the batch is not a
/// transaction: what a command recorded stands whatever later ones do. Sent
/// again with the same keys, the batch appends nothing and each command gets its
/// first answer (`replayed`).
#[utoipa::path(
    tag = "batches",
    request_body = BatchBody,
    responses((status = 207, description = "One result per command, in order", body = BatchAnswer), WriteErrors)
)]
#[post("/batches")]
async fn run_batch(
    caller: Authorized<Field>,
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
    let request_headers = WriteHeaders::parse(&req, caller)?;
    // Each item carries its own key and version; one on the batch itself
    // would promise a safety it does not give.
    for (header, given) in [
        ("Idempotency-Key", request_headers.idempotency_key.is_some()),
        ("If-Match", req.headers().contains_key("If-Match")),
    ] {
        if given {
            return Err(ApiError::field(
                header,
                "a batch takes no such header: give each command its own `idempotency_key` and `if_match`",
            ));
        }
    }
    let results = run_commands(&state, &request_headers, &commands).await;
    Ok(
        HttpResponse::build(actix_web::http::StatusCode::MULTI_STATUS)
            .json(BatchAnswer { results }),
    )
}

/// Runs commands in order, each answered as if sent on its own after the
/// ones before it had their answers. Each is decided on the state the ones
/// before it leave and queued for the store without waiting for their
/// commits, so the batch costs a few group commits instead of one commit per
/// command (see [`fangkong_app::Pipeline`]).
pub async fn run_commands<B: Policy>(
    state: &AppState,
    request_headers: &WriteHeaders<B>,
    commands: &[BatchCommand],
) -> Vec<BatchResult> {
    let pipeline = fangkong_app::Pipeline::new(commands.len());
    let outcomes =
        futures::future::join_all(commands.iter().enumerate().map(|(i, command)| {
            pipeline.run(i, move || dispatch(state, request_headers, command))
        }))
        .await;
    let mut results = Vec::with_capacity(commands.len());
    for outcome in outcomes {
        results.push(match outcome {
            Ok((written, created)) => BatchResult {
                status: if created && written.created() {
                    201
                } else {
                    200
                },
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

/// A write route as the contract declares it.
struct WriteRoute {
    method: String,
    pattern: ResourceDef,
    operation: String,
}

/// The write routes, read from the contract the route declarations
/// registered, so a batch item finds its route as the router would, with
/// no table of paths of its own.
fn write_routes() -> &'static [WriteRoute] {
    static ROUTES: OnceLock<Vec<WriteRoute>> = OnceLock::new();
    ROUTES.get_or_init(|| {
        let mut routes = Vec::new();
        for (path, item) in crate::openapi().paths.paths {
            for (method, op) in [("POST", &item.post), ("PUT", &item.put)] {
                if let Some(operation) = op.as_ref().and_then(|o| o.operation_id.clone()) {
                    routes.push(WriteRoute {
                        method: method.to_owned(),
                        pattern: ResourceDef::new(path.as_str()),
                        operation,
                    });
                }
            }
        }
        routes
    })
}

/// The operation a batch item names, and the values of its path's variables.
fn resolve(method: &str, path: &str) -> Option<(&'static str, Path<String>)> {
    write_routes().iter().find_map(|route| {
        let mut matched = Path::new(path.to_owned());
        (route.method.eq_ignore_ascii_case(method)
            && route.pattern.capture_match_info(&mut matched))
        .then_some((route.operation.as_str(), matched))
    })
}

/// Runs one command through the command function of the route it names.
/// Each command function declares its policy in the type of the headers it
/// takes, so `item!()` holds the caller to that policy, whatever the batch
/// was admitted under.
async fn dispatch<B: Policy>(
    state: &AppState,
    batch: &WriteHeaders<B>,
    c: &BatchCommand,
) -> Result<(Written, bool), ApiError> {
    let not_routed = || {
        ApiError::field(
            "path",
            format!("{} {} is not a write route of this API", c.method, c.path),
        )
    };
    let (operation, params) = resolve(&c.method, &c.path).ok_or_else(not_routed)?;
    let var = |name: &str| params.get(name).unwrap_or_default().to_owned();
    let b = &c.body;
    macro_rules! item {
        () => {
            &WriteHeaders::item(batch, c.idempotency_key.clone(), c.if_match)?
        };
    }
    let done = |w: Written| Ok((w, false));
    let created = |w: Written| Ok((w, true));
    let (z, r, k, v, q) = (
        var("zone_id"),
        var("returnee_id"),
        var("checkpoint_id"),
        var("venue_id"),
        var("banquet_id"),
    );
    match operation {
        "establish_zone" => created(zones::establish(state, item!(), body(b)?).await?),
        "assign_leader" => done(zones::leader(state, item!(), &z, body(b)?).await?),
        "link_dhis2_org_unit" => done(zones::org_unit(state, item!(), &z, body(b)?).await?),
        "add_village" => done(zones::village(state, item!(), &z, body(b)?).await?),
        "add_grid" => done(zones::grid(state, item!(), &z, body(b)?).await?),
        "disperse_gathering" => done(activity::gathering(state, item!(), &z, body(b)?).await?),
        "record_publicity" => done(activity::publicity(state, item!(), &z, body(b)?).await?),
        "complete_patrol" => done(activity::patrol(state, item!(), &z, body(b)?).await?),
        "submit_report" => done(reports::submit(state, item!(), &z, &var("date"), body(b)?).await?),
        "record_staff_check" => done(activity::staff_check(state, item!(), body(b)?).await?),
        "register_returnee" => created(returnees::register(state, item!(), body(b)?).await?),
        "screen" => done(returnees::screening(state, item!(), &r, body(b)?).await?),
        "assign_team" => done(returnees::team(state, item!(), &r, body(b)?).await?),
        "start_quarantine" => done(returnees::quarantine(state, item!(), &r, body(b)?).await?),
        "record_health_check" => done(returnees::health_check(state, item!(), &r, body(b)?).await?),
        "report_abnormal_condition" => {
            done(returnees::abnormal(state, item!(), &r, body(b)?).await?)
        }
        "refer" => done(returnees::referral(state, item!(), &r, body(b)?).await?),
        "change_period" => done(returnees::extension(state, item!(), &r, body(b)?).await?),
        "record_exposure" => done(returnees::exposure(state, item!(), &r, body(b)?).await?),
        "end_quarantine" => done(returnees::end(state, item!(), &r, body(b)?).await?),
        "establish_checkpoint" => created(checkpoints::establish(state, item!(), body(b)?).await?),
        "record_crossing" => done(checkpoints::crossing(state, item!(), &k, body(b)?).await?),
        "register_venue" => created(venues::register(state, item!(), body(b)?).await?),
        "sign_commitment" => done(venues::commitment(state, item!(), &v, body(b)?).await?),
        "close_venue" => done(venues::closure(state, item!(), &v, body(b)?).await?),
        "reopen_venue" => done(venues::reopening(state, item!(), &v, body(b)?).await?),
        "record_enforcement" => done(venues::enforcement(state, item!(), &v, body(b)?).await?),
        "report_banquet" => created(banquets::report(state, item!(), body(b)?).await?),
        "postpone" => done(banquets::postponement(state, item!(), &q, body(b)?).await?),
        "cancel" => done(banquets::cancellation(state, item!(), &q, body(b)?).await?),
        "scale_down" => done(banquets::scale(state, item!(), &q, body(b)?).await?),
        // Tokens are never issued in a batch (a replay would have to show
        // the secret again), nor batches nested.
        _ => Err(not_routed()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_items_find_their_route_as_the_router_would() {
        let (op, params) = resolve(
            "post",
            "/v1/returnees/0190f5a2-0000-7000-8000-00000000000a/health-checks",
        )
        .expect("a write route");
        assert_eq!(op, "record_health_check");
        assert_eq!(
            params.get("returnee_id"),
            Some("0190f5a2-0000-7000-8000-00000000000a")
        );
        assert_eq!(
            resolve("PUT", "/v1/zones/z/daily-reports/2020-02-01").map(|r| r.0),
            Some("submit_report")
        );
        for refused in [
            ("POST", "/v1/%74okens"),
            ("POST", "/v1/tokens/"),
            ("POST", "/v1//returnees"),
            ("POST", "/v1/./returnees"),
            ("GET", "/v1/returnees"),
            ("POST", "/v1/returnees/x/health-checks/"),
        ] {
            assert_eq!(
                resolve(refused.0, refused.1).map(|r| r.0),
                None,
                "{refused:?}"
            );
        }
    }
}
