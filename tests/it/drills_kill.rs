//! Fault drill: `kill -9` a hundred times at random moments while the appliance collects and
//! syncs a backlog and live records to Kafka (Apache Kafka 4, KRaft). Afterwards the log has no gap and no
//! duplicate, every position committed before any kill is still there unchanged, and Kafka holds
//! every record of the log under its key (and nothing the log lost).

use crate::drills::{new_warnings, read_log, rng};
use crate::helpers::*;
use crate::kafka::read_all;
use crate::servers::*;
use crate::upstreams::*;
use chrono::{Duration, Utc};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

const KILLS: usize = 100;
/// Each run lasts a random time below this before its kill: long enough for a commit (every
/// second), a fold (every 3 s) and several Kafka batches, short enough for 100 runs in ~2 minutes.
const MAX_RUN_MS: u64 = 2_000;

async fn live_track(app: &Outpost, from: &str) -> Vec<Value> {
    let (code, t) = app.get(&format!("/api/iss/track?from={from}&max_points=50000")).await;
    assert_eq!(code, 200, "{t}");
    t["points"].as_array().unwrap().clone()
}

#[tokio::test]
async fn drills_kill_9_a_hundred_times_while_collecting_and_syncing() {
    let started = Instant::now();
    let mut rng = rng("kill drill");
    let dir = tempfile::tempdir().unwrap();
    // A backlog, so the first runs are killed in the middle of a catch-up.
    let backlog = fill_store(dir.path(), 5_000).await;
    let broker = ApacheKafka::start(KafkaOpts::default()).await;

    let fx = FixtureServer::start().await;
    // Positions one second apart, after the backlog's last (an hour ago). The test moves the
    // counter back by one after each kill, so each restart is first served an answer it may
    // have stored.
    let live_start = Utc::now() - Duration::minutes(50);
    let next = Arc::new(AtomicU64::new(0));
    let n = next.clone();
    fx.generate("/iss-now.json", move |_| {
        let i = n.fetch_add(1, Ordering::SeqCst) as i64;
        Reply::ok(open_notify(
            live_start + Duration::seconds(i),
            &format!("{:.4}", (i as f64 / 9.0).sin() * 51.0),
            "10.5",
        ))
    });
    fx.script("/tle", vec![Reply::ok(fixture("celestrak_gp_CATNR25544_FORMAT_TLE.txt"))]);
    // Every start asks NVE again and gets five new warning versions.
    fx.generate("/nve", |n| Reply::ok(new_warnings(n)));
    let extra = format!("[kafka]\nbrokers = [\"127.0.0.1:{}\"]\nbatch_size = 100\n", broker.port);
    let cfg =
        config(&fx, dir.path(), &extra).replace("commit_interval_s = 1", "commit_interval_s = 1\nfold_interval_s = 3");
    let from = live_start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);

    // What the appliance had committed (readers only ever see committed records) just before
    // each kill: the live positions, and the last seq.
    let mut committed: Vec<Value> = Vec::new();
    let mut committed_seq = 0;
    let mut kill_moments = Vec::new();
    for round in 0..KILLS {
        let app = Outpost::start(dir.path(), &cfg).await;
        let now = live_track(&app, &from).await;
        assert!(
            now.len() >= committed.len() && now[..committed.len()] == committed[..],
            "run {round}: a position committed before the kill is missing or changed\nbefore: {} positions\nafter: {} positions\nlog:\n{}",
            committed.len(),
            now.len(),
            app.log()
        );
        let s = app.status().await;
        let seq = s["store"]["last_seq"].as_u64().unwrap();
        assert!(seq >= committed_seq, "run {round}: the log went back from seq {committed_seq} to {seq}");

        let run_ms = rng.u64(0..MAX_RUN_MS);
        kill_moments.push(run_ms);
        // The random kill moment itself (not a wait for a condition).
        tokio::time::sleep(std::time::Duration::from_millis(run_ms)).await;
        committed = live_track(&app, &from).await;
        committed_seq = app.status().await["store"]["last_seq"].as_u64().unwrap();
        app.kill9().await;
        next.fetch_sub(1.min(next.load(Ordering::SeqCst)), Ordering::SeqCst);
    }
    eprintln!("kill drill: kill moments (ms after serving): {kill_moments:?}");

    // One last clean run: it recovers, catches up with Kafka and stops. Collection stops first
    // (the upstream answers 503), so the log has an end for Kafka to reach.
    let app = Outpost::start(dir.path(), &cfg).await;
    let now = live_track(&app, &from).await;
    assert_eq!(now[..committed.len()], committed[..], "the last run kept every committed position");
    fx.script("/iss-now.json", vec![Reply::status(503, "drill over")]);
    app.wait_for("collection to stop", 30, |s| {
        s["sources"]["iss_position"]["failures"].as_u64().unwrap_or(0) > 0 && s["writer"]["pending"] == 0
    })
    .await;
    app.wait_for("Kafka to catch up", 120, |s| {
        s["sinks"]["kafka"]["backlog"] == 0 && s["sinks"]["kafka"]["connected"] == true
    })
    .await;
    assert!(app.stop().await.success());

    let log = read_log(dir.path());
    let last = log.last().unwrap().seq;
    assert!(last >= committed_seq && last > backlog, "log ends at {last}");
    assert_eq!(stored_cursor(dir.path(), "kafka"), last, "the Kafka cursor is at the end of the log");
    let positions = log.iter().filter(|r| r.record.kind() == outpost::domain::Kind::IssPosition).count();
    let warnings = log.iter().filter(|r| r.record.kind() == outpost::domain::Kind::AvalancheWarning).count();

    // Kafka: every record of the log under its key with its seq, and nothing else.
    let (all, keys) = read_all(broker.port).await;
    let by_id: BTreeMap<String, u64> = log.iter().map(|r| (r.id(), r.seq)).collect();
    for (seq, m) in &all {
        let key = m["key"].as_str().unwrap();
        assert_eq!(by_id.get(key), Some(seq), "Kafka has {key} at seq {seq}, the log does not");
    }
    let missing: Vec<&String> = by_id.keys().filter(|id| !keys.contains_key(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} records of the log never reached Kafka, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let resent = all.len() - by_id.len();
    eprintln!(
        "kill drill: {KILLS} kills; log: {last} records ({positions} positions, {warnings} warnings), \
         no gap, no duplicate; Kafka: every record, {resent} resent; {:.0} s",
        started.elapsed().as_secs_f64()
    );
}
