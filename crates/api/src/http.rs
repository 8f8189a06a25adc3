//! The HTTP app as the server runs it: routes, the contract and its browser,
//! request ids, metrics, access logs, and problem+json for unknown routes.

use std::time::Instant;

use actix_web::body::MessageBody;
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
    .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", api))
    .route(
        "/docs",
        web::get().to(|| async {
            HttpResponse::Found()
                .insert_header(("Location", "/docs/"))
                .finish()
        }),
    )
    .default_service(web::to(|req: actix_web::HttpRequest| async move {
        // A known path with another method: 405 naming the ones it takes.
        let allowed: Vec<&str> = req
            .match_pattern()
            .map(|pattern| {
                crate::access::RULES
                    .iter()
                    .filter(|(_, p, _)| *p == pattern)
                    .map(|(m, _, _)| *m)
                    .collect()
            })
            .unwrap_or_default();
        if allowed.is_empty() {
            actix_web::ResponseError::error_response(&ApiError::NotFound(
                "no such route; the contract is at /openapi.json".into(),
            ))
        } else {
            let mut response = actix_web::ResponseError::error_response(
                &ApiError::MethodNotAllowed(allowed.join(", ")),
            );
            if let Ok(value) = HeaderValue::from_str(&allowed.join(", ")) {
                response
                    .headers_mut()
                    .insert(actix_web::http::header::ALLOW, value);
            }
            response
        }
    }))
    .wrap(from_fn(time_limit))
    .wrap(from_fn(crate::access::guard))
    .wrap(cors(&state.settings.cors_origins))
    .wrap(from_fn(observe))
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
    let endless = req.path() == "/v1/events/live";
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
            "Idempotency-Key",
            "X-Correlation-Id",
            "X-Request-Id",
            "Last-Event-ID",
        ])
        .expose_headers([
            "ETag",
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

/// Gives every request an id, times it, counts it by matched route, and
/// logs one line for it (never with bodies: they hold personal data).
async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get("X-Request-Id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 100)
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let method = req.method().to_string();
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.metrics.clone());
    let mut response = next.call(req).await?;
    let matched = response
        .request()
        .extensions()
        .get::<crate::access::MatchedRoute>()
        .map(|m| m.0.clone());
    let route = matched.unwrap_or_else(|| {
        response
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".into())
    });
    let status = response.status().as_u16();
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
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static("x-request-id"), value);
    }
    Ok(response)
}
