//! Request extractors that answer in problem+json: the JSON body (with the
//! path of any invalid field), and the write headers (Idempotency-Key,
//! If-Match, X-Correlation-Id).

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use futures::future::LocalBoxFuture;
use futures::StreamExt;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::access::{Authorized, Policy};
use crate::problem::{serde_error, ApiError, FieldError};

/// Largest request body accepted, unless the app configures another.
pub const DEFAULT_BODY_LIMIT: usize = 256 * 1024;

/// The body limit in force (app data).
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// A JSON request body, deserialised strictly, with the hash of its
/// canonical form (what an idempotent retry must repeat).
#[derive(Debug)]
pub struct Json<T> {
    pub value: T,
    pub canonical_hash: [u8; 32],
}

/// Parses a JSON value into `T`, naming the path of the first bad field.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match serde_error(&inner) {
            ApiError::Invalid(mut errors) => {
                if let Some(first) = errors.first_mut() {
                    // An unknown or missing field is named by serde relative
                    // to the object holding it; any other error sits at the path.
                    first.field = match (first.field.as_str(), path.as_str()) {
                        ("body", ".") => "body".to_owned(),
                        ("body", _) => path,
                        (named, ".") => named.to_owned(),
                        (named, _) if path.ends_with(named) => path,
                        (named, _) => format!("{path}.{named}"),
                    };
                }
                ApiError::Invalid(errors)
            }
            other => other,
        }
    })
}

pub fn canonical_hash(value: &serde_json::Value) -> [u8; 32] {
    Sha256::digest(value.to_string().as_bytes()).into()
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req
            .app_data::<BodyLimit>()
            .map_or(DEFAULT_BODY_LIMIT, |l| l.0);
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let json_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| v.starts_with("application/json") || v.contains("+json"));
        let mut payload = payload.take();
        Box::pin(async move {
            if declared.is_some_and(|n| n > limit) {
                return Err(ApiError::TooLarge { limit });
            }
            if !json_type {
                return Err(ApiError::UnsupportedMediaType);
            }
            let mut body = Vec::new();
            while let Some(chunk) = payload.next().await {
                let chunk =
                    chunk.map_err(|e| ApiError::Malformed(format!("reading the body: {e}")))?;
                if body.len() + chunk.len() > limit {
                    return Err(ApiError::TooLarge { limit });
                }
                body.extend_from_slice(&chunk);
            }
            let value: serde_json::Value =
                serde_json::from_slice(&body).map_err(|e| serde_error(&e))?;
            let canonical_hash = canonical_hash(&value);
            Ok(Json {
                value: from_value(value)?,
                canonical_hash,
            })
        })
    }
}

/// The headers that shape a write, and the caller authorised for it under
/// the command's policy `P`: a command function that takes
/// `&WriteHeaders<Field>` declares that field work is what it needs, for
/// HTTP and batch items alike.
#[derive(Debug, Clone)]
pub struct WriteHeaders<P> {
    pub idempotency_key: Option<String>,
    /// The stream version `If-Match` requires.
    pub if_match: Option<u64>,
    pub correlation_id: Option<String>,
    /// What caused this write: for a batch item, the batch's request.
    pub causation_id: Option<String>,
    pub request_id: String,
    pub caller: Authorized<P>,
}

