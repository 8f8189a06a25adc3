//! Value types that parse their input once; the rest of the code trusts them.
//!
//! Each `parse` names what was wrong in a [`ValueError`], which the API turns
//! into a 422 naming the field.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// A value that failed to parse: what it should have been.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ValueError {
    pub message: String,
}

impl ValueError {
    fn new(message: impl Into<String>) -> Self {
        ValueError {
            message: message.into(),
        }
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh id, ordered by creation time (UUID v7).
            pub fn new() -> Self {
                $name(Uuid::now_v7())
            }

            pub fn from_uuid(id: Uuid) -> Self {
                $name(id)
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }

            /// The id of this entity's stream in the event log.
            pub fn stream_id(&self) -> String {
                format!(concat!($prefix, "-{}"), self.0)
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// A zone (片区) of the township.
    ZoneId, "zone"
);
id_type!(
    /// A village or community (村 / 社区) inside a zone.
    VillageId, "village"
);
id_type!(
    /// A grid (网格) inside a village.
    GridId, "grid"
);
id_type!(
    /// A person who arrived from elsewhere (返镇人员).
    ReturneeId, "returnee"
);
id_type!(
    /// A duty post (值守点).
    CheckpointId, "checkpoint"
);
id_type!(
    /// A shop, hotel, enterprise, mahjong parlour or other premises.
    VenueId, "venue"
);
id_type!(
    /// A reported banquet (宴席).
    BanquetId, "banquet"
);

/// A body temperature in °C, 30.0 to 45.0, kept to one decimal.
///
/// Stored as tenths of a degree so that equality and thresholds are exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = f64))]
pub struct Temperature(u16);

impl Temperature {
    pub const MIN_TENTHS: u16 = 300;
    pub const MAX_TENTHS: u16 = 450;
    /// 37.3 °C: at or above it a reading is a fever (发热).
    pub const FEVER: Temperature = Temperature(373);

    pub fn parse(celsius: f64) -> Result<Self, ValueError> {
        if !celsius.is_finite() {
            return Err(ValueError::new("temperature must be a number of °C"));
        }
        let tenths = (celsius * 10.0).round();
        if (tenths - celsius * 10.0).abs() > 1e-6 {
            return Err(ValueError::new(
                "temperature must have at most one decimal (e.g. 36.8)",
            ));
        }
        if !(f64::from(Self::MIN_TENTHS)..=f64::from(Self::MAX_TENTHS)).contains(&tenths) {
            return Err(ValueError::new(format!(
                "temperature {celsius} °C is outside 30.0-45.0 °C: check the thermometer reading"
            )));
        }
        Ok(Temperature(tenths as u16))
    }

    pub fn celsius(self) -> f64 {
        f64::from(self.0) / 10.0
    }

    pub fn is_fever(self) -> bool {
        self >= Self::FEVER
    }
}

impl fmt::Display for Temperature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{} °C", self.0 / 10, self.0 % 10)
    }
}

impl Serialize for Temperature {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.celsius())
    }
}

