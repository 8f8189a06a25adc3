//! The home quarantine schedule as pure functions of dates.
//!
//! Day 1 is the day the count starts (the quarantine's start, or the last
//! re-exposure). A visit is due on every day of the period; a missed visit is
//! a past day of the period without one. Missed days are counted as days, not
//! as "due minus done": two visits on one day do not make up for a day
//! without any, a lesson the outbreak tools learned the hard way.

use std::collections::BTreeSet;

use chrono::Days;

use crate::LocalDate;

/// A quarantine's dates.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Schedule {
    /// Day 1 of the current count.
    pub count_start: LocalDate,
    /// Planned length in days, counted from `count_start`.
    pub planned_days: u16,
}

impl Schedule {
    /// The last day of observation.
    pub fn planned_end(&self) -> LocalDate {
        add_days(self.count_start, u64::from(self.planned_days.max(1)) - 1)
    }

    /// Day n of the period on `date` (1 on the first day), or `None` before it.
    pub fn day_of_period(&self, date: LocalDate) -> Option<u32> {
        let days = (date - self.count_start).num_days();
        (days >= 0).then(|| days as u32 + 1)
    }

    /// Whether `date` falls within the planned period.
    pub fn covers(&self, date: LocalDate) -> bool {
        date >= self.count_start && date <= self.planned_end()
    }

    /// Days on which a visit was due, from the start up to and including
    /// `through` (never past the planned end).
    pub fn visits_due_through(&self, through: LocalDate) -> u32 {
        let last = through.min(self.planned_end());
        if last < self.count_start {
            return 0;
        }
        (last - self.count_start).num_days() as u32 + 1
    }

    /// Past days of the period (before `today`) without a visit.
    pub fn missed_days(&self, visits: &BTreeSet<LocalDate>, today: LocalDate) -> Vec<LocalDate> {
        let Some(yesterday) = today.pred_opt() else {
            return vec![];
        };
        let last = yesterday.min(self.planned_end());
        self.count_start
            .iter_days()
            .take_while(|d| *d <= last)
            .filter(|d| !visits.contains(d))
            .collect()
    }

    /// Whether today's visit is still to be made.
    pub fn visit_due_today(&self, visits: &BTreeSet<LocalDate>, today: LocalDate) -> bool {
        self.covers(today) && !visits.contains(&today)
    }
}

fn add_days(date: LocalDate, days: u64) -> LocalDate {
    date.checked_add_days(Days::new(days))
        .unwrap_or(LocalDate::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::day;

    fn fourteen_from(start: &str) -> Schedule {
        Schedule {
            count_start: day(start),
            planned_days: 14,
        }
    }

    #[test]
    fn a_fourteen_day_quarantine_ends_on_day_fourteen() {
        let s = fourteen_from("2020-01-25");
        assert_eq!(s.planned_end(), day("2020-02-07"));
        assert_eq!(s.day_of_period(day("2020-01-25")), Some(1));
        assert_eq!(s.day_of_period(day("2020-02-07")), Some(14));
        assert_eq!(s.day_of_period(day("2020-01-24")), None);
    }

    #[test]
    fn visits_are_due_every_day_of_the_period_only() {
        let s = fourteen_from("2020-01-25");
        assert_eq!(s.visits_due_through(day("2020-01-24")), 0);
        assert_eq!(s.visits_due_through(day("2020-01-25")), 1);
        assert_eq!(s.visits_due_through(day("2020-03-01")), 14);
    }

    #[test]
    fn missed_days_are_past_days_without_a_visit_however_many_visits_other_days_had() {
        let s = fourteen_from("2020-01-25");
        let visits: BTreeSet<_> = [day("2020-01-25"), day("2020-01-27")].into();
        // On the 28th: the 25th, 26th, 27th are past; the 26th had no visit.
        assert_eq!(
            s.missed_days(&visits, day("2020-01-28")),
            vec![day("2020-01-26")]
        );
        assert!(s.visit_due_today(&visits, day("2020-01-28")));
        assert!(!s.visit_due_today(&visits, day("2020-01-27")));
        assert!(!s.visit_due_today(&visits, day("2020-02-08")));
        assert_eq!(s.missed_days(&visits, day("2020-03-01")).len(), 12);
    }

    #[test]
    fn an_extension_moves_the_planned_end() {
        let mut s = fourteen_from("2020-01-25");
        s.planned_days = 21;
        assert_eq!(s.planned_end(), day("2020-02-14"));
    }
}
