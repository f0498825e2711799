//! "ISS visible now" and "ISS overhead" for the device's location: what the sky holds at an
//! instant, read from the feed's last predictions, and when that next changes (the feed wakes
//! then, so a sensor flips on time and not at the next minute). Pure: the time is passed in.
//!
//! Both are half-open windows: on from the start (`visible_from`, the up-crossing of the overhead
//! elevation), off from the end (`visible_to`, the down-crossing); times are whole seconds, as
//! the predictions are.

use crate::passes::Pass;
use chrono::{DateTime, Utc};
use std::ops::Range;

/// What the sky holds now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SkyNow {
    /// A visible pass is in progress (between its `visible_from` and `visible_to`).
    pub visible_now: bool,
    /// The ISS is above the overhead elevation (`email.overhead_elevation_deg`), visible or not.
    pub overhead: bool,
}

/// The feed's predictions from its last read, in time order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SkyForecast {
    /// The visible passes of the next hours (the one in progress included).
    pub passes: Vec<Pass>,
    /// When the ISS is above the overhead elevation.
    pub overhead: Vec<Range<DateTime<Utc>>>,
    /// Why nothing could be predicted: no TLE, no location, a TLE that does not fit the clock.
    pub refused: Option<String>,
}

impl SkyForecast {
    /// Nothing predicted, and why.
    pub fn refused(why: &str) -> SkyForecast {
        SkyForecast { refused: Some(why.to_owned()), ..SkyForecast::default() }
    }

    /// The next visible pass not over at `now` (the one in progress, if any).
    pub fn next_pass(&self, now: DateTime<Utc>) -> Option<&Pass> {
        self.passes.iter().find(|p| p.visible_to.is_some_and(|t| t > now))
    }

    /// Why there is no next pass at `now` to tell (`None` while there is one).
    pub fn no_pass_reason(&self, now: DateTime<Utc>) -> Option<String> {
        match (self.next_pass(now), &self.refused) {
            (Some(_), _) => None,
            (None, Some(why)) => Some(why.clone()),
            (None, None) => Some(format!("no visible pass in the next {} hours", super::PASS_HOURS)),
        }
    }

    pub fn at(&self, now: DateTime<Utc>) -> SkyNow {
        SkyNow {
            visible_now: self.visible().any(|w| w.contains(&now)),
            overhead: self.overhead.iter().any(|w| w.contains(&now)),
        }
    }

    /// The first moment after `now` when `at` may change: the next edge of any window.
    pub fn next_change(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let edges = self.visible().chain(self.overhead.iter().cloned()).flat_map(|w| [w.start, w.end]);
        edges.filter(|t| *t > now).min()
    }

