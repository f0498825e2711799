//! A TLE too old for the window (or a clock before its epoch) is said on every surface, with its
//! epoch and age, instead of an empty list of passes: `outpost passes` (from a file and through
//! the running appliance), `/api/passes`, `/api/status` and `/status`. MQTT's `next_pass` is in
//! tests/it/mqtt.rs, the map in tests/it/browser.rs, the wrong clock in tests/it/drills_clock.rs.

use crate::helpers::*;
use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use std::process::Command;

/// The recorded TLE's epoch (tests/fixtures/passes/iss-2023-09-18.tle, day 261.44473810).
const EPOCH: &str = "2023-09-18 10:40 UTC";
/// 20 days after the epoch (20.1 days, to a tenth): too old.
const TWENTY_DAYS_ON: &str = "2023-10-08T12:00:00Z";
/// 13 days after the epoch: still usable.
const THIRTEEN_DAYS_ON: &str = "2023-10-01T10:00:00Z";
const OSLO: [&str; 4] = ["--lat", "59.9139", "--lon", "10.7522"];

fn tle_path() -> String {
    format!("{}/tests/fixtures/passes/iss-2023-09-18.tle", env!("CARGO_MANIFEST_DIR"))
}

fn epoch() -> DateTime<Utc> {
    outpost::sources::tle_parse::parse_tle(&fixture("passes/iss-2023-09-18.tle")).unwrap().epoch
}

