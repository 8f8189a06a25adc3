//! The board and its views: each figure counted where and when it belongs,
//! report states judged at the reader's clock, the township the sum of its
//! zones, and a board folded in pieces (saved and resumed) equal to one
//! folded in one go.

mod support;

use chrono::{DateTime, NaiveDate, Utc};
use fangkong_domain::report::{DailyReportSubmitted, ReportEvent};
use fangkong_domain::returnee::{
    HealthCheckRecorded, QuarantineEnded, QuarantinePeriodChanged, QuarantineStarted,
    ReturneeEvent, ReturneeScreened,
};
use fangkong_domain::venue::{
    EnforcementAction, EnforcementActionRecorded, VenueClosed, VenueEvent, VenueRegistered,
    VenueReopened,
};
use fangkong_domain::zone::{ZoneEstablished, ZoneEvent};
use fangkong_domain::*;
use fangkong_projections::views::ReportState;
use fangkong_projections::{Clock, Figure, ReadModels, Reading, ReportingRules};
use fangkong_store::{NewEvent, RecordedEvent};
use support::history::{recorded, Generator};
use uuid::Uuid;

fn day(s: &str) -> NaiveDate {
    s.parse().expect("date")
}

fn instant(s: &str) -> DateTime<Utc> {
    s.parse().expect("instant")
}

/// A hand-written log: each event recorded at a given instant.
#[derive(Default)]
struct Log {
    events: Vec<RecordedEvent>,
}

impl Log {
    fn record<E: EventCodec>(&mut self, stream: String, event: E, occurred: &str, recorded: &str) {
        let e = NewEvent::new(event.event_type(), event.to_payload())
            .with_metadata(serde_json::json!({"occurred_at": occurred}));
        self.events.push(RecordedEvent {
            position: self.events.len() as u64 + 1,
            stream_id: stream,
            stream_version: 1,
            event_id: e.event_id,
            event_type: e.event_type,
            schema_version: event.schema_version(),
            payload: e.payload,
            metadata: e.metadata,
            recorded_at: instant(recorded),
            hash: [0; 32],
        });
    }

    fn at<E: EventCodec>(&mut self, stream: String, event: E, at: &str) {
        self.record(stream, event, at, at);
    }

    fn fold(&self) -> ReadModels {
        let township = Township::default();
        let mut models = ReadModels::default();
        for e in &self.events {
            models.apply(e, &township).expect("applies");
        }
        models
    }
}

fn reading<'a>(township: &'a Township, now: &str) -> Reading<'a> {
    Reading {
        township,
        rules: ReportingRules::default(),
        clock: Clock::at(instant(now), township),
    }
}

fn zone(log: &mut Log, name: &str) -> Uuid {
    let id = Uuid::now_v7();
    log.at(
        format!("zone-{id}"),
        ZoneEvent::from(ZoneEstablished {
            zone_id: ZoneId::from_uuid(id),
            name: Name::parse(name).expect("name"),
        }),
        "2020-01-24T01:00:00Z",
    );
    id
}

fn quarantined(log: &mut Log, zone: Uuid, start: &str) -> Uuid {
    let id = Uuid::now_v7();
    let registered = fangkong_domain::returnee::ReturneeRegistered {
        returnee_id: ReturneeId::from_uuid(id),
        zone_id: ZoneId::from_uuid(zone),
        village_id: VillageId::from_uuid(zone),
        grid_id: GridId::from_uuid(zone),
        arrival_date: day(start),
        origin: Origin {
            region: Name::parse("武汉").expect("region"),
            risk: RiskLevel::High,
        },
        personal: fangkong_domain::personal::Personal::Clear(
            fangkong_domain::returnee::PersonalData {
                name: Name::parse("张三").expect("name"),
                resident_id: ResidentIdNumber::parse("11010519491231002X").expect("id"),
                phone: PhoneNumber::parse("13812345678").expect("phone"),
                address: Text::parse("一组").expect("address"),
            },
        ),
    };
    let at = format!("{start}T02:00:00Z");
    log.at(
        format!("returnee-{id}"),
        ReturneeEvent::from(registered),
        &at,
    );
    log.at(
        format!("returnee-{id}"),
        ReturneeEvent::from(QuarantineStarted {
            start_date: day(start),
            planned_days: 14,
            planned_end: day(start) + chrono::Duration::days(13),
        }),
        &at,
    );
    id
}

