//! Who may see and do what: bearer tokens, the role each route admits, a
//! zone worker's zones, the limit on failed attempts, and masking of
//! personal data for those who must not see it.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, AUTHORIZATION};
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use fangkong_domain::access::{ApiToken, Role};
use fangkong_projections::TokenEntry;
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::problem::ApiError;
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

    /// What a write records as its actor.
    pub fn actor(&self) -> Value {
        serde_json::json!({
            "token_id": self.token_id,
            "name": self.name,
            "role": self.role.code(),
        })
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Caller, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(
            req.extensions().get::<Caller>().cloned().ok_or_else(|| {
                ApiError::Unauthenticated("send Authorization: Bearer <token>".into())
            }),
        )
    }
}

/// The route pattern a request matched, found once per request.
#[derive(Debug, Clone)]
pub struct MatchedRoute(pub String);

/// Which roles a route admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// No token needed: health, readiness, metrics, the contract.
    Public,
    Roles(&'static [Role]),
}

const ADMIN: Rule = Rule::Roles(&[Role::Admin]);
/// Field work and the entities it touches: admin, and zone workers in
/// their zones.
const FIELD: Rule = Rule::Roles(&[Role::Admin, Role::ZoneWorker]);
/// Figures without personal data: everyone with a token.
const FIGURES: Rule = Rule::Roles(&[Role::Admin, Role::ZoneWorker, Role::County, Role::Auditor]);
/// The zone list: field work, and the county and auditors who need the
/// zones' names and ids to read their dashboards.
const ZONE_LIST: Rule = FIGURES;
/// The log and its verification.
const AUDIT: Rule = Rule::Roles(&[Role::Admin, Role::Auditor]);

/// Every route and who may call it. A route missing here is refused to
/// everyone (and the route-by-role test fails).
pub const RULES: &[(&str, &str, Rule)] = &[
    ("GET", "/healthz", Rule::Public),
    ("GET", "/readyz", Rule::Public),
    ("GET", "/metrics", Rule::Public),
    ("GET", "/openapi.json", Rule::Public),
    ("GET", "/docs", Rule::Public),
    ("GET", "/docs/{_:.*}", Rule::Public),
    ("POST", "/v1/tokens", ADMIN),
    ("GET", "/v1/tokens", ADMIN),
    ("DELETE", "/v1/tokens/{token_id}", ADMIN),
    ("POST", "/v1/zones", ADMIN),
    ("GET", "/v1/zones", ZONE_LIST),
    ("GET", "/v1/zones/{zone_id}", ZONE_LIST),
    ("PUT", "/v1/zones/{zone_id}/leader", ADMIN),
    ("POST", "/v1/zones/{zone_id}/villages", FIELD),
    ("POST", "/v1/zones/{zone_id}/grids", FIELD),
    ("POST", "/v1/zones/{zone_id}/gathering-dispersals", FIELD),
    ("POST", "/v1/zones/{zone_id}/publicity", FIELD),
    ("POST", "/v1/zones/{zone_id}/patrols", FIELD),
    ("PUT", "/v1/zones/{zone_id}/daily-reports/{date}", FIELD),
    ("GET", "/v1/zones/{zone_id}/daily-reports/{date}", FIELD),
    ("GET", "/v1/zones/{zone_id}/dashboard", FIGURES),
    ("POST", "/v1/staff-health-checks", FIELD),
    ("POST", "/v1/returnees", FIELD),
    ("GET", "/v1/returnees", FIELD),
    ("GET", "/v1/returnees/{returnee_id}", FIELD),
    ("GET", "/v1/returnees/{returnee_id}/events", FIELD),
    ("POST", "/v1/returnees/{returnee_id}/screenings", FIELD),
    (
        "PUT",
        "/v1/returnees/{returnee_id}/responsibility-team",
        FIELD,
    ),
    ("POST", "/v1/returnees/{returnee_id}/quarantine", FIELD),
    ("POST", "/v1/returnees/{returnee_id}/health-checks", FIELD),
    (
        "POST",
        "/v1/returnees/{returnee_id}/abnormal-conditions",
        FIELD,
    ),
    ("POST", "/v1/returnees/{returnee_id}/referrals", FIELD),
    (
        "POST",
        "/v1/returnees/{returnee_id}/quarantine/extension",
        FIELD,
    ),
    ("POST", "/v1/returnees/{returnee_id}/exposures", FIELD),
    ("POST", "/v1/returnees/{returnee_id}/quarantine/end", FIELD),
    ("POST", "/v1/checkpoints", FIELD),
    ("GET", "/v1/checkpoints", FIELD),
    ("GET", "/v1/checkpoints/{checkpoint_id}", FIELD),
    ("POST", "/v1/checkpoints/{checkpoint_id}/crossings", FIELD),
    ("POST", "/v1/venues", FIELD),
    ("GET", "/v1/venues", FIELD),
    ("GET", "/v1/venues/{venue_id}", FIELD),
    ("POST", "/v1/venues/{venue_id}/commitments", FIELD),
    ("POST", "/v1/venues/{venue_id}/closure", FIELD),
    ("POST", "/v1/venues/{venue_id}/reopening", FIELD),
    ("POST", "/v1/venues/{venue_id}/enforcement-actions", FIELD),
    ("POST", "/v1/banquets", FIELD),
    ("GET", "/v1/banquets", FIELD),
    ("GET", "/v1/banquets/{banquet_id}", FIELD),
    ("POST", "/v1/banquets/{banquet_id}/postponement", FIELD),
    ("POST", "/v1/banquets/{banquet_id}/cancellation", FIELD),
    ("POST", "/v1/banquets/{banquet_id}/scale-down", FIELD),
    ("POST", "/v1/batches", FIELD),
    ("GET", "/v1/quarantine/roster", FIELD),
    ("GET", "/v1/dashboard", FIGURES),
    ("GET", "/v1/reports/daily", FIGURES),
    ("GET", "/v1/events", AUDIT),
    ("GET", "/v1/events/live", AUDIT),
    ("GET", "/v1/audit/head", AUDIT),
    ("GET", "/v1/audit/verify", AUDIT),
    ("GET", "/v1/audit/proof", AUDIT),
];

