//! The coalescing: what this connection has published, and which messages a fresh connection,
//! a batch or an idle step yields given the current state. Pure: no I/O, no clock, no store;
//! the sink publishes what it returns.
//!
//! Rules: a batch yields at most one position (its newest, and only if newer than the one
//! published), and a warning or next pass only when its payload differs from the published one;
//! a connection starts from nothing, so it republishes everything; a new Norwegian date in the
//! current state republishes today's warnings.
//!
//! Weather: the state keeps the newest `weather.daily` version per (region, date) from the
//! current state (today's, read from the store, so a restart has it) and from the batches it
//! sees, and publishes today's (Norwegian date) per configured region, republished on connect
//! and when the date changes.

use super::{Msg, Topics, discovery};
use crate::current::{Current, SkyNow};
use crate::domain::{AvalancheWarning, DangerAlert, IssPosition, Record, StoredRecord, WeatherDaily};
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;
use std::collections::{HashMap, HashSet};

/// What the current connection has published; reset on connect.
#[derive(Default)]
struct Published {
    position_time: Option<DateTime<Utc>>,
    warnings: HashMap<u32, Vec<u8>>,
    warnings_date: Option<NaiveDate>,
    next_pass: Option<Vec<u8>>,
    sky: Option<SkyNow>,
    weather: HashMap<u32, Vec<u8>>,
    weather_date: Option<NaiveDate>,
}

pub(super) struct State {
    topics: Topics,
    regions: Vec<u32>,
    ha_discovery: bool,
    published: Published,
    /// Region names the discovery configs announce (learned from warnings; the id until then).
    /// Kept across connections.
    names: HashMap<u32, String>,
    /// The binary sensors' threshold (`avalanche_alerts.min_level`).
    min_level: u8,
    /// Alert events are published for alerts recorded from this time on (this process's start):
    /// older ones were announced before, or are history.
    alerts_since: DateTime<Utc>,
    /// (region, valid date, level) already announced on the event topic; kept across
    /// connections, so a reconnect does not repeat events.
    alerted: HashSet<(u32, NaiveDate, u8)>,
    /// The newest weather version per (configured region, date) seen in batches; kept across
    /// connections, pruned to today and later.
    weather: HashMap<(u32, NaiveDate), WeatherDaily>,
}

impl State {
    pub(super) fn new(
        topics: Topics,
        regions: Vec<u32>,
        ha_discovery: bool,
        min_level: u8,
        alerts_since: DateTime<Utc>,
    ) -> Self {
        State {
            topics,
            regions,
            ha_discovery,
            published: Published::default(),
            names: HashMap::new(),
            min_level,
            alerts_since,
            alerted: HashSet::new(),
            weather: HashMap::new(),
        }
    }

    pub(super) fn topics(&self) -> &Topics {
        &self.topics
    }

    /// A fresh connection: online, discovery, and the whole current state.
    pub(super) fn on_connect(&mut self, now: &Current) -> Vec<Msg> {
        self.published = Published::default();
        // Names first, so the discovery configs carry them from the start.
        for w in now.warnings.iter().filter(|w| self.regions.contains(&w.region_id)) {
            self.names.insert(w.region_id, w.region_name.clone());
        }
        let mut msgs = vec![(self.topics.status(), b"online".to_vec())];
        if self.ha_discovery {
            msgs.extend(discovery::all(&self.topics, &self.regions, &self.names, self.min_level));
        }
        msgs.extend(now.position.as_ref().and_then(|p| self.position_msg(p)));
        msgs.extend(self.warning_msgs(&now.warnings, now.date));
        self.remember_weather(now.weather.iter());
        msgs.extend(self.weather_msgs(now.date));
        msgs.extend(self.next_pass_msg(now));
        msgs.extend(self.sky_msgs(now.sky));
        msgs.extend(self.alert_msgs(&now.danger_alerts));
        msgs
    }

    /// A batch on a live connection; `now` reflects at least every record in it.
    pub(super) fn on_batch(&mut self, batch: &[StoredRecord], now: &Current) -> Vec<Msg> {
        let mut msgs: Vec<Msg> = newest_position(batch).and_then(|p| self.position_msg(p)).into_iter().collect();
        let has_warnings = batch.iter().any(|r| matches!(r.record, Record::AvalancheWarning(_)));
        if has_warnings || self.published.warnings_date != Some(now.date) {
            msgs.extend(self.warning_msgs(&now.warnings, now.date));
        }
        let batch_weather = batch.iter().filter_map(|r| match &r.record {
            Record::WeatherDaily(w) => Some(w),
            _ => None,
        });
        let has_weather = self.remember_weather(batch_weather.chain(&now.weather));
        if has_weather || self.published.weather_date != Some(now.date) {
            msgs.extend(self.weather_msgs(now.date));
        }
        msgs.extend(self.next_pass_msg(now));
        msgs.extend(self.sky_msgs(now.sky));
        msgs.extend(self.alert_msgs(&now.danger_alerts));
        msgs
    }

