//! Why a command was not recorded, in the application's words; the API
//! maps each to its answer in one place.

use fangkong_domain::DomainError;
use fangkong_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A rule of the domain forbids it on the stream as it stands.
    #[error(transparent)]
    Rule(#[from] DomainError),
    /// No such entity, or one outside the sender's zones: the two answers
    /// must not be told apart.
    #[error("no such {what}")]
    NotFound { what: String },
    /// The sender required another version (`If-Match`).
    #[error("the entity is at version {actual}; If-Match asked for {expected}")]
    VersionMismatch { expected: u64, actual: u64 },
    #[error("Idempotency-Key {key:?} was already used with a different request")]
    KeyReused { key: String },
    /// A field the command names cannot be used.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// Other instances kept writing to the stream for the whole retry
    /// budget: nothing was recorded, and the command may be sent again.
    #[error("the entity kept changing while this command was decided ({attempts} attempts); send it again")]
    Contended { attempts: u32 },
    /// A stored event no longer decodes: the log needs an administrator.
    #[error("the event at position {position} of the log cannot be read")]
    Corrupt { position: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The person's personal data was erased: nothing new is recorded
    /// under their key.
    #[error(
        "the personal data of {subject} was erased: nothing personal is recorded for them again"
    )]
    PersonalDataErased { subject: String },
    /// Erasure asked of a person whose data this store recorded before it
    /// sealed personal data: only a rewritten chain could remove it.
    #[error("the event at position {position} holds this person's data in the clear (recorded before personal data was sealed): it cannot be erased without rewriting the log; start a new store to erase by key")]
    PersonalDataInClear { position: u64 },
    /// The key-encryption key or a data key failed.
    #[error("personal data keys: {0}")]
    Vault(String),
    /// A batch's command decided ahead of its commit must be decided again
    /// in its turn; never an answer (the batch runs it again).
    #[error("the command must be decided again in its turn")]
    Resequence,
    /// The machine could not give randomness for a secret.
    #[error("no randomness available")]
    NoRandomness,
}

impl AppError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        AppError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}
