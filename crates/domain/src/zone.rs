//! Zones (片区) with their leader, villages and grids: the map the township
//! fights from (挂图作战).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::codec::event_enum;
use crate::personal::Personal;
use crate::{
    Aggregate, Context, Count, Dhis2Uid, DomainError, GridId, Name, PhoneNumber, VillageId, ZoneId,
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ZoneEstablished {
    pub zone_id: ZoneId,
    pub name: Name,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ZoneLeaderAssigned {
    pub zone_id: ZoneId,
    /// A member of the township leadership (片长).
    pub leader: Name,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(schema_with = crate::personal::shown_schema::<PhoneNumber>)
    )]
    pub phone: Option<Personal<PhoneNumber>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VillageAdded {
    pub zone_id: ZoneId,
    pub village_id: VillageId,
    pub name: Name,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GridAdded {
    pub zone_id: ZoneId,
    pub village_id: VillageId,
    pub grid_id: GridId,
    pub name: Name,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub households: Option<Count>,
}

/// The zone's organisation unit in the county's DHIS2: where the daily
/// pull files its figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Dhis2OrgUnitLinked {
    pub zone_id: ZoneId,
    pub org_unit: Dhis2Uid,
}

event_enum! {
    /// What happens to a zone.
    pub enum ZoneEvent {
        ZoneEstablished: 1,
        ZoneLeaderAssigned: 1,
        VillageAdded: 1,
        GridAdded: 1,
        Dhis2OrgUnitLinked: 1,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ZoneCommand {
    Establish {
        zone_id: ZoneId,
        name: Name,
    },
    AssignLeader {
        leader: Name,
        phone: Option<PhoneNumber>,
    },
    AddVillage {
        village_id: VillageId,
        name: Name,
    },
    AddGrid {
        village_id: VillageId,
        grid_id: GridId,
        name: Name,
        households: Option<Count>,
    },
    LinkDhis2OrgUnit {
        org_unit: Dhis2Uid,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Village {
    pub name: Name,
    pub grids: BTreeMap<GridId, Grid>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grid {
    pub name: Name,
    pub households: Option<Count>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Zone {
    pub id: Option<ZoneId>,
    pub name: Option<Name>,
    pub leader: Option<(Name, Option<Personal<PhoneNumber>>)>,
    pub villages: BTreeMap<VillageId, Village>,
    #[serde(default)]
    pub dhis2_org_unit: Option<Dhis2Uid>,
}

impl Zone {
    pub fn is_established(&self) -> bool {
        self.id.is_some()
    }

    /// Whether the grid lies in this village of this zone.
    pub fn has_grid(&self, village: VillageId, grid: GridId) -> bool {
        self.villages
            .get(&village)
            .is_some_and(|v| v.grids.contains_key(&grid))
    }
}

impl Aggregate for Zone {
    type Command = ZoneCommand;
    type Event = ZoneEvent;
    const CATEGORY: &'static str = "zone";

    fn zone(&self) -> Option<crate::ZoneId> {
        self.id
    }

    fn handle(&self, command: &ZoneCommand, _: &Context) -> Result<Vec<ZoneEvent>, DomainError> {
        let established = |zone: &Zone| zone.id.ok_or(DomainError::ZoneNotEstablished);
        match command {
            ZoneCommand::Establish { zone_id, name } => {
                if self.is_established() {
                    return Err(DomainError::ZoneAlreadyEstablished);
                }
                Ok(vec![ZoneEstablished {
                    zone_id: *zone_id,
                    name: name.clone(),
                }
                .into()])
            }
            ZoneCommand::AssignLeader { leader, phone } => {
                let zone_id = established(self)?;
                let phone = phone.clone().map(Personal::Clear);
                if self.leader.as_ref() == Some(&(leader.clone(), phone.clone())) {
                    // Assigning the same leader again changes nothing.
                    return Ok(vec![]);
                }
                Ok(vec![ZoneLeaderAssigned {
                    zone_id,
                    leader: leader.clone(),
                    phone,
                }
                .into()])
            }
            ZoneCommand::AddVillage { village_id, name } => {
                let zone_id = established(self)?;
                if self.villages.contains_key(village_id) {
                    return Err(DomainError::VillageAlreadyAdded);
                }
                if self.villages.values().any(|v| &v.name == name) {
                    return Err(DomainError::VillageNameTaken {
                        name: name.to_string(),
                    });
                }
                Ok(vec![VillageAdded {
                    zone_id,
                    village_id: *village_id,
                    name: name.clone(),
                }
                .into()])
            }
            ZoneCommand::LinkDhis2OrgUnit { org_unit } => {
                let zone_id = established(self)?;
                if self.dhis2_org_unit.as_ref() == Some(org_unit) {
                    return Ok(vec![]);
                }
                Ok(vec![Dhis2OrgUnitLinked {
                    zone_id,
                    org_unit: org_unit.clone(),
                }
                .into()])
            }
            ZoneCommand::AddGrid {
                village_id,
                grid_id,
                name,
                households,
            } => {
                let zone_id = established(self)?;
                let village = self
                    .villages
                    .get(village_id)
                    .ok_or(DomainError::VillageNotInZone)?;
                if self
                    .villages
                    .values()
                    .any(|v| v.grids.contains_key(grid_id))
                {
                    return Err(DomainError::GridAlreadyAdded);
                }
                if village.grids.values().any(|g| &g.name == name) {
                    return Err(DomainError::GridNameTaken {
                        name: name.to_string(),
                    });
                }
                Ok(vec![GridAdded {
                    zone_id,
                    village_id: *village_id,
                    grid_id: *grid_id,
                    name: name.clone(),
                    households: *households,
                }
                .into()])
            }
        }
    }

    fn apply(mut self, event: &ZoneEvent) -> Self {
        match event {
            ZoneEvent::ZoneEstablished(e) => {
                self.id = Some(e.zone_id);
                self.name = Some(e.name.clone());
            }
            ZoneEvent::ZoneLeaderAssigned(e) => {
                self.leader = Some((e.leader.clone(), e.phone.clone()));
            }
            ZoneEvent::VillageAdded(e) => {
                self.villages.insert(
                    e.village_id,
                    Village {
                        name: e.name.clone(),
                        grids: BTreeMap::new(),
                    },
                );
            }
            ZoneEvent::Dhis2OrgUnitLinked(e) => {
                self.dhis2_org_unit = Some(e.org_unit.clone());
            }
            ZoneEvent::GridAdded(e) => {
                if let Some(village) = self.villages.get_mut(&e.village_id) {
                    village.grids.insert(
                        e.grid_id,
                        Grid {
                            name: e.name.clone(),
                            households: e.households,
                        },
                    );
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

    fn established(zone_id: ZoneId) -> ZoneEvent {
        ZoneEstablished {
            zone_id,
            name: name("一片区"),
        }
        .into()
    }

    #[test]
    fn a_zone_is_established_once() {
        let zone_id = ZoneId::new();
        given::<Zone>(&[], ctx())
            .when(ZoneCommand::Establish {
                zone_id,
                name: name("一片区"),
            })
            .then(&[established(zone_id)]);
        given::<Zone>(&[established(zone_id)], ctx())
            .when(ZoneCommand::Establish {
                zone_id,
                name: name("一片区"),
            })
            .then_rejects("zone_already_established");
    }

    #[test]
    fn a_leader_needs_an_established_zone_and_reassigning_the_same_is_a_no_op() {
        let leader = ZoneCommand::AssignLeader {
            leader: name("李镇长"),
            phone: None,
        };
        given::<Zone>(&[], ctx())
            .when(leader.clone())
            .then_rejects("zone_not_established");
        let zone_id = ZoneId::new();
        let assigned: ZoneEvent = ZoneLeaderAssigned {
            zone_id,
            leader: name("李镇长"),
            phone: None,
        }
        .into();
        given::<Zone>(&[established(zone_id)], ctx())
            .when(leader.clone())
            .then(std::slice::from_ref(&assigned));
        given::<Zone>(&[established(zone_id), assigned], ctx())
            .when(leader)
            .then(&[]);
    }

    #[test]
    fn village_names_are_unique_in_a_zone_and_grids_need_their_village() {
        let zone_id = ZoneId::new();
        let village_id = VillageId::new();
        let history: Vec<ZoneEvent> = vec![
            established(zone_id),
            VillageAdded {
                zone_id,
                village_id,
                name: name("桥头村"),
            }
            .into(),
        ];
        given::<Zone>(&history, ctx())
            .when(ZoneCommand::AddVillage {
                village_id: VillageId::new(),
                name: name("桥头村"),
            })
            .then_rejects("village_name_taken");
        given::<Zone>(&history, ctx())
            .when(ZoneCommand::AddGrid {
                village_id: VillageId::new(),
                grid_id: GridId::new(),
                name: name("一组"),
                households: None,
            })
            .then_rejects("village_not_in_zone");
        let grid_id = GridId::new();
        let zone = given::<Zone>(&history, ctx())
            .when(ZoneCommand::AddGrid {
                village_id,
                grid_id,
                name: name("一组"),
                households: Some(Count::parse(42).expect("count")),
            })
            .then_types(&["GridAdded"]);
        assert!(zone.has_grid(village_id, grid_id));
        assert!(!zone.has_grid(village_id, GridId::new()));
    }

    #[test]
    fn village_and_grid_ids_are_used_once_and_grid_names_are_unique_in_a_village() {
        let zone_id = ZoneId::new();
        let village_id = VillageId::new();
        let grid_id = GridId::new();
        let history: Vec<ZoneEvent> = vec![
            established(zone_id),
            VillageAdded {
                zone_id,
                village_id,
                name: name("桥头村"),
            }
            .into(),
            GridAdded {
                zone_id,
                village_id,
                grid_id,
                name: name("一组"),
                households: None,
            }
            .into(),
        ];
        given::<Zone>(&history, ctx())
            .when(ZoneCommand::AddVillage {
                village_id,
                name: name("河口村"),
            })
            .then_rejects("village_already_added");
        given::<Zone>(&history, ctx())
            .when(ZoneCommand::AddGrid {
                village_id,
                grid_id,
                name: name("二组"),
                households: None,
            })
            .then_rejects("grid_already_added");
        given::<Zone>(&history, ctx())
            .when(ZoneCommand::AddGrid {
                village_id,
                grid_id: GridId::new(),
                name: name("一组"),
                households: None,
            })
            .then_rejects("grid_name_taken");
    }
}