    /// A step without a batch on a live connection (at least every minute): what depends on time.
    pub(super) fn on_idle(&mut self, now: &Current) -> Vec<Msg> {
        let mut msgs: Vec<Msg> = self.next_pass_msg(now).into_iter().collect();
        msgs.extend(self.sky_msgs(now.sky));
        if self.published.warnings_date != Some(now.date) {
            msgs.extend(self.warning_msgs(&now.warnings, now.date));
        }
        let has_weather = self.remember_weather(now.weather.iter());
        if has_weather || self.published.weather_date != Some(now.date) {
            msgs.extend(self.weather_msgs(now.date));
        }
        msgs.extend(self.alert_msgs(&now.danger_alerts));
        msgs
    }

    /// Keeps the weather of configured regions, the newest fetch per (region, date). Whether
    /// any of it was new.
    fn remember_weather<'w>(&mut self, weather: impl Iterator<Item = &'w WeatherDaily>) -> bool {
        let mut any = false;
        for w in weather.filter(|w| self.regions.contains(&w.region_id)) {
            let slot = self.weather.entry((w.region_id, w.date));
            match slot {
                std::collections::hash_map::Entry::Occupied(mut o) if w.fetched_at > o.get().fetched_at => {
                    o.insert(w.clone());
                    any = true;
                }
                std::collections::hash_map::Entry::Occupied(_) => {}
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(w.clone());
                    any = true;
                }
            }
        }
        any
    }

    /// Today's weather per configured region that changed since this connection published it.
    /// A region without weather for today publishes nothing (its retained value stays).
    fn weather_msgs(&mut self, date: NaiveDate) -> Vec<Msg> {
        self.published.weather_date = Some(date);
        self.weather.retain(|(_, d), _| *d >= date);
        let mut out = Vec::new();
        for region in &self.regions {
            let Some(w) = self.weather.get(&(*region, date)) else { continue };
            let payload = weather_payload(w);
            if self.published.weather.get(region) != Some(&payload) {
                self.published.weather.insert(*region, payload.clone());
                out.push((self.topics.weather(*region), payload));
            }
        }
        out
    }

    /// One event per (region, valid date, level) newly alerted, whatever the channels: what
    /// an automation triggers on. Published once per process (not retained).
    fn alert_msgs(&mut self, alerts: &[DangerAlert]) -> Vec<Msg> {
        let mut out = Vec::new();
        for a in alerts.iter().filter(|a| a.at >= self.alerts_since) {
            if self.alerted.insert((a.region_id, a.valid_date, a.level)) {
                let payload = json!({
                    "event": "avalanche_danger",
                    "region_id": a.region_id,
                    "region_name": a.region_name,
                    "valid_date": a.valid_date,
                    "danger_level": a.level,
                    "at": a.at,
                });
                out.push((self.topics.alerts(), payload.to_string().into_bytes()));
            }
        }
        out
    }

    /// The position message, unless this connection already published one at least as new
    /// (a replayed backlog must not move the retained value back in time).
    fn position_msg(&mut self, p: &IssPosition) -> Option<Msg> {
        if self.published.position_time.is_some_and(|t| t >= p.time) {
            return None;
        }
        self.published.position_time = Some(p.time);
        Some((self.topics.position(), serde_json::to_vec(p).ok()?))
    }

    /// The warnings of `date` for the configured regions that changed since this connection
    /// published them, with a renamed region's discovery config first.
    fn warning_msgs(&mut self, warnings: &[AvalancheWarning], date: NaiveDate) -> Vec<Msg> {
        self.published.warnings_date = Some(date);
        let mut out = Vec::new();
        for w in warnings.iter().filter(|w| self.regions.contains(&w.region_id)) {
            if self.names.get(&w.region_id) != Some(&w.region_name) {
                self.names.insert(w.region_id, w.region_name.clone());
                if self.ha_discovery {
                    out.push(discovery::region(&self.topics, w.region_id, Some(&w.region_name)));
                    out.push(discovery::region_at_least(
                        &self.topics,
                        w.region_id,
                        Some(&w.region_name),
                        self.min_level,
                    ));
                    out.extend(discovery::region_weather(&self.topics, w.region_id, Some(&w.region_name)));
                }
            }
            let payload = warning_payload(w);
            if self.published.warnings.get(&w.region_id) != Some(&payload) {
                self.published.warnings.insert(w.region_id, payload.clone());
                out.push((self.topics.region(w.region_id), payload));
            }
        }
        out
    }

    /// The next visible pass as JSON; when there is none, an object with no pass fields but
    /// `reason` (why: no TLE, no location, a TLE that does not fit the clock...); `None` when
    /// unchanged since this connection published it.
    fn next_pass_msg(&mut self, now: &Current) -> Option<Msg> {
        let payload = match (&now.next_pass, &now.no_pass_reason) {
            (Some(p), _) => serde_json::to_vec(p).unwrap_or_else(|_| b"{}".to_vec()),
            (None, Some(reason)) => json!({ "reason": reason }).to_string().into_bytes(),
            (None, None) => b"{}".to_vec(),
        };
        if self.published.next_pass.as_ref() == Some(&payload) {
            return None;
        }
        self.published.next_pass = Some(payload.clone());
        Some((self.topics.next_pass(), payload))
    }
}

