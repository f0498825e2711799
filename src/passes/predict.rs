//! Pass prediction: SGP4 in AFSPC (WGS72) mode -> TEME -> Earth-fixed -> topocentric, a scan that
//! cannot step over a pass, and Brent root finding for rise, culmination, set and the edges of
//! visibility. Against Skyfield's reference passes (tests/fixtures/passes): the same passes, times
//! equal to the second, angles within 0.001 deg, visible windows within 1 s (the reference's
//! one-second grid).
//!
//! - **Propagation**: `sgp4::Constants::from_elements_afspc_compatibility_mode` and
//!   `propagate_afspc_compatibility_mode` — WGS72 constants, as CelesTrak's TLEs are fitted with and as
//!   Skyfield uses (agreement with Skyfield's positions: ~2e-7 km; WGS84 would be ~0.15 km off).
//!   Only near-Earth orbits (period under 225 min, SGP4's own near-Earth regime) are accepted.
//! - **Frames** (`geometry`): TEME -> pseudo Earth-fixed by a z rotation through GMST from the IAU 1982
//!   expression (the one that defines TEME; identical to Skyfield's `theta_GMST1982`), UTC standing in
//!   for UT1, polar motion ignored. The observer is geodetic on WGS84 (as Skyfield's `wgs84.latlon`);
//!   elevation is measured from the geodetic horizon, geometric (no refraction); azimuth from north,
//!   clockwise.
//! - **Sun** (`solar`): Meeus ch. 25 low-accuracy solar coordinates (~0.01 deg), rotated into the same
//!   Earth-fixed frame by apparent sidereal time. The apparent direction gives the sun's altitude at
//!   the observer; the geometric one feeds the shadow test. See `solar` for why not the `sun` crate.
//! - **Shadow**: Skyfield's `is_sunlit` — sunlit unless the straight line from the ISS towards the sun
//!   meets a spherical Earth of radius 6378.1366 km; no penumbra, no atmosphere.
//! - **Search**: samples carry the elevation and its time derivative (from the SGP4 velocity). Far
//!   below the minimum elevation the step is the longest one over which the elevation provably cannot
//!   reach it: the line of sight turns at most at `v / range` and the range shrinks at most at `v`, so
//!   the elevation gains at most `ln(range / (range - v dt))` in `dt` (v: a bound on the speed relative
//!   to the ground). Closer in, the step is 60 s and the sign of the elevation rate at both ends
//!   shows whether a culmination (or a lowest point) lies between; that is found as the root of the
//!   rate, and each monotonic piece is checked for a crossing of the minimum elevation. So a pass is
//!   found even when it fits between two samples (the references include a 47 s pass); this relies on
//!   a 60 s step never holding two turning points of the elevation, true of any near-Earth orbit,
//!   whose highest and lowest points for an observer are about half an orbit apart. Every edge is
//!   refined with Brent's method to 0.1 ms. Visibility is sampled every 10 s between rise and set; the
//!   sign changes of "sunlit" and of "sun below the limit" are refined the same way, and the visible
//!   window runs from the first start to the last end of the intervals where both hold.
//! - **Brightness** (`brightness`): the magnitude of the visible part's brightest moment, from samples
//!   every 10 s over the visible window refined by golden-section search (to 0.5 s); the model and
//!   its comparison with published magnitudes are in the README ("How bright").
//! - **Window**: a pass is reported when it overlaps the window — its set is after `from` and its rise
//!   before `to` — with its true rise, culmination and set even when they fall outside the window (a
//!   window that starts mid-pass reports that pass from its real rise). `from >= to` is an empty
//!   window. Reported times are rounded to the whole second (as the reference passes are); azimuths and
//!   elevations are those of the refined instant.

mod brightness;
mod geometry;
mod ground;
mod path;
mod revolution;
mod roots;
mod solar;
#[cfg(test)]
mod tests;
mod track;

