//! The county pull in the formats county systems read: CSV with stable
//! columns, and DHIS2 data value sets with complete registrations.

use std::collections::BTreeMap;
use std::path::Path;

use fangkong_projections::views::DailyAggregates;
use fangkong_projections::Figure;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How our figures and zones are named in the county's DHIS2: read from a
/// JSON file (`--dhis2-mapping`). Figures without a data element are not
/// sent; every zone must have an org unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dhis2Mapping {
    /// The data set the figures belong to.
    pub data_set: String,
    /// Figure code → data element id.
    pub data_elements: BTreeMap<String, String>,
    /// Zone id → organisation unit id.
    pub org_units: BTreeMap<Uuid, String>,
    /// Category option combo for every value; DHIS2's default when absent.
    #[serde(default)]
    pub category_option_combo: Option<String>,
    #[serde(default)]
    pub attribute_option_combo: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MappingError {
    #[error("cannot read the DHIS2 mapping {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("the DHIS2 mapping names unknown figure codes: {0}")]
    UnknownFigures(String),
    #[error("zone {0} has no DHIS2 org unit: link one with PUT /v1/zones/{0}/dhis2-org-unit")]
    ZoneUnmapped(Uuid),
    #[error("two zones are filed under the DHIS2 org unit {org_unit}: link each zone to its own")]
    OrgUnitShared { org_unit: String },
}

impl Dhis2Mapping {
    pub fn load(path: &Path) -> Result<Dhis2Mapping, MappingError> {
        let unreadable = |reason: String| MappingError::Unreadable {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| unreadable(e.to_string()))?;
        let mapping: Dhis2Mapping =
            serde_json::from_str(&text).map_err(|e| unreadable(e.to_string()))?;
        mapping.check()?;
        Ok(mapping)
    }

    /// Refuses codes that are not figures: a typo would silently drop data.
    pub fn check(&self) -> Result<(), MappingError> {
        let unknown: Vec<&str> = self
            .data_elements
            .keys()
            .filter(|c| Figure::from_code(c).is_none())
            .map(String::as_str)
            .collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(MappingError::UnknownFigures(unknown.join(", ")))
        }
    }
}

/// One value of a data element, for an org unit and a day.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Dhis2DataValue {
    pub data_element: String,
    /// `yyyyMMdd`.
    pub period: String,
    pub org_unit: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category_option_combo: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attribute_option_combo: Option<String>,
    /// DHIS2 takes values as strings.
    pub value: String,
}

/// One zone's report of one day, for DHIS2's
/// `POST /api/completeDataSetRegistrations`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Dhis2CompleteRegistration {
    pub data_set: String,
    /// `yyyyMMdd`.
    pub period: String,
    pub organisation_unit: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attribute_option_combo: Option<String>,
    /// When the zone submitted (first revision), on the township's day: `yyyy-MM-dd`.
    pub date: String,
    pub completed: bool,
}

/// A document DHIS2's `POST /api/dataValueSets` imports as it stands. A pull
/// of one zone and one day is one data set report (`period`, `orgUnit` and,
/// when the zone submitted, `completeDate` at the top); a wider pull names
/// the period and org unit on each value and leaves completion to
/// `format=dhis2-completions`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Dhis2DataValueSet {
    pub data_set: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org_unit: Option<String>,
    /// `yyyy-MM-dd`, on the township's day.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub complete_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attribute_option_combo: Option<String>,
    pub data_values: Vec<Dhis2DataValue>,
}

/// A document DHIS2's `POST /api/completeDataSetRegistrations` imports as it
/// stands: one registration per zone and day it submitted a report.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Dhis2CompleteRegistrations {
    pub complete_data_set_registrations: Vec<Dhis2CompleteRegistration>,
}

/// What goes to DHIS2 from one pull.
#[derive(Debug)]
pub struct Dhis2Export {
    pub values: Dhis2DataValueSet,
    pub completions: Dhis2CompleteRegistrations,
}

