//! What every event carries besides its data: when it happened in the
//! field, who recorded it, and the request that did. Written by the
//! application layer, read by the projections and auditors, in one shape.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The metadata of a recorded event. Every field is optional on read:
/// events recorded by older versions carry fewer of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    /// When it happened in the field (the client's clock); absent: when it
    /// was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<DateTime<Utc>>,
    /// The request that recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The client's thread of work (`X-Correlation-Id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// The message that caused this one (a batch's request for its items).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// SHA-256 (hex) of what a retry under the same key must repeat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<ActorRecord>,
}

/// Who recorded an event: a token's holder, or the service itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<Uuid>,
    pub name: String,
    /// A role's code, or `system`.
    pub role: String,
}

impl EventMetadata {
    /// Reads stored metadata; what does not read as metadata reads as none
    /// (the event's data is what the chain and the figures depend on).
    pub fn read(value: &serde_json::Value) -> Self {
        Self::deserialize(value).unwrap_or_default()
    }

    /// Only `occurred_at`, for the projections' hot path (no other field
    /// is read or allocated).
    pub fn occurred_at_of(value: &serde_json::Value) -> Option<DateTime<Utc>> {
        value
            .get("occurred_at")
            .and_then(|t| t.as_str())
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
    }

    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_of_earlier_versions_reads_with_what_it_has() {
        let stored = serde_json::json!({
            "occurred_at": "2020-02-01T08:00:00+08:00",
            "request_id": "r-1",
            "correlation_id": null,
            "idempotency_key": null,
            "actor": {"name": "fangkong", "role": "system"},
        });
        let read = EventMetadata::read(&stored);
        assert_eq!(
            read.occurred_at.map(|t| t.to_rfc3339()),
            Some("2020-02-01T00:00:00+00:00".to_owned())
        );
        assert_eq!(EventMetadata::occurred_at_of(&stored), read.occurred_at);
        assert_eq!(read.correlation_id, None);
        assert_eq!(read.actor.map(|a| a.role), Some("system".to_owned()));
        assert_eq!(
            EventMetadata::read(&serde_json::json!("not an object")),
            EventMetadata::default()
        );
    }

    #[test]
    fn metadata_written_reads_back_the_same() {
        let written = EventMetadata {
            occurred_at: Some(Utc::now()),
            request_id: Some("r".into()),
            correlation_id: Some("c".into()),
            causation_id: Some("b".into()),
            idempotency_key: Some("k".into()),
            request_hash: Some("00".into()),
            actor: Some(ActorRecord {
                token_id: Some(Uuid::nil()),
                name: "李明".into(),
                role: "zone_worker".into(),
            }),
        };
        assert_eq!(EventMetadata::read(&written.to_value()), written);
    }
}