fn visit(log: &mut Log, person: Uuid, on: &str, recorded: &str) {
    log.record(
        format!("returnee-{person}"),
        ReturneeEvent::from(HealthCheckRecorded {
            date: day(on),
            temperature: Temperature::parse(36.5).expect("t"),
            symptoms: vec![],
            visited_by: None,
        }),
        &format!("{on}T03:00:00Z"),
        recorded,
    );
}

fn report(log: &mut Log, zone: Uuid, date: &str, zero: bool, revision: u32, recorded: &str) {
    log.at(
        format!("report-{zone}-{date}"),
        ReportEvent::from(DailyReportSubmitted {
            zone_id: ZoneId::from_uuid(zone),
            date: day(date),
            zero_report: zero,
            figures: Default::default(),
            submitted_by: Name::parse("片长").expect("name"),
            revision,
        }),
        recorded,
    );
}

#[test]
fn an_owed_visit_is_missed_once_its_day_is_over_and_pending_on_the_day() {
    let mut log = Log::default();
    let z = zone(&mut log, "一片");
    let a = quarantined(&mut log, z, "2020-01-25");
    let b = quarantined(&mut log, z, "2020-01-25");
    visit(&mut log, a, "2020-01-25", "2020-01-25T03:00:00Z");
    visit(&mut log, b, "2020-01-25", "2020-01-25T03:00:00Z");
    // Two visits to a on the 26th do not make up for b's missing one.
    visit(&mut log, a, "2020-01-26", "2020-01-26T03:00:00Z");
    visit(&mut log, a, "2020-01-26", "2020-01-26T05:00:00Z");
    let models = log.fold();
    let township = Township::default();

    let on_26th = reading(&township, "2020-01-26T08:00:00Z");
    let d = on_26th
        .zone_dashboard(&models.board, z, day("2020-01-26"))
        .expect("zone");
    assert_eq!(d.day.get(Figure::HealthVisitsRecorded), 2);
    assert_eq!(d.day.get(Figure::HealthVisitsDue), 2);
    assert_eq!(d.day.get(Figure::HealthVisitsMade), 1);
    assert_eq!(
        d.day.get(Figure::HealthVisitsPending),
        1,
        "b's visit is still to come"
    );
    assert_eq!(d.day.get(Figure::HealthVisitsMissed), 0);
    assert_eq!(d.standing.under_quarantine, 2);

    let on_27th = reading(&township, "2020-01-27T08:00:00Z");
    let d = on_27th
        .zone_dashboard(&models.board, z, day("2020-01-26"))
        .expect("zone");
    assert_eq!(d.day.get(Figure::HealthVisitsMissed), 1, "the day is over");
    assert_eq!(d.day.get(Figure::HealthVisitsPending), 0);
    let d = on_27th
        .zone_dashboard(&models.board, z, day("2020-01-27"))
        .expect("zone");
    assert_eq!(d.day.get(Figure::HealthVisitsPending), 2);
    assert_eq!(d.to_date.get(Figure::HealthVisitsMissed), 1);
    assert_eq!(d.to_date.get(Figure::ReturneesRegistered), 2);
    assert_eq!(d.to_date.get(Figure::ReturneesRegisteredHighRisk), 2);
}

fn screened(log: &mut Log, person: Uuid, on: &str) {
    log.at(
        format!("returnee-{person}"),
        ReturneeEvent::from(ReturneeScreened {
            screened_on: day(on),
            temperature: Temperature::parse(36.6).expect("t"),
            identity_checked: true,
            came_from: Name::parse("武汉").expect("name"),
            going_to: None,
            symptoms: vec![],
            screened_by: Name::parse("卡口").expect("name"),
        }),
        &format!("{on}T01:30:00Z"),
    );
}

