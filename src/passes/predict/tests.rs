//! Pass prediction against Skyfield's reference passes (tests/fixtures/passes, see its README), a
//! brute-force scan, and the awkward inputs: a window starting mid-pass, the antimeridian, the poles
//! and the equator, bad TLEs and options.

mod magnitude;

use super::{Model, Orbit, PredictError, SunModel, predict, predict_with, seconds_between};
use crate::domain::Tle;
use crate::passes::{Observer, Pass, PassOptions};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};

const TLE_FILE: &str = include_str!("../../../tests/fixtures/passes/iss-2023-09-18.tle");
const OSLO_JSON: &str = include_str!("../../../tests/fixtures/passes/oslo-2023-09-18-72h.json");
const TROMSO_JSON: &str = include_str!("../../../tests/fixtures/passes/tromso-2023-09-18-72h.json");
const SYDNEY_JSON: &str = include_str!("../../../tests/fixtures/passes/sydney-2023-09-18-72h.json");

const OSLO: Observer = Observer { latitude: 59.9139, longitude: 10.7522, altitude_m: 20.0 };
const TROMSO: Observer = Observer { latitude: 69.6496, longitude: 18.9560, altitude_m: 10.0 };
const SYDNEY: Observer = Observer { latitude: -33.8688, longitude: 151.2093, altitude_m: 40.0 };

/// The reference options: minimum elevation 10 deg, sun below -6 deg.
const OPTS: PassOptions = PassOptions { min_elevation_deg: 10.0, sun_limit_deg: -6.0 };

fn tle() -> Tle {
    let mut lines = TLE_FILE.lines();
    let name = lines.next().unwrap().trim().to_string();
    let line1 = lines.next().unwrap().trim_end().to_string();
    let line2 = lines.next().unwrap().trim_end().to_string();
    // Epoch 23261.44473810: day 261 of 2023 (18 September), 10:40:25.37 UTC.
    let epoch = Utc.with_ymd_and_hms(2023, 9, 18, 10, 40, 25).unwrap() + TimeDelta::milliseconds(372);
    Tle { epoch, norad_id: 25544, name: Some(name), line1, line2 }
}

fn start() -> DateTime<Utc> {
    "2023-09-18T12:00:00Z".parse().unwrap()
}

fn end() -> DateTime<Utc> {
    start() + TimeDelta::hours(72)
}

fn reference(json: &str) -> Vec<Pass> {
    serde_json::from_str(json).expect("reference passes parse")
}

fn seconds(a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
    seconds_between(b, a).abs()
}

fn angle_diff(a: f64, b: f64) -> f64 {
    let d = (a - b).rem_euclid(360.0);
    d.min(360.0 - d)
}

/// The worst deviations from a reference, and where they occur.
#[derive(Debug, Default)]
struct Worst {
    time_s: (f64, String),
    elevation_deg: (f64, String),
    azimuth_deg: (f64, String),
    window_s: (f64, String),
}

fn worse(slot: &mut (f64, String), value: f64, at: impl FnOnce() -> String) {
    if value > slot.0 || slot.1.is_empty() {
        *slot = (value.max(slot.0), at());
    }
}

