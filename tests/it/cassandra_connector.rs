//! The Cassandra sink as a production connector, against real Apache Cassandra 5.0 nodes the
//! tests start (tests/it/servers.rs), read back with the DataStax Python driver and cqlsh: no
//! tombstones and no server warning during a week's back-fill, every record exactly one row with
//! the log's values, export parity (cqlsh -f and COPY FROM), a record that cannot be mapped set
//! aside while the rest arrives, `create_schema = false`, SIGKILL of the node mid-sync, and TLS
//! with a private CA checked against the configured host name.

use crate::helpers::*;
use crate::servers::*;
use crate::upstreams::*;
use chrono::{Duration, TimeZone, Utc};
use outpost::domain::{IssPosition, Record, StoredRecord};
use outpost::store::{Store, StoreOptions};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

fn sink(s: &Value) -> &Value {
    &s["sinks"]["cassandra"]
}

fn synced(s: &Value) -> bool {
    sink(s)["backlog"] == 0 && sink(s)["connected"] == true
}

fn cassandra_toml(node: &str, keyspace: &str, more: &str) -> String {
    format!("[cassandra]\nnodes = [\"{node}\"]\nkeyspace = \"{keyspace}\"\nconsistency = \"one\"\n{more}")
}

/// Every stored record, read through the library (no daemon running).
fn log_records(dir: &Path) -> Vec<StoredRecord> {
    let (store, writer, _) = Store::open(dir, "it", StoreOptions::default()).unwrap();
    drop(writer);
    store.read_after(0, 10_000_000).unwrap()
}

/// A day's `iss_position` partition as cql_read.py --trace reports it: (live rows, tombstone cells).
fn read_counts(trace: &[String]) -> (u64, u64) {
    let line = trace
        .iter()
        .find(|l| l.starts_with("Read ") && l.contains(" live rows and "))
        .unwrap_or_else(|| panic!("no read summary in the trace:\n{}", trace.join("\n")));
    let words: Vec<&str> = line.split_whitespace().collect();
    (words[1].parse().unwrap(), words[5].parse().unwrap())
}

const POSITION_SELECT: &str = "SELECT station, CAST(day AS text) AS day, toUnixTimestamp(time) AS time_ms, \
     CAST(latitude AS text) AS latitude, CAST(longitude AS text) AS longitude, \
     CAST(altitude_km AS text) AS altitude_km, CAST(velocity_kmh AS text) AS velocity_kmh, visibility, record_id, seq";
const WARNING_SELECT: &str = "SELECT region_id, CAST(valid_date AS text) AS valid_date, \
     toUnixTimestamp(publish_time) AS publish_ms, reg_id, region_name, region_type, lang, danger_level, \
     toUnixTimestamp(valid_from) AS from_ms, toUnixTimestamp(valid_to) AS to_ms, \
     toUnixTimestamp(next_warning_time) AS next_ms, main_text, avalanche_danger, advice, problems, station, \
     record_id, seq";

/// Every row of a keyspace's position and warning tables, keyed by record id.
async fn rows(cassandra: &Cassandra, keyspace: &str) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for select in [POSITION_SELECT, WARNING_SELECT] {
        let table = if select == POSITION_SELECT { "iss_position" } else { "avalanche_warning" };
        for row in cassandra.query(&format!("{select} FROM {keyspace}.{table}")).await {
            let id = row["record_id"].as_str().unwrap().to_owned();
            assert!(out.insert(id.clone(), row).is_none(), "two rows for {id}");
        }
    }
    out
}

fn double(v: &Value) -> Option<f64> {
    v.as_str().map(|s| s.parse::<f64>().unwrap())
}

