//! The auditors' surface: the global log by position, the chain head to
//! keep, verification, and the proof that today's log extends a head kept
//! earlier.

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::{query, Paged, ReadErrors};
use crate::access::{Audit, Authorized, EventsFeed, FeedCaller};
use crate::feeds::FeedLease;
use crate::problem::ApiError;
use crate::tickets::Feed;
use crate::AppState;
use fangkong_domain::access::Role;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_events)
        .service(live_events)
        .service(live_ticket)
        .service(audit_head)
        .service(audit_keys)
        .service(inclusion)
        .service(consistency)
        .service(verify)
        .service(proof)
        .service(personal_data_access);
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AccessQuery {
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

/// One answer that showed personal data unmasked.
#[derive(Debug, Serialize, ToSchema)]
pub struct PersonalDataAccess {
    /// Its place in the record (1, 2, ...).
    pub seq: u64,
    pub at: chrono::DateTime<chrono::Utc>,
    /// The token that read it, and its role.
    pub token_id: uuid::Uuid,
    pub role: String,
    /// The route, as the router matched it.
    pub route: String,
    /// Whose data: the data subjects' streams (`returnee-<id>`).
    pub subjects: Vec<String>,
    /// SHA-256 over the previous row's hash and this row's fields: the
    /// record is a chain, so an edited or removed row is found by
    /// `fangkong verify`.
    pub hash: String,
}

/// A page of the personal data access record.
#[derive(Debug, Serialize, ToSchema)]
pub struct PersonalDataAccessPage {
    pub items: Vec<PersonalDataAccess>,
    /// Pass as `cursor` for the next page; absent when there is no more.
    pub next_cursor: Option<String>,
}

/// Who was shown whose personal data, oldest first. Admin and auditor only.
///
/// Every answer that showed a person's personal data unmasked (a returnee, a list, the roster, a
/// banquet's host, a leader's phone, the log or live feed read as admin, a write's answer, a
/// subject access report) is noted: the token and its role, the data subjects, when, and the
/// route. Notes are written within a fraction of a second of the answer, in groups. The rows
/// form a hash chain (`fangkong verify` checks it). Cursor-paged with `limit` and `cursor`.
#[utoipa::path(
    tag = "audit",
    params(AccessQuery),
    responses((status = 200, description = "A page of the record", body = PersonalDataAccessPage), ReadErrors)
)]
#[get("/audit/personal-data-access")]
async fn personal_data_access(
    _caller: Authorized<Audit>,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q: AccessQuery = query(&req)?;
    let page = super::Page {
        limit: q.limit,
        cursor: q.cursor,
    };
    let limit = page.limit()?;
    let rows = state.store().disclosures(page.after()?, limit).await?;
    let next_cursor = (rows.len() == limit)
        .then(|| rows.last().map(|d| d.seq.to_string()))
        .flatten();
    let items = rows
        .into_iter()
        .map(|d| PersonalDataAccess {
            seq: d.seq,
            at: d.note.at,
            token_id: d.note.token_id,
            role: d.note.role,
            route: d.note.route,
            subjects: d.note.subjects,
            hash: hex::encode(d.hash),
        })
        .collect();
    Ok(HttpResponse::Ok().json(PersonalDataAccessPage { items, next_cursor }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Stream category: zone, returnee, checkpoint, venue, banquet, activity, staff, report.
    pub category: Option<String>,
    /// One event type, e.g. QuarantineStarted.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub event_type: Option<String>,
    /// Items per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page (a log position).
    pub cursor: Option<String>,
    /// Only events recorded at or after this instant (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Only events recorded before this instant (RFC 3339).
    pub until: Option<DateTime<Utc>>,
}

/// One event of the global log, with its hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogEvent {
    pub position: u64,
    pub stream_id: String,
    pub stream_version: u64,
    pub event_id: uuid::Uuid,
    #[serde(rename = "type")]
    pub event_type: String,
    pub schema_version: u32,
    pub data: serde_json::Value,
    pub metadata: serde_json::Value,
    pub recorded_at: DateTime<Utc>,
    /// SHA-256 over the previous hash and this event, hex.
    pub hash: String,
}

/// The global log in position order.
///
/// Every recorded event with its stream, version, type, payload, metadata and chain hash,
/// filtered by stream `category`, event `type` and recording time (`since`, `until`), paged by
/// position with `limit` and `cursor`. Admin and auditor only. Personal data is masked for the
/// auditor (names to the family name, ID and phone numbers to their ends, addresses hidden), and
/// secrets are removed for everyone.
#[utoipa::path(
    tag = "audit",
    params(EventsQuery),
    responses((status = 200, description = "A page of the log", body = super::LogEventPage), ReadErrors)
)]
#[get("/events")]
async fn list_events(
    caller: Authorized<Audit>,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q: EventsQuery = query(&req)?;
    let page = super::Page {
        limit: q.limit,
        cursor: q.cursor,
    };
    let limit = page.limit()?;
    let filter = fangkong_store::LogFilter {
        category: checked_name("category", q.category)?,
        event_types: checked_name("type", q.event_type)?.into_iter().collect(),
        recorded_since: q.since,
        recorded_until: q.until,
    };
    let events = state
        .store()
        .read_all(page.after()?, limit, &filter)
        .await?;
    let next_cursor = (events.len() == limit)
        .then(|| events.last().map(|e| e.position.to_string()))
        .flatten();
    let mask = caller.role != Role::Admin;
    let mut disclosed = Vec::new();
    let items: Vec<LogEvent> = events
        .into_iter()
        .map(|e| {
            let (shown, personal) = LogEvent::shown(e, state.vault(), mask);
            if personal {
                disclosed.push(shown.stream_id.clone());
            }
            shown
        })
        .collect();
    state
        .disclosures
        .record(&caller, "GET /v1/events", disclosed)
        .await?;
    Ok(HttpResponse::Ok().json(Paged { items, next_cursor }))
}

