//! What comes with every command, whatever carried it (an HTTP request, a
//! batch item, the demo township, the command line).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use fangkong_domain::access::Role;
use fangkong_domain::metadata::ActorRecord;
use uuid::Uuid;

/// Namespace of the ids derived from idempotency keys.
const KEY_NAMESPACE: Uuid = Uuid::from_u128(0x6661_6e67_6b6f_6e67_2d69_6465_6d70_6f74);

/// Who sends the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The token it came with; nil for the service itself.
    pub token_id: Uuid,
    pub name: String,
    pub role: Role,
    /// Where the actor may work.
    pub scope: Scope,
}

impl Actor {
    /// The service's own writes (the demo township, tokens from the
    /// command line).
    pub fn system() -> Self {
        Actor {
            token_id: Uuid::nil(),
            name: "fangkong".into(),
            role: Role::Admin,
            scope: Scope::Township,
        }
    }

    pub fn is_system(&self) -> bool {
        self.token_id.is_nil()
    }

    /// How the actor is recorded in each event's metadata.
    pub fn record(&self) -> ActorRecord {
        if self.is_system() {
            return ActorRecord {
                token_id: None,
                name: self.name.clone(),
                role: "system".into(),
            };
        }
        ActorRecord {
            token_id: Some(self.token_id),
            name: self.name.clone(),
            role: self.role.code().into(),
        }
    }
}

/// The zones an actor's commands may touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Township,
    Zones(BTreeSet<Uuid>),
}

impl Scope {
    /// Whether work in `zone` (`None`: township-wide work) is within scope.
    pub fn admits(&self, zone: Option<Uuid>) -> bool {
        match (self, zone) {
            (Scope::Township, _) | (_, None) => true,
            (Scope::Zones(zones), Some(zone)) => zones.contains(&zone),
        }
    }
}

/// A command's envelope.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub actor: Actor,
    /// Makes the command safe to send again: scoped to the sender, the
    /// operation and the stream it addresses.
    pub idempotency_key: Option<String>,
    /// The stream version the sender requires (`If-Match`).
    pub if_match: Option<u64>,
    /// When it happened in the field; absent: now.
    pub occurred_at: Option<DateTime<Utc>>,
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
    pub request_id: String,
    /// SHA-256 of what was asked (the canonical request body): a retry
    /// under the same key must repeat it.
    pub fingerprint: [u8; 32],
}

impl Envelope {
    pub fn new(actor: Actor, request_id: impl Into<String>) -> Self {
        Envelope {
            actor,
            idempotency_key: None,
            if_match: None,
            occurred_at: None,
            correlation_id: None,
            causation_id: None,
            request_id: request_id.into(),
            fingerprint: [0; 32],
        }
    }

    /// A command of the service itself.
    pub fn system() -> Self {
        Envelope::new(Actor::system(), Uuid::now_v7().to_string())
    }

    /// The id of an entity a creating command makes when the client did
    /// not name one. With a key it derives from the key, the operation and
    /// the sender's token, so a retry addresses the entity the first try
    /// made, while another device numbering its requests the same way makes
    /// an entity of its own.
    pub fn new_entity_id(&self, operation: &str) -> Uuid {
        match &self.idempotency_key {
            Some(key) => Uuid::new_v5(
                &KEY_NAMESPACE,
                format!(
                    "entity\u{0}{operation}\u{0}{}\u{0}{key}",
                    self.actor.token_id
                )
                .as_bytes(),
            ),
            None => Uuid::now_v7(),
        }
    }
}

/// The id of the `index`th event written under an idempotency key by one
/// sender for one operation on one stream: the same key on another stream
/// or operation, or from another device (two field apps numbering their
/// requests alike at one post), names other events, so it can never find
/// someone else's write and drop this one as a replay.
pub(crate) fn key_event_id(
    key: &str,
    sender: Uuid,
    operation: &str,
    stream_id: &str,
    index: usize,
) -> Uuid {
    Uuid::new_v5(
        &KEY_NAMESPACE,
        format!("{sender}\u{0}{operation}\u{0}{stream_id}\u{0}{key}\u{0}{index}").as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_names_other_events_on_another_stream_operation_or_sender() {
        let (me, other) = (Uuid::now_v7(), Uuid::now_v7());
        let id = |sender, op, stream, i| key_event_id("phone-3:003caa", sender, op, stream, i);
        let a = id(me, "returnee.health_check", "returnee-1", 0);
        assert_ne!(a, id(me, "returnee.health_check", "returnee-2", 0));
        assert_ne!(a, id(me, "returnee.abnormal", "returnee-1", 0));
        assert_ne!(a, id(me, "returnee.health_check", "returnee-1", 1));
        assert_ne!(a, id(other, "returnee.health_check", "returnee-1", 0));
        assert_eq!(a, id(me, "returnee.health_check", "returnee-1", 0));
    }

    #[test]
    fn created_ids_from_one_key_differ_between_senders() {
        let mut one = Envelope::new(
            Actor {
                token_id: Uuid::now_v7(),
                name: "一片区".into(),
                role: Role::ZoneWorker,
                scope: Scope::Township,
            },
            "r",
        );
        one.idempotency_key = Some("k-1".into());
        let mut other = one.clone();
        other.actor.token_id = Uuid::now_v7();
        assert_eq!(
            one.new_entity_id("returnee.register"),
            one.new_entity_id("returnee.register")
        );
        assert_ne!(
            one.new_entity_id("returnee.register"),
            other.new_entity_id("returnee.register")
        );
        assert_ne!(
            one.new_entity_id("returnee.register"),
            one.new_entity_id("venue.register")
        );
    }
}