use super::{Observer, Pass, PassOptions, PassPoint};
use crate::domain::Tle;
pub use brightness::{ISS_STANDARD_MAGNITUDE, apparent_magnitude};
use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use geometry::{SECONDS_PER_DAY, Site, Vec3, gmst82, is_finite, norm, teme_to_earth_fixed};
pub use ground::{GroundTrack, great_circle_km};
pub use path::{PathPoint, pass_path};
pub use revolution::Revolutions;
use std::cell::Cell;
pub use track::{
    MAX_PREDICTED_POINTS, MAX_PREDICTED_SPAN_S, MAX_STEP_S, PredictedPoint, orbital_period, predicted_track,
};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PredictError {
    /// The TLE's lines cannot be parsed or SGP4 rejects its elements.
    #[error("the TLE cannot be propagated: {0}")]
    BadTle(String),
    /// Not a near-Earth orbit: pass search here assumes LEO geometry.
    #[error("unsupported orbit: {0}")]
    UnsupportedOrbit(String),
    /// SGP4 fails (or the satellite has decayed) at a time the search needs.
    #[error("the orbit cannot be propagated to {0}")]
    Propagation(String),
    #[error("invalid observer: {0}")]
    InvalidObserver(String),
    #[error("invalid pass options: {0}")]
    InvalidOptions(String),
    /// The satellite never drops below the minimum elevation for a day (only possible with a very
    /// low minimum elevation): there is no rise or set to report.
    #[error("no pass: {0}")]
    EndlessPass(String),
}

/// Visible ISS passes for `observer` overlapping `from..to`, in time order (see the module
/// documentation for the method and the exact window rule). Pure: no clock, no I/O.
///
/// Errors, never panics: a TLE whose lines SGP4 cannot parse or whose elements it rejects
/// (`BadTle`), a period of 225 min or more (`UnsupportedOrbit`), an SGP4 failure or decay at a time
/// the search needs (`Propagation`), a non-finite observer or one outside latitude -90..90,
/// longitude -180..180, altitude -12..100 km (`InvalidObserver`), option angles that are not finite
/// or outside -90..90 (`InvalidOptions`), and a minimum elevation the satellite stays above for a
/// whole day (`EndlessPass`). The inputs are checked before the window: `from >= to` with valid
/// inputs gives an empty list.
pub fn predict(
    tle: &Tle,
    observer: Observer,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    opts: PassOptions,
) -> Result<Vec<Pass>, PredictError> {
    predict_with(tle, observer, from, to, opts, SunModel::Almanac)
}

/// Where the satellite is in the observer's sky at `time` (azimuth 0 = north, clockwise;
/// geometric elevation). For describing a moment of a pass, e.g. where visibility begins.
pub fn look_angles(tle: &Tle, observer: Observer, time: DateTime<Utc>) -> Result<PassPoint, PredictError> {
    validate_observer(&observer)?;
    let orbit = Orbit::from_tle(tle)?;
    let s = Model::new(orbit, observer, time, SunModel::Almanac).sample(0.0)?;
    Ok(PassPoint { time, azimuth_deg: s.azimuth, elevation_deg: s.elevation })
}

/// When the satellite is at or above `elevation_deg` in the observer's sky, as the intervals
/// overlapping `from..to`, in time order: each from its up-crossing to its down-crossing, rounded
/// to the whole second (as pass times are), with its true edges when they fall outside the window.
/// Found by the pass search itself, with `elevation_deg` as the minimum elevation (the same scan
/// and Brent refinement), so it holds for any threshold, also one below the passes' minimum
/// elevation, and for passes that are not visible. Pure; errors as `predict`.
pub fn elevation_windows(
    tle: &Tle,
    observer: Observer,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    elevation_deg: f64,
) -> Result<Vec<std::ops::Range<DateTime<Utc>>>, PredictError> {
    validate_observer(&observer)?;
    if !(elevation_deg.is_finite() && (-90.0..=90.0).contains(&elevation_deg)) {
        return Err(PredictError::InvalidOptions(format!(
            "the elevation must be a number of degrees in -90..90, not {elevation_deg}"
        )));
    }
    let orbit = Orbit::from_tle(tle)?;
    if from >= to {
        return Ok(Vec::new());
    }
    let model = Model::new(orbit, observer, from, SunModel::Almanac);
    let end = seconds_between(from, to);
    let time = |t: f64| model.rounded_time(t).ok_or_else(|| model.propagation_error(t, "the time is out of range"));
    let raw = model.find_passes(elevation_deg, end)?;
    raw.iter().filter(|p| p.set.t > 0.0 && p.rise.t < end).map(|p| Ok(time(p.rise.t)?..time(p.set.t)?)).collect()
}

