//! The API tokens the log has issued and revoked: what the service checks
//! a bearer token against. Only each secret's SHA-256 is known here.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use fangkong_domain::access::{Role, TokenEvent};
use fangkong_domain::EventCodec;
use fangkong_store::RecordedEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenEntry {
    pub token_id: Uuid,
    pub name: String,
    pub role: Role,
    pub zones: BTreeSet<Uuid>,
    /// SHA-256 of the whole token, hex.
    pub secret_sha256: String,
    pub issued_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRegistry {
    tokens: BTreeMap<Uuid, TokenEntry>,
}

impl TokenRegistry {
    pub fn apply(&mut self, event: &RecordedEvent) {
        if !event.stream_id.starts_with("token-") {
            return;
        }
        let Ok(decoded) =
            TokenEvent::from_stored_ref(&event.event_type, event.schema_version, &event.payload)
        else {
            return;
        };
        match decoded {
            TokenEvent::TokenIssued(e) => {
                self.tokens.insert(
                    e.token_id,
                    TokenEntry {
                        token_id: e.token_id,
                        name: e.name.to_string(),
                        role: e.role,
                        zones: e.zones.iter().map(|z| z.as_uuid()).collect(),
                        secret_sha256: e.secret_sha256,
                        issued_at: event.recorded_at,
                        revoked_at: None,
                    },
                );
            }
            TokenEvent::TokenRevoked(e) => {
                if let Some(entry) = self.tokens.get_mut(&e.token_id) {
                    entry.revoked_at.get_or_insert(event.recorded_at);
                }
            }
        }
    }

    pub fn get(&self, token_id: Uuid) -> Option<&TokenEntry> {
        self.tokens.get(&token_id)
    }

    /// Every token ever issued, revoked ones included, oldest first.
    pub fn all(&self) -> impl Iterator<Item = &TokenEntry> {
        self.tokens.values()
    }
}
