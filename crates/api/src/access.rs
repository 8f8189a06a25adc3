//! Who may see and do what: bearer tokens, the role each route admits, a
//! zone worker's zones, the limit on failed attempts, and masking of
//! personal data for those who must not see it.

use std::collections::{BTreeSet, HashMap};
use std::marker::PhantomData;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::http::header::{HeaderMap, AUTHORIZATION};
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use fangkong_domain::access::Role;
pub use ipnet::IpNet;

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::problem::ApiError;
use crate::tickets::{Claim, Feed, TicketGuard};
use crate::AppState;

/// Who is calling: the token's id, name, role and (for a zone worker) zones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub token_id: Uuid,
    pub name: String,
    pub role: Role,
    pub zones: BTreeSet<Uuid>,
}

impl Caller {
    /// Whether the caller may see what belongs to `zone` at all.
    pub fn sees_zone(&self, zone: Uuid) -> bool {
        self.role != Role::ZoneWorker || self.zones.contains(&zone)
    }

    /// Whether the caller may see personal data of people in `zone` in full.
    pub fn sees_personal_data(&self, zone: Option<Uuid>) -> bool {
        match self.role {
            Role::Admin => true,
            Role::ZoneWorker => zone.is_some_and(|z| self.zones.contains(&z)),
            Role::County | Role::Auditor => false,
        }
    }

    /// A zone worker asking for another zone's entity is told it does not
    /// exist: 404, not 403, so ids of other zones reveal nothing.
    pub fn check_zone(&self, zone: Option<Uuid>, what: &str) -> Result<(), ApiError> {
        match zone {
            Some(zone) if !self.sees_zone(zone) => {
                Err(ApiError::NotFound(format!("no such {what}")))
            }
            _ => Ok(()),
        }
    }

    /// The caller as the application knows a command's sender.
    pub fn actor(&self) -> fangkong_app::Actor {
        fangkong_app::Actor {
            token_id: self.token_id,
            name: self.name.clone(),
            role: self.role,
            scope: match self.role {
                Role::ZoneWorker => fangkong_app::Scope::Zones(self.zones.clone()),
                _ => fangkong_app::Scope::Township,
            },
        }
    }
}

/// What a route needs of its caller: the roles it admits. Each non-public
/// handler names one by taking [`Authorized`] as its first extractor, so the
/// check runs on the route the router chose and a handler cannot run without
/// it.
pub trait Policy: 'static {
    const ROLES: &'static [Role];
    /// How the refusal names what was wanted.
    const WHAT: &'static str;
}

/// Issuing and revoking tokens, establishing zones, naming their leaders.
#[derive(Debug, Clone, Copy)]
pub struct Admin;
impl Policy for Admin {
    const ROLES: &'static [Role] = &[Role::Admin];
    const WHAT: &'static str = "administration";
}

/// Field work and the entities it touches: admin, and zone workers in their
/// zones (the zone itself is checked against the entity).
#[derive(Debug, Clone, Copy)]
pub struct Field;
impl Policy for Field {
    const ROLES: &'static [Role] = &[Role::Admin, Role::ZoneWorker];
    const WHAT: &'static str = "field work";
}

/// Figures without personal data, and the zone list they are read by:
/// every role.
#[derive(Debug, Clone, Copy)]
pub struct Figures;
impl Policy for Figures {
    const ROLES: &'static [Role] = &[Role::Admin, Role::ZoneWorker, Role::County, Role::Auditor];
    const WHAT: &'static str = "figures";
}

/// The log, its verification and proofs.
#[derive(Debug, Clone, Copy)]
pub struct Audit;
impl Policy for Audit {
    const ROLES: &'static [Role] = &[Role::Admin, Role::Auditor];
    const WHAT: &'static str = "the audit surface";
}

/// A caller the route's [`Policy`] admits. Only [`FromRequest`] and
/// [`Caller::authorize`] make one.
#[derive(Debug, Clone)]
pub struct Authorized<P> {
    caller: Caller,
    policy: PhantomData<fn() -> P>,
}

