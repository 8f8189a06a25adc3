use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;
use crate::testing::{day, given, name, temp};
use crate::{EventCodec, RiskLevel};

fn on(date: &str) -> Context {
    Context {
        today: day("2020-03-31"),
        occurred_on: day(date),
    }
}

fn personal() -> PersonalData {
    PersonalData {
        name: name("张三"),
        resident_id: ResidentIdNumber::parse("11010519491231002X").expect("id"),
        phone: PhoneNumber::parse("13812345678").expect("phone"),
        address: Text::parse("桥头村三组12号").expect("address"),
    }
}

fn register(arrival: &str) -> ReturneeCommand {
    ReturneeCommand::Register(RegisterReturnee {
        returnee_id: ReturneeId::from_uuid(uuid::Uuid::nil()),
        zone_id: ZoneId::from_uuid(uuid::Uuid::nil()),
        village_id: VillageId::from_uuid(uuid::Uuid::nil()),
        grid_id: GridId::from_uuid(uuid::Uuid::nil()),
        arrival_date: day(arrival),
        origin: Origin {
            region: name("湖北省武汉市"),
            risk: RiskLevel::High,
        },
        personal: personal(),
    })
}

fn registered(arrival: &str) -> ReturneeEvent {
    let ReturneeCommand::Register(r) = register(arrival) else {
        unreachable!("register() builds a registration")
    };
    ReturneeRegistered {
        returnee_id: r.returnee_id,
        zone_id: r.zone_id,
        village_id: r.village_id,
        grid_id: r.grid_id,
        arrival_date: r.arrival_date,
        origin: r.origin,
        personal: Personal::Clear(r.personal),
    }
    .into()
}

fn started(date: &str) -> ReturneeEvent {
    QuarantineStarted {
        start_date: day(date),
        planned_days: 14,
        planned_end: day(date) + chrono::Days::new(13),
    }
    .into()
}

fn check(t: f64) -> ReturneeCommand {
    ReturneeCommand::RecordHealthCheck {
        temperature: temp(t),
        symptoms: vec![],
        visited_by: Some(name("王医生")),
    }
}

fn in_quarantine() -> Vec<ReturneeEvent> {
    vec![registered("2020-01-24"), started("2020-01-25")]
}

fn team() -> Vec<TeamMember> {
    TeamRole::ALL
        .iter()
        .map(|role| TeamMember {
            role: *role,
            name: name(role.code()),
            phone: None,
        })
        .collect()
}

#[test]
fn a_returnee_is_registered_once() {
    given::<Returnee>(&[], on("2020-01-25"))
        .when(register("2020-01-24"))
        .then(&[registered("2020-01-24")]);
    given::<Returnee>(&[registered("2020-01-24")], on("2020-01-25"))
        .when(register("2020-01-24"))
        .then_rejects("returnee_already_registered");
}

#[test]
fn an_arrival_cannot_be_in_the_future() {
    given::<Returnee>(&[], on("2020-01-25"))
        .when(register("2020-04-02"))
        .then_rejects("future_date");
}

#[test]
fn nothing_can_be_recorded_for_a_day_that_has_not_come() {
    let ctx = Context {
        today: day("2020-01-25"),
        occurred_on: day("2020-01-26"),
    };
    given::<Returnee>(&in_quarantine(), ctx)
        .when(check(36.5))
        .then_rejects("future_date");
}

#[test]
fn a_screening_with_a_fever_also_reports_an_abnormal_condition() {
    let screen = |t| {
        ReturneeCommand::Screen(ScreenReturnee {
            temperature: temp(t),
            identity_checked: true,
            came_from: name("武汉"),
            going_to: None,
            symptoms: vec![],
            screened_by: name("村医"),
        })
    };
    given::<Returnee>(&[registered("2020-01-24")], on("2020-01-24"))
        .when(screen(36.4))
        .then_types(&["ReturneeScreened"]);
    let state = given::<Returnee>(&[registered("2020-01-24")], on("2020-01-24"))
        .when(screen(38.1))
        .then_types(&["ReturneeScreened", "AbnormalConditionReported"]);
    assert!(state.abnormal_pending);
    given::<Returnee>(&[registered("2020-01-24")], on("2020-01-23"))
        .when(screen(36.4))
        .then_rejects("screened_before_arrival");
    given::<Returnee>(&[], on("2020-01-24"))
        .when(screen(36.4))
        .then_rejects("returnee_not_registered");
}

