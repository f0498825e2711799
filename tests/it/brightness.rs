//! How bright: `magnitude` on every pass surface of the real binary — `outpost passes` (table,
//! `--json`, `--max-magnitude`, `--sort`, from a TLE file and from the running appliance) and
//! `GET /api/passes` (`max_magnitude`, `sort`, `path=true` per point, 400 for bad values) — on the
//! Skyfield reference week for Sydney (tests/fixtures/passes).

use crate::helpers::*;
use serde_json::Value;
use std::process::Command;

const FROM: &str = "2023-09-18T12:00:00Z";
const SYDNEY: [&str; 6] = ["--lat", "-33.8688", "--lon", "151.2093", "--alt-m", "40"];

fn tle_path() -> String {
    format!("{}/tests/fixtures/passes/iss-2023-09-18.tle", env!("CARGO_MANIFEST_DIR"))
}

fn passes_cli(args: &[&str]) -> (i32, String, String) {
    passes_cli_env(args, &[])
}

fn passes_cli_env(args: &[&str], envs: &[(&str, &str)]) -> (i32, String, String) {
    let mut command = Command::new(bin());
    command.arg("passes").args(args).env("TZ", "Australia/Sydney").envs(envs.iter().copied());
    let out = command.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn json_cli(extra: &[&str]) -> Vec<Value> {
    let tle = tle_path();
    let args = [&["--tle", tle.as_str(), "--from", FROM, "--hours", "72", "--json"][..], &SYDNEY, extra].concat();
    let (code, out, err) = passes_cli(&args);
    assert_eq!(code, 0, "{args:?}: {err}");
    serde_json::from_str(&out).unwrap()
}

fn magnitude(p: &Value) -> f64 {
    p["magnitude"].as_f64().unwrap_or_else(|| panic!("no magnitude: {p}"))
}

fn rises(passes: &[Value]) -> Vec<&str> {
    passes.iter().map(|p| p["rise"]["time"].as_str().unwrap()).collect()
}

/// What both surfaces must say for the Sydney week: three visible passes (the brightest -3.6, see
/// src/passes/predict/tests/magnitude.rs), every visible pass with a magnitude, the others `null`.
fn check_week(all: &[Value], visible: &[Value]) {
    assert!(all.len() > visible.len() && visible.len() == 3, "{} passes, {} visible", all.len(), visible.len());
    for p in all {
        if p["visible"] == true {
            assert!((-4.5..=1.0).contains(&magnitude(p)), "{p}");
        } else {
            assert!(p.get("magnitude").is_some_and(Value::is_null), "a pass that is not visible says null: {p}");
        }
    }
    let mags: Vec<f64> = visible.iter().map(magnitude).collect();
    assert_eq!(mags, [-2.1, -0.8, -3.6], "{visible:#?}");
}

/// `--max-magnitude` / `max_magnitude` keeps the passes at least that bright, in time order;
/// `--sort brightness` / `sort=brightness` puts the brightest first.
fn check_filter_and_sort(visible: &[Value], bright: &[Value], by_brightness: &[Value]) {
    let want: Vec<&Value> = visible.iter().filter(|p| magnitude(p) <= -2.0).collect();
    assert_eq!(rises(bright), want.iter().map(|p| p["rise"]["time"].as_str().unwrap()).collect::<Vec<_>>());
    assert_eq!(bright.len(), 2, "{bright:#?}");
    let mags: Vec<f64> = by_brightness.iter().map(magnitude).collect();
    assert_eq!(mags, [-3.6, -2.1, -0.8], "{by_brightness:#?}");
}

#[test]
fn the_cli_says_how_bright_filters_and_sorts() {
    let all = json_cli(&["--all"]);
    let visible = json_cli(&[]);
    check_week(&all, &visible);
    check_filter_and_sort(&visible, &json_cli(&["--max-magnitude", "-2"]), &json_cli(&["--sort", "brightness"]));
    // Both at once, and `--sort time` is the default order.
    assert_eq!(rises(&json_cli(&["--max-magnitude=-2", "--sort", "brightness"])).len(), 2);
    assert_eq!(rises(&json_cli(&["--sort", "time"])), rises(&visible));
    // Nothing is that bright.
    assert!(json_cli(&["--max-magnitude", "-5"]).is_empty());

    // The table ends each visible pass with its magnitude, as the JSON says.
    let tle = tle_path();
    let (code, table, err) =
        passes_cli(&[&["--tle", tle.as_str(), "--from", FROM, "--hours", "72"][..], &SYDNEY].concat());
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = table.lines().filter(|l| l.contains("visible")).collect();
    assert_eq!(lines.len(), 3, "{table}");
    for (line, p) in lines.iter().zip(&visible) {
        assert!(line.ends_with(&format!("  mag {:.1}", magnitude(p))), "{line} / {p}");
    }
}

#[test]
fn bad_brightness_arguments_are_clear_errors() {
    let tle = tle_path();
    let base = [&["--tle", tle.as_str(), "--from", FROM][..], &SYDNEY].concat();
    for bad in ["20", "-11", "NaN"] {
        let (code, _, err) = passes_cli(&[&base[..], &["--max-magnitude", bad]].concat());
        assert_ne!(code, 0, "--max-magnitude {bad}");
        assert!(err.contains("--max-magnitude"), "{bad}: {err}");
    }
    let (code, _, err) = passes_cli(&[&base[..], &["--max-magnitude", "bright"]].concat());
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = passes_cli(&[&base[..], &["--sort", "loudness"]].concat());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("brightness"), "the error names the choices: {err}");
}

