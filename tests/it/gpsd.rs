//! The location from gpsd: the real gpsd, fed by gpsfake from NMEA logs written here, and the
//! real `outpost` following it (first fix, wander, losing gpsd, a move), plus the fallbacks when
//! gpsd is unreachable or silent.
//!
//! Needs `gpsfake` and `gpsd` (Debian packages gpsd and gpsd-clients); without them these tests
//! fail, naming what is missing.

use crate::helpers::*;
use serde_json::Value;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const OSLO: (f64, f64) = (59.9139, 10.7522);
const BERGEN: (f64, f64) = (60.3913, 5.3221);
const TROMSO: (f64, f64) = (69.65, 18.96);
/// 0.0005 degrees of longitude at 60 degrees north: about 28 m of GPS wander.
const WANDER: f64 = 0.0005;

/// One NMEA sentence with its checksum (XOR of the bytes between '$' and '*').
fn sentence(body: &str) -> String {
    let sum = body.bytes().fold(0u8, |a, b| a ^ b);
    format!("${body}*{sum:02X}\r\n")
}

/// ddmm.mmmm (or dddmm.mmmm) and the hemisphere letter.
fn nmea_angle(v: f64, degree_digits: usize, pos: char, neg: char) -> (String, char) {
    let a = v.abs();
    let (deg, min) = (a.trunc(), (a - a.trunc()) * 60.0);
    (format!("{:0w$}{min:07.4}", deg as u32, w = degree_digits), if v < 0.0 { neg } else { pos })
}

/// A GGA + RMC pair per fix, one second apart, as a receiver with a 3D fix at 20 m MSL sends.
fn nmea_log(fixes: &[(f64, f64)]) -> String {
    let mut out = String::new();
    for (i, &(lat, lon)) in fixes.iter().enumerate() {
        let time = format!("1938{:02}.00", 30 + i % 30);
        let (la, ns) = nmea_angle(lat, 2, 'N', 'S');
        let (lo, ew) = nmea_angle(lon, 3, 'E', 'W');
        out += &sentence(&format!("GPGGA,{time},{la},{ns},{lo},{ew},1,08,0.9,20.0,M,39.0,M,,"));
        out += &sentence(&format!("GPRMC,{time},A,{la},{ns},{lo},{ew},0.0,0.0,180923,,,A"));
    }
    out
}

#[test]
fn nmea_sentences_are_well_formed() {
    // The example from the NMEA 0183 GGA description, checksum included.
    assert_eq!(
        sentence("GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"),
        "$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47\r\n"
    );
    assert_eq!(nmea_angle(OSLO.0, 2, 'N', 'S'), ("5954.8340".into(), 'N'));
    assert_eq!(nmea_angle(OSLO.1, 3, 'E', 'W'), ("01045.1320".into(), 'E'));
    assert_eq!(nmea_angle(-5.5, 3, 'E', 'W'), ("00530.0000".into(), 'W'));
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// gpsfake (with the gpsd it starts) replaying a log in a loop on a TCP port.
pub(crate) struct GpsFake {
    child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl GpsFake {
    /// Starts gpsfake on `port` and returns once gpsd accepts connections there.
    pub(crate) async fn start(dir: &Path, name: &str, fixes: &[(f64, f64)], port: u16) -> GpsFake {
        let log = dir.join(format!("{name}.nmea"));
        std::fs::write(&log, nmea_log(fixes)).unwrap();
        // -c 0.2: a sentence every 0.2 s (a fix every 0.4 s); without -1 the log repeats forever.
        let mut child = Command::new("gpsfake")
            .args(["-P", &port.to_string(), "-c", "0.2"])
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own process group, so gpsfake and its gpsd can be signalled together.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run gpsfake ({e}): install the Debian packages gpsd and gpsd-clients"));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = stderr.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                sink.lock().unwrap().push(line);
            }
        });
        let mut fake = GpsFake { child, stderr };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return fake;
            }
            if let Ok(Some(exit)) = fake.child.try_wait() {
                panic!("gpsfake exited with {exit}:\n{}", fake.log());
            }
            if tokio::time::Instant::now() > deadline {
                panic!("gpsd did not listen on port {port} within 20 s; gpsfake said:\n{}", fake.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    fn signal_group(&self, signal: &str) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill").args([signal, "--", &format!("-{pid}")]).status();
        }
    }

    /// SIGTERM to gpsfake and its gpsd (gpsfake's own clean-up path), then wait for the exit.
    pub(crate) async fn stop(mut self) {
        self.signal_group("-TERM");
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await.is_err() {
            self.signal_group("-KILL");
            panic!("gpsfake did not stop on SIGTERM:\n{}", self.log());
        }
    }
}

