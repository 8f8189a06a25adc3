//! Which fields of each event are personal data or secrets, declared once
//! per event type, so masking follows what a field is wherever the event
//! appears (the log, the live feed, a stream, an answer), not where in the
//! payload it happens to sit.

use serde_json::Value;

/// What a declared field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersonalKind {
    /// A person's name: shown masked as the family name.
    Name,
    /// A resident ID number: first six and last four characters.
    ResidentId,
    /// A mobile number: first three and last four digits.
    Phone,
    /// An address: hidden entirely.
    Address,
    /// Never leaves the server, whoever asks (a token's secret hash).
    Secret,
}

/// One declared field: its path in the payload (`[]` steps into every item
/// of an array) and what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersonalField {
    pub path: &'static [&'static str],
    pub kind: PersonalKind,
}

const fn field(path: &'static [&'static str], kind: PersonalKind) -> PersonalField {
    PersonalField { path, kind }
}

use PersonalKind::*;

const RETURNEE_REGISTERED: &[PersonalField] = &[
    field(&["personal", "name"], Name),
    field(&["personal", "resident_id"], ResidentId),
    field(&["personal", "phone"], Phone),
    field(&["personal", "address"], Address),
];
const TEAM_ASSIGNED: &[PersonalField] = &[field(&["members", "[]", "phone"], Phone)];
const LEADER_ASSIGNED: &[PersonalField] = &[field(&["phone"], Phone)];
const BANQUET_REPORTED: &[PersonalField] = &[
    field(&["personal", "name"], Name),
    field(&["personal", "phone"], Phone),
];
const STAFF_CHECKED: &[PersonalField] = &[field(&["staff"], Name)];
const TOKEN_ISSUED: &[PersonalField] = &[field(&["secret_sha256"], Secret)];

/// The personal and secret fields of an event type (none for most).
pub fn fields_of(event_type: &str) -> &'static [PersonalField] {
    match event_type {
        "ReturneeRegistered" => RETURNEE_REGISTERED,
        "ResponsibilityTeamAssigned" => TEAM_ASSIGNED,
        "ZoneLeaderAssigned" => LEADER_ASSIGNED,
        "BanquetReported" => BANQUET_REPORTED,
        "StaffHealthCheckRecorded" => STAFF_CHECKED,
        "TokenIssued" => TOKEN_ISSUED,
        _ => &[],
    }
}

/// Rewrites every declared field of `payload` present as a string: `hide`
/// answers the new value, or `None` to remove the field.
pub fn rewrite(
    event_type: &str,
    payload: &mut Value,
    mut hide: impl FnMut(PersonalKind, &str) -> Option<String>,
) {
    for declared in fields_of(event_type) {
        visit(payload, declared.path, &mut |parent, key| {
            let Some(Value::String(text)) = parent.get(key) else {
                return;
            };
            match hide(declared.kind, text) {
                Some(shown) => {
                    parent.insert(key.to_owned(), Value::String(shown));
                }
                None => {
                    parent.remove(key);
                }
            }
        });
    }
}

fn visit(
    value: &mut Value,
    path: &[&str],
    at: &mut impl FnMut(&mut serde_json::Map<String, Value>, &str),
) {
    match path {
        [] => {}
        ["[]", rest @ ..] => {
            if let Value::Array(items) = value {
                for item in items {
                    visit(item, rest, at);
                }
            }
        }
        [last] => {
            if let Value::Object(map) = value {
                at(map, last);
            }
        }
        [step, rest @ ..] => {
            if let Some(inner) = value.get_mut(*step) {
                visit(inner, rest, at);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_fields_are_found_in_objects_and_arrays_and_nothing_else_is_touched() {
        let mut team = serde_json::json!({"members": [
            {"role": "village_doctor", "name": "李四", "phone": "13900001111"},
            {"role": "group_leader", "name": "孙三"}
        ]});
        rewrite("ResponsibilityTeamAssigned", &mut team, |kind, text| {
            assert_eq!(kind, Phone);
            Some(format!("<{text}>"))
        });
        assert_eq!(team["members"][0]["phone"], "<13900001111>");
        assert_eq!(team["members"][0]["name"], "李四");
        assert!(team["members"][1].get("phone").is_none());

        let mut token = serde_json::json!({"token_id": "t", "secret_sha256": "ab"});
        rewrite("TokenIssued", &mut token, |_, _| None);
        assert_eq!(token, serde_json::json!({"token_id": "t"}));

        let mut other = serde_json::json!({"phone": "13900001111"});
        rewrite("CrossingRecorded", &mut other, |_, _| None);
        assert_eq!(other["phone"], "13900001111", "undeclared: untouched");
    }
}
