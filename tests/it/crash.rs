//! kill -9 of a running appliance loses nothing it had committed and stores nothing twice.

use crate::helpers::*;
use chrono::{Duration, Utc};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

async fn track(app: &Outpost, from: &str) -> Vec<Value> {
    let (code, t) = app.get(&format!("/api/iss/track?from={from}")).await;
    assert_eq!(code, 200);
    assert_eq!(t["total"].as_u64().unwrap() as usize, t["points"].as_array().unwrap().len());
    t["points"].as_array().unwrap().clone()
}

#[tokio::test]
async fn kill_9_loses_nothing_committed_and_stores_nothing_twice() {
    let fx = FixtureServer::start().await;
    let base = Utc::now() - Duration::hours(6);
    // The test moves this counter back after each kill, so the restarted appliance is first
    // served answers it may already have stored.
    let next = Arc::new(AtomicU64::new(0));
    let n = next.clone();
    fx.generate("/iss-now.json", move |_| {
        let i = n.fetch_add(1, Ordering::SeqCst) as i64;
        Reply::ok(open_notify(
            base + Duration::seconds(10 * i),
            &format!("{:.4}", (i as f64 / 7.0).sin() * 50.0),
            "12.5",
        ))
    });
    let dir = tempfile::tempdir().unwrap();
    // A long fold interval: everything after start lives only in the journal when killed.
    let cfg =
        config(&fx, dir.path(), "").replace("commit_interval_s = 1", "commit_interval_s = 1\nfold_interval_s = 3600");
    let from = base.date_naive().to_string();
    let mut committed: Vec<Value> = Vec::new();
    for round in 0..3 {
        let app = Outpost::start(dir.path(), &cfg).await;
        if round > 0 {
            let open = app.log().lines().find(|l| l.contains("store open")).map(str::to_owned).unwrap();
            let replayed: Value = serde_json::from_str(&open).unwrap();
            assert!(
                replayed["replayed"].as_u64().unwrap() >= 4,
                "round {round}: the journal brought records back: {open}"
            );
        }
        let have = committed.len() as u64;
        app.wait_for("4 more positions", 30, |s| stored(s, "iss.position") >= have + 4).await;
        let now = track(&app, &from).await;
        assert_eq!(
            &now[..committed.len()],
            &committed[..],
            "round {round}: every committed position survived, unchanged"
        );
        let times: Vec<&str> = now.iter().map(|p| p["time"].as_str().unwrap()).collect();
        assert!(times.windows(2).all(|w| w[0] < w[1]), "round {round}: no duplicates, in order");
        committed = now;
        app.kill9().await;
        next.fetch_sub(2.min(next.load(Ordering::SeqCst)), Ordering::SeqCst);
    }
    let app = Outpost::start(dir.path(), &cfg).await;
    let after = track(&app, &from).await;
    assert_eq!(&after[..committed.len()], &committed[..]);
    let s = app
        .wait_for("a repeated answer refused", 30, |s| rejections(s, "iss_position", "time_not_after_last") >= 1)
        .await;
    assert!(stored(&s, "iss.position") >= committed.len() as u64);
    assert!(app.stop().await.success());
}