#[test]
fn a_five_for_one_team_has_one_member_in_each_role() {
    given::<Returnee>(&[registered("2020-01-24")], on("2020-01-24"))
        .when(ReturneeCommand::AssignTeam { members: team() })
        .then_types(&["ResponsibilityTeamAssigned"]);
    let mut short = team();
    short.pop();
    given::<Returnee>(&[registered("2020-01-24")], on("2020-01-24"))
        .when(ReturneeCommand::AssignTeam { members: short })
        .then_rejects("team_incomplete");
    let mut doubled = team();
    doubled.push(doubled[0].clone());
    given::<Returnee>(&[registered("2020-01-24")], on("2020-01-24"))
        .when(ReturneeCommand::AssignTeam { members: doubled })
        .then_rejects("team_incomplete");
}

#[test]
fn a_quarantine_cannot_start_twice() {
    given::<Returnee>(&[registered("2020-01-24")], on("2020-01-25"))
        .when(ReturneeCommand::StartQuarantine { planned_days: None })
        .then(&[started("2020-01-25")]);
    given::<Returnee>(&in_quarantine(), on("2020-01-26"))
        .when(ReturneeCommand::StartQuarantine { planned_days: None })
        .then_rejects("quarantine_already_active");
}

#[test]
fn a_quarantine_period_is_one_to_sixty_days() {
    for days in [0, 61, -3] {
        given::<Returnee>(&[registered("2020-01-24")], on("2020-01-25"))
            .when(ReturneeCommand::StartQuarantine {
                planned_days: Some(days),
            })
            .then_rejects("quarantine_period_out_of_range");
    }
}

#[test]
fn a_quarantine_cannot_start_before_arrival() {
    given::<Returnee>(&[registered("2020-01-24")], on("2020-01-20"))
        .when(ReturneeCommand::StartQuarantine { planned_days: None })
        .then_rejects("quarantine_before_arrival");
}

#[test]
fn a_health_check_needs_an_active_quarantine() {
    given::<Returnee>(&[registered("2020-01-24")], on("2020-01-25"))
        .when(check(36.5))
        .then_rejects("no_active_quarantine");
    let state = given::<Returnee>(&in_quarantine(), on("2020-01-26"))
        .when(check(36.5))
        .then_types(&["HealthCheckRecorded"]);
    let q = state.quarantine.expect("active");
    assert!(q.visits.contains(&day("2020-01-26")));
    given::<Returnee>(&in_quarantine(), on("2020-01-24"))
        .when(check(36.5))
        .then_rejects("health_check_before_quarantine");
}

#[test]
fn a_fever_at_a_visit_is_an_abnormal_finding_and_allows_a_referral() {
    given::<Returnee>(&in_quarantine(), on("2020-01-27"))
        .when(ReturneeCommand::ReferForTreatment {
            facility: name("县人民医院"),
        })
        .then_rejects("referral_without_abnormal_condition");
    let state = given::<Returnee>(&in_quarantine(), on("2020-01-27"))
        .when(check(37.3))
        .then_types(&["HealthCheckRecorded", "AbnormalConditionReported"]);
    let referred = state
        .handle(
            &ReturneeCommand::ReferForTreatment {
                facility: name("县人民医院"),
            },
            &on("2020-01-27"),
        )
        .expect("referral after a fever");
    let state = referred.iter().fold(state, |s, e| s.apply(e));
    assert_eq!(state.referrals, 1);
    assert!(
        !state.abnormal_pending,
        "a second referral needs a new finding"
    );
}

#[test]
fn a_quarantine_cannot_end_before_it_starts_nor_be_completed_early() {
    let history = vec![registered("2020-01-20"), started("2020-01-25")];
    given::<Returnee>(&history, on("2020-01-24"))
        .when(ReturneeCommand::EndQuarantine {
            reason: QuarantineEndReason::Transferred,
        })
        .then_rejects("quarantine_ends_before_start");
    given::<Returnee>(&history, on("2020-02-01"))
        .when(ReturneeCommand::EndQuarantine {
            reason: QuarantineEndReason::Completed,
        })
        .then_rejects("released_before_planned_end");
    let state = given::<Returnee>(&history, on("2020-02-07"))
        .when(ReturneeCommand::EndQuarantine {
            reason: QuarantineEndReason::Completed,
        })
        .then_types(&["QuarantineEnded"]);
    assert_eq!(state.status, ReturneeStatus::Released);
    assert!(state.quarantine.is_none());
    given::<Returnee>(&[registered("2020-01-20")], on("2020-02-07"))
        .when(ReturneeCommand::EndQuarantine {
            reason: QuarantineEndReason::Completed,
        })
        .then_rejects("no_active_quarantine");
}

