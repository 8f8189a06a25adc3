//! Zones: establish, list, read; leader, villages, grids.

use crate::personal::Shown;
use actix_web::{get, post, put, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use fangkong_domain::zone::{Zone, ZoneCommand};
use fangkong_domain::{Count, Dhis2Uid, GridId, Name, PhoneNumber, VillageId, ZoneId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::{entity, field, optional, path_id, query, run, written, Page, ReadErrors, WriteErrors};
use crate::access::{Admin, Authorized, Caller, Field, Figures};
use crate::extract::{Json, WriteHeaders};
use crate::problem::ApiError;
use crate::write::Written;
use crate::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(establish_zone)
        .service(list_zones)
        .service(get_zone)
        .service(assign_leader)
        .service(link_dhis2_org_unit)
        .service(add_village)
        .service(add_grid);
}

/// Establish a zone (片区).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"zone_id": "0190f5a2-0000-7000-8000-000000000001", "name": "一片区"}))]
pub struct EstablishZone {
    /// Supply it to create offline; the server makes one otherwise.
    pub zone_id: Option<Uuid>,
    pub name: String,
    pub occurred_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"leader": "李明", "phone": "13812345678"}))]
pub struct AssignLeader {
    pub leader: String,
    pub phone: Option<String>,
    pub occurred_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"village_id": "0190f5a2-0000-7000-8000-000000000002", "name": "桥头村"}))]
pub struct AddVillage {
    pub village_id: Option<Uuid>,
    pub name: String,
    pub occurred_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"grid_id": "0190f5a2-0000-7000-8000-000000000003", "village_id": "0190f5a2-0000-7000-8000-000000000002", "name": "一组", "households": 46}))]
