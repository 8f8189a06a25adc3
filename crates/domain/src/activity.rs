//! A zone's counted work: gatherings dispersed, publicity by channel,
//! patrols; and the township staff's morning health checks. Each record is a
//! fact of its own: the streams hold no state a rule depends on beyond the
//! record itself, so concurrent field workers never conflict.

use serde::{Deserialize, Serialize};

use crate::codec::event_enum;
use crate::personal::Personal;
use crate::{
    Aggregate, Context, Count, DomainError, LocalDate, Name, PublicityChannel, Symptom,
    Temperature, ZoneId,
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GatheringDispersed {
    pub zone_id: ZoneId,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub date: LocalDate,
    pub people: Count,
    pub location: Name,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PublicityRecorded {
    pub zone_id: ZoneId,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub date: LocalDate,
    pub channel: PublicityChannel,
    pub quantity: Count,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PatrolCompleted {
    pub zone_id: ZoneId,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub date: LocalDate,
    pub patrol_group: Name,
    /// Villagers persuaded to go home or wear a mask on the round.
    pub persuaded: Count,
}

event_enum! {
    /// A zone's counted activity.
    pub enum ActivityEvent {
        GatheringDispersed: 1,
        PublicityRecorded: 1,
        PatrolCompleted: 1,
    }
}

/// One piece of counted work in a zone; the caller has checked the zone exists.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityCommand {
    pub zone_id: ZoneId,
    pub activity: Activity,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Activity {
    DisperseGathering {
        people: Count,
        location: Name,
    },
    RecordPublicity {
        channel: PublicityChannel,
        quantity: Count,
    },
    CompletePatrol {
        patrol_group: Name,
        persuaded: Count,
    },
}

/// The activity stream of one zone (`activity-{zone}`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZoneActivity {
    pub zone_id: Option<ZoneId>,
    pub records: u64,
}

impl ZoneActivity {
    pub fn stream_id(zone_id: ZoneId) -> String {
        format!("activity-{zone_id}")
    }
}

impl Aggregate for ZoneActivity {
    type Command = ActivityCommand;
    type Event = ActivityEvent;
    const CATEGORY: &'static str = "activity";

    fn zone(&self) -> Option<crate::ZoneId> {
        self.zone_id
    }

    /// Counted work: its decision reads nothing of the stream.
    fn concurrency(_: &Self::Command) -> crate::Concurrency {
        crate::Concurrency::Independent
    }

    fn handle(
        &self,
        command: &ActivityCommand,
        ctx: &Context,
    ) -> Result<Vec<ActivityEvent>, DomainError> {
        ctx.check_not_future("the activity")?;
        let zone_id = command.zone_id;
        let date = ctx.occurred_on;
        let at_least_one = |n: Count, what| {
            if n.get() == 0 {
                Err(DomainError::NothingToRecord { what })
            } else {
                Ok(())
            }
        };
        match &command.activity {
            Activity::DisperseGathering { people, location } => {
                at_least_one(*people, "people")?;
                Ok(vec![GatheringDispersed {
                    zone_id,
                    date,
                    people: *people,
                    location: location.clone(),
                }
                .into()])
            }
            Activity::RecordPublicity { channel, quantity } => {
                at_least_one(*quantity, "quantity")?;
                Ok(vec![PublicityRecorded {
                    zone_id,
                    date,
                    channel: *channel,
                    quantity: *quantity,
                }
                .into()])
            }
            Activity::CompletePatrol {
                patrol_group,
                persuaded,
            } => Ok(vec![PatrolCompleted {
                zone_id,
                date,
                patrol_group: patrol_group.clone(),
                persuaded: *persuaded,
            }
            .into()]),
        }
    }

    fn apply(mut self, event: &ActivityEvent) -> Self {
        let zone_id = match event {
            ActivityEvent::GatheringDispersed(e) => e.zone_id,
            ActivityEvent::PublicityRecorded(e) => e.zone_id,
            ActivityEvent::PatrolCompleted(e) => e.zone_id,
        };
        self.zone_id.get_or_insert(zone_id);
        self.records += 1;
        self
    }
}

/// A township employee's morning check (晨检).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StaffHealthCheckRecorded {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub date: LocalDate,
    #[cfg_attr(
        feature = "openapi",
        schema(schema_with = crate::personal::shown_schema::<Name>)
    )]
    pub staff: Personal<Name>,
    pub temperature: Temperature,
    #[serde(default)]
    pub symptoms: Vec<Symptom>,
    /// A fever or symptoms: the person goes home and is followed up.
    pub abnormal: bool,
}

/// The names in a day's staff checks were erased: the day's key is
/// destroyed, so the checks stay counted (temperatures, symptoms) but no
/// longer say whose they were. Holds no personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StaffNamesErased {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub date: LocalDate,
    pub basis: crate::returnee::ErasureBasis,
    pub reason: crate::Text,
}

event_enum! {
    /// Staff morning checks.
    pub enum StaffEvent {
        StaffHealthCheckRecorded: 1,
        StaffNamesErased: 1,
    }
}

/// What is done with a day's staff checks.
#[derive(Debug, Clone, PartialEq)]
pub enum StaffCommand {
    Record(RecordStaffHealthCheck),
    /// Erase the names of the day's checks (a reason given).
    EraseNames {
        basis: crate::returnee::ErasureBasis,
        reason: crate::Text,
    },
}

