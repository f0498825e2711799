//! Visible ISS passes for an observer: pure prediction (no clock, no I/O) from a TLE.
//!
//! `predict` finds every pass above a minimum elevation in a time window, with rise, culmination
//! and set (time, azimuth, elevation; geometric, no refraction), and whether and when the ISS is
//! visible: sunlit while the sun is below `sun_limit_deg` at the observer.

pub mod calendar;
pub mod freshness;
mod predict;
mod query;

pub use freshness::{OldTleMark, UnusableTle};
pub use predict::{
    GroundTrack, ISS_STANDARD_MAGNITUDE, MAX_PREDICTED_POINTS, MAX_PREDICTED_SPAN_S, MAX_STEP_S, PathPoint,
    PredictError, PredictedPoint, Revolutions, apparent_magnitude, elevation_windows, great_circle_km, look_angles,
    orbital_period, pass_path, predict, predicted_track,
};
pub use query::{MAX_HOURS, PassQuery, compass, table_line};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where the passes are seen from (WGS84 geodetic).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Observer {
    pub latitude: f64,
    pub longitude: f64,
    pub altitude_m: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PassOptions {
    /// Passes whose highest point stays below this are not reported; rise and set are the
    /// crossings of this elevation.
    pub min_elevation_deg: f64,
    /// The sky is dark enough to see the ISS when the sun is below this altitude.
    pub sun_limit_deg: f64,
}

impl Default for PassOptions {
    fn default() -> Self {
        PassOptions { min_elevation_deg: 10.0, sun_limit_deg: -6.0 }
    }
}

/// One moment of a pass.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PassPoint {
    pub time: DateTime<Utc>,
    /// Degrees from north, clockwise.
    pub azimuth_deg: f64,
    pub elevation_deg: f64,
}

/// One pass, in the JSON shape of `outpost passes --json` and `GET /api/passes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pass {
    pub rise: PassPoint,
    pub culmination: PassPoint,
    pub set: PassPoint,
    pub visible: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub visible_from: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub visible_to: Option<DateTime<Utc>>,
    /// The apparent visual magnitude at the brightest moment of the visible part (lower is
    /// brighter; the ISS is typically -1 to -4), to a tenth; `null` for a pass that is not visible.
    #[serde(default)]
    pub magnitude: Option<f64>,
}

/// The Oslo reference pass of 2023-09-18 19:38 UTC (tests/fixtures/passes), for unit tests of
/// what is made from a pass.
#[cfg(test)]
pub(crate) fn oslo_reference_pass() -> Pass {
    let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
    Pass {
        rise: PassPoint { time: t("2023-09-18T19:38:31Z"), azimuth_deg: 217.599, elevation_deg: 10.0 },
        culmination: PassPoint { time: t("2023-09-18T19:40:58Z"), azimuth_deg: 170.699, elevation_deg: 18.891 },
        set: PassPoint { time: t("2023-09-18T19:43:25Z"), azimuth_deg: 123.829, elevation_deg: 10.0 },
        visible: true,
        visible_from: Some(t("2023-09-18T19:38:31Z")),
        visible_to: Some(t("2023-09-18T19:40:15Z")),
        magnitude: Some(-2.5),
    }
}
