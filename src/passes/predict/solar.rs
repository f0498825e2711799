//! The sun's position, Earth-fixed, from the low-accuracy solar coordinates of Meeus, *Astronomical
//! Algorithms* (2nd ed.), chapter 25 — the same series as the Astronomical Almanac's "low precision"
//! formulas with the century terms kept, good to about 0.01 deg (in practice a few thousandths of a degree
//! in this century).
//!
//! Why not the `sun` crate here: it is a port of suncalc, whose fixed obliquity, rough sidereal time
//! and two-term equation of centre put the sun's altitude up to ~0.19 deg off DE421 (see
//! tests/fixtures/passes/README.md; it differs from this module by up to 0.21 deg over the reference
//! windows). Near the -6 deg twilight limit the sun moves only 0.1-0.25 deg a minute: with the crate's
//! altitude, the Oslo reference pass of 2023-09-20 18:03 becomes visible at 18:07:13 instead of
//! Skyfield's 18:05:32 (101 s late; this module: within 1 s). The crate also gives only an altitude
//! and azimuth, never the direction vector the Earth-shadow test needs. This module gives that vector
//! in the satellite's Earth-fixed frame, used for both. (Measured by the test
//! `sun_crate_altitude_measured_against_the_reference`.)

use super::geometry::{SECONDS_PER_DAY, Vec3, dot, norm, rotate_to_earth_fixed, sub};

/// TT - UTC: 32.184 s + 37 leap seconds (unchanged since 2017-01-01). Only the sun's slow motion
/// along the ecliptic depends on it (0.04 deg a day), so a future leap second would not matter.
const TT_MINUS_UTC_S: f64 = 69.184;
const AU_KM: f64 = 149_597_870.7;

/// The sun's Earth-fixed position in km, geometric (for the shadow test, as Skyfield's `is_sunlit`)
/// and apparent (with annual aberration, for the altitude, as an apparent `altaz()`).
#[derive(Debug, Clone, Copy)]
pub(super) struct SunPosition {
    pub geometric: Vec3,
    pub apparent: Vec3,
}

/// `days` since J2000.0 in UTC (used as UT1); `gmst` is the Greenwich mean sidereal angle at that
/// moment (radians), from `geometry::gmst82`.
pub(super) fn sun_position(days: f64, gmst: f64) -> SunPosition {
    let t = (days + TT_MINUS_UTC_S / SECONDS_PER_DAY) / 36_525.0;
    let l0 = 280.466_46 + 36_000.769_83 * t + 0.000_303_2 * t * t;
    let m = (357.529_11 + 35_999.050_29 * t - 0.000_153_7 * t * t).to_radians();
    let e = 0.016_708_634 - 0.000_042_037 * t - 0.000_000_126_7 * t * t;
    let c = (1.914_602 - 0.004_817 * t - 0.000_014 * t * t) * m.sin()
        + (0.019_993 - 0.000_101 * t) * (2.0 * m).sin()
        + 0.000_289 * (3.0 * m).sin();
    // Geometric longitude, mean equinox of date, and the distance.
    let true_longitude = l0 + c;
    let true_anomaly = m + c.to_radians();
    let distance_km = 1.000_001_018 * (1.0 - e * e) / (1.0 + e * true_anomaly.cos()) * AU_KM;
    // Nutation, leading terms: in longitude (moves the equinox) and in obliquity.
    let omega = (125.04 - 1_934.136 * t).to_radians();
    let nutation_longitude = -0.004_78 * omega.sin();
    let mean_obliquity = 23.439_291_1 - 0.013_004_2 * t - 1.64e-7 * t * t + 5.04e-7 * t * t * t;
    let obliquity = (mean_obliquity + 0.002_56 * omega.cos()).to_radians();
    // True equator and equinox of date -> Earth-fixed by the apparent sidereal angle
    // (GAST = GMST + equation of the equinoxes).
    let gast = gmst + (nutation_longitude.to_radians()) * obliquity.cos();
    let to_earth_fixed = |longitude_deg: f64| {
        let (sin_l, cos_l) = longitude_deg.to_radians().sin_cos();
        let (sin_e, cos_e) = obliquity.sin_cos();
        let equatorial = [distance_km * cos_l, distance_km * cos_e * sin_l, distance_km * sin_e * sin_l];
        rotate_to_earth_fixed(equatorial, gast)
    };
    let geometric_longitude = true_longitude + nutation_longitude;
    SunPosition {
        geometric: to_earth_fixed(geometric_longitude),
        // Annual aberration: -20.4955" in longitude.
        apparent: to_earth_fixed(geometric_longitude - 0.005_693),
    }
}

/// Skyfield's Earth radius for `is_sunlit` (a sphere; no penumbra, no atmosphere).
const SHADOW_EARTH_RADIUS_KM: f64 = 6378.1366;

/// How far the satellite is from the Earth's shadow, in km: positive when sunlit. Continuous in the
/// positions, so a root finder can locate shadow entry and exit.
///
/// Skyfield's test: shadowed when the straight line from the satellite towards the sun meets the
/// sphere ahead of the satellite. With `s` the unit vector from the satellite to the sun and
/// `d = r . s`, the Earth's centre lies ahead when `d < 0`, at a distance `sqrt(|r|^2 - d^2)` from
/// the line; that is compared with the radius. When `d >= 0` the sphere is behind (or beside) the
/// satellite: sunlit, and `|r| - R` is the value the other branch takes at `d = 0`.
pub(super) fn sunlit_margin_km(satellite: Vec3, sun: Vec3) -> f64 {
    let to_sun = sub(sun, satellite);
    let to_sun_len = norm(to_sun);
    let r2 = dot(satellite, satellite);
    if to_sun_len <= 0.0 {
        return r2.sqrt() - SHADOW_EARTH_RADIUS_KM;
    }
    let d = dot(satellite, to_sun) / to_sun_len;
    if d >= 0.0 { r2.sqrt() - SHADOW_EARTH_RADIUS_KM } else { (r2 - d * d).max(0.0).sqrt() - SHADOW_EARTH_RADIUS_KM }
}