impl<P> std::ops::Deref for Authorized<P> {
    type Target = Caller;
    fn deref(&self) -> &Caller {
        &self.caller
    }
}

impl<P> Authorized<P> {
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// The service itself, for its own writes: never from a request.
    pub(crate) fn system() -> Self {
        Authorized {
            caller: Caller {
                token_id: Uuid::nil(),
                name: "fangkong".into(),
                role: Role::Admin,
                zones: BTreeSet::new(),
            },
            policy: PhantomData,
        }
    }
}

impl Caller {
    /// Holds this caller to policy `P`: how a batch item is checked against
    /// the policy its command declares.
    pub fn authorize<P: Policy>(&self) -> Result<Authorized<P>, ApiError> {
        if !P::ROLES.contains(&self.role) {
            return Err(ApiError::Forbidden(format!(
                "a {} token cannot use {}",
                self.role.code(),
                P::WHAT
            )));
        }
        Ok(Authorized {
            caller: self.clone(),
            policy: PhantomData,
        })
    }
}

impl<P: Policy> FromRequest for Authorized<P> {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(authorize_request::<P>(req))
    }
}

fn authorize_request<P: Policy>(req: &HttpRequest) -> Result<Authorized<P>, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or(ApiError::Internal)?;
    admit(state, req, authenticate(state, req)?)
}

/// Holds an authenticated caller to policy `P` and its rate limit, and
/// records it on the request (for the logs and the RateLimit headers):
/// the same for a bearer token and a live-feed ticket.
fn admit<P: Policy>(
    state: &AppState,
    req: &HttpRequest,
    caller: Caller,
) -> Result<Authorized<P>, ApiError> {
    let authorized = caller.authorize::<P>()?;
    match state.rate_limit.take(caller.token_id) {
        Err(retry_after) => return Err(ApiError::RateLimited { retry_after }),
        Ok(Some(quota)) => {
            req.extensions_mut().insert(quota);
        }
        Ok(None) => {}
    }
    req.extensions_mut().insert(caller);
    Ok(authorized)
}

/// Who may read `/metrics`: anyone when the server listens on loopback only
/// or was started with `--metrics-public`; otherwise an admin or auditor
/// token.
#[derive(Debug)]
pub struct MetricsReader;

impl FromRequest for MetricsReader {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let public = req
            .app_data::<web::Data<AppState>>()
            .is_some_and(|s| s.settings.metrics_public);
        std::future::ready(if public {
            Ok(MetricsReader)
        } else {
            authorize_request::<Audit>(req).map(|_| MetricsReader)
        })
    }
}

/// The address a request came from: the peer, or, when the peer is a
/// trusted proxy, the nearest address in `X-Forwarded-For` that is not one.
pub fn client_ip(req: &HttpRequest, trusted: &[IpNet]) -> IpAddr {
    let peer = req
        .peer_addr()
        .map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip());
    forwarded_client(peer, req.headers(), trusted)
}

fn forwarded_client(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    // Right to left: each hop appended the address it saw; the first one
    // not ours is the client as far as we can trust.
    let hops = headers
        .get_all("X-Forwarded-For")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in hops.into_iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if is_trusted(&ip) => client = ip,
            Ok(ip) => return ip,
            // A garbled hop: nothing left of it can be trusted.
            Err(_) => return client,
        }
    }
    client
}

pub use fangkong_app::tokens::{token_id_of, NewToken, TOKEN_PREFIX};

/// Equal in time independent of where the bytes differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn unauthenticated(detail: &str) -> ApiError {
    ApiError::Unauthenticated(detail.into())
}