/// Categories and event types are ASCII names (`returnee`,
/// `QuarantineStarted`); anything else names nothing, and is refused before
/// it reaches the database.
fn checked_name(field: &str, raw: Option<String>) -> Result<Option<String>, ApiError> {
    match raw {
        Some(name)
            if name.is_empty()
                || name.len() > 100
                || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
        {
            Err(ApiError::field(
                field,
                "must be a name of ASCII letters and digits",
            ))
        }
        other => Ok(other),
    }
}

impl LogEvent {
    /// The event as the caller may see it: personal data masked for every
    /// role but admin.
    /// Also answers whether personal data was shown unmasked.
    pub(crate) fn shown(
        e: fangkong_store::RecordedEvent,
        vault: &fangkong_vault::Vault,
        mask: bool,
    ) -> (LogEvent, bool) {
        let mut data = e.payload;
        let disclosed =
            crate::personal::show_event(vault, &e.stream_id, &e.event_type, &mut data, !mask);
        let shown = LogEvent {
            position: e.position,
            stream_id: e.stream_id,
            stream_version: e.stream_version,
            event_id: e.event_id,
            event_type: e.event_type,
            schema_version: e.schema_version,
            data,
            metadata: e.metadata,
            recorded_at: e.recorded_at,
            hash: hex::encode(e.hash),
        };
        (shown, disclosed)
    }
}

