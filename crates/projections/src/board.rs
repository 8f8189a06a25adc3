//! The control board: every figure of every zone and township-local day,
//! and each day's report, kept up to date one recorded event at a time.
//!
//! Pure and deterministic: the same events in the same order give the same
//! board, whichever process folds them and however often it stopped and
//! resumed from a saved copy. Reading "today" (missed visits, late or
//! missing reports) happens in [`crate::views`], with the reader's clock.
//!
//! Days: an event counts on the township-local day of its `occurred_at`
//! (field time, DESIGN.md "Time"); the visits a quarantine owes count on
//! the days of the schedule.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Days, NaiveDate, Utc};
use fangkong_domain::activity::{ActivityEvent, StaffEvent};
use fangkong_domain::banquet::BanquetEvent;
use fangkong_domain::checkpoint::CheckpointEvent;
use fangkong_domain::report::ReportEvent;
use fangkong_domain::returnee::ReturneeEvent;
use fangkong_domain::schedule::Schedule;
use fangkong_domain::venue::{EnforcementAction, VenueEvent};
use fangkong_domain::zone::ZoneEvent;
use fangkong_domain::{CrossingSubject, EventCodec, Township, VenueKind};
use fangkong_store::{category_of, RecordedEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::figures::{DayBook, Figure, Figures};

/// Longest stretch of days one quarantine is allowed to owe visits for in
/// the board: far beyond any real period (60 days, re-exposures included),
/// it only bounds the work a corrupt or hostile history could cause.
const MAX_OBSERVED_DAYS: u64 = 366;

/// Everything the dashboards and daily aggregates are read from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Board {
    position: u64,
    /// When the last applied event was recorded: the board's own clock.
    recorded_at: Option<DateTime<Utc>>,
    zones: BTreeMap<Uuid, ZoneBoard>,
    /// The township office's own figures (staff morning checks), which
    /// belong to no zone.
    office: DayBook,
    people: HashMap<Uuid, Person>,
    venues: HashMap<Uuid, VenuePlace>,
    /// Zone of each checkpoint and banquet.
    owners: HashMap<Uuid, Uuid>,
}

/// One zone: its days, what stands now, and its reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneBoard {
    pub name: String,
    /// The township-local day it was established.
    pub established_on: Option<NaiveDate>,
    pub days: DayBook,
    /// Field events recorded per day: what a zero report must find none of.
    pub events: BTreeMap<NaiveDate, u64>,
    pub under_quarantine: u64,
    /// People with an abnormal finding not yet referred for treatment.
    pub awaiting_referral: u64,
    pub venues_closed: BTreeMap<VenueKind, u64>,
    pub reports: BTreeMap<NaiveDate, ReportRecord>,
    /// The latest day with a report: later days cannot be amended, and
    /// most events are for them.
    pub latest_report: Option<NaiveDate>,
}

/// The latest submission of one zone's day, and what happened to the day
/// since.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportRecord {
    pub revision: u32,
    pub zero_report: bool,
    /// Figures as the leader attested them (codes as sent).
    pub attested: BTreeMap<String, u64>,
    /// Log position of the submission.
    pub position: u64,
    /// When the leader submitted the first revision (its `occurred_at`: a
    /// report made offline before the deadline and synced after it was on
    /// time). Whether the day was reported on time never changes after it.
    pub first_submitted_at: DateTime<Utc>,
    /// When the server recorded the first revision.
    pub first_recorded_at: DateTime<Utc>,
    /// When the latest revision was submitted.
    pub submitted_at: DateTime<Utc>,
    /// The day's figures as the board held them when the report was
    /// recorded, so an amendment can say what changed.
    pub as_submitted: Figures,
    /// Events recorded after the submission that changed the day.
    pub amendments: u64,
    pub last_amended_position: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Person {
    zone: Uuid,
    observation: Option<Observation>,
    visits: BTreeSet<NaiveDate>,
    awaiting_referral: bool,
}

/// A home quarantine in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Observation {
    started_on: NaiveDate,
    schedule: Schedule,
    /// The last day counted as owing a visit (from `started_on`), if any.
    owed_until: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct VenuePlace {
    zone: Uuid,
    kind: VenueKind,
    closed: bool,
}

impl ZoneBoard {
    fn add(&mut self, day: NaiveDate, figure: Figure, amount: u64, position: u64) {
        if amount == 0 {
            return;
        }
        self.days.add(day, figure, amount);
        self.amended(day, position);
    }

