//! Untrusted bytes through everything that reads the log or decides a
//! command: value parsing, event decoding (with upcasting), folding every
//! aggregate, deciding commands on the state reached, and the read models
//! (including a save and resume). Nothing here may panic, whatever the
//! bytes: the body of the fuzz target (`fuzz/`), and of a test that runs
//! it over random and hand-picked inputs on stable Rust.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use fangkong_domain::access::{ApiToken, TokenEvent};
use fangkong_domain::activity::{ActivityEvent, StaffEvent};
use fangkong_domain::banquet::{Banquet, BanquetCommand, BanquetEvent};
use fangkong_domain::checkpoint::{Checkpoint, CheckpointEvent};
use fangkong_domain::report::ReportEvent;
use fangkong_domain::returnee::{Returnee, ReturneeCommand, ReturneeEvent, ScreenReturnee};
use fangkong_domain::venue::{Venue, VenueCommand, VenueEvent};
use fangkong_domain::zone::{Zone, ZoneEvent};
use fangkong_domain::{
    Aggregate, Context, Count, EventCodec, Name, PhoneNumber, QuarantineEndReason,
    ResidentIdNumber, Temperature, Text, Township,
};
use fangkong_store::RecordedEvent;
use serde_json::Value;
use uuid::Uuid;

use crate::ReadModels;

/// Every event type the log knows, and a few it does not.
const TYPES: &[&str] = &[
    "ZoneEstablished",
    "ZoneLeaderAssigned",
    "VillageAdded",
    "GridAdded",
    "Dhis2OrgUnitLinked",
    "ReturneeRegistered",
    "ReturneeScreened",
    "ResponsibilityTeamAssigned",
    "QuarantineStarted",
    "HealthCheckRecorded",
    "AbnormalConditionReported",
    "ReferredForTreatment",
    "PersonalDataErased",
    "QuarantinePeriodChanged",
    "ExposureRecorded",
    "QuarantineEnded",
    "CheckpointEstablished",
    "CrossingRecorded",
    "VenueRegistered",
    "CommitmentSigned",
    "VenueClosed",
    "VenueReopened",
    "EnforcementActionRecorded",
    "BanquetReported",
    "BanquetPostponed",
    "BanquetCancelled",
    "BanquetScaledDown",
    "GatheringDispersed",
    "PublicityRecorded",
    "PatrolCompleted",
    "StaffHealthCheckRecorded",
    "DailyReportSubmitted",
    "TokenIssued",
    "TokenRevoked",
    "NoSuchEvent",
    "",
    // Added later: appended, so the fuzz seeds' indexes stay as they were.
    "BanquetHostDataErased",
    "StaffNamesErased",
];

const CATEGORIES: &[&str] = &[
    "zone",
    "returnee",
    "checkpoint",
    "venue",
    "banquet",
    "activity",
    "staff",
    "report",
    "token",
    "other",
];

/// Runs untrusted `data` through decoding, folding, deciding and the read
/// models. Input layout: records separated by `0xFF`, each
/// `[type][version][category][day offset]` then JSON payload text; the
/// whole input is also tried as a value for every parser.
pub fn exercise(data: &[u8]) {
    parse_values(data);
    let township = Township::default();
    let start = DateTime::<Utc>::from_timestamp(1_580_000_000, 0).unwrap_or_default();
    let id = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001);
    let mut models = ReadModels::default();
    let mut folded = Folded::default();
    for (i, record) in data.split(|b| *b == 0xFF).enumerate().take(64) {
        let [kind, version, category, offset, payload @ ..] = record else {
            continue;
        };
        let event_type = TYPES[usize::from(*kind) % TYPES.len()];
        let version = u32::from(*version % 4);
        let category = CATEGORIES[usize::from(*category) % CATEGORIES.len()];
        let Ok(payload) = serde_json::from_slice::<Value>(payload) else {
            continue;
        };
        folded.apply(event_type, version, &payload);
        let occurred = start + Duration::hours(i64::from(*offset) - 128);
        let event = RecordedEvent {
            position: i as u64 + 1,
            stream_id: format!("{category}-{id}"),
            stream_version: i as u64 + 1,
            event_id: Uuid::from_u128(i as u128 + 1),
            event_type: event_type.to_owned(),
            schema_version: version,
            payload,
            metadata: serde_json::json!({"occurred_at": occurred.to_rfc3339()}),
            recorded_at: start + Duration::seconds(i as i64),
            hash: [0; 32],
        };
        let before = models.clone();
        if models.apply(&event, &township).is_err() {
            // A refused event changes nothing.
            assert!(models == before, "a refused event changed the read models");
        }
    }
    folded.decide(data);
    // Saved and resumed, the models are the same.
    if let Ok(state) = models.to_state() {
        // (Tokens are never saved: credentials come from the log alone.)
        let resumed = ReadModels::from_state(&state).ok();
        assert!(
            resumed
                .as_ref()
                .is_some_and(|r| r.board == models.board && r.roster == models.roster),
            "a saved state reads back the same"
        );
    }
    let reading = crate::Reading {
        township: &township,
        rules: crate::ReportingRules::default(),
        clock: crate::Clock::at(start + Duration::days(3), &township),
    };
    let day = NaiveDate::from_ymd_opt(2020, 1, 26).unwrap_or_default();
    let _ = reading.township_dashboard(&models.board, day);
    let _ = reading.daily(&models.board, day - Duration::days(3), day);
    for zone in models.board.zones().keys() {
        let _ = reading.zone_dashboard(&models.board, *zone, day);
    }
}

