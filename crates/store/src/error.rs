use uuid::Uuid;

/// What can go wrong with an append or a read.
///
/// Conflicts are answers about the caller's request (the log is unchanged);
/// `Database` and `Unavailable` are about the store itself.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("stream {stream_id} is at version {actual}, the append expected {expected}")]
    WrongExpectedVersion {
        stream_id: String,
        expected: crate::ExpectedVersion,
        actual: u64,
    },

    #[error("event id {event_id} is already stored with other content or in another stream")]
    EventIdReused { event_id: Uuid },

    /// The append brought a first key for a subject that has one (another
    /// writer made it first): seal under the stored key and append again.
    #[error("the data subject {subject} already has a key")]
    SubjectKeyTaken { subject: String },

    /// An earlier link of the append's chain was not written, so this one,
    /// decided on the state that link would have left, was not either.
    #[error("an earlier append of the chain was not written")]
    ChainBroken,

    #[error("invalid append: {0}")]
    InvalidAppend(String),

    #[error("unsupported database url {0:?}: use sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),

    #[error("stored event at position {position} cannot be decoded: {reason}")]
    Corrupt { position: u64, reason: String },

    #[error("the event store could not commit: {0}")]
    Unavailable(String),

    #[error("the event store is shut down")]
    Closed,

    #[error("database error")]
    Database(#[from] sqlx::Error),

    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// True when this store was closed: nothing more will be read or written.
    pub fn is_closed(&self) -> bool {
        matches!(
            self,
            StoreError::Closed | StoreError::Database(sqlx::Error::PoolClosed)
        )
    }

    /// True when the failure is about reaching or using the database rather
    /// than about the request: the caller may retry later (HTTP 503).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Database(_) | StoreError::Unavailable(_) | StoreError::Closed
        )
    }
}