/// Compares passes with the reference; returns the worst deviations and every tolerance failure.
fn compare(reference: &[Pass], got: &[Pass]) -> (Worst, Vec<String>) {
    let mut worst = Worst::default();
    let mut failures = Vec::new();
    if reference.len() != got.len() {
        failures.push(format!("{} passes, the reference has {}", got.len(), reference.len()));
    }
    for (i, (r, g)) in reference.iter().zip(got).enumerate() {
        for (event, rp, gp) in
            [("rise", &r.rise, &g.rise), ("culmination", &r.culmination, &g.culmination), ("set", &r.set, &g.set)]
        {
            let at = || format!("pass {i} {event} ({})", rp.time);
            let dt = seconds(rp.time, gp.time);
            let de = (rp.elevation_deg - gp.elevation_deg).abs();
            let da = angle_diff(rp.azimuth_deg, gp.azimuth_deg);
            worse(&mut worst.time_s, dt, at);
            worse(&mut worst.elevation_deg, de, at);
            worse(&mut worst.azimuth_deg, da, at);
            if dt > 2.0 || de > 0.2 || da > 0.2 {
                failures.push(format!("{}: time off by {dt} s, elevation by {de:.4}, azimuth by {da:.4} deg", at()));
            }
        }
        if r.visible != g.visible {
            failures.push(format!(
                "pass {i} ({}): visible {} but the reference says {}",
                r.rise.time, g.visible, r.visible
            ));
            continue;
        }
        for (edge, rt, gt) in
            [("visible_from", r.visible_from, g.visible_from), ("visible_to", r.visible_to, g.visible_to)]
        {
            match (rt, gt) {
                (Some(rt), Some(gt)) => {
                    let dt = seconds(rt, gt);
                    worse(&mut worst.window_s, dt, || format!("pass {i} {edge} ({rt})"));
                    if dt > 10.0 {
                        failures.push(format!("pass {i} {edge}: {gt}, the reference says {rt} ({dt} s)"));
                    }
                }
                (None, None) => {}
                _ => failures.push(format!("pass {i} {edge}: {gt:?}, the reference says {rt:?}")),
            }
        }
    }
    (worst, failures)
}

fn check_reference(label: &str, observer: Observer, json: &str) {
    let reference = reference(json);
    let got = predict(&tle(), observer, start(), end(), OPTS).expect("prediction");
    let (worst, failures) = compare(&reference, &got);
    eprintln!(
        "{label}: {} passes (reference {}); worst deviations: time {} s at {}; elevation {:.4} deg at {}; \
         azimuth {:.4} deg at {}; visible window {} s at {}",
        got.len(),
        reference.len(),
        worst.time_s.0,
        worst.time_s.1,
        worst.elevation_deg.0,
        worst.elevation_deg.1,
        worst.azimuth_deg.0,
        worst.azimuth_deg.1,
        worst.window_s.0,
        worst.window_s.1,
    );
    assert!(failures.is_empty(), "{label}: {failures:#?}");
    unrounded_deviations(label, observer, &reference);
}

/// Before rounding: how far the refined event times are from the reference's (rounded) seconds; and
/// the visible windows put on the reference's sampling grid, which (as its edges show) is the refined
/// rise plus whole seconds, each visible sample then rounded to the second.
fn unrounded_deviations(label: &str, observer: Observer, reference: &[Pass]) {
    let model = Model::new(Orbit::from_tle(&tle()).unwrap(), observer, start(), SunModel::Almanac);
    let raw = model.find_passes(OPTS.min_elevation_deg, 72.0 * 3600.0).unwrap();
    assert_eq!(raw.len(), reference.len());
    let at = |t: f64| start().timestamp() as f64 + t;
    let (mut events, mut windows, mut edges): (f64, f64, usize) = (0.0, 0.0, 0);
    for (p, r) in raw.iter().zip(reference) {
        for (t, rp) in [(p.rise.t, &r.rise), (p.top.t, &r.culmination), (p.set.t, &r.set)] {
            events = events.max((at(t) - rp.time.timestamp() as f64).abs());
        }
        if let (Some((a, b)), Some(rf), Some(rt)) =
            (model.visibility(p.rise.t, p.set.t, OPTS.sun_limit_deg).unwrap(), r.visible_from, r.visible_to)
        {
            let grid_from = at(p.rise.t + (a - p.rise.t).ceil()).round();
            let grid_to = at(p.rise.t + (b - p.rise.t).floor()).round();
            windows = windows.max((grid_from - rf.timestamp() as f64).abs());
            windows = windows.max((grid_to - rt.timestamp() as f64).abs());
            edges += 2;
        }
    }
    eprintln!(
        "{label}: refined event times are within {events:.3} s of the reference's rounded seconds; \
         on the reference's grid, the {edges} visible-window edges differ from it by at most {windows} s"
    );
}

#[test]
fn matches_skyfield_oslo() {
    check_reference("oslo", OSLO, OSLO_JSON);
}