fn parse_values(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Name::parse(text);
        let _ = Text::parse(text);
        let _ = ResidentIdNumber::parse(text);
        let _ = PhoneNumber::parse(text);
        let _ = Township::parse_time_zone(text);
        let _ = crate::ReportingRules::parse(text);
    }
    if let Some(bytes) = data.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
        let _ = Temperature::parse(f64::from_le_bytes(bytes));
        let _ = Count::parse(i64::from_le_bytes(bytes));
    }
}

/// Each aggregate folded over whichever events decode for it.
#[derive(Default)]
struct Folded {
    zone: Zone,
    returnee: Returnee,
    checkpoint: Checkpoint,
    venue: Venue,
    banquet: Banquet,
    token: ApiToken,
}

impl Folded {
    fn apply(&mut self, event_type: &str, version: u32, payload: &Value) {
        if let Ok(e) = ZoneEvent::from_stored(event_type, version, payload.clone()) {
            self.zone = std::mem::take(&mut self.zone).apply(&e);
        }
        if let Ok(e) = ReturneeEvent::from_stored_ref(event_type, version, payload) {
            self.returnee = std::mem::take(&mut self.returnee).apply(&e);
        }
        if let Ok(e) = CheckpointEvent::from_stored_ref(event_type, version, payload) {
            self.checkpoint = std::mem::take(&mut self.checkpoint).apply(&e);
        }
        if let Ok(e) = VenueEvent::from_stored_ref(event_type, version, payload) {
            self.venue = std::mem::take(&mut self.venue).apply(&e);
        }
        if let Ok(e) = BanquetEvent::from_stored_ref(event_type, version, payload) {
            self.banquet = std::mem::take(&mut self.banquet).apply(&e);
        }
        if let Ok(e) = TokenEvent::from_stored_ref(event_type, version, payload) {
            self.token = std::mem::take(&mut self.token).apply(&e);
        }
        let _ = ActivityEvent::from_stored_ref(event_type, version, payload);
        let _ = StaffEvent::from_stored_ref(event_type, version, payload);
        let _ = ReportEvent::from_stored_ref(event_type, version, payload);
    }

    /// Commands decided on whatever state the events reached, on days
    /// chosen by the input: a refusal is fine, a panic is not.
    fn decide(&self, data: &[u8]) {
        let base = NaiveDate::from_ymd_opt(2020, 1, 25).unwrap_or_default();
        let shift = |b: Option<&u8>| Duration::days(i64::from(b.copied().unwrap_or(0)) - 128);
        let ctx = Context {
            today: base + shift(data.first()),
            occurred_on: base + shift(data.get(1)),
        };
        let (Ok(name), Ok(temperature), Ok(reason)) = (
            Name::parse("村医"),
            Temperature::parse(37.5),
            Text::parse("密接"),
        ) else {
            return;
        };
        let planned = data.get(2).map(|b| i64::from(*b) - 8);
        let commands = [
            ReturneeCommand::Screen(ScreenReturnee {
                temperature,
                identity_checked: true,
                came_from: name.clone(),
                going_to: None,
                symptoms: vec![],
                screened_by: name.clone(),
            }),
            ReturneeCommand::StartQuarantine {
                planned_days: planned,
            },
            ReturneeCommand::RecordHealthCheck {
                temperature,
                symptoms: vec![],
                visited_by: None,
            },
            ReturneeCommand::ReportAbnormalCondition {
                temperature: Some(temperature),
                symptoms: vec![],
                notes: None,
            },
            ReturneeCommand::ReferForTreatment {
                facility: name.clone(),
            },
            ReturneeCommand::ChangeQuarantinePeriod {
                planned_days: planned.unwrap_or(14),
                reason: reason.clone(),
            },
            ReturneeCommand::RecordExposure {
                description: reason.clone(),
            },
            ReturneeCommand::EndQuarantine {
                reason: QuarantineEndReason::Completed,
            },
        ];
        for command in &commands {
            if let Ok(events) = self.returnee.handle(command, &ctx) {
                events
                    .iter()
                    .fold(self.returnee.clone(), |state, e| state.apply(e));
            }
        }
        for command in [
            VenueCommand::Close {
                notice_posted: true,
            },
            VenueCommand::Reopen,
        ] {
            let _ = self.venue.handle(&command, &ctx);
        }
        if let Ok(guests) = Count::parse(i64::from(data.get(3).copied().unwrap_or(5))) {
            let _ = self
                .banquet
                .handle(&BanquetCommand::ScaleDown { guests }, &ctx);
            let _ = self.banquet.handle(
                &BanquetCommand::Postpone {
                    new_date: ctx.today + shift(data.get(4)),
                },
                &ctx,
            );
        }
        if let Ok(reason) = Text::parse("retention") {
            let _ = self.banquet.handle(
                &BanquetCommand::EraseHostData {
                    basis: fangkong_domain::returnee::ErasureBasis::Retention,
                    reason,
                },
                &ctx,
            );
        }
    }
}