/// The rule of a route, by method and the pattern it was registered with.
pub fn rule(method: &str, pattern: &str) -> Option<Rule> {
    RULES
        .iter()
        .find(|(m, p, _)| m.eq_ignore_ascii_case(method) && *p == pattern)
        .map(|(_, _, rule)| *rule)
}

/// The rule for a concrete path (a batch item's), matching `{...}`
/// segments of the patterns as wildcards.
pub fn rule_for_path(method: &str, path: &str) -> Option<Rule> {
    route_of(method, path).map(|(rule, _)| rule)
}

/// The rule and pattern a concrete path falls under, segment by segment.
fn route_of(method: &str, path: &str) -> Option<(Rule, &'static str)> {
    let path = path
        .split('?')
        .next()
        .unwrap_or_default()
        .trim_end_matches('/');
    RULES
        .iter()
        .find(|(m, p, _)| {
            m.eq_ignore_ascii_case(method) && {
                let mut pattern = p.split('/');
                let mut segments = path.split('/');
                loop {
                    match (pattern.next(), segments.next()) {
                        (None, None) => break true,
                        (Some(p), Some(s))
                            if p == s
                                || (p.starts_with('{')
                                    && p.ends_with('}')
                                    && !p.contains(':')
                                    && !s.is_empty()) => {}
                        _ => break false,
                    }
                }
            }
        })
        .map(|(_, p, rule)| (*rule, *p))
}

impl Rule {
    pub fn admits(self, role: Role) -> bool {
        match self {
            Rule::Public => true,
            Rule::Roles(roles) => roles.contains(&role),
        }
    }
}

/// Prefix of every token this service issues.
pub const TOKEN_PREFIX: &str = "fk_";

/// A token just made: shown once, then only its hash is kept.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub token_id: Uuid,
    /// `fk_<id>_<256 random bits, hex>`.
    pub token: String,
    pub sha256: String,
}

/// 256 bits from the operating system's generator, with the token's id in
/// front so it can be found without scanning.
pub fn new_token() -> Result<NewToken, ApiError> {
    let mut secret = [0u8; 32];
    getrandom::getrandom(&mut secret).map_err(|error| {
        tracing::error!(%error, "no randomness for a token");
        ApiError::Internal
    })?;
    let token_id = Uuid::now_v7();
    let token = format!(
        "{TOKEN_PREFIX}{}_{}",
        token_id.simple(),
        hex::encode(secret)
    );
    let sha256 = hex::encode(Sha256::digest(token.as_bytes()));
    Ok(NewToken {
        token_id,
        token,
        sha256,
    })
}