/// Where the sun's altitude at the observer comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
enum SunModel {
    /// `solar::sun_position` (Meeus ch. 25), the same vector the shadow test uses.
    Almanac,
    /// The `sun` crate (a suncalc port): kept to measure its effect on visibility in tests.
    #[cfg(test)]
    SunCalc,
}

/// Coarse step near and during passes, seconds.
const FINE_STEP_S: f64 = 60.0;
/// Longest step far from any pass.
const MAX_JUMP_S: f64 = 1_200.0;
/// Sampling of the visibility conditions between rise and set.
const VISIBILITY_STEP_S: f64 = 10.0;
/// Sampling of the brightness over the visible window, before refining the brightest moment.
const BRIGHTNESS_STEP_S: f64 = 10.0;
/// Time tolerance of every refined edge.
const TIME_TOL_S: f64 = 1e-4;
/// Kept clear of the minimum elevation when jumping, degrees.
const JUMP_MARGIN_DEG: f64 = 0.01;
/// A "pass" longer than this is not one (see `PredictError::EndlessPass`).
const MAX_PASS_S: f64 = SECONDS_PER_DAY;
/// SGP4's near-Earth regime: period under 225 min.
const MIN_MEAN_MOTION_REV_PER_DAY: f64 = 1_440.0 / 225.0;
const WGS72_MU_KM3_S2: f64 = 398_600.8;
const WGS72_RADIUS_KM: f64 = 6_378.135;
const EARTH_ROTATION_RAD_S: f64 = 7.292_115_9e-5;
/// Unix time of J2000.0 (2000-01-01T12:00:00Z).
const J2000_UNIX_S: i64 = 946_728_000;

fn predict_with(
    tle: &Tle,
    observer: Observer,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    opts: PassOptions,
    sun_model: SunModel,
) -> Result<Vec<Pass>, PredictError> {
    validate_observer(&observer)?;
    validate_options(&opts)?;
    let orbit = Orbit::from_tle(tle)?;
    if from >= to {
        return Ok(Vec::new());
    }
    Model::new(orbit, observer, from, sun_model).passes(seconds_between(from, to), &opts)
}

fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    let d = to - from;
    d.num_seconds() as f64 + f64::from(d.subsec_nanos()) * 1e-9
}

fn validate_observer(o: &Observer) -> Result<(), PredictError> {
    let bad = |what: String| Err(PredictError::InvalidObserver(what));
    if !(o.latitude.is_finite() && o.longitude.is_finite() && o.altitude_m.is_finite()) {
        return bad(format!(
            "latitude, longitude and altitude must be finite numbers, not {}, {} and {} m",
            o.latitude, o.longitude, o.altitude_m
        ));
    }
    if !(-90.0..=90.0).contains(&o.latitude) {
        return bad(format!("latitude {} is outside -90..90 degrees", o.latitude));
    }
    if !(-180.0..=180.0).contains(&o.longitude) {
        return bad(format!("longitude {} is outside -180..180 degrees", o.longitude));
    }
    if !(-12_000.0..=100_000.0).contains(&o.altitude_m) {
        return bad(format!("altitude {} m is outside -12 km..100 km", o.altitude_m));
    }
    Ok(())
}

fn validate_options(o: &PassOptions) -> Result<(), PredictError> {
    for (name, value) in [("min_elevation_deg", o.min_elevation_deg), ("sun_limit_deg", o.sun_limit_deg)] {
        if !(value.is_finite() && (-90.0..=90.0).contains(&value)) {
            return Err(PredictError::InvalidOptions(format!(
                "{name} must be a number of degrees in -90..90, not {value}"
            )));
        }
    }
    Ok(())
}

/// The SGP4 propagator of a TLE, and what the search needs to know about the orbit.
struct Orbit {
    constants: sgp4::Constants,
    epoch: NaiveDateTime,
    /// An upper bound on the satellite's speed relative to the ground, km/s.
    speed_bound: f64,
    /// One revolution by the mean motion, seconds.
    period_s: f64,
}