#[test]
fn a_temperature_taken_at_a_screening_is_that_days_visit() {
    let mut log = Log::default();
    let z = zone(&mut log, "一片");
    // Screened at the door, then put in quarantine the same day (the
    // screening comes first in the log), and never visited that day.
    let a = quarantined(&mut log, z, "2020-01-25");
    let mut events = std::mem::take(&mut log.events);
    let start = events.pop().expect("the quarantine's start");
    log.events = events;
    screened(&mut log, a, "2020-01-25");
    log.events.push(RecordedEvent {
        position: log.events.len() as u64 + 1,
        ..start
    });
    // Screened again on day 2 of another quarantine: that day's visit too.
    let b = quarantined(&mut log, z, "2020-01-25");
    visit(&mut log, b, "2020-01-25", "2020-01-25T03:00:00Z");
    screened(&mut log, b, "2020-01-26");
    let models = log.fold();
    let township = Township::default();
    let on_27th = reading(&township, "2020-01-27T08:00:00Z");
    for (date, made) in [("2020-01-25", 2), ("2020-01-26", 1)] {
        let d = on_27th
            .zone_dashboard(&models.board, z, day(date))
            .expect("zone");
        assert_eq!(d.day.get(Figure::HealthVisitsDue), 2, "{date}");
        assert_eq!(d.day.get(Figure::HealthVisitsMade), made, "{date}");
        assert_eq!(d.day.get(Figure::HealthVisitsMissed), 2 - made, "{date}");
    }
    let roster: Vec<_> = models.roster.entries().collect();
    let of = |id: Uuid| {
        roster
            .iter()
            .find(|e| e.returnee_id == id)
            .expect("in quarantine")
            .visits
            .clone()
    };
    assert_eq!(of(a), [day("2020-01-25")].into());
    assert_eq!(of(b), [day("2020-01-25"), day("2020-01-26")].into());
}

#[test]
fn ending_or_shortening_a_quarantine_stops_the_visits_it_owed() {
    let mut log = Log::default();
    let z = zone(&mut log, "一片");
    let a = quarantined(&mut log, z, "2020-01-25");
    let township = Township::default();
    let later = reading(&township, "2020-03-01T08:00:00Z");
    let owed = |models: &ReadModels| {
        later
            .zone_dashboard(&models.board, z, day("2020-03-01"))
            .expect("zone")
            .to_date
            .get(Figure::HealthVisitsDue)
    };
    assert_eq!(owed(&log.fold()), 14);
    log.at(
        format!("returnee-{a}"),
        ReturneeEvent::from(QuarantinePeriodChanged {
            planned_days: 21,
            planned_end: day("2020-02-14"),
            reason: Text::parse("密接").expect("text"),
        }),
        "2020-01-30T02:00:00Z",
    );
    assert_eq!(owed(&log.fold()), 21);
    log.at(
        format!("returnee-{a}"),
        ReturneeEvent::from(QuarantineEnded {
            date: day("2020-01-28"),
            reason: QuarantineEndReason::Transferred,
        }),
        "2020-01-28T02:00:00Z",
    );
    let models = log.fold();
    assert_eq!(
        owed(&models),
        3,
        "the 25th, 26th and 27th; not the day it ended"
    );
    let d = later
        .zone_dashboard(&models.board, z, day("2020-01-28"))
        .expect("zone");
    assert_eq!(d.standing.under_quarantine, 0);
    assert_eq!(d.day.get(Figure::QuarantinesEnded), 1);
    assert_eq!(d.day.get(Figure::QuarantinesEndedTransferred), 1);
}

