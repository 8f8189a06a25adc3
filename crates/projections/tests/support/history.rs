//! A long, mixed, deterministic history of a township's control work, as
//! recorded events: registrations, screenings, teams, quarantines with daily
//! visits (some missed, some recorded late), fevers and referrals,
//! extensions and re-exposures, crossings and turn-backs, venues closed,
//! reopened and raided, banquets dissuaded, publicity, patrols, staff
//! checks, and daily reports (on time, zero, late, missing, amended by a
//! late sync). Payloads are rendered from the domain's own event types.
#![allow(dead_code)]

use fangkong_domain::personal::Personal;
use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use fangkong_domain::activity::{
    ActivityEvent, GatheringDispersed, PatrolCompleted, PublicityRecorded, StaffEvent,
    StaffHealthCheckRecorded,
};
use fangkong_domain::banquet::{
    BanquetCancelled, BanquetEvent, BanquetHost, BanquetPostponed, BanquetReported,
    BanquetScaledDown,
};
use fangkong_domain::checkpoint::{CheckpointEstablished, CheckpointEvent, CrossingRecorded};
use fangkong_domain::report::{DailyReportSubmitted, ReportEvent};
use fangkong_domain::returnee::{
    AbnormalConditionReported, ExposureRecorded, FindingSource, HealthCheckRecorded, PersonalData,
    QuarantineEnded, QuarantinePeriodChanged, QuarantineStarted, ReferredForTreatment,
    ResponsibilityTeamAssigned, ReturneeEvent, ReturneeRegistered, ReturneeScreened,
};
use fangkong_domain::venue::{
    CommitmentSigned, EnforcementAction, EnforcementActionRecorded, VenueClosed, VenueEvent,
    VenueRegistered, VenueReopened,
};
use fangkong_domain::zone::{ZoneEstablished, ZoneEvent};
use fangkong_domain::*;
use fangkong_store::{NewEvent, RecordedEvent};
use uuid::Uuid;

/// Small deterministic generator (xorshift64*): histories must be the same
/// on every run and machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

fn name(s: &str) -> Name {
    Name::parse(s).expect("name")
}
fn count(n: u64) -> Count {
    Count::parse(n as i64).expect("count")
}
fn temp(c: f64) -> Temperature {
    Temperature::parse(c).expect("temperature")
}

struct Person {
    id: Uuid,
    zone: usize,
    started: Option<NaiveDate>,
    planned_end: NaiveDate,
}

/// One event as a client would send it, before the log gives it a place.
pub struct Pending {
    pub stream_id: String,
    pub event: NewEvent,
}

pub struct Generator {
    rng: Rng,
    pub zones: Vec<Uuid>,
    /// A zone where nothing happens: it sends a zero report every day.
    pub quiet: Uuid,
    checkpoints: Vec<(Uuid, usize)>,
    venues: Vec<(Uuid, usize, VenueKind, bool)>,
    people: Vec<Person>,
    out: Vec<Pending>,
    /// Field time of the next event.
    clock: DateTime<Utc>,
    township: Township,
}

impl Generator {
    pub fn new(seed: u64, zones: usize) -> Generator {
        let mut g = Generator {
            rng: Rng::new(seed),
            zones: (0..zones).map(|_| Uuid::now_v7()).collect(),
            quiet: Uuid::now_v7(),
            checkpoints: vec![],
            venues: vec![],
            people: vec![],
            out: vec![],
            clock: Utc
                .with_ymd_and_hms(2020, 1, 23, 1, 0, 0)
                .single()
                .expect("start"),
            township: Township::default(),
        };
        g.setup();
        g
    }

    fn push(
        &mut self,
        stream_id: String,
        event_type: &str,
        version: u32,
        payload: serde_json::Value,
    ) {
        self.push_at(stream_id, event_type, version, payload, self.clock);
    }

