//! What readers see: dashboards, report states and the county's daily
//! aggregates, read from a [`Board`] with a clock. The board holds what was
//! recorded; the clock decides what is already late, missing or missed.

use std::collections::BTreeMap;

use chrono::{DateTime, Days, NaiveDate, NaiveTime, TimeZone, Utc};
use fangkong_domain::Township;
use serde::Serialize;
use uuid::Uuid;

use crate::board::{Board, ReportRecord, ZoneBoard};
use crate::figures::{DayBook, Figure, Figures};

/// When a day's report is due: `days_after` days after it, at `time`,
/// township time (default: 10:00 the next day).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportingRules {
    pub days_after: u32,
    pub time: NaiveTime,
}

impl Default for ReportingRules {
    fn default() -> Self {
        ReportingRules {
            days_after: 1,
            time: NaiveTime::from_hms_opt(10, 0, 0).unwrap_or(NaiveTime::MIN),
        }
    }
}

impl ReportingRules {
    /// Parses `HH:MM` (the next day) or `+N HH:MM`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let (days, time) = match raw.strip_prefix('+') {
            Some(rest) => {
                let (days, time) = rest
                    .split_once(' ')
                    .ok_or_else(|| format!("{raw:?}: expected +N HH:MM"))?;
                let days: u32 = days
                    .parse()
                    .map_err(|_| format!("{raw:?}: {days:?} is not a number of days"))?;
                (days, time)
            }
            None => (1, raw),
        };
        let time = NaiveTime::parse_from_str(time, "%H:%M")
            .map_err(|_| format!("{raw:?}: expected a time as HH:MM"))?;
        if days > 31 {
            return Err(format!("{raw:?}: at most 31 days after the day"));
        }
        Ok(ReportingRules {
            days_after: days,
            time,
        })
    }

    /// The instant the report for `date` is due.
    pub fn deadline(&self, township: &Township, date: NaiveDate) -> DateTime<Utc> {
        let day = date
            .checked_add_days(Days::new(self.days_after.into()))
            .unwrap_or(date);
        let local = day.and_time(self.time);
        township
            .time_zone
            .from_local_datetime(&local)
            .earliest()
            .map_or_else(|| local.and_utc(), |t| t.with_timezone(&Utc))
    }
}

/// The reader's "now": the wall clock for live reads, the time of the last
/// event for an as-of read, so the past reads exactly as it stood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    pub now: DateTime<Utc>,
    pub today: NaiveDate,
}

impl Clock {
    pub fn at(now: DateTime<Utc>, township: &Township) -> Clock {
        Clock {
            now,
            today: township.local_date(now),
        }
    }
}

/// How to read a board: the township's calendar, the reporting deadline,
/// the clock.
#[derive(Debug, Clone, Copy)]
pub struct Reading<'a> {
    pub township: &'a Township,
    pub rules: ReportingRules,
    pub clock: Clock,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportState {
    /// Not submitted, and the deadline has not passed.
    Pending,
    /// Not submitted, and the deadline has passed.
    Missing,
    /// Submitted on time, with figures.
    Submitted,
    /// Submitted on time as a zero report (零报告).
    Zero,
    /// First submitted (in the field) after the deadline.
    Late,
    /// Events for the day were recorded after the latest submission.
    Amended,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FigureChange {
    pub figure: String,
    pub as_submitted: u64,
    pub now: u64,
}

/// One zone's report for one day, judged at the reader's clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReportStatus {
    pub state: ReportState,
    pub deadline: DateTime<Utc>,
    pub submitted: bool,
    pub zero_report: bool,
    pub late: bool,
    pub amended: bool,
    /// 0 when never submitted.
    pub revision: u32,
    /// When the first revision was submitted in the field (`occurred_at`):
    /// what `late` is judged by.
    pub first_submitted_at: Option<DateTime<Utc>>,
    /// When the server recorded it (later than the above after an offline sync).
    pub first_recorded_at: Option<DateTime<Utc>>,
    pub submitted_at: Option<DateTime<Utc>>,
    /// Figures as the leader attested them.
    pub attested: BTreeMap<String, u64>,
    /// Events recorded for the day after the latest submission.
    pub amendments: u64,
    /// What those events changed: each figure as submitted and now.
    pub changes: Vec<FigureChange>,
}

/// What stands in a zone at the board's position.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Standing {
    pub under_quarantine: u64,
    /// People with an abnormal finding not yet referred for treatment.
    pub awaiting_referral: u64,
    pub venues_closed: u64,
    /// Venues closed now, by kind code.
    pub venues_closed_by_kind: BTreeMap<String, u64>,
}

