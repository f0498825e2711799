//! Frames and angles: GMST (IAU 1982, the angle that defines SGP4's TEME frame), TEME -> Earth-fixed,
//! the observer on the WGS84 ellipsoid, and topocentric elevation / azimuth (geometric, no refraction).
//!
//! Earth-fixed here is the pseudo Earth-fixed frame (PEF): polar motion is ignored, as Skyfield does
//! when no polar-motion table is loaded. UTC is used for UT1 (|UT1 - UTC| < 0.9 s by definition, and
//! about 0.01 s in 2023: well under a metre of Earth rotation at the observer).

use std::f64::consts::TAU;

pub(super) type Vec3 = [f64; 3];

pub(super) const SECONDS_PER_DAY: f64 = 86_400.0;

pub(super) fn dot(a: Vec3, b: Vec3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

pub(super) fn sub(a: Vec3, b: Vec3) -> Vec3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

pub(super) fn norm(a: Vec3) -> f64 {
    dot(a, a).sqrt()
}

pub(super) fn is_finite(a: Vec3) -> bool {
    a.iter().all(|c| c.is_finite())
}

/// Greenwich mean sidereal time by the IAU 1982 expression (AIAA 2006-6753 appendix C, the same
/// formula as Skyfield's `theta_GMST1982`), for `days` since J2000.0 (2000-01-01T12:00) in UT1.
/// Returns the angle in radians and its rate in radians per second.
pub(super) fn gmst82(days: f64) -> (f64, f64) {
    let t = days / 36_525.0;
    let g = 67_310.548_41 + (8_640_184.812_866 + (0.093_104 + (-6.2e-6) * t) * t) * t;
    let dg = 8_640_184.812_866 + (0.093_104 * 2.0 + (-6.2e-6 * 3.0) * t) * t;
    // JD 2451545.0 is a whole number, so the fraction of `days` is the fraction of the Julian date.
    let theta = (days.rem_euclid(1.0) + (g / SECONDS_PER_DAY).rem_euclid(1.0)).rem_euclid(1.0) * TAU;
    let theta_dot = (1.0 + dg / (SECONDS_PER_DAY * 36_525.0)) * TAU / SECONDS_PER_DAY;
    (theta, theta_dot)
}

/// Rotates a vector of a frame whose x axis points at the equinox into the Earth-fixed frame, given
/// the Greenwich angle of that equinox.
pub(super) fn rotate_to_earth_fixed(v: Vec3, theta: f64) -> Vec3 {
    let (s, c) = theta.sin_cos();
    [c * v[0] + s * v[1], -s * v[0] + c * v[1], v[2]]
}

/// TEME position (km) and velocity (km/s) -> Earth-fixed position and velocity (velocity relative to
/// the rotating Earth), with `theta` and `omega` from [`gmst82`].
pub(super) fn teme_to_earth_fixed(r: Vec3, v: Vec3, theta: f64, omega: f64) -> (Vec3, Vec3) {
    let r_ef = rotate_to_earth_fixed(r, theta);
    let v_rot = rotate_to_earth_fixed(v, theta);
    // v_ef = R v - omega x r_ef, omega along +z.
    let v_ef = [v_rot[0] + omega * r_ef[1], v_rot[1] - omega * r_ef[0], v_rot[2]];
    (r_ef, v_ef)
}

/// WGS84, the ellipsoid Skyfield (`wgs84.latlon`) puts the observer on.
pub(super) const WGS84_A_KM: f64 = 6378.137;
pub(super) const WGS84_F: f64 = 1.0 / 298.257_223_563;

/// The observer: Earth-fixed position (km) and the local east / north / up unit vectors (up is the
/// geodetic normal, so elevations are measured from the ellipsoid's horizon plane).
#[derive(Debug, Clone, Copy)]
pub(super) struct Site {
    pub position: Vec3,
    pub east: Vec3,
    pub north: Vec3,
    pub up: Vec3,
}

impl Site {
    pub fn new(latitude_deg: f64, longitude_deg: f64, altitude_m: f64) -> Site {
        let (sin_lat, cos_lat) = latitude_deg.to_radians().sin_cos();
        let (sin_lon, cos_lon) = longitude_deg.to_radians().sin_cos();
        let e2 = WGS84_F * (2.0 - WGS84_F);
        let n = WGS84_A_KM / (1.0 - e2 * sin_lat * sin_lat).sqrt();
        let h = altitude_m / 1000.0;
        let position = [(n + h) * cos_lat * cos_lon, (n + h) * cos_lat * sin_lon, (n * (1.0 - e2) + h) * sin_lat];
        Site {
            position,
            east: [-sin_lon, cos_lon, 0.0],
            north: [-sin_lat * cos_lon, -sin_lat * sin_lon, cos_lat],
            up: [cos_lat * cos_lon, cos_lat * sin_lon, sin_lat],
        }
    }

    /// Elevation (degrees) of an Earth-fixed point seen from here.
    pub fn elevation_deg(&self, target: Vec3) -> f64 {
        let rho = sub(target, self.position);
        let range = norm(rho);
        if range < 1e-9 {
            return 90.0;
        }
        (dot(rho, self.up) / range).clamp(-1.0, 1.0).asin().to_degrees()
    }

    /// Where an Earth-fixed point moving with Earth-fixed velocity `velocity` is seen from here.
    pub fn look(&self, target: Vec3, velocity: Vec3) -> Look {
        let rho = sub(target, self.position);
        let range = norm(rho);
        if range < 1e-9 {
            // The target is at the observer: call it the zenith rather than produce NaN.
            return Look { elevation_deg: 90.0, azimuth_deg: 0.0, elevation_rate: 0.0, range_km: range };
        }
        let up = dot(rho, self.up);
        let sin_el = up / range;
        let elevation_deg = sin_el.clamp(-1.0, 1.0).asin().to_degrees();
        let mut azimuth_deg = dot(rho, self.east).atan2(dot(rho, self.north)).to_degrees().rem_euclid(360.0);
        if azimuth_deg >= 360.0 {
            azimuth_deg = 0.0;
        }
        // d(sin el)/dt = (rho' . up) / |rho| - (rho . up)(rho . rho') / |rho|^3; same sign as d(el)/dt.
        let elevation_rate = dot(velocity, self.up) / range - sin_el * dot(rho, velocity) / (range * range);
        Look { elevation_deg, azimuth_deg, elevation_rate, range_km: range }
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Look {
    pub elevation_deg: f64,
    /// Degrees from north, clockwise, in [0, 360).
    pub azimuth_deg: f64,
    /// d(sin elevation)/dt in 1/s: positive while the target climbs.
    pub elevation_rate: f64,
    pub range_km: f64,
}