/// Asserts that `rows` holds exactly one row per position and warning of the log, with the log's
/// values (the domain's, not cql-export's): timestamps to the ms, dates, doubles, the advice
/// list and the problems text.
fn assert_rows_equal_the_log(log: &[StoredRecord], rows: &BTreeMap<String, Value>, skip: &[u64]) {
    let mut expected = 0;
    for rec in log.iter().filter(|r| !skip.contains(&r.seq)) {
        let id = rec.id();
        match &rec.record {
            Record::IssPosition(p) => {
                let row = rows.get(&id).unwrap_or_else(|| panic!("no row for record {} ({id})", rec.seq));
                assert_eq!(row["station"], rec.station.as_str());
                assert_eq!(row["day"], p.time.date_naive().to_string(), "{id}");
                assert_eq!(row["time_ms"].as_i64(), Some(p.time.timestamp_millis()), "{id}");
                assert_eq!(double(&row["latitude"]), Some(p.latitude), "{id}");
                assert_eq!(double(&row["longitude"]), Some(p.longitude), "{id}");
                assert_eq!(double(&row["altitude_km"]), p.altitude_km, "{id}");
                assert_eq!(double(&row["velocity_kmh"]), p.velocity_kmh, "{id}");
                let visibility = p.visibility.map(|v| serde_json::to_value(v).unwrap()).unwrap_or(Value::Null);
                assert_eq!(row["visibility"], visibility, "{id}");
                assert_eq!(row["seq"].as_u64(), Some(rec.seq), "{id}");
            }
            Record::AvalancheWarning(w) => {
                let row = rows.get(&id).unwrap_or_else(|| panic!("no row for record {} ({id})", rec.seq));
                assert_eq!(row["region_id"].as_u64(), Some(w.region_id.into()));
                assert_eq!(row["valid_date"], w.valid_date.to_string());
                assert_eq!(row["publish_ms"].as_i64(), Some(w.publish_time.timestamp_millis()));
                assert_eq!(row["reg_id"].as_u64(), Some(w.reg_id));
                assert_eq!(row["region_name"], w.region_name.as_str());
                assert_eq!(row["from_ms"].as_i64(), Some(w.valid_from.timestamp_millis()));
                assert_eq!(row["to_ms"].as_i64(), Some(w.valid_to.timestamp_millis()));
                assert_eq!(row["next_ms"].as_i64(), w.next_warning_time.map(|t| t.timestamp_millis()));
                assert_eq!(row["main_text"], w.main_text.replace("\r\n", "\n").as_str());
                assert_eq!(row["advice"], serde_json::to_value(&w.advice).unwrap(), "the frozen list, in order");
                let message = outpost::message::message(rec);
                assert_eq!(row["problems"], message["problems"].to_string(), "the problems as compact JSON text");
                assert_eq!(row["seq"].as_u64(), Some(rec.seq));
            }
            _ => continue,
        }
        expected += 1;
    }
    assert_eq!(rows.len(), expected, "exactly one row per record, nothing else");
}

