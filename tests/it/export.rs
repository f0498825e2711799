//! `outpost export`: the same rows as the live sinks, streamed, with or without a running daemon.

use crate::helpers::*;
use crate::upstreams::*;
use outpost::domain::StoredRecord;
use outpost::store::{Store, StoreOptions};
use std::process::Command;

fn export(cfg: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin()).arg("export").arg("--config").arg(cfg).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// The stored records of `kind`, read through the library (no daemon running).
fn records(dir: &std::path::Path, kind: &str) -> Vec<StoredRecord> {
    let (store, writer, _) = Store::open(dir, "it", StoreOptions::default()).unwrap();
    drop(writer);
    store.read_after(0, 1_000_000).unwrap().into_iter().filter(|r| r.record.kind().as_str() == kind).collect()
}

#[tokio::test]
async fn every_format_holds_exactly_the_rows_the_live_sinks_write() {
    let dir = tempfile::tempdir().unwrap();
    fill_store(dir.path(), 300).await;
    let fx = FixtureServer::start().await;
    let cfg_path = dir.path().join("outpost.toml");
    std::fs::write(&cfg_path, config(&fx, dir.path(), "")).unwrap();
    let positions = records(dir.path(), "iss.position");
    let warnings = records(dir.path(), "avalanche.warning");
    assert_eq!((positions.len(), warnings.len()), (300, 5));

    let (code, jsonl, err) = export(&cfg_path, &["--format", "jsonl", "--kind", "iss"]);
    assert_eq!(code, 0, "{err}");
    let expected: Vec<String> =
        positions.iter().map(|r| serde_json::to_string(&outpost::message::message(r)).unwrap()).collect();
    assert_eq!(jsonl.lines().collect::<Vec<_>>(), expected, "jsonl lines are the Kafka message values");

    let (code, csv, err) = export(&cfg_path, &["--format", "csv", "--kind", "avalanche"]);
    assert_eq!(code, 0, "{err}");
    let table = cql_export::Table::AvalancheWarning;
    let mut want = vec![cql_export::csv_header(table)];
    for r in &warnings {
        want.push(cql_export::csv_line(&cql_export::row(&outpost::message::message(r)).unwrap()));
    }
    assert_eq!(csv, want.join("\n") + "\n");

    let out = dir.path().join("iss.cql");
    let (code, _, err) = export(&cfg_path, &["--format", "cql", "--kind", "iss", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("exported 300 records"), "{err}");
    let cql = std::fs::read_to_string(&out).unwrap();
    assert!(cql.contains("CREATE KEYSPACE IF NOT EXISTS outpost"), "the file is loadable on an empty cluster");
    let inserts: Vec<&str> = cql.lines().filter(|l| l.starts_with("INSERT INTO")).collect();
    assert_eq!(inserts.len(), 300);
    let row = cql_export::row(&outpost::message::message(&positions[7])).unwrap();
    assert_eq!(inserts[7], cql_export::insert_literal(&row, "outpost"));
    assert!(!dir.path().join("iss.partial").exists(), "the temporary file was renamed");
}

#[tokio::test]
async fn dates_filter_and_a_running_daemon_serves_the_same_export() {
    let dir = tempfile::tempdir().unwrap();
    fill_store(dir.path(), 20_000).await; // ~2.3 days of positions
    let fx = FixtureServer::start().await;
    let cfg = config(&fx, dir.path(), "");
    let positions = records(dir.path(), "iss.position");
    let day = positions[10_000].record.source_time().date_naive().to_string();
    let on_day = positions.iter().filter(|r| r.record.source_time().date_naive().to_string() == day).count();
    let cfg_path = dir.path().join("outpost.toml");
    std::fs::write(&cfg_path, &cfg).unwrap();
    let (code, direct, err) = export(&cfg_path, &["--format", "jsonl", "--kind", "iss", "--from", &day, "--to", &day]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(direct.lines().count(), on_day);
    assert!(direct.lines().all(|l| l.contains(&format!("\"time\":\"{day}T"))));

    // While `outpost run` holds the store, the same export comes from the daemon.
    let app = Outpost::start(dir.path(), &cfg).await;
    std::fs::write(&cfg_path, cfg.replace("127.0.0.1:0", &app.addr.to_string())).unwrap();
    let (code, via_daemon, err) =
        export(&cfg_path, &["--format", "jsonl", "--kind", "iss", "--from", &day, "--to", &day]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(via_daemon, direct);
    let (code, body) = app.get("/api/export?kind=iss&format=parquet").await;
    assert_eq!(code, 400, "{body}");
    assert!(app.stop().await.success());

    let (code, _, err) = export(&cfg_path, &["--format", "xml", "--kind", "iss"]);
    assert_eq!(code, 2, "clap refuses an unknown format: {err}");
    let (code, _, err) = export(&cfg_path, &["--format", "jsonl", "--kind", "iss", "--to", "+262142-12-31"]);
    assert_eq!(code, 2, "a signed year is refused: {err}");
    assert!(err.contains("--to"), "{err}");
}
