//! The point on the ground under the satellite at a given time, from a TLE parsed once: what the
//! ISS position source checks reported positions against (a position far from it contradicts the
//! orbit). Same propagation and frames as the pass search (SGP4 AFSPC mode, TEME -> pseudo
//! Earth-fixed through GMST 1982), geodetic latitude on WGS84.

use super::geometry::{SECONDS_PER_DAY, WGS84_A_KM, WGS84_F, gmst82, is_finite, norm, rotate_to_earth_fixed};
use super::{J2000_UNIX_S, Orbit, PredictError, WGS72_RADIUS_KM};
use crate::domain::Tle;
use chrono::{DateTime, Utc};

/// Mean Earth radius (IUGG), for great-circle distances between ground points.
const MEAN_EARTH_RADIUS_KM: f64 = 6_371.008_8;

/// A TLE's orbit, ready to propagate: SGP4's constants are computed once, so each position
/// costs one propagation (microseconds, also on a Pi).
pub struct GroundTrack {
    orbit: Orbit,
    epoch: DateTime<Utc>,
}

impl GroundTrack {
    /// Errors as `predict` does for a TLE SGP4 cannot use or an orbit that is not near-Earth.
    pub fn new(tle: &Tle) -> Result<GroundTrack, PredictError> {
        Ok(GroundTrack { orbit: Orbit::from_tle(tle)?, epoch: tle.epoch })
    }

    pub fn epoch(&self) -> DateTime<Utc> {
        self.epoch
    }

    /// Geodetic latitude and longitude (degrees, WGS84) of the point under the satellite at `time`.
    pub fn subpoint(&self, time: DateTime<Utc>) -> Result<(f64, f64), PredictError> {
        let since_epoch = time.naive_utc() - self.orbit.epoch;
        let minutes = (since_epoch.num_milliseconds() as f64) / 60_000.0;
        let failed = |why: String| PredictError::Propagation(format!("{time}: {why}"));
        let prediction = self
            .orbit
            .constants
            .propagate_afspc_compatibility_mode(sgp4::MinutesSinceEpoch(minutes))
            .map_err(|e| failed(format!("SGP4 failed ({e})")))?;
        let r = prediction.position;
        if !is_finite(r) || norm(r) < WGS72_RADIUS_KM {
            return Err(failed("SGP4 puts the satellite inside the Earth".into()));
        }
        let subsec = f64::from(time.timestamp_subsec_nanos()) * 1e-9;
        let days = ((time.timestamp() - J2000_UNIX_S) as f64 + subsec) / SECONDS_PER_DAY;
        let [x, y, z] = rotate_to_earth_fixed(r, gmst82(days).0);
        Ok((geodetic_latitude_deg(x, y, z), y.atan2(x).to_degrees()))
    }

    /// Great-circle distance (km, on the mean sphere) from `latitude`, `longitude` to the point
    /// under the satellite at `time`.
    pub fn distance_km(&self, time: DateTime<Utc>, latitude: f64, longitude: f64) -> Result<f64, PredictError> {
        let (lat, lon) = self.subpoint(time)?;
        Ok(great_circle_km(latitude, longitude, lat, lon))
    }
}

/// Geodetic latitude of an Earth-fixed point (km): Bowring's iteration, which converges to well
/// under a metre in three steps at orbital heights.
fn geodetic_latitude_deg(x: f64, y: f64, z: f64) -> f64 {
    let e2 = WGS84_F * (2.0 - WGS84_F);
    let p = x.hypot(y);
    let mut lat = z.atan2(p * (1.0 - e2));
    for _ in 0..4 {
        let sin = lat.sin();
        let n = WGS84_A_KM / (1.0 - e2 * sin * sin).sqrt();
        lat = (z + e2 * n * sin).atan2(p);
    }
    lat.to_degrees()
}

/// Haversine distance in km between two points given in degrees.
pub fn great_circle_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * MEAN_EARTH_RADIUS_KM * h.clamp(0.0, 1.0).sqrt().asin()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Tle;

    /// The reference TLE (tests/fixtures/passes), epoch 2023-09-18T10:40:25.372Z.
    fn reference_tle() -> Tle {
        let text = include_str!("../../../tests/fixtures/passes/iss-2023-09-18.tle");
        let lines: Vec<&str> = text.lines().collect();
        Tle {
            epoch: "2023-09-18T10:40:25.372Z".parse().unwrap(),
            norad_id: 25544,
            name: None,
            line1: lines[1].trim_end().into(),
            line2: lines[2].trim_end().into(),
        }
    }

    #[test]
    fn great_circle_distances() {
        assert!(great_circle_km(0.0, 0.0, 0.0, 0.0).abs() < 1e-9);
        // A quarter of the equator.
        assert!((great_circle_km(0.0, 0.0, 0.0, 90.0) - 10_007.5).abs() < 1.0);
        // Across the antimeridian: 1 degree, not 359.
        assert!((great_circle_km(0.0, 179.5, 0.0, -179.5) - 111.2).abs() < 0.1);
        assert!((great_circle_km(90.0, 0.0, -90.0, 0.0) - 20_015.1).abs() < 1.0);
    }

    #[test]
    fn geodetic_latitude_is_that_of_the_ellipsoid_normal() {
        // A point 400 km above 45 degrees geodetic latitude (on the prime meridian).
        let e2 = WGS84_F * (2.0 - WGS84_F);
        let lat = 45f64.to_radians();
        let n = WGS84_A_KM / (1.0 - e2 * lat.sin().powi(2)).sqrt();
        let (x, z) = ((n + 400.0) * lat.cos(), (n * (1.0 - e2) + 400.0) * lat.sin());
        assert!((geodetic_latitude_deg(x, 0.0, z) - 45.0).abs() < 1e-7);
        assert_eq!(geodetic_latitude_deg(7000.0, 0.0, 0.0), 0.0);
        assert!((geodetic_latitude_deg(0.0, 0.0, 7000.0) - 90.0).abs() < 1e-9);
    }

    /// The subpoint moves along the orbit: at the ground speed of the ISS (about 7 km/s), it stays
    /// within the inclination, and one orbit later (93 min) it has come round again.
    #[test]
    fn the_subpoint_follows_the_orbit() {
        let track = GroundTrack::new(&reference_tle()).unwrap();
        let t0 = track.epoch() + chrono::Duration::hours(5);
        let mut max_lat: f64 = 0.0;
        for s in (0..5_600).step_by(10) {
            let (lat, lon) = track.subpoint(t0 + chrono::Duration::seconds(s)).unwrap();
            assert!((-180.0..=180.0).contains(&lon));
            max_lat = max_lat.max(lat.abs());
        }
        // Inclination 51.64 deg; the geodetic latitude of the subpoint peaks a little above it.
        assert!((51.5..52.2).contains(&max_lat), "{max_lat}");
        let (a, b) = (track.subpoint(t0).unwrap(), track.subpoint(t0 + chrono::Duration::seconds(10)).unwrap());
        let step = great_circle_km(a.0, a.1, b.0, b.1);
        assert!((65.0..80.0).contains(&step), "10 s of ground track: {step} km");
    }
}