impl Standing {
    fn of(zone: &ZoneBoard) -> Standing {
        Standing {
            under_quarantine: zone.under_quarantine,
            awaiting_referral: zone.awaiting_referral,
            venues_closed: zone.venues_closed.values().sum(),
            venues_closed_by_kind: zone
                .venues_closed
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(k, n)| (k.code().to_owned(), *n))
                .collect(),
        }
    }

    fn add(&mut self, other: &Standing) {
        self.under_quarantine += other.under_quarantine;
        self.awaiting_referral += other.awaiting_referral;
        self.venues_closed += other.venues_closed;
        for (kind, n) in &other.venues_closed_by_kind {
            *self.venues_closed_by_kind.entry(kind.clone()).or_default() += n;
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ZoneDashboard {
    pub zone_id: Uuid,
    pub name: String,
    /// The day the figures are for.
    pub date: NaiveDate,
    /// Today at the reader's clock, township time.
    pub today: NaiveDate,
    /// The log position the dashboard reflects.
    pub position: u64,
    /// Now, at that position.
    pub standing: Standing,
    /// The day's figures, by figure code.
    pub day: Figures,
    /// Every day up to and including `date`, summed.
    pub to_date: Figures,
    pub report: Option<ReportStatus>,
}

/// Reporting completeness of one day across the township's zones.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Completeness {
    /// Zones established by that day.
    pub expected: u64,
    pub submitted: u64,
    pub on_time: u64,
    pub zero_reports: u64,
    pub late: u64,
    pub missing: u64,
    pub pending: u64,
    pub amended: u64,
    /// submitted / expected (1 when no zone was expected).
    pub reporting_rate: f64,
    /// on_time / expected (1 when no zone was expected).
    pub on_time_rate: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ZoneLine {
    pub zone_id: Uuid,
    pub name: String,
    pub report: Option<ReportState>,
    /// What stands in the zone now.
    pub standing: Standing,
    pub day: Figures,
    /// Every day up to and including `date`, summed.
    pub to_date: Figures,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TownshipDashboard {
    pub date: NaiveDate,
    pub today: NaiveDate,
    pub position: u64,
    /// Summed over the zones.
    pub standing: Standing,
    /// The zones' day figures summed, plus the township office's own
    /// (staff morning checks belong to no zone).
    pub day: Figures,
    pub to_date: Figures,
    pub completeness: Completeness,
    pub zones: Vec<ZoneLine>,
}

/// One row of the county pull: a zone's day.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DailyRow {
    pub zone_id: Uuid,
    pub zone_name: String,
    pub date: NaiveDate,
    /// `None` for days before the zone was established.
    pub report: Option<ReportStatus>,
    pub figures: Figures,
}

/// The township's total of one day.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DailyTotal {
    pub date: NaiveDate,
    pub figures: Figures,
    pub completeness: Completeness,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DailyAggregates {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub position: u64,
    pub rows: Vec<DailyRow>,
    pub totals: Vec<DailyTotal>,
}

impl Completeness {
    /// Counts the reports of one day's expected zones.
    pub fn of<'a>(reports: impl IntoIterator<Item = &'a ReportStatus>) -> Completeness {
        let mut c = Completeness::default();
        for report in reports {
            c.expected += 1;
            if report.submitted {
                c.submitted += 1;
                if report.late {
                    c.late += 1;
                } else {
                    c.on_time += 1;
                }
            }
            match report.state {
                ReportState::Missing => c.missing += 1,
                ReportState::Pending => c.pending += 1,
                _ => {}
            }
            if report.zero_report {
                c.zero_reports += 1;
            }
            if report.amended {
                c.amended += 1;
            }
        }
        let rate = |n: u64| {
            if c.expected == 0 {
                1.0
            } else {
                n as f64 / c.expected as f64
            }
        };
        c.reporting_rate = rate(c.submitted);
        c.on_time_rate = rate(c.on_time);
        c
    }
}

impl Reading<'_> {
    /// A stored day read at the clock: an owed visit of a day that is over
    /// is missed; of today, pending.
    pub fn day_of(&self, stored: Option<&Figures>, date: NaiveDate) -> Figures {
        let mut figures = stored.cloned().unwrap_or_default();
        let open =
            figures[Figure::HealthVisitsDue].saturating_sub(figures[Figure::HealthVisitsMade]);
        if date < self.clock.today {
            figures[Figure::HealthVisitsMissed] = open;
        } else if date == self.clock.today {
            figures[Figure::HealthVisitsPending] = open;
        }
        figures
    }

    /// Every day up to and including `date`, read at the clock.
    fn sum_through(&self, book: &DayBook, date: NaiveDate) -> Figures {
        let mut sum = book.through(date);
        let today = self.clock.today;
        // Owed visits still open on days before today are missed; today's
        // are pending; later days' are neither.
        let open =
            |f: &Figures| f[Figure::HealthVisitsDue].saturating_sub(f[Figure::HealthVisitsMade]);
        let mut missed = open(&sum);
        for (day, figures) in book.days().range(today..=date.max(today)) {
            if *day > date {
                break;
            }
            missed = missed.saturating_sub(open(figures));
            if *day == today {
                sum[Figure::HealthVisitsPending] = open(figures);
            }
        }
        sum[Figure::HealthVisitsMissed] = missed;
        sum
    }

    /// The report state of a zone's day; `None` before the zone existed.
    pub fn report_of(&self, zone: &ZoneBoard, date: NaiveDate) -> Option<ReportStatus> {
        let deadline = self.rules.deadline(self.township, date);
        let Some(record) = zone.reports.get(&date) else {
            if zone.established_on.is_none_or(|on| date < on) {
                return None;
            }
            let state = if self.clock.now > deadline {
                ReportState::Missing
            } else {
                ReportState::Pending
            };
            return Some(ReportStatus {
                state,
                deadline,
                submitted: false,
                zero_report: false,
                late: false,
                amended: false,
                revision: 0,
                first_submitted_at: None,
                first_recorded_at: None,
                submitted_at: None,
                attested: BTreeMap::new(),
                amendments: 0,
                changes: vec![],
            });
        };
        Some(self.submitted(zone, date, record, deadline))
    }

    fn submitted(
        &self,
        zone: &ZoneBoard,
        date: NaiveDate,
        record: &ReportRecord,
        deadline: DateTime<Utc>,
    ) -> ReportStatus {
        let late = record.first_submitted_at > deadline;
        let amended = record.amendments > 0;
        let state = if amended {
            ReportState::Amended
        } else if late {
            ReportState::Late
        } else if record.zero_report {
            ReportState::Zero
        } else {
            ReportState::Submitted
        };
        let now = zone.days.get(date).cloned().unwrap_or_default();
        ReportStatus {
            state,
            deadline,
            submitted: true,
            zero_report: record.zero_report,
            late,
            amended,
            revision: record.revision,
            first_submitted_at: Some(record.first_submitted_at),
            first_recorded_at: Some(record.first_recorded_at),
            submitted_at: Some(record.submitted_at),
            attested: record.attested.clone(),
            amendments: record.amendments,
            changes: now
                .changes_from(&record.as_submitted)
                .into_iter()
                .map(|(figure, as_submitted, now)| FigureChange {
                    figure: figure.code().to_owned(),
                    as_submitted,
                    now,
                })
                .collect(),
        }
    }

    pub fn zone_dashboard(
        &self,
        board: &Board,
        zone_id: Uuid,
        date: NaiveDate,
    ) -> Option<ZoneDashboard> {
        let zone = board.zone(zone_id)?;
        Some(ZoneDashboard {
            zone_id,
            name: zone.name.clone(),
            date,
            today: self.clock.today,
            position: board.position(),
            standing: Standing::of(zone),
            day: self.day_of(zone.day(date), date),
            to_date: self.sum_through(&zone.days, date),
            report: self.report_of(zone, date),
        })
    }

    pub fn completeness(&self, board: &Board, date: NaiveDate) -> Completeness {
        let reports: Vec<ReportStatus> = board
            .zones()
            .values()
            .filter_map(|zone| self.report_of(zone, date))
            .collect();
        Completeness::of(&reports)
    }

    pub fn township_dashboard(&self, board: &Board, date: NaiveDate) -> TownshipDashboard {
        let mut standing = Standing::default();
        let mut day = self.day_of(board.office().get(date), date);
        let mut to_date = self.sum_through(board.office(), date);
        let mut zones = Vec::with_capacity(board.zones().len());
        let mut reports = Vec::with_capacity(board.zones().len());
        for (id, zone) in board.zones() {
            let zone_standing = Standing::of(zone);
            standing.add(&zone_standing);
            let zone_day = self.day_of(zone.day(date), date);
            day += &zone_day;
            let zone_to_date = self.sum_through(&zone.days, date);
            to_date += &zone_to_date;
            let report = self.report_of(zone, date);
            zones.push(ZoneLine {
                zone_id: *id,
                name: zone.name.clone(),
                report: report.as_ref().map(|r| r.state),
                standing: zone_standing,
                day: zone_day,
                to_date: zone_to_date,
            });
            reports.extend(report);
        }
        TownshipDashboard {
            date,
            today: self.clock.today,
            position: board.position(),
            standing,
            day,
            to_date,
            completeness: Completeness::of(&reports),
            zones,
        }
    }

    /// The county pull for `from..=to`: a row per zone and day (from the
    /// day it was established), and the township's total per day.
    pub fn daily(&self, board: &Board, from: NaiveDate, to: NaiveDate) -> DailyAggregates {
        let mut rows = Vec::new();
        let mut totals = Vec::new();
        for date in from.iter_days().take_while(|d| *d <= to) {
            let first_row = rows.len();
            let mut total = self.day_of(board.office().get(date), date);
            for (id, zone) in board.zones() {
                let Some(report) = self.report_of(zone, date) else {
                    continue;
                };
                let figures = self.day_of(zone.day(date), date);
                total += &figures;
                rows.push(DailyRow {
                    zone_id: *id,
                    zone_name: zone.name.clone(),
                    date,
                    report: Some(report),
                    figures,
                });
            }
            totals.push(DailyTotal {
                date,
                figures: total,
                completeness: Completeness::of(
                    rows[first_row..].iter().filter_map(|r| r.report.as_ref()),
                ),
            });
        }
        DailyAggregates {
            from,
            to,
            position: board.position(),
            rows,
            totals,
        }
    }
}
