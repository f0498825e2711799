//! Which revolution the satellite is on at a given time, counted so that a pass keeps its number
//! when a newer TLE moves it by seconds (or a two-week-old one by minutes): the calendar's stable
//! UIDs (`passes::calendar`).
//!
//! A TLE carries the revolution number at its epoch, counted from the ascending node (argument of
//! latitude 0°) and kept consistent from one element set to the next. Here revolutions are counted
//! from another point of the orbit, the boundary: the southernmost point (argument of latitude 270°)
//! for an observer in the northern hemisphere (or on the equator), the northernmost (90°) for one in
//! the southern. An observer sees a pass only while the ground track is within about 20° of latitude
//! (0° elevation at the ISS's height), so from the northern hemisphere every culmination has the
//! satellite north of 20° S: at an argument of latitude at least 64° from 270° for the ISS's 51.6°
//! inclination, about 16 minutes of orbit. A culmination would have to move by that much for its count
//! to change; rounding a time to a window (or the ascending node, which lies under the observer's
//! passes at low latitudes) would flip with a shift of seconds.
//!
//! The count at `t` is the conventional revolution number at the last boundary crossing before `t`:
//! the TLE's number at the epoch, plus the whole turns of the argument of latitude from the epoch to
//! `t`, followed with SGP4 in steps of a quarter orbit (each step turns the angle by about 90°, so
//! the unwrapping cannot miss or invent a turn). The epoch's angle is the osculating one,
//! placed on the turn that the TLE's mean elements (argument of perigee plus mean anomaly) name, so
//! that an epoch just before or after the ascending node counts as the TLE counts. The TLE's field
//! has five digits and wraps at 100000; the count wraps with it, so that element sets from both sides
//! of the wrap agree.

use super::geometry::{Vec3, dot, is_finite, norm};
use super::{Orbit, PredictError};
use crate::domain::Tle;
use crate::passes::Observer;
use chrono::{DateTime, Utc};

/// The TLE's revolution-number field has five digits.
const REVOLUTION_FIELD: i64 = 100_000;
/// Argument of latitude of the southernmost and the northernmost point of the orbit, degrees.
const SOUTHERNMOST_DEG: f64 = 270.0;
const NORTHERNMOST_DEG: f64 = 90.0;

/// Revolution numbers from one TLE for one observer; each `at` propagates onwards from the
/// previous one, so a list of passes in time order costs one sweep over the window.
pub struct Revolutions {
    orbit: Orbit,
    at_epoch: i64,
    boundary_deg: f64,
    step_min: f64,
    /// Minutes since the epoch, and the unwrapped argument of latitude there (degrees).
    last: (f64, f64),
}

impl Revolutions {
    /// Errors as `predict` does for a TLE it cannot use, or when SGP4 fails at the epoch.
    pub fn new(tle: &Tle, observer: Observer) -> Result<Revolutions, PredictError> {
        let boundary = if observer.latitude >= 0.0 { SOUTHERNMOST_DEG } else { NORTHERNMOST_DEG };
        Revolutions::counted_from(tle, boundary)
    }

    fn counted_from(tle: &Tle, boundary_deg: f64) -> Result<Revolutions, PredictError> {
        let orbit = Orbit::from_tle(tle)?;
        // `Orbit::from_tle` has checked the lines; these are the same elements.
        let elements = sgp4::Elements::from_tle(None, tle.line1.trim_end().as_bytes(), tle.line2.trim_end().as_bytes())
            .map_err(|e| PredictError::BadTle(e.to_string()))?;
        let mean_deg = (elements.argument_of_perigee + elements.mean_anomaly).rem_euclid(360.0);
        let mut revolutions = Revolutions {
            orbit,
            at_epoch: elements.revolution_number as i64,
            boundary_deg,
            step_min: 1_440.0 / elements.mean_motion / 4.0,
            last: (0.0, 0.0),
        };
        let osculating = revolutions.argument_of_latitude_deg(0.0)?;
        // The turn (-1, 0 or +1) that puts the osculating angle nearest the mean one.
        let turn = ((mean_deg - osculating) / 360.0).round();
        revolutions.last = (0.0, osculating + 360.0 * turn);
        Ok(revolutions)
    }

    /// The revolution number at `time`: the TLE's (conventional) number at the last boundary
    /// crossing before it, modulo 100000 like the TLE's field.
    pub fn at(&mut self, time: DateTime<Utc>) -> Result<u32, PredictError> {
        let since = time.naive_utc() - self.orbit.epoch;
        let target = (since.num_milliseconds() as f64) / 60_000.0;
        let (mut minutes, mut angle) = self.last;
        while minutes != target {
            minutes = if (target - minutes).abs() <= self.step_min {
                target
            } else {
                minutes + self.step_min.copysign(target - minutes)
            };
            let next = self.argument_of_latitude_deg(minutes)?;
            angle += (next - angle + 180.0).rem_euclid(360.0) - 180.0;
        }
        self.last = (minutes, angle);
        let turns = ((angle - self.boundary_deg) / 360.0).floor() as i64;
        Ok((self.at_epoch + turns).rem_euclid(REVOLUTION_FIELD) as u32)
    }