#[test]
fn matches_skyfield_tromso_no_pass_reaches_10_deg() {
    check_reference("tromso", TROMSO, TROMSO_JSON);
    // How close it comes: the highest culmination over the window with no minimum.
    let low = PassOptions { min_elevation_deg: 0.0, ..OPTS };
    let passes = predict(&tle(), TROMSO, start(), end(), low).unwrap();
    let highest = passes.iter().map(|p| p.culmination.elevation_deg).fold(f64::MIN, f64::max);
    eprintln!("tromso: {} passes above 0 deg, the highest culminates at {highest:.3} deg", passes.len());
    assert!(!passes.is_empty() && highest < 10.0);
}

#[test]
fn matches_skyfield_sydney() {
    check_reference("sydney", SYDNEY, SYDNEY_JSON);
}

/// The same comparison with the `sun` crate's altitude (suncalc) in place of `solar`: only printed,
/// to document why the module computes the sun itself.
#[test]
fn sun_crate_altitude_measured_against_the_reference() {
    for (label, observer, json) in [("oslo", OSLO, OSLO_JSON), ("sydney", SYDNEY, SYDNEY_JSON)] {
        let reference = reference(json);
        let got = predict_with(&tle(), observer, start(), end(), OPTS, SunModel::SunCalc).unwrap();
        let (worst, failures) = compare(&reference, &got);
        eprintln!(
            "{label} with the sun crate: worst visible window {} s at {}; {} tolerance failures {failures:?}",
            worst.window_s.0,
            worst.window_s.1,
            failures.len()
        );
        // And the altitudes themselves, every 5 minutes over the window.
        let model = Model::new(Orbit::from_tle(&tle()).unwrap(), observer, start(), SunModel::Almanac);
        let mut max_diff: f64 = 0.0;
        let mut t = 0.0;
        while t <= 72.0 * 3600.0 {
            let days = model.days(t);
            let sun = super::solar::sun_position(days, super::geometry::gmst82(days).0);
            let ours = model.site.elevation_deg(sun.apparent);
            let ms = ((model.base_unix_s + t) * 1000.0).round() as i64;
            let suncalc = sun::pos(ms, observer.latitude, observer.longitude).altitude.to_degrees();
            max_diff = max_diff.max((ours - suncalc).abs());
            t += 300.0;
        }
        eprintln!("{label}: the sun crate's altitude differs from solar.rs by up to {max_diff:.3} deg");
    }
}

/// The sun's direction from `solar` at the 2023 equinoxes (2023-03-20 21:24 and 2023-09-23 06:50 UTC,
/// to the minute), when its apparent longitude is 0 and 180 deg: declination 0 and right ascension
/// 0 h / 12 h. Within a minute of those instants the sun moves less than 0.001 deg.
#[test]
fn solar_position_at_the_equinoxes() {
    for (when, expected_ra) in [("2023-03-20T21:24:00Z", 0.0), ("2023-09-23T06:50:00Z", 180.0)] {
        let at: DateTime<Utc> = when.parse().unwrap();
        let model = Model::new(Orbit::from_tle(&tle()).unwrap(), OSLO, at, SunModel::Almanac);
        let days = model.days(0.0);
        let (gmst, _) = super::geometry::gmst82(days);
        let sun = super::solar::sun_position(days, gmst);
        let r = super::geometry::norm(sun.apparent);
        let dec = (sun.apparent[2] / r).asin().to_degrees();
        // Right ascension = Greenwich longitude + sidereal time (GAST - GMST < 0.005 deg).
        let ra = (sun.apparent[1].atan2(sun.apparent[0]) + gmst).to_degrees().rem_euclid(360.0);
        eprintln!("sun at the equinox {when}: declination {dec:.5} deg, right ascension {ra:.5} deg");
        assert!(dec.abs() < 0.006, "{when}: declination {dec}");
        assert!(angle_diff(ra, expected_ra) < 0.02, "{when}: right ascension {ra}");
        assert!((r / 149_597_870.7 - 1.0).abs() < 0.01);
    }
}