/// The id inside a token, if it has this service's shape.
pub fn token_id_of(token: &str) -> Option<Uuid> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    if secret.len() != 64 || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Uuid::try_parse(id).ok()
}

/// Equal in time independent of where the bytes differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn unauthenticated(detail: &str) -> ApiError {
    ApiError::Unauthenticated(detail.into())
}

/// Checks the bearer token of a request against the issued tokens.
pub async fn authenticate_headers(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Caller, ApiError> {
    let raw = headers
        .get(AUTHORIZATION)
        .ok_or_else(|| unauthenticated("send Authorization: Bearer <token>"))?
        .to_str()
        .map_err(|_| unauthenticated("the Authorization header is not a bearer token"))?;
    let token = raw
        .strip_prefix("Bearer ")
        .map(str::trim)
        .ok_or_else(|| unauthenticated("the Authorization header is not a bearer token"))?;
    let token_id =
        token_id_of(token).ok_or_else(|| unauthenticated("not a token of this service"))?;
    let entry = match state.projector.read(|m| m.tokens.get(token_id).cloned()) {
        Some(entry) => entry,
        // Issued moments ago, perhaps by another process: ask the log.
        None => from_log(state, token_id).await?,
    };
    let presented = Sha256::digest(token.as_bytes());
    let kept = hex::decode(&entry.secret_sha256).unwrap_or_default();
    if !constant_time_eq(&presented, &kept) {
        return Err(unauthenticated("not a token of this service"));
    }
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

async fn from_log(state: &AppState, token_id: Uuid) -> Result<TokenEntry, ApiError> {
    let loaded = state
        .commands
        .load::<ApiToken>(&ApiToken::stream_id(token_id))
        .await?;
    let issued = loaded
        .state
        .issued
        .ok_or_else(|| unauthenticated("not a token of this service"))?;
    Ok(TokenEntry {
        token_id,
        name: issued.name.to_string(),
        role: issued.role,
        zones: issued.zones.iter().map(|z| z.as_uuid()).collect(),
        secret_sha256: issued.secret_sha256,
        issued_at: chrono::Utc::now(),
        revoked_at: loaded.state.revoked.then(chrono::Utc::now),
    })
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

    pub fn take(&self, token: Uuid) -> Result<(), u64> {
        if self.per_second <= 0.0 {
            return Ok(());
        }
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        let now = Instant::now();
        let (level, since) = buckets.entry(token).or_insert((self.burst, now));
        *level =
            (*level + now.duration_since(*since).as_secs_f64() * self.per_second).min(self.burst);
        *since = now;
        if *level >= 1.0 {
            *level -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *level) / self.per_second).ceil().max(1.0) as u64)
        }
    }
}

/// The middleware: finds the route's rule, authenticates, checks the role,
/// and hands the handlers a [`Caller`].
pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    // The rule by the path's segments, without the router's regexes (a
    // quarter of a dashboard read's time went to them); the router's own
    // matching only for a path no rule names.
    let (rule, pattern) = match route_of(req.method().as_str(), req.path()) {
        Some((rule, pattern)) => (Some(rule), Some(pattern.to_owned())),
        None => {
            let pattern = req.match_pattern();
            let rule = match &pattern {
                Some(pattern) => rule(req.method().as_str(), pattern),
                // No route: the 404 answers, no token needed.
                None => Some(Rule::Public),
            };
            (rule, pattern)
        }
    };
    req.extensions_mut().insert(MatchedRoute(
        pattern.clone().unwrap_or_else(|| "unmatched".into()),
    ));
    let roles = match rule {
        Some(Rule::Public) => return next.call(req).await,
        // A known path with a method it does not take: the 405 answers.
        None if RULES.iter().any(|(_, p, _)| Some(*p) == pattern.as_deref()) => {
            return next.call(req).await;
        }
        None => {
            return Err(ApiError::Forbidden("this route admits no role".into()).into());
        }
        Some(Rule::Roles(roles)) => roles,
    };
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Err(ApiError::Internal.into());
    };
    let ip = req
        .peer_addr()
        .map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip());
    let presented = req.headers().contains_key(AUTHORIZATION);
    if presented {
        if let Some(retry_after) = state.failed_auth.refused(ip) {
            return Err(ApiError::TooManyFailedAttempts { retry_after }.into());
        }
    }
    let caller = match authenticate_headers(&state, req.headers()).await {
        Ok(caller) => caller,
        Err(error) => {
            // A token presented and refused is a guess; no token at all is not.
            if matches!(error, ApiError::Unauthenticated(_)) && presented {
                state.failed_auth.failed(ip);
            }
            return Err(error.into());
        }
    };
    if !roles.contains(&caller.role) {
        return Err(ApiError::Forbidden(format!(
            "a {} token cannot use this route",
            caller.role.code()
        ))
        .into());
    }
    if let Err(retry_after) = state.rate_limit.take(caller.token_id) {
        return Err(ApiError::RateLimited { retry_after }.into());
    }
    req.extensions_mut().insert(caller);
    next.call(req).await
}

