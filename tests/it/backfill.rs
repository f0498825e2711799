//! What the collectors ask after downtime or a crash: the avalanche collector asks NVE for
//! exactly the days it missed (also a day missed before later ones were stored), and a crash
//! right after a TLE request does not make the next start ask CelesTrak again.

use crate::helpers::*;
use chrono::{Datelike, Days, NaiveDate, Utc};
use std::time::Duration;

fn oslo_today() -> NaiveDate {
    Utc::now().with_timezone(&chrono_tz::Europe::Oslo).date_naive()
}

/// The recorded Trollheimen answer, moved to `days` (one warning per day, as NVE sends).
fn warnings_for(days: &[NaiveDate]) -> Vec<u8> {
    let recorded: Vec<serde_json::Value> =
        serde_json::from_slice(&fixture("nve_AvalancheWarningByRegion_Detail.json")).unwrap();
    let moved: Vec<serde_json::Value> = days
        .iter()
        .zip(recorded.iter().cycle())
        .enumerate()
        .map(|(i, (day, w))| {
            let mut w = w.clone();
            let eve = day.pred_opt().unwrap();
            w["RegId"] = (900_000 + i).into();
            w["ValidFrom"] = format!("{day}T00:00:00").into();
            w["ValidTo"] = format!("{day}T23:59:59").into();
            w["PublishTime"] = format!("{eve}T15:32:29.677").into();
            w
        })
        .collect();
    serde_json::to_vec(&moved).unwrap()
}

/// `n` days after (before, if negative) today in Norway.
fn day(n: i64) -> NaiveDate {
    let today = oslo_today();
    if n >= 0 {
        today.checked_add_days(Days::new(n as u64)).unwrap()
    } else {
        today.checked_sub_days(Days::new((-n) as u64)).unwrap()
    }
}

/// `warnings_for` with one RegId per day, so answers in different runs never share one.
fn warnings_on(days: &[NaiveDate]) -> Vec<u8> {
    let mut v: Vec<serde_json::Value> = serde_json::from_slice(&warnings_for(days)).unwrap();
    for (w, d) in v.iter_mut().zip(days) {
        w["RegId"] = (800_000 + d.num_days_from_ce()).into();
    }
    serde_json::to_vec(&v).unwrap()
}

fn nve_range(from: NaiveDate, to: NaiveDate) -> String {
    format!("/nve/AvalancheWarningByRegion/Detail/3022/2/{from}/{to}")
}

#[tokio::test]
async fn back_fill_after_downtime_asks_for_exactly_the_missed_days() {
    let fx = FixtureServer::start().await;
    // The first run gets warnings for 7..3 days ago (as if NVE had nothing newer yet).
    fx.script("/nve", vec![Reply::ok(warnings_for(&[day(-7), day(-6), day(-5), day(-4), day(-3)]))]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&fx, dir.path(), "");
    let app = Outpost::start(dir.path(), &cfg).await;
    app.wait_for("5 warnings", 30, |s| stored(s, "avalanche.warning") == 5).await;
    assert!(app.stop().await.success());
    assert_eq!(
        fx.requests_to("/nve"),
        vec![format!("/nve/AvalancheWarningByRegion/Detail/3022/2/{}/{}", day(-7), day(1))],
        "a new store back-fills backfill_days (7) up to tomorrow"
    );

    // Down for a while; on restart only the days after the newest stored one are asked for.
    fx.script("/nve", vec![Reply::ok(warnings_for(&[day(-2), day(-1), day(0), day(1)]))]);
    let app = Outpost::start(dir.path(), &cfg).await;
    let s = app.wait_for("4 more warnings", 30, |s| stored(s, "avalanche.warning") == 9).await;
    assert_eq!(s["sources"]["varsom"]["polls"], 1);
    assert!(app.stop().await.success());
    assert_eq!(
        fx.requests_to("/nve")[1..],
        [format!("/nve/AvalancheWarningByRegion/Detail/3022/2/{}/{}", day(-2), day(1))]
    );

    // Up to date: the next start re-checks today and tomorrow only, and stores no duplicate.
    let app = Outpost::start(dir.path(), &cfg).await;
    let s = app
        .wait_for("a re-check whose 4 warnings are all known", 30, |s| {
            s["sources"]["varsom"]["successes"] == 1 && s["writer"]["duplicates"]["avalanche.warning"] == 4
        })
        .await;
    assert_eq!(stored(&s, "avalanche.warning"), 9);
    assert!(app.stop().await.success());
    assert_eq!(
        fx.requests_to("/nve")[2..],
        [format!("/nve/AvalancheWarningByRegion/Detail/3022/2/{}/{}", day(0), day(1))]
    );
}