/// Passes found by sampling the elevation every `step` seconds: (rise, set, highest sample), as
/// seconds after `from`.
fn brute_force(observer: Observer, from: DateTime<Utc>, hours: f64, m: f64, step: f64) -> Vec<(f64, f64, f64)> {
    let model = Model::new(Orbit::from_tle(&tle()).unwrap(), observer, from, SunModel::Almanac);
    let mut passes = Vec::new();
    let mut current: Option<(f64, f64, f64)> = None;
    let mut t = 0.0;
    while t <= hours * 3600.0 {
        let el = model.sample(t).unwrap().elevation;
        match (&mut current, el >= m) {
            (None, true) => current = Some((t, t, el)),
            (Some(p), true) => {
                p.1 = t;
                p.2 = p.2.max(el);
            }
            (Some(_), false) => passes.push(current.take().unwrap()),
            (None, false) => {}
        }
        t += step;
    }
    passes
}

/// Every pass of a brute-force scan is found, at the same times.
fn check_against_brute_force(label: &str, observer: Observer, m: f64) -> Vec<Pass> {
    let hours = 24.0;
    let step = 2.0;
    let from = start();
    let opts = PassOptions { min_elevation_deg: m, ..OPTS };
    let got = predict(&tle(), observer, from, from + TimeDelta::hours(24), opts).unwrap();
    // Drop passes cut by the window's ends: the brute force cannot see their true rise or set.
    let got: Vec<&Pass> = got
        .iter()
        .filter(|p| p.rise.time > from && p.set.time < from + TimeDelta::hours(24) - TimeDelta::seconds(2))
        .collect();
    let brute: Vec<_> = brute_force(observer, from, hours, m, step).into_iter().filter(|p| p.0 > 0.0).collect();
    eprintln!("{label}: {} passes, brute force (every {step} s) {}", got.len(), brute.len());
    assert_eq!(got.len(), brute.len(), "{label}: {got:#?} vs {brute:?}");
    for (p, b) in got.iter().zip(&brute) {
        let rise = seconds_between(from, p.rise.time);
        let set = seconds_between(from, p.set.time);
        // The scan's first sample above is at most `step` after the rise (+0.5 s rounding).
        assert!(rise <= b.0 + 0.5 && rise >= b.0 - step - 0.5, "{label}: rise {rise} vs {}", b.0);
        assert!(set >= b.1 - 0.5 && set <= b.1 + step + 0.5, "{label}: set {set} vs {}", b.1);
        assert!(p.culmination.elevation_deg >= b.2 - 1e-6, "{label}: culmination below a sample");
        assert!(p.culmination.elevation_deg - b.2 < 0.5, "{label}: culmination far above the samples");
    }
    got.into_iter().cloned().collect()
}

fn check_sane(label: &str, passes: &[Pass], m: f64) {
    for p in passes {
        for point in [&p.rise, &p.culmination, &p.set] {
            assert!(point.elevation_deg.is_finite() && point.azimuth_deg.is_finite(), "{label}: {p:?}");
            assert!((0.0..360.0).contains(&point.azimuth_deg), "{label}: {p:?}");
        }
        assert!(p.rise.time <= p.culmination.time && p.culmination.time <= p.set.time, "{label}: {p:?}");
        assert!((p.rise.elevation_deg - m).abs() < 0.01 && (p.set.elevation_deg - m).abs() < 0.01, "{label}: {p:?}");
        assert!(p.culmination.elevation_deg >= m, "{label}: {p:?}");
        assert_eq!(p.visible, p.visible_from.is_some(), "{label}: {p:?}");
        assert_eq!(p.visible, p.visible_to.is_some(), "{label}: {p:?}");
        if let (Some(a), Some(b)) = (p.visible_from, p.visible_to) {
            assert!(p.rise.time <= a && a <= b && b <= p.set.time, "{label}: {p:?}");
        }
    }
    for w in passes.windows(2) {
        assert!(w[0].set.time < w[1].rise.time, "{label}: overlapping passes");
    }
}

#[test]
fn agrees_with_a_brute_force_scan() {
    check_against_brute_force("oslo", OSLO, 10.0);
    check_against_brute_force("sydney, horizon", SYDNEY, 0.0);
}