impl Orbit {
    fn from_tle(tle: &Tle) -> Result<Orbit, PredictError> {
        let line1 = tle.line1.trim_end();
        let line2 = tle.line2.trim_end();
        for (n, line) in [(1, line1), (2, line2)] {
            if line.len() != 69 || !line.is_ascii() || !line.as_bytes()[68].is_ascii_digit() {
                return Err(PredictError::BadTle(format!(
                    "line {n} must be 69 ASCII characters ending with a checksum digit"
                )));
            }
        }
        let elements = sgp4::Elements::from_tle(None, line1.as_bytes(), line2.as_bytes())
            .map_err(|e| PredictError::BadTle(e.to_string()))?;
        let numbers = [
            elements.inclination,
            elements.right_ascension,
            elements.eccentricity,
            elements.argument_of_perigee,
            elements.mean_anomaly,
            elements.mean_motion,
            elements.mean_motion_dot,
            elements.mean_motion_ddot,
            elements.drag_term,
        ];
        if numbers.iter().any(|x| !x.is_finite()) {
            return Err(PredictError::BadTle("an orbital element is not a finite number".into()));
        }
        if elements.mean_motion <= 0.0 {
            return Err(PredictError::BadTle(format!("mean motion {} rev/day is not positive", elements.mean_motion)));
        }
        if elements.mean_motion < MIN_MEAN_MOTION_REV_PER_DAY {
            return Err(PredictError::UnsupportedOrbit(format!(
                "the period is {:.0} min; only near-Earth orbits (period under 225 min, the ISS's is 93) are supported",
                1_440.0 / elements.mean_motion
            )));
        }
        let constants = sgp4::Constants::from_elements_afspc_compatibility_mode(&elements)
            .map_err(|e| PredictError::BadTle(e.to_string()))?;
        // Perigee speed of the mean orbit plus the ground's rotation under the apogee, with 10 %
        // to spare for SGP4's periodic terms and drag.
        let n = elements.mean_motion * std::f64::consts::TAU / SECONDS_PER_DAY;
        let a = (WGS72_MU_KM3_S2 / (n * n)).cbrt();
        let e = elements.eccentricity.clamp(0.0, 0.99);
        let perigee_speed = (WGS72_MU_KM3_S2 / a * (1.0 + e) / (1.0 - e)).sqrt();
        let speed_bound = 1.1 * (perigee_speed + EARTH_ROTATION_RAD_S * a * (1.0 + e));
        Ok(Orbit { constants, epoch: elements.datetime, speed_bound, period_s: SECONDS_PER_DAY / elements.mean_motion })
    }
}

/// The satellite as seen by the observer at `t` seconds after `from`.
#[derive(Debug, Clone, Copy)]
struct Sample {
    t: f64,
    elevation: f64,
    azimuth: f64,
    /// d(sin elevation)/dt: its sign is the sign of the elevation's rate.
    rate: f64,
    range: f64,
    /// Speed relative to the ground, km/s.
    speed: f64,
    /// Earth-fixed position, km.
    position: Vec3,
}

/// The visibility conditions at `t`: each is positive when met.
#[derive(Debug, Clone, Copy)]
struct Light {
    t: f64,
    /// Distance from the Earth's shadow, km (positive: sunlit).
    sunlit: f64,
    /// `sun_limit_deg` minus the sun's altitude (positive: dark enough).
    dark: f64,
}

struct OpenPass {
    rise: Sample,
    top: Sample,
}

struct RawPass {
    rise: Sample,
    top: Sample,
    set: Sample,
}

struct Model {
    orbit: Orbit,
    #[cfg(test)]
    observer: Observer,
    site: Site,
    /// Minutes from the TLE epoch to `from`.
    epoch_offset_min: f64,
    /// Unix seconds of `from` (as f64: 0.2 µs resolution).
    base_unix_s: f64,
    /// Days since J2000.0 at `from`.
    base_days: f64,
    sun_model: SunModel,
    /// SGP4 evaluations made (for the tests' cost report).
    propagations: Cell<u64>,
}

impl Model {
    fn new(orbit: Orbit, observer: Observer, from: DateTime<Utc>, sun_model: SunModel) -> Model {
        let since_epoch = from.naive_utc() - orbit.epoch;
        let epoch_offset_min = (since_epoch.num_seconds() as f64 + f64::from(since_epoch.subsec_nanos()) * 1e-9) / 60.0;
        let subsec = f64::from(from.timestamp_subsec_nanos()) * 1e-9;
        Model {
            orbit,
            #[cfg(test)]
            observer,
            site: Site::new(observer.latitude, observer.longitude, observer.altitude_m),
            epoch_offset_min,
            base_unix_s: from.timestamp() as f64 + subsec,
            base_days: ((from.timestamp() - J2000_UNIX_S) as f64 + subsec) / SECONDS_PER_DAY,
            sun_model,
            propagations: Cell::new(0),
        }
    }