#[tokio::test]
async fn a_day_missed_before_later_days_were_stored_is_back_filled() {
    let fx = FixtureServer::start().await;
    let window: Vec<NaiveDate> = (-7..=1).map(day).collect();
    let gap = day(-4);
    // NVE's answer for the whole window leaves out one day; the later ones are all there.
    let without_gap: Vec<NaiveDate> = window.iter().copied().filter(|d| *d != gap).collect();
    fx.script("/nve", vec![Reply::ok(warnings_on(&without_gap))]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&fx, dir.path(), "");
    let app = Outpost::start(dir.path(), &cfg).await;
    app.wait_for("8 of the window's 9 days", 30, |s| stored(s, "avalanche.warning") == 8).await;
    assert!(app.stop().await.success());
    assert_eq!(fx.requests_to("/nve"), [nve_range(day(-7), day(1))]);

    // Next start: today and tomorrow as always, then the gap, for which NVE answers 500 once.
    fx.script("/nve", vec![Reply::ok(warnings_on(&[day(0), day(1)])), Reply::status(500, "Internal Server Error")]);
    let app = Outpost::start(dir.path(), &cfg).await;
    let s = app
        .wait_for("the re-check and the failed gap request", 30, |s| {
            s["sources"]["varsom"]["successes"] == 1 && s["sources"]["varsom"]["failures"] == 1
        })
        .await;
    assert_eq!(stored(&s, "avalanche.warning"), 8);
    assert!(app.stop().await.success());
    assert_eq!(fx.requests_to("/nve")[1..], [nve_range(day(0), day(1)), nve_range(gap, gap)]);

    // The gap is still a gap, so it is asked for again, and now stored.
    fx.script("/nve", vec![Reply::ok(warnings_on(&[day(0), day(1)])), Reply::ok(warnings_on(&[gap]))]);
    let app = Outpost::start(dir.path(), &cfg).await;
    let s = app.wait_for("all 9 days", 30, |s| stored(s, "avalanche.warning") == 9).await;
    assert_eq!(s["sources"]["varsom"]["failures"], 0);
    let (code, body) = app.get(&format!("/api/avalanche?date={gap}")).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.to_string().contains(&gap.to_string()), "the gap's warning is served: {body}");
    assert!(app.stop().await.success());
    assert_eq!(fx.requests_to("/nve")[3..], [nve_range(day(0), day(1)), nve_range(gap, gap)]);
}

/// Polls until `cond` holds, at most `secs`.
async fn until(what: &str, secs: u64, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_crash_right_after_a_tle_request_does_not_ask_again_on_restart() {
    let fx = FixtureServer::start().await;
    // CelesTrak takes its time: the crash comes while the answer is still on its way.
    fx.script("/tle", vec![Reply::ok(fixture("celestrak_gp_CATNR25544_FORMAT_TLE.txt")).slow(Duration::from_secs(60))]);
    fx.generate("/iss-now.json", |n| {
        Reply::ok(open_notify(
            Utc::now() - chrono::Duration::seconds(30) + chrono::Duration::milliseconds(n as i64),
            "1.0",
            "2.0",
        ))
    });
    let dir = tempfile::tempdir().unwrap();
    // Commits every 10 minutes: only a mark made durable at once survives the crash loop.
    let cfg =
        config(&fx, dir.path(), "").replace("commit_interval_s = 1", "commit_interval_s = 600\nfold_interval_s = 3600");
    let app = Outpost::start(dir.path(), &cfg).await;
    until("the TLE request", 30, || fx.requests_to("/tle").len() == 1).await;
    app.kill9().await;

    let app = Outpost::start(dir.path(), &cfg).await;
    // The collector has planned its first attempt: the rest of the 2 h refresh, not now.
    let s = app.wait_for("the TLE schedule", 30, |s| s["sources"]["iss_tle"]["next_attempt"].is_string()).await;
    let next: chrono::DateTime<Utc> = s["sources"]["iss_tle"]["next_attempt"].as_str().unwrap().parse().unwrap();
    assert!(next > Utc::now() + chrono::Duration::minutes(110), "next TLE attempt at {next}: {s:#}");
    // Other collectors keep polling meanwhile; CelesTrak is not asked again.
    let polls = |s: &serde_json::Value| s["sources"]["iss_position"]["polls"].as_u64().unwrap_or(0);
    app.wait_for("a few position polls", 30, |s| polls(s) >= 3).await;
    assert_eq!(fx.requests_to("/tle").len(), 1, "{:?}", fx.requests());
    assert!(app.stop().await.success());
}