#[tokio::test]
async fn a_weeks_backlog_writes_no_tombstone_no_warning_and_the_logs_values_and_exports_match() {
    let cassandra = Cassandra::start(CassandraOpts::default()).await;
    let node = cassandra.node();
    let dir = tempfile::tempdir().unwrap();
    // A week at open-notify's 10 s: every position lacks velocity and visibility.
    let total = fill_store(dir.path(), 7 * 8_640).await;
    let fx = FixtureServer::start().await;
    let keyspace = "outpost_week";
    let log_before = cassandra.log().len();
    let app = Outpost::start(dir.path(), &config(&fx, dir.path(), &cassandra_toml(&node, keyspace, ""))).await;
    let s = app.wait_for("the week's sync", 900, synced).await;
    assert_eq!(sink(&s)["delivered"].as_u64(), Some(total));
    assert!(app.stop().await.success());

    let during: Vec<String> = cassandra.log()[log_before..]
        .lines()
        .filter(|l| l.starts_with("WARN") || l.starts_with("ERROR"))
        // A long GC pause is the JVM's answer to a busy 2-core machine, not to what was written
        // (tombstones, large batches and slow queries are what this test is after).
        .filter(|l| !l.contains("GCInspector.java"))
        .map(str::to_owned)
        .collect();
    assert!(during.is_empty(), "the node logged during the sync:\n{}", during.join("\n"));

    let log = log_records(dir.path());
    let day = log
        .iter()
        .find_map(|r| match &r.record {
            Record::IssPosition(p) if r.seq > total / 2 => Some(p.time.date_naive()),
            _ => None,
        })
        .unwrap();
    let trace =
        cassandra.trace(&format!("SELECT * FROM {keyspace}.iss_position WHERE station = 'it' AND day = '{day}'")).await;
    let (live, tombstones) = read_counts(&trace);
    assert_eq!((live, tombstones), (8_640, 0), "a whole day, no tombstone: {}", trace.join("\n"));
    for region in cassandra.query(&format!("SELECT DISTINCT region_id FROM {keyspace}.avalanche_warning")).await {
        let region = region["region_id"].as_i64().unwrap();
        let trace =
            cassandra.trace(&format!("SELECT * FROM {keyspace}.avalanche_warning WHERE region_id = {region}")).await;
        let (live, tombstones) = read_counts(&trace);
        assert!(live > 0 && tombstones == 0, "region {region}: {}", trace.join("\n"));
    }
    // The trace does not count a non-frozen list's deletion (see below): the type says it.
    let advice = cassandra
        .query(&format!(
            "SELECT type FROM system_schema.columns WHERE keyspace_name = '{keyspace}' \
             AND table_name = 'avalanche_warning' AND column_name = 'advice'"
        ))
        .await;
    assert_eq!(advice[0]["type"], "frozen<list<text>>");
    // The trace does see tombstones: what the old schema and null binding wrote.
    cassandra
        .query(&format!(
            "CREATE TABLE {keyspace}.old_style (k int, c int, advice list<text>, note text, PRIMARY KEY (k, c))"
        ))
        .await;
    cassandra.query(&format!("INSERT INTO {keyspace}.old_style (k, c, advice) VALUES (1, 1, ['a'])")).await;
    cassandra.query(&format!("INSERT INTO {keyspace}.old_style (k, c, note) VALUES (2, 1, null)")).await;
    let old = async |k: u32| {
        read_counts(&cassandra.trace(&format!("SELECT * FROM {keyspace}.old_style WHERE k = {k}")).await).1
    };
    let (list, null) = (old(1).await, old(2).await);
    // Cassandra 5.0.9 reports 0 for the list row: its trace does not count the collection's
    // deletion, hence the type check above.
    eprintln!("old style: a non-frozen list row reads {list} tombstone(s), a null-bound row {null}");
    assert!(null >= 1, "the trace counts a null cell as a tombstone");

    let live = rows(&cassandra, keyspace).await;
    assert_rows_equal_the_log(&log, &live, &[]);

    // Export parity: `outpost export` (one day of positions, and the warnings) loaded with the
    // real cqlsh, once as CQL (cqlsh -f) and once as CSV (COPY FROM), gives the live sink's rows.
    let day_text = day.to_string();
    let expected: BTreeMap<&String, &Value> =
        live.iter().filter(|(_, r)| r.get("day").is_none_or(|d| *d == day_text.as_str())).collect();
    for (format, target) in [("cql", "outpost_from_cql"), ("csv", "outpost_from_csv")] {
        let cfg = dir.path().join(format!("export-{format}.toml"));
        std::fs::write(&cfg, config(&fx, dir.path(), &cassandra_toml(&node, target, ""))).unwrap();
        if format == "csv" {
            cassandra.query(&cql_export::keyspace_cql(target, cql_export::DEFAULT_REPLICATION).unwrap()).await;
            for table in cql_export::Table::ALL {
                cassandra.query(&table.create_cql(target).unwrap()).await;
            }
        }
        // The warnings' CSV is loaded by the ignored test below (cqlsh hangs on it).
        let kinds: &[&str] = if format == "csv" { &["iss"] } else { &["iss", "avalanche"] };
        for &kind in kinds {
            let file = dir.path().join(format!("{kind}.{format}"));
            let out = std::process::Command::new(bin())
                .args(["export", "--config"])
                .arg(&cfg)
                .args(["--format", format, "--kind", kind])
                .args(if kind == "iss" { vec!["--from", &day_text, "--to", &day_text] } else { vec![] })
                .arg("--out")
                .arg(&file)
                .output()
                .unwrap();
            assert!(out.status.success(), "export: {}", String::from_utf8_lossy(&out.stderr));
            let mut cqlsh_cmd = tokio::process::Command::new(cqlsh());
            cqlsh_cmd.args(["127.0.0.1", &cassandra.port.to_string(), "--request-timeout", "120"]);
            if format == "cql" {
                cqlsh_cmd.arg("-f").arg(&file);
            } else {
                let table =
                    if kind == "iss" { cql_export::Table::IssPosition } else { cql_export::Table::AvalancheWarning };
                cqlsh_cmd.arg("-e").arg(cql_export::copy_from_cql(table, target, &file.display().to_string()));
            }
            let out = cqlsh_cmd.output().await.unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success() && !err.contains("Error"), "cqlsh {format} {kind}: {err}");
        }
        let loaded = rows(&cassandra, target).await;
        let expected: Vec<_> = expected.iter().filter(|(_, r)| format == "cql" || r.get("day").is_some()).collect();
        assert_eq!(loaded.len(), expected.len(), "{format}: every row loaded");
        for &(&id, &row) in &expected {
            assert_eq!(loaded.get(id), Some(row), "{format}: {id}");
        }
    }
}