#[test]
fn report_states_follow_the_deadline_and_later_events() {
    let mut log = Log::default();
    let on_time = zone(&mut log, "按时");
    let late = zone(&mut log, "迟报");
    let silent = zone(&mut log, "未报");
    let zero = zone(&mut log, "零报");
    let amended = zone(&mut log, "补录");
    let offline = zone(&mut log, "离线");
    let person = quarantined(&mut log, amended, "2020-01-25");
    quarantined(&mut log, on_time, "2020-01-25");
    quarantined(&mut log, late, "2020-01-25");
    // Reports for the 25th: due 10:00 Beijing time on the 26th (02:00 UTC).
    report(
        &mut log,
        on_time,
        "2020-01-25",
        false,
        1,
        "2020-01-26T01:00:00Z",
    );
    report(
        &mut log,
        late,
        "2020-01-25",
        false,
        1,
        "2020-01-26T03:00:00Z",
    );
    report(
        &mut log,
        zero,
        "2020-01-25",
        true,
        1,
        "2020-01-26T01:00:00Z",
    );
    report(
        &mut log,
        amended,
        "2020-01-25",
        false,
        1,
        "2020-01-26T01:00:00Z",
    );
    // Made offline at 09:00 Beijing time, synced at 13:00: on time.
    log.record(
        format!("report-{offline}-2020-01-25"),
        ReportEvent::from(DailyReportSubmitted {
            zone_id: ZoneId::from_uuid(offline),
            date: day("2020-01-25"),
            zero_report: true,
            figures: Default::default(),
            submitted_by: Name::parse("片长").expect("name"),
            revision: 1,
        }),
        "2020-01-26T01:00:00Z",
        "2020-01-26T05:00:00Z",
    );
    // A visit made on the 25th, synced after the report.
    visit(&mut log, person, "2020-01-25", "2020-01-26T04:00:00Z");
    let models = log.fold();
    let township = Township::default();

    let before_deadline = reading(&township, "2020-01-26T01:30:00Z");
    let state = |r: &Reading, z: Uuid| {
        r.zone_dashboard(&models.board, z, day("2020-01-25"))
            .and_then(|d| d.report)
            .map(|r| r.state)
    };
    assert_eq!(state(&before_deadline, silent), Some(ReportState::Pending));

    let after = reading(&township, "2020-01-26T06:00:00Z");
    assert_eq!(state(&after, on_time), Some(ReportState::Submitted));
    assert_eq!(state(&after, late), Some(ReportState::Late));
    assert_eq!(state(&after, silent), Some(ReportState::Missing));
    assert_eq!(state(&after, zero), Some(ReportState::Zero));
    assert_eq!(state(&after, amended), Some(ReportState::Amended));
    assert_eq!(state(&after, offline), Some(ReportState::Zero));
    let synced = after
        .zone_dashboard(&models.board, offline, day("2020-01-25"))
        .and_then(|d| d.report)
        .expect("report");
    assert_eq!(
        synced.first_recorded_at,
        Some(instant("2020-01-26T05:00:00Z"))
    );
    let status = after
        .zone_dashboard(&models.board, amended, day("2020-01-25"))
        .and_then(|d| d.report)
        .expect("report");
    assert_eq!(status.amendments, 1);
    let changed: Vec<_> = status
        .changes
        .iter()
        .map(|c| (c.figure.as_str(), c.as_submitted, c.now))
        .collect();
    assert_eq!(
        changed,
        vec![
            ("health_visits_recorded", 0, 1),
            ("health_visits_made", 0, 1)
        ]
    );
    // Before a zone existed there is nothing to report.
    assert_eq!(
        after
            .zone_dashboard(&models.board, on_time, day("2020-01-20"))
            .and_then(|d| d.report),
        None
    );

    let c = after.completeness(&models.board, day("2020-01-25"));
    assert_eq!(
        (c.expected, c.submitted, c.on_time, c.late, c.missing),
        (6, 5, 4, 1, 1)
    );
    assert_eq!((c.zero_reports, c.amended), (2, 1));
    assert!((c.reporting_rate - 5.0 / 6.0).abs() < 1e-9);

    // A resubmission attests the day again: no longer amended, still late
    // if the first one was.
    report(
        &mut log,
        amended,
        "2020-01-25",
        false,
        2,
        "2020-01-26T05:00:00Z",
    );
    let models = log.fold();
    let r = after
        .zone_dashboard(&models.board, amended, day("2020-01-25"))
        .and_then(|d| d.report)
        .expect("report");
    assert_eq!(
        (r.state, r.revision, r.amendments),
        (ReportState::Submitted, 2, 0)
    );
}

