//! The routes, each registered together with its OpenAPI entry.

pub mod activity;
pub mod audit;
pub mod banquets;
pub mod batches;
pub mod checkpoints;
pub mod dashboards;
pub mod reports;
pub mod returnees;
pub mod roster;
pub mod system;
pub mod tokens;
pub mod venues;
pub mod zones;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use fangkong_domain::ValueError;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::extract::WriteHeaders;
use crate::problem::ApiError;
use crate::write::Written;
use crate::AppState;
use fangkong_app::{Command, Target};

/// An entity id that names its own stream.
pub(crate) trait Entity {
    fn stream_id(&self) -> String;
    fn uuid(&self) -> uuid::Uuid;
}

macro_rules! entity_ids {
    ($($id:ty),+) => {
        $(impl Entity for $id {
            fn stream_id(&self) -> String { <$id>::stream_id(self) }
            fn uuid(&self) -> uuid::Uuid { self.as_uuid() }
        })+
    };
}

entity_ids!(
    fangkong_domain::ZoneId,
    fangkong_domain::ReturneeId,
    fangkong_domain::CheckpointId,
    fangkong_domain::VenueId,
    fangkong_domain::BanquetId
);

/// Runs a command against the stream of entity `id`.
pub(crate) async fn run<C: Command, P: crate::access::Policy>(
    state: &AppState,
    headers: &WriteHeaders<P>,
    id: impl Entity,
    operation: &'static str,
    body_hash: [u8; 32],
    occurred_at: Option<chrono::DateTime<chrono::Utc>>,
    command: C,
) -> Result<Written, ApiError> {
    let target = Target::new(id.stream_id(), id.uuid(), operation);
    run_on(state, headers, &target, body_hash, occurred_at, command).await
}

/// Runs a command against any target stream, through the application.
pub(crate) async fn run_on<C: Command, P: crate::access::Policy>(
    state: &AppState,
    headers: &WriteHeaders<P>,
    target: &Target,
    body_hash: [u8; 32],
    occurred_at: Option<chrono::DateTime<chrono::Utc>>,
    command: C,
) -> Result<Written, ApiError> {
    let envelope = headers.envelope(body_hash, occurred_at);
    let outcome = state.commands.execute(&envelope, target, command).await?;
    shown_write(state, &headers.caller, target.operation, outcome).await
}

/// A write's answer as its sender sees it, recorded in the access record
/// when it shows personal data.
pub(crate) async fn shown_write(
    state: &AppState,
    caller: &crate::access::Caller,
    operation: &str,
    outcome: fangkong_app::Outcome,
) -> Result<Written, ApiError> {
    let subject = outcome.stream_id.clone();
    let (written, disclosed) = Written::shown(outcome, state.vault());
    if disclosed {
        state
            .disclosures
            .record(
                caller,
                &format!("write {operation}"),
                std::iter::once(subject),
            )
            .await?;
    }
    Ok(written)
}

/// Parses one field, naming it on failure.
pub(crate) fn field<T>(name: &str, parsed: Result<T, ValueError>) -> Result<T, ApiError> {
    parsed.map_err(|e| ApiError::field(name, e.message))
}

/// Parses an optional field.
pub(crate) fn optional<T, R>(
    name: &str,
    raw: Option<R>,
    parse: impl FnOnce(R) -> Result<T, ValueError>,
) -> Result<Option<T>, ApiError> {
    raw.map(|r| field(name, parse(r))).transpose()
}

/// `201 Created` with its `Location` for a new entity of `collection`,
/// `200 OK` otherwise; `ETag` is the version.
pub(crate) fn written(written: Written, collection: Option<&str>) -> HttpResponse {
    // A replay gets the first answer, status included.
    let mut response = match collection {
        Some(collection) if written.created() => {
            let mut created = HttpResponse::Created();
            created.insert_header((header::LOCATION, format!("{collection}/{}", written.id)));
            created
        }
        _ => HttpResponse::Ok(),
    };
    response
        .insert_header((header::ETAG, format!("\"{}\"", written.version)))
        .json(written)
}

