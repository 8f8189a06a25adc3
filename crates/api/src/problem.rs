//! Every error the API answers with, as RFC 9457 problem+json, converted in
//! this one place. A domain error names the rule that was broken; a storage
//! failure is a 503 whose body says nothing of internals (the log has them).

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use fangkong_app::AppError;
use fangkong_domain::DomainError;
use fangkong_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// The field, as a JSON path (`personal.resident_id`).
    pub field: String,
    pub message: String,
}

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "https://fangkong.invalid/problems/quarantine_already_active",
    "title": "Conflict with the current state",
    "status": 409,
    "detail": "a home quarantine is already under way (since 2020-01-25)",
    "code": "quarantine_already_active"
}))]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// A stable code to branch on.
    pub code: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the request body is not valid JSON: {0}")]
    Malformed(String),
    #[error("{} invalid field(s)", .0.len())]
    Invalid(Vec<FieldError>),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("too many failed authentications from this address; retry in {retry_after} s")]
    TooManyFailedAttempts { retry_after: u64 },
    #[error("this token sent more requests than its rate allows; retry in {retry_after} s")]
    RateLimited { retry_after: u64 },
    #[error("this token holds as many live feeds or tickets as it may: close one, or retry in {retry_after} s")]
    TooManyFeeds { retry_after: u64 },
    #[error("the request took longer than {seconds} s and was abandoned; a write may still land: retry with the same Idempotency-Key")]
    TimedOut { seconds: f64 },
    #[error("{0}")]
    NotFound(String),
    #[error("the event at position {position} of the log cannot be read; the log needs an administrator")]
    LogCorrupt { position: u64 },
    #[error("the figures stopped before position {position}: the event there cannot be applied; the log needs an administrator")]
    ProjectionStalled { position: u64 },
    #[error("this route takes {0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Rule(DomainError),
    #[error("{0}")]
    Contended(String),
    #[error("the entity is at version {actual}; If-Match asked for {expected}")]
    PreconditionFailed { expected: u64, actual: u64 },
    #[error("If-Match must be a stream version in quotes, like \"3\"")]
    BadIfMatch,
    #[error("Idempotency-Key {0:?} was already used with a different request")]
    IdempotencyKeyReused(String),
    #[error("send the body as application/json")]
    UnsupportedMediaType,
    #[error("the request body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// A request the server cannot answer as configured (e.g. a DHIS2
    /// export without a mapping): 409 with its own code.
    #[error("{detail}")]
    Unmet { code: &'static str, detail: String },
    #[error("the event store is unavailable; try again shortly")]
    Unavailable,
    #[error("internal error")]
    Internal,
}

