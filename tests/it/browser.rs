//! The map pages in a real browser: tests/browser/map.mjs drives Debian's chromium through
//! playwright-core against an appliance collecting from the fixture server, with the internet
//! blocked. Screenshots land in target/tmp/browser/ (look at them after a change to the pages).
//!
//! Needs `/usr/bin/chromium` (Debian's chromium) and `npm ci --prefix tests/browser`;
//! scripts/test.sh installs both.

use crate::helpers::*;
use chrono::{Duration, Utc};
use std::path::Path;

#[tokio::test]
async fn the_map_works_in_headless_chromium_without_internet() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let chromium = std::env::var("OUTPOST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists() && root.join("tests/browser/node_modules/playwright-core").exists(),
        "the browser test needs Debian's chromium at {chromium} and playwright-core \
         (`apt-get install chromium` and `npm ci --prefix tests/browser`, or run scripts/test.sh)"
    );

    let fx = FixtureServer::start().await;
    let base = Utc::now() - Duration::minutes(30);
    // A position per poll, 20 s of ISS time apart (so a few minutes of track exist within
    // seconds), crossing the antimeridian early on, with 10 minutes missing after the 8th (the
    // map fills that gap with the predicted track).
    fx.generate("/iss-now.json", move |n| {
        let lon = (176.0 + n as f64 * 0.6 + 180.0) % 360.0 - 180.0;
        let lat = 51.0 * (n as f64 / 30.0).sin();
        let gap = if n > 8 { Duration::minutes(10) } else { Duration::zero() };
        let time = base + gap + Duration::seconds(20 * n as i64);
        Reply::ok(open_notify(time, &format!("{lat:.4}"), &format!("{lon:.4}")))
    });
    // Elements from four days ago: the passes of the next days are still predicted, and the
    // made-up track above is not checked against them (only a TLE within 3 days is).
    fx.script("/tle", vec![Reply::ok(crate::email::tle_at(Utc::now() - Duration::days(4)))]);
    fx.script("/nve", vec![Reply::ok(fixture("nve_AvalancheWarningByRegion_Detail.json"))]);
    // Real Open-Meteo answers for /avalanche's weather cells (regions 3022 and 3011).
    fx.script(crate::weather::FORECAST, vec![Reply::ok(fixture(crate::weather::GOOD))]);
    let dir = tempfile::tempdir().unwrap();
    let extra = "[location]\nlatitude = 59.91\nlongitude = 10.75\n";
    let cfg = crate::weather::with_weather(&config(&fx, dir.path(), extra));
    let app = Outpost::start(dir.path(), &cfg).await;
    let weather_days = crate::weather::expected(crate::weather::GOOD).len() as u64;
    app.wait_for("positions, a TLE, warnings and weather", 30, |s| {
        stored(s, "iss.position") >= 12
            && stored(s, "iss.tle") == 1
            && stored(s, "avalanche.warning") == 5
            && stored(s, "weather.daily") >= weather_days
    })
    .await;

    // A second appliance whose only TLE is years old: its map must say so where the passes are.
    let stale_fx = FixtureServer::start().await;
    stale_fx.script("/tle", vec![Reply::ok(fixture("passes/iss-2023-09-18.tle"))]);
    let stale_dir = tempfile::tempdir().unwrap();
    let stale = Outpost::start(stale_dir.path(), &config(&stale_fx, stale_dir.path(), extra)).await;
    stale.wait_for("the old TLE", 30, |s| stored(s, "iss.tle") == 1).await;

    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    let run = tokio::process::Command::new("node")
        .arg(root.join("tests/browser/map.mjs"))
        .env("OUTPOST_URL", format!("http://{}", app.addr))
        .env("OUTPOST_STALE_URL", format!("http://{}", stale.addr))
        .env("OUTPOST_ARTIFACTS", &artifacts)
        .env("OUTPOST_CHROMIUM", &chromium)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(240), run)
        .await
        .expect("the browser test finishes within 4 minutes")
        .expect("node runs");
    let report = format!(
        "{}\n{}\nappliance log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        app.log()
    );
    assert!(out.status.success(), "the browser checks failed:\n{report}");
    println!("{}", String::from_utf8_lossy(&out.stdout));
    for shot in [
        "map-phone.png",
        "map-phone-pass.png",
        "map-phone-stale-tle.png",
        "map-stale-tle.png",
        "map-desktop.png",
        "avalanche.png",
        "status.png",
    ] {
        assert!(artifacts.join(shot).metadata().is_ok_and(|m| m.len() > 10_000), "{shot} was not saved");
    }
    assert!(app.stop().await.success());
    assert!(stale.stop().await.success());
}
