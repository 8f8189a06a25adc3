//! API tokens (admin): issue one (shown once), list them, revoke one. Each
//! change is an event of the token's own stream.

use std::time::Duration;

use actix_web::{delete, get, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::{path_id, ReadErrors, WriteErrors};
use crate::access::{Admin, Audit, Authorized, Field, Policy};
use crate::extract::{Json, WriteHeaders};
use crate::problem::ApiError;
use crate::write::Written;
use crate::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create_token)
        .service(list_tokens)
        .service(revoke_token)
        .service(calling_token);
}

/// A zone a token grants, with its name.
#[derive(Debug, Serialize, ToSchema)]
pub struct GrantedZone {
    pub zone_id: Uuid,
    /// Absent for a zone the figures do not know yet.
    pub name: Option<String>,
}

/// The calling token as the service sees it, so a front end shows only
/// what the token may use.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallerView {
    pub token_id: Uuid,
    pub name: String,
    #[schema(schema_with = super::schemas::role)]
    pub role: String,
    /// A zone worker's zones; empty for the other roles, which see the
    /// whole township.
    pub zones: Vec<GrantedZone>,
    /// Names, ID numbers, phones and addresses in full (in the zones it
    /// sees); masked or left out otherwise.
    pub sees_personal_data: bool,
    /// Field work and its lists: returnees, the roster, checkpoints,
    /// venues, banquets, daily reports.
    pub field_work: bool,
    /// The event log, its live feed, verification and proofs.
    pub audit: bool,
    /// Tokens, zones, leaders.
    pub administration: bool,
}

/// The calling token: its role, its zones, and what it may use.
///
/// Every role may ask. A front end shows its user what the token grants and hides what it would
/// be refused; the server still decides every request on its own.
#[utoipa::path(tag = "tokens", responses((status = 200, body = CallerView), ReadErrors))]
#[get("/caller")]
async fn calling_token(
    caller: Authorized<crate::access::Figures>,
    state: web::Data<AppState>,
) -> HttpResponse {
    use fangkong_domain::access::Role;
    let zones = state.projector.read(|m| {
        caller
            .zones
            .iter()
            .map(|id| GrantedZone {
                zone_id: *id,
                name: m.board.zones().get(id).map(|z| z.name.clone()),
            })
            .collect()
    });
    let role = caller.role;
    // Cached by nobody: a revoked token must not keep its view in a cache.
    HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(CallerView {
            token_id: caller.token_id,
            name: caller.name.clone(),
            role: role.code().to_owned(),
            zones,
            sees_personal_data: matches!(role, Role::Admin | Role::ZoneWorker),
            // From the policies the routes declare, so the two cannot drift.
            field_work: Field::ROLES.contains(&role),
            audit: Audit::ROLES.contains(&role),
            administration: Admin::ROLES.contains(&role),
        })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "一片区 村医王五", "role": "zone_worker", "zones": ["0190f5a2-0000-7000-8000-000000000001"]}))]