/// Compared with a presented token whose id names no token, so an unknown
/// id costs what a wrong secret costs.
const NO_SUCH_SECRET: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Checks the bearer token of a request against the tokens the log has
/// issued (as the projection tailing the log knows them: never against
/// saved state). A presented token that fails counts against its address;
/// past the limit, such requests are answered 429, while a valid token from
/// the same address still gets through.
pub fn authenticate(state: &AppState, req: &HttpRequest) -> Result<Caller, ApiError> {
    let Some(raw) = req.headers().get(AUTHORIZATION) else {
        return Err(unauthenticated("send Authorization: Bearer <token>"));
    };
    let checked = check_token(state, raw.to_str().ok());
    // Only a refused token is a guess; a stalled projection is the server's.
    if matches!(checked, Err(ApiError::Unauthenticated(_))) {
        let ip = client_ip(req, &state.settings.trusted_proxies);
        state.failed_auth.failed(ip);
        if let Some(retry_after) = state.failed_auth.refused(ip) {
            return Err(ApiError::TooManyFailedAttempts { retry_after });
        }
    }
    checked
}

fn check_token(state: &AppState, header: Option<&str>) -> Result<Caller, ApiError> {
    // Tokens are known from the log through the projection: stopped at an
    // event it cannot apply, it would miss any revocation after it. Fail
    // closed until an administrator repairs the log.
    if let Some(stalled) = state.projector.stalled() {
        return Err(ApiError::ProjectionStalled {
            position: stalled.position,
        });
    }
    let token = header
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| unauthenticated("the Authorization header is not a bearer token"))?;
    let token_id = token_id_of(token).unwrap_or_default();
    let entry = state.projector.read(|m| m.tokens.get(token_id).cloned());
    let kept = entry
        .as_ref()
        .map_or(NO_SUCH_SECRET, |e| e.secret_sha256.as_str());
    let kept = hex::decode(kept).unwrap_or_default();
    let presented = Sha256::digest(token.as_bytes());
    let matches = constant_time_eq(&presented, &kept);
    let entry = match entry {
        Some(entry) if matches => entry,
        _ => return Err(unauthenticated("not a token of this service")),
    };
    if entry.revoked_at.is_some() {
        return Err(unauthenticated("the token was revoked"));
    }
    Ok(Caller {
        token_id,
        name: entry.name,
        role: entry.role,
        zones: entry.zones,
    })
}

/// Authorises a live-feed request by its ticket (`?ticket=`) as a bearer
/// token would be: the token it stands for must still be live, hold a role
/// the policy admits, and have quota left. A ticket this server never
/// issued counts as a failed authentication of its address; one it issued,
/// refused now (used, expired, connected), does not: it is no guess.
fn authorize_ticket<P: Policy>(
    req: &HttpRequest,
    ticket: &str,
    feed: Feed,
) -> Result<(Authorized<P>, TicketGuard), ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or(ApiError::Internal)?;
    if let Some(stalled) = state.projector.stalled() {
        return Err(ApiError::ProjectionStalled {
            position: stalled.position,
        });
    }
    let resuming = req.headers().contains_key("Last-Event-ID");
    let (token_id, guard) = match state.tickets.claim(ticket, feed, resuming) {
        Claim::Granted { token_id, guard } => (token_id, guard),
        Claim::Refused(why) => return Err(unauthenticated(why)),
        Claim::Unknown => {
            // A ticket of the right shape is no guess (256 random bits
            // are not guessed): most likely one this server expired,
            // pushed out for a newer one of the same token, or lost in a
            // restart. Only other text counts against the address, which
            // a whole office may share.
            if !ticket_shaped(ticket) {
                let ip = client_ip(req, &state.settings.trusted_proxies);
                state.failed_auth.failed(ip);
                if let Some(retry_after) = state.failed_auth.refused(ip) {
                    return Err(ApiError::TooManyFailedAttempts { retry_after });
                }
            }
            return Err(unauthenticated(&format!(
                "not a ticket of this server: ask POST {} for one",
                feed.tickets_route()
            )));
        }
    };
    let entry = state
        .projector
        .read(|m| m.tokens.get(token_id).cloned())
        .filter(|e| e.revoked_at.is_none())
        .ok_or_else(|| unauthenticated("the token behind the ticket was revoked"))?;
    let caller = Caller {
        token_id,
        name: entry.name,
        role: entry.role,
        zones: entry.zones,
    };
    Ok((admit(state, req, caller)?, guard))
}