/// The aggregates as DHIS2 documents: per zone and day (period `yyyyMMdd`)
/// one value per mapped figure its leader attested in the day's report
/// (a zero report attests every figure as 0); a day with no report sends
/// nothing, since what a zone recorded is not what it vouched for, unless
/// `include_unattested` asks for the recorded figures of those days.
///
/// `linked` holds the org unit each zone was linked to through the API;
/// the mapping file's stands in for a zone never linked. Every zone's org
/// unit is checked, not only those of the rows pulled: two zones under one
/// org unit would overwrite each other in DHIS2 unseen.
pub fn dhis2(
    aggregates: &DailyAggregates,
    mapping: &Dhis2Mapping,
    township: &fangkong_domain::Township,
    linked: &BTreeMap<Uuid, String>,
    include_unattested: bool,
) -> Result<Dhis2Export, MappingError> {
    let org_unit_of = |zone: &Uuid| linked.get(zone).or_else(|| mapping.org_units.get(zone));
    let mut filed: BTreeMap<&str, Uuid> = BTreeMap::new();
    let zones = linked.keys().chain(mapping.org_units.keys());
    for zone in zones {
        if let Some(unit) = org_unit_of(zone) {
            if filed
                .insert(unit, *zone)
                .is_some_and(|other| other != *zone)
            {
                return Err(MappingError::OrgUnitShared {
                    org_unit: unit.clone(),
                });
            }
        }
    }
    let mut data_values = Vec::new();
    let mut complete = Vec::new();
    for row in &aggregates.rows {
        let report = row.report.as_ref().filter(|r| r.submitted);
        let value_of = |figure: fangkong_projections::Figure, recorded: u64| match report {
            Some(r) if r.zero_report => Some(0),
            Some(r) => r.attested.get(figure.code()).copied(),
            None if include_unattested => Some(recorded),
            None => None,
        };
        let values: Vec<(&String, u64)> = row
            .figures
            .iter()
            .filter_map(|(figure, recorded)| {
                let element = mapping.data_elements.get(figure.code())?;
                Some((element, value_of(figure, recorded)?))
            })
            .collect();
        let submitted_at = report.and_then(|r| r.first_submitted_at);
        if values.is_empty() && submitted_at.is_none() {
            // Nothing of this zone's day goes to DHIS2: no org unit needed.
            continue;
        }
        let org_unit = org_unit_of(&row.zone_id).ok_or(MappingError::ZoneUnmapped(row.zone_id))?;
        let period = row.date.format("%Y%m%d").to_string();
        for (element, value) in values {
            data_values.push(Dhis2DataValue {
                data_element: element.clone(),
                period: period.clone(),
                org_unit: org_unit.clone(),
                category_option_combo: mapping.category_option_combo.clone(),
                attribute_option_combo: mapping.attribute_option_combo.clone(),
                value: value.to_string(),
            });
        }
        if let Some(first) = submitted_at {
            complete.push(Dhis2CompleteRegistration {
                data_set: mapping.data_set.clone(),
                period,
                organisation_unit: org_unit.clone(),
                attribute_option_combo: mapping.attribute_option_combo.clone(),
                // The township's day: a report sent at 07:30 there is
                // not yesterday's in UTC.
                date: township.local_date(first).format("%Y-%m-%d").to_string(),
                completed: true,
            });
        }
    }
    // One zone's one day is a data set report: its period, org unit and
    // completion at the top, as DHIS2 keeps a form.
    let single = match aggregates.rows.as_slice() {
        [row] => org_unit_of(&row.zone_id).map(|unit| (row, unit)),
        _ => None,
    };
    let values = Dhis2DataValueSet {
        data_set: mapping.data_set.clone(),
        period: single.map(|(r, _)| r.date.format("%Y%m%d").to_string()),
        org_unit: single.map(|(_, unit)| unit.clone()),
        complete_date: single.and_then(|_| complete.first().map(|c| c.date.clone())),
        attribute_option_combo: single.and(mapping.attribute_option_combo.clone()),
        data_values,
    };
    Ok(Dhis2Export {
        values,
        completions: Dhis2CompleteRegistrations {
            complete_data_set_registrations: complete,
        },
    })
}

