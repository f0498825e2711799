//! The read API against a running appliance fed from recorded answers.

use crate::helpers::*;
use chrono::{Duration, Utc};

#[tokio::test]
async fn collected_records_are_served_by_the_read_api() {
    let fx = FixtureServer::start().await;
    let base = Utc::now() - Duration::hours(1);
    // Positions 10 s apart, the recorded open-notify shape; one wheretheiss answer first.
    let wti = String::from_utf8(fixture("wheretheiss_satellites_25544.json"))
        .unwrap()
        .replace("1669950667", &(base - Duration::seconds(10)).timestamp().to_string());
    fx.generate("/iss-now.json", move |n| {
        if n == 1 {
            Reply::ok(wti.clone())
        } else {
            Reply::ok(open_notify(
                base + Duration::seconds(10 * n as i64),
                "10.0909",
                &format!("{}", -179.0 + n as f64),
            ))
        }
    });
    fx.script("/tle", vec![Reply::ok(fixture("celestrak_gp_CATNR25544_FORMAT_TLE.txt"))]);
    fx.script("/nve", vec![Reply::ok(fixture("nve_AvalancheWarningByRegion_Detail.json"))]);
    let dir = tempfile::tempdir().unwrap();
    let app = Outpost::start(dir.path(), &config(&fx, dir.path(), "")).await;

    let s = app
        .wait_for("5 positions, a TLE and warnings", 30, |s| {
            stored(s, "iss.position") >= 5 && stored(s, "iss.tle") == 1 && stored(s, "avalanche.warning") == 5
        })
        .await;
    assert_eq!(s["station"], "it");

    let (code, latest) = app.get("/api/iss/latest").await;
    assert_eq!(code, 200);
    assert_eq!(latest["latitude"], 10.0909);
    assert!(latest["time"].as_str().unwrap().ends_with('Z'));

    let (code, track) = app
        .get(&format!(
            "/api/iss/track?from={}",
            (base - Duration::minutes(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ))
        .await;
    assert_eq!(code, 200, "{track}");
    let points = track["points"].as_array().unwrap();
    assert_eq!(track["total"].as_u64().unwrap(), points.len() as u64);
    assert!(points.len() >= 5);
    // The first is the wheretheiss answer, at its own timestamp, with its own coordinates.
    assert_eq!(points[0]["latitude"], -21.950942);
    assert_eq!(points[0]["time"], (base - Duration::seconds(10)).format("%Y-%m-%dT%H:%M:%SZ").to_string());
    let times: Vec<&str> = points.iter().map(|p| p["time"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "time order: {times:?}");

    let (_, down) = app.get(&format!("/api/iss/track?from={}&max_points=2", base.date_naive())).await;
    assert_eq!(down["points"].as_array().unwrap().len(), 2);
    assert_eq!(down["points"][0], points[0]);

    let (code, day) = app.get("/api/avalanche?date=2023-03-03").await;
    assert_eq!(code, 200);
    let day = day.as_array().unwrap();
    assert_eq!(day.len(), 1);
    let w = &day[0];
    assert_eq!(
        (w["region_id"].as_u64(), w["region_name"].as_str(), w["danger_level"].as_u64()),
        (Some(3022), Some("Trollheimen"), Some(3))
    );
    assert_eq!(w["valid_from"], "2023-03-02T23:00:00Z", "Norwegian midnight in winter is 23:00 UTC");
    assert_eq!(w["publish_time"], "2023-03-02T14:31:48.560Z");
    assert!(w["main_text"].as_str().unwrap().len() > 20);
    assert!(!w["problems"].as_array().unwrap().is_empty());
    let (_, none) = app.get("/api/avalanche?date=2020-01-01").await;
    assert_eq!(none, serde_json::json!([]));
    assert!(app.stop().await.success());
}

#[tokio::test]
async fn bad_parameters_get_400_with_a_message() {
    let fx = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = Outpost::start(dir.path(), &config(&fx, dir.path(), "")).await;
    for (query, needle) in [
        ("/api/iss/track?from=yesterday", "from"),
        ("/api/iss/track?to=2023-13-01", "to"),
        ("/api/iss/track?from=2023-09-19&to=2023-09-18", "after"),
        ("/api/iss/track?max_points=0", "max_points"),
        ("/api/iss/track?max_points=-5", "max_points"),
        ("/api/iss/track?max_points=many", "max_points"),
        ("/api/iss/track?max_points=99999999999999999999", "max_points"),
        ("/api/iss/track?form=2023-09-18", "unknown parameter"),
        ("/api/avalanche?date=03/01/2023", "date"),
        ("/api/avalanche?date=2023-02-30", "date"),
        // Signed and out-of-range years (chrono's `%Y` takes a sign; its last day + 1 day panicked).
        ("/api/iss/track?to=%2B262142-12-31", "to="),
        ("/api/iss/track?from=-2026-01-01", "from="),
        ("/api/iss/track?to=2101-01-01", "outside the years 2000 to 2100"),
        ("/api/iss/track?from=0000-01-01T00:00:00Z", "outside the years"),
        ("/api/avalanche?date=%2B2026-01-01", "date="),
        ("/api/avalanche?date=1999-12-31", "outside the years"),
        ("/api/passes?from=%2B262142-12-31", "from="),
        ("/api/export?kind=iss&format=jsonl&to=%2B262142-12-31", "to"),
        ("/api/export?kind=iss&format=jsonl&from=9999-12-31", "outside the years"),
    ] {
        let (code, body) = app.get(query).await;
        assert_eq!(code, 400, "{query}: {body}");
        let msg = body["error"].as_str().unwrap_or_else(|| panic!("{query}: no error message in {body}"));
        assert!(msg.contains(needle), "{query}: {msg}");
    }
    let (code, body) = app.get("/api/iss/latest").await;
    assert_eq!(code, 404, "nothing collected yet: {body}");
    let (code, page) = app.get("/").await;
    assert_eq!(code, 200);
    assert!(page.as_str().unwrap().contains(r#"<div id="map""#), "the map page: {page}");
    let (code, body) = app.get("/healthz").await;
    assert_eq!((code, body["status"].as_str()), (200, Some("ok")));
    let (code, _) = app.get("/api/iss/track?from=2023-09-18&to=2023-09-18T12:00:00%2B02:00&max_points=10").await;
    assert_eq!(code, 200, "RFC 3339 with an offset and a plain date are both accepted");
    assert!(app.stop().await.success());
}