    fn push_at(
        &mut self,
        stream_id: String,
        event_type: &str,
        version: u32,
        payload: serde_json::Value,
        occurred_at: DateTime<Utc>,
    ) {
        let mut event = NewEvent::new(event_type, payload).with_metadata(serde_json::json!({
            "occurred_at": occurred_at.to_rfc3339(),
        }));
        event.schema_version = version;
        self.out.push(Pending { stream_id, event });
    }

    fn emit<E: EventCodec>(&mut self, stream_id: String, event: E) {
        let (t, v, p) = (
            event.event_type(),
            event.schema_version(),
            event.to_payload(),
        );
        self.push(stream_id, t, v, p);
    }

    fn today(&self) -> NaiveDate {
        self.township.local_date(self.clock)
    }

    fn setup(&mut self) {
        let quiet = self.quiet;
        self.emit(
            format!("zone-{quiet}"),
            ZoneEvent::from(ZoneEstablished {
                zone_id: ZoneId::from_uuid(quiet),
                name: name("山区片"),
            }),
        );
        for (i, zone) in self.zones.clone().into_iter().enumerate() {
            self.emit(
                format!("zone-{zone}"),
                ZoneEvent::from(ZoneEstablished {
                    zone_id: ZoneId::from_uuid(zone),
                    name: name(&format!("第{}片区", i + 1)),
                }),
            );
            for c in 0..2 {
                let id = Uuid::now_v7();
                self.checkpoints.push((id, i));
                self.emit(
                    format!("checkpoint-{id}"),
                    CheckpointEvent::from(CheckpointEstablished {
                        checkpoint_id: CheckpointId::from_uuid(id),
                        zone_id: ZoneId::from_uuid(zone),
                        village_id: None,
                        name: name(&format!("卡点{c}")),
                        kind: CheckpointKind::VillageEntrance,
                    }),
                );
            }
        }
    }

    /// Generates days until at least `events` events exist; the events as
    /// clients would send them, in log order.
    pub fn run(mut self, events: usize) -> Vec<Pending> {
        while self.out.len() < events {
            self.day();
        }
        self.out
    }

    fn day(&mut self) {
        let today = self.today();
        let morning = self.clock;
        // Yesterday's reports first thing: most on time, a few late, a few
        // missing; a zone with nothing recorded sends a zero report.
        let reporting: Vec<Uuid> = self.zones.iter().copied().chain([self.quiet]).collect();
        for zone in reporting {
            let roll = self.rng.below(100);
            let Some(yesterday) = today.pred_opt() else {
                continue;
            };
            if roll < 5 {
                continue; // missing
            }
            let late = roll < 12;
            let at = if late {
                morning + Duration::hours(4)
            } else {
                morning
            };
            let zero = zone == self.quiet;
            let report = ReportEvent::from(DailyReportSubmitted {
                zone_id: ZoneId::from_uuid(zone),
                date: yesterday,
                zero_report: zero,
                figures: Default::default(),
                submitted_by: name("片长"),
                revision: 1,
            });
            let (t, v, p) = (
                report.event_type(),
                report.schema_version(),
                report.to_payload(),
            );
            self.push_at(format!("report-{zone}-{yesterday}"), t, v, p, at);
        }
        // A visit of yesterday synced late: amends yesterday's report.
        if let Some(p) = self.people.iter().position(|p| p.started.is_some()) {
            if self.rng.chance(30) {
                let id = self.people[p].id;
                let yesterday = today.pred_opt().unwrap_or(today);
                let at = self.clock - Duration::hours(14);
                let e = ReturneeEvent::from(HealthCheckRecorded {
                    date: yesterday,
                    temperature: temp(36.5),
                    symptoms: vec![],
                    visited_by: Some(name("村医")),
                });
                let (t, v, pl) = (e.event_type(), e.schema_version(), e.to_payload());
                self.push_at(format!("returnee-{id}"), t, v, pl, at);
            }
        }
        for z in 0..self.zones.len() {
            self.zone_day(z, today);
        }
        for _ in 0..5 {
            let abnormal = self.rng.chance(2);
            self.emit(
                format!("staff-{today}"),
                StaffEvent::from(StaffHealthCheckRecorded {
                    date: today,
                    staff: Personal::Clear(name("干部")),
                    temperature: temp(if abnormal { 37.6 } else { 36.4 }),
                    symptoms: vec![],
                    abnormal,
                }),
            );
        }
        self.clock += Duration::days(1);
    }

