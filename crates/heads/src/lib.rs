//! Signed tree heads: what an auditor keeps, and checks later against the
//! service with nothing but the service's public key.
//!
//! A head names a tree size, the Merkle root over the log's first `size`
//! events (RFC 6962, leaves the events' chain hashes), the chain hash at
//! `size`, when it was signed, and (since v2) the last row of the personal
//! data access record, whose rows are chained beside the log: a head kept
//! by an auditor then proves neither was cut short. The signature is
//! Ed25519 over a fixed byte layout of those, so no JSON formatting can
//! change what was signed.

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, Verifier};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const DOMAIN_TAG: &[u8] = b"fangkong.signed-head.v1\0";
/// A head that also signs the access record's last row.
const DOMAIN_TAG_V2: &[u8] = b"fangkong.signed-head.v2\0";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeadError {
    #[error("not a key: {0}")]
    BadKey(String),
    #[error("the head's {0} is malformed")]
    Malformed(&'static str),
    #[error("the head was signed by key {signed_by}, not by key {expected}")]
    OtherKey { signed_by: String, expected: String },
    #[error("the signature does not verify: the head was altered or not signed by this key")]
    BadSignature,
    #[error("no randomness for a new key")]
    NoRandomness,
}

/// The key that signs heads. Only its seed is ever stored, outside the
/// database.
pub struct SigningKey(ed25519_dalek::SigningKey);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.public().key_id())
    }
}

impl SigningKey {
    pub fn random() -> Result<SigningKey, HeadError> {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).map_err(|_| HeadError::NoRandomness)?;
        Ok(SigningKey(ed25519_dalek::SigningKey::from_bytes(&seed)))
    }

    /// From its 32-byte seed as 64 hex digits.
    pub fn from_hex(text: &str) -> Result<SigningKey, HeadError> {
        let mut seed = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut seed)
            .map_err(|_| HeadError::BadKey("a signing key is 64 hex digits".into()))?;
        Ok(SigningKey(ed25519_dalek::SigningKey::from_bytes(&seed)))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0.to_bytes())
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// Signs the head of a tree of `size` events and, when given, the
    /// access record's last row (`seq` and hash), timed to the
    /// millisecond (what every JSON reader keeps, JavaScript's included).
    pub fn sign(
        &self,
        size: u64,
        root: &[u8; 32],
        chain_hash: &[u8; 32],
        access: Option<(u64, &[u8; 32])>,
        at: DateTime<Utc>,
    ) -> SignedHead {
        let at = DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap_or(at);
        let signature = self.0.sign(&message(size, root, chain_hash, access, at));
        SignedHead {
            tree_size: size,
            root_hash: hex::encode(root),
            chain_hash: hex::encode(chain_hash),
            timestamp: at,
            key_id: self.public().key_id(),
            signature: hex::encode(signature.to_bytes()),
            access: access.map(|(seq, hash)| AccessHead {
                seq,
                hash: hex::encode(hash),
            }),
        }
    }
}

/// A public key that checks heads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(ed25519_dalek::VerifyingKey);

impl PublicKey {
    /// From its 32 bytes as 64 hex digits.
    pub fn from_hex(text: &str) -> Result<PublicKey, HeadError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut bytes)
            .map_err(|_| HeadError::BadKey("a public key is 64 hex digits".into()))?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map(PublicKey)
            .map_err(|_| HeadError::BadKey("not an Ed25519 public key".into()))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0.to_bytes())
    }

    /// The first 8 bytes of the key's SHA-256, hex: how a head names the
    /// key that signed it, so keys can be rotated.
    pub fn key_id(&self) -> String {
        hex::encode(&Sha256::digest(self.0.to_bytes())[..8])
    }
}

