//! The map's server side: pages, live events, metrics, embedded files and basic auth, against a
//! running appliance fed from recorded answers.

use crate::helpers::*;
use chrono::{Duration, Utc};
use serde_json::Value;
use std::net::SocketAddr;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// An appliance collecting a position a second (longitudes crossing the antimeridian), the
/// recorded TLE and Trollheimen's warnings, seen from Oslo.
async fn collecting(dir: &std::path::Path, extra: &str) -> (FixtureServer, Outpost) {
    let fx = FixtureServer::start().await;
    let base = Utc::now() - Duration::minutes(10);
    fx.generate("/iss-now.json", move |n| {
        let lon = (178.0 + n as f64 + 180.0) % 360.0 - 180.0;
        Reply::ok(open_notify(base + Duration::seconds(10 * n as i64), "51.5", &format!("{lon:.4}")))
    });
    fx.script("/tle", vec![Reply::ok(fixture("celestrak_gp_CATNR25544_FORMAT_TLE.txt"))]);
    fx.script("/nve", vec![Reply::ok(fixture("nve_AvalancheWarningByRegion_Detail.json"))]);
    let extra = format!("[location]\nlatitude = 59.91\nlongitude = 10.75\n{extra}");
    let app = Outpost::start(dir, &config(&fx, dir, &extra)).await;
    (fx, app)
}