    fn zone_day(&mut self, z: usize, today: NaiveDate) {
        let zone = self.zones[z];
        let zone_id = ZoneId::from_uuid(zone);
        // New returnees: registered, screened, given a team, quarantined.
        for _ in 0..(2 + self.rng.below(4)) {
            let id = Uuid::now_v7();
            let risk =
                [RiskLevel::High, RiskLevel::Medium, RiskLevel::Low][self.rng.below(3) as usize];
            let stream = format!("returnee-{id}");
            self.emit(
                stream.clone(),
                ReturneeEvent::from(ReturneeRegistered {
                    returnee_id: ReturneeId::from_uuid(id),
                    zone_id,
                    village_id: VillageId::from_uuid(zone),
                    grid_id: GridId::from_uuid(zone),
                    arrival_date: today,
                    origin: Origin {
                        region: name("武汉"),
                        risk,
                    },
                    personal: Personal::Clear(PersonalData {
                        name: name("张三"),
                        resident_id: ResidentIdNumber::parse("11010519491231002X").expect("id"),
                        phone: PhoneNumber::parse("13812345678").expect("phone"),
                        address: Text::parse("一组").expect("address"),
                    }),
                }),
            );
            self.emit(
                stream.clone(),
                ReturneeEvent::from(ReturneeScreened {
                    screened_on: today,
                    temperature: temp(36.5),
                    identity_checked: true,
                    came_from: name("武汉"),
                    going_to: None,
                    symptoms: vec![],
                    screened_by: name("网格员"),
                }),
            );
            self.emit(
                stream.clone(),
                ReturneeEvent::from(ResponsibilityTeamAssigned { members: vec![] }),
            );
            let planned_end = today + Duration::days(13);
            let quarantined = risk != RiskLevel::Low || self.rng.chance(50);
            if quarantined {
                self.emit(
                    stream,
                    ReturneeEvent::from(QuarantineStarted {
                        start_date: today,
                        planned_days: 14,
                        planned_end,
                    }),
                );
            }
            self.people.push(Person {
                id,
                zone: z,
                started: quarantined.then_some(today),
                planned_end,
            });
        }
        // Daily visits, ends, and the odd fever, extension or exposure.
        let mut ended = vec![];
        for (i, p) in self.people.iter().enumerate() {
            if p.zone == z && p.started.is_some() {
                ended.push(i);
            }
        }
        for i in ended {
            let (id, planned_end) = (self.people[i].id, self.people[i].planned_end);
            let stream = format!("returnee-{id}");
            if today > planned_end {
                self.emit(
                    stream,
                    ReturneeEvent::from(QuarantineEnded {
                        date: today,
                        reason: QuarantineEndReason::Completed,
                    }),
                );
                self.people[i].started = None;
                continue;
            }
            if self.rng.chance(95) {
                let fever = self.rng.chance(1);
                self.emit(
                    stream.clone(),
                    ReturneeEvent::from(HealthCheckRecorded {
                        date: today,
                        temperature: temp(if fever { 37.8 } else { 36.5 }),
                        symptoms: vec![],
                        visited_by: Some(name("村医")),
                    }),
                );
                if fever {
                    self.emit(
                        stream.clone(),
                        ReturneeEvent::from(AbnormalConditionReported {
                            date: today,
                            temperature: Some(temp(37.8)),
                            symptoms: vec![Symptom::Fever],
                            source: FindingSource::HealthCheck,
                            notes: None,
                        }),
                    );
                    self.emit(
                        stream.clone(),
                        ReturneeEvent::from(ReferredForTreatment {
                            date: today,
                            facility: name("县医院"),
                        }),
                    );
                    self.emit(
                        stream,
                        ReturneeEvent::from(QuarantineEnded {
                            date: today,
                            reason: QuarantineEndReason::ReferredForTreatment,
                        }),
                    );
                    self.people[i].started = None;
                    continue;
                }
            }
            if self.rng.chance(1) {
                let new_end = planned_end + Duration::days(7);
                self.emit(
                    stream,
                    ReturneeEvent::from(QuarantinePeriodChanged {
                        planned_days: (new_end - self.people[i].started.unwrap_or(today)).num_days()
                            as u16
                            + 1,
                        planned_end: new_end,
                        reason: Text::parse("密接").expect("text"),
                    }),
                );
                self.people[i].planned_end = new_end;
            } else if self.rng.chance(1) {
                let new_end = today + Duration::days(13);
                self.emit(
                    stream,
                    ReturneeEvent::from(ExposureRecorded {
                        date: today,
                        description: Text::parse("再次接触").expect("text"),
                        planned_end: new_end,
                    }),
                );
                self.people[i].planned_end = new_end;
            }
        }
        // Checkpoints: people and vehicles, some turned back.
        let posts: Vec<Uuid> = self
            .checkpoints
            .iter()
            .filter(|(_, owner)| *owner == z)
            .map(|(id, _)| *id)
            .collect();
        for post in posts {
            for _ in 0..(5 + self.rng.below(10)) {
                let roll = self.rng.below(100);
                let outcome = if roll < 10 {
                    CrossingOutcome::TurnedBack
                } else if roll < 15 {
                    CrossingOutcome::ReferredToQuarantine
                } else {
                    CrossingOutcome::Admitted
                };
                let vehicle = self.rng.chance(30);
                let people = count(1 + self.rng.below(3));
                self.emit(
                    format!("checkpoint-{post}"),
                    CheckpointEvent::from(CrossingRecorded {
                        date: today,
                        subject: if vehicle {
                            CrossingSubject::Vehicle
                        } else {
                            CrossingSubject::Person
                        },
                        people,
                        plate: None,
                        temperature: Some(temp(36.4)),
                        origin: None,
                        destination: None,
                        outcome,
                    }),
                );
            }
        }
        // Venues: a parlour found, closed with a notice, sometimes raided or
        // reopened; shops sign commitments.
        if self.rng.chance(20) {
            let id = Uuid::now_v7();
            let kind = [
                VenueKind::MahjongParlour,
                VenueKind::CardRoom,
                VenueKind::Shop,
            ][self.rng.below(3) as usize];
            self.emit(
                format!("venue-{id}"),
                VenueEvent::from(VenueRegistered {
                    venue_id: VenueId::from_uuid(id),
                    zone_id,
                    village_id: None,
                    kind,
                    name: name("棋牌室"),
                }),
            );
            self.venues.push((id, z, kind, false));
        }
        let mine: Vec<usize> = (0..self.venues.len())
            .filter(|i| self.venues[*i].1 == z)
            .collect();
        for i in mine {
            let (id, _, kind, closed) = self.venues[i];
            if !self.rng.chance(10) {
                continue;
            }
            let stream = format!("venue-{id}");
            if !kind.is_gaming() {
                self.emit(
                    stream,
                    VenueEvent::from(CommitmentSigned {
                        date: today,
                        signed_by: name("店主"),
                    }),
                );
            } else if !closed {
                let notice_posted = self.rng.chance(80);
                self.emit(
                    stream,
                    VenueEvent::from(VenueClosed {
                        date: today,
                        notice_posted,
                    }),
                );
                self.venues[i].3 = true;
            } else if self.rng.chance(50) {
                self.emit(stream, VenueEvent::from(VenueReopened { date: today }));
                self.venues[i].3 = false;
            } else {
                let action = match self.rng.below(4) {
                    0 => EnforcementAction::TablesConfiscated { tables: count(2) },
                    1 => EnforcementAction::Detained { people: count(1) },
                    2 => EnforcementAction::OwnersAdmonished { people: count(1) },
                    _ => EnforcementAction::PlayersAdmonished { people: count(4) },
                };
                self.emit(
                    stream,
                    VenueEvent::from(EnforcementActionRecorded {
                        date: today,
                        action,
                    }),
                );
            }
        }
        // Banquets dissuaded.
        if self.rng.chance(15) {
            let id = Uuid::now_v7();
            let stream = format!("banquet-{id}");
            self.emit(
                stream.clone(),
                BanquetEvent::from(BanquetReported {
                    banquet_id: BanquetId::from_uuid(id),
                    zone_id,
                    village_id: None,
                    kind: BanquetKind::Wedding,
                    planned_date: today + Duration::days(3),
                    expected_guests: count(120),
                    personal: Personal::Clear(BanquetHost {
                        name: name("王五"),
                        phone: None,
                    }),
                }),
            );
            match self.rng.below(3) {
                0 => self.emit(
                    stream,
                    BanquetEvent::from(BanquetPostponed {
                        persuaded_on: today,
                        new_date: today + Duration::days(90),
                    }),
                ),
                1 => self.emit(
                    stream,
                    BanquetEvent::from(BanquetCancelled {
                        persuaded_on: today,
                        reason: None,
                    }),
                ),
                _ => self.emit(
                    stream,
                    BanquetEvent::from(BanquetScaledDown {
                        persuaded_on: today,
                        guests: count(10),
                    }),
                ),
            }
        }
        // Zone activity.
        let activity = format!("activity-{zone}");
        for _ in 0..3 {
            let channel =
                PublicityChannel::ALL[self.rng.below(PublicityChannel::ALL.len() as u64) as usize];
            let quantity = count(1 + self.rng.below(50));
            self.emit(
                activity.clone(),
                ActivityEvent::from(PublicityRecorded {
                    zone_id,
                    date: today,
                    channel,
                    quantity,
                }),
            );
        }
        let persuaded = count(self.rng.below(8));
        self.emit(
            activity.clone(),
            ActivityEvent::from(PatrolCompleted {
                zone_id,
                date: today,
                patrol_group: name("巡逻队"),
                persuaded,
            }),
        );
        if self.rng.chance(20) {
            self.emit(
                activity,
                ActivityEvent::from(GatheringDispersed {
                    zone_id,
                    date: today,
                    people: count(6),
                    location: name("村口"),
                }),
            );
        }
    }
}

/// The history as the log would hold it: positions from 1, stream
/// versions, recorded a few seconds after the field time (hours for a late
/// sync).
pub fn recorded(pending: Vec<Pending>) -> Vec<RecordedEvent> {
    let mut versions: HashMap<String, u64> = HashMap::new();
    let mut last = DateTime::<Utc>::MIN_UTC;
    pending
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let version = versions.entry(p.stream_id.clone()).or_default();
            *version += 1;
            let occurred: DateTime<Utc> = p.event.metadata["occurred_at"]
                .as_str()
                .and_then(|t| t.parse().ok())
                .unwrap_or(last);
            // Recorded time never goes back, like the store's.
            last = last.max(occurred + Duration::seconds(5));
            RecordedEvent {
                position: i as u64 + 1,
                stream_id: p.stream_id,
                stream_version: *version,
                event_id: p.event.event_id,
                event_type: p.event.event_type,
                schema_version: p.event.schema_version,
                payload: p.event.payload,
                metadata: p.event.metadata,
                recorded_at: last,
                hash: [0; 32],
            }
        })
        .collect()
}
