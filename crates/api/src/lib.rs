//! The fangkong HTTP API over actix-web: every command and entity read, with
//! problem+json errors, idempotent retries, conditional writes, and the
//! OpenAPI contract generated from the same registrations that route.

pub mod access;
pub mod contract;
pub mod disclosures;
pub mod export;
pub mod extract;
pub mod feeds;
pub mod http;
pub mod metrics;
pub mod personal;
pub mod problem;
pub mod renders;
pub mod routes;
pub mod tickets;
pub mod write;

use fangkong_domain::Township;
use fangkong_store::EventStore;
use utoipa::OpenApi;
use utoipa_actix_web::{scope, AppExt};

pub use extract::{BodyLimit, DEFAULT_BODY_LIMIT};

/// How the service reads, exports and limits.
#[derive(Debug, Clone)]
pub struct Settings {
    /// When each day's report is due.
    pub rules: fangkong_projections::ReportingRules,
    /// Our figures and zones in the county's DHIS2, when configured.
    pub dhis2: Option<std::sync::Arc<export::Dhis2Mapping>>,
    pub projector: fangkong_projections::ProjectorOptions,
    /// Browser origins allowed to call the API (CORS); none by default.
    pub cors_origins: Vec<String>,
    /// Requests per second per token, and the burst allowed (0: no limit).
    pub rate_per_second: u32,
    pub rate_burst: u32,
    /// Longest a request may take before it is answered 503.
    pub request_timeout: std::time::Duration,
    /// Refused tokens per minute from one address before its further
    /// refused tokens are answered 429 (0: no limit). Valid tokens from the
    /// address are never held back.
    pub failed_auth_limit: u32,
    /// Proxies whose `X-Forwarded-For` names the client (for the limits and
    /// the logs); from any other peer the header is ignored.
    pub trusted_proxies: Vec<access::IpNet>,
    /// `/metrics` without a token (the server sets it when it listens on
    /// loopback only, or with `--metrics-public`).
    pub metrics_public: bool,
    /// Longest a live feed stays open before the client must resume with
    /// `Last-Event-ID`.
    pub live_max_lifetime: std::time::Duration,
    /// The key that signs tree heads (kept outside the database); heads
    /// go unsigned without one.
    pub signing_key: Option<std::sync::Arc<fangkong_heads::SigningKey>>,
    /// Public keys that signed heads before a rotation: still listed, so
    /// heads kept earlier can be checked.
    pub retired_keys: Vec<fangkong_heads::PublicKey>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            rules: Default::default(),
            dhis2: None,
            projector: Default::default(),
            cors_origins: vec![],
            rate_per_second: 100,
            rate_burst: 200,
            request_timeout: std::time::Duration::from_secs(30),
            failed_auth_limit: 20,
            trusted_proxies: vec![],
            metrics_public: false,
            live_max_lifetime: std::time::Duration::from_secs(3600),
            signing_key: None,
            retired_keys: Vec::new(),
        }
    }
}

/// The seal of the stored Merkle frontier, derived from the signing key:
/// the server signs heads only over a tree it built itself.
pub fn frontier_seal(key: &fangkong_heads::SigningKey) -> fangkong_store::merkle::FrontierSeal {
    fangkong_store::merkle::FrontierSeal::from_secret(key.to_hex().as_bytes())
}

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    pub commands: fangkong_app::Application,
    pub metrics: metrics::Metrics,
    pub projector: fangkong_projections::Projector,
    pub settings: Settings,
    pub failed_auth: access::FailedAuth,
    /// Tickets that open the live feeds from a browser.
    pub tickets: tickets::LiveTickets,
    /// Live feeds open now, bounded per token and in all.
    pub feeds: feeds::OpenFeeds,
    pub rate_limit: access::RateLimit,
    /// Flipped when the server begins to shut down: live feeds end.
    pub shutdown: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
    /// The Merkle tree over the log, for signed heads and proofs.
    pub merkle: fangkong_store::merkle::MerkleIndex,
    /// Turns at walking the whole chain (verification, extension proofs):
    /// one at a time.
    pub chain_walks: std::sync::Arc<tokio::sync::Semaphore>,
    /// The record of who was shown personal data.
    pub disclosures: disclosures::Disclosures,
    /// Zone dashboards rendered at the latest position and second.
    pub zone_dashboards: renders::ZoneDashboards,
}

impl AppState {
    /// Must run inside a tokio runtime: it starts the projections' tailer.
    pub fn new(
        store: EventStore,
        township: Township,
        vault: fangkong_vault::Vault,
        settings: Settings,
    ) -> Self {
        let metrics = metrics::Metrics::default();
        let shutdown = std::sync::Arc::new(tokio::sync::watch::channel(false).0);
        AppState {
            merkle: fangkong_store::merkle::MerkleIndex::spawn(
                store.clone(),
                settings.signing_key.as_deref().map(frontier_seal),
                shutdown.subscribe(),
            ),
            projector: fangkong_projections::Projector::start(
                store.clone(),
                township,
                settings.projector.clone(),
            ),
            disclosures: disclosures::Disclosures::start(store.clone()),
            commands: fangkong_app::Application::new(store, township, vault),
            metrics,
            tickets: tickets::LiveTickets::default(),
            feeds: feeds::OpenFeeds::default(),
            rate_limit: access::RateLimit::new(settings.rate_per_second, settings.rate_burst),
            failed_auth: access::FailedAuth::new(
                settings.failed_auth_limit,
                std::time::Duration::from_secs(60),
            ),
            settings,
            shutdown,
            chain_walks: std::sync::Arc::new(tokio::sync::Semaphore::new(1)),
            zone_dashboards: renders::ZoneDashboards::default(),
        }
    }