/// Masks every `personal` object in `value`: names to the family name,
/// resident ID numbers to their first six and last four characters, phone
/// numbers to their first three and last four digits, addresses entirely.
pub fn mask_personal(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                if key == "personal" {
                    mask_object(inner);
                } else {
                    mask_personal(inner);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_personal),
        _ => {}
    }
}

fn mask_object(value: &mut Value) {
    let Value::Object(map) = value else {
        *value = Value::String("***".into());
        return;
    };
    for (key, field) in map.iter_mut() {
        let Value::String(text) = field else {
            mask_personal(field);
            continue;
        };
        *text = match key.as_str() {
            "name" => mask_name(text),
            "resident_id" => keep_ends(text, 6, 4),
            "phone" => keep_ends(text, 3, 4),
            _ => "***".into(),
        };
    }
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
    fn personal_data_is_masked_as_the_township_shows_it() {
        let mut event = serde_json::json!({
            "zone_id": "z",
            "personal": {"name": "张三丰", "resident_id": "11010519491231002X",
                         "phone": "13812345678", "address": "桥头村三组12号"},
            "nested": [{"personal": {"name": "李四", "phone": "13900001111"}}]
        });
        mask_personal(&mut event);
        assert_eq!(event["personal"]["name"], "张**");
        assert_eq!(event["personal"]["resident_id"], "110105********002X");
        assert_eq!(event["personal"]["phone"], "138****5678");
        assert_eq!(event["personal"]["address"], "***");
        assert_eq!(event["nested"][0]["personal"]["phone"], "139****1111");
        assert_eq!(event["zone_id"], "z");
    }

    #[test]
    fn tokens_carry_their_id_and_256_random_bits() {
        let a = new_token().expect("token");
        let b = new_token().expect("token");
        assert_ne!(a.token, b.token);
        assert_eq!(token_id_of(&a.token), Some(a.token_id));
        assert_eq!(a.token.len(), TOKEN_PREFIX.len() + 32 + 1 + 64);
        assert_eq!(token_id_of("fk_nonsense"), None);
        assert_eq!(token_id_of(&a.token[..a.token.len() - 1]), None);
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn concrete_paths_find_the_rule_of_their_pattern() {
        assert_eq!(rule_for_path("POST", "/v1/zones"), Some(ADMIN));
        assert_eq!(
            rule_for_path("post", "/v1/returnees/0190/health-checks"),
            Some(FIELD)
        );
        assert_eq!(rule_for_path("PUT", "/v1/zones/abc/leader"), Some(ADMIN));
        assert_eq!(rule_for_path("POST", "/v1/nowhere"), None);
    }

    #[test]
    fn a_token_gets_its_burst_then_waits_for_the_refill() {
        let limit = RateLimit::new(1, 3);
        let token = Uuid::now_v7();
        for _ in 0..3 {
            assert_eq!(limit.take(token), Ok(()));
        }
        assert_eq!(limit.take(token), Err(1));
        assert_eq!(limit.take(Uuid::now_v7()), Ok(()), "buckets are per token");
        assert_eq!(RateLimit::new(0, 1).take(token), Ok(()), "0 turns it off");
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