impl<'de> Deserialize<'de> for Temperature {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Temperature::parse(f64::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Implements Serialize/Deserialize through `as_str`/`parse` for a string newtype.
macro_rules! string_serde {
    ($name:ident) => {
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                $name::parse(&raw).map_err(serde::de::Error::custom)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// A mainland resident identity number (居民身份证号码), 18 characters, whose
/// last is the ISO 7064 MOD 11-2 check character of GB 11643.
#[derive(Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResidentIdNumber(String);

impl ResidentIdNumber {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];

    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let id = raw.trim().to_ascii_uppercase();
        let chars: Vec<char> = id.chars().collect();
        if chars.len() != 18 {
            return Err(ValueError::new(
                "resident ID number must have 18 characters",
            ));
        }
        let mut sum = 0;
        for (c, weight) in chars[..17].iter().zip(Self::WEIGHTS) {
            let digit = c.to_digit(10).ok_or_else(|| {
                ValueError::new("resident ID number: the first 17 characters must be digits")
            })?;
            sum += digit * weight;
        }
        let expected = Self::CHECK[(sum % 11) as usize];
        if chars[17] != expected {
            return Err(ValueError::new(
                "resident ID number: the check character does not match (mistyped digit?)",
            ));
        }
        let birth = &id[6..14];
        if NaiveDate::parse_from_str(birth, "%Y%m%d").is_err() {
            return Err(ValueError::new(
                "resident ID number: characters 7-14 are not a valid date of birth",
            ));
        }
        Ok(ResidentIdNumber(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number as those without the right to see it are shown it:
    /// the first six and last four characters.
    pub fn masked(&self) -> String {
        format!("{}********{}", &self.0[..6], &self.0[14..])
    }
}

impl fmt::Debug for ResidentIdNumber {
    // Personal data never reaches a log through a Debug print.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResidentIdNumber({})", self.masked())
    }
}

string_serde!(ResidentIdNumber);

/// A mainland mobile number: 11 digits starting 13-19. A `+86`/`86` prefix
/// and spaces or dashes are accepted and dropped.
#[derive(Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PhoneNumber(String);

impl PhoneNumber {
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let digits: String = raw
            .trim()
            .trim_start_matches('+')
            .chars()
            .filter(|c| !matches!(c, ' ' | '-'))
            .collect();
        let digits = match digits.strip_prefix("86") {
            Some(rest) if rest.len() == 11 => rest.to_owned(),
            _ => digits,
        };
        let valid = digits.len() == 11
            && digits.chars().all(|c| c.is_ascii_digit())
            && digits.starts_with('1')
            && matches!(digits.as_bytes()[1], b'3'..=b'9');
        if !valid {
            return Err(ValueError::new(
                "phone must be a mainland mobile number: 11 digits starting 13-19",
            ));
        }
        Ok(PhoneNumber(digits))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn masked(&self) -> String {
        format!("{}****{}", &self.0[..3], &self.0[7..])
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.masked())
    }
}

string_serde!(PhoneNumber);

/// A non-empty name or short text, trimmed, at most 100 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Name(String);

impl Name {
    pub const MAX_CHARS: usize = 100;

    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(ValueError::new("must not be empty"));
        }
        if name.chars().count() > Self::MAX_CHARS {
            return Err(ValueError::new(format!(
                "must have at most {} characters",
                Self::MAX_CHARS
            )));
        }
        if name.chars().any(char::is_control) {
            return Err(ValueError::new("must not contain control characters"));
        }
        Ok(Name(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

string_serde!(Name);

/// A longer free text (an address, a reason, notes): non-empty, at most 500
/// characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Text(String);

impl Text {
    pub const MAX_CHARS: usize = 500;

    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let text = raw.trim();
        if text.is_empty() {
            return Err(ValueError::new("must not be empty"));
        }
        if text.chars().count() > Self::MAX_CHARS {
            return Err(ValueError::new(format!(
                "must have at most {} characters",
                Self::MAX_CHARS
            )));
        }
        Ok(Text(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

string_serde!(Text);

/// An object's id in DHIS2 (an organisation unit's, for a zone): eleven
/// letters and digits, the first a letter, as DHIS2 generates them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Dhis2Uid(String);

impl Dhis2Uid {
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let uid = raw.trim();
        let well_formed = uid.len() == 11
            && uid.bytes().all(|b| b.is_ascii_alphanumeric())
            && uid.bytes().next().is_some_and(|b| b.is_ascii_alphabetic());
        if !well_formed {
            return Err(ValueError::new(
                "must be a DHIS2 uid: 11 letters and digits, the first a letter",
            ));
        }
        Ok(Dhis2Uid(uid.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

string_serde!(Dhis2Uid);

/// A count of things done (leaflets, people, tables): 0 to 1,000,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct Count(u32);

impl Count {
    pub const MAX: u32 = 1_000_000;

    pub fn parse(n: i64) -> Result<Self, ValueError> {
        if n < 0 {
            return Err(ValueError::new("a count cannot be negative"));
        }
        if n > i64::from(Self::MAX) {
            return Err(ValueError::new(format!(
                "a count above {} is not believable for one record",
                Self::MAX
            )));
        }
        Ok(Count(n as u32))
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Count::parse(i64::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// A calendar day in the township's time zone.
pub type LocalDate = NaiveDate;

/// The township: what defines "a day" for every daily figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Township {
    pub time_zone: chrono_tz::Tz,
}

impl Default for Township {
    fn default() -> Self {
        Township {
            time_zone: chrono_tz::Asia::Shanghai,
        }
    }
}

impl Township {
    pub fn parse_time_zone(name: &str) -> Result<Self, ValueError> {
        name.parse::<chrono_tz::Tz>()
            .map(|time_zone| Township { time_zone })
            .map_err(|_| ValueError::new(format!("unknown time zone {name:?}")))
    }

    /// The township's calendar day at an instant.
    pub fn local_date(&self, at: DateTime<Utc>) -> LocalDate {
        at.with_timezone(&self.time_zone).date_naive()
    }
}

/// How dangerous the place a person comes from is, as the county classifies
/// it at the time (in 2020: Wuhan high, elsewhere in Hubei medium, other
/// regions low). Data, not code: the region is free text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RiskLevel {
    High,
    Medium,
    Low,
}

/// Where a person came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Origin {
    pub region: Name,
    pub risk: RiskLevel,
}

macro_rules! code_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $code:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $code)] $variant),+
        }

        // By hand: a derive does not see the `serde(rename)` a macro writes,
        // and the contract must name the codes, not the variants.
        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::Type::String)
                    .enum_values(Some([$($code),+]))
                    .into()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($name))
            }
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn code(self) -> &'static str {
                match self {
                    $($name::$variant => $code),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.code())
            }
        }
    };
}

