//! The HTTP app as the server runs it: routes, the contract and its browser,
//! request ids, metrics, access logs, and problem+json for unknown routes.

use std::collections::HashMap;
use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, App, HttpMessage, HttpResponse};
use utoipa::OpenApi;
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::SwaggerUi;

use crate::extract::RequestId;
use crate::problem::ApiError;
use crate::{AppState, BodyLimit};

/// Builds the whole app: what `fangkong serve` runs and tests drive.
pub fn app(
    state: web::Data<AppState>,
    limit: BodyLimit,
) -> App<
    impl actix_web::dev::ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let (app, api) = App::new()
        .into_utoipa_app()
        .openapi(crate::ApiDoc::openapi())
        .app_data(state.clone())
        .app_data(limit)
        .configure(crate::configure)
        .split_for_parts();
    let mut api = api;
    crate::contract::declare_conventions(&mut api);
    crate::contract::declare_event_types(&mut api);
    let methods = std::sync::Arc::new(methods_by_route(&api));
    // Rendered once per worker, served as is.
    let spec = web::Bytes::from(api.to_json().unwrap_or_default());
    app.route(
        "/openapi.json",
        web::get().to(move || {
            let spec = spec.clone();
            async move {
                HttpResponse::Ok()
                    .content_type("application/json")
                    .body(spec)
            }
        }),
    )
    .service(
        SwaggerUi::new("/docs/{_:.*}")
            .url("/openapi.json", api)
            // Never sends the contract's address to swagger.io to be
            // validated: the service may sit on an intranet.
            .config(utoipa_swagger_ui::Config::default().validator_url("none")),
    )
    .route(
        "/",
        web::get().to(|| async { console(fangkong_console::index()) }),
    )
    .route("/console/{name}", web::get().to(console_asset))
    .route(
        "/docs",
        web::get().to(|| async {
            HttpResponse::Found()
                .insert_header(("Location", "/docs/"))
                .finish()
        }),
    )
    .default_service(web::to(move |req: actix_web::HttpRequest| {
        let methods = methods.clone();
        async move { unrouted(&req, &methods) }
    }))
    .wrap(from_fn(conditional))
    .wrap(from_fn(time_limit))
    .wrap(cors(&state.settings.cors_origins))
    .wrap(from_fn(observe))
    .wrap(tracing_actix_web::TracingLogger::<RequestSpan>::new())
}

/// A file of the command centre (the page at `/`), by its exact embedded
/// name; anything else is 404. Public: the files hold no data, and the page
/// asks for a token before it reads any.
async fn console_asset(name: web::Path<String>) -> HttpResponse {
    match fangkong_console::asset(&name) {
        Some(asset) => console(asset),
        None => actix_web::ResponseError::error_response(&ApiError::NotFound(
            "no such file of the command centre".into(),
        )),
    }
}

fn console(asset: &fangkong_console::Asset) -> HttpResponse {
    use actix_web::http::header;
    HttpResponse::Ok()
        .content_type(asset.content_type)
        // Revalidated every time (the ETag makes that cheap), so a new
        // binary's page is never mixed with an old one's scripts.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            fangkong_console::CONTENT_SECURITY_POLICY,
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .body(asset.body)
}

/// The route pattern the router matches a request to, found on the path as
/// the router reads it (percent-decoded), never on the raw text. Found once
/// per request and kept on it: each layer that names the route (the log
/// span, the metrics, the cache policy) would otherwise walk every route's
/// pattern again.
pub fn route_of(req: &actix_web::HttpRequest) -> Option<String> {
    if let Some(MatchedRoute(route)) = req.extensions().get::<MatchedRoute>() {
        return route.clone();
    }
    let route = req.resource_map().match_pattern(req.match_info().as_str());
    req.extensions_mut().insert(MatchedRoute(route.clone()));
    route
}

/// [`route_of`]'s answer, kept on the request.
#[derive(Debug, Clone)]
struct MatchedRoute(Option<String>);

/// The methods each declared route takes, from the contract the routes
/// registered (the one declaration of each route).
fn methods_by_route(api: &utoipa::openapi::OpenApi) -> HashMap<String, Vec<&'static str>> {
    use utoipa::openapi::HttpMethod;
    let mut methods = HashMap::new();
    for (path, item) in &api.paths.paths {
        let taken: Vec<&'static str> = [
            (HttpMethod::Get, "GET"),
            (HttpMethod::Post, "POST"),
            (HttpMethod::Put, "PUT"),
            (HttpMethod::Delete, "DELETE"),
            (HttpMethod::Patch, "PATCH"),
        ]
        .into_iter()
        .filter(|(method, _)| match method {
            HttpMethod::Get => item.get.is_some(),
            HttpMethod::Post => item.post.is_some(),
            HttpMethod::Put => item.put.is_some(),
            HttpMethod::Delete => item.delete.is_some(),
            HttpMethod::Patch => item.patch.is_some(),
            _ => false,
        })
        .map(|(_, name)| name)
        .collect();
        methods.insert(path.clone(), taken);
    }
    methods
}