impl ApiError {
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Invalid(vec![FieldError {
            field: field.into(),
            message: message.into(),
        }])
    }

    fn code(&self) -> String {
        match self {
            ApiError::Malformed(_) => "malformed_json".into(),
            ApiError::Invalid(_) => "invalid_fields".into(),
            ApiError::Unauthenticated(_) => "unauthenticated".into(),
            ApiError::Forbidden(_) => "forbidden".into(),
            ApiError::TooManyFailedAttempts { .. } => "too_many_failed_attempts".into(),
            ApiError::RateLimited { .. } => "rate_limited".into(),
            ApiError::TooManyFeeds { .. } => "too_many_feeds".into(),
            ApiError::TimedOut { .. } => "request_timeout".into(),
            ApiError::NotFound(_) => "not_found".into(),
            ApiError::LogCorrupt { .. } => "log_corrupt".into(),
            ApiError::ProjectionStalled { .. } => "projection_stalled".into(),
            ApiError::MethodNotAllowed(_) => "method_not_allowed".into(),
            ApiError::Rule(rule) => rule.code().into(),
            ApiError::Contended(_) => "write_contended".into(),
            ApiError::PreconditionFailed { .. } => "version_mismatch".into(),
            ApiError::BadIfMatch => "bad_if_match".into(),
            ApiError::IdempotencyKeyReused(_) => "idempotency_key_reused".into(),
            ApiError::UnsupportedMediaType => "unsupported_media_type".into(),
            ApiError::TooLarge { .. } => "payload_too_large".into(),
            ApiError::Unmet { code, .. } => (*code).into(),
            ApiError::Unavailable => "store_unavailable".into(),
            ApiError::Internal => "internal".into(),
        }
    }

    fn title(&self) -> &'static str {
        match self {
            ApiError::Malformed(_) => "Malformed request",
            ApiError::Invalid(_) | ApiError::IdempotencyKeyReused(_) => "Invalid request",
            ApiError::Unauthenticated(_) => "Authentication required",
            ApiError::Forbidden(_) => "Not allowed for this role",
            ApiError::TooManyFailedAttempts { .. } => "Too many failed attempts",
            ApiError::RateLimited { .. } | ApiError::TooManyFeeds { .. } => "Too many requests",
            ApiError::TimedOut { .. } => "Request timed out",
            ApiError::NotFound(_) => "Not found",
            ApiError::LogCorrupt { .. } | ApiError::ProjectionStalled { .. } => {
                "Service unavailable"
            }
            ApiError::MethodNotAllowed(_) => "Method not allowed",
            ApiError::Rule(_) => "Conflict with the current state",
            ApiError::Unmet { .. } => "Cannot be answered as configured",
            ApiError::PreconditionFailed { .. } => "Version mismatch",
            ApiError::BadIfMatch => "Invalid If-Match",
            ApiError::TooLarge { .. } => "Request too large",
            ApiError::UnsupportedMediaType => "Unsupported media type",
            ApiError::Unavailable | ApiError::Contended(_) => "Service unavailable",
            ApiError::Internal => "Internal error",
        }
    }

    pub fn problem(&self) -> Problem {
        let errors = match self {
            ApiError::Invalid(errors) => errors.clone(),
            _ => vec![],
        };
        let detail = match self {
            ApiError::Invalid(errors) => errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("; "),
            other => other.to_string(),
        };
        let code = self.code();
        Problem {
            kind: format!("https://fangkong.invalid/problems/{code}"),
            title: self.title().into(),
            status: self.status_code().as_u16(),
            detail,
            code,
            errors,
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(error: DomainError) -> Self {
        match error {
            DomainError::InvalidValue { field, error } => ApiError::field(field, error.message),
            DomainError::FutureDate { .. } => ApiError::field("occurred_at", error.to_string()),
            // Worded as an entity outside the caller's zones is, so the two
            // cannot be told apart.
            DomainError::ZoneNotEstablished => ApiError::NotFound("no such zone".into()),
            DomainError::TokenNotIssued => ApiError::NotFound("no such token".into()),
            DomainError::ReturneeNotRegistered => ApiError::NotFound("no such returnee".into()),
            DomainError::CheckpointNotEstablished => {
                ApiError::NotFound("no such checkpoint".into())
            }
            DomainError::VenueNotRegistered => ApiError::NotFound("no such venue".into()),
            DomainError::BanquetNotReported => ApiError::NotFound("no such banquet".into()),
            e if e.is_not_found() => ApiError::NotFound(e.to_string()),
            e => ApiError::Rule(e),
        }
    }
}

/// The application's refusals, each to its answer.
impl From<AppError> for ApiError {
    fn from(error: AppError) -> Self {
        match error {
            AppError::Rule(rule) => rule.into(),
            AppError::NotFound { what } => ApiError::NotFound(format!("no such {what}")),
            AppError::VersionMismatch { expected, actual } => {
                ApiError::PreconditionFailed { expected, actual }
            }
            AppError::KeyReused { key } => ApiError::IdempotencyKeyReused(key),
            AppError::Invalid { field, message } => ApiError::field(field, message),
            e @ (AppError::Contended { .. } | AppError::Resequence) => {
                ApiError::Contended(e.to_string())
            }
            AppError::Corrupt { position } => ApiError::LogCorrupt { position },
            AppError::Store(e) => e.into(),
            e @ AppError::PersonalDataErased { .. } => ApiError::Unmet {
                code: "personal_data_erased",
                detail: e.to_string(),
            },
            e @ AppError::PersonalDataInClear { .. } => ApiError::Unmet {
                code: "personal_data_not_encrypted",
                detail: e.to_string(),
            },
            AppError::Vault(error) => {
                tracing::error!(%error, "personal data keys failed");
                ApiError::Internal
            }
            AppError::NoRandomness => ApiError::Internal,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        if let StoreError::Corrupt { position, reason } = &error {
            tracing::error!(position, %reason, "a stored event cannot be read");
            return ApiError::LogCorrupt {
                position: *position,
            };
        }
        if error.is_unavailable() {
            tracing::warn!(error = %error, "event store unavailable");
            ApiError::Unavailable
        } else {
            tracing::error!(error = ?error, "event store refused a request");
            ApiError::Internal
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Malformed(_) | ApiError::BadIfMatch => StatusCode::BAD_REQUEST,
            ApiError::Invalid(_) | ApiError::IdempotencyKeyReused(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::TooManyFailedAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::RateLimited { .. } | ApiError::TooManyFeeds { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::TimedOut { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::LogCorrupt { .. } | ApiError::ProjectionStalled { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Rule(_) | ApiError::Unmet { .. } => StatusCode::CONFLICT,
            ApiError::PreconditionFailed { .. } => StatusCode::PRECONDITION_FAILED,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable | ApiError::Contended(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        match self {
            ApiError::Unavailable => {
                response.insert_header((header::RETRY_AFTER, "2"));
            }
            ApiError::TooManyFailedAttempts { retry_after }
            | ApiError::TooManyFeeds { retry_after } => {
                response.insert_header((header::RETRY_AFTER, retry_after.to_string()));
            }
            ApiError::RateLimited { retry_after } => {
                response.insert_header((header::RETRY_AFTER, retry_after.to_string()));
                response.insert_header(("RateLimit-Remaining", "0"));
                response.insert_header(("RateLimit-Reset", retry_after.to_string()));
            }
            ApiError::TimedOut { .. } | ApiError::Contended(_) => {
                response.insert_header((header::RETRY_AFTER, "1"));
            }
            ApiError::LogCorrupt { .. } | ApiError::ProjectionStalled { .. } => {
                response.insert_header((header::RETRY_AFTER, "60"));
            }
            ApiError::Unauthenticated(_) => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            _ => {}
        }
        response.json(self.problem())
    }
}

/// A body that did not deserialise: broken JSON is a 400; a wrong type, a
/// missing or an unknown field is a 422 that names the field.
pub fn serde_error(e: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => ApiError::Malformed(e.to_string()),
        Category::Data => {
            let message = e.to_string();
            let field = field_of(&message).unwrap_or_else(|| "body".into());
            ApiError::field(field, strip_position(&message))
        }
    }
}

/// serde names the offending field in backquotes for an unknown or missing
/// field ("unknown field `foo`"); other messages quote values instead.
fn field_of(message: &str) -> Option<String> {
    if !(message.starts_with("unknown field") || message.starts_with("missing field")) {
        return None;
    }
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(message[start..start + len].to_owned())
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}