#[test]
fn window_starting_mid_pass_reports_the_true_rise() {
    let tle = tle();
    let full = predict(&tle, OSLO, start(), end(), OPTS).unwrap();
    let pass = full[1].clone(); // 19:38:31 .. 19:43:25 on the 18th
    let close = |a: &Pass, b: &Pass| {
        seconds(a.rise.time, b.rise.time) <= 1.0
            && seconds(a.set.time, b.set.time) <= 1.0
            && seconds(a.culmination.time, b.culmination.time) <= 1.0
            && (a.culmination.elevation_deg - b.culmination.elevation_deg).abs() < 1e-3
            && a.visible == b.visible
    };
    let s = TimeDelta::seconds;
    for from in [pass.rise.time + s(30), pass.culmination.time, pass.culmination.time + s(60), pass.set.time - s(5)] {
        let got = predict(&tle, OSLO, from, end(), OPTS).unwrap();
        assert_eq!(got.len(), full.len() - 1, "from {from}");
        assert!(close(&got[0], &pass), "from {from}: {:?} vs {pass:?}", got[0]);
        assert!(got[0].rise.time < from);
    }
    // Once it has set, it is not reported.
    let got = predict(&tle, OSLO, pass.set.time + s(2), end(), OPTS).unwrap();
    assert!(close(&got[0], &full[2]));
    // A window ending mid-pass reports the whole pass too, and so does a window inside one pass.
    let got = predict(&tle, OSLO, start(), pass.rise.time + s(10), OPTS).unwrap();
    assert_eq!(got.len(), 2);
    assert!(close(&got[1], &pass));
    let got = predict(&tle, OSLO, pass.rise.time + s(10), pass.rise.time + s(20), OPTS).unwrap();
    assert_eq!(got.len(), 1);
    assert!(close(&got[0], &pass));
    // A window ending just before the rise does not.
    let got = predict(&tle, OSLO, start(), pass.rise.time - s(2), OPTS).unwrap();
    assert_eq!(got.len(), 1);
}

#[test]
fn antimeridian() {
    // Taveuni, Fiji, on both sides of 180 deg, and on it.
    let east = Observer { latitude: -16.8, longitude: 179.95, altitude_m: 0.0 };
    let west = Observer { latitude: -16.8, longitude: -179.95, altitude_m: 0.0 };
    let on_east = Observer { longitude: 180.0, ..east };
    let on_west = Observer { longitude: -180.0, ..east };
    let passes_east = check_against_brute_force("lon 179.95", east, 10.0);
    let passes_west = check_against_brute_force("lon -179.95", west, 10.0);
    check_sane("lon 179.95", &passes_east, 10.0);
    check_sane("lon -179.95", &passes_west, 10.0);
    assert!(!passes_east.is_empty());

    // +180 and -180 are the same place.
    let a = predict(&tle(), on_east, start(), end(), OPTS).unwrap();
    let b = predict(&tle(), on_west, start(), end(), OPTS).unwrap();
    assert_eq!(a.len(), b.len());
    assert!(!a.is_empty());
    for (p, q) in a.iter().zip(&b) {
        assert_eq!((p.rise.time, p.culmination.time, p.set.time), (q.rise.time, q.culmination.time, q.set.time));
        assert!(angle_diff(p.culmination.azimuth_deg, q.culmination.azimuth_deg) < 1e-6);
        assert!((p.culmination.elevation_deg - q.culmination.elevation_deg).abs() < 1e-6);
        assert_eq!((p.visible, p.visible_from, p.visible_to), (q.visible, q.visible_from, q.visible_to));
    }

    // Some of those passes carry the ISS across the antimeridian while it is above 10 deg.
    let model = Model::new(Orbit::from_tle(&tle()).unwrap(), on_east, start(), SunModel::Almanac);
    let longitude = |time: DateTime<Utc>| {
        let r = model.sample(seconds_between(start(), time)).unwrap().position;
        r[1].atan2(r[0]).to_degrees()
    };
    let crossing = a.iter().filter(|p| {
        let (l0, l1) = (longitude(p.rise.time), longitude(p.set.time));
        l0.signum() != l1.signum() && l0.abs() > 90.0
    });
    assert!(crossing.count() > 0, "no pass crosses 180 deg");
}