/// A store of positions in 2020 with one record cql-export cannot map at index `poison` (a
/// latitude of 95°: the domain type holds any f64, the mapping checks the range).
async fn store_with_poison(dir: &Path, n: usize, poison: usize) -> u64 {
    write_store(dir, move |handle| {
        let start = Utc.with_ymd_and_hms(2020, 6, 29, 0, 0, 0).unwrap();
        for i in 0..n {
            handle.append(Record::IssPosition(IssPosition {
                time: start + Duration::seconds(10 * i as i64),
                latitude: if i == poison { 95.0 } else { 10.5 },
                longitude: 20.25,
                altitude_km: None,
                velocity_kmh: None,
                visibility: None,
            }));
        }
    })
    .await
}

#[tokio::test]
async fn a_record_that_cannot_be_mapped_is_set_aside_and_the_rest_arrives_and_existing_schemas_are_used() {
    let cassandra = Cassandra::start(CassandraOpts::default()).await;
    let node = cassandra.node();
    let fx = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    // The poison record in the middle of the first batch: the records before it are written
    // first, then it is refused, then the rest follows.
    let total = store_with_poison(dir.path(), 1_000, 137).await;
    let keyspace = "outpost_poison";
    let app = Outpost::start(dir.path(), &config(&fx, dir.path(), &cassandra_toml(&node, keyspace, ""))).await;
    let s = app.wait_for("the sync past the poison record", 120, synced).await;
    assert_eq!(sink(&s)["dead_letters"].as_u64(), Some(1), "{:#}", sink(&s));
    assert!(app.stop().await.success());
    let log = log_records(dir.path());
    let poison = log[137].seq;
    let (store, writer, _) = Store::open(dir.path(), "it", StoreOptions::default()).unwrap();
    drop(writer);
    let dead = store.dead_letters(Some("cassandra")).unwrap();
    drop(store);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].seq, poison);
    assert!(dead[0].reason.contains("latitude"), "{}", dead[0].reason);
    let live = rows(&cassandra, keyspace).await;
    assert_rows_equal_the_log(&log, &live, &[poison]);

    // create_schema = false against the keyspace that exists now: delivers.
    let dir2 = tempfile::tempdir().unwrap();
    let more = fill_store(dir2.path(), 300).await;
    let cfg = config(&fx, dir2.path(), &cassandra_toml(&node, keyspace, "create_schema = false\n"));
    let app = Outpost::start(dir2.path(), &cfg).await;
    app.wait_for("the sync into the existing keyspace", 120, synced).await;
    assert!(app.stop().await.success());
    let n = cassandra.query(&format!("SELECT count(*) AS n FROM {keyspace}.iss_position")).await[0]["n"].as_u64();
    assert_eq!(n, Some(total - 1 + more - 5));

    // A table made by the old schema (a non-frozen `advice list<text>`), migrated as the
    // README says; then the sink writes into it with no tombstone.
    let old = "outpost_old";
    cassandra.query(&cql_export::keyspace_cql(old, cql_export::DEFAULT_REPLICATION).unwrap()).await;
    let table = cql_export::Table::AvalancheWarning;
    let old_cql = table.create_cql(old).unwrap().replace("frozen<list<text>>", "list<text>");
    assert!(old_cql.contains("advice list<text>"), "{old_cql}");
    cassandra.query(&old_cql).await;
    // Cassandra refuses to re-add a dropped column with another type ("incompatible with
    // previously dropped column"): the table is dropped, and Outpost creates it again.
    cassandra.query(&format!("DROP TABLE {old}.avalanche_warning")).await;
    let dir_old = tempfile::tempdir().unwrap();
    fill_store(dir_old.path(), 50).await;
    let app = Outpost::start(dir_old.path(), &config(&fx, dir_old.path(), &cassandra_toml(&node, old, ""))).await;
    app.wait_for("the sync into the migrated table", 120, synced).await;
    assert!(app.stop().await.success());
    let log2 = log_records(dir_old.path());
    assert_rows_equal_the_log(&log2, &rows(&cassandra, old).await, &[]);
    for region in cassandra.query(&format!("SELECT DISTINCT region_id FROM {old}.avalanche_warning")).await {
        let region = region["region_id"].as_i64().unwrap();
        let trace = cassandra.trace(&format!("SELECT * FROM {old}.avalanche_warning WHERE region_id = {region}")).await;
        assert_eq!(read_counts(&trace).1, 0, "the migrated table: {}", trace.join("\n"));
    }

    // ... and against a keyspace that does not exist: a clear error, nothing sent.
    let cfg = config(&fx, dir2.path(), &cassandra_toml(&node, "outpost_missing", "create_schema = false\n"));
    let dir3 = tempfile::tempdir().unwrap();
    let total3 = fill_store(dir3.path(), 50).await;
    let cfg = cfg.replace(&dir2.path().display().to_string(), &dir3.path().display().to_string());
    let app = Outpost::start(dir3.path(), &cfg).await;
    let s = app.wait_for("the missing keyspace to be reported", 60, |s| sink(s)["last_error"].is_string()).await;
    let error = sink(&s)["last_error"].as_str().unwrap();
    assert!(error.contains("keyspace does not exist") && error.contains("create_schema"), "{error}");
    assert_eq!(sink(&s)["backlog"].as_u64(), Some(total3));
    assert!(app.stop().await.success());
}