async fn text(app: &Outpost, path: &str) -> (u16, String) {
    let r = reqwest::get(format!("http://{}{path}", app.addr)).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn pages_metrics_and_files_render_what_was_collected() {
    let dir = tempfile::tempdir().unwrap();
    let (_fx, app) = collecting(dir.path(), "").await;
    app.wait_for("positions, a TLE and warnings", 30, |s| {
        stored(s, "iss.position") >= 3 && stored(s, "iss.tle") == 1 && stored(s, "avalanche.warning") == 5
    })
    .await;

    let (code, map) = text(&app, "/").await;
    assert_eq!(code, 200);
    assert!(map.contains(r#"<div id="map""#) && map.contains("/static/map.js?v="), "{map}");
    assert!(map.contains(r#""observer":{"latitude":59.91"#), "the observer is handed to the page: {map}");

    let (code, page) = text(&app, "/avalanche?date=2023-03-03").await;
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("Trollheimen") && page.contains("danger danger-3"), "{page}");
    assert!(page.contains("Varsler fra Snøskredvarslingen i Norge og www.varsom.no"), "NVE's attribution");
    assert!(page.contains("Avalanche problems"), "the problems of the selected region");
    assert!(page.contains(r#"<svg class="season-chart""#), "the season chart");
    // Five stored days in the season chart, one bar each.
    assert_eq!(page.matches("<rect class=\"danger").count(), 5, "{page}");
    let (_, empty) = text(&app, "/avalanche?date=2021-01-01").await;
    assert!(empty.contains("No warnings are stored for this date"));
    for (query, needle) in [
        ("/avalanche?date=2023-02-30", "date"),
        ("/avalanche?region=trollheimen", "region"),
        ("/avalanche?dato=2023-03-01", "unknown parameter"),
    ] {
        let (code, body) = app.get(query).await;
        assert_eq!(code, 400, "{query}: {body}");
        assert!(body["error"].as_str().unwrap().contains(needle), "{query}: {body}");
    }

    let (code, status) = text(&app, "/status").await;
    assert_eq!(code, 200);
    for needle in [
        "Collectors",
        "iss_position",
        "Upstream links",
        "not configured",
        "once positions older than a day",
        "Night-pass emails",
    ] {
        assert!(status.contains(needle), "/status lacks {needle:?}: {status}");
    }

    let (code, metrics) = text(&app, "/metrics").await;
    assert_eq!(code, 200);
    let value = |name: &str| -> f64 {
        let line = metrics.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} in\n{metrics}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert!(value(r#"outpost_polls_total{source="iss_position"}"#) >= 3.0);
    assert!(value(r#"outpost_records_stored_total{kind="iss.position"}"#) >= 3.0);
    assert!(value("outpost_store_bytes") > 0.0);
    assert_eq!(value(r#"outpost_store_records{kind="avalanche.warning"}"#), 5.0);
    assert!(metrics.contains("# TYPE outpost_polls_total counter"), "{metrics}");
    assert!(metrics.lines().all(|l| l.starts_with('#') || l.starts_with("outpost_")), "{metrics}");

    let http = reqwest::Client::new();
    let url = |p: &str| format!("http://{}{p}", app.addr);
    let leaflet = http.get(url("/static/vendor/leaflet/leaflet.js")).send().await.unwrap();
    assert_eq!(leaflet.headers()["content-type"], "text/javascript; charset=utf-8");
    let etag = leaflet.headers()["etag"].clone();
    assert!(leaflet.text().await.unwrap().contains("Leaflet"));
    let again = http.get(url("/static/vendor/leaflet/leaflet.js")).header("if-none-match", etag).send().await.unwrap();
    assert_eq!(again.status(), 304);
    let basemap =
        http.get(url("/static/basemap/countries.geojson")).header("accept-encoding", "gzip").send().await.unwrap();
    assert_eq!(basemap.status(), 200);
    assert_eq!(basemap.headers()["content-encoding"], "gzip", "the 1 MB basemap is compressed");
    assert!(basemap.bytes().await.unwrap().len() < 1_000_000);
    assert_eq!(http.get(url("/static/nothing.js")).send().await.unwrap().status(), 404);
    let (code, body) = app.get("/no/such/page").await;
    assert_eq!(code, 404, "{body}");
    assert!(app.stop().await.success());
}

/// Reads server-sent events until `count` arrived: `(id, data)`.
async fn read_events(addr: SocketAddr, last_event_id: Option<u64>, count: usize) -> Vec<(u64, Value)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let resume = last_event_id.map(|id| format!("Last-Event-ID: {id}\r\n")).unwrap_or_default();
    let request = format!("GET /api/events HTTP/1.1\r\nHost: outpost\r\nAccept: text/event-stream\r\n{resume}\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut lines = BufReader::new(stream).lines();
    let mut events = Vec::new();
    let mut id = None;
    let read = async {
        while events.len() < count {
            let line = lines.next_line().await.unwrap().expect("the stream stays open");
            if let Some(v) = line.strip_prefix("id: ").or_else(|| line.strip_prefix("id:")) {
                id = v.trim().parse::<u64>().ok();
            } else if let Some(data) = line.strip_prefix("data: ").or_else(|| line.strip_prefix("data:")) {
                events.push((id.take().expect("every event has an id"), serde_json::from_str(data).unwrap()));
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), read).await.expect("events arrive");
    events
}

#[tokio::test]
async fn events_push_each_new_record_and_a_reconnect_resumes_without_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let (_fx, app) = collecting(dir.path(), "").await;
    let live = read_events(app.addr, None, 3).await;
    let ids: Vec<u64> = live.iter().map(|(id, _)| *id).collect();
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "consecutive seqs: {ids:?}");
    let positions: Vec<&Value> = live.iter().map(|(_, v)| v).filter(|v| v["kind"] == "iss.position").collect();
    assert!(!positions.is_empty(), "{live:?}");
    for (id, v) in &live {
        assert_eq!(v["seq"].as_u64(), Some(*id), "the id is the record's seq");
        assert_eq!(v["schema"], 1);
    }
    let p = positions[0];
    assert!(p["latitude"].is_number() && p["longitude"].is_number() && p["time"].is_string(), "{p}");

    // A browser that saw the first event and reconnects gets the next one first.
    let resumed = read_events(app.addr, Some(ids[0]), 2).await;
    assert_eq!(resumed[0].0, ids[0] + 1);
    assert_eq!(resumed[0].1, live[1].1, "the same record, the same JSON");
    assert!(app.stop().await.success(), "an open event stream does not hold up shutdown");
}

#[tokio::test]
async fn passes_can_carry_their_path_over_the_ground_and_through_the_sky() {
    let dir = tempfile::tempdir().unwrap();
    let (_fx, app) = collecting(dir.path(), "").await;
    app.wait_for("the TLE", 30, |s| stored(s, "iss.tle") == 1).await;
    // The recorded TLE's epoch is 2023-09-18 10:40 UTC; predict near it.
    let (code, passes) = app.get("/api/passes?from=2023-09-18T12:00:00Z&hours=24&all=true&path=true").await;
    assert_eq!(code, 200, "{passes}");
    let passes = passes.as_array().unwrap();
    assert!(passes.len() >= 3, "{passes:?}");
    for p in passes {
        let path = p["path"].as_array().unwrap();
        assert_eq!(path.first().unwrap()["time"], p["rise"]["time"]);
        assert_eq!(path.last().unwrap()["time"], p["set"]["time"]);
        let top = path.iter().map(|q| q["elevation_deg"].as_f64().unwrap()).fold(f64::MIN, f64::max);
        let culmination = p["culmination"]["elevation_deg"].as_f64().unwrap();
        assert!(top <= culmination + 0.01 && top > culmination - 1.5, "path top {top} vs culmination {culmination}");
        for q in path {
            let (lat, lon) = (q["latitude"].as_f64().unwrap(), q["longitude"].as_f64().unwrap());
            // Seen from Oslo, the ISS is within ~2,300 km: latitude 35..75, longitude -30..50.
            assert!((35.0..75.0).contains(&lat) && (-30.0..50.0).contains(&lon), "{q}");
        }
    }
    let (_, plain) = app.get("/api/passes?from=2023-09-18T12:00:00Z&hours=24&all=true").await;
    assert!(plain[0].get("path").is_none(), "no path unless asked");
    let (code, body) = app.get("/api/passes?path=yes").await;
    assert_eq!(code, 400, "{body}");
    assert!(app.stop().await.success());
}

#[tokio::test]
async fn basic_auth_guards_every_path_and_the_password_stays_secret() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "correct horse battery staple";
    let pass_file = dir.path().join("web.pass");
    std::fs::write(&pass_file, format!("{secret}\n")).unwrap();
    let extra = format!("[web]\nusername = \"ada\"\npassword_file = \"{}\"\n", pass_file.display());
    // config() ends with [web] listen; a second [web] table would be a TOML error, so splice.
    let fx = FixtureServer::start().await;
    let cfg = config(&fx, dir.path(), "").replace("[web]\n", &extra);
    let app = Outpost::start(dir.path(), &cfg).await;
    let http = reqwest::Client::new();
    for path in ["/", "/status", "/avalanche", "/api/status", "/api/iss/track", "/metrics", "/static/map.js"] {
        let url = format!("http://{}{path}", app.addr);
        let r = http.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path} without credentials");
        assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic"));
        let wrong = http.get(&url).basic_auth("ada", Some("guess")).send().await.unwrap();
        assert_eq!(wrong.status(), 401, "{path} with a wrong password");
        let ok = http.get(&url).basic_auth("ada", Some(secret)).send().await.unwrap();
        assert_eq!(ok.status(), 200, "{path} with the password");
        let body = ok.text().await.unwrap();
        assert!(!body.contains(secret), "{path} shows the password");
    }
    // The one open path: install scripts and supervisors poll it without the password.
    let health = http.get(format!("http://{}/healthz", app.addr)).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.json::<Value>().await.unwrap(), serde_json::json!({ "status": "ok" }));
    assert!(!app.log().contains(secret), "the log shows the password");
    // The CLI signs in with the same [web] credentials when it asks the running appliance.
    let cfg = app.config_path.clone();
    let addr = app.addr.to_string();
    let out = tokio::process::Command::new(bin())
        .args(["status", "--json", "--config"])
        .arg(&cfg)
        .env("OUTPOST_WEB_LISTEN", &addr)
        .output()
        .await
        .unwrap();
    let status: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{out:?}"));
    assert_eq!(status["source"], "running appliance", "{status}");
    assert!(app.stop().await.success());
}