/// A ticket for a browser's EventSource, which cannot send `Authorization`.
///
/// Answers a random ticket that stands for the calling token for one connection to
/// `/v1/events/live`, used within a minute: the browser opens `new EventSource(url)` with the
/// ticket in the query instead of a bearer token in the URL, where it would stay in histories and
/// proxy logs. The feed checks the token behind the ticket as it checks a bearer token (revoked,
/// role, rate limit), and a revocation still ends an open feed. Admin and auditor, as the feed.
/// Tickets live in the instance that issued them: open the feed on the same one.
#[utoipa::path(
    tag = "audit",
    responses(
        (status = 201, description = "Issued", body = crate::tickets::LiveTicket, headers(("Location" = String, description = "The feed the ticket opens"))),
        ReadErrors
    )
)]
#[post("/events/live/tickets")]
async fn live_ticket(
    caller: Authorized<Audit>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    crate::tickets::issued(&state.tickets, caller.token_id, Feed::Events)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LiveQuery {
    /// Start after this position (default: the head, so only new events);
    /// a reconnecting client's `Last-Event-ID` header takes precedence.
    #[serde(default, deserialize_with = "crate::extract::within_i64")]
    pub after: Option<u64>,
    /// Stream category, as for `/v1/events`.
    pub category: Option<String>,
    /// Seconds between heartbeat comments while nothing happens (1-60, default 15).
    pub heartbeat_seconds: Option<u64>,
    /// A ticket from `POST /v1/events/live/tickets`, for a client that cannot
    /// send `Authorization` (a browser's `EventSource`): single use, one
    /// minute.
    pub ticket: Option<String>,
    /// `true` (default): each event is named by its type (`event:
    /// QuarantineStarted`). `false`: unnamed, so a browser's
    /// `EventSource.onmessage` receives every one (the type is in `data`).
    pub named: Option<bool>,
}

/// The log as it grows, as Server-Sent Events.
///
/// `id` is the position (so `Last-Event-ID` resumes exactly), `event` the type,
/// `data` the event as `/v1/events` shows it. Heartbeat comments keep idle
/// connections open; the stream ends when the server shuts down, and the client
/// resumes.
#[utoipa::path(
    tag = "audit",
    params(LiveQuery, ("Last-Event-ID" = Option<u64>, Header, description = "The last position received")),
    responses((status = 200, description = "Server-Sent Events (text/event-stream), without end. First `retry: 2000` (how soon a browser reconnects); then per event a frame `id: <position>`, `event: <type>` (left out with `named=false`, so `EventSource.onmessage` gets it) and `data: <one line of JSON>`: a `LogEvent` (see its schema: one object per event type, told apart by `type`), masked as `/v1/events` masks it. Comment lines (`: heartbeat`) keep an idle connection open.", content_type = "text/event-stream", body = String,
        example = json!("retry: 2000\n: from position 41\n\nid: 42\nevent: QuarantineStarted\ndata: {\"position\":42,\"stream_id\":\"returnee-0190f5a2-7c1e-7d3a-9a51-3f1f2b6c8d10\",\"stream_version\":4,\"event_id\":\"0190f5a2-7c1e-7d3a-9a51-3f1f2b6c8d11\",\"type\":\"QuarantineStarted\",\"schema_version\":1,\"data\":{\"start_date\":\"2020-01-25\",\"planned_days\":14,\"planned_end\":\"2020-02-07\"},\"metadata\":{},\"recorded_at\":\"2020-01-25T08:00:00Z\",\"hash\":\"…\"}\n\n: heartbeat\n\n")), ReadErrors)
)]
#[get("/events/live")]
async fn live_events(
    FeedCaller { caller, ticket, .. }: FeedCaller<Audit, EventsFeed>,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q: LiveQuery = query(&req)?;
    let heartbeat = crate::feeds::heartbeat(q.heartbeat_seconds, 15)?;
    let resume = match req.headers().get("Last-Event-ID") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| ApiError::field("Last-Event-ID", "must be a log position"))?,
        ),
    };
    let after = match resume.or(q.after) {
        Some(after) => after,
        None => state.store().head().await?.position,
    };
    let category = checked_name("category", q.category)?;
    let live = Live {
        lease: FeedLease::take(&state, caller.token_id, ticket)?,
        last_sent: tokio::time::Instant::now(),
        store: state.store().clone(),
        after,
        heads: state.store().subscribe(),
        mask: caller.role != Role::Admin,
        vault: state.vault().clone(),
        disclosures: state.disclosures.clone(),
        reader: (*caller).clone(),
        filter: fangkong_store::LogFilter {
            category,
            ..Default::default()
        },
        // `retry:` tells a browser how soon to reconnect (it resumes with
        // Last-Event-ID).
        pending: std::collections::VecDeque::from([web::Bytes::from(format!(
            "retry: {}\n: from position {after}\n\n",
            crate::feeds::RECONNECT_MS
        ))]),
        named: q.named.unwrap_or(true),
        heartbeat,
    };
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(futures::stream::unfold(live, Live::next)))
}

