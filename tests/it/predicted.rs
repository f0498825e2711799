//! `GET /api/iss/predicted` from the appliance's stored TLE against Skyfield's subpoint of the
//! same TLE (tests/tools/skyfield_track.py), and its refusals.

use crate::helpers::*;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::path::{Path, PathBuf};

const FROM: &str = "2023-09-18T12:00:00Z";

/// The test venv's Python, if it has Skyfield (`tests/tools/requirements.txt`).
fn skyfield_python() -> Result<PathBuf, String> {
    let python = std::env::var("OUTPOST_PYTHON").map(PathBuf::from).unwrap_or_else(|_| {
        PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/outpost/venv/bin/python")
    });
    let probe = std::process::Command::new(&python).args(["-c", "import skyfield"]).output();
    match probe {
        Ok(out) if out.status.success() => Ok(python),
        Ok(out) => {
            Err(format!("{} has no skyfield: {}", python.display(), String::from_utf8_lossy(&out.stderr).trim()))
        }
        Err(e) => Err(format!("{} does not run: {e}", python.display())),
    }
}

/// Skyfield's subpoints of the fixture TLE at `times`.
fn skyfield_track(python: &Path, times: &[&str]) -> Vec<Value> {
    use std::io::Write;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut child = std::process::Command::new(python)
        .arg(root.join("tests/tools/skyfield_track.py"))
        .arg(root.join("tests/fixtures/passes/iss-2023-09-18.tle"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(serde_json::to_string(times).unwrap().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "skyfield_track.py: {}", String::from_utf8_lossy(&out.stderr));
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    answer["points"].as_array().unwrap().clone()
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn the_predicted_track_matches_skyfield_within_a_km_over_one_orbit() {
    let python = match skyfield_python() {
        Ok(p) => p,
        Err(why) => return skip!("{why}"),
    };
    let fx = FixtureServer::start().await;
    fx.script("/tle", vec![Reply::ok(fixture("passes/iss-2023-09-18.tle"))]);
    let dir = tempfile::tempdir().unwrap();
    let app = Outpost::start(dir.path(), &config(&fx, dir.path(), "")).await;
    app.wait_for("the TLE", 30, |s| stored(s, "iss.tle") == 1).await;

    // One orbit (the default `to`) every 10 s.
    let (code, got) = app.get(&format!("/api/iss/predicted?from={FROM}&step_s=10")).await;
    assert_eq!(code, 200, "{got}");
    assert_eq!(got["tle_epoch"], "2023-09-18T10:40:25.371840Z", "{}", got["tle_epoch"]);
    assert_eq!((got["from"].as_str(), got["step_s"].as_u64()), (Some(FROM), Some(10)));
    let points = got["points"].as_array().unwrap();
    let span = time(&points.last().unwrap()["time"]) - time(&points[0]["time"]);
    assert_eq!(span.num_seconds(), 5576, "one revolution of 15.4938 rev/day");
    assert_eq!(points.len(), 559);

    let times: Vec<&str> = points.iter().map(|p| p["time"].as_str().unwrap()).collect();
    let reference = skyfield_track(&python, &times);
    assert_eq!(reference.len(), points.len());
    let (mut ground_max, mut height_max, mut worst) = (0.0f64, 0.0f64, (0.0f64, String::new()));
    for (p, r) in points.iter().zip(&reference) {
        assert_eq!(p["time"], r["time"]);
        let f = |v: &Value, k: &str| v[k].as_f64().unwrap();
        let ground =
            outpost::passes::great_circle_km(f(p, "latitude"), f(p, "longitude"), f(r, "latitude"), f(r, "longitude"));
        let height = (f(p, "altitude_km") - f(r, "altitude_km")).abs();
        ground_max = ground_max.max(ground);
        height_max = height_max.max(height);
        if ground + height > worst.0 {
            worst = (ground + height, format!("{p} vs Skyfield {r}"));
        }
    }
    println!(
        "predicted vs Skyfield over one orbit ({} points): ground up to {:.1} m, height up to {:.1} m, \
         worst sum {:.1} m at {}",
        points.len(),
        ground_max * 1000.0,
        height_max * 1000.0,
        worst.0 * 1000.0,
        worst.1
    );
    assert!(worst.0 <= 1.0, "more than 1 km from Skyfield: {}", worst.1);

    // A prediction is not an observation: nothing of it is in the stored track.
    let (_, track) = app.get(&format!("/api/iss/track?from={FROM}&to=2023-09-19")).await;
    assert_eq!(track["total"], 0, "{track}");
    assert_eq!(stored(&app.status().await, "iss.position"), 0);
    assert!(app.stop().await.success());
}

#[tokio::test]
async fn bad_windows_and_missing_or_stale_elements_are_clear_refusals() {
    let fx = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = Outpost::start(dir.path(), &config(&fx, dir.path(), "")).await;
    let (code, body) = app.get("/api/iss/predicted").await;
    assert_eq!(code, 503, "{body}");
    assert!(body["error"].as_str().unwrap().contains("no TLE has been collected yet"), "{body}");
    assert!(app.stop().await.success());

    // The fixture's TLE is years older than the clock: fine for its own days, nothing for now.
    fx.script("/tle", vec![Reply::ok(fixture("passes/iss-2023-09-18.tle"))]);
    let dir = tempfile::tempdir().unwrap();
    let app = Outpost::start(dir.path(), &config(&fx, dir.path(), "")).await;
    app.wait_for("the TLE", 30, |s| stored(s, "iss.tle") == 1).await;
    let (code, body) = app.get("/api/iss/predicted").await;
    assert_eq!(code, 503, "{body}");
    assert!(body["error"].as_str().unwrap().starts_with("no usable TLE"), "{body}");
    assert_eq!(body["tle_epoch"], "2023-09-18T10:40:25.371840Z");
    // Days to a tenth, as /api/passes says it.
    let age = (Utc::now() - time(&body["tle_epoch"])).num_seconds() as f64 / 86_400.0;
    let said = body["tle_age_days"].as_f64().unwrap();
    assert!((said - age).abs() <= 0.06, "{said} days, not {age:.2}: {body}");

    for (query, says) in [
        ("step_s=0", "step_s"),
        ("step_s=3601", "from 1 to 3600"),
        ("step_s=1.5", "step_s"),
        ("step_s=-30", "step_s"),
        ("step_s=99999999999999999999", "step_s"),
        ("from=yesterday", "from"),
        ("from=%2B262143-12-31", "from"),
        ("to=2101-01-01", "to"),
        ("from=2023-09-18T13:00:00Z&to=2023-09-18T12:00:00Z", "after to"),
        ("from=2023-09-18&to=2023-09-20T00:00:01Z", "at most 2 days"),
        ("from=2023-09-18T12:00:00Z&to=2023-09-18T18:00:00Z&step_s=1", "at most 20000"),
        ("frm=2023-09-18", "unknown parameter"),
    ] {
        let (code, body) = app.get(&format!("/api/iss/predicted?{query}")).await;
        assert_eq!(code, 400, "{query}: {body}");
        assert!(body["error"].as_str().unwrap().contains(says), "{query}: {body}");
    }
    // The bounds themselves are answered: two days hourly, 20,000 points a second apart.
    for (query, n) in [
        ("from=2023-09-18&to=2023-09-20T00:00:00Z&step_s=3600", 49),
        ("from=2023-09-18T12:00:00Z&to=2023-09-18T17:33:19Z&step_s=1", 20_000),
    ] {
        let (code, body) = app.get(&format!("/api/iss/predicted?{query}")).await;
        assert_eq!(code, 200, "{query}: {body}");
        assert_eq!(body["points"].as_array().unwrap().len(), n, "{query}");
    }
    assert!(app.stop().await.success());
}