#[test]
fn poles_and_equator() {
    for (latitude, longitude) in [(90.0, 0.0), (-90.0, 0.0), (90.0, 123.0), (-90.0, -180.0)] {
        let pole = Observer { latitude, longitude, altitude_m: 0.0 };
        // The ISS (51.6 deg inclination) never rises there.
        let passes = predict(&tle(), pole, start(), end(), PassOptions { min_elevation_deg: 0.0, ..OPTS }).unwrap();
        assert!(passes.is_empty(), "pole {latitude}/{longitude}: {passes:?}");
        // Below the horizon it does "pass" (highest about -14 deg) ...
        let low = PassOptions { min_elevation_deg: -20.0, ..OPTS };
        let passes = predict(&tle(), pole, start(), end(), low).unwrap();
        assert!(!passes.is_empty());
        check_sane("pole, -20 deg", &passes, -20.0);
        // ... and with a minimum it always exceeds there is no pass at all, which is an error, not a hang.
        let never_below = PassOptions { min_elevation_deg: -85.0, ..OPTS };
        let err = predict(&tle(), pole, start(), end(), never_below).unwrap_err();
        assert!(matches!(err, PredictError::EndlessPass(_)), "{err}");
    }
    for longitude in [0.0, 180.0, -180.0, 90.0] {
        let equator = Observer { latitude: 0.0, longitude, altitude_m: 0.0 };
        let passes = predict(&tle(), equator, start(), end(), OPTS).unwrap();
        assert!(!passes.is_empty());
        check_sane("equator", &passes, 10.0);
    }
    check_against_brute_force("equator", Observer { latitude: 0.0, longitude: 0.0, altitude_m: 0.0 }, 10.0);
}

#[test]
fn reference_passes_are_sane() {
    for observer in [OSLO, SYDNEY] {
        check_sane("reference window", &predict(&tle(), observer, start(), end(), OPTS).unwrap(), 10.0);
    }
}

#[test]
fn deterministic() {
    let a = predict(&tle(), SYDNEY, start(), end(), OPTS).unwrap();
    let b = predict(&tle(), SYDNEY, start(), end(), OPTS).unwrap();
    assert_eq!(a, b);
}

/// Sets the checksum digit of a TLE line (sum of the digits, minus signs count 1, modulo 10).
fn with_checksum(line: &str) -> String {
    let body = &line[..68];
    let sum: u32 = body.chars().map(|c| if c == '-' { 1 } else { c.to_digit(10).unwrap_or(0) }).sum();
    format!("{body}{}", sum % 10)
}

fn tle_with(line1: &str, line2: &str) -> Tle {
    Tle { line1: line1.to_string(), line2: line2.to_string(), ..tle() }
}

#[test]
fn bad_tles_are_errors() {
    let good = tle();
    let one_day = |t: &Tle| predict(t, OSLO, start(), start() + TimeDelta::hours(24), OPTS);
    assert!(one_day(&good).is_ok());
    let bad_tle = |t: &Tle| matches!(one_day(t), Err(PredictError::BadTle(_)));
    // Wrong length, empty, not ASCII, bad checksum, swapped lines.
    assert!(bad_tle(&tle_with(&good.line1[..60], &good.line2)));
    assert!(bad_tle(&tle_with("", "")));
    let not_ascii = format!("{}é", &good.line1[..67]);
    assert_eq!(not_ascii.len(), 69);
    assert!(bad_tle(&tle_with(&not_ascii, &good.line2)));
    let mut bad_sum = good.line1.clone();
    bad_sum.replace_range(68..69, if good.line1.ends_with('7') { "8" } else { "7" });
    assert!(bad_tle(&tle_with(&bad_sum, &good.line2)));
    assert!(bad_tle(&tle_with(&good.line2, &good.line1)));
    // A float field spelled NaN, with a valid checksum.
    let nan = with_checksum(&good.line2.replacen("15.49383676", "NAN        ", 1));
    assert!(bad_tle(&tle_with(&good.line1, &nan)), "{:?}", one_day(&tle_with(&good.line1, &nan)));
    // Zero mean motion.
    let zero = with_checksum(&good.line2.replacen("15.49383676", "00.00000000", 1));
    assert!(bad_tle(&tle_with(&good.line1, &zero)), "{:?}", one_day(&tle_with(&good.line1, &zero)));

    // A geostationary orbit is not a near-Earth one.
    let geo = with_checksum(&good.line2.replacen("15.49383676", " 1.00270000", 1));
    let err = one_day(&tle_with(&good.line1, &geo)).unwrap_err();
    assert!(matches!(err, PredictError::UnsupportedOrbit(_)), "{err}");
    eprintln!("geostationary: {err}");

    // Enormous drag: SGP4 brings it down within the window.
    let decaying = with_checksum(&good.line1.replacen(" 28244-3", " 99999+0", 1));
    let err = predict(&tle_with(&decaying, &good.line2), OSLO, start(), end(), OPTS).unwrap_err();
    assert!(matches!(err, PredictError::Propagation(_)), "{err}");
    eprintln!("decaying: {err}");
}