/// An entity read, with its version as the `ETag`.
pub(crate) fn entity<T: Serialize>(version: u64, body: &T) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::ETAG, format!("\"{version}\"")))
        .json(body)
}

/// An id from the path; one that is not an id is answered as any unknown
/// or out-of-zone entity is, word for word.
pub(crate) fn path_id(raw: &str, what: &'static str) -> Result<uuid::Uuid, ApiError> {
    raw.parse().map_err(|_| not_found(what))
}

/// The one answer for an entity that does not exist or is outside the
/// caller's zones: the two must not be told apart.
pub(crate) fn not_found(what: &str) -> ApiError {
    ApiError::NotFound(format!("no such {what}"))
}

/// Cursor paging of lists.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Page {
    /// Items per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl Page {
    pub(crate) fn limit(&self) -> Result<usize, ApiError> {
        match self.limit {
            None => Ok(100),
            Some(n) if (1..=1000).contains(&n) => Ok(n),
            Some(_) => Err(ApiError::field("limit", "must be 1 to 1000")),
        }
    }

    /// The log position the page starts after.
    pub(crate) fn after(&self) -> Result<u64, ApiError> {
        match &self.cursor {
            None => Ok(0),
            Some(c) => c
                .parse::<u64>()
                .ok()
                .filter(|position| *position <= i64::MAX as u64)
                .ok_or_else(|| ApiError::field("cursor", "not a cursor this API gave out")),
        }
    }
}

/// A page of a list (in the contract, one named page per kind of item).
#[derive(Debug, Serialize)]
pub struct Paged<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; absent when there is no more.
    pub next_cursor: Option<String>,
}

/// The contract's name for each kind of page: the same shape as [`Paged`],
/// with its items referenced by their own schema (a generic would inline
/// them in every page).
macro_rules! pages {
    ($($page:ident => $item:ty),* $(,)?) => {
        $(
            #[doc = concat!("A page of `", stringify!($item), "` items.")]
            #[derive(Debug, ToSchema)]
            #[allow(dead_code, reason = "describes a page for the OpenAPI document only")]
            pub struct $page {
                pub items: Vec<$item>,
                /// Pass as `cursor` for the next page; absent when there is no more.
                pub next_cursor: Option<String>,
            }
        )*
    };
}

pages!(
    LogEventPage => audit::LogEvent,
    ReturneePage => returnees::ReturneeView,
    CheckpointPage => checkpoints::CheckpointView,
    BanquetPage => banquets::BanquetView,
    ZonePage => zones::ZoneView,
    VenuePage => venues::VenueView,
);

/// Query strings are parsed by hand so that a bad one gets problem+json.
pub(crate) fn query<T: serde::de::DeserializeOwned>(req: &HttpRequest) -> Result<T, ApiError> {
    actix_web::web::Query::<T>::from_query(req.query_string())
        .map(|q| q.into_inner())
        .map_err(|e| ApiError::field("query", e.to_string()))
}

/// The snake_case code a domain enum serialises to (`in_quarantine`).
pub(crate) fn code_of<T: Serialize>(value: T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(code)) => code,
        _ => String::new(),
    }
}

/// A page of one kind of entity from the projection's directory, in
/// creation order (the cursor is the creation position), read after
/// waiting, bounded, for `min_position`: no query per entity. `item` turns
/// an entry into the answer's item, or `None` when a filter leaves it out.
pub(crate) async fn listed<A, V>(
    state: &AppState,
    page: &Page,
    min_position: Option<u64>,
    zone: Option<uuid::Uuid>,
    listing: fn(&fangkong_projections::ReadModels) -> &fangkong_projections::Listing<A>,
    mut item: impl FnMut(&fangkong_projections::Entry<A>) -> Option<V>,
    disclosed: Option<Disclosed<'_, V>>,
) -> Result<HttpResponse, ApiError>
where
    A: fangkong_projections::directory::Listed,
    V: Serialize,
{
    let limit = page.limit()?;
    let after = page.after()?;
    // Lists are always read live: no as-of rebuild, so no requester's turn.
    let (paged, freshness) =
        dashboards::read_models(state, uuid::Uuid::nil(), None, min_position, |m, _| {
            let mut items = Vec::with_capacity(limit);
            let mut last = after;
            let mut next_cursor = None;
            for entry in listing(m).after(after, zone) {
                if let Some(v) = item(entry) {
                    if items.len() == limit {
                        next_cursor = Some(last.to_string());
                        break;
                    }
                    items.push(v);
                    last = entry.created;
                }
            }
            Paged { items, next_cursor }
        })
        .await?;
    if let Some(d) = disclosed {
        state
            .disclosures
            .record(
                d.caller,
                d.route,
                paged.items.iter().filter_map(|v| (d.subject)(v)),
            )
            .await?;
    }
    Ok(dashboards::with_freshness(freshness, &paged))
}