/// A signed head, as the service answers it and an auditor keeps it: an
/// RFC 6962 Merkle root over the first `tree_size` events, whose leaves
/// are their chain hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignedHead {
    /// Events the tree covers: positions 1 to `tree_size`.
    pub tree_size: u64,
    /// The RFC 6962 Merkle root over them, hex.
    pub root_hash: String,
    /// The chain hash of the event at `tree_size`, hex.
    pub chain_hash: String,
    /// When it was signed.
    pub timestamp: DateTime<Utc>,
    /// The signing key's id (`GET /v1/audit/keys`).
    pub key_id: String,
    /// Ed25519 over the head's fields, hex.
    pub signature: String,
    /// The personal data access record's last row when the head was
    /// signed (absent from heads signed before it was covered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<AccessHead>,
}

/// The last row of the personal data access record a head signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccessHead {
    /// Its `seq` (0 for an empty record).
    pub seq: u64,
    /// Its hash, hex (64 zeros for an empty record).
    pub hash: String,
}

impl SignedHead {
    pub fn root(&self) -> Result<[u8; 32], HeadError> {
        hash32(&self.root_hash, "root_hash")
    }

    pub fn chain(&self) -> Result<[u8; 32], HeadError> {
        hash32(&self.chain_hash, "chain_hash")
    }

    /// The access record's last row the head signed: `seq` and hash.
    pub fn access(&self) -> Result<Option<(u64, [u8; 32])>, HeadError> {
        self.access
            .as_ref()
            .map(|a| Ok((a.seq, hash32(&a.hash, "access.hash")?)))
            .transpose()
    }

    /// Checks the head was signed, as it stands, by `key`.
    pub fn verify(&self, key: &PublicKey) -> Result<(), HeadError> {
        if self.key_id != key.key_id() {
            return Err(HeadError::OtherKey {
                signed_by: self.key_id.clone(),
                expected: key.key_id(),
            });
        }
        let mut signature = [0u8; 64];
        hex::decode_to_slice(&self.signature, &mut signature)
            .map_err(|_| HeadError::Malformed("signature"))?;
        // Signed to the millisecond: finer digits would go unsigned.
        if self.timestamp.timestamp_subsec_nanos() % 1_000_000 != 0 {
            return Err(HeadError::Malformed("timestamp (finer than a millisecond)"));
        }
        let access = self.access()?;
        let signed = message(
            self.tree_size,
            &self.root()?,
            &self.chain()?,
            access.as_ref().map(|(seq, hash)| (*seq, hash)),
            self.timestamp,
        );
        key.0
            .verify(&signed, &Signature::from_bytes(&signature))
            .map_err(|_| HeadError::BadSignature)
    }
}

fn hash32(text: &str, what: &'static str) -> Result<[u8; 32], HeadError> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text, &mut bytes).map_err(|_| HeadError::Malformed(what))?;
    Ok(bytes)
}