    /// The osculating argument of latitude (degrees, 0..360): the angle in the orbit's plane from
    /// the ascending node to the satellite, in the direction of motion (90° is the northernmost point).
    fn argument_of_latitude_deg(&self, minutes: f64) -> Result<f64, PredictError> {
        let failed = |why: String| PredictError::Propagation(format!("{minutes:.0} min from the TLE's epoch: {why}"));
        let p = self
            .orbit
            .constants
            .propagate_afspc_compatibility_mode(sgp4::MinutesSinceEpoch(minutes))
            .map_err(|e| failed(format!("SGP4 failed ({e})")))?;
        let (r, v) = (p.position, p.velocity);
        if !is_finite(r) || !is_finite(v) {
            return Err(failed("SGP4 gave a non-finite state".into()));
        }
        let h = cross(r, v);
        // The ascending node lies along z × h; an equatorial orbit has none, and x stands in.
        let node = [-h[1], h[0], 0.0];
        let node = if norm(node) > 1e-9 * norm(h) { scale(node, 1.0 / norm(node)) } else { [1.0, 0.0, 0.0] };
        let ahead = cross(scale(h, 1.0 / norm(h)), node);
        Ok(dot(r, ahead).atan2(dot(r, node)).to_degrees().rem_euclid(360.0))
    }
}

fn cross(a: Vec3, b: Vec3) -> Vec3 {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}

