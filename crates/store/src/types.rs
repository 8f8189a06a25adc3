use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What the appender believes about the stream before its events land.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpectedVersion {
    /// Append whatever the stream holds.
    Any,
    /// The stream must not exist yet (version 0).
    NoStream,
    /// The stream must be at exactly this version (1 = one event).
    Exact(u64),
}

impl ExpectedVersion {
    pub(crate) fn admits(self, actual: u64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::Exact(v) => actual == v,
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any version"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::Exact(v) => write!(f, "version {v}"),
        }
    }
}

/// An event as the caller hands it to `append`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Unique forever: appending an id that is already stored is a retry.
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    pub payload: serde_json::Value,
    pub metadata: serde_json::Value,
}

impl NewEvent {
    /// A new event with a fresh time-ordered id and empty metadata.
    pub fn new(event_type: impl Into<String>, payload: serde_json::Value) -> Self {
        NewEvent {
            event_id: Uuid::now_v7(),
            event_type: event_type.into(),
            schema_version: 1,
            payload,
            metadata: serde_json::Value::Object(Default::default()),
        }
    }

    pub fn with_metadata(mut self, metadata: serde_json::Value) -> Self {
        self.metadata = metadata;
        self
    }

    pub fn with_schema_version(mut self, schema_version: u32) -> Self {
        self.schema_version = schema_version;
        self
    }

    pub fn with_id(mut self, event_id: Uuid) -> Self {
        self.event_id = event_id;
        self
    }
}

/// An event as the log holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    pub position: u64,
    pub stream_id: String,
    pub stream_version: u64,
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    pub payload: serde_json::Value,
    pub metadata: serde_json::Value,
    pub recorded_at: DateTime<Utc>,
    pub hash: [u8; 32],
}

impl RecordedEvent {
    /// The category of the stream: the part of its id before the first `-`.
    pub fn category(&self) -> &str {
        crate::category_of(&self.stream_id)
    }
}

/// The result of an append: where the last of its events stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendOutcome {
    /// The stream's version after the append (the last event's version).
    pub stream_version: u64,
    /// The global position of the first event of the append.
    pub first_position: u64,
    /// The global position of the last event of the append.
    pub position: u64,
    /// True when every event id was already stored: nothing was appended and
    /// this is the original result.
    pub duplicate: bool,
}

/// The end of the log: what an auditor keeps to prove later that the log
/// only grew.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub position: u64,
    pub hash: [u8; 32],
}

impl Head {
    /// The head of an empty log.
    pub const GENESIS: Head = Head {
        position: 0,
        hash: [0u8; 32],
    };
}

/// Which events a read of the whole log returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFilter {
    /// Only streams of this category (`returnee` for `returnee-...`).
    pub category: Option<String>,
    /// Only these event types; empty means all.
    pub event_types: Vec<String>,
    /// Only events recorded at or after this instant.
    pub recorded_since: Option<DateTime<Utc>>,
    /// Only events recorded before this instant.
    pub recorded_until: Option<DateTime<Utc>>,
}

/// Why verification stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainBreak {
    /// The stored hash is not the hash of the stored content.
    HashMismatch { position: u64 },
    /// A position is missing: the log jumps from `expected` to `found`.
    MissingPosition { expected: u64, found: u64 },
    /// A row cannot even be read as an event.
    Unreadable { position: u64, reason: String },
}

impl ChainBreak {
    pub fn position(&self) -> u64 {
        match self {
            ChainBreak::HashMismatch { position } | ChainBreak::Unreadable { position, .. } => {
                *position
            }
            ChainBreak::MissingPosition { expected, .. } => *expected,
        }
    }
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainBreak::HashMismatch { position } => write!(
                f,
                "position {position}: the stored content does not match its hash"
            ),
            ChainBreak::MissingPosition { expected, found } => {
                write!(f, "position {expected} is missing (next stored is {found})")
            }
            ChainBreak::Unreadable { position, reason } => {
                write!(f, "position {position} cannot be read: {reason}")
            }
        }
    }
}

/// The result of walking the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// How many events were checked.
    pub checked: u64,
    /// The last position and hash that verified.
    pub verified_head: Head,
    /// The first place where the log no longer matches its chain.
    pub first_break: Option<ChainBreak>,
}

impl VerifyReport {
    pub fn is_intact(&self) -> bool {
        self.first_break.is_none()
    }
}

/// Whether today's log extends a head kept earlier: the chain recomputed
/// from position 1 reaches the kept position with the kept hash, and goes
/// on intact to today's head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionProof {
    pub extends: bool,
    /// The hash the recomputed chain reaches at the kept position (absent
    /// when the log does not reach it, or breaks before it).
    pub recomputed_hash: Option<[u8; 32]>,
    pub head: Head,
    /// The first break anywhere from position 1 to the head.
    pub first_break: Option<ChainBreak>,
}

/// A read model's saved state: its position, the chain hash there (so it is
/// never resumed over another log), the format it was written in, and the
/// state itself as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub position: u64,
    pub hash: [u8; 32],
    pub format: u32,
    /// The saved state, as its owner encoded it (opaque to the store).
    pub state: Vec<u8>,
    pub saved_at: DateTime<Utc>,
}

/// A data subject's key as the store holds it: wrapped under a
/// key-encryption key the database never sees, or, once erased, a tombstone
/// without it.
/// A data subject's first key, stored in the transaction that appends the
/// first events sealed under it: the key and what it sealed are committed
/// together or not at all, with one commit between them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSubjectKey {
    pub subject: String,
    pub kek_id: String,
    pub wrapped: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectKey {
    /// Whose key: the stream id of the person's entity.
    pub subject: String,
    /// Which key-encryption key wrapped it.
    pub kek_id: String,
    /// The wrapped key; `None` once erased.
    pub wrapped: Option<Vec<u8>>,
    pub created_at_us: i64,
    pub erased_at_us: Option<i64>,
    pub erased_reason: Option<String>,
}

impl SubjectKey {
    /// True once the key was destroyed.
    pub fn is_erased(&self) -> bool {
        self.wrapped.is_none()
    }
}

/// A `subject_keys` row as both backends select it ([`SELECT_SUBJECT_KEY`]).
pub(crate) type SubjectKeyRow = (
    String,
    String,
    Option<Vec<u8>>,
    i64,
    Option<i64>,
    Option<String>,
);

pub(crate) const SELECT_SUBJECT_KEY: &str = "SELECT subject, kek_id, wrapped, created_at_us, \
     erased_at_us, erased_reason FROM subject_keys";

impl From<SubjectKeyRow> for SubjectKey {
    fn from(
        (subject, kek_id, wrapped, created_at_us, erased_at_us, erased_reason): SubjectKeyRow,
    ) -> Self {
        SubjectKey {
            subject,
            kek_id,
            wrapped,
            created_at_us,
            erased_at_us,
            erased_reason,
        }
    }
}
