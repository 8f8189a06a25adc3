//! Duty posts (值守点) and what crossed them: every person and vehicle
//! registered, measured, checked; some turned back (劝返).

use serde::{Deserialize, Serialize};

use crate::codec::event_enum;
use crate::{
    Aggregate, CheckpointId, CheckpointKind, Context, Count, CrossingOutcome, CrossingSubject,
    DomainError, LocalDate, Name, Origin, RiskLevel, Temperature, VillageId, ZoneId,
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckpointEstablished {
    pub checkpoint_id: CheckpointId,
    pub zone_id: ZoneId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub village_id: Option<VillageId>,
    pub name: Name,
    pub kind: CheckpointKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CrossingRecorded {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub date: LocalDate,
    pub subject: CrossingSubject,
    /// People crossing: 1 for a person, the occupants for a vehicle.
    pub people: Count,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plate: Option<Name>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<Temperature>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<Name>,
    pub outcome: CrossingOutcome,
}

event_enum! {
    /// What happens at a checkpoint.
    pub enum CheckpointEvent {
        CheckpointEstablished: 1,
        CrossingRecorded: 1,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RecordCrossing {
    pub subject: CrossingSubject,
    pub people: Count,
    pub plate: Option<Name>,
    pub temperature: Option<Temperature>,
    pub origin: Option<Origin>,
    pub destination: Option<Name>,
    pub outcome: CrossingOutcome,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CheckpointCommand {
    Establish {
        checkpoint_id: CheckpointId,
        zone_id: ZoneId,
        village_id: Option<VillageId>,
        name: Name,
        kind: CheckpointKind,
    },
    RecordCrossing(RecordCrossing),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub established: Option<CheckpointEstablished>,
    pub crossings: u64,
    pub turned_back: u64,
}

impl Aggregate for Checkpoint {
    type Command = CheckpointCommand;
    type Event = CheckpointEvent;
    const CATEGORY: &'static str = "checkpoint";

    fn zone(&self) -> Option<crate::ZoneId> {
        self.established.as_ref().map(|e| e.zone_id)
    }

    /// A crossing needs only an established checkpoint, and nothing
    /// disestablishes one: two workers at one post never wait on each other.
    fn concurrency(command: &CheckpointCommand) -> crate::Concurrency {
        match command {
            CheckpointCommand::RecordCrossing(_) => crate::Concurrency::Independent,
            CheckpointCommand::Establish { .. } => crate::Concurrency::Ordered,
        }
    }

    fn handle(
        &self,
        command: &CheckpointCommand,
        ctx: &Context,
    ) -> Result<Vec<CheckpointEvent>, DomainError> {
        ctx.check_not_future("the crossing")?;
        match command {
            CheckpointCommand::Establish {
                checkpoint_id,
                zone_id,
                village_id,
                name,
                kind,
            } => {
                if self.established.is_some() {
                    return Err(DomainError::CheckpointAlreadyEstablished);
                }
                Ok(vec![CheckpointEstablished {
                    checkpoint_id: *checkpoint_id,
                    zone_id: *zone_id,
                    village_id: *village_id,
                    name: name.clone(),
                    kind: *kind,
                }
                .into()])
            }
            CheckpointCommand::RecordCrossing(c) => {
                if self.established.is_none() {
                    return Err(DomainError::CheckpointNotEstablished);
                }
                if c.people.get() == 0 && c.subject == CrossingSubject::Person {
                    return Err(DomainError::NothingToRecord { what: "people" });
                }
                if c.subject == CrossingSubject::Vehicle && c.plate.is_none() {
                    return Err(DomainError::VehicleWithoutPlate);
                }
                if c.outcome == CrossingOutcome::Admitted {
                    // People from key epidemic areas are persuaded back or
                    // sent into quarantine, never simply let through.
                    if c.origin.as_ref().is_some_and(|o| o.risk == RiskLevel::High) {
                        return Err(DomainError::HighRiskArrivalAdmitted);
                    }
                    if let Some(t) = c.temperature.filter(|t| t.is_fever()) {
                        return Err(DomainError::FeverAdmitted {
                            temperature: t.to_string(),
                        });
                    }
                }
                Ok(vec![CrossingRecorded {
                    date: ctx.occurred_on,
                    subject: c.subject,
                    people: c.people,
                    plate: c.plate.clone(),
                    temperature: c.temperature,
                    origin: c.origin.clone(),
                    destination: c.destination.clone(),
                    outcome: c.outcome,
                }
                .into()])
            }
        }
    }

    fn apply(mut self, event: &CheckpointEvent) -> Self {
        match event {
            CheckpointEvent::CheckpointEstablished(e) => self.established = Some(e.clone()),
            CheckpointEvent::CrossingRecorded(e) => {
                self.crossings += 1;
                if e.outcome == CrossingOutcome::TurnedBack {
                    self.turned_back += 1;
                }
            }
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

    fn established() -> CheckpointEvent {
        CheckpointEstablished {
            checkpoint_id: CheckpointId::new(),
            zone_id: ZoneId::new(),
            village_id: None,
            name: name("桥头村路口"),
            kind: CheckpointKind::VillageEntrance,
        }
        .into()
    }

    fn person(outcome: CrossingOutcome, risk: RiskLevel, t: f64) -> CheckpointCommand {
        CheckpointCommand::RecordCrossing(RecordCrossing {
            subject: CrossingSubject::Person,
            people: Count::parse(1).expect("count"),
            plate: None,
            temperature: Some(temp(t)),
            origin: Some(Origin {
                region: name("武汉"),
                risk,
            }),
            destination: Some(name("桥头村")),
            outcome,
        })
    }

    #[test]
    fn a_crossing_needs_an_established_checkpoint() {
        given::<Checkpoint>(&[], ctx())
            .when(person(CrossingOutcome::TurnedBack, RiskLevel::High, 36.5))
            .then_rejects("checkpoint_not_established");
    }

    #[test]
    fn a_person_from_a_high_risk_area_is_turned_back_not_admitted() {
        given::<Checkpoint>(&[established()], ctx())
            .when(person(CrossingOutcome::Admitted, RiskLevel::High, 36.5))
            .then_rejects("high_risk_arrival_admitted");
        let state = given::<Checkpoint>(&[established()], ctx())
            .when(person(CrossingOutcome::TurnedBack, RiskLevel::High, 36.5))
            .then_types(&["CrossingRecorded"]);
        assert_eq!(state.turned_back, 1);
    }

    #[test]
    fn a_person_with_a_fever_is_not_admitted() {
        given::<Checkpoint>(&[established()], ctx())
            .when(person(CrossingOutcome::Admitted, RiskLevel::Low, 37.5))
            .then_rejects("fever_admitted");
        given::<Checkpoint>(&[established()], ctx())
            .when(person(
                CrossingOutcome::ReferredToQuarantine,
                RiskLevel::Low,
                37.5,
            ))
            .then_types(&["CrossingRecorded"]);
    }

    #[test]
    fn a_vehicle_needs_its_plate() {
        let vehicle = |plate: Option<Name>| {
            CheckpointCommand::RecordCrossing(RecordCrossing {
                subject: CrossingSubject::Vehicle,
                people: Count::parse(3).expect("count"),
                plate,
                temperature: None,
                origin: None,
                destination: None,
                outcome: CrossingOutcome::Admitted,
            })
        };
        given::<Checkpoint>(&[established()], ctx())
            .when(vehicle(None))
            .then_rejects("vehicle_without_plate");
        given::<Checkpoint>(&[established()], ctx())
            .when(vehicle(Some(name("湘A12345"))))
            .then_types(&["CrossingRecorded"]);
    }

    #[test]
    fn a_checkpoint_is_established_once() {
        given::<Checkpoint>(&[established()], ctx())
            .when(CheckpointCommand::Establish {
                checkpoint_id: CheckpointId::new(),
                zone_id: ZoneId::new(),
                village_id: None,
                name: name("镇政府大门"),
                kind: CheckpointKind::CompoundGate,
            })
            .then_rejects("checkpoint_already_established");
    }

    #[test]
    fn a_person_crossing_counts_at_least_one_person() {
        given::<Checkpoint>(&[established()], ctx())
            .when(CheckpointCommand::RecordCrossing(RecordCrossing {
                subject: CrossingSubject::Person,
                people: Count::parse(0).expect("count"),
                plate: None,
                temperature: None,
                origin: None,
                destination: None,
                outcome: CrossingOutcome::Admitted,
            }))
            .then_rejects("nothing_to_record");
    }
}