#[test]
fn an_early_end_for_treatment_is_allowed() {
    let state = given::<Returnee>(&in_quarantine(), on("2020-01-28"))
        .when(ReturneeCommand::EndQuarantine {
            reason: QuarantineEndReason::ReferredForTreatment,
        })
        .then_types(&["QuarantineEnded"]);
    assert_eq!(state.status, ReturneeStatus::UnderTreatment);
}

#[test]
fn an_extension_moves_the_planned_end_and_must_change_something() {
    let reason = Text::parse("家属确诊，延长观察").expect("reason");
    given::<Returnee>(&in_quarantine(), on("2020-01-30"))
        .when(ReturneeCommand::ChangeQuarantinePeriod {
            planned_days: 21,
            reason: reason.clone(),
        })
        .then(&[QuarantinePeriodChanged {
            planned_days: 21,
            planned_end: day("2020-02-14"),
            reason: reason.clone(),
        }
        .into()]);
    given::<Returnee>(&in_quarantine(), on("2020-01-30"))
        .when(ReturneeCommand::ChangeQuarantinePeriod {
            planned_days: 14,
            reason,
        })
        .then_rejects("quarantine_period_unchanged");
}

#[test]
fn a_new_exposure_restarts_the_count_from_its_date() {
    let description = Text::parse("与确诊病例同桌就餐").expect("text");
    let state = given::<Returnee>(&in_quarantine(), on("2020-01-30"))
        .when(ReturneeCommand::RecordExposure {
            description: description.clone(),
        })
        .then(&[ExposureRecorded {
            date: day("2020-01-30"),
            description,
            planned_end: day("2020-02-12"),
        }
        .into()]);
    let q = state.quarantine.expect("active");
    assert_eq!(q.schedule.count_start, day("2020-01-30"));
    assert_eq!(q.schedule.planned_end(), day("2020-02-12"));
    assert_eq!(
        q.started_on,
        day("2020-01-25"),
        "the quarantine's start stays"
    );
}

#[test]
fn an_exposure_cannot_predate_the_current_count() {
    given::<Returnee>(&in_quarantine(), on("2020-01-24"))
        .when(ReturneeCommand::RecordExposure {
            description: Text::parse("接触").expect("text"),
        })
        .then_rejects("exposure_before_quarantine");
    given::<Returnee>(&[registered("2020-01-24")], on("2020-01-26"))
        .when(ReturneeCommand::RecordExposure {
            description: Text::parse("接触").expect("text"),
        })
        .then_rejects("no_active_quarantine");
}

#[test]
fn a_quarantine_can_start_again_after_the_last_one_ended() {
    let mut history = in_quarantine();
    history.push(
        QuarantineEnded {
            date: day("2020-01-28"),
            reason: QuarantineEndReason::ReferredForTreatment,
        }
        .into(),
    );
    let state = given::<Returnee>(&history, on("2020-02-05"))
        .when(ReturneeCommand::StartQuarantine { planned_days: None })
        .then_types(&["QuarantineStarted"]);
    assert_eq!(state.status, ReturneeStatus::InQuarantine);
    assert_eq!(state.quarantines_ended, 1);
}

#[test]
fn a_version_one_health_check_reads_as_the_current_shape() {
    let stored = serde_json::json!({"date": "2020-01-26", "temperature_celsius": 36.7});
    let event = ReturneeEvent::from_stored("HealthCheckRecorded", 1, stored).expect("upcast");
    assert_eq!(
        event,
        HealthCheckRecorded {
            date: day("2020-01-26"),
            temperature: temp(36.7),
            symptoms: vec![],
            visited_by: None,
        }
        .into()
    );
    assert_eq!(event.schema_version(), 2);
    assert!(ReturneeEvent::from_stored("HealthCheckRecorded", 3, serde_json::json!({})).is_err());
    assert!(ReturneeEvent::from_stored("QuarantineStarted", 2, serde_json::json!({})).is_err());
    assert!(matches!(
        ReturneeEvent::from_stored("Nonsense", 1, serde_json::json!({})),
        Err(crate::DecodeError::UnknownType(_))
    ));
}