pub struct AddGrid {
    pub grid_id: Option<Uuid>,
    pub village_id: Uuid,
    pub name: String,
    pub households: Option<i64>,
    pub occurred_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GridView {
    pub grid_id: Uuid,
    pub name: String,
    pub households: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VillageView {
    pub village_id: Uuid,
    pub name: String,
    pub grids: Vec<GridView>,
}

/// The zone's organisation unit in the county's DHIS2.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"org_unit": "DiszpKrYNg8"}))]
pub struct LinkDhis2OrgUnit {
    /// The org unit's DHIS2 uid (11 letters and digits, the first a letter).
    #[schema(
        pattern = "^[A-Za-z][A-Za-z0-9]{10}$",
        min_length = 11,
        max_length = 11
    )]
    pub org_unit: String,
    pub occurred_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ZoneView {
    pub zone_id: Uuid,
    pub name: String,
    pub leader: Option<String>,
    #[schema(schema_with = fangkong_domain::personal::shown_or_null_schema::<String>)]
    pub leader_phone: Option<Shown<String>>,
    /// Its organisation unit in the county's DHIS2, once linked.
    pub dhis2_org_unit: Option<String>,
    pub villages: Vec<VillageView>,
    pub version: u64,
}

/// The leader's phone is shown in full only to those who see the zone's
/// personal data.
fn shown_to(mut view: ZoneView, caller: &Caller) -> ZoneView {
    if !caller.sees_personal_data(Some(view.zone_id)) {
        view.leader_phone = view
            .leader_phone
            .map(|p| p.map(|p| crate::access::keep_ends(&p, 3, 4)));
    }
    view
}

/// The zone whose leader's phone `caller` is shown unmasked, if any.
fn disclosed(view: &ZoneView, caller: &Caller) -> Option<String> {
    let shown = caller.sees_personal_data(Some(view.zone_id))
        && view.leader_phone.as_ref().is_some_and(Shown::is_clear);
    shown.then(|| ZoneId::from_uuid(view.zone_id).stream_id())
}

pub(crate) fn view(zone: &Zone, version: u64, vault: &fangkong_vault::Vault) -> Option<ZoneView> {
    let zone_id = zone.id?;
    Some(ZoneView {
        zone_id: zone.id?.as_uuid(),
        name: zone.name.as_ref()?.to_string(),
        leader: zone.leader.as_ref().map(|(n, _)| n.to_string()),
        leader_phone: zone.leader.as_ref().and_then(|(_, p)| {
            p.as_ref().map(|p| {
                crate::personal::open(
                    vault,
                    &zone_id.stream_id(),
                    "ZoneLeaderAssigned",
                    &["phone"],
                    p,
                )
                .map(|p: fangkong_domain::PhoneNumber| p.to_string())
            })
        }),
        dhis2_org_unit: zone.dhis2_org_unit.as_ref().map(|u| u.to_string()),
        villages: zone
            .villages
            .iter()
            .map(|(id, v)| VillageView {
                village_id: id.as_uuid(),
                name: v.name.to_string(),
                grids: v
                    .grids
                    .iter()
                    .map(|(gid, g)| GridView {
                        grid_id: gid.as_uuid(),
                        name: g.name.to_string(),
                        households: g.households.map(Count::get),
                    })
                    .collect(),
            })
            .collect(),
        version,
    })
}

/// The place a new entity names in its body: the zone (and the village, if
/// given) must exist, else the field is invalid.
pub(crate) async fn check_place(
    state: &AppState,
    headers: &WriteHeaders<Field>,
    zone_id: Uuid,
    village_id: Option<Uuid>,
) -> Result<fangkong_app::Loaded<Zone>, ApiError> {
    // A zone the caller may not work in is, to it, no zone at all.
    if !headers.caller.sees_zone(zone_id) {
        return Err(ApiError::field("zone_id", "no zone with this id"));
    }
    let zone = established(state, ZoneId::from_uuid(zone_id))
        .await
        .map_err(|e| match e {
            ApiError::NotFound(_) => ApiError::field("zone_id", "no zone with this id"),
            // A store that cannot answer is not a bad field: 503, retry.
            other => other,
        })?;
    if let Some(village) = village_id {
        if !zone
            .state
            .villages
            .contains_key(&VillageId::from_uuid(village))
        {
            return Err(ApiError::field(
                "village_id",
                "no such village in this zone",
            ));
        }
    }
    Ok(zone)
}

/// Loads an established zone or answers 404.
pub(crate) async fn established(
    state: &AppState,
    zone_id: ZoneId,
) -> Result<fangkong_app::Loaded<Zone>, ApiError> {
    let loaded = state.commands.load::<Zone>(&zone_id.stream_id()).await?;
    if !loaded.state.is_established() {
        return Err(super::not_found("zone"));
    }
    Ok(loaded)
}

pub(crate) async fn establish(
    state: &AppState,
    headers: &WriteHeaders<Admin>,
    body: Json<EstablishZone>,
) -> Result<Written, ApiError> {
    let b = body.value;
    let zone_id = ZoneId::from_uuid(headers.new_entity_id(b.zone_id, "zone.establish"));
    let command = ZoneCommand::Establish {
        zone_id,
        name: field("name", Name::parse(&b.name))?,
    };
    run(
        state,
        headers,
        zone_id,
        "zone.establish",
        body.canonical_hash,
        b.occurred_at,
        command,
    )
    .await
}

/// Establish a zone (片区) of the township.
///
/// Admin only. Its leader, villages and grids are added to it afterwards;
/// a zone worker's token names the zones it works in.
#[utoipa::path(
    tag = "zones",
    request_body = EstablishZone,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes the write safe to retry")),
    responses(
        (status = 201, description = "Established", body = Written, headers(("Location" = String, description = "The new entity: GET it here"), ("ETag" = String, description = "Its stream version, quoted"))),
        WriteErrors,
    )
)]
#[post("/zones")]
async fn establish_zone(
    caller: Authorized<Admin>,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Json<EstablishZone>,
) -> Result<HttpResponse, ApiError> {
    Ok(written(
        establish(&state, &WriteHeaders::parse(&req, caller)?, body).await?,
        Some("/v1/zones"),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ZoneQuery {
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    pub cursor: Option<String>,
    /// Wait (up to 2 s) until the list reflects this log position: pass a
    /// write's `position` to read your own write.
    #[serde(default, deserialize_with = "crate::extract::within_i64")]
    pub min_position: Option<u64>,
}

/// All zones, in the order they were established.
///
/// Each zone with its leader, villages and grids. Cursor-paged with `limit` and `cursor`;
/// `min_position` waits up to 2 s for a write of yours to show. Every role may read it, a zone
/// worker sees only its own zones, and the leader's phone is masked (first three and last four
/// digits) for county and auditor tokens.
#[utoipa::path(
    tag = "zones",
    params(ZoneQuery),
    responses(
        (status = 200, description = "A page of zones", body = super::ZonePage),
        ReadErrors,
    )
)]
#[get("/zones")]
async fn list_zones(
    caller: Authorized<Figures>,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q: ZoneQuery = query(&req)?;
    let page = Page {
        limit: q.limit,
        cursor: q.cursor,
    };
    super::listed(
        &state,
        &page,
        q.min_position,
        None,
        |m| &m.directory.zones,
        |e| {
            view(&e.state, e.version, state.vault())
                .filter(|v| caller.sees_zone(v.zone_id))
                .map(|v| shown_to(v, &caller))
        },
        Some(super::Disclosed {
            caller: &caller,
            route: "GET /v1/zones",
            subject: &|v| disclosed(v, &caller),
        }),
    )
    .await
}

/// One zone with its villages and grids. `ETag` leads with its version.
///
/// Holds the zone's name, its leader, and each village's grids with their households. Every role
/// may read it; a zone worker asking for another zone gets 404. The leader's phone is masked
/// (first three and last four digits) for county and auditor tokens.
#[utoipa::path(
    tag = "zones",
    params(("zone_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The zone", body = ZoneView),
        ReadErrors,
    )
)]
#[get("/zones/{zone_id}")]
async fn get_zone(
    caller: Authorized<Figures>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let zone_id = ZoneId::from_uuid(path_id(&path, "zone")?);
    caller.check_zone(Some(zone_id.as_uuid()), "zone")?;
    let loaded = established(&state, zone_id).await?;
    let view = view(&loaded.state, loaded.version, state.vault()).ok_or(ApiError::Internal)?;
    state
        .disclosures
        .record(
            &caller,
            "GET /v1/zones/{zone_id}",
            disclosed(&view, &caller),
        )
        .await?;
    Ok(entity(loaded.version, &shown_to(view, &caller)))
}

