//! Zone dashboards rendered once per (zone, day, log position, second) and
//! reused while those stand: a duty room's screens and a county system
//! polling ask for the same few answers many times a second, and each
//! render (the figures to date summed over every day, then JSON) costs
//! far more than handing back the bytes.
//!
//! The second is part of the key because a report turns from pending to
//! missing by the clock alone. Renders read the clock rounded up to the
//! whole second: deadlines fall on whole seconds, so the state is the one
//! the exact instant gives. Only live reads are kept; `as_of` reads are
//! rebuilt as before.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::web::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use fangkong_domain::Township;
use fangkong_projections::Clock;
use uuid::Uuid;

/// Renders kept for one (position, second): more would be days nobody
/// looks at twice.
const KEPT: usize = 512;

/// What a render depends on besides the zone and the day asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Moment {
    pub position: u64,
    pub second: i64,
    /// The township's day at the exact instant: a day begins at midnight,
    /// so it is not read from the rounded clock (which would turn to
    /// tomorrow up to a second early).
    pub today: NaiveDate,
}

impl Moment {
    /// The moment of a read at `now`, and the clock its render is made
    /// with: `now` rounded up to its whole second (deadlines fall on whole
    /// seconds and a report is missing once the clock is past one), with
    /// the exact instant's day.
    pub(crate) fn at(position: u64, now: DateTime<Utc>, township: &Township) -> (Moment, Clock) {
        let second = now.timestamp() + i64::from(now.timestamp_subsec_nanos() > 0);
        let today = township.local_date(now);
        let clock = Clock {
            now: DateTime::from_timestamp(second, 0).unwrap_or(now),
            today,
        };
        (
            Moment {
                position,
                second,
                today,
            },
            clock,
        )
    }

    fn after(&self, other: &Moment) -> bool {
        (self.position, self.second, self.today) > (other.position, other.second, other.today)
    }
}

/// A kept render: the answer's bytes and their digest (the `ETag`'s),
/// computed once with them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub(crate) body: Bytes,
    pub(crate) digest: crate::http::BodyDigest,
}

impl Rendered {
    pub(crate) fn of(body: Vec<u8>) -> Rendered {
        let body = Bytes::from(body);
        Rendered {
            digest: crate::http::BodyDigest::of(&body),
            body,
        }
    }
}

#[derive(Debug, Default)]
struct Kept {
    moment: Option<Moment>,
    renders: HashMap<(Uuid, NaiveDate), Option<Rendered>>,
}

/// The zone dashboards rendered at the latest moment asked for (clones
/// share them).
#[derive(Debug, Clone, Default)]
pub struct ZoneDashboards {
    kept: Arc<Mutex<Kept>>,
}