    fn subtract(&mut self, day: NaiveDate, figure: Figure, amount: u64, position: u64) {
        if self.days.subtract(day, figure, amount) {
            self.amended(day, position);
        }
    }

    fn field_event(&mut self, day: NaiveDate, position: u64) {
        *self.events.entry(day).or_default() += 1;
        self.amended(day, position);
    }

    /// A reported day changed after its report: the report is amended.
    fn amended(&mut self, day: NaiveDate, position: u64) {
        if self.latest_report.is_none_or(|latest| day > latest) {
            return;
        }
        if let Some(report) = self.reports.get_mut(&day) {
            if position > report.position && report.last_amended_position != Some(position) {
                report.amendments += 1;
                report.last_amended_position = Some(position);
            }
        }
    }

    /// The day's stored figures (derived ones are zero).
    pub fn day(&self, day: NaiveDate) -> Option<&Figures> {
        self.days.get(day)
    }
}

impl Board {
    /// The last position applied.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// When the last applied event was recorded.
    pub fn recorded_at(&self) -> Option<DateTime<Utc>> {
        self.recorded_at
    }

    pub fn zones(&self) -> &BTreeMap<Uuid, ZoneBoard> {
        &self.zones
    }

    pub fn zone(&self, zone: Uuid) -> Option<&ZoneBoard> {
        self.zones.get(&zone)
    }

    pub fn office(&self) -> &DayBook {
        &self.office
    }

    /// Field events the zone recorded for the day.
    pub fn field_events(&self, zone: Uuid, day: NaiveDate) -> u64 {
        self.zones
            .get(&zone)
            .and_then(|z| z.events.get(&day))
            .copied()
            .unwrap_or(0)
    }

    /// Applies the next event of the log. Total: an event it cannot decode
    /// or place changes only the position, never panics.
    pub fn apply(&mut self, event: &RecordedEvent, township: &Township) {
        self.apply_prepared(event, township, None);
    }