    fn visible(&self) -> impl Iterator<Item = Range<DateTime<Utc>>> + '_ {
        self.passes.iter().filter_map(|p| Some(p.visible_from?..p.visible_to?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passes::{Observer, PassOptions, PassQuery, elevation_windows};
    use chrono::TimeDelta;

    const OSLO: Observer = Observer { latitude: 59.9139, longitude: 10.7522, altitude_m: 20.0 };
    /// Lowered from the default 60 deg: no pass over Oslo climbs that high (the highest of the
    /// reference passes reaches 20.2 deg).
    const OVERHEAD_DEG: f64 = 15.0;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn tle() -> crate::domain::Tle {
        crate::sources::tle_parse::parse_tle(include_bytes!("../../tests/fixtures/passes/iss-2023-09-18.tle")).unwrap()
    }

    /// What the feed predicts at `now`: the visible passes of the next 72 h and the overhead
    /// windows, from the fixture TLE (the reference passes' own).
    fn forecast(now: DateTime<Utc>) -> SkyForecast {
        let query = PassQuery {
            observer: OSLO,
            from: now,
            hours: 72.0,
            options: PassOptions::default(),
            all: false,
            max_magnitude: None,
            brightest_first: false,
        };
        let overhead = elevation_windows(&tle(), OSLO, now, now + TimeDelta::hours(72), OVERHEAD_DEG).unwrap();
        SkyForecast { passes: query.run(&tle()).unwrap(), overhead, refused: None }
    }

    /// Oslo's second reference pass (Skyfield): visible 19:38:31-19:40:15, culminating at
    /// 19:40:58 at 18.891 deg; the first of the window that is visible.
    fn reference_pass() -> Pass {
        let all: Vec<Pass> =
            serde_json::from_str(include_str!("../../tests/fixtures/passes/oslo-2023-09-18-72h.json")).unwrap();
        all.into_iter().find(|p| p.visible).unwrap()
    }

    fn sky(visible_now: bool, overhead: bool) -> SkyNow {
        SkyNow { visible_now, overhead }
    }

    #[test]
    fn before_during_and_after_a_visible_pass() {
        let reference = reference_pass();
        assert_eq!(reference.visible_from, Some(at("2023-09-18T19:38:31Z")));
        let f = forecast(at("2023-09-18T19:30:00Z"));
        let next = f.next_pass(at("2023-09-18T19:30:00Z")).unwrap();
        let (from, to) = (next.visible_from.unwrap(), next.visible_to.unwrap());
        // The reference's visible window, to its one-second grid.
        let off = |a: DateTime<Utc>, b: Option<DateTime<Utc>>| (a - b.unwrap()).num_seconds().abs();
        assert!(off(from, reference.visible_from) <= 1 && off(to, reference.visible_to) <= 1, "{next:?}");
        assert!(next.magnitude.is_some(), "{next:?}");

        let second = TimeDelta::seconds(1);
        assert!(!f.at(from - second).visible_now);
        assert_eq!(f.next_change(from - second), Some(from), "the feed wakes at the visible start");
        assert!(f.at(from).visible_now, "on from visible_from");
        assert!(f.at(to - second).visible_now);
        assert!(!f.at(to).visible_now, "off from visible_to");
        // While it is on and after it ends, the next pass is the same one, then the following.
        assert_eq!(f.next_pass(to - second), Some(next));
        let following = f.next_pass(to).unwrap();
        assert!(following.visible_from.unwrap() > to, "{following:?}");
        assert!(!f.at(to + TimeDelta::minutes(10)).visible_now);

        // A feed that read mid-pass (a restart during it) sees it in progress.
        let mid = from + TimeDelta::seconds(30);
        assert_eq!(forecast(mid).at(mid), sky(true, false));
    }

    #[test]
    fn overhead_is_on_between_the_crossings_of_the_overhead_elevation() {
        let f = forecast(at("2023-09-18T19:30:00Z"));
        let culmination = reference_pass().culmination;
        let w = f.overhead.iter().find(|w| w.contains(&culmination.time)).expect("an overhead window").clone();
        let second = TimeDelta::seconds(1);
        let elevation = |t| crate::passes::look_angles(&tle(), OSLO, t).unwrap().elevation_deg;
        // The edges are the crossings of 15 deg (to the second), inside rise..set.
        assert!(elevation(w.start - second) < OVERHEAD_DEG && elevation(w.start + second) > OVERHEAD_DEG);
        assert!(elevation(w.end - second) > OVERHEAD_DEG && elevation(w.end + second) < OVERHEAD_DEG);

        // This pass: visible from 19:38:31, overhead from about 19:39:3x, no longer visible
        // from about 19:40:15 (the ISS enters the Earth's shadow) while still overhead, then down.
        let pass = f.next_pass(at("2023-09-18T19:30:00Z")).unwrap();
        let (from, to) = (pass.visible_from.unwrap(), pass.visible_to.unwrap());
        assert!(from < w.start && w.start < to && to < w.end, "{w:?}");
        let edges = [from, w.start, to, w.end];
        let states = [sky(true, false), sky(true, true), sky(false, true), sky(false, false)];
        assert_eq!(f.at(from - second), sky(false, false));
        let mut now = from - TimeDelta::minutes(5);
        for (edge, state) in edges.iter().zip(states) {
            assert_eq!(f.next_change(now), Some(*edge), "after {now}");
            assert_eq!(f.at(*edge - second), f.at(now), "nothing changes before the edge");
            assert_eq!(f.at(*edge), state, "at {edge}");
            now = *edge;
        }
        // Then nothing until the next window, more than an hour later (21:14 rises to 18.5 deg).
        let next = f.next_change(w.end).unwrap();
        assert!(next - w.end > TimeDelta::hours(1), "{next}");
        assert_eq!(f.at(next), sky(false, true), "the 21:14 pass: overhead, not visible (in the Earth's shadow)");
    }

    #[test]
    fn nothing_predicted_is_off_with_no_change_to_wait_for() {
        let f = SkyForecast::default();
        let now = at("2023-09-18T19:39:00Z");
        assert_eq!(f.at(now), sky(false, false));
        assert_eq!(f.next_change(now), None);
        assert_eq!(f.next_pass(now), None);
    }
}