impl<P: Policy> WriteHeaders<P> {
    pub fn parse(req: &HttpRequest, caller: Authorized<P>) -> Result<Self, ApiError> {
        let text = |name: &str| -> Result<Option<String>, ApiError> {
            match req.headers().get(name) {
                None => Ok(None),
                Some(v) => v
                    .to_str()
                    .map(|s| Some(s.trim().to_owned()))
                    .map_err(|_| ApiError::field(name, "must be visible ASCII")),
            }
        };
        let idempotency_key = text("Idempotency-Key")?;
        check_key(idempotency_key.as_deref())?;
        let if_match = match text("If-Match")? {
            // "*" asks only that the entity exists, which every command checks.
            None => None,
            Some(v) if v == "*" => None,
            // A read's tag is `"<version>.<digest of its bytes>"`; a write
            // answers `"<version>"`. Either names the version.
            Some(v) => Some(
                v.trim_start_matches("W/")
                    .trim_matches('"')
                    .split('.')
                    .next()
                    .unwrap_or_default()
                    .parse::<u64>()
                    .map_err(|_| ApiError::BadIfMatch)?,
            ),
        };
        let correlation_id = text("X-Correlation-Id")?.filter(|c| !c.is_empty() && c.len() <= 200);
        Ok(WriteHeaders {
            idempotency_key,
            if_match,
            correlation_id,
            causation_id: None,
            request_id: request_id_of(req),
            caller,
        })
    }

    /// One item of a batch, held to the policy of the command it names.
    pub fn item(
        batch: &WriteHeaders<impl Policy>,
        idempotency_key: Option<String>,
        if_match: Option<u64>,
    ) -> Result<Self, ApiError> {
        check_key(idempotency_key.as_deref())?;
        Ok(WriteHeaders {
            idempotency_key,
            if_match,
            correlation_id: batch.correlation_id.clone(),
            causation_id: Some(batch.request_id.clone()),
            request_id: uuid::Uuid::now_v7().to_string(),
            caller: batch.caller.caller().authorize::<P>()?,
        })
    }

    /// The service's own writes (the demo township, tokens from the command
    /// line), recorded with the system as their actor.
    pub fn system() -> Self {
        WriteHeaders {
            idempotency_key: None,
            if_match: None,
            correlation_id: None,
            causation_id: None,
            request_id: uuid::Uuid::now_v7().to_string(),
            caller: Authorized::system(),
        }
    }

    /// The application's envelope for the command: these headers, the
    /// fingerprint of the body, and when it happened in the field.
    pub fn envelope(
        &self,
        fingerprint: [u8; 32],
        occurred_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> fangkong_app::Envelope {
        fangkong_app::Envelope {
            actor: self.caller.caller().actor(),
            idempotency_key: self.idempotency_key.clone(),
            if_match: self.if_match,
            occurred_at,
            correlation_id: self.correlation_id.clone(),
            causation_id: self.causation_id.clone(),
            request_id: self.request_id.clone(),
            fingerprint,
        }
    }

    /// The id of the entity a creating command makes, when the client did
    /// not name one (derived from the Idempotency-Key when there is one).
    pub fn new_entity_id(&self, named: Option<uuid::Uuid>, operation: &str) -> uuid::Uuid {
        named.unwrap_or_else(|| self.envelope([0; 32], None).new_entity_id(operation))
    }
}

fn check_key(key: Option<&str>) -> Result<(), ApiError> {
    match key {
        Some(key) if key.is_empty() || key.len() > 200 => {
            Err(ApiError::Invalid(vec![FieldError {
                field: "Idempotency-Key".into(),
                message: "must have 1 to 200 characters".into(),
            }]))
        }
        _ => Ok(()),
    }
}

/// The request's id (given by the observing middleware).
pub fn request_id_of(req: &HttpRequest) -> String {
    req.extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

/// The id given to each request, echoed in `X-Request-Id`.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Positions and versions are 64-bit signed in the contract (and in
/// PostgreSQL): a larger number is refused as a bad parameter rather than
/// silently accepted.
pub(crate) fn within_i64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let value = <Option<u64> as serde::Deserialize>::deserialize(d)?;
    match value {
        Some(n) if n > i64::MAX as u64 => Err(serde::de::Error::custom(format!(
            "{n} is beyond the largest position, {}",
            i64::MAX
        ))),
        other => Ok(other),
    }
}

pub(crate) fn position_within_i64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = <u64 as serde::Deserialize>::deserialize(d)?;
    if n > i64::MAX as u64 {
        return Err(serde::de::Error::custom(format!(
            "{n} is beyond the largest position, {}",
            i64::MAX
        )));
    }
    Ok(n)
}