    /// As `apply`, with the returnee event already decoded by the caller
    /// (the roster reads the same events: they are decoded once).
    pub(crate) fn apply_prepared(
        &mut self,
        event: &RecordedEvent,
        township: &Township,
        returnee: Option<(Uuid, ReturneeEvent)>,
    ) {
        if event.position <= self.position && self.position != 0 {
            // Already applied (a resumed runtime may read its last page again).
            return;
        }
        self.position = event.position;
        self.recorded_at = Some(event.recorded_at);
        let day = township.local_date(occurred_at(event));
        let at = event.position;
        let (kind, version, payload) = (
            event.event_type.as_str(),
            event.schema_version,
            &event.payload,
        );
        match category_of(&event.stream_id) {
            "zone" => {
                if let Ok(ZoneEvent::ZoneEstablished(e)) =
                    ZoneEvent::from_stored_ref(kind, version, payload)
                {
                    let zone = self.zones.entry(e.zone_id.as_uuid()).or_default();
                    zone.name = e.name.to_string();
                    zone.established_on = Some(day);
                }
            }
            "returnee" => {
                if let Some((id, e)) = returnee.or_else(|| decode_returnee(event)) {
                    self.returnee(id, e, day, at);
                }
            }
            "checkpoint" => {
                let (Some(id), Ok(e)) = (
                    entity_id(&event.stream_id),
                    CheckpointEvent::from_stored_ref(kind, version, payload),
                ) else {
                    return;
                };
                match e {
                    CheckpointEvent::CheckpointEstablished(e) => {
                        self.owners.insert(id, e.zone_id.as_uuid());
                    }
                    CheckpointEvent::CrossingRecorded(e) => {
                        let Some(zone) = self.owned_zone(id) else {
                            return;
                        };
                        zone.field_event(day, at);
                        zone.add(day, Figure::Crossings, 1, at);
                        zone.add(day, Figure::CrossingsPeople, e.people.get().into(), at);
                        if e.subject == CrossingSubject::Vehicle {
                            zone.add(day, Figure::CrossingsVehicles, 1, at);
                        }
                        zone.add(day, Figure::crossing_outcome(e.outcome), 1, at);
                    }
                }
            }
            "venue" => {
                if let (Some(id), Ok(e)) = (
                    entity_id(&event.stream_id),
                    VenueEvent::from_stored_ref(kind, version, payload),
                ) {
                    self.venue(id, e, day, at);
                }
            }
            "banquet" => {
                let (Some(id), Ok(e)) = (
                    entity_id(&event.stream_id),
                    BanquetEvent::from_stored_ref(kind, version, payload),
                ) else {
                    return;
                };
                let figure = match e {
                    BanquetEvent::BanquetReported(e) => {
                        self.owners.insert(id, e.zone_id.as_uuid());
                        Figure::BanquetsReported
                    }
                    BanquetEvent::BanquetPostponed(_) => Figure::BanquetsPostponed,
                    BanquetEvent::BanquetCancelled(_) => Figure::BanquetsCancelled,
                    BanquetEvent::BanquetScaledDown(_) => Figure::BanquetsScaledDown,
                    // Erasing a host's data is no work in the field.
                    BanquetEvent::BanquetHostDataErased(_) => return,
                };
                if let Some(zone) = self.owned_zone(id) {
                    zone.field_event(day, at);
                    zone.add(day, figure, 1, at);
                }
            }
            "activity" => {
                let Ok(e) = ActivityEvent::from_stored_ref(kind, version, payload) else {
                    return;
                };
                let (zone_id, (figure, amount), more) = match e {
                    ActivityEvent::GatheringDispersed(e) => (
                        e.zone_id,
                        (Figure::GatheringsDispersed, 1),
                        Some((Figure::GatheringPeopleDispersed, e.people.get())),
                    ),
                    ActivityEvent::PublicityRecorded(e) => (
                        e.zone_id,
                        (Figure::publicity(e.channel), u64::from(e.quantity.get())),
                        None,
                    ),
                    ActivityEvent::PatrolCompleted(e) => (
                        e.zone_id,
                        (Figure::Patrols, 1),
                        Some((Figure::PatrolPeoplePersuaded, e.persuaded.get())),
                    ),
                };
                let zone = self.zones.entry(zone_id.as_uuid()).or_default();
                zone.field_event(day, at);
                zone.add(day, figure, amount, at);
                if let Some((figure, amount)) = more {
                    zone.add(day, figure, amount.into(), at);
                }
            }
            "staff" => {
                if let Ok(StaffEvent::StaffHealthCheckRecorded(e)) =
                    StaffEvent::from_stored_ref(kind, version, payload)
                {
                    self.office.add(day, Figure::StaffHealthChecks, 1);
                    if e.abnormal {
                        self.office.add(day, Figure::StaffAbnormal, 1);
                    }
                }
            }
            "report" => {
                if let Ok(ReportEvent::DailyReportSubmitted(e)) =
                    ReportEvent::from_stored_ref(kind, version, payload)
                {
                    let zone = self.zones.entry(e.zone_id.as_uuid()).or_default();
                    let submitted_at = occurred_at(event);
                    let (first_submitted_at, first_recorded_at) = zone
                        .reports
                        .get(&e.date)
                        .map_or((submitted_at, event.recorded_at), |r| {
                            (r.first_submitted_at, r.first_recorded_at)
                        });
                    let as_submitted = zone.days.get(e.date).cloned().unwrap_or_default();
                    zone.latest_report = zone.latest_report.max(Some(e.date));
                    zone.reports.insert(
                        e.date,
                        ReportRecord {
                            revision: e.revision,
                            zero_report: e.zero_report,
                            attested: e.figures,
                            position: at,
                            first_submitted_at,
                            first_recorded_at,
                            submitted_at,
                            as_submitted,
                            amendments: 0,
                            last_amended_position: None,
                        },
                    );
                }
            }
            _ => {}
        }
    }

    fn owned_zone(&mut self, entity: Uuid) -> Option<&mut ZoneBoard> {
        let zone = *self.owners.get(&entity)?;
        Some(self.zones.entry(zone).or_default())
    }