code_enum!(
    /// Kinds of premises the township screens and controls.
    VenueKind {
        MahjongParlour = "mahjong_parlour",
        CardRoom = "card_room",
        Hotel = "hotel",
        Restaurant = "restaurant",
        Shop = "shop",
        Supermarket = "supermarket",
        Market = "market",
        Enterprise = "enterprise",
        ResidentialCompound = "residential_compound",
        Other = "other",
    }
);

impl VenueKind {
    /// Gambling venues: the ones closed, dismantled and raided.
    pub fn is_gaming(self) -> bool {
        matches!(self, VenueKind::MahjongParlour | VenueKind::CardRoom)
    }
}

code_enum!(
    /// Kinds of family banquets (宴席).
    BanquetKind {
        Wedding = "wedding",
        Funeral = "funeral",
        Birthday = "birthday",
        Housewarming = "housewarming",
        Other = "other",
    }
);

code_enum!(
    /// Channels of publicity work (多样式宣传).
    PublicityChannel {
        Leaflet = "leaflet",
        Notice = "notice",
        WechatMessage = "wechat_message",
        SmsMessage = "sms_message",
        Broadcast = "broadcast",
        VillageLoudspeaker = "village_loudspeaker",
        Banner = "banner",
        Slogan = "slogan",
        BulletinBoard = "bulletin_board",
        PropagandaVehicle = "propaganda_vehicle",
        MobileLoudspeaker = "mobile_loudspeaker",
        PersuasionSquad = "persuasion_squad",
        ElectronicScreen = "electronic_screen",
        LedScreen = "led_screen",
        VillageRulesAdopted = "village_rules_adopted",
        MarketDayCancelled = "market_day_cancelled",
    }
);

code_enum!(
    /// What happened to a person or vehicle at a checkpoint.
    CrossingOutcome {
        Admitted = "admitted",
        TurnedBack = "turned_back",
        ReferredToQuarantine = "referred_to_quarantine",
    }
);

code_enum!(
    /// Who or what crossed.
    CrossingSubject {
        Person = "person",
        Vehicle = "vehicle",
    }
);

code_enum!(
    /// How a home quarantine ended.
    QuarantineEndReason {
        Completed = "completed",
        ReferredForTreatment = "referred_for_treatment",
        Transferred = "transferred",
        LostToFollowUp = "lost_to_follow_up",
    }
);

code_enum!(
    /// The five roles of the "five for one" responsibility team (五包一).
    TeamRole {
        VillageStationedCadre = "village_stationed_cadre",
        VillageCadre = "village_cadre",
        GroupLeader = "group_leader",
        VillageDoctor = "village_doctor",
        AuxiliaryPolice = "auxiliary_police",
    }
);

code_enum!(
    /// Symptoms asked about at screenings and visits.
    Symptom {
        Fever = "fever",
        Cough = "cough",
        SoreThroat = "sore_throat",
        ShortnessOfBreath = "shortness_of_breath",
        Fatigue = "fatigue",
        Diarrhoea = "diarrhoea",
        Other = "other",
    }
);

code_enum!(
    /// Kinds of duty post.
    CheckpointKind {
        VillageEntrance = "village_entrance",
        CompoundGate = "compound_gate",
        Road = "road",
    }
);