impl Drop for GpsFake {
    fn drop(&mut self) {
        // A failed test must not leave a gpsd behind: kill_on_drop would only reach gpsfake.
        if matches!(self.child.try_wait(), Ok(None)) {
            self.signal_group("-KILL");
        }
    }
}

fn location(s: &Value) -> &Value {
    &s["location"]
}

/// Whether `v` (a Located) is from `source` within 0.001 degrees of `at`.
fn is_at(v: &Value, source: &str, at: (f64, f64)) -> bool {
    v["source"] == source
        && (v["observer"]["latitude"].as_f64().unwrap_or(f64::NAN) - at.0).abs() < 0.001
        && (v["observer"]["longitude"].as_f64().unwrap_or(f64::NAN) - at.1).abs() < 0.001
}

fn gpsd_config(fx: &FixtureServer, dir: &Path, port: u16) -> String {
    let extra = format!("[location]\nlatitude = {}\nlongitude = {}\ngpsd = \"127.0.0.1:{port}\"\n", TROMSO.0, TROMSO.1);
    config(fx, dir, &extra)
}

#[tokio::test]
async fn gpsd_fix_is_followed_wander_is_not_and_a_lost_gpsd_leaves_the_last_fix() {
    let fx = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let wander: Vec<(f64, f64)> = (0..10).map(|i| (OSLO.0, OSLO.1 + WANDER * (i % 2) as f64)).collect();
    let oslo = GpsFake::start(dir.path(), "oslo", &wander, port).await;
    let app = Outpost::start(dir.path(), &gpsd_config(&fx, dir.path(), port)).await;

    // The first fix may be 2D (gpsd has RMC before GGA); the 3D one brings the altitude once.
    let s = app
        .wait_for("a 3D gps location at Oslo", 30, |s| {
            let c = &location(s)["current"];
            is_at(c, "gps", OSLO) && c["observer"]["altitude_m"] == 20.0
        })
        .await;
    let l = location(&s);
    assert_eq!((l["gpsd_configured"].as_bool(), l["gpsd_connected"].as_bool()), (Some(true), Some(true)));
    assert!(l["gpsd_release"].is_string(), "from gpsd's VERSION greeting: {l}");
    assert_eq!(l["fix_mode"], 3);
    // The log's time, or the arrival time when gpsd did not know the date yet.
    assert!(l["current"]["fix_time"].is_string(), "{l}");
    let (published, updates) = (l["current"].clone(), l["updates"].as_u64().unwrap());

    // gpsd keeps reporting fixes 28 m apart: seen in last_fix, never published.
    let s = app
        .wait_for("a wandering fix", 30, |s| {
            let l = location(s);
            l["last_fix"]["observer"]["longitude"] != l["current"]["observer"]["longitude"]
        })
        .await;
    assert_eq!(location(&s)["current"], published, "wander is not a move");
    assert_eq!(location(&s)["updates"].as_u64(), Some(updates));
    assert_eq!(location(&s)["bad_lines"], 0);

    // gpsd goes away: the last fix stays, marked as such, and the error is shown.
    oslo.stop().await;
    let s = app
        .wait_for("the last fix after gpsd stopped", 30, |s| {
            let l = location(s);
            is_at(&l["current"], "last_fix", OSLO) && l["gpsd_connected"] == false && l["last_error"].is_string()
        })
        .await;
    let connects = location(&s)["connects"].as_u64().unwrap();
    assert_eq!(connects, 1, "{s:#}");

    // Another gpsd on the same port, whose receiver travels from Oslo to Bergen and back. After
    // the reconnect the fix is live again; the trip to Bergen is published within that one
    // connection, by the more-than-1-km rule rather than by a change of source.
    let trip: Vec<(f64, f64)> = [OSLO; 5].into_iter().chain([BERGEN; 5]).collect();
    let bergen = GpsFake::start(dir.path(), "trip", &trip, port).await;
    let s = app.wait_for("gps again at Oslo", 60, |s| is_at(&location(s)["current"], "gps", OSLO)).await;
    let connects = location(&s)["connects"].as_u64().unwrap();
    let s = app.wait_for("the move to Bergen", 30, |s| is_at(&location(s)["current"], "gps", BERGEN)).await;
    assert_eq!(location(&s)["connects"].as_u64(), Some(connects), "moved without reconnecting: {s:#}");
    assert_eq!(location(&s)["gpsd_connected"], true);

    assert!(app.stop().await.success());
    bergen.stop().await;
}