impl ZoneDashboards {
    /// The render of `zone`'s dashboard for `date` at `moment` (`None`:
    /// not on the board), made by `render` unless kept. Renders of an
    /// earlier moment are dropped when a later one is asked for; a read
    /// that arrives late with an earlier moment renders without keeping.
    /// A render that fails is answered as it failed and not kept.
    pub(crate) fn get_or_render<E>(
        &self,
        moment: Moment,
        zone: Uuid,
        date: NaiveDate,
        render: impl FnOnce() -> Result<Option<Rendered>, E>,
    ) -> Result<Option<Rendered>, E> {
        {
            let kept = self.lock();
            if kept.moment == Some(moment) {
                if let Some(found) = kept.renders.get(&(zone, date)) {
                    return Ok(found.clone());
                }
            }
        }
        let rendered = render()?;
        let mut kept = self.lock();
        let newer = kept.moment.is_none_or(|m| moment.after(&m));
        if newer {
            kept.moment = Some(moment);
            kept.renders.clear();
        }
        if kept.moment == Some(moment) && kept.renders.len() < KEPT {
            kept.renders.insert((zone, date), rendered.clone());
        }
        Ok(rendered)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        // A render never panics while the lock is held (it runs outside
        // it), so a poisoned lock still holds whole entries.
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2020, 2, 1).expect("a date")
    }

    fn rendered(text: &str) -> Rendered {
        Rendered::of(text.as_bytes().to_vec())
    }

    #[test]
    fn a_render_is_reused_at_the_same_moment_and_made_again_at_a_later_one() {
        let cache = ZoneDashboards::default();
        let zone = Uuid::now_v7();
        let at = |position, second| Moment {
            position,
            second,
            today: day(),
        };
        let mut renders = 0;
        let mut get = |m| {
            cache
                .get_or_render(m, zone, day(), || {
                    renders += 1;
                    Ok::<_, ()>(Some(rendered(&format!("render {renders}"))))
                })
                .expect("rendered")
                .map(|r| r.body)
        };
        assert_eq!(get(at(10, 100)), Some(Bytes::from("render 1")));
        assert_eq!(get(at(10, 100)), Some(Bytes::from("render 1")));
        // A write moved the log, or the clock moved a second: made again.
        assert_eq!(get(at(11, 100)), Some(Bytes::from("render 2")));
        assert_eq!(get(at(11, 101)), Some(Bytes::from("render 3")));
        // A late read of an earlier moment gets its own render, and does
        // not replace the later one.
        assert_eq!(get(at(10, 100)), Some(Bytes::from("render 4")));
        assert_eq!(get(at(11, 101)), Some(Bytes::from("render 3")));
    }

    #[test]
    fn zones_and_days_are_kept_apart() {
        let cache = ZoneDashboards::default();
        let m = Moment {
            position: 1,
            second: 1,
            today: day(),
        };
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let next = day().succ_opt().expect("a day");
        let keep = |zone, date, render: Option<&'static str>| {
            cache.get_or_render(m, zone, date, || Ok::<_, ()>(render.map(rendered)))
        };
        let _ = (keep(a, day(), Some("a")), keep(b, day(), None));
        let _ = keep(a, next, Some("a next"));
        // A failed render is answered and not kept.
        assert_eq!(
            cache.get_or_render(m, b, next, || Err("failed")),
            Err("failed")
        );
        let kept = |zone, date| {
            cache
                .get_or_render(m, zone, date, || Err::<Option<Rendered>, ()>(()))
                .expect("kept, not rendered again")
                .map(|r| r.body)
        };
        assert_eq!(kept(a, day()), Some(Bytes::from("a")));
        assert_eq!(kept(b, day()), None);
        assert_eq!(kept(a, next), Some(Bytes::from("a next")));
    }

    #[test]
    fn the_clock_rounds_up_to_the_whole_second_and_the_day_is_the_exact_instants() {
        let township = Township::default();
        let exact = DateTime::from_timestamp(1_580_522_400, 0).expect("an instant");
        let (m, clock) = Moment::at(5, exact, &township);
        assert_eq!((m.second, clock.now), (1_580_522_400, exact));
        let later = DateTime::from_timestamp(1_580_522_400, 1).expect("an instant");
        let (m, clock) = Moment::at(5, later, &township);
        assert_eq!(m.second, 1_580_522_401);
        assert_eq!(clock.now.timestamp(), 1_580_522_401);
        // Half a second before the township's midnight: the clock reads
        // midnight, the day is still today's, and it is part of the key.
        use chrono::TimeZone;
        let midnight = township
            .local_date(exact)
            .succ_opt()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .and_then(|local| township.time_zone.from_local_datetime(&local).single())
            .expect("a midnight")
            .with_timezone(&Utc);
        let before = midnight - chrono::Duration::milliseconds(500);
        let (m, clock) = Moment::at(5, before, &township);
        assert_eq!(clock.now, midnight);
        assert_eq!(clock.today, township.local_date(before));
        assert_eq!(m.today, township.local_date(before));
        let (at_midnight, _) = Moment::at(5, midnight, &township);
        assert_eq!(at_midnight.second, m.second);
        assert_ne!(at_midnight, m);
        assert_eq!(at_midnight.today, m.today.succ_opt().expect("a day"));
    }
}