/// The instant something happened in the field, as the client reports it.
pub type OccurredAt = DateTime<Utc>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temperatures_outside_30_to_45_are_rejected() {
        assert!(Temperature::parse(29.9).is_err());
        assert!(Temperature::parse(45.1).is_err());
        assert!(Temperature::parse(f64::NAN).is_err());
        assert_eq!(Temperature::parse(30.0).map(Temperature::celsius), Ok(30.0));
        assert_eq!(Temperature::parse(45.0).map(Temperature::celsius), Ok(45.0));
    }

    #[test]
    fn temperatures_keep_one_decimal() {
        assert!(Temperature::parse(36.55).is_err());
        let t = Temperature::parse(37.3).expect("valid");
        assert!(t.is_fever());
        assert!(!Temperature::parse(37.2).expect("valid").is_fever());
        assert_eq!(t.to_string(), "37.3 °C");
    }

    #[test]
    fn a_resident_id_with_the_right_check_character_parses() {
        // GB 11643's worked example.
        let id = ResidentIdNumber::parse("11010519491231002X").expect("valid");
        assert_eq!(id.masked(), "110105********002X");
        assert!(ResidentIdNumber::parse("11010519491231002x").is_ok());
        assert!(ResidentIdNumber::parse("440524188001010014").is_ok());
    }

    #[test]
    fn a_resident_id_with_a_wrong_check_character_is_rejected() {
        let err = ResidentIdNumber::parse("110105194912310021").expect_err("bad check");
        assert!(err.message.contains("check character"));
        assert!(ResidentIdNumber::parse("11010519491231002").is_err());
        assert!(ResidentIdNumber::parse("1101051949123100AX").is_err());
        // Right check character, impossible birth date (Feb 30).
        assert!(ResidentIdNumber::parse("110105194902300023").is_err());
    }

    #[test]
    fn personal_numbers_debug_print_masked() {
        let id = ResidentIdNumber::parse("11010519491231002X").expect("valid");
        assert!(!format!("{id:?}").contains("19491231"));
        let phone = PhoneNumber::parse("13812345678").expect("valid");
        assert_eq!(format!("{phone:?}"), "PhoneNumber(138****5678)");
    }

    #[test]
    fn mainland_mobile_numbers_parse_with_or_without_country_code() {
        for (raw, parsed) in [
            ("13812345678", "13812345678"),
            ("+86 138 1234 5678", "13812345678"),
            ("86-138-1234-5678", "13812345678"),
            ("19912345678", "19912345678"),
        ] {
            let phone = PhoneNumber::parse(raw).expect(raw);
            assert_eq!(phone.as_str(), parsed);
        }
        for raw in [
            "12812345678",
            "1381234567",
            "138123456789",
            "0731-1234567",
            "",
        ] {
            assert!(PhoneNumber::parse(raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn names_are_trimmed_non_empty_and_bounded() {
        assert_eq!(
            Name::parse("  张三 ").map(|n| n.as_str().to_owned()),
            Ok("张三".into())
        );
        assert!(Name::parse("   ").is_err());
        assert!(Name::parse(&"长".repeat(101)).is_err());
        assert!(Name::parse("a\u{7}b").is_err());
    }

    #[test]
    fn counts_are_non_negative_and_bounded() {
        assert!(Count::parse(-1).is_err());
        assert!(Count::parse(1_000_001).is_err());
        assert_eq!(Count::parse(0).map(Count::get), Ok(0));
    }

    #[test]
    fn the_local_day_follows_the_township_time_zone() {
        let township = Township::default();
        let late_utc = "2020-02-01T17:30:00Z"
            .parse::<DateTime<Utc>>()
            .expect("instant");
        assert_eq!(township.local_date(late_utc).to_string(), "2020-02-02");
        assert!(Township::parse_time_zone("Mars/Olympus").is_err());
    }

    #[test]
    fn ids_name_their_stream() {
        let id = ReturneeId::from_uuid(Uuid::nil());
        assert_eq!(
            id.stream_id(),
            "returnee-00000000-0000-0000-0000-000000000000"
        );
    }

    #[test]
    fn enum_codes_round_trip_through_json() {
        for channel in PublicityChannel::ALL {
            let json = serde_json::to_string(channel).expect("serialise");
            assert_eq!(json, format!("\"{}\"", channel.code()));
            let back: PublicityChannel = serde_json::from_str(&json).expect("deserialise");
            assert_eq!(back, *channel);
        }
    }
}
