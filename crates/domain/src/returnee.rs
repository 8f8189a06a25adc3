//! A returnee (返镇人员): registration, screening, the five-for-one team,
//! home quarantine with a daily visit, abnormal findings and referral.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::codec::event_enum;
use crate::personal::Personal;
use crate::schedule::Schedule;
use crate::{
    Aggregate, Context, DomainError, GridId, LocalDate, Name, Origin, PhoneNumber,
    QuarantineEndReason, ResidentIdNumber, ReturneeId, Symptom, TeamRole, Temperature, Text,
    VillageId, ZoneId,
};

/// The normal length of home quarantine observation.
pub const DEFAULT_QUARANTINE_DAYS: u16 = 14;
/// The longest period the township plans for one count.
pub const MAX_QUARANTINE_DAYS: i64 = 60;

/// Everything about the person that is personal data, kept in one object so
/// that it can be encrypted per person and erased by destroying the key,
/// leaving every count intact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PersonalData {
    pub name: Name,
    pub resident_id: ResidentIdNumber,
    pub phone: PhoneNumber,
    pub address: Text,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReturneeRegistered {
    pub returnee_id: ReturneeId,
    pub zone_id: ZoneId,
    pub village_id: VillageId,
    pub grid_id: GridId,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub arrival_date: LocalDate,
    pub origin: Origin,
    #[cfg_attr(
        feature = "openapi",
        schema(schema_with = crate::personal::shown_schema::<PersonalData>)
    )]
    pub personal: Personal<PersonalData>,
}

/// One test, two checks, three questions (一测二查三询).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReturneeScreened {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub screened_on: LocalDate,
    pub temperature: Temperature,
    pub identity_checked: bool,
    pub came_from: Name,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub going_to: Option<Name>,
    #[serde(default)]
    pub symptoms: Vec<Symptom>,
    pub screened_by: Name,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TeamMember {
    pub role: TeamRole,
    pub name: Name,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(schema_with = crate::personal::shown_schema::<PhoneNumber>)
    )]
    pub phone: Option<Personal<PhoneNumber>>,
}

/// Five for one (五包一): one named person in each of the five roles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResponsibilityTeamAssigned {
    pub members: Vec<TeamMember>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuarantineStarted {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub start_date: LocalDate,
    pub planned_days: u16,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub planned_end: LocalDate,
}

/// The daily temperature visit at the door. Version 2 added symptoms and the
/// visitor; version 1 held only `date` and `temperature_celsius`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HealthCheckRecorded {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub date: LocalDate,
    pub temperature: Temperature,
    #[serde(default)]
    pub symptoms: Vec<Symptom>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visited_by: Option<Name>,
}

/// Lifts a version 1 health check (`temperature_celsius`) to version 2.
fn health_check_v1_to_v2(
    version: u32,
    payload: serde_json::Value,
) -> Result<serde_json::Value, String> {
    if version != 1 {
        return Err(format!("no upcast from version {version}"));
    }
    let mut fields = match payload {
        serde_json::Value::Object(fields) => fields,
        other => return Err(format!("expected an object, found {other}")),
    };
    let celsius = fields
        .remove("temperature_celsius")
        .ok_or("missing temperature_celsius")?;
    fields.insert("temperature".into(), celsius);
    fields.insert("symptoms".into(), serde_json::Value::Array(vec![]));
    Ok(serde_json::Value::Object(fields))
}

/// Where an abnormal finding was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FindingSource {
    Screening,
    HealthCheck,
    Report,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AbnormalConditionReported {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub date: LocalDate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<Temperature>,
    #[serde(default)]
    pub symptoms: Vec<Symptom>,
    pub source: FindingSource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<Text>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReferredForTreatment {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub date: LocalDate,
    pub facility: Name,
}

/// The planned period was extended or shortened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuarantinePeriodChanged {
    pub planned_days: u16,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub planned_end: LocalDate,
    pub reason: Text,
}