#[test]
fn venues_closed_now_follow_closures_reopenings_and_dismantling() {
    let mut log = Log::default();
    let z = zone(&mut log, "一片");
    let venue = |log: &mut Log, kind: VenueKind| {
        let id = Uuid::now_v7();
        log.at(
            format!("venue-{id}"),
            VenueEvent::from(VenueRegistered {
                venue_id: VenueId::from_uuid(id),
                zone_id: ZoneId::from_uuid(z),
                village_id: None,
                kind,
                name: Name::parse("棋牌室").expect("name"),
            }),
            "2020-01-25T02:00:00Z",
        );
        id
    };
    let parlour = venue(&mut log, VenueKind::MahjongParlour);
    let room = venue(&mut log, VenueKind::CardRoom);
    let raided = venue(&mut log, VenueKind::MahjongParlour);
    for id in [parlour, room] {
        log.at(
            format!("venue-{id}"),
            VenueEvent::from(VenueClosed {
                date: day("2020-01-25"),
                notice_posted: true,
            }),
            "2020-01-25T03:00:00Z",
        );
    }
    log.at(
        format!("venue-{room}"),
        VenueEvent::from(VenueReopened {
            date: day("2020-01-26"),
        }),
        "2020-01-26T03:00:00Z",
    );
    log.at(
        format!("venue-{raided}"),
        VenueEvent::from(EnforcementActionRecorded {
            date: day("2020-01-26"),
            action: EnforcementAction::Dismantled,
        }),
        "2020-01-26T03:00:00Z",
    );
    log.at(
        format!("venue-{raided}"),
        VenueEvent::from(EnforcementActionRecorded {
            date: day("2020-01-26"),
            action: EnforcementAction::PlayersAdmonished {
                people: Count::parse(6).expect("n"),
            },
        }),
        "2020-01-26T03:00:00Z",
    );
    let models = log.fold();
    let township = Township::default();
    let d = reading(&township, "2020-01-27T00:00:00Z")
        .zone_dashboard(&models.board, z, day("2020-01-26"))
        .expect("zone");
    assert_eq!(d.standing.venues_closed, 2);
    assert_eq!(
        d.standing.venues_closed_by_kind.get("mahjong_parlour"),
        Some(&2)
    );
    assert_eq!(d.standing.venues_closed_by_kind.get("card_room"), None);
    assert_eq!(d.to_date.get(Figure::VenuesClosed), 2);
    assert_eq!(d.to_date.get(Figure::ClosureNoticesPosted), 2);
    assert_eq!(d.day.get(Figure::VenuesReopened), 1);
    assert_eq!(d.day.get(Figure::VenuesDismantled), 1);
    assert_eq!(d.day.get(Figure::PlayersAdmonished), 6);
}

#[test]
fn the_township_is_the_sum_of_its_zones_plus_the_office() {
    let models = {
        let township = Township::default();
        let mut m = ReadModels::default();
        for e in recorded(Generator::new(7, 4).run(20_000)) {
            m.apply(&e, &township).expect("applies");
        }
        m
    };
    let township = Township::default();
    let r = reading(&township, "2020-02-10T12:00:00Z");
    for date in [
        day("2020-01-24"),
        day("2020-02-01"),
        day("2020-02-09"),
        day("2020-02-10"),
        day("2020-02-11"),
        day("2020-03-01"),
    ] {
        let t = r.township_dashboard(&models.board, date);
        for figure in fangkong_projections::Figure::ALL {
            let zones: u64 = models
                .board
                .zones()
                .keys()
                .map(|z| {
                    r.zone_dashboard(&models.board, *z, date)
                        .expect("zone")
                        .to_date
                        .get(*figure)
                })
                .sum();
            let office: u64 = models
                .board
                .office()
                .days()
                .range(..=date)
                .map(|(_, f)| f.get(*figure))
                .sum();
            assert_eq!(t.to_date.get(*figure), zones + office, "{figure} on {date}");
        }
        // "To date" (summed from whichever end is shorter, with missed and
        // pending visits derived) equals adding up every day as read.
        for z in models.board.zones().keys() {
            let dashboard = r.zone_dashboard(&models.board, *z, date).expect("zone");
            let zone = models.board.zone(*z).expect("zone");
            let mut by_day = fangkong_projections::Figures::default();
            for (d, stored) in zone.days.days().range(..=date) {
                by_day += &r.day_of(Some(stored), *d);
            }
            assert_eq!(dashboard.to_date, by_day, "zone {z} through {date}");
        }
        assert!(t.to_date.get(Figure::Crossings) > 0);
        assert!(t.to_date.get(Figure::StaffHealthChecks) > 0);
    }
}

#[test]
fn a_board_folded_in_saved_and_resumed_pieces_equals_one_folded_in_one_go() {
    let events = recorded(Generator::new(11, 5).run(60_000));
    let township = Township::default();
    let mut whole = ReadModels::default();
    for e in &events {
        whole.apply(e, &township).expect("applies");
    }
    let mut pieces = ReadModels::default();
    let mut rng = support::history::Rng::new(3);
    let mut i = 0;
    while i < events.len() {
        let n = 1 + rng.below(7_000) as usize;
        for e in &events[i..(i + n).min(events.len())] {
            pieces.apply(e, &township).expect("applies");
        }
        i += n;
        // Save and resume, as a restart would.
        pieces = ReadModels::from_state(&pieces.to_state().expect("save")).expect("resume");
    }
    assert_eq!(pieces, whole);
    // Applying an event again (a resumed runtime re-reading its last page)
    // changes nothing.
    let again = events.last().expect("events").clone();
    pieces.apply(&again, &township).expect("applies");
    assert_eq!(pieces, whole);
}
