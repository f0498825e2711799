//! Collects the ISS position every `poll_interval_s` (open-notify or wheretheiss.at). Owns the
//! `[iss]` section, which also holds the TLE source's keys (`tle.rs`): one satellite, one section.
//!
//! Positions must move forward in time: an answer whose timestamp is not after the newest stored
//! one (a cached answer, a clock jump) is rejected, as is one from the future (more than
//! `FUTURE_SKEW` ahead of our clock: the store keeps positions in strictly increasing time, so a
//! stored position from the future would refuse every real one until the clock caught up with it).
//!
//! Positions must agree with the orbit: the default upstream is plain HTTP, so anyone on the path
//! can move the ISS. With a fresh TLE (epoch within `TLE_FRESH` of the position's time), a position
//! more than `MAX_OFF_ORBIT_KM` from where SGP4 puts the ISS at that time is rejected as
//! `implausible`. Without one, positions are taken as they come.

use super::iss_position_parse::{check_position_time, parse_position};
use super::poll::{Answer, Poller, Request, Schedule};
use super::{Rejection, SourceCtx};
use crate::backoff::Backoff;
use crate::config::{Invalid, KeyType, Section, http_url, range};
use crate::domain::{IssPosition, Record, Tle};
use crate::passes::GroundTrack;
use crate::store::Store;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::sync::watch;

/// A TLE this close to a position's time (either side) is trusted to say where the ISS was.
/// CelesTrak publishes a new ISS element set several times a day and `tle_refresh_h` is 12 h by
/// default, so the stored one is normally under a day old; 3 days still covers a day or two of
/// failed TLE fetches (they back off for hours). Older, SGP4's error grows past what the check
/// can tell from a spoof, most of all across a reboost the TLE does not know of.
pub const TLE_FRESH: TimeDelta = TimeDelta::days(3);
/// How far from the SGP4 position a reported one may be. Measured on real answers against real
/// TLEs (see the tests): 12-31 km for TLEs 3-6.5 days from the position, 573 km for one 6.2 days
/// away across a reboost (about 90 km a day, so about 280 km at `TLE_FRESH`). 1000 km is over
/// three times that, and is 140 s of the ISS's motion, so an upstream's latency or rounding never
/// comes close; a position 3000 km off, or from another time than it says, is not the ISS.
pub const MAX_OFF_ORBIT_KM: f64 = 1000.0;

/// `[iss]`: where the position and the TLE come from, and how often.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssConfig {
    #[serde(default = "d_position_url")]
    pub position_url: String,
    #[serde(default = "d_poll")]
    pub poll_interval_s: u64,
    #[serde(default = "d_tle_url")]
    pub tle_url: String,
    #[serde(default = "d_tle_refresh")]
    pub tle_refresh_h: f64,
}

fn d_position_url() -> String {
    "http://api.open-notify.org/iss-now.json".into()
}
fn d_poll() -> u64 {
    10
}
fn d_tle_url() -> String {
    "https://celestrak.org/NORAD/elements/gp.php?CATNR=25544&FORMAT=TLE".into()
}
fn d_tle_refresh() -> f64 {
    12.0
}

impl IssConfig {
    /// The effective TLE refresh: CelesTrak asks clients not to re-download within 2 hours.
    pub fn tle_refresh(&self) -> Duration {
        let hours = if self.tle_url.contains("celestrak") { self.tle_refresh_h.max(2.0) } else { self.tle_refresh_h };
        Duration::from_secs_f64(hours * 3600.0)
    }
}