/// A new exposure: the count restarts from its date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExposureRecorded {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub date: LocalDate,
    pub description: Text,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub planned_end: LocalDate,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuarantineEnded {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub date: LocalDate,
    pub reason: QuarantineEndReason,
}

/// On what ground a person's personal data was erased.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErasureBasis {
    /// The person asked, or the administrator decided (a reason given).
    Request,
    /// The retention period after the quarantine (or the registration,
    /// without one) passed.
    Retention,
}

/// The person's personal data was erased: the key their fields were
/// sealed under is destroyed, so no earlier event's name, ID number,
/// phone or address opens again, while every count stands. Holds no
/// personal data itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PersonalDataErased {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub date: LocalDate,
    pub basis: ErasureBasis,
    pub reason: Text,
}

event_enum! {
    /// What happens to a returnee.
    pub enum ReturneeEvent {
        ReturneeRegistered: 1,
        ReturneeScreened: 1,
        ResponsibilityTeamAssigned: 1,
        QuarantineStarted: 1,
        HealthCheckRecorded: 2 => health_check_v1_to_v2,
        AbnormalConditionReported: 1,
        ReferredForTreatment: 1,
        QuarantinePeriodChanged: 1,
        ExposureRecorded: 1,
        QuarantineEnded: 1,
        PersonalDataErased: 1,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RegisterReturnee {
    pub returnee_id: ReturneeId,
    pub zone_id: ZoneId,
    pub village_id: VillageId,
    pub grid_id: GridId,
    pub arrival_date: LocalDate,
    pub origin: Origin,
    pub personal: PersonalData,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScreenReturnee {
    pub temperature: Temperature,
    pub identity_checked: bool,
    pub came_from: Name,
    pub going_to: Option<Name>,
    pub symptoms: Vec<Symptom>,
    pub screened_by: Name,
}

/// Commands on a returnee. Field dates come from [`Context::occurred_on`].
#[derive(Debug, Clone, PartialEq)]
pub enum ReturneeCommand {
    Register(RegisterReturnee),
    Screen(ScreenReturnee),
    AssignTeam {
        members: Vec<TeamMember>,
    },
    StartQuarantine {
        planned_days: Option<i64>,
    },
    RecordHealthCheck {
        temperature: Temperature,
        symptoms: Vec<Symptom>,
        visited_by: Option<Name>,
    },
    ReportAbnormalCondition {
        temperature: Option<Temperature>,
        symptoms: Vec<Symptom>,
        notes: Option<Text>,
    },
    ReferForTreatment {
        facility: Name,
    },
    ChangeQuarantinePeriod {
        planned_days: i64,
        reason: Text,
    },
    RecordExposure {
        description: Text,
    },
    EndQuarantine {
        reason: QuarantineEndReason,
    },
    ErasePersonalData {
        basis: ErasureBasis,
        reason: Text,
    },
}

/// Where a returnee stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReturneeStatus {
    #[default]
    Unregistered,
    Registered,
    InQuarantine,
    Released,
    UnderTreatment,
    Transferred,
    LostToFollowUp,
}

impl ReturneeStatus {
    pub fn code(self) -> &'static str {
        match self {
            ReturneeStatus::Unregistered => "unregistered",
            ReturneeStatus::Registered => "registered",
            ReturneeStatus::InQuarantine => "in_quarantine",
            ReturneeStatus::Released => "released",
            ReturneeStatus::UnderTreatment => "under_treatment",
            ReturneeStatus::Transferred => "transferred",
            ReturneeStatus::LostToFollowUp => "lost_to_follow_up",
        }
    }
}

/// The quarantine under way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quarantine {
    pub started_on: LocalDate,
    pub schedule: Schedule,
    pub visits: BTreeSet<LocalDate>,
    pub last_temperature: Option<Temperature>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Returnee {
    pub registration: Option<ReturneeRegistered>,
    pub status: ReturneeStatus,
    pub screenings: u32,
    pub last_screened_on: Option<LocalDate>,
    /// Days a temperature was taken at a screening: one on a day of the
    /// quarantine counts as that day's visit.
    pub screened_days: BTreeSet<LocalDate>,
    pub team: Vec<TeamMember>,
    pub quarantine: Option<Quarantine>,
    pub quarantines_ended: u32,
    pub abnormal_reports: u32,
    /// An abnormal finding not yet referred.
    pub abnormal_pending: bool,
    pub referrals: u32,
}

impl Returnee {
    fn registered(&self) -> Result<&ReturneeRegistered, DomainError> {
        self.registration
            .as_ref()
            .ok_or(DomainError::ReturneeNotRegistered)
    }

    /// Whether the person's personal data was erased.
    pub fn personal_data_erased(&self) -> bool {
        self.registration
            .as_ref()
            .is_some_and(|r| r.personal.is_erased())
    }

    fn active_quarantine(&self) -> Result<&Quarantine, DomainError> {
        self.registered()?;
        self.quarantine
            .as_ref()
            .ok_or(DomainError::NoActiveQuarantine)
    }
}

fn period(days: i64) -> Result<u16, DomainError> {
    if !(1..=MAX_QUARANTINE_DAYS).contains(&days) {
        return Err(DomainError::QuarantinePeriodOutOfRange { days });
    }
    Ok(days as u16)
}

fn check_team(members: &[TeamMember]) -> Result<(), DomainError> {
    for role in TeamRole::ALL {
        let n = members.iter().filter(|m| m.role == *role).count();
        if n != 1 {
            return Err(DomainError::TeamIncomplete {
                problem: format!("{} has {n} members", role.code()),
            });
        }
    }
    if members.len() != TeamRole::ALL.len() {
        return Err(DomainError::TeamIncomplete {
            problem: format!("{} members given", members.len()),
        });
    }
    Ok(())
}

/// A finding to report alongside a measurement, if it is abnormal.
fn finding(
    date: LocalDate,
    temperature: Temperature,
    symptoms: &[Symptom],
    source: FindingSource,
) -> Option<ReturneeEvent> {
    (temperature.is_fever() || !symptoms.is_empty()).then(|| {
        AbnormalConditionReported {
            date,
            temperature: Some(temperature),
            symptoms: symptoms.to_vec(),
            source,
            notes: None,
        }
        .into()
    })
}

impl Aggregate for Returnee {
    type Command = ReturneeCommand;
    type Event = ReturneeEvent;
    const CATEGORY: &'static str = "returnee";

    fn zone(&self) -> Option<crate::ZoneId> {
        self.registration.as_ref().map(|r| r.zone_id)
    }

    fn handle(
        &self,
        command: &ReturneeCommand,
        ctx: &Context,
    ) -> Result<Vec<ReturneeEvent>, DomainError> {
        ctx.check_not_future("the record")?;
        let today = ctx.occurred_on;
        match command {
            ReturneeCommand::Register(r) => {
                if self.registration.is_some() {
                    return Err(DomainError::ReturneeAlreadyRegistered);
                }
                if r.arrival_date > ctx.today {
                    return Err(DomainError::FutureDate {
                        what: "the arrival",
                        date: r.arrival_date,
                        today: ctx.today,
                    });
                }
                Ok(vec![ReturneeRegistered {
                    returnee_id: r.returnee_id,
                    zone_id: r.zone_id,
                    village_id: r.village_id,
                    grid_id: r.grid_id,
                    arrival_date: r.arrival_date,
                    origin: r.origin.clone(),
                    personal: Personal::Clear(r.personal.clone()),
                }
                .into()])
            }
            ReturneeCommand::Screen(s) => {
                let registration = self.registered()?;
                if today < registration.arrival_date {
                    return Err(DomainError::ScreenedBeforeArrival {
                        arrival: registration.arrival_date,
                    });
                }
                let mut events: Vec<ReturneeEvent> = vec![ReturneeScreened {
                    screened_on: today,
                    temperature: s.temperature,
                    identity_checked: s.identity_checked,
                    came_from: s.came_from.clone(),
                    going_to: s.going_to.clone(),
                    symptoms: s.symptoms.clone(),
                    screened_by: s.screened_by.clone(),
                }
                .into()];
                events.extend(finding(
                    today,
                    s.temperature,
                    &s.symptoms,
                    FindingSource::Screening,
                ));
                Ok(events)
            }
            ReturneeCommand::AssignTeam { members } => {
                self.registered()?;
                check_team(members)?;
                if self.team == *members {
                    return Ok(vec![]);
                }
                Ok(vec![ResponsibilityTeamAssigned {
                    members: members.clone(),
                }
                .into()])
            }
            ReturneeCommand::StartQuarantine { planned_days } => {
                let registration = self.registered()?;
                if let Some(q) = &self.quarantine {
                    return Err(DomainError::QuarantineAlreadyActive {
                        since: q.started_on,
                    });
                }
                if today < registration.arrival_date {
                    return Err(DomainError::QuarantineBeforeArrival {
                        arrival: registration.arrival_date,
                    });
                }
                let planned_days =
                    period(planned_days.unwrap_or(i64::from(DEFAULT_QUARANTINE_DAYS)))?;
                let schedule = Schedule {
                    count_start: today,
                    planned_days,
                };
                Ok(vec![QuarantineStarted {
                    start_date: today,
                    planned_days,
                    planned_end: schedule.planned_end(),
                }
                .into()])
            }
            ReturneeCommand::RecordHealthCheck {
                temperature,
                symptoms,
                visited_by,
            } => {
                let q = self.active_quarantine()?;
                if today < q.started_on {
                    return Err(DomainError::HealthCheckBeforeQuarantine {
                        date: today,
                        start: q.started_on,
                    });
                }
                let mut events: Vec<ReturneeEvent> = vec![HealthCheckRecorded {
                    date: today,
                    temperature: *temperature,
                    symptoms: symptoms.clone(),
                    visited_by: visited_by.clone(),
                }
                .into()];
                events.extend(finding(
                    today,
                    *temperature,
                    symptoms,
                    FindingSource::HealthCheck,
                ));
                Ok(events)
            }
            ReturneeCommand::ReportAbnormalCondition {
                temperature,
                symptoms,
                notes,
            } => {
                self.registered()?;
                Ok(vec![AbnormalConditionReported {
                    date: today,
                    temperature: *temperature,
                    symptoms: symptoms.clone(),
                    source: FindingSource::Report,
                    notes: notes.clone(),
                }
                .into()])
            }
            ReturneeCommand::ReferForTreatment { facility } => {
                self.registered()?;
                if !self.abnormal_pending {
                    return Err(DomainError::ReferralWithoutAbnormalCondition);
                }
                Ok(vec![ReferredForTreatment {
                    date: today,
                    facility: facility.clone(),
                }
                .into()])
            }
            ReturneeCommand::ChangeQuarantinePeriod {
                planned_days,
                reason,
            } => {
                let q = self.active_quarantine()?;
                let planned_days = period(*planned_days)?;
                if planned_days == q.schedule.planned_days {
                    return Err(DomainError::QuarantinePeriodUnchanged { days: planned_days });
                }
                let schedule = Schedule {
                    planned_days,
                    ..q.schedule.clone()
                };
                Ok(vec![QuarantinePeriodChanged {
                    planned_days,
                    planned_end: schedule.planned_end(),
                    reason: reason.clone(),
                }
                .into()])
            }
            ReturneeCommand::RecordExposure { description } => {
                let q = self.active_quarantine()?;
                if today < q.schedule.count_start {
                    return Err(DomainError::ExposureBeforeQuarantine {
                        date: today,
                        start: q.schedule.count_start,
                    });
                }
                let schedule = Schedule {
                    count_start: today,
                    ..q.schedule.clone()
                };
                Ok(vec![ExposureRecorded {
                    date: today,
                    description: description.clone(),
                    planned_end: schedule.planned_end(),
                }
                .into()])
            }
            ReturneeCommand::EndQuarantine { reason } => {
                let q = self.active_quarantine()?;
                if today < q.started_on {
                    return Err(DomainError::QuarantineEndsBeforeStart {
                        start: q.started_on,
                    });
                }
                let planned_end = q.schedule.planned_end();
                if *reason == QuarantineEndReason::Completed && today < planned_end {
                    return Err(DomainError::ReleasedBeforePlannedEnd {
                        date: today,
                        planned_end,
                    });
                }
                Ok(vec![QuarantineEnded {
                    date: today,
                    reason: *reason,
                }
                .into()])
            }
            ReturneeCommand::ErasePersonalData { basis, reason } => {
                self.registered()?;
                // Erasing twice erases nothing more.
                if self.personal_data_erased() {
                    return Ok(vec![]);
                }
                Ok(vec![PersonalDataErased {
                    date: ctx.today,
                    basis: *basis,
                    reason: reason.clone(),
                }
                .into()])
            }
        }
    }

    fn apply(mut self, event: &ReturneeEvent) -> Self {
        match event {
            ReturneeEvent::ReturneeRegistered(e) => {
                self.registration = Some(e.clone());
                self.status = ReturneeStatus::Registered;
            }
            ReturneeEvent::ReturneeScreened(e) => {
                self.screenings += 1;
                self.last_screened_on = Some(e.screened_on);
                self.screened_days.insert(e.screened_on);
                if let Some(q) = &mut self.quarantine {
                    q.visits.insert(e.screened_on);
                }
            }
            ReturneeEvent::ResponsibilityTeamAssigned(e) => {
                self.team = e.members.clone();
            }
            ReturneeEvent::QuarantineStarted(e) => {
                self.quarantine = Some(Quarantine {
                    started_on: e.start_date,
                    schedule: Schedule {
                        count_start: e.start_date,
                        planned_days: e.planned_days,
                    },
                    // A temperature taken at a screening on a day of the
                    // quarantine is that day's visit.
                    visits: self.screened_days.range(e.start_date..).copied().collect(),
                    last_temperature: None,
                });
                self.status = ReturneeStatus::InQuarantine;
            }
            ReturneeEvent::HealthCheckRecorded(e) => {
                if let Some(q) = &mut self.quarantine {
                    q.visits.insert(e.date);
                    q.last_temperature = Some(e.temperature);
                }
            }
            ReturneeEvent::AbnormalConditionReported(_) => {
                self.abnormal_reports += 1;
                self.abnormal_pending = true;
            }
            ReturneeEvent::ReferredForTreatment(_) => {
                self.referrals += 1;
                self.abnormal_pending = false;
            }
            ReturneeEvent::QuarantinePeriodChanged(e) => {
                if let Some(q) = &mut self.quarantine {
                    q.schedule.planned_days = e.planned_days;
                }
            }
            ReturneeEvent::ExposureRecorded(e) => {
                if let Some(q) = &mut self.quarantine {
                    q.schedule.count_start = e.date;
                }
            }
            ReturneeEvent::QuarantineEnded(e) => {
                self.quarantine = None;
                self.quarantines_ended += 1;
                self.status = match e.reason {
                    QuarantineEndReason::Completed => ReturneeStatus::Released,
                    QuarantineEndReason::ReferredForTreatment => ReturneeStatus::UnderTreatment,
                    QuarantineEndReason::Transferred => ReturneeStatus::Transferred,
                    QuarantineEndReason::LostToFollowUp => ReturneeStatus::LostToFollowUp,
                };
            }
            ReturneeEvent::PersonalDataErased(_) => {
                if let Some(r) = &mut self.registration {
                    r.personal = Personal::Erased;
                }
                for member in &mut self.team {
                    if member.phone.is_some() {
                        member.phone = Some(Personal::Erased);
                    }
                }
            }
        }
        self
    }
}

#[cfg(test)]
mod tests;
