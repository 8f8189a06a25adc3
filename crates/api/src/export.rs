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
    #[error("zone {0} has no DHIS2 org unit in the mapping")]
    ZoneUnmapped(Uuid),
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

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataValue {
    pub data_element: String,
    pub period: String,
    pub org_unit: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category_option_combo: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attribute_option_combo: Option<String>,
    /// DHIS2 takes values as strings.
    pub value: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompleteRegistration {
    pub data_set: String,
    pub period: String,
    pub organisation_unit: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attribute_option_combo: Option<String>,
    /// When the zone submitted (first revision), `yyyy-MM-dd`.
    pub date: String,
    pub completed: bool,
}

/// `POST` `dataValues` to `/api/dataValueSets` and
/// `completeDataSetRegistrations` to `/api/completeDataSetRegistrations`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataValueSet {
    pub data_set: String,
    pub data_values: Vec<DataValue>,
    pub complete_data_set_registrations: Vec<CompleteRegistration>,
}

/// The aggregates as DHIS2 data values: one per mapped figure, zone and day
/// (period `yyyyMMdd`), and a complete registration per submitted report.
pub fn dhis2(
    aggregates: &DailyAggregates,
    mapping: &Dhis2Mapping,
    township: &fangkong_domain::Township,
) -> Result<DataValueSet, MappingError> {
    let mut data_values = Vec::new();
    let mut complete = Vec::new();
    for row in &aggregates.rows {
        let org_unit = mapping
            .org_units
            .get(&row.zone_id)
            .ok_or(MappingError::ZoneUnmapped(row.zone_id))?;
        let period = row.date.format("%Y%m%d").to_string();
        for (figure, value) in row.figures.iter() {
            if let Some(element) = mapping.data_elements.get(figure.code()) {
                data_values.push(DataValue {
                    data_element: element.clone(),
                    period: period.clone(),
                    org_unit: org_unit.clone(),
                    category_option_combo: mapping.category_option_combo.clone(),
                    attribute_option_combo: mapping.attribute_option_combo.clone(),
                    value: value.to_string(),
                });
            }
        }
        if let Some(first) = row.report.as_ref().and_then(|r| r.first_submitted_at) {
            complete.push(CompleteRegistration {
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
    Ok(DataValueSet {
        data_set: mapping.data_set.clone(),
        data_values,
        complete_data_set_registrations: complete,
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

    #[test]
    fn a_completion_is_dated_on_the_townships_day() {
        use fangkong_projections::views::{DailyRow, ReportState, ReportStatus};
        let zone = uuid::Uuid::now_v7();
        let at = |t: &str| -> chrono::DateTime<chrono::Utc> { t.parse().expect("an instant") };
        let date = chrono::NaiveDate::from_ymd_opt(2020, 2, 1).expect("a date");
        let aggregates = DailyAggregates {
            from: date,
            to: date,
            position: 1,
            rows: vec![DailyRow {
                zone_id: zone,
                zone_name: "一片区".into(),
                date,
                report: Some(ReportStatus {
                    state: ReportState::Submitted,
                    deadline: at("2020-02-02T02:00:00Z"),
                    submitted: true,
                    zero_report: false,
                    late: false,
                    amended: false,
                    revision: 1,
                    // 07:30 on 2 February in the township; 1 February in UTC.
                    first_submitted_at: Some(at("2020-02-01T23:30:00Z")),
                    first_recorded_at: Some(at("2020-02-01T23:30:00Z")),
                    submitted_at: Some(at("2020-02-01T23:30:00Z")),
                    attested: Default::default(),
                    amendments: 0,
                    changes: vec![],
                }),
                figures: Default::default(),
            }],
            totals: vec![],
        };
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../config/dhis2-mapping.example.json");
        let mut mapping = Dhis2Mapping::load(&path).expect("the example loads");
        mapping.org_units.insert(zone, "FkZone00001".into());
        let set =
            dhis2(&aggregates, &mapping, &fangkong_domain::Township::default()).expect("mapped");
        assert_eq!(set.complete_data_set_registrations[0].date, "2020-02-02");
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