impl From<RecordStaffHealthCheck> for StaffCommand {
    fn from(command: RecordStaffHealthCheck) -> Self {
        StaffCommand::Record(command)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RecordStaffHealthCheck {
    pub staff: Name,
    pub temperature: Temperature,
    pub symptoms: Vec<Symptom>,
}

/// Staff checks, one stream per day (`staff-{date}`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StaffChecks {
    pub checked: u64,
    pub abnormal: u64,
    /// The day's names were erased.
    pub names_erased: bool,
}

impl StaffChecks {
    pub fn stream_id(date: LocalDate) -> String {
        format!("staff-{date}")
    }
}

impl Aggregate for StaffChecks {
    type Command = StaffCommand;
    type Event = StaffEvent;
    const CATEGORY: &'static str = "staff";

    /// A check is counted work: its decision reads nothing of the stream.
    /// An erasure reads whether the day was erased already.
    fn concurrency(command: &Self::Command) -> crate::Concurrency {
        match command {
            StaffCommand::Record(_) => crate::Concurrency::Independent,
            StaffCommand::EraseNames { .. } => crate::Concurrency::Ordered,
        }
    }

    fn handle(
        &self,
        command: &StaffCommand,
        ctx: &Context,
    ) -> Result<Vec<StaffEvent>, DomainError> {
        let command = match command {
            StaffCommand::Record(command) => command,
            StaffCommand::EraseNames { basis, reason } => {
                // Erasing twice (or a day without checks) erases nothing.
                if self.names_erased || self.checked == 0 {
                    return Ok(vec![]);
                }
                return Ok(vec![StaffNamesErased {
                    date: ctx.today,
                    basis: *basis,
                    reason: reason.clone(),
                }
                .into()]);
            }
        };
        ctx.check_not_future("the check")?;
        Ok(vec![StaffHealthCheckRecorded {
            date: ctx.occurred_on,
            staff: Personal::Clear(command.staff.clone()),
            temperature: command.temperature,
            symptoms: command.symptoms.clone(),
            abnormal: command.temperature.is_fever() || !command.symptoms.is_empty(),
        }
        .into()])
    }

    fn apply(mut self, event: &StaffEvent) -> Self {
        match event {
            StaffEvent::StaffHealthCheckRecorded(e) => {
                self.checked += 1;
                if e.abnormal {
                    self.abnormal += 1;
                }
            }
            StaffEvent::StaffNamesErased(_) => self.names_erased = true,
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{day, given, name, temp};

    fn ctx() -> Context {
        Context::on(day("2020-02-01"))
    }

    #[test]
    fn activity_counts_something() {
        let zone_id = ZoneId::new();
        let publicity = |n| ActivityCommand {
            zone_id,
            activity: Activity::RecordPublicity {
                channel: PublicityChannel::Leaflet,
                quantity: Count::parse(n).expect("count"),
            },
        };
        let state = ZoneActivity::default();
        assert_eq!(
            state.handle(&publicity(0), &ctx()).map_err(|e| e.code()),
            Err("nothing_to_record")
        );
        let events = state.handle(&publicity(300), &ctx()).expect("recorded");
        assert_eq!(
            events,
            vec![PublicityRecorded {
                zone_id,
                date: day("2020-02-01"),
                channel: PublicityChannel::Leaflet,
                quantity: Count::parse(300).expect("count"),
            }
            .into()]
        );
    }

    #[test]
    fn a_days_staff_names_are_erased_once_and_its_checks_stay_counted() {
        let erase = || StaffCommand::EraseNames {
            basis: crate::returnee::ErasureBasis::Retention,
            reason: crate::Text::parse("retention").expect("text"),
        };
        given::<StaffChecks>(&[], ctx()).when(erase()).then(&[]);
        let check = StaffEvent::from(StaffHealthCheckRecorded {
            date: day("2020-02-01"),
            staff: Personal::Clear(name("镇干部甲")),
            temperature: temp(38.0),
            symptoms: vec![],
            abnormal: true,
        });
        let state = given::<StaffChecks>(std::slice::from_ref(&check), ctx())
            .when(erase())
            .then_types(&["StaffNamesErased"]);
        assert!(state.names_erased);
        assert_eq!((state.checked, state.abnormal), (1, 1));
        let erased = StaffEvent::from(StaffNamesErased {
            date: day("2020-02-01"),
            basis: crate::returnee::ErasureBasis::Retention,
            reason: crate::Text::parse("retention").expect("text"),
        });
        given::<StaffChecks>(&[check, erased], ctx())
            .when(erase())
            .then(&[]);
    }

    #[test]
    fn a_staff_check_with_a_fever_is_marked_abnormal() {
        let state = given::<StaffChecks>(&[], ctx())
            .when(StaffCommand::Record(RecordStaffHealthCheck {
                staff: name("镇干部甲"),
                temperature: temp(37.6),
                symptoms: vec![],
            }))
            .then(&[StaffHealthCheckRecorded {
                date: day("2020-02-01"),
                staff: Personal::Clear(name("镇干部甲")),
                temperature: temp(37.6),
                symptoms: vec![],
                abnormal: true,
            }
            .into()]);
        assert_eq!((state.checked, state.abnormal), (1, 1));
    }
}
