//! A zone's daily report (日报告), zero report included (零报告): the zone
//! leader attests the day's figures.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::codec::event_enum;
use crate::{Aggregate, Context, DomainError, LocalDate, Name, ZoneId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DailyReportSubmitted {
    pub zone_id: ZoneId,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub date: LocalDate,
    pub zero_report: bool,
    /// The figures as the leader attests them, by figure code.
    pub figures: BTreeMap<String, u64>,
    pub submitted_by: Name,
    /// 1 for the first submission; a resubmission after amendments is 2, ...
    pub revision: u32,
}

event_enum! {
    /// A zone's report for one day.
    pub enum ReportEvent {
        DailyReportSubmitted: 1,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SubmitDailyReport {
    pub zone_id: ZoneId,
    pub date: LocalDate,
    pub zero_report: bool,
    pub figures: BTreeMap<String, u64>,
    pub submitted_by: Name,
    /// How many events the zone recorded for that day, looked up by the
    /// caller from the projections: a zero report must find none.
    pub recorded_activity: u64,
}

/// One zone's report for one day (`report-{zone}-{date}`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DailyReport {
    pub last: Option<DailyReportSubmitted>,
}

impl DailyReport {
    pub fn stream_id(zone_id: ZoneId, date: LocalDate) -> String {
        format!("report-{zone_id}-{date}")
    }
}

impl Aggregate for DailyReport {
    type Command = SubmitDailyReport;
    type Event = ReportEvent;
    const CATEGORY: &'static str = "report";

    fn zone(&self) -> Option<crate::ZoneId> {
        self.last.as_ref().map(|r| r.zone_id)
    }

    fn handle(
        &self,
        command: &SubmitDailyReport,
        ctx: &Context,
    ) -> Result<Vec<ReportEvent>, DomainError> {
        if command.date > ctx.today {
            return Err(DomainError::ReportForFutureDay {
                date: command.date,
                today: ctx.today,
            });
        }
        if command.zero_report {
            if command.recorded_activity > 0 {
                return Err(DomainError::ZeroReportWithActivity {
                    date: command.date,
                    activity: command.recorded_activity,
                });
            }
            if let Some((figure, value)) = command.figures.iter().find(|(_, v)| **v > 0) {
                return Err(DomainError::ZeroReportWithFigures {
                    figure: figure.clone(),
                    value: *value,
                });
            }
        }
        Ok(vec![DailyReportSubmitted {
            zone_id: command.zone_id,
            date: command.date,
            zero_report: command.zero_report,
            figures: command.figures.clone(),
            submitted_by: command.submitted_by.clone(),
            revision: self.last.as_ref().map_or(1, |r| r.revision + 1),
        }
        .into()])
    }

    fn apply(mut self, event: &ReportEvent) -> Self {
        let ReportEvent::DailyReportSubmitted(e) = event;
        self.last = Some(e.clone());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{day, given, name};

    fn submit(date: &str, zero_report: bool, activity: u64) -> SubmitDailyReport {
        SubmitDailyReport {
            zone_id: ZoneId::from_uuid(uuid::Uuid::nil()),
            date: day(date),
            zero_report,
            figures: BTreeMap::new(),
            submitted_by: name("李片长"),
            recorded_activity: activity,
        }
    }

    #[test]
    fn no_report_for_a_future_day() {
        given::<DailyReport>(&[], Context::on(day("2020-02-01")))
            .when(submit("2020-02-02", true, 0))
            .then_rejects("report_for_future_day");
    }

    #[test]
    fn a_zero_report_cannot_attest_a_day_with_activity() {
        given::<DailyReport>(&[], Context::on(day("2020-02-01")))
            .when(submit("2020-02-01", true, 3))
            .then_rejects("zero_report_with_activity");
        let mut with_figures = submit("2020-02-01", true, 0);
        with_figures
            .figures
            .insert("returnees_registered".into(), 2);
        given::<DailyReport>(&[], Context::on(day("2020-02-01")))
            .when(with_figures)
            .then_rejects("zero_report_with_figures");
        given::<DailyReport>(&[], Context::on(day("2020-02-01")))
            .when(submit("2020-01-31", true, 0))
            .then_types(&["DailyReportSubmitted"]);
    }

    #[test]
    fn a_resubmission_is_the_next_revision() {
        let state = given::<DailyReport>(&[], Context::on(day("2020-02-02")))
            .when(submit("2020-02-01", false, 5))
            .then_types(&["DailyReportSubmitted"]);
        let events = state
            .handle(
                &submit("2020-02-01", false, 7),
                &Context::on(day("2020-02-02")),
            )
            .expect("resubmitted");
        let ReportEvent::DailyReportSubmitted(second) = &events[0];
        assert_eq!(second.revision, 2);
    }
}
