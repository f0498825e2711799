//! The format-1 -> 2 store upgrade (the coarse track index), applied in place by `outpost run`,
//! survives kill -9 mid-way: the restart resumes it, and the upgraded store answers track queries
//! exactly as a store written by this build does.

use crate::helpers::*;
use crate::upstreams::{simulated_position, write_store};
use chrono::{Duration, Utc};
use serde_json::Value;
use std::path::Path;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};

const DB: &str = "outpost.redb";
const COARSE: redb::TableDefinition<u64, (i64, i32, i32, u64)> = redb::TableDefinition::new("iss_track_coarse");
const META: redb::TableDefinition<&str, &str> = redb::TableDefinition::new("meta");

/// Enough positions for several durable steps of the upgrade (one per 131,072 positions), so a
/// kill at the first progress line lands with most of the work still to do.
const POSITIONS: usize = 600_000;

/// Makes a format-2 store what format 1 wrote: no coarse index, `store_format` "1".
fn downgrade_to_format_1(dir: &Path) {
    let db = redb::Database::create(dir.join(DB)).unwrap();
    let txn = db.begin_write().unwrap();
    assert!(txn.delete_table(COARSE).unwrap(), "a format-2 store has the coarse index");
    txn.open_table(META).unwrap().insert("store_format", "1").unwrap();
    txn.commit().unwrap();
}

fn copy_store(from: &Path, to: &Path) {
    for f in [DB, "outpost.wal"] {
        std::fs::copy(from.join(f), to.join(f)).unwrap();
    }
}

/// Starts `outpost run` on the format-1 store in `dir` and kills it (SIGKILL) as soon as its log
/// says the upgrade is in progress. Returns the log up to the kill.
async fn kill_mid_upgrade(dir: &Path, config: &str) -> Vec<String> {
    let config_path = dir.join("outpost.toml");
    std::fs::write(&config_path, config).unwrap();
    let mut child = tokio::process::Command::new(bin())
        .args(["--log-format", "json", "run", "--config"])
        .arg(&config_path)
        .env("OUTPOST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(180);
    loop {
        let line = match tokio::time::timeout_at(deadline, lines.next_line()).await {
            Ok(Ok(Some(line))) => line,
            other => panic!("no upgrade progress logged ({other:?}); log:\n{}", log.join("\n")),
        };
        let message = serde_json::from_str::<Value>(&line).map(|v| v["message"].as_str().unwrap_or("").to_owned());
        log.push(line);
        if message.is_ok_and(|m| m.starts_with("store upgrade in progress")) {
            child.start_kill().unwrap();
            child.wait().await.unwrap();
            return log;
        }
    }
}

async fn track(app: &Outpost, query: &str) -> Value {
    let (code, v) = app.get(&format!("/api/iss/track?{query}")).await;
    assert_eq!(code, 200, "{query}: {v}");
    v
}

#[tokio::test]
async fn an_upgrade_killed_mid_way_resumes_and_answers_as_a_fresh_store() {
    let fx = FixtureServer::start().await; // answers 404: nothing new is stored
    let fresh = tempfile::tempdir().unwrap();
    let end = Utc::now() - Duration::hours(1);
    let start = end - Duration::seconds(10 * POSITIONS as i64);
    write_store(fresh.path(), move |w| {
        for i in 0..POSITIONS {
            w.append(simulated_position(start + Duration::seconds(10 * i as i64), i));
        }
    })
    .await;
    let old = tempfile::tempdir().unwrap();
    // A kill can land after the last durable step (the process runs on without waiting for us);
    // then the restart has nothing to resume, and the round is repeated on a new format-1 copy.
    let mut resumed_at = None;
    for round in 0..5 {
        copy_store(fresh.path(), old.path());
        downgrade_to_format_1(old.path());
        let before = kill_mid_upgrade(old.path(), &config(&fx, old.path(), "")).await;
        assert!(
            before.iter().any(|l| l.contains("upgrading the store from format 1 to 2")),
            "round {round}: the upgrade started; log:\n{}",
            before.join("\n")
        );
        let app = Outpost::start(old.path(), &config(&fx, old.path(), "")).await;
        let log = app.log();
        let resume = log.lines().find(|l| l.contains("resuming the store upgrade")).map(str::to_owned);
        if let Some(line) = resume {
            assert!(log.contains("store upgraded to format 2"), "round {round}: the upgrade completed; log:\n{log}");
            let done = serde_json::from_str::<Value>(&line).unwrap()["done"].as_u64().unwrap();
            assert!(done > 0 && done < POSITIONS as u64, "round {round}: resumed mid-way: {line}");
            resumed_at = Some((done, app));
            break;
        }
        println!("round {round}: the kill landed after the upgrade's last durable step; again");
        app.stop().await;
    }
    let Some((done, upgraded)) = resumed_at else { panic!("no kill landed mid-upgrade in 5 rounds") };
    println!("killed mid-upgrade; the restart resumed at position {done} of {POSITIONS}");

    let reference = Outpost::start(fresh.path(), &config(&fx, fresh.path(), "")).await;
    let at = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let (from, to, mid) = (at(start - Duration::minutes(1)), at(end), at(start + Duration::days(20)));
    for query in [
        format!("from={from}&to={to}&max_points=2000"),
        format!("from={from}&to={to}&max_points=37"),
        format!("from={from}&to={to}"),
        format!("from={mid}&to={to}&max_points=500"),
        format!("from={from}&to={mid}&max_points=1"),
        format!("from={}&to={to}", at(end - Duration::days(1))),
    ] {
        let (a, b) = (track(&upgraded, &query).await, track(&reference, &query).await);
        assert!(!a["points"].as_array().unwrap().is_empty(), "{query}");
        assert_eq!(a, b, "{query}: the upgraded store answers as the fresh one");
    }
    let (a, b) = (upgraded.status().await, reference.status().await);
    assert_eq!(stored_counts(&a), stored_counts(&b));
    assert!(stored_counts(&a).contains(&("iss.position".to_owned(), POSITIONS as u64)), "{:?}", stored_counts(&a));
    upgraded.stop().await;
    reference.stop().await;

    // A restart of the upgraded store has nothing left to do.
    let again = Outpost::start(old.path(), &config(&fx, old.path(), "")).await;
    let log = again.log();
    assert!(
        !log.contains("upgrading the store") && !log.contains("resuming the store upgrade"),
        "no second upgrade; log:\n{log}"
    );
    again.stop().await;
}

fn stored_counts(status: &Value) -> Vec<(String, u64)> {
    status["store"]["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["kind"].as_str().unwrap().to_owned(), k["count"].as_u64().unwrap()))
        .collect()
}