impl State {
    /// The sky state this connection published last (`None` before anything was published):
    /// the sink asks for a step as soon as the current state differs from it.
    pub(super) fn published_sky(&self) -> Option<SkyNow> {
        self.published.sky
    }

    /// "ON"/"OFF" on each sky topic whose state differs from what this connection published.
    fn sky_msgs(&mut self, sky: SkyNow) -> Vec<Msg> {
        let before = self.published.sky.replace(sky);
        let on_off = |on: bool| if on { b"ON".to_vec() } else { b"OFF".to_vec() };
        let mut out = Vec::new();
        if before.map(|b| b.visible_now) != Some(sky.visible_now) {
            out.push((self.topics.visible_now(), on_off(sky.visible_now)));
        }
        if before.map(|b| b.overhead) != Some(sky.overhead) {
            out.push((self.topics.overhead(), on_off(sky.overhead)));
        }
        out
    }
}

/// The batch's newest position: the only one worth publishing.
fn newest_position(batch: &[StoredRecord]) -> Option<&IssPosition> {
    let positions = batch.iter().filter_map(|r| match &r.record {
        Record::IssPosition(p) => Some(p),
        _ => None,
    });
    positions.max_by_key(|p| p.time)
}

fn warning_payload(w: &AvalancheWarning) -> Vec<u8> {
    json!({
        "region_id": w.region_id,
        "region_name": w.region_name,
        "danger_level": w.danger_level,
        "valid_date": w.valid_date,
        "publish_time": w.publish_time,
        "main_text": w.main_text,
    })
    .to_string()
    .into_bytes()
}