/// How a list notes the personal data its page shows: who asked, by which
/// route, and the data subject an item shows unmasked, if any.
pub(crate) struct Disclosed<'a, V> {
    pub caller: &'a crate::access::Caller,
    pub route: &'static str,
    pub subject: &'a dyn Fn(&V) -> Option<String>,
}

/// A filter's value as the domain code it names; an unknown one is refused
/// naming the values allowed.
pub(crate) fn filter<T: serde::de::DeserializeOwned>(
    name: &str,
    raw: Option<&str>,
) -> Result<Option<T>, ApiError> {
    raw.map(|r| {
        serde_json::from_value::<T>(serde_json::Value::String(r.to_owned()))
            .map_err(|e| ApiError::field(name, e.to_string()))
    })
    .transpose()
}

/// The errors any write can answer with.
#[derive(Debug, utoipa::IntoResponses)]
#[allow(
    dead_code,
    reason = "describes responses for the OpenAPI document only"
)]
pub enum WriteErrors {
    /// Malformed JSON or header.
    #[response(status = 400, content_type = "application/problem+json")]
    Malformed(crate::problem::Problem),
    /// No valid bearer token (`WWW-Authenticate: Bearer`).
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthenticated(crate::problem::Problem),
    /// The token's role may not use this route.
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(crate::problem::Problem),
    /// Too many requests; see `Retry-After`. `code`: `too_many_failed_attempts` (failed
    /// authentications from this address), `rate_limited` (this token's rate), or, where a live
    /// feed or its ticket is asked for, `too_many_feeds` (the token holds as many as it may).
    #[response(status = 429, content_type = "application/problem+json")]
    TooManyFailedAttempts(crate::problem::Problem),
    /// The entity (or one it refers to) does not exist.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(crate::problem::Problem),
    /// A rule of the domain forbids it now; `code` names the rule.
    #[response(status = 409, content_type = "application/problem+json")]
    Conflict(crate::problem::Problem),
    /// `If-Match` names another version.
    #[response(status = 412, content_type = "application/problem+json")]
    VersionMismatch(crate::problem::Problem),
    /// The body is larger than the limit.
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(crate::problem::Problem),
    /// The body is not sent as application/json.
    #[response(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(crate::problem::Problem),
    /// A field is invalid (named in `errors`), or an Idempotency-Key was reused for another request.
    #[response(status = 422, content_type = "application/problem+json")]
    Invalid(crate::problem::Problem),
    /// The event store is unavailable; retry after `Retry-After` seconds.
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(crate::problem::Problem),
}

/// The errors any read can answer with.
#[derive(Debug, utoipa::IntoResponses)]
#[allow(
    dead_code,
    reason = "describes responses for the OpenAPI document only"
)]
pub enum ReadErrors {
    /// No valid bearer token (`WWW-Authenticate: Bearer`).
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthenticated(crate::problem::Problem),
    /// The token's role may not use this route.
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(crate::problem::Problem),
    /// Too many requests; see `Retry-After`. `code`: `too_many_failed_attempts` (failed
    /// authentications from this address), `rate_limited` (this token's rate), or, where a live
    /// feed or its ticket is asked for, `too_many_feeds` (the token holds as many as it may).
    #[response(status = 429, content_type = "application/problem+json")]
    TooManyFailedAttempts(crate::problem::Problem),
    /// No such entity (or one outside the caller's zones).
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(crate::problem::Problem),
    /// A bad query parameter.
    #[response(status = 422, content_type = "application/problem+json")]
    Invalid(crate::problem::Problem),
    /// The event store is unavailable.
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(crate::problem::Problem),
}