impl Section for IssConfig {
    const KEYS: &'static [(&'static str, KeyType)] = &[
        ("position_url", KeyType::Str),
        ("poll_interval_s", KeyType::Int),
        ("tle_url", KeyType::Str),
        ("tle_refresh_h", KeyType::Float),
    ];

    fn validate(&self) -> Result<(), Invalid> {
        range("poll_interval_s", self.poll_interval_s as f64, 1.0, 86_400.0)?;
        range("tle_refresh_h", self.tle_refresh_h, 0.1, 24.0 * 30.0)?;
        http_url("position_url", &self.position_url)?;
        http_url("tle_url", &self.tle_url)
    }

    fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.tle_url.contains("celestrak") && self.tle_refresh_h < 2.0 {
            out.push(format!(
                "iss.tle_refresh_h = {} is below CelesTrak's 2 h update cycle; 2 h is used",
                self.tle_refresh_h
            ));
        }
        if self.position_url.contains("open-notify") && self.poll_interval_s < 5 {
            out.push("iss.poll_interval_s below 5 s exceeds open-notify's request limit".into());
        }
        out
    }
}

pub struct IssPositionSource {
    pub url: String,
    pub interval: Duration,
    /// The newest stored position time, read from the store at start.
    pub last_stored: Option<DateTime<Utc>>,
    /// The newest TLE (from the store at start, then from the TLE source as it fetches them).
    pub tle: watch::Receiver<Option<Tle>>,
    /// The SGP4 model of `tle`, rebuilt only when the TLE changes.
    orbit: Option<GroundTrack>,
}

impl IssPositionSource {
    pub async fn new(cfg: &IssConfig, store: &Store, tle: watch::Receiver<Option<Tle>>) -> anyhow::Result<Self> {
        let last_stored = super::read_store(store, |s| Ok(s.latest_position()?.map(|p| p.time))).await?;
        Ok(IssPositionSource::with(
            cfg.position_url.clone(),
            Duration::from_secs(cfg.poll_interval_s),
            last_stored,
            tle,
        ))
    }

    pub fn with(
        url: String,
        interval: Duration,
        last_stored: Option<DateTime<Utc>>,
        mut tle: watch::Receiver<Option<Tle>>,
    ) -> Self {
        // The TLE present now is new to this source: the first answer builds its model.
        tle.mark_changed();
        IssPositionSource { url, interval, last_stored, tle, orbit: None }
    }

    /// The SGP4 model of the newest TLE, if there is one SGP4 can use.
    fn orbit(&mut self) -> Option<&GroundTrack> {
        if self.tle.has_changed().unwrap_or(false) {
            let tle = self.tle.borrow_and_update().clone();
            self.orbit = tle.and_then(|tle| match GroundTrack::new(&tle) {
                Ok(orbit) => Some(orbit),
                Err(e) => {
                    tracing::warn!(epoch = %tle.epoch, error = %e, "positions are not checked against this TLE");
                    None
                }
            });
        }
        self.orbit.as_ref()
    }

    /// `implausible` when a fresh TLE puts the ISS more than `MAX_OFF_ORBIT_KM` from `p`.
    fn check_orbit(&mut self, p: &IssPosition) -> Result<(), Rejection> {
        let Some(orbit) = self.orbit() else { return Ok(()) };
        if (p.time - orbit.epoch()).abs() > TLE_FRESH {
            return Ok(());
        }
        match orbit.distance_km(p.time, p.latitude, p.longitude) {
            Ok(km) if km > MAX_OFF_ORBIT_KM => Err(Rejection::new(
                "implausible",
                format!(
                    "{:.4}, {:.4} at {} is {km:.0} km from where the TLE of {} puts the ISS (at most {MAX_OFF_ORBIT_KM} km)",
                    p.latitude,
                    p.longitude,
                    p.time,
                    orbit.epoch()
                ),
            )),
            // A TLE SGP4 cannot carry to that time says nothing about the position.
            Ok(_) | Err(_) => Ok(()),
        }
    }
}

impl Poller for IssPositionSource {
    const NAME: &'static str = "iss_position";

    fn schedule(&self, _now: DateTime<Utc>) -> Schedule {
        let every = self.interval;
        Schedule {
            every,
            backoff: Backoff::new(every, Duration::from_secs(600).max(every)),
            first_wait: Duration::ZERO,
        }
    }

