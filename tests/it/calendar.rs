//! `GET /api/passes.ics` from the real binary: read back by an independent iCalendar parser (the
//! `icalendar` package, tests/tools/ics_read.py), event by event against `/api/passes`; the raw
//! text's CRLF and 75-octet lines; the UIDs across two fetches and across a newer TLE; behind the
//! password, given in the URL as calendar apps do; 503 with a reason when it cannot predict.

use crate::helpers::*;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

/// Both TLEs predict this window: 5.8 days after the older one's epoch, 2 h after the newer's.
const FROM: &str = "2023-09-24T06:00:00Z";
/// Vienna: 17 visible passes in those 10 days (Oslo, at the end of its season, has 6).
const VIENNA: &str = "[location]\nlatitude = 48.2082\nlongitude = 16.3738\naltitude_m = 190.0\n";
const PASSWORD: &str = "calendar-secret";

fn python() -> String {
    std::env::var("OUTPOST_PYTHON").unwrap_or_else(|_| "/root/.cache/outpost/venv/bin/python".into())
}

/// The calendar as icalendar reads it, or why it cannot be read here (`Err`: skip).
fn parse_ics(dir: &Path, text: &str) -> Result<Value, String> {
    let file = dir.join("passes.ics");
    std::fs::write(&file, text).unwrap();
    let script = format!("{}/tests/tools/ics_read.py", env!("CARGO_MANIFEST_DIR"));
    let out = match std::process::Command::new(python()).arg(script).arg(&file).output() {
        Ok(out) => out,
        Err(e) => return Err(format!("{} cannot run: {e}", python())),
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(3) {
        return Err(stderr.trim().to_owned());
    }
    assert!(out.status.success(), "icalendar refuses the calendar: {stderr}\n{text}");
    Ok(serde_json::from_slice(&out.stdout).unwrap())
}

fn tle(name: &str) -> outpost::domain::Tle {
    outpost::sources::tle_parse::parse_tle(&fixture(name)).unwrap()
}

/// A store holding `tles`, with the TLE source's last attempt marked now: no TLE is fetched.
async fn seed(store: &Path, tles: Vec<outpost::domain::Tle>) {
    let now = chrono::Utc::now().timestamp() as u64;
    crate::upstreams::write_store(store, move |w| {
        for t in tles {
            w.append(outpost::domain::Record::Tle(t));
        }
        w.set_mark(outpost::sources::tle::LAST_ATTEMPT_MARK, now);
    })
    .await;
}

fn with_password(fx: &FixtureServer, store: &Path) -> String {
    config(fx, store, VIENNA).replace("[web]\n", &format!("[web]\nusername = \"ada\"\npassword = \"{PASSWORD}\"\n"))
}

/// GET as a calendar app does, the credentials in the URL: status, content type, body.
async fn fetch(app: &Outpost, path: &str) -> (u16, String, String) {
    let r = reqwest::get(format!("http://ada:{PASSWORD}@{}{path}", app.addr)).await.unwrap();
    let status = r.status().as_u16();
    let kind = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (status, kind, r.text().await.unwrap())
}

/// The raw text: CRLF only, no physical line over 75 octets, folded lines continued by a space.
fn assert_wire_format(text: &str) {
    assert!(text.starts_with("BEGIN:VCALENDAR\r\n") && text.ends_with("END:VCALENDAR\r\n"), "{text}");
    assert!(!text.replace("\r\n", "").contains(['\n', '\r']), "a bare CR or LF:\n{text}");
    for line in text.split("\r\n") {
        assert!(line.len() <= 75, "{} octets: {line:?}", line.len());
    }
    assert!(text.contains("\r\n "), "the descriptions are long enough to be folded:\n{text}");
}

/// UID -> DTSTART of the parsed calendar's events.
fn starts_by_uid(cal: &Value) -> HashMap<String, String> {
    let events = cal["events"].as_array().unwrap();
    let map: HashMap<String, String> = events
        .iter()
        .map(|e| (e["uid"].as_str().unwrap().to_owned(), e["dtstart"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(map.len(), events.len(), "UIDs are unique: {cal:#}");
    map
}

fn secs(s: &str) -> i64 {
    s.parse::<chrono::DateTime<chrono::Utc>>().unwrap().timestamp()
}

#[tokio::test]
async fn the_calendar_parses_matches_the_passes_and_keeps_its_uids_across_a_newer_tle() {
    let fx = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    seed(&store, vec![tle("passes/iss-2023-09-18.tle")]).await;
    let cfg = with_password(&fx, &store);
    let app = Outpost::start(dir.path(), &cfg).await;
    let path = format!("/api/passes.ics?from={FROM}");

    // The password guards it like every /api/ path.
    let anonymous = reqwest::get(format!("http://{}{path}", app.addr)).await.unwrap();
    assert_eq!(anonymous.status(), 401);

    let (code, kind, first) = fetch(&app, &path).await;
    assert_eq!(code, 200, "{first}");
    assert_eq!(kind, "text/calendar; charset=utf-8");
    assert_wire_format(&first);
    let cal = match parse_ics(dir.path(), &first) {
        Ok(cal) => cal,
        Err(why) => {
            skip!("the iCalendar parser is not available: {why}");
            return;
        }
    };
    for (name, want) in
        [("VERSION", "2.0"), ("CALSCALE", "GREGORIAN"), ("REFRESH-INTERVAL", "PT6H"), ("X-PUBLISHED-TTL", "PT6H")]
    {
        assert_eq!(cal["calendar"][name], want, "{name}: {cal:#}");
    }
    assert!(cal["calendar"]["PRODID"].as_str().unwrap().contains("Outpost"));
    assert!(cal["calendar"]["X-WR-CALNAME"].as_str().unwrap().contains("ISS passes"), "{cal:#}");
    assert!(cal["calendar"]["X-WR-CALDESC"].as_str().unwrap().contains("TLE of 2023-09-18 10:40 UTC"), "{cal:#}");

    // Event by event, the visible passes of /api/passes for the same 10 days.
    let r = reqwest::get(format!("http://ada:{PASSWORD}@{}/api/passes?from={FROM}&hours=240", app.addr)).await.unwrap();
    assert_eq!(r.status(), 200);
    let passes: Vec<Value> = r.json().await.unwrap();
    let events = cal["events"].as_array().unwrap();
    assert!(events.len() >= 10, "{} events in 10 days over Oslo", events.len());
    assert_eq!(events.len(), passes.len(), "{cal:#}");
    for (e, p) in events.iter().zip(&passes) {
        assert_eq!(e["dtstart"], p["visible_from"], "{e} vs {p}");
        if e["dtend"].is_null() {
            assert_eq!(p["visible_from"], p["visible_to"], "no DTEND only for a window of no length: {p}");
        } else {
            assert_eq!(e["dtend"], p["visible_to"], "{e} vs {p}");
        }
        let summary = e["summary"].as_str().unwrap();
        let magnitude = p["magnitude"].as_f64().unwrap();
        assert!(summary.starts_with(&format!("ISS mag {magnitude:.1}, ")), "{summary} for {p}");
        assert!(summary.contains(" → ") && summary.contains("max "), "{summary}");
        let description = e["description"].as_str().unwrap();
        for what in ["Rise: ", "Culmination: ", "Set: ", "Appears: ", "Vanishes: "] {
            assert!(description.contains(what), "no {what}in {description}");
        }
        assert!(e["uid"].as_str().unwrap().starts_with("25544-r") && e["uid"].as_str().unwrap().ends_with("@outpost"));
        assert_eq!(e["transp"], "TRANSPARENT");
        assert!(e["dtstamp"].is_string());
    }
    let uids = starts_by_uid(&cal);

    // A second fetch: the same events under the same UIDs.
    let (_, _, second) = fetch(&app, &path).await;
    assert_eq!(starts_by_uid(&parse_ics(dir.path(), &second).unwrap()), uids);
    assert!(app.stop().await.success());

    // A newer TLE (CelesTrak's of six days later) is stored: the passes move, their UIDs stay.
    seed(&store, vec![tle("passes/iss-2023-09-24.tle")]).await;
    let app = Outpost::start(dir.path(), &cfg).await;
    let (code, _, newer) = fetch(&app, &path).await;
    assert_eq!(code, 200, "{newer}");
    assert_wire_format(&newer);
    let newer = parse_ics(dir.path(), &newer).unwrap();
    assert!(newer["calendar"]["X-WR-CALDESC"].as_str().unwrap().contains("TLE of 2023-09-24 04:24 UTC"), "{newer:#}");
    let moved = starts_by_uid(&newer);
    let mut same = 0;
    let mut largest_move = 0;
    for (uid, start) in &moved {
        // The same pass by the older TLE: the one starting within 5 minutes (passes are 90 apart).
        let Some((old_uid, old_start)) = uids.iter().find(|(_, s)| (secs(s) - secs(start)).abs() < 300) else {
            continue;
        };
        assert_eq!(uid, old_uid, "the pass starting at {start} (newer TLE) / {old_start} (older TLE)");
        largest_move = largest_move.max((secs(old_start) - secs(start)).abs());
        same += 1;
    }
    assert!(same + 2 >= uids.len().max(moved.len()), "{same} shared passes of {} and {}", uids.len(), moved.len());
    assert!(largest_move > 0, "the newer TLE moves the passes");
    println!("{same} passes kept their UIDs across a TLE six days newer; the largest move {largest_move} s");
    assert!(app.stop().await.success());
}

#[tokio::test]
async fn without_a_location_or_a_tle_it_answers_503_with_a_reason() {
    let fx = FixtureServer::start().await;
    fx.script("/tle", vec![Reply::status(500, "down")]);
    let dir = tempfile::tempdir().unwrap();
    let app = Outpost::start(dir.path(), &config(&fx, dir.path(), "")).await;
    let r = reqwest::get(format!("http://{}/api/passes.ics", app.addr)).await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(r.headers()["retry-after"], "3600");
    assert!(r.text().await.unwrap().contains("location is unknown"));
    assert!(app.stop().await.success());

    let dir = tempfile::tempdir().unwrap();
    let app = Outpost::start(dir.path(), &config(&fx, dir.path(), VIENNA)).await;
    let (code, body) = app.get("/api/passes.ics").await;
    assert_eq!(code, 503, "{body}");
    assert!(body.as_str().unwrap().contains("no TLE"), "{body}");
    assert!(app.stop().await.success());

    // A TLE far older than the window: refused by the TLE rule of every surface, not fiction.
    let dir = tempfile::tempdir().unwrap();
    seed(&dir.path().join("store"), vec![tle("passes/iss-2023-09-18.tle")]).await;
    let app = Outpost::start(dir.path(), &config(&fx, &dir.path().join("store"), VIENNA)).await;
    let (code, body) = app.get("/api/passes.ics?from=2023-11-01").await;
    assert_eq!(code, 503, "{body}");
    let body = body.as_str().unwrap();
    assert!(body.contains("43.6 days old") && body.contains("epoch 2023-09-18 10:40 UTC"), "{body}");
    let (code, body) = app.get("/api/passes.ics?when=now").await;
    assert_eq!(code, 400, "{body}");
    assert!(app.stop().await.success());
}