    /// The keys personal data is sealed under.
    pub fn vault(&self) -> &fangkong_vault::Vault {
        self.commands.vault()
    }

    pub fn store(&self) -> &EventStore {
        self.commands.store()
    }

    /// Refuses to answer figures while the projection is stopped at an
    /// event it cannot apply: they would be silently short.
    pub fn figures_current(&self) -> Result<(), problem::ApiError> {
        match self.projector.stalled() {
            Some(stalled) => Err(problem::ApiError::ProjectionStalled {
                position: stalled.position,
            }),
            None => Ok(()),
        }
    }
}

/// Declares the bearer tokens of every `/v1` route in the contract.
struct BearerTokens;

impl utoipa::Modify for BearerTokens {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A token from `POST /v1/tokens` or `fangkong token create` (fk_...)",
                    ))
                    .build(),
            ),
        );
        openapi.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
    }
}

#[derive(OpenApi)]
#[openapi(
    modifiers(&BearerTokens),
    info(
        title = "fangkong",
        description = "The township's epidemic prevention and control record: every fact an \
            event in one append-only, hash-chained log.\n\n\
            Writes answer `{id, version, position, events}`. Send `Idempotency-Key` to make a \
            write safe to retry, `If-Match: \"<version>\"` to make it conditional. Errors are \
            `application/problem+json` with a stable `code`.\n\n\
            Every route but health, readiness, metrics and the contract takes \
            `Authorization: Bearer <token>`; roles: `admin`, `zone_worker` (its zones), \
            `county` (figures only), `auditor` (the log, verification, as-of reads; personal \
            data masked). 401 without a valid token, 403 outside the role, 404 outside the zone.",
        license(name = "Apache-2.0", url = "https://www.apache.org/licenses/LICENSE-2.0"),
        contact(name = "fangkong maintainers", url = "https://fangkong.invalid/")
    ),
    servers(
        (url = "/", description = "The server that serves this contract"),
        (url = "http://127.0.0.1:8080", description = "A local `fangkong serve`")
    ),
    tags(
        (name = "zones", description = "Zones, their leaders, villages and grids"),
        (name = "returnees", description = "Registration, screening, five-for-one teams, home quarantine"),
        (name = "checkpoints", description = "Duty posts and crossings"),
        (name = "venues", description = "Premises: commitments, closures, enforcement"),
        (name = "banquets", description = "Reported banquets and dissuasion"),
        (name = "activity", description = "Counted zone work and staff morning checks"),
        (name = "reports", description = "Each zone's daily report, zero reports included"),
        (name = "dashboards", description = "Zone and township dashboards, and the county's daily pull (JSON, CSV, DHIS2)"),
        (name = "batches", description = "Many commands in one call, for offline sync"),
        (name = "audit", description = "The global log, the chain head, verification and proofs"),
        (name = "tokens", description = "API tokens (admin): issue, list, revoke"),
        (name = "system", description = "Health, readiness, metrics")
    )
)]
pub(crate) struct ApiDoc;

/// Registers every route on `cfg` and returns the OpenAPI document that
/// describes them. Used by the server and by tests alike.
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(
        scope::scope("/v1")
            // The router tries routes in this order, a regex each: the
            // busiest (dashboards, crossings, visits) go first.
            .configure(routes::dashboards::configure)
            .configure(routes::checkpoints::configure)
            .configure(routes::returnees::configure)
            .configure(routes::roster::configure)
            .configure(routes::zones::configure)
            .configure(routes::venues::configure)
            .configure(routes::banquets::configure)
            .configure(routes::activity::configure)
            .configure(routes::reports::configure)
            .configure(routes::tokens::configure)
            .configure(routes::audit::configure)
            .configure(routes::batches::configure),
    )
    .configure(routes::system::configure);
}

/// The OpenAPI document, without starting anything.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut api) = actix_web::App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(configure)
        .split_for_parts();
    contract::declare_conventions(&mut api);
    contract::declare_event_types(&mut api);
    api
}

/// Schemas of the domain's events that a schema of the same name already
/// in the contract kept out: what the contract test holds to none.
pub fn event_schema_clashes() -> Vec<String> {
    let (_, mut api) = actix_web::App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(configure)
        .split_for_parts();
    contract::declare_event_types(&mut api)
}

/// The document as the published `openapi/openapi.json` holds it.
pub fn openapi_json() -> String {
    openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_parameter_sits_where_the_contract_says() {
        let spec = serde_json::to_value(super::openapi()).expect("the contract renders");
        let paths = spec["paths"].as_object().expect("paths");
        for (path, item) in paths {
            for (method, op) in item.as_object().expect("operations") {
                for p in op["parameters"].as_array().into_iter().flatten() {
                    let name = p["name"].as_str().unwrap_or_default();
                    let in_path = path.contains(&format!("{{{name}}}"));
                    match p["in"].as_str() {
                        Some("path") => {
                            assert!(in_path, "{method} {path}: {name} is not in the path")
                        }
                        Some("query") => {
                            assert!(!in_path, "{method} {path}: {name} is a path segment")
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}