#[test]
fn mutated_tles_never_panic() {
    let good = tle();
    let mut outcomes = [0usize; 2];
    for (line, text) in [(1, &good.line1), (2, &good.line2)] {
        for i in 2..68 {
            for c in ['0', '9', '-', '+', '.', ' ', 'A', 'E'] {
                let mut mutated = text.clone();
                mutated.replace_range(i..i + 1, &c.to_string());
                let mutated = with_checksum(&mutated);
                let t = if line == 1 { tle_with(&mutated, &good.line2) } else { tle_with(&good.line1, &mutated) };
                let result = predict(&t, OSLO, start(), start() + TimeDelta::hours(6), OPTS);
                outcomes[usize::from(result.is_ok())] += 1;
            }
        }
    }
    eprintln!("mutated TLEs: {} predicted, {} rejected", outcomes[1], outcomes[0]);
}

#[test]
fn bad_windows_observers_and_options() {
    let t = tle();
    // An empty or reversed window.
    assert_eq!(predict(&t, OSLO, end(), start(), OPTS).unwrap(), vec![]);
    assert_eq!(predict(&t, OSLO, start(), start(), OPTS).unwrap(), vec![]);
    // Observers.
    for bad in [
        Observer { latitude: f64::NAN, ..OSLO },
        Observer { longitude: f64::INFINITY, ..OSLO },
        Observer { altitude_m: f64::NAN, ..OSLO },
        Observer { latitude: 90.5, ..OSLO },
        Observer { longitude: -180.5, ..OSLO },
        Observer { altitude_m: 1e9, ..OSLO },
    ] {
        let err = predict(&t, bad, start(), end(), OPTS).unwrap_err();
        assert!(matches!(err, PredictError::InvalidObserver(_)), "{bad:?}: {err}");
    }
    // Options.
    for bad in [
        PassOptions { min_elevation_deg: f64::NAN, ..OPTS },
        PassOptions { min_elevation_deg: 91.0, ..OPTS },
        PassOptions { sun_limit_deg: f64::NEG_INFINITY, ..OPTS },
    ] {
        let err = predict(&t, OSLO, start(), end(), bad).unwrap_err();
        assert!(matches!(err, PredictError::InvalidOptions(_)), "{bad:?}: {err}");
    }
    // Far from the TLE's epoch SGP4 still runs (the elements are useless there, but that is the
    // caller's business) or fails cleanly.
    let years = TimeDelta::days(3650);
    for from in [start() - years, start() + years] {
        let result = predict(&t, OSLO, from, from + TimeDelta::hours(24), OPTS);
        eprintln!("ten years from the epoch: {:?}", result.as_ref().map(Vec::len).map_err(ToString::to_string));
    }
    // A minimum elevation of 90 deg: nothing.
    assert!(predict(&t, SYDNEY, start(), end(), PassOptions { min_elevation_deg: 90.0, ..OPTS }).unwrap().is_empty());
}