#[tokio::test]
async fn the_api_and_the_cli_through_the_appliance_say_how_bright() {
    let fx = FixtureServer::start().await;
    fx.script("/tle", vec![Reply::ok(fixture("passes/iss-2023-09-18.tle"))]);
    let dir = tempfile::tempdir().unwrap();
    let location = "[location]\nlatitude = -33.8688\nlongitude = 151.2093\naltitude_m = 40.0\n";
    let app = Outpost::start(dir.path(), &config(&fx, dir.path(), location)).await;
    app.wait_for("the TLE", 30, |s| stored(s, "iss.tle") == 1).await;
    let get = |q: String| {
        let app = &app;
        async move {
            let (code, body) = app.get(&format!("/api/passes?from={FROM}&hours=72{q}")).await;
            assert_eq!(code, 200, "{q}: {body}");
            body.as_array().unwrap().clone()
        }
    };
    let all = get("&all=true".into()).await;
    let visible = get(String::new()).await;
    check_week(&all, &visible);
    check_filter_and_sort(&visible, &get("&max_magnitude=-2".into()).await, &get("&sort=brightness".into()).await);
    assert_eq!(rises(&get("&sort=time".into()).await), rises(&visible));

    // Per point of the path: a magnitude while sunlit, null in the shadow. Within the visible
    // window the brightest point (every 10 s) is no brighter than the pass's brightest moment and
    // close to it.
    let with_path = get("&all=true&path=true".into()).await;
    let (mut lit, mut dark) = (0, 0);
    for p in &with_path {
        let path = p["path"].as_array().unwrap();
        for point in path {
            match &point["magnitude"] {
                Value::Null => dark += 1,
                m => {
                    assert!(m.as_f64().is_some_and(|m| (-5.0..=99.0).contains(&m)), "{point}");
                    lit += 1;
                }
            }
        }
        if p["visible"] == true {
            let (from, to) = (p["visible_from"].as_str().unwrap(), p["visible_to"].as_str().unwrap());
            let inside = path.iter().filter(|q| (from..=to).contains(&q["time"].as_str().unwrap()));
            let best = inside.filter_map(|q| q["magnitude"].as_f64()).fold(f64::INFINITY, f64::min);
            let m = magnitude(p);
            assert!(best >= m - 0.051 && best <= m + 0.5, "path's brightest {best}, the pass's {m}: {p}");
        }
    }
    assert!(lit > 0 && dark > 0, "{lit} sunlit points, {dark} in the shadow");

    for bad in ["max_magnitude=bright", "max_magnitude=20", "max_magnitude=NaN", "sort=loudness", "sort="] {
        let (code, body) = app.get(&format!("/api/passes?{bad}")).await;
        assert_eq!(code, 400, "{bad}: {body}");
        assert!(body["error"].is_string(), "{bad}: {body}");
    }

    // `outpost passes` without --tle asks the running appliance, passing the filter and the order on.
    let (cfg, addr) = (app.config_path.to_str().unwrap().to_owned(), app.addr.to_string());
    let args =
        ["--config", &cfg, "--from", FROM, "--hours", "72", "--json", "--max-magnitude", "-2", "--sort", "brightness"];
    let (code, out, err) = passes_cli_env(&args, &[("OUTPOST_WEB_LISTEN", &addr)]);
    assert_eq!(code, 0, "{err}");
    let got: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(got.iter().map(magnitude).collect::<Vec<_>>(), [-3.6, -2.1], "{out}");
    assert!(app.stop().await.success());
}
