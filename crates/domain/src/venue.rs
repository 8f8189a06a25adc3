//! Premises: shops, hotels and enterprises sign commitment letters (承诺书);
//! mahjong parlours and card rooms are closed with a posted notice, and those
//! that refuse are dismantled, their tables confiscated, people detained or
//! admonished.

use serde::{Deserialize, Serialize};

use crate::codec::event_enum;
use crate::{
    Aggregate, Context, Count, DomainError, LocalDate, Name, VenueId, VenueKind, VillageId, ZoneId,
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VenueRegistered {
    pub venue_id: VenueId,
    pub zone_id: ZoneId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub village_id: Option<VillageId>,
    pub kind: VenueKind,
    pub name: Name,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CommitmentSigned {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub date: LocalDate,
    pub signed_by: Name,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VenueClosed {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub date: LocalDate,
    /// A closure notice (停业通告) was posted at the door.
    pub notice_posted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VenueReopened {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub date: LocalDate,
}

/// One enforcement measure against a gaming venue that defied closure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum EnforcementAction {
    /// The venue was dismantled (捣毁): closed for good.
    Dismantled,
    TablesConfiscated {
        tables: Count,
    },
    Detained {
        people: Count,
    },
    OwnersAdmonished {
        people: Count,
    },
    PlayersAdmonished {
        people: Count,
    },
}

impl EnforcementAction {
    fn count(self) -> Option<(&'static str, Count)> {
        match self {
            EnforcementAction::Dismantled => None,
            EnforcementAction::TablesConfiscated { tables } => Some(("tables", tables)),
            EnforcementAction::Detained { people }
            | EnforcementAction::OwnersAdmonished { people }
            | EnforcementAction::PlayersAdmonished { people } => Some(("people", people)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnforcementActionRecorded {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub date: LocalDate,
    #[serde(flatten)]
    pub action: EnforcementAction,
}

event_enum! {
    /// What happens to a venue.
    pub enum VenueEvent {
        VenueRegistered: 1,
        CommitmentSigned: 1,
        VenueClosed: 1,
        VenueReopened: 1,
        EnforcementActionRecorded: 1,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum VenueCommand {
    Register {
        venue_id: VenueId,
        zone_id: ZoneId,
        village_id: Option<VillageId>,
        kind: VenueKind,
        name: Name,
    },
    SignCommitment {
        signed_by: Name,
    },
    Close {
        notice_posted: bool,
    },
    Reopen,
    RecordEnforcement(EnforcementAction),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VenueStatus {
    #[default]
    Open,
    Closed,
    Dismantled,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Venue {
    pub registration: Option<VenueRegistered>,
    pub status: VenueStatus,
    pub closed_since: Option<LocalDate>,
    pub commitment_signed_on: Option<LocalDate>,
    pub enforcement_actions: u32,
}

impl Aggregate for Venue {
    type Command = VenueCommand;
    type Event = VenueEvent;
    const CATEGORY: &'static str = "venue";

    fn zone(&self) -> Option<crate::ZoneId> {
        self.registration.as_ref().map(|r| r.zone_id)
    }

    fn handle(
        &self,
        command: &VenueCommand,
        ctx: &Context,
    ) -> Result<Vec<VenueEvent>, DomainError> {
        ctx.check_not_future("the record")?;
        let date = ctx.occurred_on;
        if let VenueCommand::Register {
            venue_id,
            zone_id,
            village_id,
            kind,
            name,
        } = command
        {
            if self.registration.is_some() {
                return Err(DomainError::VenueAlreadyRegistered);
            }
            return Ok(vec![VenueRegistered {
                venue_id: *venue_id,
                zone_id: *zone_id,
                village_id: *village_id,
                kind: *kind,
                name: name.clone(),
            }
            .into()]);
        }
        let venue = self
            .registration
            .as_ref()
            .ok_or(DomainError::VenueNotRegistered)?;
        match command {
            VenueCommand::Register { .. } => Err(DomainError::VenueAlreadyRegistered),
            VenueCommand::SignCommitment { signed_by } => {
                if let Some(on) = self.commitment_signed_on {
                    return Err(DomainError::CommitmentAlreadySigned { on });
                }
                Ok(vec![CommitmentSigned {
                    date,
                    signed_by: signed_by.clone(),
                }
                .into()])
            }
            VenueCommand::Close { notice_posted } => match self.status {
                VenueStatus::Open => Ok(vec![VenueClosed {
                    date,
                    notice_posted: *notice_posted,
                }
                .into()]),
                VenueStatus::Closed | VenueStatus::Dismantled => {
                    Err(DomainError::VenueAlreadyClosed {
                        since: self.closed_since.unwrap_or(date),
                    })
                }
            },
            VenueCommand::Reopen => match self.status {
                VenueStatus::Closed => Ok(vec![VenueReopened { date }.into()]),
                VenueStatus::Open => Err(DomainError::VenueNotClosed),
                VenueStatus::Dismantled => Err(DomainError::VenueDismantled),
            },
            VenueCommand::RecordEnforcement(action) => {
                if !venue.kind.is_gaming() {
                    return Err(DomainError::EnforcementOnlyForGamingVenues {
                        kind: venue.kind.code(),
                    });
                }
                if let Some((what, n)) = action.count() {
                    if n.get() == 0 {
                        return Err(DomainError::NothingToRecord { what });
                    }
                }
                if *action == EnforcementAction::Dismantled
                    && self.status == VenueStatus::Dismantled
                {
                    return Err(DomainError::VenueAlreadyClosed {
                        since: self.closed_since.unwrap_or(date),
                    });
                }
                Ok(vec![EnforcementActionRecorded {
                    date,
                    action: *action,
                }
                .into()])
            }
        }
    }

    fn apply(mut self, event: &VenueEvent) -> Self {
        match event {
            VenueEvent::VenueRegistered(e) => self.registration = Some(e.clone()),
            VenueEvent::CommitmentSigned(e) => self.commitment_signed_on = Some(e.date),
            VenueEvent::VenueClosed(e) => {
                self.status = VenueStatus::Closed;
                self.closed_since = Some(e.date);
            }
            VenueEvent::VenueReopened(_) => {
                self.status = VenueStatus::Open;
                self.closed_since = None;
            }
            VenueEvent::EnforcementActionRecorded(e) => {
                self.enforcement_actions += 1;
                if e.action == EnforcementAction::Dismantled {
                    self.status = VenueStatus::Dismantled;
                    self.closed_since.get_or_insert(e.date);
                }
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{day, given, name};

    fn ctx() -> Context {
        Context::on(day("2020-02-01"))
    }

    fn registered(kind: VenueKind) -> VenueEvent {
        VenueRegistered {
            venue_id: VenueId::new(),
            zone_id: ZoneId::new(),
            village_id: None,
            kind,
            name: name("老王麻将馆"),
        }
        .into()
    }

    fn closed() -> VenueEvent {
        VenueClosed {
            date: day("2020-01-28"),
            notice_posted: true,
        }
        .into()
    }

    #[test]
    fn a_closed_venue_cannot_close_again() {
        let parlour = registered(VenueKind::MahjongParlour);
        given::<Venue>(std::slice::from_ref(&parlour), ctx())
            .when(VenueCommand::Close {
                notice_posted: true,
            })
            .then(&[VenueClosed {
                date: day("2020-02-01"),
                notice_posted: true,
            }
            .into()]);
        given::<Venue>(&[parlour, closed()], ctx())
            .when(VenueCommand::Close {
                notice_posted: true,
            })
            .then_rejects("venue_already_closed");
    }

    #[test]
    fn a_reopened_venue_must_have_been_closed() {
        let parlour = registered(VenueKind::MahjongParlour);
        given::<Venue>(std::slice::from_ref(&parlour), ctx())
            .when(VenueCommand::Reopen)
            .then_rejects("venue_not_closed");
        let state = given::<Venue>(&[parlour, closed()], ctx())
            .when(VenueCommand::Reopen)
            .then_types(&["VenueReopened"]);
        assert_eq!(state.status, VenueStatus::Open);
    }

    #[test]
    fn a_dismantled_venue_cannot_reopen() {
        let history = vec![
            registered(VenueKind::CardRoom),
            EnforcementActionRecorded {
                date: day("2020-01-30"),
                action: EnforcementAction::Dismantled,
            }
            .into(),
        ];
        given::<Venue>(&history, ctx())
            .when(VenueCommand::Reopen)
            .then_rejects("venue_dismantled");
        given::<Venue>(&history, ctx())
            .when(VenueCommand::Close {
                notice_posted: true,
            })
            .then_rejects("venue_already_closed");
    }

    #[test]
    fn enforcement_applies_to_gaming_venues_and_counts_something() {
        given::<Venue>(&[registered(VenueKind::Hotel)], ctx())
            .when(VenueCommand::RecordEnforcement(
                EnforcementAction::Dismantled,
            ))
            .then_rejects("enforcement_only_for_gaming_venues");
        given::<Venue>(&[registered(VenueKind::MahjongParlour)], ctx())
            .when(VenueCommand::RecordEnforcement(
                EnforcementAction::TablesConfiscated {
                    tables: Count::parse(0).expect("count"),
                },
            ))
            .then_rejects("nothing_to_record");
        given::<Venue>(&[registered(VenueKind::MahjongParlour)], ctx())
            .when(VenueCommand::RecordEnforcement(
                EnforcementAction::PlayersAdmonished {
                    people: Count::parse(6).expect("count"),
                },
            ))
            .then(&[EnforcementActionRecorded {
                date: day("2020-02-01"),
                action: EnforcementAction::PlayersAdmonished {
                    people: Count::parse(6).expect("count"),
                },
            }
            .into()]);
    }

    #[test]
    fn a_commitment_letter_is_signed_once() {
        let hotel = registered(VenueKind::Hotel);
        let signed: VenueEvent = CommitmentSigned {
            date: day("2020-01-29"),
            signed_by: name("店主"),
        }
        .into();
        given::<Venue>(std::slice::from_ref(&hotel), ctx())
            .when(VenueCommand::SignCommitment {
                signed_by: name("店主"),
            })
            .then_types(&["CommitmentSigned"]);
        given::<Venue>(&[hotel, signed], ctx())
            .when(VenueCommand::SignCommitment {
                signed_by: name("店主"),
            })
            .then_rejects("commitment_already_signed");
    }

    #[test]
    fn commands_on_an_unregistered_venue_are_refused() {
        given::<Venue>(&[], ctx())
            .when(VenueCommand::Reopen)
            .then_rejects("venue_not_registered");
    }

    fn venue_command() -> impl proptest::strategy::Strategy<Value = VenueCommand> {
        use proptest::prelude::*;
        let count = (0i64..5).prop_map(|n| Count::parse(n).expect("count"));
        prop_oneof![
            prop::sample::select(VenueKind::ALL.to_vec()).prop_map(|kind| VenueCommand::Register {
                venue_id: VenueId::from_uuid(uuid::Uuid::nil()),
                zone_id: ZoneId::from_uuid(uuid::Uuid::nil()),
                village_id: None,
                kind,
                name: name("某场所"),
            }),
            Just(VenueCommand::SignCommitment {
                signed_by: name("店主")
            }),
            any::<bool>().prop_map(|notice_posted| VenueCommand::Close { notice_posted }),
            Just(VenueCommand::Reopen),
            Just(VenueCommand::RecordEnforcement(
                EnforcementAction::Dismantled
            )),
            count
                .clone()
                .prop_map(|tables| VenueCommand::RecordEnforcement(
                    EnforcementAction::TablesConfiscated { tables }
                )),
            count.prop_map(|people| VenueCommand::RecordEnforcement(
                EnforcementAction::OwnersAdmonished { people }
            )),
        ]
    }

    proptest::proptest! {
        #[test]
        fn any_venue_history_rebuilds_from_the_log_as_decided(
            commands in proptest::collection::vec((venue_command(), 0u64..20), 0..30)
        ) {
            let commands: Vec<_> = commands
                .into_iter()
                .map(|(c, d)| (c, Context::on(day("2020-01-20") + chrono::Days::new(d))))
                .collect();
            crate::testing::assert_stored_history_rebuilds_the_state::<Venue>(&commands)?;
        }
    }
}