pub(crate) async fn leader(
    state: &AppState,
    headers: &WriteHeaders<Admin>,
    zone: &str,
    body: Json<AssignLeader>,
) -> Result<Written, ApiError> {
    let zone_id = ZoneId::from_uuid(path_id(zone, "zone")?);
    let b = body.value;
    let command = ZoneCommand::AssignLeader {
        leader: field("leader", Name::parse(&b.leader))?,
        phone: optional("phone", b.phone, |p| PhoneNumber::parse(&p))?,
    };
    run(
        state,
        headers,
        zone_id,
        "zone.assign_leader",
        body.canonical_hash,
        b.occurred_at,
        command,
    )
    .await
}

pub(crate) async fn org_unit(
    state: &AppState,
    headers: &WriteHeaders<Admin>,
    zone: &str,
    body: Json<LinkDhis2OrgUnit>,
) -> Result<Written, ApiError> {
    let zone_id = ZoneId::from_uuid(path_id(zone, "zone")?);
    let b = body.value;
    let org_unit = field("org_unit", Dhis2Uid::parse(&b.org_unit))?;
    // Two zones under one org unit would overwrite each other in DHIS2.
    // Checked on the directory as it stands (two links racing can both
    // pass); the DHIS2 pull checks again on every zone before it sends.
    let taken_by = crate::routes::dashboards::effective_org_units(state)
        .into_iter()
        .find(|(zone, unit)| *zone != zone_id.as_uuid() && unit == org_unit.as_str())
        .map(|(zone, _)| zone);

    if let Some(other) = taken_by {
        return Err(ApiError::Unmet {
            code: "dhis2_org_unit_taken",
            detail: format!("zone {other} is already linked to the DHIS2 org unit {org_unit}"),
        });
    }
    let command = ZoneCommand::LinkDhis2OrgUnit { org_unit };
    run(
        state,
        headers,
        zone_id,
        "zone.link_dhis2_org_unit",
        body.canonical_hash,
        b.occurred_at,
        command,
    )
    .await
}

/// Link the zone to its organisation unit in the county's DHIS2.
///
/// The daily pull in DHIS2's form (`GET /v1/reports/daily?format=dhis2`) files the zone's figures
/// under this org unit, so a county links each zone once through the API instead of editing the
/// server's mapping file (which keeps the data elements; an org unit there is used only for a
/// zone never linked). Linking another uid replaces it; the same one again records nothing. Admin
/// only. `Idempotency-Key` makes a retry safe; `If-Match` with the zone's version makes it
/// conditional (412). Refused with 409 `dhis2_org_unit_taken` when another zone is linked to the
/// same org unit; an unknown zone answers 404.
#[utoipa::path(
    tag = "zones",
    params(("zone_id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header), ("If-Match" = Option<String>, Header, description = "Expected version, e.g. \"3\"")),
    request_body = LinkDhis2OrgUnit,
    responses(
        (status = 200, description = "Linked (no events when unchanged)", body = Written),
        WriteErrors,
    )
)]
#[put("/zones/{zone_id}/dhis2-org-unit")]
async fn link_dhis2_org_unit(
    caller: Authorized<Admin>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: Json<LinkDhis2OrgUnit>,
) -> Result<HttpResponse, ApiError> {
    Ok(written(
        org_unit(&state, &WriteHeaders::parse(&req, caller)?, &path, body).await?,
        None,
    ))
}