#[test]
fn personal_data_sits_in_one_object_of_the_registration() {
    let payload = registered("2020-01-24").to_payload();
    let personal = &payload["personal"];
    assert_eq!(personal["resident_id"], "11010519491231002X");
    let outside = serde_json::to_string(&{
        let mut p = payload.clone();
        p.as_object_mut().map(|o| o.remove("personal"));
        p
    })
    .expect("json");
    for secret in ["张三", "11010519491231002X", "13812345678", "桥头村三组"] {
        assert!(!outside.contains(secret), "{secret} outside `personal`");
    }
}

#[test]
fn erasure_leaves_every_count_and_erases_the_person_once() {
    let erase = || ReturneeCommand::ErasePersonalData {
        basis: ErasureBasis::Request,
        reason: Text::parse("本人申请删除").expect("text"),
    };
    given::<Returnee>(&[], on("2020-02-01"))
        .when(erase())
        .then_rejects("returnee_not_registered");
    let state = given::<Returnee>(
        &[registered("2020-01-20"), started("2020-01-20")],
        on("2020-02-01"),
    )
    .when(erase())
    .then_types(&["PersonalDataErased"]);
    assert!(state.personal_data_erased());
    assert_eq!(state.status, ReturneeStatus::InQuarantine, "counts stand");
    let erased = ReturneeEvent::from(PersonalDataErased {
        date: day("2020-02-01"),
        basis: ErasureBasis::Request,
        reason: Text::parse("本人申请删除").expect("text"),
    });
    given::<Returnee>(&[registered("2020-01-20"), erased], on("2020-02-01"))
        .when(erase())
        .then(&[]);
}

// Property tests: any sequence of commands, checked against a model of the
// rules written independently of the aggregate. Each command's outcome (the
// event types, or the rule's code) and the state reached must be the
// model's; a refusal changes nothing.

/// What the rules say a returnee's history leaves, kept apart from the
/// aggregate's own state.
#[derive(Debug, Default)]
struct Model {
    arrival: Option<LocalDate>,
    team: bool,
    /// (started on, count start, planned days, days with a temperature).
    quarantine: Option<(LocalDate, LocalDate, u16, BTreeSet<LocalDate>)>,
    screened: BTreeSet<LocalDate>,
    abnormal_pending: bool,
    ended: u32,
    erased: bool,
}

