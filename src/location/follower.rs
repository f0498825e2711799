//! The location state machine: which location to publish, given GPS fixes, their absence and
//! the connection's fate, with the clock passed in so tests drive it with fake instants.
//!
//! Owns the rules: the first fix is published (source `gps`); later fixes only when they are
//! more than `MOVE_THRESHOLD_M` from the published one (or first bring an altitude), so passes
//! are not recomputed for GPS wander; after `FIX_GRACE` without a fix, or at once when gpsd is
//! lost, the latest fix is published as `last_fix`, else the configured location, else none.
//! Never does I/O or reads a clock.

use super::LocationConfig;
use super::{Located, LocationSource, gpsd_parse::Fix};
use crate::passes::Observer;
use std::time::Duration;
use tokio::time::Instant;

/// How long a fix may be missing (no TPV, or TPVs with mode < 2) before we stop calling the
/// position live: receivers drop the fix for a few seconds under trees or bridges.
pub const FIX_GRACE: Duration = Duration::from_secs(30);

/// A move of more than this (great-circle metres) is published and recomputes the passes;
/// pass times shift by well under a second per kilometre, so smaller moves are not worth it.
pub const MOVE_THRESHOLD_M: f64 = 1000.0;

/// Mean Earth radius (IUGG), metres.
const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// Great-circle distance between two observers (haversine; altitude ignored).
pub fn distance_m(a: &Observer, b: &Observer) -> f64 {
    let (p1, p2) = (a.latitude.to_radians(), b.latitude.to_radians());
    let dp = p2 - p1;
    let dl = (b.longitude - a.longitude).to_radians();
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
}

/// The newest fix, published or not.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatestFix {
    /// With source `gps`.
    pub located: Located,
    pub mode: u8,
    pub at: Instant,
}

#[derive(Debug, Clone)]
pub struct Follower {
    configured: Option<Located>,
    /// Used for fixes without an altitude (2D).
    default_altitude_m: f64,
    latest: Option<LatestFix>,
    current: Option<Located>,
    /// Whether `current` came from a 3D fix (has a GPS altitude).
    current_has_altitude: bool,
}

impl Follower {
    pub fn new(cfg: &LocationConfig) -> Self {
        Follower {
            configured: super::configured(cfg),
            default_altitude_m: cfg.altitude_m,
            latest: None,
            current: super::configured(cfg),
            current_has_altitude: false,
        }
    }

    /// What the watch channel should hold.
    pub fn current(&self) -> Option<Located> {
        self.current
    }

    pub fn latest(&self) -> Option<LatestFix> {
        self.latest
    }

    /// A usable fix arrived at `now`; returns whether `current()` changed.
    pub fn fix(&mut self, fix: &Fix, now: Instant) -> bool {
        let observer = Observer {
            latitude: fix.latitude,
            longitude: fix.longitude,
            altitude_m: fix.altitude_m.unwrap_or(self.default_altitude_m),
        };
        let located = Located { observer, source: LocationSource::Gps, fix_time: fix.time };
        self.latest = Some(LatestFix { located, mode: fix.mode, at: now });
        let publish = match self.current {
            Some(c) if c.source == LocationSource::Gps => {
                distance_m(&c.observer, &observer) > MOVE_THRESHOLD_M
                    // Once, when a 2D fix becomes 3D: the altitude was a guess until then.
                    || (!self.current_has_altitude && fix.altitude_m.is_some())
            }
            _ => true,
        };
        if publish {
            self.current = Some(located);
            self.current_has_altitude = fix.altitude_m.is_some();
        }
        publish
    }

    /// Time passes (called about once a second while connected); returns whether `current()`
    /// changed because the fix has been missing for longer than `FIX_GRACE`.
    pub fn tick(&mut self, now: Instant) -> bool {
        let stale = self.latest.is_none_or(|l| now.saturating_duration_since(l.at) > FIX_GRACE);
        if self.is_live() && stale { self.fall_back() } else { false }
    }

    /// gpsd is gone (connection dropped or cannot be made); returns whether `current()` changed.
    pub fn lost(&mut self) -> bool {
        if self.is_live() { self.fall_back() } else { false }
    }

    fn is_live(&self) -> bool {
        self.current.is_some_and(|c| c.source == LocationSource::Gps)
    }

