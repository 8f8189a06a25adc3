//! Saved read-model state, sealed with a key that never enters the
//! database: whoever can write the store cannot forge what a restart
//! resumes from. A state whose seal does not verify is discarded and the
//! models are replayed from the log.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A 256-bit key for HMAC-SHA256 over saved state.
#[derive(Clone)]
pub struct StateKey([u8; 32]);

impl std::fmt::Debug for StateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateKey(..)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StateKeyError {
    #[error("a state key is 64 hexadecimal digits (32 bytes)")]
    Malformed,
    #[error("no randomness for a state key: {0}")]
    Random(String),
}

impl StateKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        StateKey(bytes)
    }

    /// Parses 64 hex digits (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<Self, StateKeyError> {
        let bytes = hex::decode(text.trim()).map_err(|_| StateKeyError::Malformed)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| StateKeyError::Malformed)?;
        Ok(StateKey(bytes))
    }

    /// A fresh key from the operating system's generator.
    pub fn random() -> Result<Self, StateKeyError> {
        let mut bytes = [0u8; 32];
        getrandom::getrandom(&mut bytes).map_err(|e| StateKeyError::Random(e.to_string()))?;
        Ok(StateKey(bytes))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    fn mac(
        &self,
        name: &str,
        position: u64,
        hash: &[u8; 32],
        format: u32,
        state: &[u8],
    ) -> Hmac<Sha256> {
        // HMAC accepts keys of any length: this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        // Length-prefixed, so no two different inputs share bytes.
        for part in [name.as_bytes(), state] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.update(&position.to_be_bytes());
        mac.update(hash);
        mac.update(&format.to_be_bytes());
        mac
    }

    /// The bytes to store: the 32-byte seal, then the state.
    pub fn seal(
        &self,
        name: &str,
        position: u64,
        hash: &[u8; 32],
        format: u32,
        state: &[u8],
    ) -> Vec<u8> {
        let tag = self
            .mac(name, position, hash, format, state)
            .finalize()
            .into_bytes();
        let mut stored = Vec::with_capacity(tag.len() + state.len());
        stored.extend_from_slice(&tag);
        stored.extend_from_slice(state);
        stored
    }

    /// The state inside `stored`, when its seal is this key's over exactly
    /// these name, position, hash and format.
    pub fn open<'a>(
        &self,
        name: &str,
        position: u64,
        hash: &[u8; 32],
        format: u32,
        stored: &'a [u8],
    ) -> Option<&'a [u8]> {
        let (tag, state) = stored.split_at_checked(TAG_LEN)?;
        // Constant-time comparison inside verify_slice.
        self.mac(name, position, hash, format, state)
            .verify_slice(tag)
            .ok()?;
        Some(state)
    }
}

/// Bytes of an HMAC-SHA256 tag.
const TAG_LEN: usize = 32;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_state_opens_only_unchanged_and_under_its_key() {
        let key = StateKey::from_bytes([7; 32]);
        let hash = [1u8; 32];
        let state: &[u8] = b"{\"a\":1}";
        let sealed = key.seal("read-models", 10, &hash, 3, state);
        assert_eq!(key.open("read-models", 10, &hash, 3, &sealed), Some(state));
        let mut tampered = sealed.clone();
        let last = tampered.len() - 2;
        tampered[last] = b'9';
        assert_eq!(key.open("read-models", 10, &hash, 3, &tampered), None);
        assert_eq!(key.open("read-models", 11, &hash, 3, &sealed), None);
        assert_eq!(key.open("read-models", 10, &[2; 32], 3, &sealed), None);
        assert_eq!(key.open("read-models", 10, &hash, 4, &sealed), None);
        assert_eq!(key.open("other", 10, &hash, 3, &sealed), None);
        let other = StateKey::from_bytes([8; 32]);
        assert_eq!(other.open("read-models", 10, &hash, 3, &sealed), None);
        assert_eq!(key.open("read-models", 10, &hash, 3, state), None);
        assert_eq!(key.open("read-models", 10, &hash, 3, b"short"), None);
        assert!(StateKey::from_hex(&key.to_hex()).is_ok());
        assert!(StateKey::from_hex("abc").is_err());
    }
}