impl Model {
    /// The outcome the rules give `command` on `day` (today being
    /// `today`), and the model after it.
    fn decide(
        &mut self,
        command: &ReturneeCommand,
        day: LocalDate,
        today: LocalDate,
    ) -> Result<Vec<&'static str>, &'static str> {
        if day > today {
            return Err("future_date");
        }
        let fever = |t: &Temperature, symptoms: &[Symptom]| t.is_fever() || !symptoms.is_empty();
        let period = |days: i64| u16::try_from(days).ok().filter(|d| (1..=60).contains(d));
        if !matches!(command, ReturneeCommand::Register(_)) && self.arrival.is_none() {
            return Err("returnee_not_registered");
        }
        let arrival = self.arrival.unwrap_or(day);
        match command {
            ReturneeCommand::Register(_) => {
                if self.arrival.is_some() {
                    return Err("returnee_already_registered");
                }
                self.arrival = Some(day_of("2020-01-20"));
                Ok(vec!["ReturneeRegistered"])
            }
            ReturneeCommand::Screen(s) => {
                if day < arrival {
                    return Err("screened_before_arrival");
                }
                self.screened.insert(day);
                if let Some(q) = &mut self.quarantine {
                    q.3.insert(day);
                }
                if fever(&s.temperature, &s.symptoms) {
                    self.abnormal_pending = true;
                    return Ok(vec!["ReturneeScreened", "AbnormalConditionReported"]);
                }
                Ok(vec!["ReturneeScreened"])
            }
            ReturneeCommand::AssignTeam { .. } => {
                if self.team {
                    return Ok(vec![]);
                }
                self.team = true;
                Ok(vec!["ResponsibilityTeamAssigned"])
            }
            ReturneeCommand::StartQuarantine { planned_days } => {
                if self.quarantine.is_some() {
                    return Err("quarantine_already_active");
                }
                if day < arrival {
                    return Err("quarantine_before_arrival");
                }
                let days =
                    period(planned_days.unwrap_or(14)).ok_or("quarantine_period_out_of_range")?;
                let visits = self.screened.range(day..).copied().collect();
                self.quarantine = Some((day, day, days, visits));
                Ok(vec!["QuarantineStarted"])
            }
            ReturneeCommand::RecordHealthCheck {
                temperature,
                symptoms,
                ..
            } => {
                let q = self.quarantine.as_mut().ok_or("no_active_quarantine")?;
                if day < q.0 {
                    return Err("health_check_before_quarantine");
                }
                q.3.insert(day);
                if fever(temperature, symptoms) {
                    self.abnormal_pending = true;
                    return Ok(vec!["HealthCheckRecorded", "AbnormalConditionReported"]);
                }
                Ok(vec!["HealthCheckRecorded"])
            }
            ReturneeCommand::ReportAbnormalCondition { .. } => {
                self.abnormal_pending = true;
                Ok(vec!["AbnormalConditionReported"])
            }
            ReturneeCommand::ReferForTreatment { .. } => {
                if !self.abnormal_pending {
                    return Err("referral_without_abnormal_condition");
                }
                self.abnormal_pending = false;
                Ok(vec!["ReferredForTreatment"])
            }
            ReturneeCommand::ChangeQuarantinePeriod { planned_days, .. } => {
                let q = self.quarantine.as_mut().ok_or("no_active_quarantine")?;
                let days = period(*planned_days).ok_or("quarantine_period_out_of_range")?;
                if days == q.2 {
                    return Err("quarantine_period_unchanged");
                }
                q.2 = days;
                Ok(vec!["QuarantinePeriodChanged"])
            }
            ReturneeCommand::RecordExposure { .. } => {
                let q = self.quarantine.as_mut().ok_or("no_active_quarantine")?;
                if day < q.1 {
                    return Err("exposure_before_quarantine");
                }
                q.1 = day;
                Ok(vec!["ExposureRecorded"])
            }
            ReturneeCommand::EndQuarantine { reason } => {
                let q = self.quarantine.as_ref().ok_or("no_active_quarantine")?;
                if day < q.0 {
                    return Err("quarantine_ends_before_start");
                }
                let planned_end = q.1 + chrono::Days::new(u64::from(q.2) - 1);
                if *reason == QuarantineEndReason::Completed && day < planned_end {
                    return Err("released_before_planned_end");
                }
                self.quarantine = None;
                self.ended += 1;
                Ok(vec!["QuarantineEnded"])
            }
            ReturneeCommand::ErasePersonalData { .. } => {
                if self.erased {
                    return Ok(vec![]);
                }
                self.erased = true;
                Ok(vec!["PersonalDataErased"])
            }
        }
    }
}

fn day_of(s: &str) -> LocalDate {
    day(s)
}

fn command() -> impl Strategy<Value = (ReturneeCommand, u8)> {
    let t = (300u16..=450).prop_map(|tenths| temp(f64::from(tenths) / 10.0));
    let symptoms = prop::collection::vec(prop::sample::select(Symptom::ALL.to_vec()), 0..2);
    let cmd = prop_oneof![
        Just(register("2020-01-20")),
        (t.clone(), symptoms.clone()).prop_map(|(temperature, symptoms)| {
            ReturneeCommand::Screen(ScreenReturnee {
                temperature,
                identity_checked: true,
                came_from: name("武汉"),
                going_to: None,
                symptoms,
                screened_by: name("村医"),
            })
        }),
        Just(ReturneeCommand::AssignTeam { members: team() }),
        (prop::option::of(-2i64..70))
            .prop_map(|planned_days| ReturneeCommand::StartQuarantine { planned_days }),
        (t.clone(), symptoms.clone()).prop_map(|(temperature, symptoms)| {
            ReturneeCommand::RecordHealthCheck {
                temperature,
                symptoms,
                visited_by: None,
            }
        }),
        (prop::option::of(t), symptoms).prop_map(|(temperature, symptoms)| {
            ReturneeCommand::ReportAbnormalCondition {
                temperature,
                symptoms,
                notes: None,
            }
        }),
        Just(ReturneeCommand::ReferForTreatment {
            facility: name("卫生院")
        }),
        (0i64..70).prop_map(|planned_days| ReturneeCommand::ChangeQuarantinePeriod {
            planned_days,
            reason: Text::parse("调整").expect("text"),
        }),
        Just(ReturneeCommand::RecordExposure {
            description: Text::parse("接触").expect("text"),
        }),
        prop::sample::select(QuarantineEndReason::ALL.to_vec())
            .prop_map(|reason| ReturneeCommand::EndQuarantine { reason }),
        Just(ReturneeCommand::ErasePersonalData {
            basis: ErasureBasis::Request,
            reason: Text::parse("本人申请删除").expect("text"),
        }),
    ];
    // The day offset from 2020-01-15 at which the command happens.
    (cmd, 0u8..40)
}