/// Which feed a route serves, so a ticket opens only its own.
pub trait FeedRoute: 'static {
    const FEED: Feed;
}

/// `/v1/events/live`.
#[derive(Debug)]
pub struct EventsFeed;
impl FeedRoute for EventsFeed {
    const FEED: Feed = Feed::Events;
}

/// `/v1/dashboard/live`.
#[derive(Debug)]
pub struct FiguresFeed;
impl FeedRoute for FiguresFeed {
    const FEED: Feed = Feed::Figures;
}

/// Whether `ticket` looks like one this server issues (`fkt_` and 64 hex).
fn ticket_shaped(ticket: &str) -> bool {
    ticket
        .strip_prefix("fkt_")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A live feed's caller: by `?ticket=` when one is given (a browser's
/// `EventSource`), holding the ticket for the connection, or by the bearer
/// token.
#[derive(Debug)]
pub struct FeedCaller<P, F> {
    pub caller: Authorized<P>,
    pub ticket: Option<TicketGuard>,
    feed: PhantomData<fn() -> F>,
}

#[derive(serde::Deserialize)]
struct TicketParam {
    ticket: Option<String>,
}

impl<P: Policy, F: FeedRoute> FromRequest for FeedCaller<P, F> {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let ticket = web::Query::<TicketParam>::from_query(req.query_string())
            .ok()
            .and_then(|q| q.into_inner().ticket);
        std::future::ready(match ticket {
            Some(ticket) => {
                authorize_ticket::<P>(req, &ticket, F::FEED).map(|(caller, guard)| FeedCaller {
                    caller,
                    ticket: Some(guard),
                    feed: PhantomData,
                })
            }
            None => authorize_request::<P>(req).map(|caller| FeedCaller {
                caller,
                ticket: None,
                feed: PhantomData,
            }),
        })
    }
}

/// Failed authentications per client address: after `limit` within
/// `window`, the address is refused (429) until the window ends.
#[derive(Debug, Clone)]
pub struct FailedAuth {
    limit: u32,
    window: Duration,
    seen: Arc<Mutex<HashMap<IpAddr, (Instant, u32)>>>,
}

impl Default for FailedAuth {
    fn default() -> Self {
        FailedAuth::new(20, Duration::from_secs(60))
    }
}