    fn days(&self, t: f64) -> f64 {
        self.base_days + t / SECONDS_PER_DAY
    }

    /// `from + t`, rounded to the whole second.
    fn rounded_time(&self, t: f64) -> Option<DateTime<Utc>> {
        let s = (self.base_unix_s + t).round();
        if !s.is_finite() || s.abs() > 1e16 {
            return None;
        }
        DateTime::from_timestamp(s as i64, 0)
    }

    fn propagation_error(&self, t: f64, reason: &str) -> PredictError {
        let at = match self.rounded_time(t) {
            Some(time) => time.to_rfc3339_opts(SecondsFormat::Secs, true),
            None => format!("{t:.0} s after the window start"),
        };
        PredictError::Propagation(format!("{at}: {reason}"))
    }

    fn sample(&self, t: f64) -> Result<Sample, PredictError> {
        self.propagations.set(self.propagations.get() + 1);
        let minutes = sgp4::MinutesSinceEpoch(self.epoch_offset_min + t / 60.0);
        let prediction = self.orbit.constants.propagate_afspc_compatibility_mode(minutes).map_err(|e| {
            self.propagation_error(t, &format!("SGP4 failed ({e}); the satellite has probably decayed"))
        })?;
        let (r, v) = (prediction.position, prediction.velocity);
        if !is_finite(r) || !is_finite(v) {
            return Err(self.propagation_error(t, "SGP4 gave a non-finite position"));
        }
        let radius = norm(r);
        if radius < WGS72_RADIUS_KM {
            return Err(self.propagation_error(
                t,
                &format!(
                    "the satellite has decayed (SGP4 puts it {radius:.0} km from the Earth's centre, inside the Earth)"
                ),
            ));
        }
        let (theta, omega) = gmst82(self.days(t));
        let (position, velocity) = teme_to_earth_fixed(r, v, theta, omega);
        let look = self.site.look(position, velocity);
        Ok(Sample {
            t,
            elevation: look.elevation_deg,
            azimuth: look.azimuth_deg,
            rate: look.elevation_rate,
            range: look.range_km,
            speed: norm(velocity),
            position,
        })
    }

    /// The next step from `s`, and whether the elevation provably stays below `m` over it.
    fn step(&self, s: &Sample, m: f64) -> (f64, bool) {
        let gap = (m - JUMP_MARGIN_DEG - s.elevation).to_radians();
        if gap > 0.0 {
            let speed = self.orbit.speed_bound.max(1.2 * s.speed);
            let dt = s.range * (1.0 - (-gap).exp()) / speed;
            if dt >= FINE_STEP_S {
                return (dt.min(MAX_JUMP_S), true);
            }
        }
        (FINE_STEP_S, false)
    }

    /// The passes overlapping `0..end` (seconds after `from`), complete.
    fn passes(&self, end: f64, opts: &PassOptions) -> Result<Vec<Pass>, PredictError> {
        let passes = self.find_passes(opts.min_elevation_deg, end)?;
        passes
            .into_iter()
            .filter(|p| p.set.t > 0.0 && p.rise.t < end)
            .map(|p| self.finish(&p, opts.sun_limit_deg))
            .collect()
    }

    /// Every pass above `m` that is in progress at 0 (`from`) or rises before `end`, complete.
    fn find_passes(&self, m: f64, end: f64) -> Result<Vec<RawPass>, PredictError> {
        // Start where the satellite is below `m`, stepping back if `from` is mid-pass.
        let mut a = self.sample(0.0)?;
        while a.elevation >= m {
            if -a.t >= MAX_PASS_S {
                return Err(self.endless(m, 0.0));
            }
            a = self.sample(a.t - FINE_STEP_S)?;
        }
        let mut open: Option<OpenPass> = None;
        let mut passes = Vec::new();
        loop {
            match &open {
                None if a.t >= end => break,
                Some(p) if a.t - p.rise.t > MAX_PASS_S => return Err(self.endless(m, p.rise.t)),
                _ => {}
            }
            let (dt, below) = self.step(&a, m);
            let b = self.sample(a.t + dt)?;
            if !below {
                self.interval(&a, &b, m, &mut open, &mut passes)?;
            }
            a = b;
        }
        Ok(passes)
    }