#[tokio::test]
async fn unreachable_gpsd_leaves_the_configured_location_and_a_healthy_daemon() {
    let fx = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens there: the port was free a moment ago and is not handed out again at once.
    let port = free_port();
    let app = Outpost::start(dir.path(), &gpsd_config(&fx, dir.path(), port)).await;
    let s = app.wait_for("a gpsd error", 30, |s| location(s)["last_error"].is_string()).await;
    let l = location(&s);
    assert_eq!(l["current"]["source"], "config");
    assert_eq!(l["current"]["observer"]["latitude"], TROMSO.0);
    assert_eq!(l["current"]["observer"]["longitude"], TROMSO.1);
    assert_eq!(l["current"]["fix_time"], Value::Null);
    assert_eq!((l["gpsd_configured"].as_bool(), l["gpsd_connected"].as_bool()), (Some(true), Some(false)));
    let error = l["last_error"].as_str().unwrap();
    assert!(error.starts_with("connect:"), "{error}");
    assert!(!error.contains(&port.to_string()), "the configured address stays out of the status: {error}");
    assert_eq!(l["connects"], 0);
    let (code, body) = app.get("/healthz").await;
    assert_eq!(code, 200, "{body}");
    assert!(app.stop().await.success(), "stops promptly while gpsd is being retried");
}

#[tokio::test]
async fn a_silent_listener_is_not_taken_for_gpsd() {
    let fx = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    // Accepts connections and never says a word (gpsd would greet with VERSION at once).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            keep.lock().unwrap().push(socket);
        }
    });
    let app = Outpost::start(dir.path(), &gpsd_config(&fx, dir.path(), port)).await;
    let s = app
        .wait_for("the greeting time-out", 30, |s| {
            location(s)["last_error"].as_str().is_some_and(|e| e.contains("no greeting"))
        })
        .await;
    let l = location(&s);
    assert!(is_at(&l["current"], "config", TROMSO), "{l}");
    assert_eq!(l["gpsd_connected"], false);
    assert!(l["connects"].as_u64().unwrap() >= 1);
    assert!(!held.lock().unwrap().is_empty(), "outpost did connect");
    let (code, _) = app.get("/healthz").await;
    assert_eq!(code, 200);
    assert!(app.stop().await.success());
}

/// A hostile gpsd: after its greeting, one line of 50 MB without an end in sight. The line is
/// dropped as it comes (counted once), memory stays bounded, and the fix after it is followed.
#[tokio::test]
async fn an_endless_line_from_gpsd_is_dropped_without_filling_memory() {
    use tokio::io::AsyncWriteExt;
    const HUGE: usize = 50 * 1024 * 1024;
    let fx = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let go = Arc::new(tokio::sync::Notify::new());
    let start = go.clone();
    tokio::spawn(async move {
        let Ok((mut socket, _)) = listener.accept().await else { return };
        let version = r#"{"class":"VERSION","release":"3.22","rev":"3.22","proto_major":3,"proto_minor":14}"#;
        socket.write_all(format!("{version}\n").as_bytes()).await.unwrap();
        start.notified().await;
        let junk = vec![b'x'; 64 * 1024];
        for _ in 0..HUGE / junk.len() {
            socket.write_all(&junk).await.unwrap();
        }
        socket.write_all(b"\n").await.unwrap();
        loop {
            let tpv = format!(
                r#"{{"class":"TPV","mode":3,"time":"{}","lat":{},"lon":{},"altMSL":20.0}}"#,
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                OSLO.0,
                OSLO.1
            );
            if socket.write_all(format!("{tpv}\n").as_bytes()).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
    });
    let app = Outpost::start(dir.path(), &gpsd_config(&fx, dir.path(), port)).await;
    app.wait_for("the greeting", 30, |s| location(s)["gpsd_connected"] == true).await;
    let peak = |pid: u32| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let kb = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).unwrap();
        kb.trim().trim_end_matches("kB").trim().parse::<u64>().unwrap() * 1024
    };
    let baseline = peak(app.pid());
    go.notify_one();
    let s = app.wait_for("the fix after the endless line", 90, |s| is_at(&location(s)["current"], "gps", OSLO)).await;
    assert_eq!(location(&s)["bad_lines"], 1, "the long line is counted once: {s:#}");
    let growth = peak(app.pid()).saturating_sub(baseline);
    eprintln!("gpsd: peak RSS grew by {:.1} MB over a 50 MB line", growth as f64 / 1048576.0);
    assert!(growth < 10 << 20, "the peak RSS grew by {growth} bytes over a 50 MB line");
    assert!(app.stop().await.success());
}