/// Cassandra killed with SIGKILL mid-sync and restarted on the same data: the sync resumes and
/// every record has exactly its row. The node runs `commitlog_sync: batch`, so what it
/// acknowledged is on disk: with the default periodic commit log (synced every 10 s) a killed
/// node loses writes it already acknowledged, which no client can see or repair (the README's
/// Cassandra section says so).
#[tokio::test]
async fn the_node_killed_mid_sync_and_restarted_leaves_no_gap() {
    let mut cassandra = Cassandra::start(CassandraOpts { durable_commitlog: true, ..CassandraOpts::default() }).await;
    let node = cassandra.node();
    let dir = tempfile::tempdir().unwrap();
    let total = fill_store(dir.path(), 40_000).await;
    let fx = FixtureServer::start().await;
    let keyspace = "outpost_crash";
    let app =
        Outpost::start(dir.path(), &config(&fx, dir.path(), &cassandra_toml(&node, keyspace, "batch_size = 100\n")))
            .await;
    let s = app
        .wait_for("part of the sync", 300, |s| {
            sink(s)["delivered"].as_u64().is_some_and(|d| d >= 2_000) && sink(s)["backlog"] != 0
        })
        .await;
    cassandra.kill9();
    eprintln!("killed the node at delivered = {}", sink(&s)["delivered"]);
    app.wait_for("the sink to report the node down", 120, |s| sink(s)["connected"] == false).await;
    let stalled = app.status().await;
    assert_ne!(sink(&stalled)["backlog"], 0, "the node died before the end of the sync");
    cassandra.restart().await;
    let s = app.wait_for("the sync after the restart", 600, synced).await;
    assert!(sink(&s)["delivered"].as_u64().unwrap() >= total);
    assert!(app.stop().await.success());
    let log = log_records(dir.path());
    assert_rows_equal_the_log(&log, &rows(&cassandra, keyspace).await, &[]);
}

