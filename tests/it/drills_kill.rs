//! Fault drill: `kill -9` at moments spread over every phase of the appliance's life while it
//! collects and syncs a backlog and live records to Kafka (Apache Kafka 4, KRaft): during
//! start-up, during journal replay, during steady commits and during folds. The kills are aimed
//! with the daemon's own log (the store's I/O trace, `outpost::store::io=trace`), and where each
//! landed is read back from the lines it wrote before it died. After each restart every position
//! a reader saw before a kill is still there, unchanged and once; at the end the log has no gap
//! and no duplicate, and Kafka holds every record of the log under its key (and nothing the log
//! lost).

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

const KILLS: usize = 40;
/// The daemon's log: debug, plus every write and sync of the store's files.
const LOG: &str = "info,outpost=debug,outpost::store::io=trace";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// From exec to serving, outside the journal's replay (config, the page check, wiring).
    Startup,
    /// After the page check, before the store is open: the journal is read, replayed into redb,
    /// made durable and reset.
    Replay,
    /// Serving, outside a fold: commits every second.
    Commit,
    /// A fold: from redb's first write of its durable commit to the journal's reset synced.
    Fold,
}

const PHASES: [Phase; 4] = [Phase::Startup, Phase::Replay, Phase::Commit, Phase::Fold];

fn message(v: &Value) -> &str {
    v["message"].as_str().unwrap_or("")
}

/// Where a process was when it died, from every line it wrote.
fn phase_of(log: &[String]) -> Phase {
    let mut phase = Phase::Startup;
    let mut serving = false;
    for v in log.iter().filter_map(|l| serde_json::from_str::<Value>(l).ok()) {
        match message(&v) {
            "the store's pages are intact" => phase = Phase::Replay,
            "store open" => phase = Phase::Startup,
            "serving the map and API" => {
                serving = true;
                phase = Phase::Commit;
            }
            // Steady commits do not write redb's file: their redb commits are not durable, and redb
            // keeps their pages in memory up to half its cache (4 MB, far more than the 2 s
            // between folds bring). Its first write is a fold's, which ends once the journal's
            // reset is synced.
            "store io" if serving && v["file"] == "db" => phase = Phase::Fold,
            "store io synced" if serving && v["file"] == "journal" => phase = Phase::Commit,
            _ => {}
        }
    }
    phase
}

/// Waits for a line of `app`'s log that `hit` accepts (at most `secs`).
async fn line_where(lines: &mut tokio::sync::mpsc::UnboundedReceiver<String>, secs: u64, hit: impl Fn(&Value) -> bool) {
    let wait = async {
        while let Some(line) = lines.recv().await {
            if serde_json::from_str::<Value>(&line).is_ok_and(|v| hit(&v)) {
                return true;
            }
        }
        false
    };
    assert!(
        tokio::time::timeout(std::time::Duration::from_secs(secs), wait).await.unwrap_or(false),
        "the log line to kill on did not come within {secs} s"
    );
}

async fn live_track(app: &Outpost, from: &str) -> Vec<Value> {
    let (code, t) = app.get(&format!("/api/iss/track?from={from}&max_points=50000")).await;
    assert_eq!(code, 200, "{t}");
    t["points"].as_array().unwrap().clone()
}