pub struct IssueToken {
    /// Who or what holds it (a person, a front end, a county system).
    pub name: String,
    /// `admin`, `zone_worker`, `county` or `auditor`.
    #[schema(schema_with = super::schemas::role)]
    pub role: String,
    /// A zone worker's zones (at least one); none for the other roles.
    #[serde(default)]
    pub zones: Vec<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedToken {
    pub token_id: Uuid,
    /// The bearer token. Shown this once: only its SHA-256 is kept.
    pub token: String,
    pub name: String,
    #[schema(schema_with = super::schemas::role)]
    pub role: String,
    pub zones: Vec<Uuid>,
    pub position: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    pub token_id: Uuid,
    pub name: String,
    #[schema(schema_with = super::schemas::role)]
    pub role: String,
    pub zones: Vec<Uuid>,
    pub issued_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    pub items: Vec<TokenView>,
}

/// Issue a token. The answer holds the bearer token; it is never shown again.
///
/// Mints a token for a person, a front end or a county system with one role: `admin`,
/// `zone_worker` (for the zones listed, which must exist), `county` or `auditor`. Admin only.
/// Only the token's SHA-256 is kept, so issuing is never idempotent: `Idempotency-Key` and
/// `If-Match` are ignored and a retry issues another token. Refused with 409 when the rule it
/// breaks is `token_zones_mismatch`.
#[utoipa::path(
    tag = "tokens",
    request_body = IssueToken,
    responses((status = 201, description = "Issued", body = IssuedToken, headers(("Location" = String, description = "Where the token is revoked"))), WriteErrors)
)]
#[post("/tokens")]
async fn create_token(
    caller: Authorized<Admin>,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Json<IssueToken>,
) -> Result<HttpResponse, ApiError> {
    let headers = WriteHeaders::parse(&req, caller)?;
    let b = body.value;
    let role = fangkong_app::tokens::parse_role(&b.role)?;
    let (secret, written) = state
        .commands
        .issue_token(&headers.envelope([0; 32], None), &b.name, role, &b.zones)
        .await?;
    // The token works on this instance from the answer on: the registry
    // that authenticates is the projection of the log, so wait for it.
    state
        .projector
        .wait_for(written.position, Duration::from_secs(5))
        .await
        .map_err(|_| ApiError::Unavailable)?;
    Ok(HttpResponse::Created()
        // Where it is revoked (`DELETE`); a token is never read back.
        .insert_header((
            actix_web::http::header::LOCATION,
            format!("/v1/tokens/{}", secret.token_id),
        ))
        .json(IssuedToken {
            token_id: secret.token_id,
            token: secret.token,
            name: b.name,
            role: role.code().into(),
            zones: b.zones,
            position: written.position,
        }))
}

/// Every token issued, revoked ones included; never their secrets.
///
/// Each token's id, holder, role, zones, and when it was issued and revoked; neither the token
/// nor its hash is shown. Admin only. Not paged; it waits up to 2 s so that a token just issued
/// or revoked shows.
#[utoipa::path(
    tag = "tokens",
    responses((status = 200, description = "The tokens", body = TokenList), ReadErrors)
)]
#[get("/tokens")]
async fn list_tokens(
    _caller: Authorized<Admin>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let head = state.store().head().await?.position;
    let _ = state.projector.wait_for(head, Duration::from_secs(2)).await;
    let items = state.projector.read(|m| {
        m.tokens
            .all()
            .map(|t| TokenView {
                token_id: t.token_id,
                name: t.name.clone(),
                role: t.role.code().into(),
                zones: t.zones.iter().copied().collect(),
                issued_at: t.issued_at,
                revoked_at: t.revoked_at,
            })
            .collect()
    });
    Ok(HttpResponse::Ok().json(TokenList { items }))
}

/// Revoke a token: from the answer on, this service refuses it.
///
/// The revocation is an event of the token's stream: requests with the token are answered 401,
/// and a live event feed it opened ends. Admin only; an unknown token answers 404.
/// `Idempotency-Key` makes a retry safe; `If-Match` with the token's version makes it
/// conditional (412). Refused with 409 when the rule it breaks is `token_already_revoked`.
#[utoipa::path(
    tag = "tokens",
    params(("token_id" = Uuid, Path)),
    responses((status = 200, description = "Revoked", body = Written), WriteErrors)
)]
#[delete("/tokens/{token_id}")]
async fn revoke_token(
    caller: Authorized<Admin>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let token_id = path_id(&path, "token")?;
    let headers = WriteHeaders::parse(&req, caller)?;
    let envelope = headers.envelope([0; 32], None);
    let outcome = state.commands.revoke_token(&envelope, token_id).await?;
    let written: Written =
        super::shown_write(&state, &headers.caller, "token.revoke", outcome).await?;
    // The revocation holds in this process before the answer goes out.
    state
        .projector
        .wait_for(written.position, Duration::from_secs(5))
        .await
        .map_err(|_| ApiError::Unavailable)?;
    Ok(super::written(written, None))
}