    fn endless(&self, m: f64, t: f64) -> PredictError {
        let at =
            self.rounded_time(t).map_or_else(|| format!("{t:.0} s"), |d| d.to_rfc3339_opts(SecondsFormat::Secs, true));
        PredictError::EndlessPass(format!("the satellite stays above {m} deg for more than a day around {at}"))
    }

    /// One step of the scan, `a` to `b`: split at an extremum of the elevation if the rate changes
    /// sign, then look for crossings of `m` in each monotonic piece.
    fn interval(
        &self,
        a: &Sample,
        b: &Sample,
        m: f64,
        open: &mut Option<OpenPass>,
        passes: &mut Vec<RawPass>,
    ) -> Result<(), PredictError> {
        let maximum = a.rate > 0.0 && b.rate <= 0.0;
        let minimum = a.rate < 0.0 && b.rate >= 0.0;
        // A lowest point between two samples below `m` cannot hide a crossing.
        let needed = maximum || (minimum && (a.elevation >= m || b.elevation >= m));
        if !needed {
            return self.piece(a, b, m, open, passes);
        }
        let t = roots::brent(|t| Ok(self.sample(t)?.rate), a.t, a.rate, b.t, b.rate, TIME_TOL_S)?;
        let x = self.sample(t)?;
        self.piece(a, &x, m, open, passes)?;
        self.piece(&x, b, m, open, passes)
    }

    /// A monotonic stretch `p` to `q`: a rise or a set if it crosses `m`.
    fn piece(
        &self,
        p: &Sample,
        q: &Sample,
        m: f64,
        open: &mut Option<OpenPass>,
        passes: &mut Vec<RawPass>,
    ) -> Result<(), PredictError> {
        let (p_above, q_above) = (p.elevation >= m, q.elevation >= m);
        if p_above == q_above {
            if let Some(o) = open.as_mut() {
                for s in [p, q] {
                    if s.elevation > o.top.elevation {
                        o.top = *s;
                    }
                }
            }
            return Ok(());
        }
        let t = roots::brent(
            |t| Ok(self.sample(t)?.elevation - m),
            p.t,
            p.elevation - m,
            q.t,
            q.elevation - m,
            TIME_TOL_S,
        )?;
        let c = self.sample(t)?;
        if q_above {
            let top = if q.elevation > c.elevation { *q } else { c };
            *open = Some(OpenPass { rise: c, top });
        } else if let Some(o) = open.take() {
            let mut top = o.top;
            for s in [p, &c] {
                if s.elevation > top.elevation {
                    top = *s;
                }
            }
            passes.push(RawPass { rise: o.rise, top, set: c });
        }
        Ok(())
    }

    fn light(&self, t: f64, sun_limit: f64) -> Result<Light, PredictError> {
        let s = self.sample(t)?;
        let days = self.days(t);
        let (gmst, _) = gmst82(days);
        let sun = solar::sun_position(days, gmst);
        let sun_altitude = match self.sun_model {
            SunModel::Almanac => self.site.elevation_deg(sun.apparent),
            #[cfg(test)]
            SunModel::SunCalc => {
                let ms = ((self.base_unix_s + t) * 1000.0).round() as i64;
                sun::pos(ms, self.observer.latitude, self.observer.longitude).altitude.to_degrees()
            }
        };
        Ok(Light { t, sunlit: solar::sunlit_margin_km(s.position, sun.geometric), dark: sun_limit - sun_altitude })
    }

    /// From the first to the last moment between `rise` and `set` when the satellite is sunlit and
    /// the sun is below `sun_limit`.
    fn visibility(&self, rise: f64, set: f64, sun_limit: f64) -> Result<Option<(f64, f64)>, PredictError> {
        let span = set - rise;
        // Both ends are finite (they come from samples that were checked).
        if span <= 0.0 {
            return Ok(None);
        }
        let n = (span / VISIBILITY_STEP_S).ceil().max(1.0) as usize;
        let mut edges = vec![rise, set];
        let mut prev = self.light(rise, sun_limit)?;
        for i in 1..=n {
            let t = if i == n { set } else { rise + span * i as f64 / n as f64 };
            let cur = self.light(t, sun_limit)?;
            if (prev.sunlit > 0.0) != (cur.sunlit > 0.0) {
                let f = |t| Ok(self.light(t, sun_limit)?.sunlit);
                edges.push(roots::brent(f, prev.t, prev.sunlit, cur.t, cur.sunlit, TIME_TOL_S)?);
            }
            if (prev.dark > 0.0) != (cur.dark > 0.0) {
                let f = |t| Ok(self.light(t, sun_limit)?.dark);
                edges.push(roots::brent(f, prev.t, prev.dark, cur.t, cur.dark, TIME_TOL_S)?);
            }
            prev = cur;
        }
        edges.sort_by(f64::total_cmp);
        let mut window: Option<(f64, f64)> = None;
        for w in edges.windows(2) {
            if w[1] <= w[0] {
                continue;
            }
            let mid = self.light(0.5 * (w[0] + w[1]), sun_limit)?;
            if mid.sunlit > 0.0 && mid.dark > 0.0 {
                window = Some((window.map_or(w[0], |(start, _)| start), w[1]));
            }
        }
        Ok(window)
    }

