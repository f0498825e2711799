//! How bright the ISS looks: the standard model of satellite brightness. The intrinsic ("standard") magnitude is the brightness at 1,000 km range
//! and 90 deg phase angle (half lit); it is corrected for the range, `+ 5 log10(range / 1000 km)`,
//! and for the phase angle with a diffusely reflecting (Lambertian) sphere, whose brightness goes as
//! `sin p + (pi - p) cos p` (1 at 90 deg, pi when fully lit at 0 deg, 0 at 180 deg).
//!
//! The phase angle is the angle at the satellite between the sun and the observer: 0 when the sun is
//! behind the observer (the ISS fully lit, as seen opposite the sun), 180 deg when the ISS is in front
//! of the sun.

use super::geometry::{Vec3, dot, norm, sub};
use std::f64::consts::PI;

/// The ISS's standard magnitude: -1.3 at 1,000 km and 90 deg phase (attributed to Mike McCants'
/// magnitude file `qs.mag`). With this sphere it matches Heavens-Above's published magnitudes
/// within 0.2 where the ISS is front-lit; lit from behind (phase over 90 deg) Heavens-Above is
/// brighter, by 1.2-1.5 on its low twilight passes: its numbers fit -1.8 with a brightness
/// proportional to (180 deg - phase) instead. See the README ("How bright") and
/// `tests/magnitude.rs`.
pub const ISS_STANDARD_MAGNITUDE: f64 = -1.3;

/// Fainter than this is said as "too faint": the phase function vanishes at 180 deg.
const FAINTEST: f64 = 99.0;

/// The phase angle at `satellite` (radians) between the directions to `sun` and to `observer`.
pub(super) fn phase_angle(satellite: Vec3, observer: Vec3, sun: Vec3) -> f64 {
    let to_sun = sub(sun, satellite);
    let to_observer = sub(observer, satellite);
    let denominator = norm(to_sun) * norm(to_observer);
    if denominator <= 0.0 {
        return 0.0;
    }
    (dot(to_sun, to_observer) / denominator).clamp(-1.0, 1.0).acos()
}

/// The apparent visual magnitude of a satellite of standard magnitude `standard` at `range_km` from
/// the observer and phase angle `phase` (radians). Lower is brighter.
pub fn apparent_magnitude(standard: f64, range_km: f64, phase: f64) -> f64 {
    let phase = phase.clamp(0.0, PI);
    let lit = phase.sin() + (PI - phase) * phase.cos();
    // At 180 deg the sum is 1e-16, not 0 (floating point): below 1e-12 (within 0.01 deg of the
    // sun, some 30 magnitudes faint) nothing lit faces the observer.
    if !(lit > 1e-12 && range_km > 0.0) {
        return FAINTEST;
    }
    (standard + 5.0 * (range_km / 1000.0).log10() - 2.5 * lit.log10()).min(FAINTEST)
}

/// Magnitudes are said to a tenth: the model itself is good to a few tenths at best.
pub(super) fn rounded(magnitude: f64) -> f64 {
    (magnitude * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_magnitude_holds_at_1000_km_and_half_phase() {
        let m = apparent_magnitude(ISS_STANDARD_MAGNITUDE, 1000.0, PI / 2.0);
        assert!((m - ISS_STANDARD_MAGNITUDE).abs() < 1e-12, "{m}");
    }

    #[test]
    fn range_and_phase_move_it_the_way_the_model_says() {
        // Twice as far: 5 log10(2) = 1.505 fainter.
        let far = apparent_magnitude(-1.3, 2000.0, PI / 2.0);
        assert!((far - (-1.3 + 1.505_15)).abs() < 1e-4, "{far}");
        // Fully lit: the sphere is pi times brighter than half lit, 2.5 log10(pi) = 1.243.
        let full = apparent_magnitude(-1.3, 1000.0, 0.0);
        assert!((full - (-1.3 - 1.242_87)).abs() < 1e-4, "{full}");
        // Against the sun: nothing lit faces the observer.
        assert_eq!(apparent_magnitude(-1.3, 1000.0, PI), FAINTEST);
        // Monotonic in phase.
        let mut last = f64::NEG_INFINITY;
        for i in 0..=179 {
            let m = apparent_magnitude(-1.3, 500.0, f64::from(i).to_radians());
            assert!(m >= last, "not monotonic at {i} deg");
            last = m;
        }
    }

    #[test]
    fn phase_angle_is_measured_at_the_satellite() {
        let sat = [7000.0, 0.0, 0.0];
        // The sun and the observer in the same direction from the satellite: fully lit.
        assert!(phase_angle(sat, [6400.0, 0.0, 0.0], [-1.5e8, 0.0, 0.0]) < 1e-9);
        // The satellite between the observer and the sun: against the light.
        assert!((phase_angle(sat, [6400.0, 0.0, 0.0], [1.5e8, 0.0, 0.0]) - PI).abs() < 1e-9);
        // At right angles.
        let p = phase_angle(sat, [6400.0, 0.0, 0.0], [7000.0, 1.5e8, 0.0]);
        assert!((p - PI / 2.0).abs() < 1e-6, "{p}");
    }
}
