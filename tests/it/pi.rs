//! The Raspberry Pi build (aarch64, cross-compiled) run under qemu-user: it starts, accepts the
//! config deploy/ installs, serves /healthz and stores what it collects from the fixture server.
//!
//! Ignored unless asked for: they need `OUTPOST_AARCH64_BIN` (the cross-built binary) and
//! qemu-aarch64. scripts/pi-check.sh builds the binary and runs them with `--include-ignored`;
//! a run without the variable fails rather than pass having tested nothing.

use crate::helpers::*;
use chrono::{Duration, Utc};
use std::path::Path;
use std::process::Command;

/// qemu-aarch64 with the cross libc's loader, then the aarch64 binary.
fn aarch64() -> Vec<String> {
    let bin = std::env::var("OUTPOST_AARCH64_BIN")
        .expect("OUTPOST_AARCH64_BIN must name the aarch64 outpost binary (scripts/pi-check.sh sets it)");
    let qemu = std::env::var("OUTPOST_QEMU").unwrap_or_else(|_| "qemu-aarch64".into());
    let sysroot = std::env::var("OUTPOST_AARCH64_SYSROOT").unwrap_or_else(|_| "/usr/aarch64-linux-gnu".into());
    vec![qemu, "-L".into(), sysroot, bin]
}

fn run_aarch64(args: &[&str]) -> std::process::Output {
    let cmd = aarch64();
    Command::new(&cmd[0]).args(&cmd[1..]).args(args).output().expect("qemu-aarch64 runs")
}

#[test]
#[ignore = "needs OUTPOST_AARCH64_BIN and qemu-aarch64: run by scripts/pi-check.sh"]
fn aarch64_binary_runs_and_accepts_the_deploy_config() {
    let out = run_aarch64(&["--version"]);
    assert!(out.status.success(), "{out:?}");
    let version = String::from_utf8_lossy(&out.stdout);
    assert_eq!(version.trim(), format!("outpost {}", env!("CARGO_PKG_VERSION")));

    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/outpost.toml");
    let out = run_aarch64(&["check-config", "--config", deploy.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "check-config failed: {}", String::from_utf8_lossy(&out.stderr));
    // The effective values the Pi depends on: the StateDirectory, the LAN address, local gpsd.
    for line in [r#"path = "/var/lib/outpost""#, r#"listen = "0.0.0.0:8080""#, r#"gpsd = "localhost:2947""#] {
        assert!(stdout.lines().any(|l| l.trim() == line), "{line} not in:\n{stdout}");
    }
}

#[tokio::test]
#[ignore = "needs OUTPOST_AARCH64_BIN and qemu-aarch64: run by scripts/pi-check.sh"]
async fn aarch64_binary_serves_and_collects_from_the_fixture_server() {
    let fx = FixtureServer::start().await;
    let base = Utc::now() - Duration::hours(1);
    fx.generate("/iss-now.json", move |n| {
        Reply::ok(open_notify(base + Duration::seconds(10 * n as i64), "59.9139", &format!("{}", 10.0 + n as f64)))
    });
    fx.script("/tle", vec![Reply::ok(fixture("celestrak_gp_CATNR25544_FORMAT_TLE.txt"))]);
    fx.script("/nve", vec![Reply::ok(fixture("nve_AvalancheWarningByRegion_Detail.json"))]);
    let dir = tempfile::tempdir().unwrap();
    let cmd = aarch64();
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let app = Outpost::start_with(dir.path(), &config(&fx, dir.path(), ""), &cmd).await;

    let (code, health) = app.get("/healthz").await;
    assert_eq!(code, 200, "{health}");
    assert_eq!(health["status"], "ok");
    // Every kind goes through its parser, the journal and redb on the emulated CPU.
    let s = app
        .wait_for("3 positions, a TLE and warnings", 60, |s| {
            stored(s, "iss.position") >= 3 && stored(s, "iss.tle") == 1 && stored(s, "avalanche.warning") >= 1
        })
        .await;
    assert_eq!(s["version"], env!("CARGO_PKG_VERSION"));
    let (code, latest) = app.get("/api/iss/latest").await;
    assert_eq!(code, 200, "{latest}");
    assert_eq!(latest["latitude"], 59.9139);
    assert!(app.stop().await.success(), "a clean exit on SIGTERM");
}