/// Not a benchmark and not an assertion: the cost of a week for Oslo in this (debug) build.
#[test]
fn debug_build_timing_week_oslo() {
    let t = tle();
    let week = start() + TimeDelta::days(7);
    let runs = 5;
    let mut best = std::time::Duration::MAX;
    let mut passes = 0;
    for _ in 0..runs {
        let clock = std::time::Instant::now();
        passes = predict(&t, OSLO, start(), week, OPTS).unwrap().len();
        best = best.min(clock.elapsed());
    }
    let model = Model::new(Orbit::from_tle(&t).unwrap(), OSLO, start(), SunModel::Almanac);
    let found = model.passes(seconds_between(start(), week), &OPTS).unwrap();
    assert_eq!(found.len(), passes);
    eprintln!(
        "DEBUG BUILD (unoptimised) timing: a week of Oslo passes ({passes} passes) takes {:.2} ms (best of {runs}); \
         {} SGP4 evaluations",
        best.as_secs_f64() * 1e3,
        model.propagations.get()
    );
}

#[test]
fn look_angles_agree_with_the_reference_culmination() {
    let tle = crate::sources::tle_parse::parse_tle(include_bytes!("../../../tests/fixtures/passes/iss-2023-09-18.tle"))
        .unwrap();
    let oslo = Observer { latitude: 59.9139, longitude: 10.7522, altitude_m: 20.0 };
    // Oslo's second reference pass culminates at 19:40:58Z, azimuth 170.699, elevation 18.891.
    let t = "2023-09-18T19:40:58Z".parse().unwrap();
    let p = super::look_angles(&tle, oslo, t).unwrap();
    assert_eq!(p.time, t);
    assert!((p.azimuth_deg - 170.699).abs() < 0.2, "{p:?}");
    assert!((p.elevation_deg - 18.891).abs() < 0.05, "{p:?}");
    let bad = Observer { latitude: f64::NAN, ..oslo };
    assert!(super::look_angles(&tle, bad, t).is_err());
}

#[test]
fn elevation_windows_at_the_minimum_elevation_are_the_reference_passes() {
    let windows = super::elevation_windows(&tle(), OSLO, start(), end(), 10.0).unwrap();
    let reference = reference(OSLO_JSON);
    assert_eq!(windows.len(), reference.len(), "{windows:?}");
    for (w, p) in windows.iter().zip(&reference) {
        assert!(seconds(w.start, p.rise.time) <= 1.0 && seconds(w.end, p.set.time) <= 1.0, "{w:?} vs {p:?}");
    }
}

#[test]
fn elevation_windows_are_bounded_by_crossings_of_the_threshold() {
    let t = tle();
    // Not 15: a reference pass culminates at 15.0 deg.
    let m = 16.0;
    let windows = super::elevation_windows(&t, OSLO, start(), end(), m).unwrap();
    // The reference passes that culminate above 16 deg, one window each, around the culmination.
    let high: Vec<Pass> = reference(OSLO_JSON).into_iter().filter(|p| p.culmination.elevation_deg > m).collect();
    assert_eq!(windows.len(), high.len(), "{windows:?}");
    let elevation = |at: DateTime<Utc>| super::look_angles(&t, OSLO, at).unwrap().elevation_deg;
    let second = TimeDelta::seconds(1);
    for (w, p) in windows.iter().zip(&high) {
        assert!(p.rise.time < w.start && w.start < p.culmination.time && p.culmination.time < w.end, "{w:?} {p:?}");
        assert!(w.end < p.set.time, "{w:?} {p:?}");
        // Rounded to the second: the true crossing is within half a second of each edge.
        assert!(elevation(w.start - second) < m && elevation(w.start + second) > m, "up at {}", w.start);
        assert!(elevation(w.end - second) > m && elevation(w.end + second) < m, "down at {}", w.end);
    }
    // A window that starts inside one reports its true edges; one that ends before: nothing more.
    let first = &windows[0];
    let mid = first.start + (first.end - first.start) / 2;
    let from_mid = super::elevation_windows(&t, OSLO, mid, mid + TimeDelta::minutes(1), m).unwrap();
    assert_eq!(from_mid, std::slice::from_ref(first));
    assert!(super::elevation_windows(&t, OSLO, first.end, first.end, m).unwrap().is_empty());
    let err = super::elevation_windows(&t, OSLO, start(), end(), f64::NAN).unwrap_err();
    assert!(matches!(err, PredictError::InvalidOptions(_)), "{err}");
}