/// A string schema listing the allowed codes of a domain enum.
pub(crate) fn codes<'a>(values: impl IntoIterator<Item = &'a str>) -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(values.into_iter().collect::<Vec<_>>()))
        .build()
}

pub(crate) mod schemas {
    //! Schemas of the domain's code enums (the domain crate knows no OpenAPI).
    use fangkong_domain::*;

    use super::codes;
    use utoipa::openapi::Object;

    pub fn risk() -> Object {
        codes(["high", "medium", "low"])
    }
    pub fn symptoms() -> utoipa::openapi::Array {
        utoipa::openapi::ArrayBuilder::new()
            .items(codes(Symptom::ALL.iter().map(|s| s.code())))
            .build()
    }
    pub fn team_role() -> Object {
        codes(TeamRole::ALL.iter().map(|s| s.code()))
    }
    pub fn end_reason() -> Object {
        codes(QuarantineEndReason::ALL.iter().map(|s| s.code()))
    }
    pub fn venue_kind() -> Object {
        codes(VenueKind::ALL.iter().map(|s| s.code()))
    }
    pub fn banquet_kind() -> Object {
        codes(BanquetKind::ALL.iter().map(|s| s.code()))
    }
    pub fn channel() -> Object {
        codes(PublicityChannel::ALL.iter().map(|s| s.code()))
    }
    pub fn outcome() -> Object {
        codes(CrossingOutcome::ALL.iter().map(|s| s.code()))
    }
    pub fn subject() -> Object {
        codes(CrossingSubject::ALL.iter().map(|s| s.code()))
    }
    pub fn checkpoint_kind() -> Object {
        codes(CheckpointKind::ALL.iter().map(|s| s.code()))
    }
    pub fn returnee_status() -> Object {
        codes([
            "registered",
            "in_quarantine",
            "released",
            "under_treatment",
            "transferred",
            "lost_to_follow_up",
        ])
    }
    pub fn venue_status() -> Object {
        codes(["open", "closed", "dismantled"])
    }
    pub fn banquet_status() -> Object {
        codes(["planned", "postponed", "cancelled", "scaled_down"])
    }
    pub fn role() -> Object {
        codes(access::Role::ALL.iter().map(|r| r.code()))
    }
}

/// An event of an entity's own stream.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamEvent {
    pub position: u64,
    pub version: u64,
    #[serde(rename = "type")]
    pub event_type: String,
    pub schema_version: u32,
    pub data: serde_json::Value,
    pub metadata: serde_json::Value,
    pub recorded_at: chrono::DateTime<chrono::Utc>,
}

impl StreamEvent {
    /// For callers the entity's zone admits (its secrets removed all the
    /// same); answers whether personal data was shown.
    pub(crate) fn shown(
        mut e: fangkong_store::RecordedEvent,
        vault: &fangkong_vault::Vault,
    ) -> (StreamEvent, bool) {
        let disclosed =
            crate::personal::show_event(vault, &e.stream_id, &e.event_type, &mut e.payload, true);
        let shown = StreamEvent {
            position: e.position,
            version: e.stream_version,
            event_type: e.event_type,
            schema_version: e.schema_version,
            data: e.payload,
            metadata: e.metadata,
            recorded_at: e.recorded_at,
        };
        (shown, disclosed)
    }

    /// Every event of a data subject's stream, its personal fields opened
    /// (for a subject access report); answers whether any was shown.
    pub(crate) async fn whole_stream(
        state: &AppState,
        stream_id: &str,
    ) -> Result<(Vec<StreamEvent>, bool), ApiError> {
        let mut events = Vec::new();
        let mut shown_any = false;
        let mut from = 1;
        loop {
            let page = state.store().read_stream(stream_id, from, 1_000).await?;
            let full = page.len() == 1_000;
            from += page.len() as u64;
            for event in page {
                let (event, personal) = StreamEvent::shown(event, state.vault());
                shown_any |= personal;
                events.push(event);
            }
            if !full {
                return Ok((events, shown_any));
            }
        }
    }
}