/// What no route handles: 405 naming the methods of a known path, 404
/// otherwise. Nothing here runs a handler, so nothing here is public.
fn unrouted(
    req: &actix_web::HttpRequest,
    methods: &HashMap<String, Vec<&'static str>>,
) -> HttpResponse {
    let allowed = route_of(req)
        .and_then(|pattern| methods.get(&pattern).cloned())
        .unwrap_or_default();
    if allowed.is_empty() {
        return actix_web::ResponseError::error_response(&ApiError::NotFound(
            "no such route; the contract is at /openapi.json".into(),
        ));
    }
    let mut response =
        actix_web::ResponseError::error_response(&ApiError::MethodNotAllowed(allowed.join(", ")));
    if let Ok(value) = HeaderValue::from_str(&allowed.join(", ")) {
        response
            .headers_mut()
            .insert(actix_web::http::header::ALLOW, value);
    }
    response
}

/// The digest part of an answer's `ETag`: the first 12 bytes of its
/// SHA-256, in hex. A handler that keeps an answer's bytes keeps this with
/// them and puts it on the response, so it is not computed again per read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyDigest(std::sync::Arc<str>);

impl BodyDigest {
    pub(crate) fn of(body: &[u8]) -> BodyDigest {
        BodyDigest(hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(body)[..12]).into())
    }
}

/// Validators for every read: a `200` to `GET` gets a strong
/// `ETag` over its bytes (after the entity's version where the handler gave
/// one, `"7.3f2a…"`, so `If-Match` still reads the version before the dot),
/// and a request whose `If-None-Match` names it is answered `304` with no
/// body. The bytes decide, not the version alone: a returnee's view also
/// depends on the day and on what the caller's role may see, and a list or a
/// dashboard on the projection's position and the query. A field app on a
/// poor network pays for the answer once.
async fn conditional(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    use actix_web::http::{header, Method, StatusCode};
    let reads = *req.method() == Method::GET;
    let figures_only =
        route_of(req.request()).is_some_and(|route| FIGURES_ONLY.contains(&route.as_str()));
    let wanted = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let response = next.call(req).await?;
    let streamed = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"text/event-stream"));
    if !reads || response.status() != StatusCode::OK || streamed {
        return Ok(response.map_into_boxed_body());
    }
    let (request, response) = response.into_parts();
    let (mut head, body) = response.into_parts();
    // Bodies here are whole JSON or CSV documents already in memory.
    let bytes = match actix_web::body::to_bytes(body).await {
        Ok(bytes) => bytes,
        Err(_) => return Err(ApiError::Internal.into()),
    };
    let version = head
        .headers()
        .get(header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim_matches('"').to_owned());
    // The handler's own, when it kept one with these bytes.
    let digest = match head.extensions().get::<BodyDigest>() {
        Some(kept) => kept.clone(),
        None => BodyDigest::of(&bytes),
    };
    let digest = &*digest.0;
    let tag = match version {
        Some(version) => format!("\"{version}.{digest}\""),
        None => format!("\"{digest}\""),
    };
    let headers = head.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&tag) {
        headers.insert(header::ETAG, value);
    }
    // Kept by the caller only (what it holds depends on its token) and
    // revalidated each time. An answer that may hold personal data is not
    // stored by a browser at all (a shared office PC keeps its cache on
    // disk); a field app keeps its own copy and still sends If-None-Match.
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(if figures_only {
                "private, no-cache"
            } else {
                "private, no-store"
            }),
        );
    }
    headers.append(header::VARY, HeaderValue::from_static("Authorization"));
    if wanted.as_deref().is_some_and(|w| none_match(w, &tag)) {
        headers.remove(header::CONTENT_TYPE);
        headers.remove(header::CONTENT_LENGTH);
        *head.status_mut() = StatusCode::NOT_MODIFIED;
        let response = head.set_body(BoxBody::new(()));
        return Ok(ServiceResponse::new(request, response));
    }
    let response = head.set_body(BoxBody::new(bytes));
    Ok(ServiceResponse::new(request, response))
}

