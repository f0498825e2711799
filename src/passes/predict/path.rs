//! A pass sampled for drawing: where the ISS is over the ground and in the observer's sky, from
//! rise to set (the map page draws both).

use super::geometry::{Vec3, WGS84_A_KM, WGS84_F};
use super::{Model, Orbit, PredictError, SunModel, validate_observer};
use crate::domain::Tle;
use crate::passes::{Observer, Pass};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PathPoint {
    pub time: DateTime<Utc>,
    /// The point below the ISS (geodetic, WGS84), degrees.
    pub latitude: f64,
    pub longitude: f64,
    pub azimuth_deg: f64,
    pub elevation_deg: f64,
    /// The apparent magnitude at this moment; `null` while the ISS is in the Earth's shadow.
    #[serde(default)]
    pub magnitude: Option<f64>,
}

/// Points every `step_s` seconds from the pass's rise to its set, both included.
pub fn pass_path(tle: &Tle, observer: Observer, pass: &Pass, step_s: u32) -> Result<Vec<PathPoint>, PredictError> {
    validate_observer(&observer)?;
    let model = Model::new(Orbit::from_tle(tle)?, observer, pass.rise.time, SunModel::Almanac);
    let span = (pass.set.time - pass.rise.time).num_seconds().max(0);
    let step = i64::from(step_s.max(1));
    let mut offsets: Vec<i64> = (0..span).step_by(step as usize).collect();
    offsets.push(span);
    offsets
        .into_iter()
        .map(|t| {
            let s = model.sample(t as f64)?;
            let (latitude, longitude) = geodetic(s.position);
            Ok(PathPoint {
                time: pass.rise.time + Duration::seconds(t),
                latitude,
                longitude,
                azimuth_deg: s.azimuth,
                elevation_deg: s.elevation,
                magnitude: model.magnitude(&s).map(super::brightness::rounded),
            })
        })
        .collect()
}

/// Earth-fixed km to geodetic latitude and longitude in degrees (Bowring's iteration, which
/// converges to well under a metre in three rounds at the ISS's height).
pub(super) fn geodetic(p: Vec3) -> (f64, f64) {
    let e2 = WGS84_F * (2.0 - WGS84_F);
    let r = p[0].hypot(p[1]);
    let mut lat = p[2].atan2(r * (1.0 - e2));
    for _ in 0..3 {
        let sin = lat.sin();
        let n = WGS84_A_KM / (1.0 - e2 * sin * sin).sqrt();
        lat = (p[2] + e2 * n * sin).atan2(r);
    }
    (lat.to_degrees(), p[1].atan2(p[0]).to_degrees())
}

/// Height (km) above the WGS84 ellipsoid of an Earth-fixed point whose geodetic latitude is
/// `latitude_deg`: the form without `1 / cos(latitude)`, so it holds at the poles too.
pub(super) fn geodetic_height_km(p: Vec3, latitude_deg: f64) -> f64 {
    let e2 = WGS84_F * (2.0 - WGS84_F);
    let (sin, cos) = latitude_deg.to_radians().sin_cos();
    p[0].hypot(p[1]) * cos + p[2] * sin - WGS84_A_KM * (1.0 - e2 * sin * sin).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passes::predict::geometry::Site;

    #[test]
    fn geodetic_inverts_the_site_position() {
        for (lat, lon, alt_m) in [(59.91, 10.75, 0.0), (-33.87, 151.21, 420_000.0), (0.0, -179.9, 1000.0)] {
            let (la, lo) = geodetic(Site::new(lat, lon, alt_m).position);
            assert!((la - lat).abs() < 1e-6 && (lo - lon).abs() < 1e-6, "{lat},{lon} -> {la},{lo}");
            let h_m = geodetic_height_km(Site::new(lat, lon, alt_m).position, la) * 1000.0;
            assert!((h_m - alt_m).abs() < 0.01, "{lat},{lon},{alt_m} m -> {h_m} m");
        }
    }
}