impl FailedAuth {
    pub fn new(limit: u32, window: Duration) -> Self {
        FailedAuth {
            // 0 turns the limit off.
            limit,
            window,
            seen: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Seconds the address must still wait, when it is refused.
    pub fn refused(&self, ip: IpAddr) -> Option<u64> {
        if self.limit == 0 {
            return None;
        }
        let seen = self.seen.lock().ok()?;
        let (since, failures) = seen.get(&ip)?;
        let elapsed = since.elapsed();
        (*failures >= self.limit && elapsed < self.window)
            .then(|| (self.window - elapsed).as_secs().max(1))
    }

    pub fn failed(&self, ip: IpAddr) {
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        if seen.len() > 100_000 {
            // Bounded memory under a spray of addresses: forget old windows.
            let window = self.window;
            seen.retain(|_, (since, _)| since.elapsed() < window);
        }
        let entry = seen.entry(ip).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= self.window {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }
}

/// Requests per token: a bucket of `burst` requests refilled at `per_second`
/// (0 turns the limit off). Answers the seconds to wait when empty.
#[derive(Debug, Clone)]
pub struct RateLimit {
    per_second: f64,
    burst: f64,
    buckets: Arc<Mutex<HashMap<Uuid, (f64, Instant)>>>,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit::new(100, 200)
    }
}

impl RateLimit {
    pub fn new(per_second: u32, burst: u32) -> Self {
        RateLimit {
            per_second: f64::from(per_second),
            burst: f64::from(burst.max(1)),
            buckets: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Takes one request from the token's bucket: what is left (none
    /// when the limit is off), or the seconds to wait.
    pub fn take(&self, token: Uuid) -> Result<Option<Quota>, u64> {
        if self.per_second <= 0.0 {
            return Ok(None);
        }
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(None);
        };
        let now = Instant::now();
        let (level, since) = buckets.entry(token).or_insert((self.burst, now));
        *level =
            (*level + now.duration_since(*since).as_secs_f64() * self.per_second).min(self.burst);
        *since = now;
        if *level >= 1.0 {
            *level -= 1.0;
            Ok(Some(Quota {
                limit: self.burst as u64,
                remaining: level.floor() as u64,
                reset: ((self.burst - *level) / self.per_second).ceil() as u64,
            }))
        } else {
            Err(((1.0 - *level) / self.per_second).ceil().max(1.0) as u64)
        }
    }
}

/// A token's standing against its rate limit, sent back as the
/// `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Requests the bucket holds when full.
    pub limit: u64,
    /// Requests left now.
    pub remaining: u64,
    /// Seconds until the bucket is full again.
    pub reset: u64,
}

/// The family name (the first character), then one `*` per other character.
pub fn mask_name(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => std::iter::once(first).chain(chars.map(|_| '*')).collect(),
        None => String::new(),
    }
}

/// `110105********1234`, `138****5678`.
pub fn keep_ends(text: &str, head: usize, tail: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= head + tail {
        return "*".repeat(chars.len());
    }
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if i < head || i >= chars.len() - tail {
                *c
            } else {
                '*'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_text_unlike_an_issued_ticket_counts_as_a_guess() {
        let issued = crate::tickets::LiveTickets::default()
            .issue(Uuid::now_v7(), Feed::Figures)
            .expect("issued");
        assert!(ticket_shaped(&issued));
        for guess in [
            "fkt_00",
            "fkt_",
            "",
            "fk_0123",
            &issued[..issued.len() - 1],
            &format!("{issued}0"),
            &issued.replace("fkt_", "fkx_"),
            &format!("fkt_{}", "g".repeat(64)),
        ] {
            assert!(!ticket_shaped(guess), "{guess}");
        }
    }

    #[test]
    fn tokens_are_found_by_their_id_and_compared_in_constant_time() {
        let a = fangkong_app::tokens::new_token().expect("token");
        assert_eq!(token_id_of(&a.token), Some(a.token_id));
        assert_eq!(token_id_of("fk_nonsense"), None);
        assert_eq!(token_id_of(&a.token[..a.token.len() - 1]), None);
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn a_token_gets_its_burst_then_waits_for_the_refill() {
        let limit = RateLimit::new(1, 3);
        let token = Uuid::now_v7();
        for left in [2, 1, 0] {
            let quota = limit.take(token).expect("within the burst").expect("on");
            assert_eq!((quota.limit, quota.remaining), (3, left));
            assert!(quota.reset >= 3 - left, "{quota:?}");
        }
        assert_eq!(limit.take(token), Err(1));
        assert!(limit.take(Uuid::now_v7()).is_ok(), "buckets are per token");
        assert_eq!(RateLimit::new(0, 1).take(token), Ok(None), "0 turns it off");
    }

    #[test]
    fn failed_attempts_past_the_limit_are_refused_for_the_window() {
        let limit = FailedAuth::new(3, Duration::from_secs(60));
        let ip = IpAddr::from([10, 0, 0, 1]);
        for _ in 0..2 {
            limit.failed(ip);
        }
        assert_eq!(limit.refused(ip), None);
        limit.failed(ip);
        assert!(limit.refused(ip).is_some_and(|s| s > 0 && s <= 60));
        assert_eq!(limit.refused(IpAddr::from([10, 0, 0, 2])), None);
    }
}
