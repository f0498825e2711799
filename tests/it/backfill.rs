//! After downtime the avalanche collector asks NVE for exactly the days it missed.

use crate::helpers::*;
use chrono::{Days, NaiveDate, Utc};

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

#[tokio::test]
async fn back_fill_after_downtime_asks_for_exactly_the_missed_days() {
    let today = oslo_today();
    let day = |n: i64| {
        if n >= 0 {
            today.checked_add_days(Days::new(n as u64)).unwrap()
        } else {
            today.checked_sub_days(Days::new((-n) as u64)).unwrap()
        }
    };
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