/// Assign the zone leader (片长).
///
/// Names the member of the township leadership in charge of the zone, with an optional phone
/// (personal data); a later assignment replaces the leader, and the same one again records
/// nothing. Admin only. `Idempotency-Key` makes a retry safe; `If-Match` with the zone's version
/// makes it conditional (412). No domain rule refuses it with 409; an unknown zone answers 404.
#[utoipa::path(
    tag = "zones",
    params(("zone_id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header), ("If-Match" = Option<String>, Header, description = "Expected version, e.g. \"3\"")),
    request_body = AssignLeader,
    responses(
        (status = 200, description = "Assigned (no events when unchanged)", body = Written),
        WriteErrors,
    )
)]
#[put("/zones/{zone_id}/leader")]
async fn assign_leader(
    caller: Authorized<Admin>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: Json<AssignLeader>,
) -> Result<HttpResponse, ApiError> {
    Ok(written(
        leader(&state, &WriteHeaders::parse(&req, caller)?, &path, body).await?,
        None,
    ))
}

pub(crate) async fn village(
    state: &AppState,
    headers: &WriteHeaders<Field>,
    zone: &str,
    body: Json<AddVillage>,
) -> Result<Written, ApiError> {
    let zone_id = ZoneId::from_uuid(path_id(zone, "zone")?);
    let b = body.value;
    let command = ZoneCommand::AddVillage {
        village_id: VillageId::from_uuid(b.village_id.unwrap_or_else(Uuid::now_v7)),
        name: field("name", Name::parse(&b.name))?,
    };
    run(
        state,
        headers,
        zone_id,
        "zone.add_village",
        body.canonical_hash,
        b.occurred_at,
        command,
    )
    .await
}

/// Add a village or community to the zone.
///
/// Adds a village (村) or community (社区) by name; give `village_id` to choose its id. Admin,
/// or a zone worker for its own zone; another zone answers 404. `Idempotency-Key` makes a retry
/// safe; `If-Match` with the zone's version makes it conditional (412). Refused with 409 when
/// the rule it breaks is one of: `village_already_added`, `village_name_taken`.
#[utoipa::path(
    tag = "zones",
    params(("zone_id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header), ("If-Match" = Option<String>, Header)),
    request_body = AddVillage,
    responses(
        (status = 200, description = "Added", body = Written),
        WriteErrors,
    )
)]
#[post("/zones/{zone_id}/villages")]
async fn add_village(
    caller: Authorized<Field>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: Json<AddVillage>,
) -> Result<HttpResponse, ApiError> {
    Ok(written(
        village(&state, &WriteHeaders::parse(&req, caller)?, &path, body).await?,
        None,
    ))
}

pub(crate) async fn grid(
    state: &AppState,
    headers: &WriteHeaders<Field>,
    zone: &str,
    body: Json<AddGrid>,
) -> Result<Written, ApiError> {
    let zone_id = ZoneId::from_uuid(path_id(zone, "zone")?);
    let b = body.value;
    let command = ZoneCommand::AddGrid {
        village_id: VillageId::from_uuid(b.village_id),
        grid_id: GridId::from_uuid(b.grid_id.unwrap_or_else(Uuid::now_v7)),
        name: field("name", Name::parse(&b.name))?,
        households: optional("households", b.households, Count::parse)?,
    };
    run(
        state,
        headers,
        zone_id,
        "zone.add_grid",
        body.canonical_hash,
        b.occurred_at,
        command,
    )
    .await
}

/// Add a grid (网格) to one of the zone's villages.
///
/// The grid is the smallest cell of the map, with its households if known; returnees are
/// registered to one. Admin, or a zone worker for its own zone; another zone answers 404.
/// `Idempotency-Key` makes a retry safe; `If-Match` with the zone's version makes it conditional
/// (412). Refused with 409 when the rule it breaks is one of: `village_not_in_zone`,
/// `grid_already_added`, `grid_name_taken`.
#[utoipa::path(
    tag = "zones",
    params(("zone_id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header), ("If-Match" = Option<String>, Header)),
    request_body = AddGrid,
    responses(
        (status = 200, description = "Added", body = Written),
        WriteErrors,
    )
)]
#[post("/zones/{zone_id}/grids")]
async fn add_grid(
    caller: Authorized<Field>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: Json<AddGrid>,
) -> Result<HttpResponse, ApiError> {
    Ok(written(
        grid(&state, &WriteHeaders::parse(&req, caller)?, &path, body).await?,
        None,
    ))
}
