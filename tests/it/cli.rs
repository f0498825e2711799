//! The command line: check-config, status, version, exit codes.

use crate::helpers::*;
use std::process::Command;

fn outpost(args: &[&str], envs: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(bin()).args(args).envs(envs.iter().copied()).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn version_names_the_program() {
    let (code, out, _) = outpost(&["--version"], &[]);
    assert_eq!(code, 0);
    assert!(out.starts_with("outpost "), "{out}");
}

#[test]
fn check_config_prints_the_effective_config_with_env_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "[store]\ncommit_interval_s = 20\n[varsom]\nregions = [3022]\n").unwrap();
    let (code, out, err) =
        outpost(&["check-config", "--config", path.to_str().unwrap()], &[("OUTPOST_VARSOM_LANG", "1")]);
    assert_eq!(code, 0, "{err}");
    let effective: toml::Table = out.parse().expect("check-config prints TOML");
    assert_eq!(effective["store"]["commit_interval_s"].as_integer(), Some(20));
    assert_eq!(effective["varsom"]["lang"].as_integer(), Some(1));
    assert_eq!(effective["varsom"]["regions"].as_array().unwrap().len(), 1);
    assert_eq!(effective["web"]["listen"].as_str(), Some("127.0.0.1:8080"), "defaults are filled in");
}

#[test]
fn a_broken_config_exits_2_naming_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "[iss]\npoll_interval_s = 10\n\n[location]\nlatitude = 123.0\nlongitude = 10.0\n").unwrap();
    let (code, _, err) = outpost(&["check-config", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("line 5") && err.contains("location.latitude"), "{err}");
    let (code, _, err) = outpost(&["run", "--config", "/nonexistent/outpost.toml"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot read"), "{err}");
}

#[tokio::test]
async fn status_works_with_and_without_a_running_appliance() {
    let fx = FixtureServer::start().await;
    fx.script("/tle", vec![Reply::ok(fixture("celestrak_gp_CATNR25544_FORMAT_TLE.txt"))]);
    let dir = tempfile::tempdir().unwrap();
    let app = Outpost::start(dir.path(), &config(&fx, dir.path(), "")).await;
    app.wait_for("the TLE", 30, |s| stored(s, "iss.tle") == 1).await;
    let cfg = app.config_path.to_str().unwrap().to_owned();
    // While it runs, `status` asks it over HTTP (the store file is locked by the daemon).
    let addr = app.addr.to_string();
    let (code, out, err) = outpost(&["status", "--json", "--config", &cfg], &[("OUTPOST_WEB_LISTEN", &addr)]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["source"], "running appliance");
    assert_eq!(stored(&v, "iss.tle"), 1);
    assert!(app.stop().await.success());
    // Stopped: it opens the store itself.
    let (code, out, err) = outpost(&["status", "--config", &cfg], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("appliance not running"), "{out}");
    assert!(out.lines().any(|l| l.trim_start().starts_with("iss.tle") && l.contains(" 1 records")), "{out}");
}

#[tokio::test]
async fn resend_goes_through_the_running_appliance_and_says_why_when_it_cannot() {
    let fx = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    // A Kafka sink whose broker is not there: the re-send stops at connect and says so.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let app =
        Outpost::start(dir.path(), &config(&fx, dir.path(), &format!("[kafka]\nbrokers = [\"127.0.0.1:{closed}\"]\n")))
            .await;
    let cfg = app.config_path.to_str().unwrap().to_owned();
    let addr = app.addr.to_string();
    let http = reqwest::Client::new();
    let post = |path: &str, json: bool| {
        let r = http.post(format!("http://{addr}{path}"));
        if json { r.header("content-type", "application/json").body("{}") } else { r }
    };
    assert_eq!(
        post("/api/sinks/kafka/resend", false).send().await.unwrap().status(),
        400,
        "a plain form post is refused"
    );
    assert_eq!(post("/api/sinks/nope/resend", true).send().await.unwrap().status(), 404);
    assert_eq!(post("/api/sinks/cassandra/resend", true).send().await.unwrap().status(), 503, "not configured");
    let r = post("/api/sinks/kafka/resend", true).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let report: serde_json::Value = r.json().await.unwrap();
    assert_eq!(report["resent"], 0);
    assert!(report["error"].is_string(), "{report}");
    let (code, out, err) = outpost(&["resend", "--sink", "kafka", "--config", &cfg], &[("OUTPOST_WEB_LISTEN", &addr)]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("0 dead letters re-sent") && err.contains("stopped early"), "{out}{err}");
    assert!(app.stop().await.success());
    // Without a running appliance there is nobody to send them.
    let (code, _, err) = outpost(&["resend", "--sink", "kafka", "--config", &cfg], &[("OUTPOST_WEB_LISTEN", &addr)]);
    assert_eq!(code, 1);
    assert!(err.contains("none answers at web.listen"), "{err}");
}