fn passes_cli(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(bin());
    cmd.arg("passes").args(args).env("TZ", "Europe/Oslo");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn from_file(extra: &[&str]) -> (i32, String, String) {
    passes_cli(&[&["--tle", &tle_path()][..], &OSLO, extra].concat(), &[])
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str().unwrap_or_else(|| panic!("not a time: {v}")).parse().unwrap()
}

/// Every pass carries the mark of the TLE 20.1 days old.
fn assert_marked(passes: &[Value]) {
    assert!(!passes.is_empty(), "passes are predicted anyway");
    for p in passes {
        assert_eq!(p["old_tle"], true, "{p}");
        assert_eq!(p["tle_age_days"], 20.1, "{p}");
        assert!((time(&p["tle_epoch"]) - epoch()).num_milliseconds().abs() <= 1, "{p}");
        assert!(p["rise"]["time"].is_string() && p["visible"].is_boolean(), "still a pass: {p}");
    }
}

#[test]
fn the_cli_refuses_an_old_tle_and_predicts_from_it_marked_when_allowed() {
    let (code, out, err) = from_file(&["--from", TWENTY_DAYS_ON, "--all"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.is_empty(), "no empty list, no table: {out}");
    assert!(err.contains("20.1 days old") && err.contains(EPOCH), "names the age and the epoch: {err}");
    assert!(err.contains("at most 14 days") && err.contains("--allow-old-tle"), "{err}");

    // Allowed: the JSON is still an array of passes, each marked; stderr warns.
    let (code, out, err) = from_file(&["--from", TWENTY_DAYS_ON, "--all", "--json", "--allow-old-tle"]);
    assert_eq!(code, 0, "{err}");
    let passes: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_marked(&passes);
    assert!(err.contains("warning") && err.contains("20.1 days old"), "{err}");
    // The table too, with the warning on stderr only.
    let (code, table, err) = from_file(&["--from", TWENTY_DAYS_ON, "--all", "--allow-old-tle"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(table.lines().count(), passes.len(), "{table}");
    assert!(err.contains("warning") && err.contains(EPOCH), "{err}");

    // 13 days old: predicted, unmarked, no warning.
    let (code, out, err) = from_file(&["--from", THIRTEEN_DAYS_ON, "--all", "--json"]);
    assert_eq!(code, 0, "{err}");
    let passes: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert!(!passes.is_empty() && passes.iter().all(|p| p.get("old_tle").is_none()), "{out}");
    assert!(!err.contains("warning"), "{err}");

    // A window more than a day before the epoch: the clock (or the time asked for) is wrong.
    let (code, _, err) = from_file(&["--from", "2023-09-10T00:00:00Z"]);
    assert_eq!(code, 1);
    assert!(err.contains("the clock is wrong") && err.contains(EPOCH), "{err}");
}

#[tokio::test]
async fn an_appliance_with_an_old_tle_says_so_on_the_api_the_status_and_through_the_cli() {
    let fx = FixtureServer::start().await;
    fx.script("/tle", vec![Reply::ok(fixture("passes/iss-2023-09-18.tle"))]);
    let dir = tempfile::tempdir().unwrap();
    let location = format!("[location]\nlatitude = {}\nlongitude = {}\n", OSLO[1], OSLO[3]);
    let app = Outpost::start(dir.path(), &config(&fx, dir.path(), &location)).await;
    let s = app.wait_for("the TLE", 30, |s| stored(s, "iss.tle") == 1).await;

    // /api/passes now: 503, with the epoch and the age (about 1,170 days at the time of writing).
    let (code, body) = app.get("/api/passes").await;
    assert_eq!(code, 503, "{body}");
    let age = (Utc::now() - epoch()).num_seconds() as f64 / 86_400.0;
    assert!((body["tle_age_days"].as_f64().unwrap() - age).abs() <= 0.1, "{body} vs {age:.1}");
    assert!((time(&body["tle_epoch"]) - epoch()).num_milliseconds().abs() <= 1, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains(EPOCH) && error.contains("days old"), "{body}");
    // Near the epoch: 20 days on still refused, 13 days on predicted, unmarked.
    let (code, body) = app.get(&format!("/api/passes?from={TWENTY_DAYS_ON}&all=true")).await;
    assert_eq!((code, body["tle_age_days"].as_f64()), (503, Some(20.1)), "{body}");
    let (code, body) = app.get(&format!("/api/passes?from={THIRTEEN_DAYS_ON}&all=true")).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.as_array().is_some_and(|a| !a.is_empty() && a.iter().all(|p| p.get("old_tle").is_none())), "{body}");
    // allow_old_tle: predicted anyway, each pass marked (with its path when asked for).
    let (code, body) =
        app.get(&format!("/api/passes?from={TWENTY_DAYS_ON}&all=true&allow_old_tle=true&path=true")).await;
    assert_eq!(code, 200, "{body}");
    let marked = body.as_array().unwrap();
    assert_marked(marked);
    assert!(marked.iter().all(|p| p["path"].as_array().is_some_and(|a| a.len() > 2)));
    let (code, body) = app.get("/api/passes?allow_old_tle=perhaps").await;
    assert_eq!(code, 400, "{body}");

    // The status: an error, with the epoch and the age.
    let tle = &s["tle"];
    assert_eq!(tle["level"], "error", "{tle}");
    assert!((tle["age_days"].as_f64().unwrap() - age).abs() <= 0.1, "{tle}");
    assert!(tle["message"].as_str().unwrap().contains("no passes are predicted"), "{tle}");
    let (code, page) = app.get("/status").await;
    let page = page.as_str().unwrap().to_owned();
    assert_eq!(code, 200);
    assert!(page.contains(r#"<span class="health bad">unusable</span>"#), "{page}");
    assert!(page.contains("tle-message") && page.contains(EPOCH), "{page}");

    // `outpost passes` through the appliance (it holds the store): the same error as from the
    // file, and with --allow-old-tle the same passes, marked.
    let cfg = app.config_path.to_str().unwrap().to_owned();
    let addr = app.addr.to_string();
    let env = [("OUTPOST_WEB_LISTEN", addr.as_str())];
    let daemon = |extra: &[&str]| passes_cli(&[&["--config", cfg.as_str()][..], extra].concat(), &env);
    let (code, out, err) = daemon(&["--from", TWENTY_DAYS_ON, "--all"]);
    assert_eq!(code, 1, "{out}{err}");
    let (_, _, local) = from_file(&["--from", TWENTY_DAYS_ON, "--all"]);
    assert_eq!(err, local, "the appliance's 503 is the same error");
    let (code, _, err) = daemon(&[]);
    assert_eq!(code, 1);
    assert!(err.contains("days old") && err.contains(EPOCH) && err.contains("--allow-old-tle"), "{err}");
    let (code, out, err) = daemon(&["--from", TWENTY_DAYS_ON, "--all", "--json", "--allow-old-tle"]);
    assert_eq!(code, 0, "{err}");
    let through: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_marked(&through);
    let (_, out, _) = from_file(&["--from", TWENTY_DAYS_ON, "--all", "--json", "--allow-old-tle"]);
    let local: Vec<Value> = serde_json::from_str(&out).unwrap();
    let rises = |ps: &[Value]| ps.iter().map(|p| time(&p["rise"]["time"]).timestamp()).collect::<Vec<_>>();
    assert_eq!(rises(&through), rises(&local));
    assert!(err.contains("warning") && err.contains("20.1 days old"), "{err}");
    assert!(app.stop().await.success());
}

#[tokio::test]
async fn the_status_warns_about_a_tle_older_than_3_days_and_passes_are_still_predicted() {
    let fx = FixtureServer::start().await;
    fx.script("/tle", vec![Reply::ok(crate::email::tle_at(Utc::now() - Duration::days(4)))]);
    let dir = tempfile::tempdir().unwrap();
    let app =
        Outpost::start(dir.path(), &config(&fx, dir.path(), "[location]\nlatitude = 59.9\nlongitude = 10.7\n")).await;
    let s = app.wait_for("the TLE", 30, |s| stored(s, "iss.tle") == 1).await;
    assert_eq!(s["tle"]["level"], "warn", "{}", s["tle"]);
    assert_eq!(s["tle"]["age_days"], 4.0, "{}", s["tle"]);
    assert!(s["tle"]["message"].as_str().unwrap().contains("TLE source failing"), "{}", s["tle"]);
    let (_, page) = app.get("/status").await;
    let page = page.as_str().unwrap().to_owned();
    assert!(page.contains(r#"<span class="health warn">old</span>"#) && page.contains("4.0 days"), "{page}");
    let (code, body) = app.get("/api/passes?all=true").await;
    assert_eq!(code, 200, "{body}");
    assert!(body.as_array().unwrap().iter().all(|p| p.get("old_tle").is_none()));
    assert!(app.stop().await.success());
}