/// Routes whose answers hold figures and no personal data: a browser may
/// keep them to revalidate.
const FIGURES_ONLY: &[&str] = &[
    "/v1/dashboard",
    "/v1/zones/{zone_id}/dashboard",
    "/v1/reports/daily",
    "/v1/audit/head",
    "/v1/audit/verify",
    "/v1/audit/proof",
    "/openapi.json",
    "/healthz",
    "/readyz",
];

/// Whether `If-None-Match` names `tag` (RFC 9110 13.1.2: `*`, or a list
/// compared weakly).
fn none_match(header: &str, tag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    header.trim() == "*" || header.split(',').any(|t| bare(t) == bare(tag))
}

/// Abandons a request that takes longer than the configured limit, with a
/// 503 the client may retry (the live feed, which never ends, is exempt).
async fn time_limit(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let limit = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.settings.request_timeout);
    let endless = crate::contract::LIVE_FEEDS.contains(&req.match_info().as_str());
    match limit {
        Some(limit) if !endless => match tokio::time::timeout(limit, next.call(req)).await {
            Ok(response) => response,
            Err(_) => Err(ApiError::TimedOut {
                seconds: limit.as_secs_f64(),
            }
            .into()),
        },
        _ => next.call(req).await,
    }
}

/// Browsers may call from the configured origins only; preflights are
/// answered here, before any token is asked for.
fn cors(origins: &[String]) -> actix_cors::Cors {
    let mut cors = actix_cors::Cors::default()
        .allowed_methods(["GET", "POST", "PUT", "DELETE"])
        .allowed_headers([
            "Authorization",
            "Content-Type",
            "If-Match",
            "If-None-Match",
            "Idempotency-Key",
            "X-Correlation-Id",
            "X-Request-Id",
            "Last-Event-ID",
        ])
        .expose_headers([
            "ETag",
            "Location",
            "RateLimit-Limit",
            "RateLimit-Remaining",
            "RateLimit-Reset",
            "X-Request-Id",
            "X-Projection-Position",
            "X-Projection-Wanted",
            "Retry-After",
        ])
        .max_age(3600);
    for origin in origins {
        cors = cors.allowed_origin(origin);
    }
    cors
}

/// The request span (tracing-actix-web's root span, named by the matched
/// route), carrying the request's id: the client's `X-Request-Id` when it
/// sent a sane one, a new one otherwise.
#[derive(Debug)]
pub struct RequestSpan;

