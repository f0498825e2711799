//! Night-pass email alerts against a real SMTP server (aiosmtpd: STARTTLS required, AUTH
//! PLAIN/LOGIN only after STARTTLS, tests/tools/smtp_server.py) with the test CA in
//! tests/fixtures/smtp. The TLE is the recorded one with its epoch moved to now, and the
//! observer is chosen (with the library's own prediction) so a visible pass is coming up.
//! One pass gets one email whatever moves its prediction by seconds: a newer TLE (its epoch
//! moved: the fixtures hold no two real TLEs of nearby epochs), the GPS fix replacing the
//! configured location (gpsfake, see gpsd.rs), a restart in between.

use crate::helpers::*;
use chrono::{DateTime, Datelike, Duration as Span, Utc};
use outpost::passes::{Observer, Pass, PassOptions, PassQuery, compass, look_angles};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub(crate) const USER: &str = "outpost";
pub(crate) const PASSWORD: &str = "c0rrect-horse";
const MAP_URL: &str = "http://outpost.test:8080/map";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub(crate) fn smtp_fixture(name: &str) -> String {
    format!("{}/tests/fixtures/smtp/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// tests/tools/smtp_server.py on 127.0.0.1:`port`, saving messages in `maildir`.
pub(crate) struct SmtpServer {
    pub(crate) port: u16,
    maildir: PathBuf,
    _child: Child,
}

impl SmtpServer {
    pub(crate) async fn start(dir: &Path) -> SmtpServer {
        let port = free_port();
        let maildir = dir.join("mail");
        let script = format!("{}/tests/tools/smtp_server.py", env!("CARGO_MANIFEST_DIR"));
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .arg(port.to_string())
            .args([smtp_fixture("server.pem"), smtp_fixture("server.key")])
            .args([USER, PASSWORD])
            .arg(&maildir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("/usr/bin/python3 with python3-aiosmtpd");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await;
        assert!(matches!(ready, Ok(Ok(Some(ref l))) if l == "READY"), "smtp_server.py did not start: {ready:?}");
        SmtpServer { port, maildir, _child: child }
    }

    /// The saved messages, oldest first.
    pub(crate) fn messages(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(&self.maildir)
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension() == Some("eml".as_ref())).collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

/// One saved email, decoded by Python's email package: subject, content type, text and HTML.
pub(crate) fn parse_eml(path: &Path) -> Value {
    let code = r#"
import email, email.policy, json, sys
m = email.message_from_binary_file(open(sys.argv[1], "rb"), policy=email.policy.default)
parts = {p.get_content_type(): p.get_content() for p in m.walk() if not p.is_multipart()}
print(json.dumps({"subject": str(m["subject"]), "to": str(m["to"]), "content_type": m.get_content_type(),
                  "text": parts.get("text/plain", ""), "html": parts.get("text/html", "")}))
"#;
    let out = std::process::Command::new("/usr/bin/python3").args(["-c", code]).arg(path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The recorded TLE with its epoch (line 1, columns 19-32) moved to `epoch` and the checksum fixed.
pub(crate) fn tle_at(epoch: DateTime<Utc>) -> String {
    let text = String::from_utf8(fixture("passes/iss-2023-09-18.tle")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let day = f64::from(epoch.ordinal())
        + (epoch.timestamp() - epoch.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp()) as f64 / 86400.0;
    let field = format!("{:02}{:012.8}", epoch.year() % 100, day);
    assert_eq!(field.len(), 14);
    let l1 = lines[1].trim_end();
    let mut new = format!("{}{}{}", &l1[..18], field, &l1[32..68]);
    let sum: u32 = new.chars().map(|c| if c == '-' { 1 } else { c.to_digit(10).unwrap_or(0) }).sum();
    new.push(char::from_digit(sum % 10, 10).unwrap());
    assert!(outpost::sources::tle_parse::tle_checksum_ok(&new));
    format!("{}\n{new}\n{}\n", lines[0], lines[2])
}

/// A place and its next visible pass whose visibility begins between `now + lo` and `now + hi`.
pub(crate) fn find_pass(tle: &outpost::domain::Tle, now: DateTime<Utc>, lo: Span, hi: Span) -> (Observer, Pass) {
    for lat in (-55..=55).step_by(5) {
        for lon in (-180..180).step_by(6) {
            let observer = Observer { latitude: f64::from(lat), longitude: f64::from(lon), altitude_m: 0.0 };
            let hours = hi.num_seconds() as f64 / 3600.0 + 0.2;
            let options = PassOptions::default();
            let q = PassQuery {
                observer,
                from: now,
                hours,
                options,
                all: false,
                max_magnitude: None,
                brightest_first: false,
            };
            if let Some(p) = q.run(tle).unwrap().into_iter().find(|p| {
                p.visible_from
                    .is_some_and(|v| v >= now + lo && v <= now + hi && p.visible_to.unwrap() - v >= Span::seconds(60))
            }) {
                return (observer, p);
            }
        }
    }
    panic!("no visible pass found between {lo} and {hi} from now");
}

struct Scene {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    fx: FixtureServer,
    tle: outpost::domain::Tle,
    observer: Observer,
    pass: Pass,
}

/// A fixture server serving a TLE of about now, and a place with a visible pass whose visibility
/// begins `lo`..`hi` from now.
async fn scene(lo: Span, hi: Span) -> Scene {
    let now = Utc::now();
    let text = tle_at(now - Span::minutes(1));
    let tle = outpost::sources::tle_parse::parse_tle(text.as_bytes()).unwrap();
    let (observer, pass) = find_pass(&tle, now, lo, hi);
    serve(text, tle, observer, pass).await
}

/// Like `scene`, with visibility beginning about `soon` from now: a pass found further ahead
/// is brought forward by moving the TLE epoch back by the difference and the observer west by
/// the angle the earth turns in that time (the sun barely moves in the inertial frame, so the
/// pass and its visibility stay the same).
async fn scene_soon(soon: Span) -> Scene {
    let now = Utc::now();
    let epoch = now - Span::minutes(1);
    let tle = outpost::sources::tle_parse::parse_tle(tle_at(epoch).as_bytes()).unwrap();
    let (observer, pass) = find_pass(&tle, now, Span::minutes(10), Span::hours(8));
    let delta = now + soon - pass.visible_from.unwrap();
    let text = tle_at(epoch + delta);
    let tle = outpost::sources::tle_parse::parse_tle(text.as_bytes()).unwrap();
    let turn = 360.985_647 * delta.num_milliseconds() as f64 / 86_400_000.0;
    let longitude = (observer.longitude - turn + 540.0).rem_euclid(360.0) - 180.0;
    let observer = Observer { longitude, ..observer };
    let window = Span::seconds(30);
    let (observer, pass) = find_pass_near(&tle, now, observer, soon - window, soon + window);
    serve(text, tle, observer, pass).await
}

/// `find_pass` around one place (±2 degrees).
fn find_pass_near(tle: &outpost::domain::Tle, now: DateTime<Utc>, o: Observer, lo: Span, hi: Span) -> (Observer, Pass) {
    for dlat in [0.0, 0.5, -0.5, 1.0, -1.0, 2.0, -2.0] {
        for dlon in [0.0, 0.5, -0.5, 1.0, -1.0, 2.0, -2.0] {
            let observer = Observer { latitude: o.latitude + dlat, longitude: o.longitude + dlon, ..o };
            let q = PassQuery {
                observer,
                from: now,
                hours: 1.0,
                options: PassOptions::default(),
                all: false,
                max_magnitude: None,
                brightest_first: false,
            };
            if let Some(p) =
                q.run(tle).unwrap().into_iter().find(|p| p.visible_from.is_some_and(|v| v >= now + lo && v <= now + hi))
            {
                return (observer, p);
            }
        }
    }
    panic!("the shifted pass is not between {lo} and {hi} from now near {o:?}");
}

async fn serve(text: String, tle: outpost::domain::Tle, observer: Observer, pass: Pass) -> Scene {
    let dir = tempfile::tempdir().unwrap();
    let fx = FixtureServer::start().await;
    fx.script("/tle", vec![Reply::ok(text)]);
    fx.script("/iss-now.json", vec![Reply::ok(open_notify(Utc::now(), "0.0", "0.0"))]);
    Scene { dir: dir.path().to_owned(), _dir: dir, fx, tle, observer, pass }
}

impl Scene {
    /// The outpost config: location at the observer, email through `port`, lead time so the pass
    /// email is due at once.
    fn config(&self, port: u16, password: &str) -> String {
        self.config_with(port, password, "")
    }

    /// `config` with more `[location]` keys.
    fn config_with(&self, port: u16, password: &str, location: &str) -> String {
        let lead = (self.pass.visible_from.unwrap() - Utc::now()).num_minutes() + 5;
        let extra = format!(
            r#"
[location]
latitude = {lat}
longitude = {lon}
{location}
[email]
smtp_host = "127.0.0.1"
smtp_port = {port}
security = "starttls"
username = "{USER}"
password = "{password}"
from = "Outpost <outpost@example.org>"
to = ["alice@example.org", "bob@example.org"]
lead_minutes = {lead}
map_url = "{MAP_URL}"
ca_file = "{ca}"
"#,
            lat = self.observer.latitude,
            lon = self.observer.longitude,
            ca = smtp_fixture("ca.pem"),
        );
        config(&self.fx, &self.dir.join("store"), &extra)
    }
}

fn email(s: &Value) -> &Value {
    &s["email"]
}

fn count(s: &Value, field: &str) -> u64 {
    s["email"][field].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_email_is_sent_once_and_never_again_after_a_restart() {
    let sc = scene(Span::minutes(10), Span::hours(8)).await;
    let smtp = SmtpServer::start(&sc.dir).await;
    let cfg = sc.config(smtp.port, PASSWORD);
    let outpost = Outpost::start(&sc.dir, &cfg).await;
    // Both counters: `sent` moves as the email is accepted, `recorded` when the check finishes.
    let s = outpost
        .wait_for("the pass email, sent and recorded", 60, |s| {
            count(s, "sent") == 1 && email(s)["recorded"].as_array().is_some_and(|r| r.len() == 1)
        })
        .await;
    assert_eq!(count(&s, "failures"), 0, "{s:#}");
    let recorded = email(&s)["recorded"].as_array().unwrap();
    assert_eq!(recorded.len(), 1, "{s:#}");
    assert_eq!(recorded[0]["alert"], "pass");
    assert_eq!(recorded[0]["outcome"], "sent");
    assert_eq!(recorded[0]["recipients"], 2);

    // The one email: subject, both alternatives, where to look, the map link.
    let msgs = smtp.messages();
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    let m = parse_eml(&msgs[0]);
    let vf = sc.pass.visible_from.unwrap();
    let start = look_angles(&sc.tle, sc.observer, vf).unwrap();
    let local = |t: DateTime<Utc>| t.with_timezone(&chrono::Local).format("%H:%M").to_string();
    assert_eq!(m["subject"], format!("ISS visible at {} — look {}", local(vf), compass(start.azimuth_deg)), "{m:#}");
    assert_eq!(m["content_type"], "multipart/alternative", "{m:#}");
    assert!(m["to"].as_str().unwrap().contains("bob@example.org"), "{m:#}");
    let text = m["text"].as_str().unwrap();
    let html = m["html"].as_str().unwrap();
    let appears = format!("Appears:    {}  {} {:.0}°", local(vf), compass(start.azimuth_deg), start.elevation_deg);
    assert!(text.contains(&appears), "want {appears:?} in:\n{text}");
    for needle in ["Highest:", "Disappears:", "Visible for:", MAP_URL] {
        assert!(text.contains(needle), "want {needle:?} in:\n{text}");
    }
    assert!(html.contains(&format!("<a href=\"{MAP_URL}\">")), "{html}");
    assert!(html.contains(&format!("{} {:.0}°", compass(start.azimuth_deg), start.elevation_deg)), "{html}");

    // A restart on the same store: the log says it was sent, so nothing goes out again.
    assert!(outpost.stop().await.success());
    let outpost = Outpost::start(&sc.dir, &cfg).await;
    let s = outpost.wait_for("two checks after the restart", 60, |s| count(s, "checks") >= 2).await;
    assert_eq!(count(&s, "sent"), 0, "{s:#}");
    assert_eq!(email(&s)["recorded"].as_array().unwrap().len(), 1, "{s:#}");
    assert_eq!(
        email(&s)["pending"].as_array().unwrap().iter().filter(|p| p["pass_rise"] == recorded[0]["pass_rise"]).count(),
        0
    );
    assert_eq!(smtp.messages().len(), 1);
    assert!(outpost.stop().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_a_clear_error_and_nothing_is_sent() {
    let sc = scene(Span::minutes(10), Span::hours(8)).await;
    let smtp = SmtpServer::start(&sc.dir).await;
    let wrong = "Wr0ng-pa55word";
    let cfg = sc.config(smtp.port, wrong);

    // send-test-email: exit 1, says what is wrong, never shows the password.
    let path = sc.dir.join("test-email.toml");
    std::fs::write(&path, &cfg).unwrap();
    let out = std::process::Command::new(bin()).args(["send-test-email", "--config"]).arg(&path).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("authentication failed (check email.username/password)"), "{stderr}");
    assert!(!stderr.contains(wrong) && !stdout.contains(wrong));

    // With the right one it works (and is the only email the server ever accepts here).
    let good = sc.config(smtp.port, PASSWORD);
    std::fs::write(&path, &good).unwrap();
    let out = std::process::Command::new(bin()).args(["send-test-email", "--config"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("test email sent to alice@example.org, bob@example.org"));
    assert_eq!(smtp.messages().len(), 1);

    // The daemon with the wrong password: keeps running, reports the error, sends nothing.
    let outpost = Outpost::start(&sc.dir, &cfg).await;
    let s = outpost.wait_for("a failed attempt", 60, |s| count(s, "retrying") == 1).await;
    let err = email(&s)["last_error"].as_str().unwrap();
    assert!(err.contains("authentication failed"), "{err}");
    assert_eq!((count(&s, "sent"), count(&s, "retrying")), (0, 1), "{s:#}");
    assert_eq!(email(&s)["recorded"].as_array().unwrap().len(), 0, "{s:#}");
    let s = outpost.wait_for("the next check (the retry after 30 s)", 60, |s| count(s, "checks") >= 2).await;
    assert_eq!(count(&s, "sent"), 0);
    assert_eq!(smtp.messages().len(), 1, "only the test email");
    assert!(!outpost.log().contains(wrong), "the password reached the log");
    assert!(outpost.stop().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_down_until_the_pass_begins_is_recorded_as_missed() {
    let sc = scene_soon(Span::seconds(75)).await;
    // Nothing listens on this port: every attempt is refused.
    let port = free_port();
    // 127.0.0.2 (loopback too) names the server and nothing else: it must not be shown.
    let server = "127.0.0.2";
    let cfg = sc.config(port, PASSWORD).replace("smtp_host = \"127.0.0.1\"", &format!("smtp_host = \"{server}\""));
    let outpost = Outpost::start(&sc.dir, &cfg).await;
    let s = outpost.wait_for("a refused attempt", 30, |s| count(s, "failures") >= 1).await;
    assert!(email(&s)["last_error"].as_str().unwrap().contains("connection refused to <smtp server>"), "{s:#}");
    assert!(outpost.log().contains(server), "the log (root only) names the server it could not reach");
    let s = outpost
        .wait_for("the missed record", 150, |s| {
            count(s, "missed") == 1 && email(s)["recorded"].as_array().is_some_and(|r| r.len() == 1)
        })
        .await;
    assert!(Utc::now() >= sc.pass.visible_from.unwrap());
    let recorded = email(&s)["recorded"].as_array().unwrap();
    assert_eq!(recorded.len(), 1, "{s:#}");
    assert_eq!(recorded[0]["outcome"], "missed");
    let detail = recorded[0]["detail"].as_str().unwrap();
    assert!(detail.contains("connection refused"), "{s:#}");
    assert!(
        !detail.contains(server) && !detail.contains(&port.to_string()),
        "the stored record names the server: {detail}"
    );
    for path in ["/api/status", "/status", "/metrics", "/healthz"] {
        let (_, body) = outpost.get(path).await;
        assert!(!body.to_string().contains(server), "{path} names the SMTP server: {body}");
    }
    assert_eq!(count(&s, "sent"), 0);
    assert!(outpost.stop().await.success());
}

/// The recorded pass emails (from /api/status), as (rise, outcome).
fn recorded_rises(s: &Value) -> Vec<(DateTime<Utc>, String)> {
    email(s)["recorded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["pass_rise"].as_str().unwrap().parse().unwrap(), r["outcome"].as_str().unwrap().to_owned()))
        .collect()
}

/// The predicted rise of the visible pass nearest `near`, for `tle` seen from `observer`.
fn rise_near(tle: &outpost::domain::Tle, observer: Observer, near: DateTime<Utc>) -> DateTime<Utc> {
    let q = PassQuery {
        observer,
        from: near - Span::hours(1),
        hours: 2.0,
        options: PassOptions::default(),
        all: false,
        max_magnitude: None,
        brightest_first: false,
    };
    let passes = q.run(tle).unwrap();
    passes.iter().filter(|p| p.visible).min_by_key(|p| (p.rise.time - near).abs()).unwrap().rise.time
}

/// Waits for `n` more completed alert checks than `s` shows.
async fn more_checks(outpost: &Outpost, s: &Value, n: u64) -> Value {
    let from = count(s, "checks");
    outpost.wait_for("more alert checks", 60, |s| count(s, "checks") >= from + n).await
}

/// A newer TLE arrives inside the lead window (the refresh schedule comes due 20 s after start),
/// moving the prediction by seconds; then a restart: the SMTP server receives one email.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tle_changing_inside_the_lead_window_and_a_restart_still_send_one_email() {
    let sc = scene(Span::minutes(10), Span::hours(8)).await;
    // CelesTrak's next TLE: epoch 30 s later (each new one moves predictions by seconds).
    let newer_text = tle_at(sc.tle.epoch + Span::seconds(30));
    let newer = outpost::sources::tle_parse::parse_tle(newer_text.as_bytes()).unwrap();
    sc.fx.script("/tle", vec![Reply::ok(newer_text)]);
    // The store already has the older TLE, fetched 2 h - 20 s ago (tle_refresh_h = 2).
    let older = sc.tle.clone();
    let asked_s = (Utc::now() - Span::hours(2) + Span::seconds(20)).timestamp() as u64;
    crate::upstreams::write_store(&sc.dir.join("store"), move |w| {
        w.append(outpost::domain::Record::Tle(older));
        w.set_mark(outpost::sources::tle::LAST_ATTEMPT_MARK, asked_s);
    })
    .await;
    let smtp = SmtpServer::start(&sc.dir).await;
    let cfg = sc.config(smtp.port, PASSWORD);
    let outpost = Outpost::start(&sc.dir, &cfg).await;
    let s = outpost
        .wait_for("the pass email from the older TLE", 60, |s| count(s, "sent") == 1 && !recorded_rises(s).is_empty())
        .await;
    assert!(sc.fx.requests_to("/tle").is_empty(), "the email went out before the newer TLE was asked for");
    let (rise, outcome) = recorded_rises(&s)[0].clone();
    assert_eq!(outcome, "sent");
    let moved = rise_near(&newer, sc.observer, rise);
    assert!((moved - rise).abs() >= Span::seconds(5), "the newer TLE moves the rise: {rise} -> {moved}");

    let s = outpost.wait_for("the newer TLE", 60, |s| stored(s, "iss.tle") == 2).await;
    let s = more_checks(&outpost, &s, 2).await;
    assert_eq!((count(&s, "sent"), count(&s, "failures")), (1, 0), "{s:#}");
    assert_eq!(recorded_rises(&s).len(), 1, "{s:#}");
    let pending = email(&s)["pending"].as_array().unwrap();
    assert!(
        pending.iter().all(|p| p["pass_rise"].as_str().unwrap().parse::<DateTime<Utc>>().unwrap() != moved),
        "the moved pass is not pending again: {s:#}"
    );
    assert!(outpost.stop().await.success());

    // A restart: only the log knows about the email; the newer TLE predicts the moved rise.
    let outpost = Outpost::start(&sc.dir, &cfg).await;
    let s = outpost.wait_for("two checks after the restart", 60, |s| count(s, "checks") >= 2).await;
    assert_eq!(count(&s, "sent"), 0, "{s:#}");
    assert_eq!(recorded_rises(&s).len(), 1, "{s:#}");
    assert_eq!(sc.fx.requests_to("/tle").len(), 1, "the restart does not ask for a TLE again");
    assert!(outpost.stop().await.success());
    assert_eq!(smtp.messages().len(), 1, "one pass, one email");
}

/// The configured location first, then a GPS fix 3 km away (the pass's predicted rise moves);
/// and again on a restart: the SMTP server receives one email.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_switch_from_the_configured_location_to_the_gps_fix_sends_one_email() {
    let sc = scene(Span::minutes(10), Span::hours(8)).await;
    let smtp = SmtpServer::start(&sc.dir).await;
    let gpsd_port = free_port();
    let cfg = sc.config_with(smtp.port, PASSWORD, &format!("gpsd = \"127.0.0.1:{gpsd_port}\""));
    let outpost = Outpost::start(&sc.dir, &cfg).await;
    // gpsd is not up yet: the email goes out for the configured location.
    let s = outpost
        .wait_for("the pass email for the configured location", 60, |s| {
            count(s, "sent") == 1 && !recorded_rises(s).is_empty()
        })
        .await;
    assert_eq!(s["location"]["current"]["source"], "config", "{s:#}");
    let (rise, _) = recorded_rises(&s)[0].clone();

    // gpsd comes up with a fix a few km away (20 m high, as gpsd.rs's receiver reports), where
    // the predicted rise (whole seconds) differs; the alerts follow it.
    let (fix, moved) = [(0.02, 0.03), (-0.03, 0.02), (0.04, -0.03), (-0.02, -0.05), (0.05, 0.05)]
        .into_iter()
        .map(|(dlat, dlon)| (sc.observer.latitude + dlat, sc.observer.longitude + dlon))
        .map(|fix| {
            let observer = Observer { latitude: fix.0, longitude: fix.1, altitude_m: 20.0 };
            (fix, rise_near(&sc.tle, observer, rise))
        })
        .find(|(_, moved)| *moved != rise)
        .expect("a fix a few km away moves the predicted rise");
    let gps = crate::gpsd::GpsFake::start(&sc.dir, "fix", &[fix; 4], gpsd_port).await;
    let s = outpost.wait_for("the GPS location", 60, |s| s["location"]["current"]["source"] == "gps").await;
    assert_ne!(moved, rise);
    let s = more_checks(&outpost, &s, 2).await;
    assert_eq!((count(&s, "sent"), count(&s, "failures")), (1, 0), "{s:#}");
    assert_eq!(recorded_rises(&s).len(), 1, "{s:#}");
    assert!(outpost.stop().await.success());

    // On a restart the same switch happens within seconds (a location change wakes the check).
    let outpost = Outpost::start(&sc.dir, &cfg).await;
    let s = outpost
        .wait_for("the GPS location again and two checks", 60, |s| {
            s["location"]["current"]["source"] == "gps" && count(s, "checks") >= 2
        })
        .await;
    assert_eq!(count(&s, "sent"), 0, "{s:#}");
    assert_eq!(recorded_rises(&s).len(), 1, "{s:#}");
    assert!(outpost.stop().await.success());
    gps.stop().await;
    assert_eq!(smtp.messages().len(), 1, "one pass, one email");
}

/// `email.push`: the pass alert goes out by email and by push (ntfy headers, Bearer token from
/// the environment), once each, also after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_alert_goes_by_email_and_by_push_once_each() {
    let sc = scene(Span::minutes(10), Span::hours(8)).await;
    let smtp = SmtpServer::start(&sc.dir).await;
    let (url, push) = crate::danger_alerts::receiver(vec![200]).await;
    let cfg = format!("{}push = true\n[push]\nurl = \"{url}\"\n", sc.config(smtp.port, PASSWORD));
    let token = std::path::Path::new("tk_pass_7a6b5c");
    let env = [("OUTPOST_PUSH_TOKEN", token)];
    let outpost = Outpost::start_env(&sc.dir, &cfg, &[bin()], &env).await;
    let s = outpost
        .wait_for("the pass alert by email and by push, each recorded", 60, |s| {
            // `sent` counts at once; `recorded` is read back from the log at the end of a check.
            count(s, "sent") == 1
                && email(s)["recorded"].as_array().is_some_and(|r| r.len() == 1)
                && s["pass_push"]["sent"] == 1
                && s["pass_push"]["recorded"].as_array().is_some_and(|r| r.len() == 1)
        })
        .await;
    assert_eq!(s["pass_push"]["recorded"][0]["channel"], "push", "{s:#}");
    assert_eq!(email(&s)["recorded"].as_array().unwrap().len(), 1, "{s:#}");
    let got = push.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("authorization"), Some("Bearer tk_pass_7a6b5c"));
    assert_eq!(got[0].header("click"), Some(MAP_URL));
    assert_eq!(got[0].header("tags"), Some("satellite"));
    assert!(got[0].body.contains("Appears:"), "{}", got[0].body);
    assert!(!outpost.log().contains("tk_pass_7a6b5c"));
    assert!(outpost.stop().await.success());
    // A restart: both records hold.
    let outpost = Outpost::start_env(&sc.dir, &cfg, &[bin()], &env).await;
    let s = outpost
        .wait_for("two checks of each", 60, |s| count(s, "checks") >= 2 && s["pass_push"]["checks"].as_u64() >= Some(2))
        .await;
    assert_eq!((count(&s, "sent"), s["pass_push"]["sent"].as_u64()), (0, Some(0)), "{s:#}");
    assert_eq!(push.got.lock().unwrap().len(), 1);
    assert_eq!(smtp.messages().len(), 1);
    assert!(outpost.stop().await.success());
}
