//! `outpost passes` and `GET /api/passes` against the Skyfield reference passes.

use crate::helpers::*;
use serde_json::Value;
use std::process::Command;

const FROM: &str = "2023-09-18T12:00:00Z";

fn reference(name: &str) -> Vec<Value> {
    serde_json::from_slice(&fixture(&format!("passes/{name}-2023-09-18-72h.json"))).unwrap()
}

fn tle_path() -> String {
    format!("{}/tests/fixtures/passes/iss-2023-09-18.tle", env!("CARGO_MANIFEST_DIR"))
}

fn secs(v: &Value) -> i64 {
    v.as_str().unwrap().parse::<chrono::DateTime<chrono::Utc>>().unwrap().timestamp()
}

/// Same passes, event times within 2 s, angles within 0.2 degrees, same visibility.
fn assert_matches_reference(got: &[Value], want: &[Value]) {
    assert_eq!(got.len(), want.len(), "pass count");
    for (g, w) in got.iter().zip(want) {
        for event in ["rise", "culmination", "set"] {
            assert!((secs(&g[event]["time"]) - secs(&w[event]["time"])).abs() <= 2, "{event}: {g} vs {w}");
            for angle in ["azimuth_deg", "elevation_deg"] {
                let d = g[event][angle].as_f64().unwrap() - w[event][angle].as_f64().unwrap();
                assert!(d.abs() <= 0.2 || (d.abs() - 360.0).abs() <= 0.2, "{event} {angle}: {g} vs {w}");
            }
        }
        assert_eq!(g["visible"], w["visible"], "{g} vs {w}");
    }
}

fn passes_cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin()).arg("passes").args(args).env("TZ", "Europe/Oslo").output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn the_cli_lists_the_reference_passes_from_a_tle_file() {
    let oslo = ["--tle", &tle_path(), "--lat", "59.9139", "--lon", "10.7522", "--alt-m", "20", "--from", FROM];
    let (code, out, err) = passes_cli(&[&oslo[..], &["--hours", "72", "--all", "--json"]].concat());
    assert_eq!(code, 0, "{err}");
    let got: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_matches_reference(&got, &reference("oslo"));

    // Without --all only visible passes, each with its window.
    let (_, out, _) = passes_cli(&[&oslo[..], &["--hours", "72", "--json"]].concat());
    let visible: Vec<Value> = serde_json::from_str(&out).unwrap();
    let want: Vec<Value> = reference("oslo").into_iter().filter(|p| p["visible"] == true).collect();
    assert_matches_reference(&visible, &want);
    for (g, w) in visible.iter().zip(&want) {
        assert!((secs(&g["visible_from"]) - secs(&w["visible_from"])).abs() <= 10);
        assert!((secs(&g["visible_to"]) - secs(&w["visible_to"])).abs() <= 10);
    }

    // The table: local time, compass directions, duration.
    let (code, table, err) = passes_cli(&[&oslo[..], &["--hours", "72"]].concat());
    assert_eq!(code, 0, "{err}");
    assert!(
        table.lines().next().unwrap().starts_with("Mon 18 Sep 21:38  SW 10° -> S 19° -> SE 10°  4 min 54 s"),
        "{table}"
    );

    let (code, out, _) =
        passes_cli(&["--tle", &tle_path(), "--lat", "69.6496", "--lon", "18.956", "--from", FROM, "--all", "--json"]);
    assert_eq!((code, serde_json::from_str::<Vec<Value>>(&out).unwrap().len()), (0, 0), "Tromsø: no pass reaches 10°");
}

#[test]
fn bad_cli_arguments_are_clear_errors() {
    let (code, _, err) = passes_cli(&["--tle", &tle_path(), "--lat", "59.9", "--from", FROM]);
    assert_ne!(code, 0);
    assert!(err.contains("--lat and --lon go together"), "{err}");
    let (code, _, err) = passes_cli(&["--tle", "/nonexistent.tle", "--lat", "1", "--lon", "2"]);
    assert_ne!(code, 0);
    assert!(err.contains("cannot read"), "{err}");
    let (code, _, err) = passes_cli(&["--tle", &tle_path(), "--lat", "95", "--lon", "2"]);
    assert_ne!(code, 0);
    assert!(err.contains("±90"), "{err}");
    for from in ["+262142-12-31T00:00:00Z", "-2026-01-01T00:00:00Z", "2101-01-01"] {
        let from = format!("--from={from}");
        let (code, _, err) = passes_cli(&["--tle", &tle_path(), "--lat", "1", "--lon", "2", &from]);
        assert_eq!(code, 2, "--from {from}: {err}");
        assert!(err.contains("--from"), "{err}");
    }
}

#[tokio::test]
async fn the_api_predicts_from_the_stored_tle_for_the_device_location() {
    let fx = FixtureServer::start().await;
    fx.script("/tle", vec![Reply::ok(fixture("passes/iss-2023-09-18.tle"))]);
    let dir = tempfile::tempdir().unwrap();
    let location = "[location]\nlatitude = -33.8688\nlongitude = 151.2093\naltitude_m = 40.0\n";
    let app = Outpost::start(dir.path(), &config(&fx, dir.path(), location)).await;
    app.wait_for("the TLE", 30, |s| stored(s, "iss.tle") == 1).await;
    let (code, got) = app.get(&format!("/api/passes?from={FROM}&hours=72&all=true")).await;
    assert_eq!(code, 200, "{got}");
    assert_matches_reference(got.as_array().unwrap(), &reference("sydney"));
    let (_, visible) = app.get(&format!("/api/passes?from={FROM}&hours=72")).await;
    assert!(visible.as_array().unwrap().iter().all(|p| p["visible"] == true));
    for bad in ["hours=-1", "hours=many", "all=maybe", "lat=10", "min_elevation=95", "from=yesterday", "frm=1"] {
        let (code, body) = app.get(&format!("/api/passes?{bad}")).await;
        assert_eq!(code, 400, "{bad}: {body}");
        assert!(body["error"].is_string());
    }
    assert!(app.stop().await.success());

    // No location and no TLE: 503 with a reason, not an error page.
    let dir = tempfile::tempdir().unwrap();
    let app = Outpost::start(dir.path(), &config(&fx, dir.path(), "")).await;
    let (code, body) = app.get("/api/passes").await;
    assert_eq!(code, 503, "{body}");
    assert!(body["error"].as_str().unwrap().contains("location"), "{body}");
    assert!(app.stop().await.success());
}
