//! Every kind of bad upstream answer is rejected with its reason, counted, and never stored,
//! while the daemon keeps running and stores the next good answer.

use crate::helpers::*;
use chrono::{Duration, Utc};
use std::time::Duration as StdDuration;

/// Serves `bad` as the first position answer, then good ones; checks the outcome.
async fn bad_position(bad: Reply, reason: &'static str) {
    let fx = FixtureServer::start().await;
    let base = Utc::now() - Duration::hours(2);
    fx.generate("/iss-now.json", move |n| {
        if n == 1 {
            bad.clone()
        } else {
            Reply::ok(open_notify(base + Duration::seconds(10 * n as i64), "51.5", "-0.1"))
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
    let (_, track) = app.get(&format!("/api/iss/track?from={}", base.date_naive())).await;
    for p in track["points"].as_array().unwrap() {
        assert_eq!(p["latitude"], 51.5, "only the good answers are stored: {track}");
    }
    assert_eq!(app.get("/healthz").await.0, 200);
    assert!(app.stop().await.success(), "{reason}: clean exit");
}

#[tokio::test]
async fn http_500() {
    bad_position(Reply::status(500, "Internal Server Error"), "http_status").await;
}

#[tokio::test]
async fn an_html_page() {
    bad_position(Reply::ok(fixture("celestrak_legacy_query_removed.html")), "malformed_json").await;
}

#[tokio::test]
async fn truncated_json() {
    let mut body = fixture("open-notify_iss-now.json");
    body.truncate(body.len() / 2);
    bad_position(Reply::ok(body), "malformed_json").await;
}

#[tokio::test]
async fn an_empty_body() {
    bad_position(Reply::ok(""), "empty_body").await;
}

#[tokio::test]
async fn an_answer_slower_than_the_time_out() {
    // config() sets http.timeout_s = 2
    let late = Reply::ok(open_notify(Utc::now() - Duration::hours(3), "51.5", "-0.1")).slow(StdDuration::from_secs(4));
    bad_position(late, "timeout").await;
}

#[tokio::test]
async fn impossible_values() {
    bad_position(Reply::ok(open_notify(Utc::now() - Duration::hours(3), "91.0", "10.0")), "latitude_out_of_range")
        .await;
    bad_position(Reply::ok(open_notify(Utc::now() - Duration::hours(3), "10.0", "-180.5")), "longitude_out_of_range")
        .await;
    bad_position(Reply::ok(open_notify(Utc::now() + Duration::minutes(10), "51.5", "-0.1")), "time_in_future").await;
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
    let mut warnings: serde_json::Value =
        serde_json::from_slice(&fixture("nve_AvalancheWarningByRegion_Detail.json")).unwrap();
    warnings[1]["DangerLevel"] = "7".into();
    let mut truncated = fixture("nve_AvalancheWarningByRegion_Detail.json");
    truncated.truncate(5000);
    fx.script(
        "/nve",
        vec![Reply::status(500, "oops"), Reply::ok(truncated), Reply::ok(serde_json::to_vec(&warnings).unwrap())],
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
}