#[tokio::test]
async fn tls_with_a_private_ca_checks_the_configured_host_name() {
    let mut cassandra = Cassandra::start(CassandraOpts { client_tls: true, ..CassandraOpts::default() }).await;
    // A certificate for the name only (no IP address): the driver dials 127.0.0.1, so only a
    // check against the configured name can accept it.
    cassandra.reissue_certificate("DNS:localhost");
    cassandra.restart().await;
    let ca = cassandra.ca.clone().unwrap();
    let port = cassandra.port;
    let fx = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let total = fill_store(dir.path(), 300).await;
    let keyspace = "outpost_tls";
    let tls = |node: &str, ca_file: bool| {
        let ca_line = if ca_file { format!("ca_file = \"{}\"\n", ca.display()) } else { String::new() };
        config(&fx, dir.path(), &cassandra_toml(node, keyspace, &format!("tls = true\n{ca_line}")))
    };
    let refused = async |cfg: String, expect: &str| {
        let app = Outpost::start(dir.path(), &cfg).await;
        let s = app.wait_for("the TLS refusal", 60, |s| sink(s)["last_error"].is_string()).await;
        let error = sink(&s)["last_error"].as_str().unwrap().to_owned();
        assert!(error.contains(expect), "{error}");
        assert!(!error.contains("localhost") && !error.contains("127.0.0.1"), "no address in the error: {error}");
        assert_eq!(sink(&s)["backlog"].as_u64(), Some(total));
        assert!(app.stop().await.success());
    };
    // The system roots alone do not know the private CA.
    refused(tls(&format!("localhost:{port}"), false), "not signed by a trusted CA").await;
    // The CA is trusted but the certificate is not for the configured name.
    refused(tls(&format!("127.0.0.1:{port}"), true), "not valid for the host names").await;
    let app = Outpost::start(dir.path(), &tls(&format!("localhost:{port}"), true)).await;
    app.wait_for("the sync over TLS", 180, synced).await;
    assert!(app.stop().await.success());
    let n = cassandra.query(&format!("SELECT count(*) AS n FROM {keyspace}.iss_position")).await[0]["n"].as_u64();
    assert_eq!(n, Some(total - 5));
}

/// cqlsh COPY FROM (PyPI cqlsh 6.2, Python 3.11) never finishes loading a quoted CSV field that
/// holds a line break ("No records inserted in 90 seconds, aborting", even for a one-column
/// `"two\nlines"`), and NVE's main texts have line breaks: the warnings' CSV export cannot be
/// loaded with it. Positions load (see above); the CQL export loads both.
#[tokio::test]
#[ignore = "cqlsh COPY FROM hangs on a quoted field with a line break (the warnings' main_text)"]
async fn the_warnings_csv_export_loads_with_copy_from() {
    let cassandra = Cassandra::start(CassandraOpts::default()).await;
    let node = cassandra.node();
    let dir = tempfile::tempdir().unwrap();
    fill_store(dir.path(), 10).await;
    let fx = FixtureServer::start().await;
    let app = Outpost::start(dir.path(), &config(&fx, dir.path(), &cassandra_toml(&node, "outpost_live", ""))).await;
    app.wait_for("the sync", 120, synced).await;
    assert!(app.stop().await.success());
    let target = "outpost_csv";
    cassandra.query(&cql_export::keyspace_cql(target, cql_export::DEFAULT_REPLICATION).unwrap()).await;
    let table = cql_export::Table::AvalancheWarning;
    cassandra.query(&table.create_cql(target).unwrap()).await;
    let cfg = dir.path().join("export.toml");
    std::fs::write(&cfg, config(&fx, dir.path(), &cassandra_toml(&node, target, ""))).unwrap();
    let file = dir.path().join("w.csv");
    let out = std::process::Command::new(bin())
        .args(["export", "--config"])
        .arg(&cfg)
        .args(["--format", "csv", "--kind", "avalanche", "--out"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "export: {}", String::from_utf8_lossy(&out.stderr));
    let copy = cql_export::copy_from_cql(table, target, &file.display().to_string());
    let out = tokio::process::Command::new(cqlsh())
        .args(["127.0.0.1", &cassandra.port.to_string(), "-e", &copy])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "cqlsh: {}", String::from_utf8_lossy(&out.stderr));
    let warnings = |ks: &str| format!("{WARNING_SELECT} FROM {ks}.avalanche_warning");
    assert_eq!(cassandra.query(&warnings(target)).await, cassandra.query(&warnings("outpost_live")).await);
}