    fn fall_back(&mut self) -> bool {
        let next = match self.latest {
            Some(l) => Some(Located { source: LocationSource::LastFix, ..l.located }),
            None => self.configured,
        };
        let changed = next != self.current;
        self.current = next;
        self.current_has_altitude = false;
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    const OSLO: (f64, f64) = (59.9139, 10.7522);
    const BERGEN: (f64, f64) = (60.3913, 5.3221);
    const TROMSO: (f64, f64) = (69.65, 18.96);

    fn cfg(at: Option<(f64, f64)>) -> LocationConfig {
        LocationConfig { latitude: at.map(|a| a.0), longitude: at.map(|a| a.1), altitude_m: 7.0, gpsd: None }
    }

    fn fix(at: (f64, f64), alt: Option<f64>, second: u32) -> Fix {
        let time = Utc.with_ymd_and_hms(2023, 9, 18, 19, 38, second).single();
        Fix { latitude: at.0, longitude: at.1, altitude_m: alt, mode: if alt.is_some() { 3 } else { 2 }, time }
    }

    fn obs(at: (f64, f64)) -> Observer {
        Observer { latitude: at.0, longitude: at.1, altitude_m: 0.0 }
    }

    fn at(f: &Follower) -> (LocationSource, f64, f64, f64) {
        let c = f.current().expect("a location");
        (c.source, c.observer.latitude, c.observer.longitude, c.observer.altitude_m)
    }

    #[test]
    fn distance_is_great_circle_metres() {
        assert_eq!(distance_m(&obs(OSLO), &obs(OSLO)), 0.0);
        let d = distance_m(&obs(OSLO), &obs(BERGEN));
        assert!((d - 305_000.0).abs() < 2_000.0, "Oslo-Bergen is about 305 km, got {d}");
        assert_eq!(d, distance_m(&obs(BERGEN), &obs(OSLO)));
        // One minute of latitude is one nautical mile.
        let d = distance_m(&obs((60.0, 10.0)), &obs((60.0 + 1.0 / 60.0, 10.0)));
        assert!((d - 1852.0).abs() < 5.0, "{d}");
        // At 60 degrees north a degree of longitude is half as long as at the equator.
        let d = distance_m(&obs((60.0, 10.0)), &obs((60.0, 11.0)));
        assert!((d - 55_600.0).abs() < 300.0, "{d}");
        let d = distance_m(&obs((0.0, 179.9)), &obs((0.0, -179.9)));
        assert!((d - 22_239.0).abs() < 10.0, "across the antimeridian: {d}");
        assert!((distance_m(&obs((0.0, 0.0)), &obs((0.0, 180.0))) - 20_015_115.0).abs() < 100.0);
    }

    #[test]
    fn the_first_fix_replaces_the_configured_location() {
        let t0 = Instant::now();
        let mut f = Follower::new(&cfg(Some(TROMSO)));
        assert_eq!(at(&f), (LocationSource::Config, TROMSO.0, TROMSO.1, 7.0));
        assert!(f.fix(&fix(OSLO, Some(20.0), 1), t0));
        assert_eq!(at(&f), (LocationSource::Gps, OSLO.0, OSLO.1, 20.0));
        assert_eq!(f.current().unwrap().fix_time, Utc.with_ymd_and_hms(2023, 9, 18, 19, 38, 1).single());
    }

    #[test]
    fn only_moves_of_more_than_a_kilometre_are_published() {
        let t0 = Instant::now();
        let mut f = Follower::new(&cfg(None));
        assert!(f.fix(&fix(OSLO, Some(20.0), 0), t0));
        // 0.0089 degrees of latitude is about 990 m: wander, not a move.
        let near = (OSLO.0 + 0.0089, OSLO.1);
        assert!(!f.fix(&fix(near, Some(25.0), 1), t0 + Duration::from_secs(1)));
        assert_eq!(at(&f), (LocationSource::Gps, OSLO.0, OSLO.1, 20.0), "unchanged");
        assert_eq!(f.latest().unwrap().located.observer.latitude, near.0, "but the newest fix is kept");
        // The distance is from the published location, so creeping wander adds up to a move.
        let far = (OSLO.0 + 0.0091, OSLO.1);
        assert!(f.fix(&fix(far, Some(25.0), 2), t0 + Duration::from_secs(2)));
        assert_eq!(at(&f), (LocationSource::Gps, far.0, far.1, 25.0));
        assert!(f.fix(&fix(BERGEN, Some(12.0), 3), t0 + Duration::from_secs(3)));
        assert_eq!(at(&f), (LocationSource::Gps, BERGEN.0, BERGEN.1, 12.0));
    }

    #[test]
    fn a_2d_fix_uses_the_configured_altitude_until_a_3d_fix_brings_one() {
        let t0 = Instant::now();
        let mut f = Follower::new(&cfg(Some(TROMSO)));
        assert!(f.fix(&fix(OSLO, None, 0), t0));
        assert_eq!(at(&f), (LocationSource::Gps, OSLO.0, OSLO.1, 7.0));
        assert!(!f.fix(&fix(OSLO, None, 1), t0), "2D again: nothing new");
        assert!(f.fix(&fix(OSLO, Some(20.0), 2), t0), "the first altitude is published once");
        assert_eq!(at(&f).3, 20.0);
        assert!(!f.fix(&fix(OSLO, None, 3), t0), "dropping to 2D keeps the published altitude");
        assert!(!f.fix(&fix(OSLO, Some(21.0), 4), t0), "and 3D again is only wander");
    }

    #[test]
    fn a_missing_fix_falls_back_to_the_last_fix_after_the_grace() {
        let t0 = Instant::now();
        let mut f = Follower::new(&cfg(Some(TROMSO)));
        assert!(!f.tick(t0 + FIX_GRACE * 10), "no fix yet: the configured location stays");
        assert!(f.fix(&fix(OSLO, Some(20.0), 0), t0));
        let wander = (OSLO.0, OSLO.1 + 0.001);
        assert!(!f.fix(&fix(wander, Some(20.0), 5), t0 + Duration::from_secs(5)));
        let last = t0 + Duration::from_secs(5);
        assert!(!f.tick(last + FIX_GRACE), "exactly the grace: still live");
        assert_eq!(at(&f).0, LocationSource::Gps);
        assert!(f.tick(last + FIX_GRACE + Duration::from_millis(1)));
        // The newest fix, not the published one, with its own time.
        assert_eq!(at(&f), (LocationSource::LastFix, wander.0, wander.1, 20.0));
        assert_eq!(f.current().unwrap().fix_time, Utc.with_ymd_and_hms(2023, 9, 18, 19, 38, 5).single());
        assert!(!f.tick(last + FIX_GRACE * 3), "falling back happens once");
        assert!(!f.lost());
        // The fix returns, at the same place: the source changes, so it is published.
        assert!(f.fix(&fix(wander, Some(20.0), 40), last + FIX_GRACE * 3));
        assert_eq!(at(&f), (LocationSource::Gps, wander.0, wander.1, 20.0));
    }

    #[test]
    fn losing_gpsd_falls_back_at_once() {
        let t0 = Instant::now();
        let mut f = Follower::new(&cfg(Some(TROMSO)));
        assert!(!f.lost(), "never had a fix: the configured location stays");
        assert_eq!(at(&f).0, LocationSource::Config);
        assert!(f.fix(&fix(BERGEN, None, 0), t0));
        assert!(f.lost());
        assert_eq!(at(&f), (LocationSource::LastFix, BERGEN.0, BERGEN.1, 7.0));
        assert!(f.fix(&fix(OSLO, Some(20.0), 1), t0 + Duration::from_secs(1)));
        assert_eq!(at(&f), (LocationSource::Gps, OSLO.0, OSLO.1, 20.0));
    }

    #[test]
    fn without_a_configured_location_or_a_fix_there_is_none() {
        let t0 = Instant::now();
        let mut f = Follower::new(&cfg(None));
        assert_eq!(f.current(), None);
        assert!(!f.lost());
        assert!(!f.tick(t0 + FIX_GRACE * 2));
        assert_eq!(f.current(), None);
        assert!(f.fix(&fix(OSLO, None, 0), t0));
        assert!(f.tick(t0 + FIX_GRACE * 2));
        assert_eq!(at(&f).0, LocationSource::LastFix, "a last fix beats nothing");
    }
}
