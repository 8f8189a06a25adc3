//! The hash chain: `hash(n) = SHA-256(hash(n-1) || canonical(n))`.
//!
//! The canonical bytes are a fixed, length-prefixed layout of every stored
//! field, so no two different events can share them and the layout does not
//! depend on any JSON library's formatting: payload and metadata enter as the
//! exact text the log stores.

use sha2::{Digest, Sha256};
use uuid::Uuid;

const DOMAIN_TAG: &[u8] = b"fangkong.event.v1\0";

/// The fields of one stored event that the chain covers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChainedFields<'a> {
    pub position: u64,
    pub stream_id: &'a str,
    pub stream_version: u64,
    pub event_id: Uuid,
    pub event_type: &'a str,
    pub schema_version: u32,
    pub payload: &'a str,
    pub metadata: &'a str,
    pub recorded_at_us: i64,
}

fn put_bytes(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_be_bytes());
    hasher.update(bytes);
}

pub(crate) fn event_hash(previous: &[u8; 32], event: &ChainedFields<'_>) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(previous);
    hasher.update(DOMAIN_TAG);
    hasher.update(event.position.to_be_bytes());
    put_bytes(&mut hasher, event.stream_id.as_bytes());
    hasher.update(event.stream_version.to_be_bytes());
    hasher.update(event.event_id.as_bytes());
    put_bytes(&mut hasher, event.event_type.as_bytes());
    hasher.update(event.schema_version.to_be_bytes());
    put_bytes(&mut hasher, event.payload.as_bytes());
    put_bytes(&mut hasher, event.metadata.as_bytes());
    hasher.update(event.recorded_at_us.to_be_bytes());
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields<'a>(payload: &'a str) -> ChainedFields<'a> {
        ChainedFields {
            position: 1,
            stream_id: "zone-1",
            stream_version: 1,
            event_id: Uuid::nil(),
            event_type: "ZoneEstablished",
            schema_version: 1,
            payload,
            metadata: "{}",
            recorded_at_us: 0,
        }
    }

    #[test]
    fn any_change_of_content_changes_the_hash() {
        let base = event_hash(&[0; 32], &fields(r#"{"a":1}"#));
        assert_ne!(base, event_hash(&[0; 32], &fields(r#"{"a":2}"#)));
        assert_ne!(base, event_hash(&[1; 32], &fields(r#"{"a":1}"#)));
        let mut moved = fields(r#"{"a":1}"#);
        moved.position = 2;
        assert_ne!(base, event_hash(&[0; 32], &moved));
    }

    #[test]
    fn field_boundaries_cannot_be_shifted() {
        let mut a = fields("{}");
        a.stream_id = "zone-1";
        a.event_type = "XY";
        let mut b = fields("{}");
        b.stream_id = "zone-1X";
        b.event_type = "Y";
        assert_ne!(event_hash(&[0; 32], &a), event_hash(&[0; 32], &b));
    }

    #[test]
    fn the_hash_is_a_pure_function_of_its_inputs() {
        let f = fields(r#"{"a":1}"#);
        assert_eq!(event_hash(&[7; 32], &f), event_hash(&[7; 32], &f));
    }
}