/// Nulls stay null (Home Assistant shows unknown), never 0.
fn weather_payload(w: &WeatherDaily) -> Vec<u8> {
    let s = &w.summary;
    json!({
        "region_id": w.region_id,
        "date": w.date,
        "fetched_at": w.fetched_at,
        "snowfall_max_cm": s.snowfall_max_cm,
        "wind_speed_max_kmh": s.wind_speed_max_kmh,
        "wind_direction_deg": s.wind_direction_deg,
        "wind_gusts_max_kmh": s.wind_gusts_max_kmh,
        "temperature_min_c": s.temperature_min_c,
        "temperature_max_c": s.temperature_max_c,
    })
    .to_string()
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Danger, Tle};
    use crate::passes::{Pass, PassPoint};

    fn state(ha_discovery: bool) -> State {
        State::new(Topics::new("outpost", "pi"), vec![3022], ha_discovery, 3, at(0))
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    fn position(secs: i64) -> IssPosition {
        let time = DateTime::from_timestamp(secs, 0).unwrap();
        IssPosition { time, latitude: 0.5, longitude: 1.0, altitude_km: None, velocity_kmh: None, visibility: None }
    }

    fn warning(region: u32, name: &str, date: &str, level: u8) -> AvalancheWarning {
        let valid_date: NaiveDate = date.parse().unwrap();
        AvalancheWarning {
            reg_id: 7,
            region_id: region,
            region_name: name.into(),
            region_type: None,
            lang: 2,
            danger_level: Danger::Level(level),
            valid_date,
            valid_from: at(0),
            valid_to: at(86_400),
            publish_time: at(-3600),
            next_warning_time: None,
            main_text: "Snow.".into(),
            avalanche_danger: None,
            advice: vec![],
            problems: vec![],
        }
    }

    fn current(date: &str, warnings: Vec<AvalancheWarning>) -> Current {
        Current {
            seq: 1,
            position: None,
            date: date.parse().unwrap(),
            warnings,
            next_pass: None,
            no_pass_reason: None,
            sky: SkyNow::default(),
            danger_alerts: vec![],
            weather: vec![],
        }
    }

    fn records(records: Vec<Record>) -> Vec<StoredRecord> {
        let stored = |(i, record)| StoredRecord { seq: i as u64 + 1, station: "pi".into(), record };
        records.into_iter().enumerate().map(stored).collect()
    }

    fn topics(msgs: &[Msg]) -> Vec<&str> {
        msgs.iter().map(|(t, _)| t.as_str()).collect()
    }

    fn json(msg: &Msg) -> serde_json::Value {
        serde_json::from_slice(&msg.1).unwrap()
    }

    #[test]
    fn a_batch_publishes_its_newest_position_and_never_an_older_one() {
        let mut s = state(true);
        let batch = records([30, 50, 40].into_iter().map(|t| Record::IssPosition(position(t))).collect());
        assert_eq!(newest_position(&batch).map(|p| p.time.timestamp()), Some(50));
        let (topic, payload) = s.position_msg(&position(50)).unwrap();
        assert_eq!(topic, "outpost/pi/iss/position");
        assert_eq!(payload, br#"{"time":"1970-01-01T00:00:50Z","latitude":0.5,"longitude":1.0}"#);
        assert!(s.position_msg(&position(50)).is_none(), "already published");
        assert!(s.position_msg(&position(40)).is_none(), "a replayed older position");
        assert!(s.position_msg(&position(60)).is_some());
    }

    #[test]
    fn a_connection_publishes_online_first_then_the_whole_state() {
        let mut s = state(false);
        let mut now = current("2024-01-15", vec![warning(3022, "Trollheimen", "2024-01-15", 3)]);
        now.position = Some(position(100));
        let msgs = s.on_connect(&now);
        assert_eq!(
            topics(&msgs),
            [
                "outpost/pi/status",
                "outpost/pi/iss/position",
                "outpost/pi/avalanche/3022",
                "outpost/pi/iss/next_pass",
                "outpost/pi/iss/visible_now",
                "outpost/pi/iss/overhead"
            ]
        );
        assert_eq!(msgs[0].1, b"online");
        assert_eq!(json(&msgs[1])["time"], "1970-01-01T00:01:40Z");
        let w = json(&msgs[2]);
        assert_eq!((w["danger_level"].as_u64(), w["valid_date"].as_str()), (Some(3), Some("2024-01-15")), "{w}");
        assert_eq!(w["region_name"], "Trollheimen");
        assert_eq!(msgs[3].1, b"{}", "no next pass yet");
        assert_eq!((&msgs[4].1[..], &msgs[5].1[..]), (&b"OFF"[..], &b"OFF"[..]), "nothing in the sky");

        // Nothing changed: an idle step publishes nothing; a new connection everything again.
        assert!(s.on_idle(&now).is_empty());
        assert_eq!(s.on_connect(&now).len(), 6, "a restarted broker is refilled");
    }

    #[test]
    fn a_replayed_backlog_older_than_the_published_position_publishes_no_position() {
        let mut s = state(false);
        let mut now = current("2024-01-15", vec![]);
        now.position = Some(position(100));
        s.on_connect(&now);
        let backlog = records(vec![Record::IssPosition(position(60)), Record::IssPosition(position(100))]);
        assert!(s.on_batch(&backlog, &now).is_empty(), "a backlog older than the retained position");
        let live = records(vec![Record::IssPosition(position(110)), Record::IssPosition(position(105))]);
        let msgs = s.on_batch(&live, &now);
        assert_eq!(topics(&msgs), ["outpost/pi/iss/position"]);
        assert_eq!(json(&msgs[0])["time"], "1970-01-01T00:01:50Z", "the batch's newest");
    }

    #[test]
    fn an_unchanged_warning_is_not_republished_and_a_changed_one_is() {
        let mut s = state(false);
        let now = current("2024-01-15", vec![warning(3022, "Trollheimen", "2024-01-15", 3)]);
        s.on_connect(&now);
        // A batch with the same warning again (a replay): nothing new to say.
        let batch = records(vec![Record::AvalancheWarning(warning(3022, "Trollheimen", "2024-01-15", 3))]);
        assert!(s.on_batch(&batch, &now).is_empty());
        // A new version of today's warning.
        let now = current("2024-01-15", vec![warning(3022, "Trollheimen", "2024-01-15", 4)]);
        let batch = records(vec![Record::AvalancheWarning(warning(3022, "Trollheimen", "2024-01-15", 4))]);
        let msgs = s.on_batch(&batch, &now);
        assert_eq!(topics(&msgs), ["outpost/pi/avalanche/3022"]);
        assert_eq!(json(&msgs[0])["danger_level"], 4);
        // A region that is not configured is never published.
        let now = current(
            "2024-01-15",
            vec![warning(3022, "Trollheimen", "2024-01-15", 4), warning(3011, "Lofoten", "2024-01-15", 2)],
        );
        let batch = records(vec![Record::AvalancheWarning(warning(3011, "Lofoten", "2024-01-15", 2))]);
        assert!(s.on_batch(&batch, &now).is_empty());
    }

    #[test]
    fn a_new_date_republishes_the_warnings_without_a_new_record() {
        let mut s = state(false);
        s.on_connect(&current("2024-01-15", vec![warning(3022, "Trollheimen", "2024-01-15", 3)]));
        let tomorrow = current("2024-01-16", vec![warning(3022, "Trollheimen", "2024-01-16", 2)]);
        let msgs = s.on_idle(&tomorrow);
        assert_eq!(topics(&msgs), ["outpost/pi/avalanche/3022"]);
        assert_eq!(json(&msgs[0])["valid_date"], "2024-01-16");
        assert!(s.on_idle(&tomorrow).is_empty(), "once per date");
        // The same through a batch without warnings (a position), on the following day.
        let next = current("2024-01-17", vec![warning(3022, "Trollheimen", "2024-01-17", 1)]);
        let msgs = s.on_batch(&records(vec![Record::IssPosition(position(5))]), &next);
        assert_eq!(topics(&msgs), ["outpost/pi/iss/position", "outpost/pi/avalanche/3022"]);
    }

    fn pass(rise: i64) -> Pass {
        let point = |secs: i64, elevation_deg| PassPoint { time: at(secs), azimuth_deg: 200.0, elevation_deg };
        Pass {
            rise: point(rise, 10.0),
            culmination: point(rise + 300, 60.0),
            set: point(rise + 600, 10.0),
            visible: true,
            visible_from: Some(at(rise + 60)),
            visible_to: Some(at(rise + 500)),
            magnitude: Some(-2.5),
        }
    }

    #[test]
    fn the_next_pass_is_empty_json_when_there_is_none_and_published_when_it_changes() {
        let mut s = state(false);
        let mut now = current("2024-01-15", vec![]);
        let msgs = s.on_connect(&now);
        let next_pass = msgs.iter().find(|(t, _)| t == "outpost/pi/iss/next_pass");
        assert_eq!(next_pass.map(|(_, p)| p.as_slice()), Some(&b"{}"[..]));
        now.next_pass = Some(pass(1000));
        let msgs = s.on_idle(&now);
        assert_eq!(topics(&msgs), ["outpost/pi/iss/next_pass"]);
        assert_eq!(json(&msgs[0])["visible_from"], "2023-11-14T22:31:00Z");
        assert_eq!(json(&msgs[0])["rise"]["elevation_deg"], 10.0);
        assert_eq!(json(&msgs[0])["magnitude"], -2.5, "the brightness travels with the pass");
        // A TLE-only batch with the same next pass publishes nothing.
        let tle = Tle { epoch: at(0), norad_id: 25544, name: None, line1: "1".into(), line2: "2".into() };
        assert!(s.on_batch(&records(vec![Record::Tle(tle)]), &now).is_empty());
        now.next_pass = None;
        assert_eq!(s.on_idle(&now).first().map(|m| m.1.clone()), Some(b"{}".to_vec()), "the pass is over");
        // Without a pass to tell, the reason (and a new reason is a new message).
        now.no_pass_reason = Some("the TLE is 20.0 days old".into());
        let msgs = s.on_idle(&now);
        assert_eq!(json(&msgs[0]), json!({ "reason": "the TLE is 20.0 days old" }));
        assert!(s.on_idle(&now).is_empty(), "unchanged");
        now.no_pass_reason = Some("no TLE has been collected yet".into());
        assert_eq!(json(&s.on_idle(&now)[0])["reason"], "no TLE has been collected yet");
    }

    #[test]
    fn a_renamed_region_gets_its_discovery_config_before_its_warning() {
        let mut s = state(true);
        let msgs = s.on_connect(&current("2024-01-15", vec![]));
        let config = "homeassistant/sensor/outpost_pi/avalanche_3022/config";
        let announced = msgs.iter().find(|(t, _)| t == config).expect("a danger sensor per configured region");
        assert_eq!(json(announced)["name"], "Avalanche danger 3022", "the id until a warning names it");

        let now = current("2024-01-15", vec![warning(3022, "Trollheimen", "2024-01-15", 3)]);
        let batch = records(vec![Record::AvalancheWarning(warning(3022, "Trollheimen", "2024-01-15", 3))]);
        let msgs = s.on_batch(&batch, &now);
        let binary = "homeassistant/binary_sensor/outpost_pi/avalanche_3022_at_least/config";
        let snow = "homeassistant/sensor/outpost_pi/weather_3022_new_snow/config";
        let wind = "homeassistant/sensor/outpost_pi/weather_3022_max_wind/config";
        assert_eq!(topics(&msgs), [config, binary, snow, wind, "outpost/pi/avalanche/3022"]);
        assert_eq!(json(&msgs[2])["name"], "New snow Trollheimen");
        assert_eq!(json(&msgs[0])["name"], "Avalanche danger Trollheimen");
        assert_eq!(json(&msgs[1])["name"], "Avalanche danger Trollheimen at or above 3");

        // The name is kept across connections: the next connect announces it from the start,
        // and does not announce it twice.
        let msgs = s.on_connect(&now);
        let configs: Vec<_> = msgs.iter().filter(|(t, _)| t == config).collect();
        assert_eq!(configs.len(), 1);
        assert_eq!(json(configs[0])["name"], "Avalanche danger Trollheimen");

        // Without discovery, a rename publishes only the warning.
        let mut plain = state(false);
        plain.on_connect(&current("2024-01-15", vec![]));
        assert_eq!(topics(&plain.on_batch(&batch, &now)), ["outpost/pi/avalanche/3022"]);
    }

    fn alert(region: u32, date: &str, level: u8, channel: crate::domain::AlertChannel, at_s: i64) -> DangerAlert {
        DangerAlert {
            region_id: region,
            region_name: "Trollheimen".into(),
            valid_date: date.parse().unwrap(),
            level,
            channel,
            outcome: crate::domain::AlertOutcome::Sent,
            at: at(at_s),
            reg_id: 7,
            detail: None,
        }
    }

    #[test]
    fn each_new_danger_alert_is_one_event_once_across_channels_and_reconnects() {
        use crate::domain::AlertChannel::{Email, Push};
        let mut s = state(false);
        let mut now = current("2024-01-15", vec![warning(3022, "Trollheimen", "2024-01-15", 3)]);
        // Recorded before this process started (at(0)): history, no event.
        now.danger_alerts = vec![alert(3022, "2024-01-15", 3, Email, -60)];
        assert!(!topics(&s.on_connect(&now)).contains(&"outpost/pi/alerts"));
        // Level 4 by email and by push: one event.
        now.danger_alerts.push(alert(3022, "2024-01-15", 4, Email, 10));
        now.danger_alerts.push(alert(3022, "2024-01-15", 4, Push, 11));
        let msgs = s.on_idle(&now);
        assert_eq!(topics(&msgs), ["outpost/pi/alerts"]);
        let e = json(&msgs[0]);
        assert_eq!((e["event"].as_str(), e["danger_level"].as_u64()), (Some("avalanche_danger"), Some(4)), "{e}");
        assert_eq!((e["region_id"].as_u64(), e["valid_date"].as_str()), (Some(3022), Some("2024-01-15")));
        // Not again: not on the next step, not on a reconnect, not with a batch.
        assert!(s.on_idle(&now).is_empty());
        assert!(!topics(&s.on_connect(&now)).contains(&"outpost/pi/alerts"));
        assert!(!topics(&s.on_batch(&records(vec![]), &now)).contains(&"outpost/pi/alerts"));
        // Tomorrow's alert is another event.
        now.danger_alerts.push(alert(3022, "2024-01-16", 3, Push, 20));
        assert_eq!(topics(&s.on_idle(&now)), ["outpost/pi/alerts"]);
    }

    #[test]
    fn discovery_has_a_binary_sensor_per_region_at_min_level() {
        let mut s = state(true);
        let now = current("2024-01-15", vec![warning(3022, "Trollheimen", "2024-01-15", 3)]);
        let msgs = s.on_connect(&now);
        let (topic, payload) = msgs
            .iter()
            .find(|(t, _)| t.starts_with("homeassistant/binary_sensor/") && t.contains("avalanche"))
            .expect("a binary sensor config");
        assert_eq!(topic, "homeassistant/binary_sensor/outpost_pi/avalanche_3022_at_least/config");
        let c: serde_json::Value = serde_json::from_slice(payload).unwrap();
        assert_eq!(c["name"], "Avalanche danger Trollheimen at or above 3");
        assert_eq!(c["state_topic"], "outpost/pi/avalanche/3022");
        assert_eq!(c["value_template"], "{{ 'ON' if (value_json.danger_level or 0) >= 3 else 'OFF' }}");
        assert_eq!(c["device_class"], "safety");
    }

    fn weather(region: u32, date: &str, fetched_s: i64, snow: Option<f64>) -> WeatherDaily {
        WeatherDaily {
            region_id: region,
            date: date.parse().unwrap(),
            fetched_at: at(fetched_s),
            summary: crate::domain::WeatherSummary {
                snowfall_max_cm: snow,
                wind_speed_max_kmh: Some(36.5),
                wind_direction_deg: Some(270.0),
                wind_gusts_max_kmh: None,
                temperature_min_c: Some(-8.0),
                temperature_max_c: Some(-2.5),
                rain_max_mm: None,
            },
            points: vec![],
        }
    }

    #[test]
    fn todays_newest_weather_is_published_per_region_with_nulls_kept() {
        let mut s = state(false);
        let now = current("2024-01-15", vec![]);
        s.on_connect(&now);
        let batch = records(vec![
            Record::WeatherDaily(weather(3022, "2024-01-15", 20, Some(12.0))),
            Record::WeatherDaily(weather(3022, "2024-01-15", 10, Some(99.0))),
            Record::WeatherDaily(weather(3022, "2024-01-16", 30, Some(1.0))),
            Record::WeatherDaily(weather(3011, "2024-01-15", 30, Some(5.0))),
        ]);
        let msgs = s.on_batch(&batch, &now);
        assert_eq!(topics(&msgs), ["outpost/pi/weather/3022"], "today's, for the configured region only");
        let w = json(&msgs[0]);
        assert_eq!(w["snowfall_max_cm"], 12.0, "the newest fetch, not the last in the batch: {w}");
        assert_eq!((w["wind_speed_max_kmh"].as_f64(), w["wind_direction_deg"].as_f64()), (Some(36.5), Some(270.0)));
        assert!(w["wind_gusts_max_kmh"].is_null(), "a missing value is null, never 0: {w}");
        assert_eq!((w["date"].as_str(), w["region_id"].as_u64()), (Some("2024-01-15"), Some(3022)));

        // A replay of the same: nothing; a reconnect republishes it from memory.
        assert!(s.on_batch(&batch, &now).is_empty());
        assert!(topics(&s.on_connect(&now)).contains(&"outpost/pi/weather/3022"));
        // A fetch with no snow value at all: null.
        let msgs = s.on_batch(&records(vec![Record::WeatherDaily(weather(3022, "2024-01-15", 40, None))]), &now);
        assert!(json(&msgs[0])["snowfall_max_cm"].is_null());
        // The next day publishes that day's weather without a new record.
        let msgs = s.on_idle(&current("2024-01-16", vec![]));
        assert_eq!(topics(&msgs), ["outpost/pi/weather/3022"]);
        assert_eq!(json(&msgs[0])["snowfall_max_cm"], 1.0);
        assert_eq!(s.weather.len(), 1, "yesterday's is dropped");
    }

    #[test]
    fn after_a_restart_todays_weather_comes_from_the_current_state() {
        // A new process: no batch with weather will come (an unchanged re-fetch stores nothing).
        let mut s = state(false);
        let mut now = current("2024-01-15", vec![]);
        now.weather = vec![weather(3022, "2024-01-15", 20, Some(12.0))];
        let msgs: Vec<_> = s.on_connect(&now).into_iter().filter(|(t, _)| t.contains("/weather/")).collect();
        assert_eq!(topics(&msgs), ["outpost/pi/weather/3022"]);
        assert_eq!(json(&msgs[0])["snowfall_max_cm"], 12.0);
        // A newer version in the current state (its batch not seen by this sink yet) follows.
        now.weather = vec![weather(3022, "2024-01-15", 30, Some(14.0))];
        let msgs = s.on_idle(&now);
        assert_eq!(topics(&msgs), ["outpost/pi/weather/3022"]);
        assert_eq!(json(&msgs[0])["snowfall_max_cm"], 14.0);
        assert!(s.on_idle(&now).is_empty(), "published once");
    }

    #[test]
    fn discovery_has_new_snow_and_max_wind_sensors_per_region() {
        let mut s = state(true);
        let msgs = s.on_connect(&current("2024-01-15", vec![warning(3022, "Trollheimen", "2024-01-15", 3)]));
        let config = |id: &str| {
            let topic = format!("homeassistant/sensor/outpost_pi/{id}/config");
            json(msgs.iter().find(|(t, _)| *t == topic).unwrap_or_else(|| panic!("{topic}")))
        };
        let snow = config("weather_3022_new_snow");
        assert_eq!(snow["name"], "New snow Trollheimen");
        assert_eq!(snow["state_topic"], "outpost/pi/weather/3022");
        assert_eq!(snow["value_template"], "{{ value_json.snowfall_max_cm }}");
        assert_eq!(
            (snow["unit_of_measurement"].as_str(), snow["state_class"].as_str()),
            (Some("cm"), Some("measurement"))
        );
        let wind = config("weather_3022_max_wind");
        assert_eq!(wind["name"], "Max wind Trollheimen");
        assert_eq!(wind["value_template"], "{{ value_json.wind_speed_max_kmh }}");
        assert_eq!(
            (wind["unit_of_measurement"].as_str(), wind["device_class"].as_str()),
            (Some("km/h"), Some("wind_speed"))
        );
        assert_eq!(wind["unique_id"], "outpost_pi_weather_3022_max_wind");
    }

    #[test]
    fn the_sky_topics_say_on_and_off_and_only_what_changed() {
        let mut s = state(false);
        let mut now = current("2024-01-15", vec![]);
        assert_eq!(s.published_sky(), None, "nothing published before a connection");
        s.on_connect(&now);
        assert_eq!(s.published_sky(), Some(SkyNow::default()));
        let text =
            |msgs: &[Msg]| msgs.iter().map(|(t, p)| format!("{t}={}", String::from_utf8_lossy(p))).collect::<Vec<_>>();
        // A visible pass begins: only "visible now" is published.
        now.sky = SkyNow { visible_now: true, overhead: false };
        assert_eq!(text(&s.on_idle(&now)), ["outpost/pi/iss/visible_now=ON"]);
        assert!(s.on_idle(&now).is_empty(), "once");
        // Overhead too, then no longer visible (the shadow), then down: one message each.
        now.sky.overhead = true;
        assert_eq!(text(&s.on_batch(&records(vec![]), &now)), ["outpost/pi/iss/overhead=ON"]);
        now.sky.visible_now = false;
        assert_eq!(text(&s.on_idle(&now)), ["outpost/pi/iss/visible_now=OFF"]);
        now.sky.overhead = false;
        assert_eq!(text(&s.on_idle(&now)), ["outpost/pi/iss/overhead=OFF"]);
        assert_eq!(s.published_sky(), Some(SkyNow::default()));
        // A new connection republishes both, whatever was published before.
        let msgs = s.on_connect(&now);
        let sky: Vec<_> =
            text(&msgs).into_iter().filter(|m| m.contains("/iss/visible_now") || m.contains("/iss/overhead")).collect();
        assert_eq!(sky, ["outpost/pi/iss/visible_now=OFF", "outpost/pi/iss/overhead=OFF"]);
    }

    #[test]
    fn discovery_has_the_sky_binary_sensors_and_the_next_pass_attributes() {
        let mut s = state(true);
        let msgs = s.on_connect(&current("2024-01-15", vec![]));
        let config = |component: &str, id: &str| {
            let topic = format!("homeassistant/{component}/outpost_pi/{id}/config");
            json(msgs.iter().find(|(t, _)| *t == topic).unwrap_or_else(|| panic!("{topic}")))
        };
        let visible = config("binary_sensor", "iss_visible_now");
        assert_eq!(visible["name"], "ISS visible now");
        assert_eq!(visible["state_topic"], "outpost/pi/iss/visible_now");
        assert_eq!(visible["unique_id"], "outpost_pi_iss_visible_now");
        assert_eq!(visible["availability_topic"], "outpost/pi/status");
        assert!(visible.get("value_template").is_none(), "plain ON/OFF, Home Assistant's default payloads");
        let overhead = config("binary_sensor", "iss_overhead");
        assert_eq!(overhead["name"], "ISS overhead");
        assert_eq!(overhead["state_topic"], "outpost/pi/iss/overhead");
        let next = config("sensor", "iss_next_pass");
        assert_eq!(next["json_attributes_topic"], "outpost/pi/iss/next_pass");
        let template = next["json_attributes_template"].as_str().unwrap();
        assert!(template.contains("max_elevation_deg") && template.contains("tojson"), "{template}");
    }
}
