//! The MQTT sink against a real mosquitto (one per test), read back with mosquitto_sub.

use crate::helpers::*;
use chrono::{DateTime, Days, NaiveDate, Utc};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;
use tokio::process::{Child, Command};

/// A mosquitto on 127.0.0.1:`port`, logging every packet to `log` (to count what was published).
pub(crate) struct Broker {
    pub(crate) port: u16,
    pub(crate) log: PathBuf,
    child: Child,
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Broker {
    /// Starts mosquitto on `port`; with `login`, only that user and password may connect.
    /// None if mosquitto_passwd is needed and missing.
    pub(crate) async fn start(dir: &Path, port: u16, login: Option<(&str, &str)>) -> Option<Broker> {
        let log = dir.join("mosquitto.log");
        // As root, mosquitto would switch to its own user and lose access to this directory.
        let mut conf = format!(
            "user root\nlistener {port} 127.0.0.1\npersistence false\nlog_dest file {}\nlog_type all\n",
            log.display()
        );
        match login {
            None => conf.push_str("allow_anonymous true\n"),
            Some((user, pass)) => {
                let file = dir.join("passwords");
                let made = std::process::Command::new("mosquitto_passwd")
                    .args(["-b", "-c"])
                    .arg(&file)
                    .args([user, pass])
                    .stderr(Stdio::null())
                    .status();
                if !made.is_ok_and(|s| s.success()) {
                    return None;
                }
                conf.push_str(&format!("allow_anonymous false\npassword_file {}\n", file.display()));
            }
        }
        let conf_path = dir.join("mosquitto.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let bin = if Path::new("/usr/sbin/mosquitto").exists() { "/usr/sbin/mosquitto" } else { "mosquitto" };
        let child = Command::new(bin)
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("mosquitto starts");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "mosquitto did not listen on {port}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Some(Broker { port, log, child })
    }

    /// Up to `count` (topic, payload) pairs on `topic`, waiting at most `secs`; retained
    /// messages arrive at once.
    async fn read(&self, topic: &str, count: usize, secs: u64) -> Vec<(String, String)> {
        let out = Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-t", topic, "-v"])
            .args(["-C", &count.to_string(), "-W", &secs.to_string()])
            .output()
            .await
            .expect("mosquitto_sub runs");
        let text = String::from_utf8(out.stdout).unwrap();
        text.lines().filter_map(|l| l.split_once(' ')).map(|(t, p)| (t.to_owned(), p.to_owned())).collect()
    }

    /// The retained JSON on `topic`.
    async fn json(&self, topic: &str) -> Value {
        let got = self.read(topic, 1, 5).await;
        let (_, payload) = got.first().unwrap_or_else(|| panic!("nothing retained on {topic}"));
        serde_json::from_str(payload).unwrap_or_else(|e| panic!("{topic}: {e}: {payload}"))
    }

    async fn text(&self, topic: &str) -> String {
        self.read(topic, 1, 5).await.pop().map(|(_, p)| p).unwrap_or_default()
    }

    /// PUBLISH packets the broker received from the appliance, per the broker's log.
    pub(crate) fn publishes_to(&self, topic: &str) -> usize {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let needle = format!("'{topic}'");
        log.lines().filter(|l| l.contains("Received PUBLISH from outpost_it") && l.contains(&needle)).count()
    }

    /// Waits until the retained payload on `topic` is `want` (a will is published when the
    /// broker notices the closed socket, which may be just after the process is gone).
    async fn wait_text(&self, topic: &str, want: &str, secs: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let got = self.text(topic).await;
            if got == want {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "{topic} is {got:?}, not {want:?}:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_log(&self, needle: &str, secs: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        while !self.log().contains(needle) {
            assert!(tokio::time::Instant::now() < deadline, "no {needle:?} in the broker log:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// kill -9, waiting until it is gone (its port is free again).
    async fn kill(mut self) {
        self.child.kill().await.unwrap();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn oslo_today() -> NaiveDate {
    Utc::now().with_timezone(&chrono_tz::Europe::Oslo).date_naive()
}

/// Today's warning (the recorded danger-3 day) and tomorrow's (a danger-2 day) for Trollheimen.
fn warnings_today_and_tomorrow() -> Vec<u8> {
    let recorded: Vec<Value> = serde_json::from_slice(&fixture("nve_AvalancheWarningByRegion_Detail.json")).unwrap();
    let today = oslo_today();
    let moved: Vec<Value> = [(today, &recorded[2]), (today.checked_add_days(Days::new(1)).unwrap(), &recorded[0])]
        .into_iter()
        .enumerate()
        .map(|(i, (day, w))| {
            let mut w = w.clone();
            w["RegId"] = (900_000 + i).into();
            w["ValidFrom"] = format!("{day}T00:00:00").into();
            w["ValidTo"] = format!("{day}T23:59:59").into();
            w["PublishTime"] = format!("{}T15:32:29.677", day.pred_opt().unwrap()).into();
            w
        })
        .collect();
    serde_json::to_vec(&moved).unwrap()
}

const POSITIONS: u64 = 5;

/// A fixture server with 5 positions (then the last again, a duplicate, until `more` is raised),
/// a TLE and two warnings. Returns it with the 5th position's time; its latitude is 15.5.
async fn feed() -> (FixtureServer, DateTime<Utc>, Arc<AtomicU64>) {
    let fx = FixtureServer::start().await;
    let base = Utc::now() - chrono::Duration::hours(1);
    let at = move |n: u64| base + chrono::Duration::seconds(10 * n as i64);
    let more = Arc::new(AtomicU64::new(POSITIONS));
    let limit = more.clone();
    fx.generate("/iss-now.json", move |n| {
        let n = n.min(limit.load(SeqCst));
        Reply::ok(open_notify(at(n), &format!("{}.5", 10 + n), &format!("{}.25", n)))
    });
    fx.script("/tle", vec![Reply::ok(fixture("celestrak_gp_CATNR25544_FORMAT_TLE.txt"))]);
    fx.script("/nve", vec![Reply::ok(warnings_today_and_tomorrow())]);
    (fx, at(POSITIONS), more)
}

fn mqtt_section(port: u16, extra: &str) -> String {
    format!("[mqtt]\nurl = \"mqtt://127.0.0.1:{port}\"\n{extra}")
}

/// Waits until everything is collected and the sink has it all acknowledged.
async fn caught_up(app: &Outpost, secs: u64) -> Value {
    app.wait_for("everything collected and acknowledged by MQTT", secs, |s| {
        stored(s, "iss.position") == POSITIONS
            && stored(s, "avalanche.warning") == 2
            && stored(s, "iss.tle") == 1
            && s["sinks"]["mqtt"]["connected"] == true
            && s["sinks"]["mqtt"]["backlog"] == 0
    })
    .await
}

fn assert_position(p: &Value, newest: DateTime<Utc>) {
    assert_eq!(p["time"], newest.format("%Y-%m-%dT%H:%M:%SZ").to_string(), "the newest position: {p}");
    assert_eq!((p["latitude"].as_f64(), p["longitude"].as_f64()), (Some(15.5), Some(5.25)), "{p}");
}

fn assert_todays_danger(w: &Value) {
    assert_eq!(w["region_id"], 3022, "{w}");
    assert_eq!(w["region_name"], "Trollheimen");
    assert_eq!(w["danger_level"], 3, "today's (recorded danger 3), not tomorrow's (2): {w}");
    assert_eq!(w["valid_date"], oslo_today().to_string());
    assert!(w["publish_time"].as_str().unwrap().ends_with('Z'), "{w}");
    assert!(w["main_text"].as_str().unwrap().len() > 20, "{w}");
}

#[tokio::test]
async fn retained_state_is_the_newest_position_and_todays_danger() {
    let (fx, newest, _) = feed().await;
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), free_port(), None).await.unwrap();
    let app = Outpost::start(dir.path(), &config(&fx, dir.path(), &mqtt_section(broker.port, ""))).await;
    let s = caught_up(&app, 60).await;
    assert!(s["sinks"]["mqtt"]["last_delivered"].is_string(), "{s:#}");
    assert!(s["sinks"]["mqtt"]["delivered"].as_u64().unwrap() >= POSITIONS + 3, "TLEs count as delivered too");

    assert_position(&broker.json("outpost/it/iss/position").await, newest);
    let (_, latest) = app.get("/api/iss/latest").await;
    assert_eq!(broker.json("outpost/it/iss/position").await, latest, "the read API's form");
    assert_todays_danger(&broker.json("outpost/it/avalanche/3022").await);
    assert_eq!(broker.text("outpost/it/status").await, "online");

    // Everything retained: the six state topics and no discovery configs (ha_discovery off).
    let all = broker.read("#", 10, 2).await;
    let mut topics: Vec<&str> = all.iter().map(|(t, _)| t.as_str()).collect();
    topics.sort();
    assert_eq!(
        topics,
        [
            "outpost/it/avalanche/3022",
            "outpost/it/iss/next_pass",
            "outpost/it/iss/overhead",
            "outpost/it/iss/position",
            "outpost/it/iss/visible_now",
            "outpost/it/status"
        ]
    );
    // No location is configured here, so there is no next pass to tell, and it says why.
    let next = broker.json("outpost/it/iss/next_pass").await;
    assert!(next.get("rise").is_none(), "{next}");
    assert!(next["reason"].as_str().is_some_and(|r| r.contains("location is unknown")), "{next}");
    assert_eq!(broker.text("outpost/it/iss/visible_now").await, "OFF");
    assert_eq!(broker.text("outpost/it/iss/overhead").await, "OFF");
    assert!(app.stop().await.success());
}

/// The real Open-Meteo answer's two 3022 points with the snowy day (2023-03-09, index 8) moved
/// to today; returns it with that day's expected (max new snow, max wind) over both points.
fn weather_today() -> (Vec<u8>, Option<f64>, Option<f64>) {
    let answer: Value = serde_json::from_slice(&fixture(crate::weather::GOOD)).unwrap();
    let snowy: NaiveDate = "2023-03-09".parse().unwrap();
    let shift = oslo_today().signed_duration_since(snowy);
    let points: Vec<Value> = answer.as_array().unwrap()[..2]
        .iter()
        .map(|p| {
            let mut p = p.clone();
            for day in p["daily"]["time"].as_array_mut().unwrap() {
                let d: NaiveDate = day.as_str().unwrap().parse().unwrap();
                *day = (d + shift).to_string().into();
            }
            p
        })
        .collect();
    let i = points[0]["daily"]["time"].as_array().unwrap().iter().position(|d| *d == oslo_today().to_string());
    let max = |key: &str| points.iter().filter_map(|p| p["daily"][key][i.unwrap()].as_f64()).reduce(f64::max);
    (serde_json::to_vec(&points).unwrap(), max("snowfall_sum"), max("windspeed_10m_max"))
}

#[tokio::test]
async fn home_assistant_discovery_announces_every_sensor() {
    let (fx, _, _) = feed().await;
    let (answer, snow, wind) = weather_today();
    fx.script(crate::weather::FORECAST, vec![Reply::ok(answer)]);
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), free_port(), None).await.unwrap();
    let cfg = config(&fx, dir.path(), &mqtt_section(broker.port, "ha_discovery = true\n"));
    let off = "# Off unless a test turns it on (tests/it/weather.rs); never the internet.\nenabled = false";
    let weather_on = cfg.replace(off, "enabled = true\npoints_per_region = 2");
    assert_ne!(weather_on, cfg, "the helper's [weather] section changed");
    let app = Outpost::start(dir.path(), &weather_on).await;
    caught_up(&app, 60).await;

    let configs = broker.read("homeassistant/#", 10, 5).await;
    let by_topic: std::collections::BTreeMap<String, Value> =
        configs.iter().map(|(t, p)| (t.clone(), serde_json::from_str(p).expect("valid JSON"))).collect();
    let expected = [
        "homeassistant/binary_sensor/outpost_it/avalanche_3022_at_least/config",
        "homeassistant/binary_sensor/outpost_it/iss_overhead/config",
        "homeassistant/binary_sensor/outpost_it/iss_visible_now/config",
        "homeassistant/device_tracker/outpost_it/iss/config",
        "homeassistant/sensor/outpost_it/avalanche_3022/config",
        "homeassistant/sensor/outpost_it/iss_latitude/config",
        "homeassistant/sensor/outpost_it/iss_longitude/config",
        "homeassistant/sensor/outpost_it/iss_next_pass/config",
        "homeassistant/sensor/outpost_it/weather_3022_max_wind/config",
        "homeassistant/sensor/outpost_it/weather_3022_new_snow/config",
    ];
    assert_eq!(by_topic.keys().map(String::as_str).collect::<Vec<_>>(), expected);
    let mut unique_ids = std::collections::BTreeSet::new();
    for (topic, c) in &by_topic {
        assert_eq!(c["availability_topic"], "outpost/it/status", "{topic}: {c}");
        assert_eq!(c["device"]["identifiers"], serde_json::json!(["outpost_it"]), "{topic}: {c}");
        assert_eq!(c["device"]["name"], "Outpost it");
        assert_eq!(c["device"]["manufacturer"], "Outpost");
        assert!(c["device"]["sw_version"].is_string());
        assert!(unique_ids.insert(c["unique_id"].as_str().unwrap().to_owned()), "unique ids: {topic}");
    }
    let lat = &by_topic["homeassistant/sensor/outpost_it/iss_latitude/config"];
    assert_eq!(lat["name"], "ISS latitude");
    assert_eq!(lat["state_topic"], "outpost/it/iss/position");
    assert_eq!(lat["value_template"], "{{ value_json.latitude }}");
    assert_eq!(lat["unit_of_measurement"], "°");
    let lon = &by_topic["homeassistant/sensor/outpost_it/iss_longitude/config"];
    assert_eq!(lon["value_template"], "{{ value_json.longitude }}");
    let danger = &by_topic["homeassistant/sensor/outpost_it/avalanche_3022/config"];
    assert_eq!(danger["name"], "Avalanche danger Trollheimen");
    assert_eq!(danger["state_topic"], "outpost/it/avalanche/3022");
    assert_eq!(danger["value_template"], "{{ value_json.danger_level }}");
    // "Danger at or above avalanche_alerts.min_level" (default 3), from the same state topic.
    let high = &by_topic["homeassistant/binary_sensor/outpost_it/avalanche_3022_at_least/config"];
    assert_eq!(high["name"], "Avalanche danger Trollheimen at or above 3");
    assert_eq!(high["state_topic"], "outpost/it/avalanche/3022");
    assert_eq!(high["value_template"], "{{ 'ON' if (value_json.danger_level or 0) >= 3 else 'OFF' }}");
    assert_eq!(high["device_class"], "safety");
    let next = &by_topic["homeassistant/sensor/outpost_it/iss_next_pass/config"];
    assert_eq!(
        (next["device_class"].as_str(), next["state_topic"].as_str()),
        (Some("timestamp"), Some("outpost/it/iss/next_pass"))
    );
    let tracker = &by_topic["homeassistant/device_tracker/outpost_it/iss/config"];
    assert_eq!(tracker["json_attributes_topic"], "outpost/it/iss/position");
    assert!(tracker.get("state_topic").is_none_or(|t| t.is_string()));
    let new_snow = &by_topic["homeassistant/sensor/outpost_it/weather_3022_new_snow/config"];
    assert_eq!(new_snow["name"], "New snow Trollheimen");
    assert_eq!(new_snow["state_topic"], "outpost/it/weather/3022");
    assert_eq!(new_snow["value_template"], "{{ value_json.snowfall_max_cm }}");
    assert_eq!(new_snow["unit_of_measurement"], "cm");
    let max_wind = &by_topic["homeassistant/sensor/outpost_it/weather_3022_max_wind/config"];
    assert_eq!(max_wind["value_template"], "{{ value_json.wind_speed_max_kmh }}");
    assert_eq!(
        (max_wind["unit_of_measurement"].as_str(), max_wind["device_class"].as_str()),
        (Some("km/h"), Some("wind_speed"))
    );

    // Today's weather, once stored and acknowledged; retained: still there after the stop.
    app.wait_for("weather stored and acknowledged", 60, |s| {
        stored(s, "weather.daily") >= 1 && s["sinks"]["mqtt"]["backlog"] == 0
    })
    .await;
    assert!(app.stop().await.success());
    let w = broker.json("outpost/it/weather/3022").await;
    assert_eq!(
        (w["region_id"].as_u64(), w["date"].as_str()),
        (Some(3022), Some(oslo_today().to_string().as_str())),
        "{w}"
    );
    assert!(snow.is_some_and(|s| s > 0.0), "the fixture's snowy day");
    assert_eq!((w["snowfall_max_cm"].as_f64(), w["wind_speed_max_kmh"].as_f64()), (snow, wind), "{w}");
    assert!(w["wind_gusts_max_kmh"].is_null(), "the answer has no gusts: null, not 0: {w}");
}

#[tokio::test]
async fn availability_is_online_while_running_and_offline_after_kill_or_stop() {
    let (fx, _, _) = feed().await;
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), free_port(), None).await.unwrap();
    let cfg = config(&fx, dir.path(), &mqtt_section(broker.port, ""));
    let app = Outpost::start(dir.path(), &cfg).await;
    caught_up(&app, 60).await;
    assert_eq!(broker.text("outpost/it/status").await, "online");

    // kill -9: no shutdown path runs; the broker publishes the last will.
    app.kill9().await;
    broker.wait_text("outpost/it/status", "offline", 10).await;
    assert!(!broker.log().contains("Received DISCONNECT from outpost_it"), "a killed process sends nothing");

    // Back online after a restart, then a clean stop says "offline" itself and disconnects.
    let app = Outpost::start(dir.path(), &cfg).await;
    caught_up(&app, 60).await;
    assert_eq!(broker.text("outpost/it/status").await, "online");
    assert!(app.stop().await.success());
    broker.wait_text("outpost/it/status", "offline", 10).await;
    // It was the sink's own "offline" and a clean DISCONNECT, not the will.
    broker.wait_log("Received DISCONNECT from outpost_it", 10).await;
}

#[tokio::test]
async fn a_broker_that_starts_late_gets_the_backlog_coalesced_and_a_restarted_one_is_refilled() {
    let (fx, newest, more) = feed().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let app = Outpost::start(dir.path(), &config(&fx, dir.path(), &mqtt_section(port, ""))).await;
    let s = app
        .wait_for("everything collected while the broker is down", 60, |s| {
            stored(s, "iss.position") == POSITIONS
                && stored(s, "avalanche.warning") == 2
                && stored(s, "iss.tle") == 1
                && s["sinks"]["mqtt"]["last_error"].is_string()
        })
        .await;
    assert_eq!(s["sinks"]["mqtt"]["connected"], false);
    assert!(s["sinks"]["mqtt"]["backlog"].as_u64().unwrap() >= POSITIONS + 3, "{s:#}");
    let error = s["sinks"]["mqtt"]["last_error"].as_str().unwrap();
    assert!(error.contains("cannot reach the MQTT broker"), "{error}");
    assert!(!error.contains(&port.to_string()), "no address in errors: {error}");

    let broker = Broker::start(dir.path(), port, None).await.unwrap();
    let s = caught_up(&app, 90).await;
    assert!(s["sinks"]["mqtt"]["delivered"].as_u64().unwrap() >= POSITIONS + 3, "{s:#}");
    assert_position(&broker.json("outpost/it/iss/position").await, newest);
    assert_todays_danger(&broker.json("outpost/it/avalanche/3022").await);
    // The backlog became one message per state topic, not one per record.
    assert_eq!(broker.publishes_to("outpost/it/iss/position"), 1, "{}", broker.log());
    assert_eq!(broker.publishes_to("outpost/it/avalanche/3022"), 1, "{}", broker.log());

    // The broker restarts empty (no persistence); the next record's step reconnects and refills
    // every retained topic, not only the position that record changed.
    broker.kill().await;
    let broker = Broker::start(dir.path(), port, None).await.unwrap();
    more.store(POSITIONS + 1, SeqCst);
    app.wait_for("a sixth position acknowledged by the new broker", 60, |s| {
        stored(s, "iss.position") == POSITIONS + 1
            && s["sinks"]["mqtt"]["connected"] == true
            && s["sinks"]["mqtt"]["backlog"] == 0
    })
    .await;
    assert_eq!(broker.json("outpost/it/iss/position").await["latitude"], 16.5);
    assert_todays_danger(&broker.json("outpost/it/avalanche/3022").await);
    assert_eq!(broker.text("outpost/it/status").await, "online");
    assert!(app.stop().await.success());
}

#[tokio::test]
async fn a_wrong_password_is_a_clear_error_and_the_daemon_keeps_running() {
    let (fx, _, _) = feed().await;
    let dir = tempfile::tempdir().unwrap();
    let Some(broker) = Broker::start(dir.path(), free_port(), Some(("outpost", "right-pass-41"))).await else {
        skip!("mosquitto_passwd is not available; the wrong-password test needs it");
        return;
    };
    let login = |pass: &str| format!("username = \"outpost\"\npassword = \"{pass}\"\n");
    let cfg = config(&fx, dir.path(), &mqtt_section(broker.port, &login("wrong-pass-73")));
    let app = Outpost::start(dir.path(), &cfg).await;
    let s = app.wait_for("the login to fail", 30, |s| s["sinks"]["mqtt"]["last_error"].is_string()).await;
    let error = s["sinks"]["mqtt"]["last_error"].as_str().unwrap();
    assert!(error.contains("refused") || error.contains("rejected"), "{error}");
    assert!(error.contains("mqtt.password"), "says what to fix: {error}");
    assert!(!error.contains("wrong-pass-73"), "{error}");
    // Still collecting and serving, with the sink waiting.
    let s = app.wait_for("collection to go on", 30, |s| stored(s, "iss.position") == POSITIONS).await;
    assert_eq!(s["sinks"]["mqtt"]["connected"], false);
    let (code, _) = app.get("/healthz").await;
    assert_eq!(code, 200);
    assert!(!app.log().contains("wrong-pass-73"), "the password is never logged");
    assert!(app.stop().await.success());

    // The right password works: credentials really reach the broker.
    let cfg = config(&fx, dir.path(), &mqtt_section(broker.port, &login("right-pass-41")));
    let app = Outpost::start(dir.path(), &cfg).await;
    caught_up(&app, 60).await;
    assert!(!app.log().contains("right-pass-41"), "the password is never logged");
    assert!(app.stop().await.success());
}

#[tokio::test]
async fn the_next_visible_pass_is_published_for_the_device_location() {
    // A TLE of about now, and a place whose next visible pass begins 10 min to 12 h from now.
    let now = Utc::now();
    let text = crate::email::tle_at(now - chrono::Duration::minutes(1));
    let tle = outpost::sources::tle_parse::parse_tle(text.as_bytes()).unwrap();
    let (observer, pass) =
        crate::email::find_pass(&tle, now, chrono::Duration::minutes(10), chrono::Duration::hours(12));
    let fx = FixtureServer::start().await;
    fx.script("/tle", vec![Reply::ok(text)]);
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), free_port(), None).await.unwrap();
    let location = format!("[location]\nlatitude = {:?}\nlongitude = {:?}\n", observer.latitude, observer.longitude);
    let cfg = config(&fx, dir.path(), &(mqtt_section(broker.port, "") + &location));
    let app = Outpost::start(dir.path(), &cfg).await;
    app.wait_for("the TLE", 30, |s| stored(s, "iss.tle") == 1).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let got: Value = loop {
        let text = broker.text("outpost/it/iss/next_pass").await;
        if text.contains("visible_from") {
            break serde_json::from_str(&text).unwrap();
        }
        assert!(tokio::time::Instant::now() < deadline, "next_pass is {text:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let at = |v: &Value| v.as_str().unwrap().parse::<DateTime<Utc>>().unwrap();
    assert_eq!(got["visible"], true);
    assert!((at(&got["visible_from"]) - pass.visible_from.unwrap()).num_seconds().abs() <= 2, "{got} vs {pass:?}");
    assert!((at(&got["rise"]["time"]) - pass.rise.time).num_seconds().abs() <= 2);
    assert!(app.stop().await.success());
}

#[tokio::test]
async fn without_a_pass_to_tell_next_pass_says_why_with_the_old_tles_epoch_and_age() {
    // The recorded TLE of 2023-09-18, years before the clock, and a location.
    let fx = FixtureServer::start().await;
    fx.script("/tle", vec![Reply::ok(fixture("passes/iss-2023-09-18.tle"))]);
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), free_port(), None).await.unwrap();
    let location = "[location]\nlatitude = 59.9\nlongitude = 10.7\n";
    let app = Outpost::start(dir.path(), &config(&fx, dir.path(), &(mqtt_section(broker.port, "") + location))).await;
    app.wait_for("the TLE", 30, |s| stored(s, "iss.tle") == 1).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let got = loop {
        let text = broker.text("outpost/it/iss/next_pass").await;
        let got: Value = serde_json::from_str(&text).unwrap_or_default();
        if got["reason"].as_str().is_some_and(|r| r.contains("days old")) {
            break got;
        }
        assert!(tokio::time::Instant::now() < deadline, "next_pass is {text:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let reason = got["reason"].as_str().unwrap();
    assert!(reason.contains("2023-09-18 10:40 UTC") && reason.contains("at most 14 days"), "{reason}");
    assert_eq!(got.as_object().unwrap().len(), 1, "no pass fields: {got}");
    assert!(app.stop().await.success());
}

/// Where the simulated pass is watched from: Oslo's reference place (tests/fixtures/passes).
const OSLO: outpost::passes::Observer =
    outpost::passes::Observer { latitude: 59.9139, longitude: 10.7522, altitude_m: 20.0 };
/// No pass over Oslo climbs to the default 60 deg; the reference pass of 19:38 culminates at 18.9.
const OVERHEAD_DEG: f64 = 15.0;
/// The appliance's clock starts here, a minute before the pass becomes visible, and runs 5 times
/// as fast as the real one (timers too: libfaketime scales the waits as well).
const FAKE_START: &str = "2023-09-18T19:37:30Z";
const SPEED: f64 = 5.0;

/// Renders a Home Assistant template with Jinja2's sandbox (as Home Assistant does), `value_json`
/// being `payload` parsed.
fn render_ha_template(template: &str, payload: &str) -> String {
    const SCRIPT: &str = "import json, sys, jinja2.sandbox\n\
        env = jinja2.sandbox.ImmutableSandboxedEnvironment()\n\
        print(env.from_string(sys.argv[1]).render(value_json=json.loads(sys.argv[2])))";
    let python = std::env::var("OUTPOST_PYTHON").unwrap_or_else(|_| "/root/.cache/outpost/venv/bin/python".into());
    let out = std::process::Command::new(python).args(["-c", SCRIPT, template, payload]).output().unwrap();
    assert!(
        out.status.success(),
        "jinja2 (tests/tools/requirements.txt) renders the template: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
async fn the_sky_binary_sensors_flip_on_time_across_a_simulated_pass() {
    let Some(lib) = crate::drills_clock::libfaketime() else {
        skip!("{}", crate::drills_clock::NO_FAKETIME);
        return;
    };
    // What should happen, predicted by the library (its visible window is Skyfield's to the second).
    let tle_text = fixture("passes/iss-2023-09-18.tle");
    let tle = outpost::sources::tle_parse::parse_tle(&tle_text).unwrap();
    let fake_start: DateTime<Utc> = FAKE_START.parse().unwrap();
    let query = outpost::passes::PassQuery {
        observer: OSLO,
        from: fake_start,
        hours: 1.0,
        options: Default::default(),
        all: false,
        max_magnitude: None,
        brightest_first: false,
    };
    let pass = query.run(&tle).unwrap().into_iter().next().expect("the 19:38 pass");
    let (visible_from, visible_to) = (pass.visible_from.unwrap(), pass.visible_to.unwrap());
    assert_eq!(visible_from, "2023-09-18T19:38:31Z".parse::<DateTime<Utc>>().unwrap(), "the reference's start");
    let overhead = outpost::passes::elevation_windows(&tle, OSLO, fake_start, visible_to, OVERHEAD_DEG).unwrap();
    let overhead = overhead.first().expect("the pass climbs above 15 deg").clone();
    assert!(visible_from < overhead.start && overhead.start < visible_to && visible_to < overhead.end);

    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), free_port(), None).await.unwrap();
    // Every state change as it arrives, with the real time it arrived.
    let mut sub = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &broker.port.to_string(), "-v"])
        .args(["-t", "outpost/it/iss/visible_now", "-t", "outpost/it/iss/overhead"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("mosquitto_sub runs");
    let (tx, mut arrivals) = tokio::sync::mpsc::unbounded_channel();
    let stdout = sub.stdout.take().unwrap();
    tokio::spawn(async move {
        use tokio::io::AsyncBufReadExt;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = tx.send((std::time::Instant::now(), line));
        }
    });
    // mosquitto_sub is subscribed once a retained message reaches it; none exists yet, so
    // publish one of our own and wait for it.
    let probe = std::process::Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &broker.port.to_string(), "-r", "-t", "outpost/it/iss/overhead", "-m", "probe"])
        .status()
        .unwrap();
    assert!(probe.success());
    let (_, line) = tokio::time::timeout(Duration::from_secs(10), arrivals.recv()).await.unwrap().unwrap();
    assert_eq!(line, "outpost/it/iss/overhead probe");

    let fx = FixtureServer::start().await;
    fx.script("/tle", vec![Reply::ok(tle_text)]);
    let extra = format!(
        "[location]\nlatitude = {}\nlongitude = {}\naltitude_m = {}\n[email]\noverhead_elevation_deg = {OVERHEAD_DEG}\n{}",
        OSLO.latitude,
        OSLO.longitude,
        OSLO.altitude_m,
        mqtt_section(broker.port, "ha_discovery = true\n")
    );
    // Real-time seconds are short for the fast clock: the time-outs are made long enough.
    let cfg = config(&fx, dir.path(), &extra).replace("timeout_s = 2.0", "timeout_s = 30.0");
    let preload = format!("LD_PRELOAD={lib}");
    let faketime = format!("FAKETIME=@{} x{SPEED}", fake_start.format("%Y-%m-%d %H:%M:%S"));
    let command = ["/usr/bin/env", "TZ=UTC", &preload, &faketime, bin()];
    // libfaketime starts its clock when the process loads it, right after the spawn.
    let spawned = std::time::Instant::now();
    let app = Outpost::start_with(dir.path(), &cfg, &command).await;
    let fake_at =
        |real: std::time::Instant| fake_start + chrono::Duration::from_std((real - spawned).mul_f64(SPEED)).unwrap();

    // Collect until both sensors went OFF -> ON -> OFF (the pass ends about 60 s from now).
    let mut seen: Vec<(DateTime<Utc>, String, String)> = vec![];
    let done = |seen: &[(DateTime<Utc>, String, String)], topic: &str| {
        seen.iter().filter(|(_, t, _)| t.ends_with(topic)).map(|(_, _, p)| p.as_str()).collect::<Vec<_>>()
            == ["OFF", "ON", "OFF"]
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(150);
    while !(done(&seen, "/visible_now") && done(&seen, "/overhead")) {
        let next = tokio::time::timeout_at(deadline, arrivals.recv()).await;
        let Ok(Some((at, line))) = next else {
            panic!("both sensors OFF, ON, OFF by the deadline; seen {seen:?}\n{}", app.log());
        };
        let (topic, payload) = line.split_once(' ').unwrap();
        seen.push((fake_at(at), topic.to_owned(), payload.to_owned()));
        eprintln!("sky sensors: {topic} {payload} at {} (appliance time)", fake_at(at));
    }
    let times = |topic: &str| -> Vec<DateTime<Utc>> {
        seen.iter().filter(|(_, t, _)| t.ends_with(topic)).map(|(at, _, _)| *at).collect()
    };
    let (visible, over) = (times("/visible_now"), times("/overhead"));
    assert!(visible[0] < visible_from - chrono::Duration::seconds(5), "OFF at the connection, before the pass");
    assert!(over[0] < visible_from - chrono::Duration::seconds(5));
    // Each flip within a few seconds of its predicted time (2 s of appliance time is 0.4 s here).
    for (what, got, want) in [
        ("visible on", visible[1], visible_from),
        ("visible off", visible[2], visible_to),
        ("overhead on", over[1], overhead.start),
        ("overhead off", over[2], overhead.end),
    ] {
        let late = (got - want).num_milliseconds() as f64 / 1000.0;
        eprintln!("sky sensors: {what} {late:+.2} s from the predicted {want}");
        assert!((-1.0..=2.0).contains(&late), "{what} at {got}, predicted {want} ({late:+.2} s)\n{seen:?}");
    }

    // The discovery configs, retained: both binary sensors on their state topics.
    let configs = broker.read("homeassistant/binary_sensor/#", 3, 5).await;
    let config = |id: &str| -> Value {
        let topic = format!("homeassistant/binary_sensor/outpost_it/{id}/config");
        let (_, payload) = configs.iter().find(|(t, _)| *t == topic).unwrap_or_else(|| panic!("{topic}: {configs:?}"));
        serde_json::from_str(payload).unwrap()
    };
    for (id, name, state) in [
        ("iss_visible_now", "ISS visible now", "outpost/it/iss/visible_now"),
        ("iss_overhead", "ISS overhead", "outpost/it/iss/overhead"),
    ] {
        let c = config(id);
        assert_eq!((c["name"].as_str(), c["state_topic"].as_str()), (Some(name), Some(state)), "{c}");
        assert_eq!(c["unique_id"], format!("outpost_it_{id}"));
        assert_eq!(c["availability_topic"], "outpost/it/status");
        assert!(c.get("payload_on").is_none() && c.get("value_template").is_none(), "ON/OFF, the defaults: {c}");
    }
    // The next pass moved on when this one ended; its attributes, rendered as Home Assistant
    // renders them, carry its magnitude and maximum elevation.
    let next_config = broker.json("homeassistant/sensor/outpost_it/iss_next_pass/config").await;
    assert_eq!(next_config["json_attributes_topic"], "outpost/it/iss/next_pass");
    let payload = broker.text("outpost/it/iss/next_pass").await;
    let next: Value = serde_json::from_str(&payload).unwrap();
    let next_from: DateTime<Utc> = next["visible_from"].as_str().unwrap().parse().unwrap();
    assert!(next_from > visible_to, "the following pass, not the one that ended: {next}");
    let magnitude = next["magnitude"].as_f64().unwrap_or_else(|| panic!("the payload carries magnitude: {next}"));
    let attributes = render_ha_template(next_config["json_attributes_template"].as_str().unwrap(), &payload);
    let attributes: Value = serde_json::from_str(&attributes).unwrap();
    assert_eq!(attributes["magnitude"].as_f64(), Some(magnitude), "{attributes}");
    let top = next["culmination"]["elevation_deg"].as_f64().unwrap();
    assert_eq!(attributes["max_elevation_deg"].as_f64(), Some((top * 10.0).round() / 10.0), "{attributes}");
    assert_eq!(attributes["visible_from"], next["visible_from"], "every field of the payload stays: {attributes}");
    let state = render_ha_template(next_config["value_template"].as_str().unwrap(), &payload);
    assert_eq!(state, next["visible_from"].as_str().unwrap());
    // With no pass to tell, the attributes still render.
    let empty: Value =
        serde_json::from_str(&render_ha_template(next_config["json_attributes_template"].as_str().unwrap(), "{}"))
            .unwrap();
    assert!(empty["max_elevation_deg"].is_null(), "{empty}");
    assert!(app.stop().await.success());
    drop(sub);
}
