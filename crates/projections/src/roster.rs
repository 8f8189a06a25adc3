//! The quarantine roster: who is in home quarantine, where, since when, and
//! how their daily visits stand.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::NaiveDate;
use fangkong_domain::personal::Personal;
use fangkong_domain::returnee::PersonalData;
use fangkong_domain::returnee::ReturneeEvent;
use fangkong_domain::schedule::Schedule;
use fangkong_domain::{RiskLevel, Temperature};
use fangkong_store::RecordedEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where a returnee lives, from the registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    pub zone_id: Uuid,
    pub village_id: Uuid,
    pub grid_id: Uuid,
    pub risk: RiskLevel,
    /// The person's data as the log holds it (sealed): the roster opens it
    /// when it answers, so saved state never holds a name.
    pub personal: Personal<PersonalData>,
    /// Days a temperature was taken at a screening.
    #[serde(default)]
    pub screened_days: BTreeSet<NaiveDate>,
}

/// One person under home quarantine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterEntry {
    pub returnee_id: Uuid,
    pub placement: Placement,
    pub started_on: NaiveDate,
    pub schedule: Schedule,
    pub visits: BTreeSet<NaiveDate>,
    pub last_temperature: Option<Temperature>,
    /// An abnormal finding awaits referral.
    pub abnormal_pending: bool,
}

/// Names are kept here (and in the saved state) for the zone worker's
/// roster; when a person's data is erased from the log, a rebuild
/// (`fangkong rebuild`) drops them here too.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineRoster {
    placements: HashMap<Uuid, Placement>,
    active: BTreeMap<Uuid, RosterEntry>,
}

impl QuarantineRoster {
    /// Everyone in quarantine now, in the order of their ids (registration order).
    pub fn entries(&self) -> impl Iterator<Item = &RosterEntry> {
        self.active.values()
    }

    /// Applies the next event of the log; events of other streams, and
    /// events it cannot decode, change nothing.
    pub fn apply(&mut self, event: &RecordedEvent) {
        if let Some((id, decoded)) = crate::board::decode_returnee(event) {
            self.apply_returnee(id, &decoded);
        }
    }

    /// Applies a returnee stream's event, already decoded.
    pub fn apply_returnee(&mut self, id: Uuid, decoded: &ReturneeEvent) {
        match decoded {
            ReturneeEvent::ReturneeRegistered(e) => {
                self.placements.insert(
                    id,
                    Placement {
                        zone_id: e.zone_id.as_uuid(),
                        village_id: e.village_id.as_uuid(),
                        grid_id: e.grid_id.as_uuid(),
                        risk: e.origin.risk,
                        personal: e.personal.clone(),
                        screened_days: BTreeSet::new(),
                    },
                );
            }
            ReturneeEvent::QuarantineStarted(e) => {
                if let Some(placement) = self.placements.get(&id) {
                    self.active.insert(
                        id,
                        RosterEntry {
                            returnee_id: id,
                            placement: placement.clone(),
                            started_on: e.start_date,
                            schedule: Schedule {
                                count_start: e.start_date,
                                planned_days: e.planned_days,
                            },
                            // A screening's temperature on a day of the
                            // quarantine is that day's visit.
                            visits: placement
                                .screened_days
                                .range(e.start_date..)
                                .copied()
                                .collect(),
                            last_temperature: None,
                            abnormal_pending: false,
                        },
                    );
                }
            }
            ReturneeEvent::HealthCheckRecorded(e) => {
                if let Some(entry) = self.active.get_mut(&id) {
                    entry.visits.insert(e.date);
                    entry.last_temperature = Some(e.temperature);
                }
            }
            ReturneeEvent::QuarantinePeriodChanged(e) => {
                if let Some(entry) = self.active.get_mut(&id) {
                    entry.schedule.planned_days = e.planned_days;
                }
            }
            ReturneeEvent::ExposureRecorded(e) => {
                if let Some(entry) = self.active.get_mut(&id) {
                    entry.schedule.count_start = e.date;
                }
            }
            ReturneeEvent::AbnormalConditionReported(_) => {
                if let Some(entry) = self.active.get_mut(&id) {
                    entry.abnormal_pending = true;
                }
            }
            ReturneeEvent::ReferredForTreatment(_) => {
                if let Some(entry) = self.active.get_mut(&id) {
                    entry.abnormal_pending = false;
                }
            }
            ReturneeEvent::QuarantineEnded(_) => {
                self.active.remove(&id);
            }
            ReturneeEvent::ReturneeScreened(e) => {
                if let Some(placement) = self.placements.get_mut(&id) {
                    placement.screened_days.insert(e.screened_on);
                }
                if let Some(entry) = self.active.get_mut(&id) {
                    entry.visits.insert(e.screened_on);
                }
            }
            ReturneeEvent::PersonalDataErased(_) => {
                for placement in self
                    .placements
                    .get_mut(&id)
                    .into_iter()
                    .chain(self.active.get_mut(&id).map(|e| &mut e.placement))
                {
                    placement.personal = Personal::Erased;
                }
            }
            ReturneeEvent::ResponsibilityTeamAssigned(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use serde_json::json;

    fn recorded(
        stream: &str,
        kind: &str,
        version: u32,
        payload: serde_json::Value,
    ) -> RecordedEvent {
        RecordedEvent {
            position: 1,
            stream_id: stream.into(),
            stream_version: 1,
            event_id: Uuid::now_v7(),
            event_type: kind.into(),
            schema_version: version,
            payload,
            metadata: json!({}),
            recorded_at: Utc::now(),
            hash: [0; 32],
        }
    }

    #[test]
    fn the_roster_follows_a_quarantine_from_start_to_end() {
        let id = Uuid::now_v7();
        let stream = format!("returnee-{id}");
        let zone = Uuid::now_v7();
        let mut roster = QuarantineRoster::default();
        roster.apply(&recorded(&stream, "ReturneeRegistered", 1, json!({
            "returnee_id": id, "zone_id": zone, "village_id": Uuid::now_v7(), "grid_id": Uuid::now_v7(),
            "arrival_date": "2020-01-24", "origin": {"region": "武汉", "risk": "high"},
            "personal": {"name": "张三", "resident_id": "11010519491231002X", "phone": "13812345678", "address": "x"}
        })));
        assert_eq!(roster.entries().count(), 0, "registered is not quarantined");
        roster.apply(&recorded(
            &stream,
            "QuarantineStarted",
            1,
            json!({"start_date": "2020-01-25", "planned_days": 14, "planned_end": "2020-02-07"}),
        ));
        // A version 1 health check is upcast like any other reader would.
        roster.apply(&recorded(
            &stream,
            "HealthCheckRecorded",
            1,
            json!({"date": "2020-01-26", "temperature_celsius": 37.5}),
        ));
        roster.apply(&recorded(
            &stream,
            "AbnormalConditionReported",
            1,
            json!({"date": "2020-01-26", "source": "health_check"}),
        ));
        let entry = roster.entries().next().expect("in quarantine");
        assert_eq!(entry.placement.zone_id, zone);
        assert_eq!(entry.visits.len(), 1);
        assert!(entry.abnormal_pending);
        assert_eq!(entry.last_temperature.map(Temperature::celsius), Some(37.5));
        roster.apply(&recorded(
            &stream,
            "QuarantineEnded",
            1,
            json!({"date": "2020-01-27", "reason": "referred_for_treatment"}),
        ));
        assert_eq!(roster.entries().count(), 0);
    }
}
