//! Where a TLE puts the satellite over a span of time: the orbit ahead of the live position on the
//! map, and the stretches the stored track lacks (the API was down, the Pi was off). Same
//! propagation and frames as the pass search; geodetic on WGS84. A prediction, never an
//! observation: nothing here is stored.

use super::path::{geodetic, geodetic_height_km};
use super::{Model, Orbit, PredictError, SunModel, seconds_between};
use crate::domain::Tle;
use crate::passes::Observer;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// The longest span predicted at once: two days (the map asks for one orbit, 93 min).
pub const MAX_PREDICTED_SPAN_S: i64 = 2 * 86_400;
/// The most points one prediction gives (a 1 s step covers 5.5 hours).
pub const MAX_PREDICTED_POINTS: usize = 20_000;
/// The longest step; the shortest is 1 s.
pub const MAX_STEP_S: u32 = 3_600;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PredictedPoint {
    pub time: DateTime<Utc>,
    /// The point below the satellite (geodetic, WGS84), degrees, to 1e-5 (about a metre).
    pub latitude: f64,
    pub longitude: f64,
    /// Height above the WGS84 ellipsoid, km, to the metre.
    pub altitude_km: f64,
}

/// One revolution of the TLE's orbit (by its mean motion): the ISS's is about 93 minutes.
pub fn orbital_period(tle: &Tle) -> Result<Duration, PredictError> {
    let orbit = Orbit::from_tle(tle)?;
    Ok(Duration::milliseconds((orbit.period_s * 1000.0).round() as i64))
}

/// The satellite every `step_s` seconds from `from` to `to`, both included (the last step may be
/// shorter). Pure: no clock, no I/O.
///
/// Errors, never panics: `InvalidOptions` for `from` after `to`, a step outside 1..=3600 s, a
/// span over two days or more than 20,000 points; otherwise as `predict` for the TLE (`BadTle`,
/// `UnsupportedOrbit`) and for a time SGP4 cannot reach (`Propagation`).
pub fn predicted_track(
    tle: &Tle,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    step_s: u32,
) -> Result<Vec<PredictedPoint>, PredictError> {
    let offsets = offsets(from, to, step_s)?;
    // The observer plays no part in a ground track; `Model` wants one for its look angles.
    let nowhere = Observer { latitude: 0.0, longitude: 0.0, altitude_m: 0.0 };
    let model = Model::new(Orbit::from_tle(tle)?, nowhere, from, SunModel::Almanac);
    offsets
        .into_iter()
        .map(|t| {
            let s = model.sample(t)?;
            let (latitude, longitude) = geodetic(s.position);
            let time = from
                .checked_add_signed(Duration::milliseconds((t * 1000.0).round() as i64))
                .ok_or_else(|| model.propagation_error(t, "the time is out of range"))?;
            Ok(PredictedPoint {
                time,
                latitude: round_to(latitude, 1e5),
                longitude: round_to(longitude, 1e5),
                altitude_km: round_to(geodetic_height_km(s.position, latitude), 1e3),
            })
        })
        .collect()
}

/// Seconds after `from` of each point, checked against the bounds before anything is computed.
fn offsets(from: DateTime<Utc>, to: DateTime<Utc>, step_s: u32) -> Result<Vec<f64>, PredictError> {
    let bad = |why: String| Err(PredictError::InvalidOptions(why));
    if !(1..=MAX_STEP_S).contains(&step_s) {
        return bad(format!("step_s must be a whole number of seconds from 1 to {MAX_STEP_S}, not {step_s}"));
    }
    if from > to {
        return bad(format!("from ({from}) is after to ({to})"));
    }
    let span = to.signed_duration_since(from);
    if span > Duration::seconds(MAX_PREDICTED_SPAN_S) {
        return bad(format!(
            "from {from} to {to} is {:.1} days; at most {} days are predicted at once",
            span.num_seconds() as f64 / 86_400.0,
            MAX_PREDICTED_SPAN_S / 86_400
        ));
    }
    let span_s = seconds_between(from, to);
    let step = f64::from(step_s);
    let whole_steps = (span_s / step).floor() as usize;
    let ends_on_a_step = (whole_steps as f64 * step - span_s).abs() < 1e-3;
    let count = whole_steps + 1 + usize::from(!ends_on_a_step);
    if count > MAX_PREDICTED_POINTS {
        return bad(format!(
            "from {from} to {to} every {step_s} s is {count} points; at most {MAX_PREDICTED_POINTS}: \
             use a larger step_s or a shorter span"
        ));
    }
    let mut offsets: Vec<f64> = (0..=whole_steps).map(|i| i as f64 * step).collect();
    if !ends_on_a_step {
        offsets.push(span_s);
    }
    Ok(offsets)
}