    /// The apparent magnitude of the satellite in `s`, or `None` while it is in the Earth's shadow.
    fn magnitude(&self, s: &Sample) -> Option<f64> {
        let days = self.days(s.t);
        let (gmst, _) = gmst82(days);
        let sun = solar::sun_position(days, gmst).geometric;
        if solar::sunlit_margin_km(s.position, sun) <= 0.0 {
            return None;
        }
        let phase = brightness::phase_angle(s.position, self.site.position, sun);
        Some(brightness::apparent_magnitude(ISS_STANDARD_MAGNITUDE, s.range, phase))
    }

    /// The brightest magnitude between `start` and `end`: sampled every 10 s, then the best sample's
    /// neighbourhood narrowed by golden-section search (the magnitude is smooth and has one minimum
    /// near the culmination, or at an end of the window when the window is cut by the shadow).
    fn brightest(&self, start: f64, end: f64) -> Result<Option<f64>, PredictError> {
        let at =
            |t: f64| -> Result<f64, PredictError> { Ok(self.magnitude(&self.sample(t)?).unwrap_or(f64::INFINITY)) };
        let n = ((end - start) / BRIGHTNESS_STEP_S).ceil().max(1.0) as usize;
        let times: Vec<f64> =
            (0..=n).map(|i| if i == n { end } else { start + (end - start) * i as f64 / n as f64 }).collect();
        let mut best = (times[0], at(times[0])?);
        for &t in &times[1..] {
            let m = at(t)?;
            if m < best.1 {
                best = (t, m);
            }
        }
        let step = (end - start) / n as f64;
        let (mut a, mut b) = ((best.0 - step).max(start), (best.0 + step).min(end));
        const GOLDEN: f64 = 0.618_033_988_749_894_8;
        let (mut c, mut d) = (b - GOLDEN * (b - a), a + GOLDEN * (b - a));
        let (mut fc, mut fd) = (at(c)?, at(d)?);
        while b - a > 0.5 {
            if fc < fd {
                (b, d, fd) = (d, c, fc);
                c = b - GOLDEN * (b - a);
                fc = at(c)?;
            } else {
                (a, c, fc) = (c, d, fd);
                d = a + GOLDEN * (b - a);
                fd = at(d)?;
            }
        }
        let m = best.1.min(fc).min(fd);
        Ok(m.is_finite().then(|| brightness::rounded(m)))
    }

    fn point(&self, s: &Sample) -> Result<PassPoint, PredictError> {
        let time = self.rounded_time(s.t).ok_or_else(|| self.propagation_error(s.t, "the time is out of range"))?;
        Ok(PassPoint { time, azimuth_deg: s.azimuth, elevation_deg: s.elevation })
    }

    fn finish(&self, p: &RawPass, sun_limit: f64) -> Result<Pass, PredictError> {
        let window = self.visibility(p.rise.t, p.set.t, sun_limit)?;
        let time = |t: f64| self.rounded_time(t).ok_or_else(|| self.propagation_error(t, "the time is out of range"));
        let (visible_from, visible_to, magnitude) = match window {
            Some((start, end)) => (Some(time(start)?), Some(time(end)?), self.brightest(start, end)?),
            None => (None, None, None),
        };
        Ok(Pass {
            rise: self.point(&p.rise)?,
            culmination: self.point(&p.top)?,
            set: self.point(&p.set)?,
            visible: window.is_some(),
            visible_from,
            visible_to,
            magnitude,
        })
    }
}