/// What is signed: a tag, then the fields in a fixed layout. A head
/// without the access record keeps the v1 layout, so heads kept before it
/// was covered still verify; one with it is tagged v2, so neither layout
/// can pass for the other.
fn message(
    size: u64,
    root: &[u8; 32],
    chain_hash: &[u8; 32],
    access: Option<(u64, &[u8; 32])>,
    at: DateTime<Utc>,
) -> Vec<u8> {
    let mut bytes = match access {
        Some(_) => DOMAIN_TAG_V2.to_vec(),
        None => DOMAIN_TAG.to_vec(),
    };
    bytes.extend_from_slice(&size.to_be_bytes());
    bytes.extend_from_slice(root);
    bytes.extend_from_slice(chain_hash);
    bytes.extend_from_slice(&at.timestamp_millis().to_be_bytes());
    if let Some((seq, hash)) = access {
        bytes.extend_from_slice(&seq.to_be_bytes());
        bytes.extend_from_slice(hash);
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        "2020-02-01T08:00:00.123456789Z"
            .parse()
            .expect("an instant")
    }

    #[test]
    fn a_head_verifies_under_its_key_and_round_trips_as_json() {
        let key = SigningKey::random().expect("a key");
        let head = key.sign(42, &[7; 32], &[9; 32], None, at());
        assert_eq!(head.verify(&key.public()), Ok(()));
        assert_eq!(
            head.timestamp.timestamp_subsec_nanos(),
            123_000_000,
            "to the millisecond"
        );
        // As a JavaScript client keeps it: milliseconds.
        let text = serde_json::to_string(&head).expect("json");
        assert!(text.contains("08:00:00.123Z"), "{text}");
        let kept: SignedHead =
            serde_json::from_str(&serde_json::to_string(&head).expect("json")).expect("read back");
        assert_eq!(kept.verify(&key.public()), Ok(()));
        let again = SigningKey::from_hex(&key.to_hex()).expect("the seed");
        assert_eq!(again.public(), key.public());
        let public = PublicKey::from_hex(&key.public().to_hex()).expect("hex");
        assert_eq!(public.key_id(), head.key_id);
    }

    #[test]
    fn a_head_signs_the_access_records_last_row_and_any_change_to_it_fails() {
        let key = SigningKey::random().expect("a key");
        let public = key.public();
        let head = key.sign(42, &[7; 32], &[9; 32], Some((5, &[3; 32])), at());
        assert_eq!(head.verify(&public), Ok(()));
        assert_eq!(head.access(), Ok(Some((5, [3; 32]))));
        let kept: SignedHead =
            serde_json::from_str(&serde_json::to_string(&head).expect("json")).expect("read back");
        assert_eq!(kept.verify(&public), Ok(()));
        let mut altered = head.clone();
        altered.access = Some(AccessHead {
            seq: 4,
            hash: hex::encode([3; 32]),
        });
        assert_eq!(altered.verify(&public), Err(HeadError::BadSignature));
        let mut altered = head.clone();
        altered.access = Some(AccessHead {
            seq: 5,
            hash: hex::encode([4; 32]),
        });
        assert_eq!(altered.verify(&public), Err(HeadError::BadSignature));
        // Dropping the access row does not leave a v1 head that verifies.
        let mut altered = head.clone();
        altered.access = None;
        assert_eq!(altered.verify(&public), Err(HeadError::BadSignature));
        // And a v1 head cannot be given one.
        let mut v1 = key.sign(42, &[7; 32], &[9; 32], None, at());
        assert_eq!(v1.verify(&public), Ok(()));
        v1.access = Some(AccessHead {
            seq: 0,
            hash: hex::encode([0; 32]),
        });
        assert_eq!(v1.verify(&public), Err(HeadError::BadSignature));
    }

    #[test]
    fn any_altered_field_or_another_key_fails() {
        let key = SigningKey::random().expect("a key");
        let head = key.sign(42, &[7; 32], &[9; 32], None, at());
        let public = key.public();
        let mut altered = head.clone();
        altered.tree_size = 41;
        assert_eq!(altered.verify(&public), Err(HeadError::BadSignature));
        let mut altered = head.clone();
        altered.root_hash = hex::encode([8; 32]);
        assert_eq!(altered.verify(&public), Err(HeadError::BadSignature));
        let mut altered = head.clone();
        altered.chain_hash = hex::encode([8; 32]);
        assert_eq!(altered.verify(&public), Err(HeadError::BadSignature));
        let mut altered = head.clone();
        altered.timestamp += chrono::Duration::milliseconds(1);
        assert_eq!(altered.verify(&public), Err(HeadError::BadSignature));
        // Digits finer than the signed millisecond are refused, not ignored.
        let mut altered = head.clone();
        altered.timestamp += chrono::Duration::microseconds(1);
        assert!(matches!(
            altered.verify(&public),
            Err(HeadError::Malformed(_))
        ));
        // Another key that claims this key's id still fails.
        let other = SigningKey::random().expect("a key");
        let mut forged = other.sign(42, &[7; 32], &[9; 32], None, at());
        assert!(matches!(
            forged.verify(&public),
            Err(HeadError::OtherKey { .. })
        ));
        forged.key_id = head.key_id.clone();
        assert_eq!(forged.verify(&public), Err(HeadError::BadSignature));
        assert!(SigningKey::from_hex("zz").is_err());
        assert!(PublicKey::from_hex(&"0".repeat(10)).is_err());
    }
}