impl tracing_actix_web::RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> tracing::Span {
        let request_id = request
            .headers()
            .get("X-Request-Id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 100 && v.bytes().all(|b| b.is_ascii_graphic()))
            .map(str::to_owned)
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        request
            .extensions_mut()
            .insert(RequestId(request_id.clone()));
        // tracing-actix-web's root span, its fields named alike, but with
        // the target as logged decided here: recording a redacted target
        // afterwards adds a second field beside the first, and text logs
        // print both.
        let method = request.method().as_str();
        let route = route_of(request.request()).unwrap_or_else(|| "default".to_owned());
        let connection = request.connection_info();
        // The address as the limits see it: X-Forwarded-For only from a
        // trusted proxy, never as any caller says.
        let client_ip = request
            .app_data::<web::Data<AppState>>()
            .map(|state| {
                crate::access::client_ip(request.request(), &state.settings.trusted_proxies)
                    .to_string()
            })
            .unwrap_or_default();
        let user_agent = request
            .headers()
            .get(actix_web::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        tracing::info_span!(
            "HTTP request",
            http.method = %method,
            http.route = %route,
            http.flavor = ?request.version(),
            http.scheme = %connection.scheme(),
            http.host = %connection.host(),
            http.client_ip = %client_ip,
            http.user_agent = %user_agent,
            http.target = %redacted_target(request.path(), request.query_string()),
            http.status_code = tracing::field::Empty,
            otel.name = %format!("{method} {route}"),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            request.id = %request_id,
            exception.message = tracing::field::Empty,
            exception.details = tracing::field::Empty,
        )
    }

    fn on_request_end<B: MessageBody>(
        span: tracing::Span,
        outcome: &Result<ServiceResponse<B>, actix_web::Error>,
    ) {
        tracing_actix_web::DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

/// The request target with every parameter that may carry a secret
/// hidden: one whose name, as the query parser decodes it (`%74icket` is
/// `ticket`), is `ticket`, and any that holds something shaped like a
/// ticket or a token however it is named or spelled. A live-feed ticket
/// stays out of the logs, as a token does.
fn redacted_target(path: &str, query: &str) -> String {
    if query.is_empty() {
        return path.to_owned();
    }
    // Case-blind, without copying the text.
    let holds = |text: &[u8], marker: &[u8]| {
        text.windows(marker.len())
            .any(|w| w.eq_ignore_ascii_case(marker))
    };
    let secretish = |text: &str| holds(text.as_bytes(), b"fkt_") || holds(text.as_bytes(), b"fk_");
    let query: Vec<String> = query
        .split('&')
        .map(|pair| {
            let decoded = form_urlencoded::parse(pair.as_bytes()).next();
            if decoded.as_ref().is_some_and(|(name, _)| name == "ticket") {
                "ticket=***".to_owned()
            } else if secretish(pair)
                || decoded.is_some_and(|(name, value)| secretish(&name) || secretish(&value))
            {
                "***".to_owned()
            } else {
                pair.to_owned()
            }
        })
        .collect();
    format!("{path}?{}", query.join("&"))
}

#[cfg(test)]
mod tests {
    use super::redacted_target;

    #[test]
    fn a_ticket_is_hidden_however_its_name_is_spelled() {
        for query in [
            "ticket=fkt_secret",
            "%74icket=fkt_secret",
            "%74%69%63%6B%65%74=fkt_secret",
            "heartbeat_seconds=1&ticket=fkt_secret",
            "ticket=fkt_secret&ticket=fkt_secret",
            // Spellings the parser takes for another name: still hidden.
            "ticket[]=fkt_secret",
            "ticket+=fkt_secret",
            "x=1;ticket=fkt_secret",
            "ticket%3Dfkt_secret",
            "TICKET=FKT_secret",
            "t=%66kt_secret",
            "token=fk_secret",
        ] {
            let target = redacted_target("/v1/dashboard/live", query);
            let lower = target.to_ascii_lowercase();
            assert!(
                !lower.contains("fkt_secret")
                    && !lower.contains("fk_secret")
                    && !lower.contains("%66kt"),
                "{query}: {target}"
            );
        }
        assert_eq!(
            redacted_target("/v1/events/live", "after=3&named=false"),
            "/v1/events/live?after=3&named=false"
        );
        assert_eq!(redacted_target("/v1/zones", ""), "/v1/zones");
    }
}

/// Times every request, counts it by matched route and status, logs one
/// line for it (never with bodies: they hold personal data) and echoes its
/// id. Refusals by the layers inside (CORS, the time limit) become their
/// answers here, so they are counted, logged and carry the id as well.
async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let method = req.method().to_string();
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.metrics.clone());
    let route = route_of(req.request()).unwrap_or_else(|| "unmatched".into());
    let outcome = next.call(req).await;
    let status = match &outcome {
        Ok(response) => response.status().as_u16(),
        Err(error) => error.as_response_error().status_code().as_u16(),
    };
    let elapsed = started.elapsed();
    if let Some(metrics) = metrics {
        metrics.observe(&method, &route, status, elapsed);
    }
    tracing::info!(
        http.method = %method,
        http.route = %route,
        http.status = status,
        http.duration_ms = elapsed.as_secs_f64() * 1000.0,
        request.id = %request_id,
        "request"
    );
    let mut response = match outcome {
        Ok(response) => response.map_into_boxed_body(),
        // The request went into the inner layers; the answer is made when
        // the error is rendered, with the id on it.
        Err(error) => return Err(Refused { error, request_id }.into()),
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static("x-request-id"), value);
    }
    let quota = response
        .request()
        .extensions()
        .get::<crate::access::Quota>()
        .copied();
    if let Some(quota) = quota {
        let headers = response.headers_mut();
        for (name, value) in [
            ("ratelimit-limit", quota.limit),
            ("ratelimit-remaining", quota.remaining),
            ("ratelimit-reset", quota.reset),
        ] {
            headers.insert(HeaderName::from_static(name), HeaderValue::from(value));
        }
    }
    Ok(response)
}

/// A refusal by a layer inside `observe` (CORS, the time limit), answered
/// as that layer answers it, with the request's id.
#[derive(Debug)]
struct Refused {
    error: actix_web::Error,
    request_id: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl actix_web::ResponseError for Refused {
    fn status_code(&self) -> actix_web::http::StatusCode {
        self.error.as_response_error().status_code()
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = self.error.error_response();
        if let Ok(value) = HeaderValue::from_str(&self.request_id) {
            response
                .headers_mut()
                .insert(HeaderName::from_static("x-request-id"), value);
        }
        response
    }
}