    async fn plan(&mut self, _ctx: &SourceCtx, _now: DateTime<Utc>) -> Vec<Request> {
        vec![Request::json(self.url.clone())]
    }

    fn parse(&mut self, body: &[u8], now: DateTime<Utc>) -> Result<Answer, Rejection> {
        let position = parse_position(body)?.rounded();
        if let Err(r) = check_position_time(position.time, now, self.last_stored) {
            // An answer that is simply not new yet is normal; a time from the future means a
            // wrong clock (ours or theirs) and is treated like any other bad answer.
            return if r.reason == "time_not_after_last" { Ok(Answer::nothing_new(r)) } else { Err(r) };
        }
        // Checked before the position counts as the last one: a refused position moves nothing.
        self.check_orbit(&position)?;
        self.last_stored = Some(position.time);
        Ok(Answer::records(vec![Record::IssPosition(position)]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::iss_position_parse::FUTURE_SKEW;
    use crate::sources::tle_parse::parse_tle;

    const WHERETHEISS: &[u8] = include_bytes!("../../tests/fixtures/wheretheiss_satellites_25544.json");
    const OPEN_NOTIFY: &[u8] = include_bytes!("../../tests/fixtures/open-notify_iss-now.json");
    /// CelesTrak's ISS element sets of 2022-12-05 00:49 UTC, 2.9 days after the recorded
    /// wheretheiss.at answer, and of 2020-07-05 08:17 UTC, 6.2 days after the recorded open-notify
    /// answer and after a reboost (both as published, quoted in public repositories).
    const TLE_2022_12_05: &str = "1 25544U 98067A   22339.03402137  .00010856  00000+0  19968-3 0  9994\n\
                                  2 25544  51.6438 210.2304 0004354 127.5503 200.9328 15.49745241371670\n";
    const TLE_2020_07_05: &str = "1 25544U 98067A   20187.34541214  .00002866  00000-0  59793-4 0  9991\n\
                                  2 25544  51.6454 258.5877 0002990  76.8215 328.5773 15.49181247234835\n";

    fn source(tle: Option<&str>) -> (IssPositionSource, watch::Sender<Option<Tle>>) {
        let (tx, rx) = watch::channel(tle.map(|t| parse_tle(t.as_bytes()).unwrap()));
        (IssPositionSource::with("http://x/iss".into(), Duration::from_secs(10), None, rx), tx)
    }

    fn reason(r: Result<Answer, Rejection>) -> &'static str {
        r.map(|a| a.rejected.first().map_or("accepted", |r| r.reason)).unwrap_or_else(|r| r.reason)
    }

    fn stored(r: Result<Answer, Rejection>) -> Vec<IssPosition> {
        r.unwrap()
            .records
            .into_iter()
            .map(|r| match r {
                Record::IssPosition(p) => p,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    fn distance(tle: &str, body: &[u8]) -> f64 {
        let p = parse_position(body).unwrap();
        let orbit = GroundTrack::new(&parse_tle(tle.as_bytes()).unwrap()).unwrap();
        orbit.distance_km(p.time, p.latitude, p.longitude).unwrap()
    }

    /// Moves a wheretheiss.at answer's latitude by `dlat` degrees (111 km each).
    fn moved(dlat: f64) -> Vec<u8> {
        let mut v: serde_json::Value = serde_json::from_slice(WHERETHEISS).unwrap();
        v["latitude"] = (v["latitude"].as_f64().unwrap() + dlat).into();
        serde_json::to_vec(&v).unwrap()
    }

    fn after(body: &[u8]) -> DateTime<Utc> {
        parse_position(body).unwrap().time + TimeDelta::seconds(1)
    }

    /// What the thresholds rest on: real answers against real element sets.
    #[test]
    fn real_answers_are_close_to_their_orbit() {
        let fresh = distance(TLE_2022_12_05, WHERETHEISS);
        assert!((20.0..40.0).contains(&fresh), "wheretheiss.at vs a TLE 2.9 days later: {fresh:.1} km");
        let stale = distance(TLE_2020_07_05, OPEN_NOTIFY);
        assert!((500.0..650.0).contains(&stale), "open-notify vs a TLE 6.2 days later, after a reboost: {stale:.1} km");
        assert!(stale < MAX_OFF_ORBIT_KM * 0.65, "even that is well inside the threshold");
    }

    #[test]
    fn a_position_off_the_orbit_of_a_fresh_tle_is_implausible() {
        let (mut s, _tx) = source(Some(TLE_2022_12_05));
        // 27 degrees of latitude: 3000 km off the orbit.
        let spoofed = moved(27.0);
        assert!(distance(TLE_2022_12_05, &spoofed) > 2_900.0);
        let r = s.parse(&spoofed, after(&spoofed));
        assert_eq!(reason(r), "implausible");
        assert_eq!(s.last_stored, None, "a refused position moves nothing");
        // The real answer, of the same time, is kept.
        assert_eq!(stored(s.parse(WHERETHEISS, after(WHERETHEISS))).len(), 1);
        assert_eq!(s.last_stored, Some(parse_position(WHERETHEISS).unwrap().time));
        // 8 degrees (900 km) off is still taken: within what a TLE that missed a reboost can be off.
        let (mut s, _tx) = source(Some(TLE_2022_12_05));
        assert_eq!(reason(s.parse(&moved(8.0), after(WHERETHEISS))), "accepted");
    }

    #[test]
    fn without_a_fresh_tle_positions_are_taken_as_they_come() {
        let spoofed = moved(-27.0);
        let (mut s, _tx) = source(None);
        assert_eq!(reason(s.parse(&spoofed, after(&spoofed))), "accepted");
        // The 2020 element set is years from the 2022 position: it says nothing about it.
        let (mut s, _tx) = source(Some(TLE_2020_07_05));
        assert_eq!(reason(s.parse(&spoofed, after(&spoofed))), "accepted");
        // Nor does one 6.2 days away across a reboost about the open-notify answer (573 km off).
        let (mut s, _tx) = source(Some(TLE_2020_07_05));
        assert_eq!(reason(s.parse(OPEN_NOTIFY, after(OPEN_NOTIFY))), "accepted");
    }

    #[test]
    fn a_new_tle_is_used_from_the_next_answer_on() {
        let (mut s, tx) = source(None);
        let spoofed = moved(27.0);
        tx.send_replace(Some(parse_tle(TLE_2022_12_05.as_bytes()).unwrap()));
        assert_eq!(reason(s.parse(&spoofed, after(&spoofed))), "implausible");
        tx.send_replace(None);
        assert_eq!(reason(s.parse(&spoofed, after(&spoofed))), "accepted");
    }

    /// One answer stamped minutes ahead (a forged or broken upstream) is refused and does not
    /// become the last position: the real answers after it are stored.
    #[test]
    fn a_position_from_the_future_suppresses_nothing() {
        let (mut s, _tx) = source(None);
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let at = |t: DateTime<Utc>| {
            format!(
                r#"{{"message":"success","iss_position":{{"latitude":"1","longitude":"2"}},"timestamp":{}}}"#,
                t.timestamp()
            )
        };
        let ahead = at(now + TimeDelta::minutes(4));
        assert_eq!(reason(s.parse(ahead.as_bytes(), now)), "time_in_future");
        assert_eq!(s.last_stored, None);
        for k in 0..3 {
            let t = now + TimeDelta::seconds(10 * k);
            assert_eq!(stored(s.parse(at(t).as_bytes(), t)).len(), 1, "the real position {k}");
        }
        // Within the skew a position is taken (the clocks may differ a little).
        let t = now + TimeDelta::seconds(20) + FUTURE_SKEW;
        assert_eq!(stored(s.parse(at(t).as_bytes(), now + TimeDelta::seconds(20))).len(), 1);
    }
}
