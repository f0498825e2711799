//! Every kind of bad upstream answer is rejected with its reason, counted, and never stored,
//! while the daemon keeps running and stores the next good answer.

use crate::drills::read_log;
use crate::helpers::*;
use chrono::{Duration, Utc};
use outpost::domain::Record;
use std::time::Duration as StdDuration;

/// Good answers' latitudes are 40 and more; each bad answer that carries a position carries a
/// latitude of its own below zero, so a stored bad answer cannot pass for a good one.
fn good_latitude(n: u64) -> String {
    format!("{:.4}", 40.0 + n as f64 * 0.01)
}

/// A position answer with `latitude`, three hours old (before every good one).
fn position(latitude: &str) -> Vec<u8> {
    open_notify(Utc::now() - Duration::hours(3), latitude, "-0.1")
}

/// Serves `bad` as the first position answer, then good ones; checks the outcome. `marker` is
/// the latitude `bad` carries, if it carries one.
async fn bad_position(bad: Reply, reason: &'static str, marker: Option<&str>) {
    let fx = FixtureServer::start().await;
    let base = Utc::now() - Duration::hours(2);
    fx.generate("/iss-now.json", move |n| {
        if n == 1 {
            bad.clone()
        } else {
            Reply::ok(open_notify(base + Duration::seconds(10 * n as i64), &good_latitude(n), "-0.1"))
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let app = Outpost::start(dir.path(), &config(&fx, dir.path(), "")).await;
    let s = app
        .wait_for(&format!("{reason} then a good position"), 60, |s| {
            rejections(s, "iss_position", reason) >= 1 && stored(s, "iss.position") >= 1
        })
        .await;
    assert!(s["sources"]["iss_position"]["last_error"].as_str().unwrap().starts_with(reason), "{s:#}");
    assert_eq!(app.get("/healthz").await.0, 200);
    assert!(app.stop().await.success(), "{reason}: clean exit");
    // The whole log, not a page of it: only good answers, and the bad one's value nowhere.
    let positions: Vec<f64> = read_log(dir.path())
        .into_iter()
        .filter_map(|r| match r.record {
            Record::IssPosition(p) => Some(p.latitude),
            _ => None,
        })
        .collect();
    assert!(!positions.is_empty());
    if let Some(marker) = marker {
        let marker: f64 = marker.parse().unwrap();
        assert!(!positions.contains(&marker), "{reason}: the bad answer's latitude {marker} is stored: {positions:?}");
    }
    assert!(positions.iter().all(|&lat| lat >= 40.0), "{reason}: only good answers are stored: {positions:?}");
}

#[tokio::test]
async fn http_500() {
    // A valid position behind a server error is not a position.
    bad_position(Reply::status(500, position("-33.3301")), "http_status", Some("-33.3301")).await;
}

#[tokio::test]
async fn an_html_page() {
    // CelesTrak's real HTML page: it carries no position of its own.
    bad_position(Reply::ok(fixture("celestrak_legacy_query_removed.html")), "malformed_json", None).await;
}

#[tokio::test]
async fn truncated_json() {
    // Cut after the position, before the time: everything a lenient parser would need but one field.
    let mut body = position("-33.3302");
    body.truncate(String::from_utf8_lossy(&body).find("\"timestamp\"").unwrap() + 5);
    bad_position(Reply::ok(body), "malformed_json", Some("-33.3302")).await;
}

#[tokio::test]
async fn an_empty_body() {
    bad_position(Reply::ok(""), "empty_body", None).await;
}

#[tokio::test]
async fn an_answer_slower_than_the_time_out() {
    // config() sets http.timeout_s = 2
    let late = Reply::ok(position("-33.3303")).slow(StdDuration::from_secs(4));
    bad_position(late, "timeout", Some("-33.3303")).await;
}

#[tokio::test]
async fn impossible_values() {
    bad_position(Reply::ok(position("91.0")), "latitude_out_of_range", Some("91.0")).await;
    bad_position(
        Reply::ok(open_notify(Utc::now() - Duration::hours(3), "-33.3304", "-180.5")),
        "longitude_out_of_range",
        Some("-33.3304"),
    )
    .await;
    bad_position(
        Reply::ok(open_notify(Utc::now() + Duration::minutes(10), "-33.3305", "-0.1")),
        "time_in_future",
        Some("-33.3305"),
    )
    .await;
}

#[tokio::test]
async fn a_repeated_timestamp_is_stored_once() {
    let fx = FixtureServer::start().await;
    fx.script("/iss-now.json", vec![Reply::ok(fixture("open-notify_iss-now.json"))]);
    let dir = tempfile::tempdir().unwrap();
    let app = Outpost::start(dir.path(), &config(&fx, dir.path(), "")).await;
    let s = app
        .wait_for("the same answer three times", 30, |s| rejections(s, "iss_position", "time_not_after_last") >= 2)
        .await;
    assert_eq!(stored(&s, "iss.position"), 1);
    assert_eq!(s["store"]["kinds"][0]["first"], "2020-06-29T02:39:33Z");
    assert!(app.stop().await.success());
}

#[tokio::test]
async fn bad_tles_are_rejected_and_back_off_for_hours() {
    let mut checksum = String::from_utf8(fixture("celestrak_gp_CATNR25544_FORMAT_TLE.txt")).unwrap();
    checksum = checksum.replace("23261.44473810", "23261.44473811");
    for (reply, reason) in [
        (Reply::ok(fixture("celestrak_not_updated_notice.txt")), "not_updated_notice"),
        (Reply::status(403, fixture("celestrak_not_updated_notice.txt")), "http_status"),
        (Reply::ok(fixture("celestrak_legacy_query_removed.html")), "html"),
        (Reply::ok(checksum), "bad_checksum"),
    ] {
        let fx = FixtureServer::start().await;
        fx.script("/tle", vec![reply, Reply::ok(fixture("celestrak_gp_CATNR25544_FORMAT_TLE.txt"))]);
        let dir = tempfile::tempdir().unwrap();
        let app = Outpost::start(dir.path(), &config(&fx, dir.path(), "")).await;
        let next_attempt = |s: &serde_json::Value| {
            s["sources"]["iss_tle"]["next_attempt"].as_str().and_then(|t| t.parse::<chrono::DateTime<Utc>>().ok())
        };
        let s = app
            .wait_for(&format!("{reason}, then a back-off of hours"), 30, |s| {
                rejections(s, "iss_tle", reason) == 1
                    && next_attempt(s).is_some_and(|t| t - Utc::now() > Duration::minutes(55))
            })
            .await;
        assert_eq!(stored(&s, "iss.tle"), 0, "{reason}");
        assert_eq!(fx.requests_to("/tle").len(), 1);
        assert!(app.stop().await.success());
    }
}

#[tokio::test]
async fn one_bad_warning_does_not_lose_the_others_and_bad_bodies_store_nothing() {
    let fx = FixtureServer::start().await;
    // The recorded answer with RegIds from `first` on: each bad body gets RegIds of its own.
    let recorded = |first: u64| {
        let mut w: serde_json::Value =
            serde_json::from_slice(&fixture("nve_AvalancheWarningByRegion_Detail.json")).unwrap();
        for (i, w) in w.as_array_mut().unwrap().iter_mut().enumerate() {
            w["RegId"] = (first + i as u64).into();
        }
        w
    };
    let (behind_500, truncated_ids, bad_level) = (8_000_000, 8_100_000, 8_200_001);
    let mut warnings = recorded(8_200_000);
    warnings[1]["DangerLevel"] = "7".into();
    let mut truncated = serde_json::to_vec(&recorded(truncated_ids)).unwrap();
    truncated.truncate(5000);
    fx.script(
        "/nve",
        vec![
            Reply::status(500, serde_json::to_vec(&recorded(behind_500)).unwrap()),
            Reply::ok(truncated),
            Reply::ok(serde_json::to_vec(&warnings).unwrap()),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    // Three regions, so one round meets all three answers.
    let app = Outpost::start(
        dir.path(),
        &config(&fx, dir.path(), "").replace("regions = [3022]", "regions = [3022, 3023, 3024]"),
    )
    .await;
    let s = app
        .wait_for("the three answers", 30, |s| {
            rejections(s, "varsom", "bad_danger_level") >= 1 && stored(s, "avalanche.warning") >= 4
        })
        .await;
    assert_eq!(rejections(&s, "varsom", "http_status"), 1);
    assert_eq!(rejections(&s, "varsom", "malformed_json"), 1);
    assert_eq!(stored(&s, "avalanche.warning"), 4, "the 4 good warnings of 5");
    let (_, day) = app.get("/api/avalanche?date=2023-03-02").await;
    assert_eq!(day, serde_json::json!([]), "the bad one is not stored");
    assert!(app.stop().await.success());
    let stored_ids: Vec<u64> = read_log(dir.path())
        .into_iter()
        .filter_map(|r| match r.record {
            Record::AvalancheWarning(w) => Some(w.reg_id),
            _ => None,
        })
        .collect();
    assert_eq!(stored_ids.len(), 4, "{stored_ids:?}");
    for id in &stored_ids {
        assert!(
            (8_200_000..8_200_005).contains(id) && *id != bad_level,
            "only the good warnings of the last answer are stored: {stored_ids:?}"
        );
    }
    let from = |first: u64| (first..first + 5).collect::<Vec<u64>>();
    for bad in [from(behind_500), from(truncated_ids)] {
        assert!(stored_ids.iter().all(|id| !bad.contains(id)), "a bad body's warning is stored: {stored_ids:?}");
    }
}
