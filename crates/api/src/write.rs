//! A write's answer, as the contract shows it: the application's outcome
//! with what a writer may not see removed.

use fangkong_app::Outcome;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// One event of a write's answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WrittenEvent {
    pub position: u64,
    #[serde(rename = "type")]
    pub event_type: String,
    pub schema_version: u32,
    pub data: serde_json::Value,
}

/// The answer to every write.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0190f5a2-7c1e-7d3a-9a51-3f1f2b6c8d10",
    "version": 3,
    "position": 1042,
    "events": [{"position": 1042, "type": "QuarantineStarted", "schema_version": 1,
                "data": {"start_date": "2020-01-25", "planned_days": 14, "planned_end": "2020-02-07"}}]
}))]
pub struct Written {
    /// The entity written to.
    pub id: Uuid,
    /// Its stream version after the write (the `ETag`).
    pub version: u64,
    /// The global position of the write's last event: pass it as
    /// `min_position` to read your own write from a projection.
    pub position: u64,
    /// The events recorded (none when the command changed nothing).
    pub events: Vec<WrittenEvent>,
    /// True when this is the stored answer to an earlier request with the
    /// same Idempotency-Key, operation and entity.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub replayed: bool,
}

impl Written {
    /// For the writer, whose zone the command was checked against: sealed
    /// fields opened, secrets removed. Also answers whether personal data
    /// was shown unmasked.
    pub fn shown(outcome: Outcome, vault: &fangkong_vault::Vault) -> (Written, bool) {
        let mut disclosed = false;
        let stream_id = outcome.stream_id;
        let written = Written {
            id: outcome.entity_id,
            version: outcome.version,
            position: outcome.position,
            replayed: outcome.replayed,
            events: outcome
                .events
                .into_iter()
                .map(|mut e| {
                    disclosed |= crate::personal::show_event(
                        vault,
                        &stream_id,
                        &e.event_type,
                        &mut e.data,
                        true,
                    );
                    WrittenEvent {
                        position: e.position,
                        event_type: e.event_type,
                        schema_version: e.schema_version,
                        data: e.data,
                    }
                })
                .collect(),
        };
        (written, disclosed)
    }

    /// Whether the write created its entity (as the first try's answer
    /// said, for replays too).
    pub fn created(&self) -> bool {
        !self.events.is_empty() && self.version as usize == self.events.len()
    }
}