    fn returnee(&mut self, id: Uuid, event: ReturneeEvent, day: NaiveDate, at: u64) {
        if let ReturneeEvent::ReturneeRegistered(e) = &event {
            self.people.insert(
                id,
                Person {
                    zone: e.zone_id.as_uuid(),
                    observation: None,
                    visits: BTreeSet::new(),
                    awaiting_referral: false,
                },
            );
        }
        // Erasing a person's data is no work in the field: no figure moves.
        if matches!(event, ReturneeEvent::PersonalDataErased(_)) {
            return;
        }
        let Some(person) = self.people.get_mut(&id) else {
            return;
        };
        let zone = self.zones.entry(person.zone).or_default();
        zone.field_event(day, at);
        match event {
            ReturneeEvent::ReturneeRegistered(e) => {
                zone.add(day, Figure::ReturneesRegistered, 1, at);
                zone.add(day, Figure::registered_with_risk(e.origin.risk), 1, at);
            }
            ReturneeEvent::ReturneeScreened(e) => {
                zone.add(day, Figure::ReturneesScreened, 1, at);
                // The temperature taken is the day's visit, on a day of a
                // quarantine (now, or one that starts that day).
                if person.visits.insert(e.screened_on) && owes_on(person, e.screened_on) {
                    zone.add(e.screened_on, Figure::HealthVisitsMade, 1, at);
                }
            }
            ReturneeEvent::ResponsibilityTeamAssigned(_) => {
                zone.add(day, Figure::ResponsibilityTeamsAssigned, 1, at)
            }
            // Left before any figure moved (above).
            ReturneeEvent::PersonalDataErased(_) => {}
            ReturneeEvent::QuarantineStarted(e) => {
                zone.add(day, Figure::QuarantinesStarted, 1, at);
                if person.observation.is_none() {
                    zone.under_quarantine += 1;
                }
                let observation = Observation {
                    started_on: e.start_date,
                    schedule: Schedule {
                        count_start: e.start_date,
                        planned_days: e.planned_days,
                    },
                    owed_until: None,
                };
                let last = Some(observation.schedule.planned_end());
                person.observation = Some(observation);
                owe_visits(zone, person, last, at);
            }
            ReturneeEvent::HealthCheckRecorded(e) => {
                zone.add(day, Figure::HealthVisitsRecorded, 1, at);
                if person.visits.insert(e.date) && owes_on(person, e.date) {
                    zone.add(e.date, Figure::HealthVisitsMade, 1, at);
                }
            }
            ReturneeEvent::AbnormalConditionReported(_) => {
                zone.add(day, Figure::AbnormalFindings, 1, at);
                if !person.awaiting_referral {
                    person.awaiting_referral = true;
                    zone.awaiting_referral += 1;
                }
            }
            ReturneeEvent::ReferredForTreatment(_) => {
                zone.add(day, Figure::Referrals, 1, at);
                if person.awaiting_referral {
                    person.awaiting_referral = false;
                    zone.awaiting_referral = zone.awaiting_referral.saturating_sub(1);
                }
            }
            ReturneeEvent::QuarantinePeriodChanged(e) => {
                if let Some(o) = person.observation.as_mut() {
                    o.schedule.planned_days = e.planned_days;
                    let last = Some(o.schedule.planned_end());
                    owe_visits(zone, person, last, at);
                }
            }
            ReturneeEvent::ExposureRecorded(e) => {
                if let Some(o) = person.observation.as_mut() {
                    o.schedule.count_start = e.date;
                    let last = Some(o.schedule.planned_end());
                    owe_visits(zone, person, last, at);
                }
            }
            ReturneeEvent::QuarantineEnded(e) => {
                zone.add(day, Figure::QuarantinesEnded, 1, at);
                zone.add(day, Figure::ended_because(e.reason), 1, at);
                if let Some(o) = person.observation.as_ref() {
                    // The day it ends owes no visit; days past the plan never did.
                    let last = e
                        .date
                        .pred_opt()
                        .map(|before| before.min(o.schedule.planned_end()));
                    owe_visits(zone, person, last, at);
                    person.observation = None;
                    zone.under_quarantine = zone.under_quarantine.saturating_sub(1);
                }
            }
        }
    }