#[tokio::test]
async fn drills_kill_9_in_every_phase_while_collecting_and_syncing() {
    let started = Instant::now();
    let mut rng = rng("kill drill");
    let dir = tempfile::tempdir().unwrap();
    // A backlog, so the first runs are killed in the middle of a catch-up (and the page check
    // at start has pages to read).
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
    // Folds every 2 s, so a fold comes within a run.
    let cfg =
        config(&fx, dir.path(), &extra).replace("commit_interval_s = 1", "commit_interval_s = 1\nfold_interval_s = 2");
    let from = live_start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let env = [("OUTPOST_LOG", std::ffi::OsStr::new(LOG))];

    // What a reader saw just before each kill (readers only ever see committed records): the
    // live positions, and the last seq.
    let mut committed: Vec<Value> = Vec::new();
    let mut committed_seq = 0;
    let mut landed: BTreeMap<Phase, usize> = PHASES.iter().map(|p| (*p, 0)).collect();
    let mut rounds = Vec::new();
    for round in 0..KILLS {
        // Aim at each phase in turn; the order puts a replay after every fold and commit kill.
        let aim = PHASES[round % PHASES.len()];
        let mut launched = Launched::spawn(dir.path(), &cfg, &[bin()], &env);
        match aim {
            // The first line it writes: it has only just started.
            Phase::Startup => line_where(&mut launched.lines, 30, |_| true).await,
            // The page check is over: the journal is read and replayed next.
            Phase::Replay => {
                line_where(&mut launched.lines, 30, |v| message(v) == "the store's pages are intact").await
            }
            Phase::Commit | Phase::Fold => {
                let mut app = launched.serving().await;
                let now = live_track(&app, &from).await;
                assert!(
                    now.len() >= committed.len() && now[..committed.len()] == committed[..],
                    "run {round}: a position a reader saw before a kill is missing or changed\nbefore: {} positions\nafter: {} positions\nlog:\n{}",
                    committed.len(),
                    now.len(),
                    app.log()
                );
                let times: Vec<&str> = now.iter().map(|p| p["time"].as_str().unwrap()).collect();
                assert!(times.windows(2).all(|w| w[0] < w[1]), "run {round}: a position is stored twice");
                let seq = app.status().await["store"]["last_seq"].as_u64().unwrap();
                assert!(seq >= committed_seq, "run {round}: the log went back from seq {committed_seq} to {seq}");
                // A random part of a second of steady running first, so commits are hit at
                // different points of the batch cycle.
                tokio::time::sleep(std::time::Duration::from_millis(rng.u64(0..1_000))).await;
                committed = live_track(&app, &from).await;
                committed_seq = app.status().await["store"]["last_seq"].as_u64().unwrap();
                while app.lines.try_recv().is_ok() {} // only lines written from now on aim
                let file = if aim == Phase::Commit { "journal" } else { "db" };
                line_where(&mut app.lines, 30, |v| message(v) == "store io" && v["file"] == file && v["op"] == "write")
                    .await;
                launched = app.into_launched();
            }
        }
        launched.child.kill().await.unwrap();
        let phase = phase_of(&launched.every_line().await);
        *landed.get_mut(&phase).unwrap() += 1;
        rounds.push((aim, phase));
        next.fetch_sub(1.min(next.load(Ordering::SeqCst)), Ordering::SeqCst);
    }
    let summary: Vec<String> = landed.iter().map(|(p, n)| format!("{}={n}", format!("{p:?}").to_lowercase())).collect();
    println!("kills per phase: {}", summary.join(" "));
    eprintln!("kill drill: (aimed at, landed in) per kill: {rounds:?}");
    for (phase, n) in &landed {
        assert!(*n >= 1, "no kill landed in {phase:?}: {rounds:?}");
    }

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

/// The store writer panics (a bug; made on purpose with the test-only switch): the daemon must
/// not go on collecting into it. It logs why, `/healthz` names it while the process lasts, and
/// the process exits 1 at once (systemd's `Restart=on-failure` starts it again); the restart
/// has every record a reader saw, once.
#[tokio::test]
async fn a_dead_writer_ends_the_process_with_exit_1_and_the_restart_loses_nothing() {
    let fx = FixtureServer::start().await;
    let base = Utc::now() - Duration::hours(2);
    fx.generate("/iss-now.json", move |n| {
        Reply::ok(open_notify(
            base + Duration::seconds(n as i64),
            &format!("{:.4}", (n as f64 / 5.0).sin() * 40.0),
            "7.5",
        ))
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&fx, dir.path(), "");
    let from = base.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let env = [("OUTPOST_TEST_PANIC_WRITER_AFTER_SYNCS", std::ffi::OsStr::new("4"))];
    let mut app = Launched::spawn(dir.path(), &cfg, &[bin()], &env).serving().await;

    // Read as a reader would until the process is gone: what it saw was acknowledged.
    let mut seen: Vec<Value> = Vec::new();
    let mut unhealthy = None;
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    let exit = loop {
        if let Some(status) = app.try_exited() {
            break status;
        }
        assert!(Instant::now() < deadline, "the process did not end after the writer died; log:\n{}", app.log());
        if let Some((200, t)) = app.try_get(&format!("/api/iss/track?from={from}&max_points=50000")).await {
            seen = t["points"].as_array().unwrap().clone();
        }
        if let Some((503, body)) = app.try_get("/healthz").await {
            unhealthy.get_or_insert(body);
        }
    };
    assert_eq!(exit.code(), Some(1), "a dead writer exits 1 (README); log:\n{}", app.log());
    let log = app.log();
    assert!(log.contains("the store writer panicked") && log.contains("the store writer has died"), "{log}");
    if let Some(body) = &unhealthy {
        assert_eq!(body["status"], "store writer died", "{body}");
        assert_eq!(body["error"], "store writer", "names the part only (served without the password): {body}");
    }
    assert!(seen.len() >= 2, "positions were stored before the writer died: {}", seen.len());
    eprintln!(
        "dead writer: exit 1, {} positions acknowledged before it, /healthz 503 {}",
        seen.len(),
        if unhealthy.is_some() { "seen" } else { "not seen (the process ended first)" }
    );

    // systemd would start it again: everything acknowledged is there, once.
    let app = Outpost::start(dir.path(), &cfg).await;
    let after = live_track(&app, &from).await;
    assert_eq!(after[..seen.len()], seen[..], "every acknowledged position survived the writer's death");
    assert_eq!(app.get("/healthz").await.0, 200);
    assert!(app.stop().await.success());
    read_log(dir.path());
}