/// The report columns before the figures, in this order, forever: new
/// columns are only ever appended.
pub const CSV_LEADING_COLUMNS: &[&str] = &[
    "date",
    "zone_id",
    "zone_name",
    "report_state",
    "submitted",
    "zero_report",
    "late",
    "amended",
    "revision",
    "first_submitted_at",
];

/// One row per zone and date, a header row, then a figure per column.
pub fn csv(aggregates: &DailyAggregates) -> String {
    let mut out = String::new();
    let header: Vec<&str> = CSV_LEADING_COLUMNS
        .iter()
        .copied()
        .chain(Figure::ALL.iter().map(|f| f.code()))
        .collect();
    out.push_str(&header.join(","));
    out.push_str("\r\n");
    for row in &aggregates.rows {
        let report = row.report.as_ref();
        let mut cells = vec![
            row.date.to_string(),
            row.zone_id.to_string(),
            cell(&row.zone_name),
            report
                .map(|r| super::routes::code_of(r.state))
                .unwrap_or_default(),
            report.is_some_and(|r| r.submitted).to_string(),
            report.is_some_and(|r| r.zero_report).to_string(),
            report.is_some_and(|r| r.late).to_string(),
            report.is_some_and(|r| r.amended).to_string(),
            report.map_or(0, |r| r.revision).to_string(),
            report
                .and_then(|r| r.first_submitted_at)
                .map(|t| t.to_rfc3339())
                .unwrap_or_default(),
        ];
        cells.extend(row.figures.iter().map(|(_, v)| v.to_string()));
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

/// RFC 4180 quoting, and a leading `'` on text a spreadsheet would run as
/// a formula.
fn cell(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_never_formulas() {
        assert_eq!(cell("东片"), "东片");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("=HYPERLINK(1)"), "'=HYPERLINK(1)");
    }

    #[test]
    fn the_example_mapping_maps_every_figure() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../config/dhis2-mapping.example.json");
        let mapping = Dhis2Mapping::load(&path).expect("the example loads");
        for figure in Figure::ALL {
            assert!(
                mapping.data_elements.contains_key(figure.code()),
                "{figure} is not in the example"
            );
        }
    }

    fn at(t: &str) -> chrono::DateTime<chrono::Utc> {
        t.parse().expect("an instant")
    }

    /// A zone's day: recorded figures, and a report attesting `attested`
    /// submitted at `submitted` (none: the zone did not report).
    fn row(
        zone: Uuid,
        attested: &[(Figure, u64)],
        recorded: &[(Figure, u64)],
        submitted: Option<&str>,
    ) -> fangkong_projections::views::DailyRow {
        use fangkong_projections::views::{DailyRow, ReportState, ReportStatus};
        let date = chrono::NaiveDate::from_ymd_opt(2020, 2, 1).expect("a date");
        let mut figures = fangkong_projections::Figures::default();
        for (figure, value) in recorded {
            figures.add(*figure, *value);
        }
        DailyRow {
            zone_id: zone,
            zone_name: "一片区".into(),
            date,
            report: Some(ReportStatus {
                state: if submitted.is_some() {
                    ReportState::Submitted
                } else {
                    ReportState::Missing
                },
                deadline: at("2020-02-02T02:00:00Z"),
                submitted: submitted.is_some(),
                zero_report: false,
                late: false,
                amended: false,
                revision: u32::from(submitted.is_some()),
                first_submitted_at: submitted.map(at),
                first_recorded_at: submitted.map(at),
                submitted_at: submitted.map(at),
                attested: attested
                    .iter()
                    .map(|(f, v)| (f.code().to_owned(), *v))
                    .collect(),
                amendments: 0,
                changes: vec![],
            }),
            figures,
        }
    }

    fn aggregates(rows: Vec<fangkong_projections::views::DailyRow>) -> DailyAggregates {
        let date = chrono::NaiveDate::from_ymd_opt(2020, 2, 1).expect("a date");
        DailyAggregates {
            from: date,
            to: date,
            position: 1,
            rows,
            totals: vec![],
        }
    }

    fn example_mapping() -> Dhis2Mapping {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../config/dhis2-mapping.example.json");
        Dhis2Mapping::load(&path).expect("the example loads")
    }

    fn township() -> fangkong_domain::Township {
        fangkong_domain::Township::default()
    }

    #[test]
    fn a_single_zone_day_is_one_data_set_report_dated_on_the_townships_day() {
        let zone = Uuid::now_v7();
        let linked = BTreeMap::from([(zone, "FkZone00001".to_owned())]);
        let (a, b) = (Figure::ALL[0], Figure::ALL[1]);
        // 07:30 on 2 February in the township; 1 February in UTC.
        let day = aggregates(vec![row(
            zone,
            &[(a, 3)],
            &[(a, 5), (b, 2)],
            Some("2020-02-01T23:30:00Z"),
        )]);
        let out = dhis2(&day, &example_mapping(), &township(), &linked, false).expect("mapped");
        let registrations = &out.completions.complete_data_set_registrations;
        assert_eq!(registrations.len(), 1);
        assert_eq!(registrations[0].date, "2020-02-02");
        assert_eq!(registrations[0].organisation_unit, "FkZone00001");
        let set = serde_json::to_value(&out.values).expect("renders");
        assert_eq!(set["period"], "20200201");
        assert_eq!(set["orgUnit"], "FkZone00001");
        assert_eq!(set["completeDate"], "2020-02-02");
        // What the leader attested (a as 3), not what was recorded (a as
        // 5, b as 2): b, which the report does not name, is not sent.
        let values = set["dataValues"].as_array().expect("values");
        let mapping = example_mapping();
        assert_eq!(values.len(), 1, "{values:?}");
        assert_eq!(
            values[0]["dataElement"],
            mapping.data_elements[a.code()].as_str()
        );
        assert_eq!(values[0]["value"], "3");
        assert!(!values
            .iter()
            .any(|v| v["dataElement"] == mapping.data_elements[b.code()].as_str()));
        assert!(set.get("completeDataSetRegistrations").is_none());
    }

    #[test]
    fn a_zone_that_did_not_report_sends_nothing_unless_unattested_figures_are_asked_for() {
        let (reported, silent) = (Uuid::now_v7(), Uuid::now_v7());
        let linked = BTreeMap::from([
            (reported, "FkZone00001".to_owned()),
            (silent, "FkZone00002".to_owned()),
        ]);
        let (a, b) = (Figure::ALL[0], Figure::ALL[1]);
        let day = aggregates(vec![
            row(
                reported,
                &[(a, 3)],
                &[(a, 5), (b, 2)],
                Some("2020-02-01T10:00:00Z"),
            ),
            row(silent, &[], &[(a, 4)], None),
        ]);
        let mapping = example_mapping();
        let strict = dhis2(&day, &mapping, &township(), &linked, false).expect("mapped");
        let values = &strict.values.data_values;
        assert_eq!(values.len(), 1, "the one figure the reported zone attested");
        assert_eq!(values[0].org_unit, "FkZone00001");
        assert_eq!(values[0].period, "20200201");
        // Several zones: the period and org unit are on each value.
        assert!(strict.values.period.is_none() && strict.values.org_unit.is_none());
        assert_eq!(strict.completions.complete_data_set_registrations.len(), 1);

        let all = dhis2(&day, &mapping, &township(), &linked, true).expect("mapped");
        let silent_values: Vec<_> = all
            .values
            .data_values
            .iter()
            .filter(|v| v.org_unit == "FkZone00002")
            .collect();
        assert_eq!(
            silent_values.len(),
            Figure::ALL.len(),
            "every recorded figure"
        );
        let reported_a = all
            .values
            .data_values
            .iter()
            .find(|v| {
                v.org_unit == "FkZone00001" && v.data_element == mapping.data_elements[a.code()]
            })
            .expect("a");
        assert_eq!(reported_a.value, "3", "attested wins over recorded");
        assert_eq!(all.completions.complete_data_set_registrations.len(), 1);
    }

    #[test]
    fn an_org_unit_linked_through_the_api_wins_and_two_zones_may_not_share_one() {
        let (one, two) = (Uuid::now_v7(), Uuid::now_v7());
        let mut mapping = example_mapping();
        mapping.org_units.insert(one, "FileUnit001".into());
        let linked = BTreeMap::from([(one, "ApiUnit0001".to_owned())]);
        let a = Figure::ALL[0];
        let reported = "2020-02-01T10:00:00Z";
        let day = aggregates(vec![row(one, &[(a, 1)], &[], Some(reported))]);
        let out = dhis2(&day, &mapping, &township(), &linked, false).expect("mapped");
        assert_eq!(out.values.org_unit.as_deref(), Some("ApiUnit0001"));

        // A zone with nothing to send needs no org unit; one that reported does.
        let silent = aggregates(vec![row(two, &[], &[(a, 4)], None)]);
        assert!(dhis2(&silent, &mapping, &township(), &linked, false).is_ok());
        let unlinked = aggregates(vec![row(two, &[(a, 1)], &[], Some(reported))]);
        assert_eq!(
            dhis2(&unlinked, &mapping, &township(), &linked, false).err(),
            Some(MappingError::ZoneUnmapped(two))
        );

        // Two zones under one org unit: refused whatever the pull holds,
        // even one zone's rows alone.
        mapping.org_units.insert(two, "ApiUnit0001".into());
        assert!(matches!(
            dhis2(&day, &mapping, &township(), &linked, false),
            Err(MappingError::OrgUnitShared { .. })
        ));
    }

    #[test]
    fn one_zone_over_several_days_is_one_org_unit_and_a_zero_report_sends_zeros() {
        let zone = Uuid::now_v7();
        let linked = BTreeMap::from([(zone, "FkZone00001".to_owned())]);
        let a = Figure::ALL[0];
        let mut zero = row(zone, &[], &[], Some("2020-02-02T10:00:00Z"));
        zero.date = zero.date.succ_opt().expect("a day");
        if let Some(report) = zero.report.as_mut() {
            report.zero_report = true;
        }
        let days = aggregates(vec![
            row(zone, &[(a, 2)], &[(a, 2)], Some("2020-02-01T10:00:00Z")),
            zero,
        ]);
        let out = dhis2(&days, &example_mapping(), &township(), &linked, false).expect("mapped");
        let second: Vec<_> = out
            .values
            .data_values
            .iter()
            .filter(|v| v.period == "20200202")
            .collect();
        assert_eq!(
            second.len(),
            Figure::ALL.len(),
            "a zero report attests every figure"
        );
        assert!(second.iter().all(|v| v.value == "0"));
        assert_eq!(out.completions.complete_data_set_registrations.len(), 2);
        assert!(out.values.period.is_none(), "two days: on each value");
    }

    #[test]
    fn a_mapping_with_an_unknown_figure_is_refused() {
        let mapping = Dhis2Mapping {
            data_set: "ds".into(),
            data_elements: [("returnees_registerd".to_owned(), "x".to_owned())].into(),
            org_units: BTreeMap::new(),
            category_option_combo: None,
            attribute_option_combo: None,
        };
        assert_eq!(
            mapping.check(),
            Err(MappingError::UnknownFigures("returnees_registerd".into()))
        );
    }
}