    fn venue(&mut self, id: Uuid, event: VenueEvent, day: NaiveDate, at: u64) {
        if let VenueEvent::VenueRegistered(e) = &event {
            self.venues.insert(
                id,
                VenuePlace {
                    zone: e.zone_id.as_uuid(),
                    kind: e.kind,
                    closed: false,
                },
            );
        }
        let Some(venue) = self.venues.get_mut(&id) else {
            return;
        };
        let zone = self.zones.entry(venue.zone).or_default();
        zone.field_event(day, at);
        match event {
            VenueEvent::VenueRegistered(_) => zone.add(day, Figure::VenuesRegistered, 1, at),
            VenueEvent::CommitmentSigned(_) => zone.add(day, Figure::CommitmentsSigned, 1, at),
            VenueEvent::VenueClosed(e) => {
                zone.add(day, Figure::VenuesClosed, 1, at);
                if e.notice_posted {
                    zone.add(day, Figure::ClosureNoticesPosted, 1, at);
                }
                close(zone, venue);
            }
            VenueEvent::VenueReopened(_) => {
                zone.add(day, Figure::VenuesReopened, 1, at);
                if venue.closed {
                    venue.closed = false;
                    if let Some(n) = zone.venues_closed.get_mut(&venue.kind) {
                        *n = n.saturating_sub(1);
                    }
                }
            }
            VenueEvent::EnforcementActionRecorded(e) => match e.action {
                EnforcementAction::Dismantled => {
                    zone.add(day, Figure::VenuesDismantled, 1, at);
                    // A dismantled parlour is closed for good.
                    close(zone, venue);
                }
                EnforcementAction::TablesConfiscated { tables } => {
                    zone.add(day, Figure::TablesConfiscated, tables.get().into(), at)
                }
                EnforcementAction::Detained { people } => {
                    zone.add(day, Figure::PeopleDetained, people.get().into(), at)
                }
                EnforcementAction::OwnersAdmonished { people } => {
                    zone.add(day, Figure::OwnersAdmonished, people.get().into(), at)
                }
                EnforcementAction::PlayersAdmonished { people } => {
                    zone.add(day, Figure::PlayersAdmonished, people.get().into(), at)
                }
            },
        }
    }
}

fn close(zone: &mut ZoneBoard, venue: &mut VenuePlace) {
    if !venue.closed {
        venue.closed = true;
        *zone.venues_closed.entry(venue.kind).or_default() += 1;
    }
}

/// Moves the last day a person's quarantine owes a visit to `last` (from
/// its start), adding or taking away the owed days, and the visits made on
/// them, on each day's figures.
fn owe_visits(zone: &mut ZoneBoard, person: &mut Person, last: Option<NaiveDate>, at: u64) {
    let Some(o) = person.observation.as_mut() else {
        return;
    };
    let cap = o
        .started_on
        .checked_add_days(Days::new(MAX_OBSERVED_DAYS - 1))
        .unwrap_or(NaiveDate::MAX);
    let new = last.filter(|d| *d >= o.started_on).map(|d| d.min(cap));
    let old = o.owed_until;
    // Days in (old, new] become owed; days in (new, old] stop being owed.
    let (from, to, adding) = match (old, new) {
        (None, None) => return,
        (None, Some(n)) => (o.started_on, n, true),
        (Some(p), None) => (o.started_on, p, false),
        (Some(p), Some(n)) if n > p => (next(p), n, true),
        (Some(p), Some(n)) if n < p => (next(n), p, false),
        _ => return,
    };
    for day in from.iter_days().take_while(|d| *d <= to) {
        let visited = u64::from(person.visits.contains(&day));
        if adding {
            zone.add(day, Figure::HealthVisitsDue, 1, at);
            zone.add(day, Figure::HealthVisitsMade, visited, at);
        } else {
            zone.subtract(day, Figure::HealthVisitsDue, 1, at);
            zone.subtract(day, Figure::HealthVisitsMade, visited, at);
        }
    }
    o.owed_until = new;
}

/// Whether the person's quarantine counts `day` as owing a visit.
fn owes_on(person: &Person, day: NaiveDate) -> bool {
    person
        .observation
        .as_ref()
        .is_some_and(|o| day >= o.started_on && o.owed_until.is_some_and(|last| day <= last))
}

fn next(day: NaiveDate) -> NaiveDate {
    day.succ_opt().unwrap_or(day)
}

/// A returnee stream's event, decoded, with the returnee's id.
pub(crate) fn decode_returnee(event: &RecordedEvent) -> Option<(Uuid, ReturneeEvent)> {
    let id = entity_id(&event.stream_id)?;
    let decoded =
        ReturneeEvent::from_stored_ref(&event.event_type, event.schema_version, &event.payload)
            .ok()?;
    Some((id, decoded))
}

/// The id in `category-<uuid>`.
fn entity_id(stream_id: &str) -> Option<Uuid> {
    stream_id.split_once('-')?.1.parse().ok()
}

/// Field time, as the client reported it; the recording time if absent.
pub(crate) fn occurred_at(event: &RecordedEvent) -> DateTime<Utc> {
    fangkong_domain::metadata::EventMetadata::occurred_at_of(&event.metadata)
        .unwrap_or(event.recorded_at)
}
