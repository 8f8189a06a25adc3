//! Reported family banquets (宴席) and the dissuasion outcome: weddings
//! postponed or cancelled, funerals scaled down (丧事简办).

use serde::{Deserialize, Serialize};

use crate::codec::event_enum;
use crate::personal::Personal;
use crate::returnee::ErasureBasis;
use crate::{
    Aggregate, BanquetId, BanquetKind, Context, Count, DomainError, LocalDate, Name, PhoneNumber,
    Text, VillageId, ZoneId,
};

/// The host family: personal data, kept in one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BanquetHost {
    pub name: Name,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<PhoneNumber>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BanquetReported {
    pub banquet_id: BanquetId,
    pub zone_id: ZoneId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub village_id: Option<VillageId>,
    pub kind: BanquetKind,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub planned_date: LocalDate,
    pub expected_guests: Count,
    #[cfg_attr(
        feature = "openapi",
        schema(schema_with = crate::personal::shown_schema::<BanquetHost>)
    )]
    pub personal: Personal<BanquetHost>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BanquetPostponed {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub persuaded_on: LocalDate,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub new_date: LocalDate,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BanquetCancelled {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub persuaded_on: LocalDate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Text>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BanquetScaledDown {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub persuaded_on: LocalDate,
    pub guests: Count,
}

/// The host family's personal data was erased: the key their name and
/// phone were sealed under is destroyed, so no earlier report opens again,
/// while the banquet and its outcome still count. Holds no personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BanquetHostDataErased {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub date: LocalDate,
    pub basis: ErasureBasis,
    pub reason: Text,
}

event_enum! {
    /// What happens to a reported banquet.
    pub enum BanquetEvent {
        BanquetReported: 1,
        BanquetPostponed: 1,
        BanquetCancelled: 1,
        BanquetScaledDown: 1,
        BanquetHostDataErased: 1,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum BanquetCommand {
    Report {
        banquet_id: BanquetId,
        zone_id: ZoneId,
        village_id: Option<VillageId>,
        kind: BanquetKind,
        planned_date: LocalDate,
        expected_guests: Count,
        host: BanquetHost,
    },
    Postpone {
        new_date: LocalDate,
    },
    Cancel {
        reason: Option<Text>,
    },
    ScaleDown {
        guests: Count,
    },
    /// Erase the host family's personal data (a reason given).
    EraseHostData {
        basis: ErasureBasis,
        reason: Text,
    },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BanquetStatus {
    #[default]
    Planned,
    Postponed,
    Cancelled,
    ScaledDown,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Banquet {
    pub report: Option<BanquetReported>,
    pub status: BanquetStatus,
    pub planned_date: Option<LocalDate>,
    pub guests: u32,
}

impl Banquet {
    /// Whether the host family's personal data was erased.
    pub fn host_data_erased(&self) -> bool {
        self.report.as_ref().is_some_and(|r| r.personal.is_erased())
    }
}

impl Aggregate for Banquet {
    type Command = BanquetCommand;
    type Event = BanquetEvent;
    const CATEGORY: &'static str = "banquet";

    fn zone(&self) -> Option<crate::ZoneId> {
        self.report.as_ref().map(|r| r.zone_id)
    }

    fn handle(
        &self,
        command: &BanquetCommand,
        ctx: &Context,
    ) -> Result<Vec<BanquetEvent>, DomainError> {
        ctx.check_not_future("the persuasion")?;
        let persuaded_on = ctx.occurred_on;
        if let BanquetCommand::Report {
            banquet_id,
            zone_id,
            village_id,
            kind,
            planned_date,
            expected_guests,
            host,
        } = command
        {
            if self.report.is_some() {
                return Err(DomainError::BanquetAlreadyReported);
            }
            return Ok(vec![BanquetReported {
                banquet_id: *banquet_id,
                zone_id: *zone_id,
                village_id: *village_id,
                kind: *kind,
                planned_date: *planned_date,
                expected_guests: *expected_guests,
                personal: Personal::Clear(host.clone()),
            }
            .into()]);
        }
        if self.report.is_none() {
            return Err(DomainError::BanquetNotReported);
        }
        let cancelled = |then| {
            (self.status == BanquetStatus::Cancelled)
                .then_some(Err(DomainError::BanquetCancelled { then }))
        };
        match command {
            BanquetCommand::Report { .. } => Err(DomainError::BanquetAlreadyReported),
            // Allowed whatever the outcome: a cancelled banquet's host is a
            // data subject like any other. Erasing twice erases nothing more.
            BanquetCommand::EraseHostData { basis, reason } => {
                if self.host_data_erased() {
                    return Ok(vec![]);
                }
                Ok(vec![BanquetHostDataErased {
                    date: ctx.today,
                    basis: *basis,
                    reason: reason.clone(),
                }
                .into()])
            }
            BanquetCommand::Postpone { new_date } => {
                if let Some(refused) = cancelled("postponed") {
                    return refused;
                }
                let current = self.planned_date.unwrap_or(*new_date);
                if *new_date <= current {
                    return Err(DomainError::PostponementNotLater {
                        current,
                        requested: *new_date,
                    });
                }
                Ok(vec![BanquetPostponed {
                    persuaded_on,
                    new_date: *new_date,
                }
                .into()])
            }
            BanquetCommand::Cancel { reason } => {
                if let Some(refused) = cancelled("cancelled again") {
                    return refused;
                }
                Ok(vec![BanquetCancelled {
                    persuaded_on,
                    reason: reason.clone(),
                }
                .into()])
            }
            BanquetCommand::ScaleDown { guests } => {
                if let Some(refused) = cancelled("scaled down") {
                    return refused;
                }
                if guests.get() >= self.guests {
                    return Err(DomainError::ScaleDownNotSmaller {
                        current: self.guests,
                        requested: guests.get(),
                    });
                }
                Ok(vec![BanquetScaledDown {
                    persuaded_on,
                    guests: *guests,
                }
                .into()])
            }
        }
    }

    fn apply(mut self, event: &BanquetEvent) -> Self {
        match event {
            BanquetEvent::BanquetReported(e) => {
                self.planned_date = Some(e.planned_date);
                self.guests = e.expected_guests.get();
                self.report = Some(e.clone());
            }
            BanquetEvent::BanquetPostponed(e) => {
                self.planned_date = Some(e.new_date);
                self.status = BanquetStatus::Postponed;
            }
            BanquetEvent::BanquetCancelled(_) => self.status = BanquetStatus::Cancelled,
            BanquetEvent::BanquetScaledDown(e) => {
                self.guests = e.guests.get();
                self.status = BanquetStatus::ScaledDown;
            }
            BanquetEvent::BanquetHostDataErased(_) => {
                if let Some(report) = &mut self.report {
                    report.personal = Personal::Erased;
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
        Context::on(day("2020-01-28"))
    }

    fn wedding() -> BanquetEvent {
        BanquetReported {
            banquet_id: BanquetId::new(),
            zone_id: ZoneId::new(),
            village_id: None,
            kind: BanquetKind::Wedding,
            planned_date: day("2020-02-02"),
            expected_guests: Count::parse(200).expect("count"),
            personal: Personal::Clear(BanquetHost {
                name: name("刘家"),
                phone: None,
            }),
        }
        .into()
    }

    fn cancelled() -> BanquetEvent {
        BanquetCancelled {
            persuaded_on: day("2020-01-27"),
            reason: None,
        }
        .into()
    }

    #[test]
    fn a_postponement_moves_the_date_later() {
        given::<Banquet>(&[wedding()], ctx())
            .when(BanquetCommand::Postpone {
                new_date: day("2020-02-01"),
            })
            .then_rejects("postponement_not_later");
        given::<Banquet>(&[wedding()], ctx())
            .when(BanquetCommand::Postpone {
                new_date: day("2020-02-02"),
            })
            .then_rejects("postponement_not_later");
        let state = given::<Banquet>(&[wedding()], ctx())
            .when(BanquetCommand::Postpone {
                new_date: day("2020-05-01"),
            })
            .then(&[BanquetPostponed {
                persuaded_on: day("2020-01-28"),
                new_date: day("2020-05-01"),
            }
            .into()]);
        assert_eq!(state.planned_date, Some(day("2020-05-01")));
    }

    #[test]
    fn a_cancelled_banquet_cannot_be_postponed_cancelled_or_scaled_down() {
        let history = [wedding(), cancelled()];
        given::<Banquet>(&history, ctx())
            .when(BanquetCommand::Postpone {
                new_date: day("2020-05-01"),
            })
            .then_rejects("banquet_cancelled");
        given::<Banquet>(&history, ctx())
            .when(BanquetCommand::Cancel { reason: None })
            .then_rejects("banquet_cancelled");
        given::<Banquet>(&history, ctx())
            .when(BanquetCommand::ScaleDown {
                guests: Count::parse(10).expect("count"),
            })
            .then_rejects("banquet_cancelled");
    }

    #[test]
    fn scaling_down_reduces_the_guests() {
        given::<Banquet>(&[wedding()], ctx())
            .when(BanquetCommand::ScaleDown {
                guests: Count::parse(200).expect("count"),
            })
            .then_rejects("scale_down_not_smaller");
        let state = given::<Banquet>(&[wedding()], ctx())
            .when(BanquetCommand::ScaleDown {
                guests: Count::parse(20).expect("count"),
            })
            .then_types(&["BanquetScaledDown"]);
        assert_eq!(state.guests, 20);
    }

    #[test]
    fn a_banquet_must_be_reported_first_and_only_once() {
        given::<Banquet>(&[], ctx())
            .when(BanquetCommand::Cancel { reason: None })
            .then_rejects("banquet_not_reported");
        let BanquetEvent::BanquetReported(r) = wedding() else {
            unreachable!("wedding() is a report")
        };
        given::<Banquet>(&[wedding()], ctx())
            .when(BanquetCommand::Report {
                banquet_id: r.banquet_id,
                zone_id: r.zone_id,
                village_id: None,
                kind: r.kind,
                planned_date: r.planned_date,
                expected_guests: r.expected_guests,
                host: r.personal.clear().cloned().expect("reported in the clear"),
            })
            .then_rejects("banquet_already_reported");
    }

    fn erase() -> BanquetCommand {
        BanquetCommand::EraseHostData {
            basis: ErasureBasis::Request,
            reason: Text::parse("本人申请").expect("text"),
        }
    }

    #[test]
    fn erasing_a_host_marks_their_data_erased_once_and_keeps_the_banquet() {
        given::<Banquet>(&[], ctx())
            .when(erase())
            .then_rejects("banquet_not_reported");
        let state = given::<Banquet>(&[wedding(), cancelled()], ctx())
            .when(erase())
            .then_types(&["BanquetHostDataErased"]);
        assert!(state.host_data_erased());
        assert_eq!(state.status, BanquetStatus::Cancelled);
        assert_eq!(state.guests, 200);
        let erased = BanquetEvent::from(BanquetHostDataErased {
            date: day("2020-01-28"),
            basis: ErasureBasis::Retention,
            reason: Text::parse("retention").expect("text"),
        });
        given::<Banquet>(&[wedding(), erased], ctx())
            .when(erase())
            .then(&[]);
    }

    fn banquet_command() -> impl proptest::strategy::Strategy<Value = BanquetCommand> {
        use proptest::prelude::*;
        prop_oneof![
            (0u64..30, 1i64..300).prop_map(|(d, guests)| BanquetCommand::Report {
                banquet_id: BanquetId::from_uuid(uuid::Uuid::nil()),
                zone_id: ZoneId::from_uuid(uuid::Uuid::nil()),
                village_id: None,
                kind: BanquetKind::Wedding,
                planned_date: day("2020-01-20") + chrono::Days::new(d),
                expected_guests: Count::parse(guests).expect("count"),
                host: BanquetHost {
                    name: name("某家"),
                    phone: None
                },
            }),
            (0u64..60).prop_map(|d| BanquetCommand::Postpone {
                new_date: day("2020-01-20") + chrono::Days::new(d)
            }),
            Just(BanquetCommand::Cancel { reason: None }),
            (0i64..300).prop_map(|g| BanquetCommand::ScaleDown {
                guests: Count::parse(g).expect("count")
            }),
            Just(erase()),
        ]
    }

    proptest::proptest! {
        #[test]
        fn any_banquet_history_rebuilds_from_the_log_as_decided(
            commands in proptest::collection::vec(banquet_command(), 0..20)
        ) {
            let commands: Vec<_> = commands.into_iter().map(|c| (c, ctx())).collect();
            crate::testing::assert_stored_history_rebuilds_the_state::<Banquet>(&commands)?;
        }
    }
}