fn scale(a: Vec3, k: f64) -> Vec3 {
    [a[0] * k, a[1] * k, a[2] * k]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passes::{PassOptions, predict};
    use chrono::TimeDelta;

    const OSLO: Observer = Observer { latitude: 59.9139, longitude: 10.7522, altitude_m: 20.0 };
    const SYDNEY: Observer = Observer { latitude: -33.8688, longitude: 151.2093, altitude_m: 40.0 };
    const QUITO: Observer = Observer { latitude: -0.18, longitude: -78.47, altitude_m: 2850.0 };

    fn parse(text: &str) -> Tle {
        crate::sources::tle_parse::parse_tle(text.as_bytes()).unwrap()
    }

    /// CelesTrak's element sets of 2023-09-17 08:21, 2023-09-18 10:40 (the reference passes' TLE)
    /// and 2023-09-24 04:24 (tests/fixtures/passes/README.md).
    fn sep17() -> Tle {
        parse(
            "ISS (ZARYA)\n1 25544U 98067A   23260.34808469  .00013740  00000+0  25395-3 0  9996\n\
             2 25544  51.6410 232.0124 0005832  28.1553 120.1076 15.49346510416089\n",
        )
    }
    fn sep18() -> Tle {
        parse(include_str!("../../../tests/fixtures/passes/iss-2023-09-18.tle"))
    }
    fn sep24() -> Tle {
        parse(include_str!("../../../tests/fixtures/passes/iss-2023-09-24.tle"))
    }

    /// The TLE with its epoch moved by `secs` (the same elements a little later or earlier: the
    /// predictions move by about as much).
    fn moved(tle: &Tle, secs: f64) -> Tle {
        let l1 = tle.line1.trim_end();
        let day: f64 = l1[20..32].parse::<f64>().unwrap() + secs / 86_400.0;
        let mut new = format!("{}{day:012.8}{}", &l1[..20], &l1[32..68]);
        let sum: u32 = new.chars().map(|c| if c == '-' { 1 } else { c.to_digit(10).unwrap_or(0) }).sum();
        new.push(char::from_digit(sum % 10, 10).unwrap());
        parse(&format!("ISS (ZARYA)\n{new}\n{}\n", tle.line2))
    }

    /// (culmination, revolution) of the visible and invisible passes of `days` from `from`.
    fn numbered(tle: &Tle, observer: Observer, from: &str, days: i64) -> Vec<(DateTime<Utc>, u32)> {
        let from: DateTime<Utc> = from.parse().unwrap();
        let passes = predict(tle, observer, from, from + TimeDelta::days(days), PassOptions::default()).unwrap();
        let mut revs = Revolutions::new(tle, observer).unwrap();
        passes.iter().map(|p| (p.culmination.time, revs.at(p.culmination.time).unwrap())).collect()
    }

    #[test]
    fn counted_from_the_ascending_node_one_tle_gives_the_next_ones_revolution_number() {
        // The conventional count (boundary at the node) from one TLE, at another's epoch, is the
        // number the other carries: the counting agrees with the element sets' own.
        for (from, to) in [(sep18(), sep24()), (sep24(), sep18()), (sep17(), sep24()), (sep18(), sep17())] {
            let mut revs = Revolutions::counted_from(&from, 0.0).unwrap();
            let want: u32 = to.line2[63..68].trim().parse().unwrap();
            assert_eq!(revs.at(to.epoch).unwrap(), want, "from {} to {}", from.epoch, to.epoch);
        }
        assert_eq!(Revolutions::counted_from(&sep18(), 0.0).unwrap().at(sep18().epoch).unwrap(), 41625);
    }

    #[test]
    fn each_pass_keeps_its_number_across_tles_days_apart() {
        for (observer, from) in
            [(OSLO, "2023-09-24T06:00:00Z"), (SYDNEY, "2023-09-24T06:00:00Z"), (QUITO, "2023-09-24T06:00:00Z")]
        {
            let old = numbered(&sep18(), observer, from, 10);
            let new = numbered(&sep24(), observer, from, 10);
            let older = numbered(&sep17(), observer, from, 10);
            assert!(new.len() >= 20, "{observer:?}: {} passes", new.len());
            let mut shared = 0;
            for (time, rev) in &new {
                // The same physical pass by the other TLEs: the one culminating within 5 minutes.
                for other in [&old, &older] {
                    if let Some((t, r)) = other.iter().find(|(t, _)| (*t - *time).abs() < TimeDelta::minutes(5)) {
                        assert_eq!(r, rev, "{observer:?}: the pass culminating at {time} (by Sep 24) / {t}");
                        shared += 1;
                    }
                }
            }
            assert!(shared + 4 >= 2 * new.len(), "{observer:?}: only {shared} of {} passes shared", 2 * new.len());
            // Distinct passes, distinct numbers; consecutive passes one or a few revolutions apart.
            for w in new.windows(2) {
                assert!((1..=16).contains(&(w[1].1 - w[0].1)), "{observer:?}: {w:?}");
            }
        }
    }

    #[test]
    fn a_shift_of_seconds_never_changes_a_number() {
        let base = sep18();
        let want = numbered(&base, OSLO, "2023-09-18T12:00:00Z", 10);
        for secs in [-90.0, -7.0, -1.0, 1.0, 3.0, 30.0, 120.0] {
            let got = numbered(&moved(&base, secs), OSLO, "2023-09-18T12:00:00Z", 10);
            // A pass at an end of the window or just reaching 10° may come or go; every other is the
            // same pass, moved by about the shift (a little more: the Earth has not turned with it).
            assert!(got.len().abs_diff(want.len()) <= 2, "{secs} s: {} vs {} passes", got.len(), want.len());
            let mut matched = 0;
            for (t, r) in &got {
                let near = |(t0, _): &&(DateTime<Utc>, u32)| {
                    (*t - *t0).abs() <= TimeDelta::seconds((secs.abs() * 1.1) as i64 + 3)
                };
                if let Some((t0, r0)) = want.iter().find(near) {
                    assert_eq!(r, r0, "{secs} s: the pass at {t0}");
                    matched += 1;
                }
            }
            assert!(matched + 2 >= want.len(), "{secs} s: {matched} of {} passes matched", want.len());
        }
    }

    #[test]
    fn the_count_runs_both_ways_and_in_any_order() {
        let tle = sep18();
        let times: Vec<DateTime<Utc>> = [-3.0, 0.0, 0.3, 5.0, 2.0, -1.0]
            .iter()
            .map(|d| tle.epoch + TimeDelta::minutes((d * 1440.0) as i64))
            .collect();
        let mut sweep = Revolutions::new(&tle, OSLO).unwrap();
        for t in &times {
            let fresh = Revolutions::new(&tle, OSLO).unwrap().at(*t).unwrap();
            assert_eq!(sweep.at(*t).unwrap(), fresh, "{t}");
        }
        // About 15.49 revolutions a day.
        let mut revs = Revolutions::new(&tle, OSLO).unwrap();
        let a = revs.at(tle.epoch).unwrap();
        let b = revs.at(tle.epoch + TimeDelta::days(10)).unwrap();
        assert!((154..=156).contains(&(b - a)), "{a} -> {b}");
    }

    #[test]
    fn the_count_wraps_with_the_five_digit_field() {
        // The Sep 18 elements as if the ISS had flown 58,380 more revolutions: 99,999 at the epoch.
        let base = sep18();
        let mut l2 = format!("{}99999", &base.line2[..63]);
        let sum: u32 = l2.chars().map(|c| if c == '-' { 1 } else { c.to_digit(10).unwrap_or(0) }).sum();
        l2.push(char::from_digit(sum % 10, 10).unwrap());
        let tle = parse(&format!("ISS (ZARYA)\n{}\n{l2}\n", base.line1));
        let mut revs = Revolutions::counted_from(&tle, 0.0).unwrap();
        assert_eq!(revs.at(tle.epoch).unwrap(), 99_999);
        assert_eq!(revs.at(tle.epoch + TimeDelta::hours(3)).unwrap(), 1);
    }
}