struct Live {
    lease: FeedLease,
    last_sent: tokio::time::Instant,
    store: fangkong_store::EventStore,
    after: u64,
    heads: tokio::sync::watch::Receiver<u64>,
    mask: bool,
    vault: fangkong_vault::Vault,
    /// Where each frame showing personal data is noted, as read by `reader`.
    disclosures: crate::disclosures::Disclosures,
    reader: crate::access::Caller,
    filter: fangkong_store::LogFilter,
    pending: std::collections::VecDeque<web::Bytes>,
    heartbeat: std::time::Duration,
    /// Each event named by its type (or all unnamed `message` events).
    named: bool,
}

impl Live {
    async fn next(mut self) -> Option<(Result<web::Bytes, actix_web::Error>, Live)> {
        loop {
            if !self.lease.holds() {
                return None;
            }
            if let Some(bytes) = self.pending.pop_front() {
                self.last_sent = tokio::time::Instant::now();
                return Some((Ok(bytes), self));
            }
            match self.store.read_all(self.after, 500, &self.filter).await {
                Ok(page) if !page.is_empty() => {
                    for event in page {
                        self.after = event.position;
                        let (position, kind) = (event.position, event.event_type.clone());
                        let (shown, personal) = LogEvent::shown(event, &self.vault, self.mask);
                        // Not on record, not sent: the feed ends (the client
                        // resumes from the last position it got).
                        if personal
                            && self
                                .disclosures
                                .record(
                                    &self.reader,
                                    "GET /v1/events/live",
                                    std::iter::once(shown.stream_id.clone()),
                                )
                                .await
                                .is_err()
                        {
                            return None;
                        }
                        let data = serde_json::to_string(&shown).unwrap_or_else(|_| "{}".into());
                        let frame = if self.named {
                            format!("id: {position}\nevent: {kind}\ndata: {data}\n\n")
                        } else {
                            format!("id: {position}\ndata: {data}\n\n")
                        };
                        self.pending.push_back(web::Bytes::from(frame));
                    }
                    continue;
                }
                Ok(_) => {}
                // The client reconnects with Last-Event-ID and loses nothing.
                Err(_) => return None,
            }
            let heartbeat_at = self.last_sent + self.heartbeat;
            tokio::select! {
                changed = self.heads.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
                _ = self.lease.stopping() => return None,
                _ = tokio::time::sleep_until(heartbeat_at) => {
                    self.pending.push_back(web::Bytes::from_static(b": heartbeat\n\n"));
                }
                _ = tokio::time::sleep(FeedLease::REVOCATION_CHECK) => {}
            }
        }
    }
}

/// The chain head: keep it, and later prove the log only grew from it.
#[derive(Debug, Serialize, ToSchema)]
pub struct HeadView {
    pub position: u64,
    /// Hex SHA-256; 64 zeros for an empty log.
    pub hash: String,
    /// When the event at the head was recorded (absent for an empty log).
    pub recorded_at: Option<DateTime<Utc>>,
    /// When it was read.
    pub read_at: DateTime<Utc>,
    /// The signed tree head to keep: `fangkong audit check --head` checks
    /// it later against the service with nothing but the public key.
    pub signed: Option<fangkong_heads::SignedHead>,
    /// Why there is no signed head (no signing key, the index stopped at a
    /// break in the chain, or it is still loading).
    pub unsigned_because: Option<String>,
}