proptest! {
    #[test]
    fn any_command_sequence_decides_and_ends_as_the_rules_model_says(
        commands in prop::collection::vec(command(), 0..40)
    ) {
        let today = day("2020-02-10");
        let mut state = Returnee::default();
        let mut model = Model::default();
        for (command, offset) in commands {
            let occurred_on = day("2020-01-15") + chrono::Days::new(u64::from(offset));
            let ctx = Context { today, occurred_on };
            let before = state.clone();
            let decided = state.handle(&command, &ctx);
            let expected = model.decide(&command, occurred_on, today);
            let got = decided
                .as_ref()
                .map(|events| events.iter().map(|e| e.event_type()).collect::<Vec<_>>())
                .map_err(|e| e.code());
            prop_assert_eq!(&got, &expected, "{:?} on {}", command, occurred_on);
            match decided {
                Ok(events) => {
                    for event in events {
                        // Every event reads back as itself from the log.
                        let back = ReturneeEvent::from_stored(event.event_type(), event.schema_version(), event.to_payload());
                        prop_assert_eq!(back.as_ref(), Ok(&event));
                        state = state.apply(&event);
                    }
                }
                Err(_) => prop_assert_eq!(&state, &before, "a refusal changes nothing"),
            }
            let reached = state.quarantine.as_ref().map(|q| {
                (q.started_on, q.schedule.count_start, q.schedule.planned_days, q.visits.clone())
            });
            prop_assert_eq!(reached, model.quarantine.clone());
            prop_assert_eq!(state.abnormal_pending, model.abnormal_pending);
            prop_assert_eq!(state.quarantines_ended, model.ended);
            prop_assert_eq!(state.registration.is_some(), model.arrival.is_some());
        }
    }
}

#[test]
fn a_screening_temperature_on_a_quarantine_day_is_that_days_visit() {
    let screened_on = |date: &str| -> ReturneeEvent {
        ReturneeScreened {
            screened_on: day(date),
            temperature: temp(36.6),
            identity_checked: true,
            came_from: name("武汉"),
            going_to: None,
            symptoms: vec![],
            screened_by: name("卡口"),
        }
        .into()
    };
    // Screened and quarantined the same day, no separate visit: not missed.
    let state = Returnee::fold(&[
        registered("2020-01-25"),
        screened_on("2020-01-25"),
        started("2020-01-25"),
    ]);
    let q = state.quarantine.as_ref().expect("under way");
    assert!(q
        .schedule
        .missed_days(&q.visits, day("2020-01-26"))
        .is_empty());
    // A screening the day before the quarantine is not a visit of it.
    let state = Returnee::fold(&[
        registered("2020-01-24"),
        screened_on("2020-01-24"),
        started("2020-01-25"),
    ]);
    let q = state.quarantine.as_ref().expect("under way");
    assert_eq!(
        q.schedule.missed_days(&q.visits, day("2020-01-26")),
        vec![day("2020-01-25")]
    );
    // A screening during the quarantine is that day's visit.
    let state = Returnee::fold(&[
        registered("2020-01-25"),
        started("2020-01-25"),
        screened_on("2020-01-25"),
    ]);
    let q = state.quarantine.as_ref().expect("under way");
    assert!(q
        .schedule
        .missed_days(&q.visits, day("2020-01-26"))
        .is_empty());
}
