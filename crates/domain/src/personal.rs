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

/// Where an event type's personal data sits: each path's value is sealed
/// as one under the key of the event's data subject (its stream), so a
/// person's name, ID number, phone and address go in one ciphertext.
/// Secrets are not sealed: they are hashes the service must read.
pub fn sealed_paths(event_type: &str) -> &'static [&'static [&'static str]] {
    match event_type {
        "ReturneeRegistered" | "BanquetReported" => &[&["personal"]],
        "ResponsibilityTeamAssigned" => &[&["members", "[]", "phone"]],
        "ZoneLeaderAssigned" => &[&["phone"]],
        "StaffHealthCheckRecorded" => &[&["staff"]],
        _ => &[],
    }
}

/// Visits every value at one of `event_type`'s sealed paths in `payload`.
pub fn visit_sealed(
    event_type: &str,
    payload: &mut Value,
    mut at: impl FnMut(&'static [&'static str], &mut Value),
) {
    for path in sealed_paths(event_type) {
        visit(payload, path, &mut |parent, key| {
            if let Some(value) = parent.get_mut(key) {
                at(path, value);
            }
        });
    }
}

/// What the associated data of a sealed value binds it to: the stream (its
/// data subject), the event type and the field's path, so a ciphertext
/// moved to another person, event or field no longer opens.
pub fn sealing_context(stream_id: &str, event_type: &str, path: &[&str]) -> Vec<u8> {
    let mut context = Vec::with_capacity(64);
    context.extend_from_slice(b"fangkong personal v1\0");
    for part in [stream_id, event_type]
        .into_iter()
        .chain(path.iter().copied())
    {
        context.extend_from_slice(part.as_bytes());
        context.push(0);
    }
    context
}

/// Personal data as an event or a read model holds it: in the clear (as a
/// command brings it, or as a store made before encryption recorded it),
/// sealed under its subject's key (as the log holds it), or erased (its
/// key destroyed). Read models keep it sealed and open it only to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Personal<T> {
    Clear(T),
    Sealed(String),
    Erased,
}

impl<T> Personal<T> {
    pub fn clear(&self) -> Option<&T> {
        match self {
            Personal::Clear(value) => Some(value),
            _ => None,
        }
    }

    pub fn is_erased(&self) -> bool {
        matches!(self, Personal::Erased)
    }
}

impl<T: serde::Serialize> serde::Serialize for Personal<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Personal::Clear(value) => value.serialize(serializer),
            Personal::Sealed(text) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("sealed", text)?;
                map.end()
            }
            Personal::Erased => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("erased", &true)?;
                map.end()
            }
        }
    }
}

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Personal<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Repr<T> {
            Sealed { sealed: String },
            Erased { erased: bool },
            Clear(T),
        }
        match Repr::deserialize(deserializer)? {
            Repr::Sealed { sealed } => Ok(Personal::Sealed(sealed)),
            Repr::Erased { erased: true } => Ok(Personal::Erased),
            Repr::Erased { erased: false } => Err(serde::de::Error::custom(
                "`erased` is only ever true: leave it out",
            )),
            Repr::Clear(value) => Ok(Personal::Clear(value)),
        }
    }
}

/// The contract's schema of a personal field as answers show it: the value
/// itself; `{"erased": true}` once the person's data was erased; or
/// `{"withheld": true}` from an instance that does not hold the person's
/// key yet (another instance wrote it a moment ago: asking again shows it).
#[cfg(feature = "openapi")]
pub fn shown_schema<T: utoipa::PartialSchema>(
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
    let erased = ObjectBuilder::new()
        .title(Some("Erased"))
        .description(Some(
            "The person's personal data was erased (its key destroyed): every figure stands, \
             the data is gone.",
        ))
        .property(
            "erased",
            ObjectBuilder::new()
                .schema_type(Type::Boolean)
                .enum_values(Some([true])),
        )
        .required("erased");
    let withheld = ObjectBuilder::new()
        .title(Some("Withheld"))
        .description(Some(
            "This instance does not hold the person's key yet: ask again in a few seconds.",
        ))
        .property(
            "withheld",
            ObjectBuilder::new()
                .schema_type(Type::Boolean)
                .enum_values(Some([true])),
        )
        .required("withheld");
    OneOfBuilder::new()
        .item(T::schema())
        .item(erased)
        .item(withheld)
        .into()
}

/// [`shown_schema`] for a field that may be `null` (none given).
#[cfg(feature = "openapi")]
pub fn shown_or_null_schema<T: utoipa::PartialSchema>(
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
    let mut one_of = OneOfBuilder::new();
    if let utoipa::openapi::RefOr::T(Schema::OneOf(shown)) = shown_schema::<T>() {
        for item in shown.items {
            one_of = one_of.item(item);
        }
    }
    one_of
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .into()
}

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
    use serde_json::json;

    #[test]
    fn personal_data_reads_back_clear_sealed_or_erased_and_nothing_else() {
        let clear: Personal<String> = serde_json::from_value(json!("张三")).expect("clear");
        assert_eq!(clear, Personal::Clear("张三".to_owned()));
        let sealed: Personal<String> =
            serde_json::from_value(json!({"sealed": "abc"})).expect("sealed");
        assert_eq!(sealed, Personal::Sealed("abc".to_owned()));
        let erased: Personal<String> =
            serde_json::from_value(json!({"erased": true})).expect("erased");
        assert_eq!(erased, Personal::Erased);
        for form in [clear, sealed, erased] {
            let back: Personal<String> =
                serde_json::from_value(serde_json::to_value(&form).expect("renders"))
                    .expect("reads back");
            assert_eq!(back, form);
        }
        assert!(serde_json::from_value::<Personal<String>>(json!({"erased": false})).is_err());
        assert!(serde_json::from_value::<Personal<String>>(json!(7)).is_err());
    }

    #[test]
    fn every_declared_personal_field_lies_under_a_sealed_path() {
        for event_type in [
            "ReturneeRegistered",
            "ResponsibilityTeamAssigned",
            "ZoneLeaderAssigned",
            "BanquetReported",
            "StaffHealthCheckRecorded",
        ] {
            for declared in fields_of(event_type) {
                assert!(
                    sealed_paths(event_type)
                        .iter()
                        .any(|sealed| declared.path.starts_with(sealed)),
                    "{event_type}: {:?} is not sealed",
                    declared.path
                );
            }
        }
        assert!(sealed_paths("TokenIssued").is_empty(), "secrets are hashes");
    }

    #[test]
    fn sealing_contexts_differ_by_person_event_and_field() {
        let base = sealing_context("returnee-1", "ReturneeRegistered", &["personal"]);
        assert_ne!(
            base,
            sealing_context("returnee-2", "ReturneeRegistered", &["personal"])
        );
        assert_ne!(
            base,
            sealing_context("returnee-1", "BanquetReported", &["personal"])
        );
        assert_ne!(
            base,
            sealing_context("returnee-1", "ReturneeRegistered", &["phone"])
        );
        // Parts are delimited: moving a character across a boundary differs.
        assert_ne!(
            sealing_context("a", "bc", &[]),
            sealing_context("ab", "c", &[])
        );
    }

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