fn round_to(x: f64, scale: f64) -> f64 {
    (x * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passes::GroundTrack;
    use crate::passes::great_circle_km;

    fn tle() -> Tle {
        crate::sources::tle_parse::parse_tle(include_bytes!("../../../tests/fixtures/passes/iss-2023-09-18.tle"))
            .unwrap()
    }

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn one_orbit_every_30_s_follows_the_ground_track_at_the_iss_height() {
        let tle = tle();
        let period = orbital_period(&tle).unwrap();
        // 15.4938 rev/day: 92.94 min.
        assert_eq!(period.num_seconds(), 5576, "{period}");
        let from = t("2023-09-18T12:00:00Z");
        let points = predicted_track(&tle, from, from + period, 30).unwrap();
        assert_eq!(points.len(), 5576 / 30 + 2, "every 30 s, and the end");
        assert_eq!(points[0].time, from);
        assert_eq!(points[1].time, from + Duration::seconds(30));
        assert_eq!(points.last().unwrap().time, from + period);
        // The same subpoint as the position check's propagation (an independent path to it).
        let ground = GroundTrack::new(&tle).unwrap();
        for p in &points {
            let (lat, lon) = ground.subpoint(p.time).unwrap();
            assert!(great_circle_km(lat, lon, p.latitude, p.longitude) < 0.01, "{p:?} vs {lat},{lon}");
            assert!((400.0..440.0).contains(&p.altitude_km), "{p:?}");
            assert!(p.latitude.abs() <= 52.0 && p.longitude.abs() <= 180.0, "{p:?}");
        }
        // After one revolution the ground has turned by 360 / 15.49 deg under the orbit: the
        // track ends west of where it began, at about the same latitude.
        let (first, last) = (points[0], *points.last().unwrap());
        assert!((first.latitude - last.latitude).abs() < 1.0, "{first:?} {last:?}");
        let west = (first.longitude - last.longitude).rem_euclid(360.0);
        assert!((22.0..25.0).contains(&west), "{west}");
    }

    #[test]
    fn a_span_that_is_not_a_whole_number_of_steps_ends_at_to() {
        let from = t("2023-09-18T12:00:00.250Z");
        let points = predicted_track(&tle(), from, from + Duration::milliseconds(2_500), 1).unwrap();
        let times: Vec<i64> = points.iter().map(|p| (p.time - from).num_milliseconds()).collect();
        assert_eq!(times, [0, 1_000, 2_000, 2_500]);
        let one = predicted_track(&tle(), from, from, 30).unwrap();
        assert_eq!(one.len(), 1, "from = to is the one point");
    }

    #[test]
    fn the_bounds_are_errors_that_say_what_to_change() {
        let tle = tle();
        let from = t("2023-09-18T12:00:00Z");
        let err = |to: DateTime<Utc>, step: u32| match predicted_track(&tle, from, to, step) {
            Err(PredictError::InvalidOptions(m)) => m,
            other => panic!("{to} every {step} s: {other:?}"),
        };
        assert!(err(from + Duration::hours(1), 0).contains("step_s must be"));
        assert!(err(from + Duration::hours(1), 3_601).contains("from 1 to 3600"));
        assert!(err(from + Duration::hours(1), u32::MAX).contains("step_s"));
        assert!(err(from - Duration::seconds(1), 30).contains("after to"));
        assert!(err(from + Duration::days(2) + Duration::milliseconds(1), 3_600).contains("at most 2 days"));
        assert!(err(from + Duration::seconds(20_000), 1).contains("20001 points; at most 20000"));
        // Exactly at the bounds: answered.
        assert_eq!(predicted_track(&tle, from, from + Duration::seconds(19_999), 1).unwrap().len(), 20_000);
        assert_eq!(predicted_track(&tle, from, from + Duration::days(2), 3_600).unwrap().len(), 49);
    }

    #[test]
    fn hostile_windows_are_errors_not_panics() {
        let tle = tle();
        let (min, max) = (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC);
        for (from, to, step) in [
            (min, max, 1),
            (max, min, 30),
            (min, min + Duration::seconds(60), 30),
            (max - Duration::seconds(60), max, 30),
            (max, max, 1),
            (t("2100-12-31T23:00:00Z"), t("2100-12-31T23:59:59Z"), 1),
            (t("2000-01-01T00:00:00Z"), t("2000-01-01T01:00:00Z"), 3_600),
        ] {
            // Far from the epoch SGP4 gives up or puts the ISS inside the Earth: a `Propagation`
            // error (or, within its reach, a track). Never a panic, never a point that is not finite.
            match predicted_track(&tle, from, to, step) {
                Ok(points) => assert!(points.iter().all(|p| p.latitude.is_finite() && p.altitude_km.is_finite())),
                Err(PredictError::InvalidOptions(_) | PredictError::Propagation(_)) => {}
                Err(e) => panic!("{from}..{to}: {e}"),
            }
        }
        let broken = Tle { line2: "2 25544".into(), ..tle.clone() };
        assert!(matches!(
            predicted_track(&broken, min, min, 30),
            Err(PredictError::InvalidOptions(_) | PredictError::BadTle(_))
        ));
        assert!(matches!(orbital_period(&broken), Err(PredictError::BadTle(_))));
    }
}