/// The tree head signed now, or why not: waits briefly for the index to
/// reach `position`.
pub async fn signed_head(
    state: &AppState,
    position: u64,
) -> Result<fangkong_heads::SignedHead, String> {
    let key = state
        .settings
        .signing_key
        .as_ref()
        .ok_or("this server has no signing key")?;
    let index = state
        .merkle
        .wait_for(position, std::time::Duration::from_secs(2))
        .await;
    if let Some(stalled) = index.stalled {
        return Err(format!("the Merkle index stopped: {stalled}"));
    }
    if !index.ready {
        return Err("the Merkle index is loading".into());
    }
    let (seq, hash) = state
        .store()
        .disclosure_head()
        .await
        .map_err(|e| format!("the personal data access record: {e}"))?;
    Ok(key.sign(
        index.head.size,
        &index.head.root,
        &index.head.chain_hash,
        Some((seq, &hash)),
        Utc::now(),
    ))
}

/// The last position of the log and its hash.
///
/// Keep the pair: `/v1/audit/proof` later shows whether the log only grew from it. The answer
/// also says when the head event was recorded and when the head was read; an empty log answers
/// position 0 and 64 zeros. Admin and auditor only.
#[utoipa::path(
    tag = "audit",
    responses((status = 200, description = "The head", body = HeadView), ReadErrors)
)]
#[get("/audit/head")]
async fn audit_head(
    _caller: Authorized<Audit>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let head = state.store().head().await?;
    let recorded_at = match head.position {
        0 => None,
        p => state
            .store()
            .read_all(p - 1, 1, &Default::default())
            .await?
            .first()
            .map(|e| e.recorded_at),
    };
    let (signed, unsigned_because) = match signed_head(&state, head.position).await {
        Ok(signed) => (Some(signed), None),
        Err(why) => (None, Some(why)),
    };
    Ok(HttpResponse::Ok().json(HeadView {
        position: head.position,
        hash: hex::encode(head.hash),
        recorded_at,
        read_at: Utc::now(),
        signed,
        unsigned_because,
    }))
}

/// A key that signs tree heads.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    pub key_id: String,
    /// `ed25519`.
    pub algorithm: String,
    /// The public key, hex (32 bytes).
    pub public_key: String,
    /// Whether heads are signed with it now.
    pub current: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeysView {
    pub keys: Vec<KeyView>,
}

