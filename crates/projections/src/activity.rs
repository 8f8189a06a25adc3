//! Events recorded per zone and township-local day: the "did anything
//! happen" that a zero report (零报告) attests against.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use fangkong_domain::Township;
use fangkong_store::RecordedEvent;
use uuid::Uuid;

/// Events that set up the map or report on it, rather than record work in
/// the field.
const NOT_FIELD_WORK: &[&str] = &[
    "ZoneEstablished",
    "ZoneLeaderAssigned",
    "VillageAdded",
    "GridAdded",
    "CheckpointEstablished",
    "DailyReportSubmitted",
];

/// Creation events that name the zone their whole stream belongs to.
const ZONE_OWNERS: &[&str] = &[
    "ReturneeRegistered",
    "VenueRegistered",
    "BanquetReported",
    "CheckpointEstablished",
];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZoneDayActivity {
    zone_of_stream: HashMap<String, Uuid>,
    counts: HashMap<(Uuid, NaiveDate), u64>,
    position: u64,
}

impl ZoneDayActivity {
    /// The last position applied.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Field events the zone recorded for `date`.
    pub fn count(&self, zone: Uuid, date: NaiveDate) -> u64 {
        self.counts.get(&(zone, date)).copied().unwrap_or(0)
    }

    /// Applies the next event of the log. Pure and total: an event it cannot
    /// place in a zone or a day is skipped, never an error.
    pub fn apply(&mut self, event: &RecordedEvent, township: &Township) {
        self.position = self.position.max(event.position);
        let zone_in_payload = || {
            event
                .payload
                .get("zone_id")
                .and_then(|z| z.as_str())
                .and_then(|z| z.parse::<Uuid>().ok())
        };
        if ZONE_OWNERS.contains(&event.event_type.as_str()) {
            if let Some(zone) = zone_in_payload() {
                self.zone_of_stream.insert(event.stream_id.clone(), zone);
            }
        }
        if NOT_FIELD_WORK.contains(&event.event_type.as_str()) {
            return;
        }
        let zone = self
            .zone_of_stream
            .get(&event.stream_id)
            .copied()
            .or_else(zone_in_payload);
        let Some(zone) = zone else {
            return;
        };
        let occurred_at = event
            .metadata
            .get("occurred_at")
            .and_then(|t| t.as_str())
            .and_then(|t| t.parse::<DateTime<Utc>>().ok())
            .unwrap_or(event.recorded_at);
        *self
            .counts
            .entry((zone, township.local_date(occurred_at)))
            .or_default() += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn recorded(
        position: u64,
        stream: &str,
        kind: &str,
        payload: serde_json::Value,
        at: &str,
    ) -> RecordedEvent {
        RecordedEvent {
            position,
            stream_id: stream.into(),
            stream_version: 1,
            event_id: Uuid::now_v7(),
            event_type: kind.into(),
            schema_version: 1,
            payload,
            metadata: json!({"occurred_at": at}),
            recorded_at: Utc::now(),
            hash: [0; 32],
        }
    }

    #[test]
    fn field_work_counts_for_its_zone_and_local_day() {
        let zone = Uuid::now_v7();
        let township = Township::default();
        let mut model = ZoneDayActivity::default();
        model.apply(
            &recorded(
                1,
                &format!("zone-{zone}"),
                "ZoneEstablished",
                json!({"zone_id": zone}),
                "2020-01-31T02:00:00Z",
            ),
            &township,
        );
        model.apply(
            &recorded(
                2,
                "returnee-1",
                "ReturneeRegistered",
                json!({"zone_id": zone}),
                "2020-01-31T02:00:00Z",
            ),
            &township,
        );
        // 17:30 UTC is already the next day in Shanghai.
        model.apply(
            &recorded(
                3,
                "returnee-1",
                "HealthCheckRecorded",
                json!({}),
                "2020-01-31T17:30:00Z",
            ),
            &township,
        );
        model.apply(
            &recorded(
                4,
                "staff-2020-01-31",
                "StaffHealthCheckRecorded",
                json!({}),
                "2020-01-31T02:00:00Z",
            ),
            &township,
        );
        let jan31 = NaiveDate::from_ymd_opt(2020, 1, 31).expect("date");
        assert_eq!(
            model.count(zone, jan31),
            1,
            "the registration; not the zone's setup"
        );
        assert_eq!(model.count(zone, jan31.succ_opt().expect("date")), 1);
        assert_eq!(model.position(), 4);
    }
}
