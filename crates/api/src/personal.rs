//! Personal data on its way out: opened from the log's sealed form with
//! the subject's key for those entitled to it, masked for the others, and
//! shown as erased once its key is gone.

use fangkong_domain::personal::{rewrite, sealing_context, visit_sealed, Personal, PersonalKind};
use fangkong_vault::{Opened, Vault};
use serde::{de::DeserializeOwned, Serialize, Serializer};
use serde_json::Value;

use crate::access::{keep_ends, mask_name};

/// A personal field as an answer shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shown<T> {
    Clear(T),
    /// The person's data was erased: `{"erased": true}`.
    Erased,
    /// This instance does not hold the key yet (written by another
    /// instance a moment ago): `{"withheld": true}`; asking again shows it.
    Withheld,
}

impl<T> Shown<T> {
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Shown<U> {
        match self {
            Shown::Clear(value) => Shown::Clear(f(value)),
            Shown::Erased => Shown::Erased,
            Shown::Withheld => Shown::Withheld,
        }
    }

    pub fn is_clear(&self) -> bool {
        matches!(self, Shown::Clear(_))
    }
}

impl<T: Serialize> Serialize for Shown<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Shown::Clear(value) => value.serialize(serializer),
            Shown::Erased => erased().serialize(serializer),
            Shown::Withheld => withheld().serialize(serializer),
        }
    }
}

fn erased() -> Value {
    serde_json::json!({ "erased": true })
}

fn withheld() -> Value {
    serde_json::json!({ "withheld": true })
}

/// Opens one personal field held by an event of `stream_id` (its data
/// subject) at `path` of `event_type`.
pub fn open<T: DeserializeOwned + Clone>(
    vault: &Vault,
    stream_id: &str,
    event_type: &str,
    path: &[&str],
    personal: &Personal<T>,
) -> Shown<T> {
    match personal {
        Personal::Clear(value) => Shown::Clear(value.clone()),
        Personal::Erased => Shown::Erased,
        Personal::Sealed(text) => {
            let context = sealing_context(stream_id, event_type, path);
            match vault.open_sealed(stream_id, &context, text) {
                Ok(Opened::Clear(value)) => match serde_json::from_value(value) {
                    Ok(value) => Shown::Clear(value),
                    Err(error) => {
                        tracing::error!(stream = stream_id, %error, "a sealed field opened to the wrong shape");
                        Shown::Withheld
                    }
                },
                Ok(Opened::Erased) => Shown::Erased,
                Ok(Opened::Unavailable) => Shown::Withheld,
                Err(error) => {
                    tracing::error!(stream = stream_id, %error, "a sealed field does not open");
                    Shown::Withheld
                }
            }
        }
    }
}

/// An event's payload as a caller may see it: its sealed fields opened
/// (or shown as erased), then the fields its type declares personal
/// masked unless `personal` (names to the family name, resident ID
/// numbers to their first six and last four characters, mobile numbers to
/// their first three and last four digits, addresses entirely), and its
/// secrets removed for everyone. Answers whether personal data was shown
/// unmasked, for the record of who read it.
pub fn show_event(
    vault: &Vault,
    stream_id: &str,
    event_type: &str,
    data: &mut Value,
    personal: bool,
) -> bool {
    let mut opened = false;
    visit_sealed(event_type, data, |path, value| {
        let Some(text) = value.get("sealed").and_then(Value::as_str) else {
            // Recorded in the clear by a store made before sealing.
            opened |= !value.is_null() && value.get("erased").is_none();
            return;
        };
        let context = sealing_context(stream_id, event_type, path);
        *value = match vault.open_sealed(stream_id, &context, text) {
            Ok(Opened::Clear(clear)) => {
                opened = true;
                clear
            }
            Ok(Opened::Erased) => erased(),
            Ok(Opened::Unavailable) => withheld(),
            Err(error) => {
                tracing::error!(stream = stream_id, %error, "a sealed field does not open");
                withheld()
            }
        };
    });
    mask(event_type, data, personal);
    opened && personal
}

/// Masks (unless `personal`) the declared fields of an opened payload and
/// removes its secrets.
pub fn mask(event_type: &str, data: &mut Value, personal: bool) {
    rewrite(event_type, data, |kind, text| match kind {
        PersonalKind::Secret => None,
        _ if personal => Some(text.to_owned()),
        PersonalKind::Name => Some(mask_name(text)),
        PersonalKind::ResidentId => Some(keep_ends(text, 6, 4)),
        PersonalKind::Phone => Some(keep_ends(text, 3, 4)),
        PersonalKind::Address => Some("***".into()),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_data_is_masked_by_what_each_field_is() {
        let mut registered = serde_json::json!({
            "zone_id": "z",
            "personal": {"name": "张三丰", "resident_id": "11010519491231002X",
                         "phone": "13812345678", "address": "桥头村三组12号"},
        });
        mask("ReturneeRegistered", &mut registered, false);
        assert_eq!(registered["personal"]["name"], "张**");
        assert_eq!(registered["personal"]["resident_id"], "110105********002X");
        assert_eq!(registered["personal"]["phone"], "138****5678");
        assert_eq!(registered["personal"]["address"], "***");
        assert_eq!(registered["zone_id"], "z");
        // Outside any `personal` object: a leader's and a team member's phone.
        let mut leader = serde_json::json!({"leader": "王镇长", "phone": "13900001111"});
        mask("ZoneLeaderAssigned", &mut leader, false);
        assert_eq!(leader["phone"], "139****1111");
        let mut team = serde_json::json!({"members": [{"name": "李四", "phone": "13900002222"}]});
        mask("ResponsibilityTeamAssigned", &mut team, false);
        assert_eq!(team["members"][0]["phone"], "139****2222");
        // Secrets leave for no one, admin included.
        let mut issued = serde_json::json!({"token_id": "t", "secret_sha256": "ab"});
        mask("TokenIssued", &mut issued, true);
        assert!(issued.get("secret_sha256").is_none());
        let mut unmasked = serde_json::json!({"phone": "13900001111"});
        mask("ZoneLeaderAssigned", &mut unmasked, true);
        assert_eq!(unmasked["phone"], "13900001111");
        // An erased field is left as the marker it is, whoever asks.
        let mut gone = serde_json::json!({"personal": {"erased": true}});
        mask("ReturneeRegistered", &mut gone, false);
        assert_eq!(gone["personal"], erased());
    }
}