/// The public keys that sign tree heads.
///
/// What an auditor needs, and nothing else, to check a kept head later (`fangkong audit check`).
/// Each head names its key by `key_id`, so a key can be rotated: the current key signs, and the
/// keys it replaced (`--retired-signing-key`) are listed with `current: false` so heads kept
/// earlier still check. Admin and auditor.
#[utoipa::path(
    tag = "audit",
    responses((status = 200, description = "The keys", body = KeysView), ReadErrors)
)]
#[get("/audit/keys")]
async fn audit_keys(
    _caller: Authorized<Audit>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let view = |public: fangkong_heads::PublicKey, current: bool| KeyView {
        key_id: public.key_id(),
        algorithm: "ed25519".into(),
        public_key: public.to_hex(),
        current,
    };
    let keys = state
        .settings
        .signing_key
        .iter()
        .map(|key| view(key.public(), true))
        .chain(state.settings.retired_keys.iter().map(|k| view(*k, false)))
        .collect();
    Ok(HttpResponse::Ok().json(KeysView { keys }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InclusionQuery {
    /// The event's log position.
    #[serde(deserialize_with = "crate::extract::position_within_i64")]
    pub position: u64,
    /// The tree size of a signed head (at least `position`).
    #[serde(deserialize_with = "crate::extract::position_within_i64")]
    pub tree_size: u64,
}

/// An inclusion proof: the event's leaf and its audit path.
#[derive(Debug, Serialize, ToSchema)]
pub struct InclusionView {
    pub position: u64,
    pub tree_size: u64,
    /// The event's chain hash (the leaf's data), hex.
    pub chain_hash: String,
    /// RFC 6962 audit path, leaf side first, hex.
    pub audit_path: Vec<String>,
}

/// Prove that one event is in the tree of a signed head.
///
/// Answers the event's chain hash and its RFC 6962 audit path in the tree of `tree_size` events: a
/// few dozen hashes at most, checked against the head's `root_hash` without reading the log
/// (`fangkong audit check --event`). Admin and auditor. 409 `tree_not_indexed` when the tree does
/// not reach `tree_size` yet.
#[utoipa::path(
    tag = "audit",
    params(InclusionQuery),
    responses(
        (status = 200, description = "The proof", body = InclusionView),
        (status = 409, description = "`tree_not_indexed`: the tree does not reach `tree_size`", body = crate::problem::Problem, content_type = "application/problem+json"),
        ReadErrors
    )
)]
#[get("/audit/inclusion")]
async fn inclusion(
    _caller: Authorized<Audit>,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q: InclusionQuery = query(&req)?;
    if q.position == 0 || q.position > q.tree_size {
        return Err(ApiError::field("position", "must be 1 to tree_size"));
    }
    indexed(&state, q.tree_size)?;
    let store = state.store();
    let leaf = store.hash_at(q.position).await?.ok_or_else(unindexed)?;
    let path = store
        .inclusion_proof(q.position, q.tree_size)
        .await?
        .ok_or_else(unindexed)?;
    Ok(HttpResponse::Ok().json(InclusionView {
        position: q.position,
        tree_size: q.tree_size,
        chain_hash: hex::encode(leaf),
        audit_path: path.iter().map(hex::encode).collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyQuery {
    /// The older head's tree size (at least 1).
    #[serde(deserialize_with = "crate::extract::position_within_i64")]
    pub from: u64,
    /// The newer head's tree size (at least `from`).
    #[serde(deserialize_with = "crate::extract::position_within_i64")]
    pub to: u64,
}

/// A consistency proof between two tree sizes.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsistencyView {
    pub from: u64,
    pub to: u64,
    /// RFC 6962 consistency proof, hex.
    pub proof: Vec<String>,
}

/// Prove that an older signed head is a prefix of a newer one.
///
/// Answers the RFC 6962 consistency proof from the tree of `from` events to the tree of `to`
/// events: with the two heads' roots, it shows the log only grew between them (nothing before
/// `from` was changed, removed or reordered). Admin and auditor. 409 `tree_not_indexed` when the
/// tree does not reach `to` yet.
#[utoipa::path(
    tag = "audit",
    params(ConsistencyQuery),
    responses(
        (status = 200, description = "The proof", body = ConsistencyView),
        (status = 409, description = "`tree_not_indexed`: the tree does not reach `to`", body = crate::problem::Problem, content_type = "application/problem+json"),
        ReadErrors
    )
)]
#[get("/audit/consistency")]
async fn consistency(
    _caller: Authorized<Audit>,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q: ConsistencyQuery = query(&req)?;
    if q.from == 0 || q.from > q.to {
        return Err(ApiError::field("from", "must be 1 to `to`"));
    }
    indexed(&state, q.to)?;
    let hashes = state
        .store()
        .consistency_proof(q.from, q.to)
        .await?
        .ok_or_else(unindexed)?;
    Ok(HttpResponse::Ok().json(ConsistencyView {
        from: q.from,
        to: q.to,
        proof: hashes.iter().map(hex::encode).collect(),
    }))
}

fn unindexed() -> ApiError {
    ApiError::Unmet {
        code: "tree_not_indexed",
        detail: "the Merkle tree does not reach that size: use the tree_size of a signed head"
            .into(),
    }
}

/// Refuses a tree size the index has not reached (or cannot vouch for).
fn indexed(state: &AppState, size: u64) -> Result<(), ApiError> {
    let index = state.merkle.state();
    if index.ready && index.stalled.is_none() && index.head.size >= size {
        Ok(())
    } else {
        Err(unindexed())
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct VerifyQuery {
    /// First position to check (default 1); the stored hash before it is trusted.
    #[serde(default, deserialize_with = "crate::extract::within_i64")]
    pub from: Option<u64>,
    /// Last position to check (default: the head).
    #[serde(default, deserialize_with = "crate::extract::within_i64")]
    pub to: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BreakView {
    pub position: u64,
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyView {
    pub intact: bool,
    pub checked: u64,
    /// The last position that verified, and its hash.
    pub verified_position: u64,
    pub verified_hash: String,
    pub first_break: Option<BreakView>,
}

/// Recompute the chain over a range and report the first broken position.
///
/// Checks positions `from` (default 1) to `to` (default the head), each event's hash against
/// its content and the hash before it. A broken chain is still a 200 answer: `intact` is false
/// and `first_break` names the position and why. Admin and auditor only.
#[utoipa::path(
    tag = "audit",
    params(VerifyQuery),
    responses((status = 200, description = "The verification", body = VerifyView), ReadErrors)
)]
#[get("/audit/verify")]
async fn verify(
    _caller: Authorized<Audit>,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q: VerifyQuery = query(&req)?;
    // One walk of the chain at a time: many auditors' requests queue (up
    // to the request time limit) instead of each taking a core.
    let _turn = state
        .chain_walks
        .acquire()
        .await
        .map_err(|_| ApiError::Unavailable)?;
    let report = state.store().verify(q.from.unwrap_or(1), q.to).await?;
    Ok(HttpResponse::Ok().json(VerifyView {
        intact: report.is_intact(),
        checked: report.checked,
        verified_position: report.verified_head.position,
        verified_hash: hex::encode(report.verified_head.hash),
        first_break: report.first_break.map(|b| BreakView {
            position: b.position(),
            reason: b.to_string(),
        }),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ProofQuery {
    /// The position of a head kept earlier.
    #[serde(deserialize_with = "crate::extract::position_within_i64")]
    pub position: u64,
    /// Its hash, hex.
    pub hash: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProofView {
    /// The chain recomputed from position 1 reaches the kept position with
    /// the kept hash, and verifies on to today's head.
    pub extends: bool,
    /// The hash stored today at the kept position, if the log reaches it.
    pub stored_hash: Option<String>,
    /// The hash the chain recomputed from position 1 reaches there (absent
    /// when it breaks before it).
    pub recomputed_hash: Option<String>,
    pub head_position: u64,
    pub head_hash: String,
    pub first_break: Option<BreakView>,
}

/// Prove that today's log extends a head kept earlier.
///
/// The chain is recomputed from position 1 to the kept position and must reach the kept hash
/// there (so an edit anywhere before it is caught, though the hash stored at the kept position
/// was left alone), then verifies on to today's head. Its cost grows with the log.
#[utoipa::path(
    tag = "audit",
    params(ProofQuery),
    responses((status = 200, description = "The proof", body = ProofView), ReadErrors)
)]
#[get("/audit/proof")]
async fn proof(
    _caller: Authorized<Audit>,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q: ProofQuery = query(&req)?;
    let kept = q.hash.trim().to_ascii_lowercase();
    if kept.len() != 64 || !kept.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(ApiError::field("hash", "must be 64 hex characters"));
    }
    let mut hash = [0u8; 32];
    hex::decode_to_slice(&kept, &mut hash).map_err(|_| ApiError::field("hash", "must be hex"))?;
    let store = state.store();
    let stored = store.hash_at(q.position).await?.map(hex::encode);
    // The whole chain is recomputed: an edit before the kept position
    // leaves the hash stored there alone, and must still be caught. One
    // walk at a time, as for /audit/verify.
    let _turn = state
        .chain_walks
        .acquire()
        .await
        .map_err(|_| ApiError::Unavailable)?;
    let proof = store
        .prove_extends(fangkong_store::Head {
            position: q.position,
            hash,
        })
        .await?;
    Ok(HttpResponse::Ok().json(ProofView {
        extends: proof.extends,
        stored_hash: stored,
        recomputed_hash: proof.recomputed_hash.map(hex::encode),
        head_position: proof.head.position,
        head_hash: hex::encode(proof.head.hash),
        first_break: proof.first_break.map(|b| BreakView {
            position: b.position(),
            reason: b.to_string(),
        }),
    }))
}
