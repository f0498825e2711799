//! Draining a one-week backlog to Apache Kafka 4 (KRaft) and to mosquitto (MQTT) with the release
//! `outpost` binary, and confluent-kafka (librdkafka) producing the same messages to the same broker
//! as the peer.
//!
//!     cargo bench --bench sync                    # kafka (batch_size 1000), the peer, mqtt
//!     cargo bench --bench sync -- kafka 1000 5000 # kafka only, at each batch_size given
//!     cargo bench --bench sync -- mqtt
//!     cargo bench --bench sync -- cassandra       # one Cassandra node, and the Python driver's peer
//!
//! Needs Apache Kafka's jars (scripts/servers.sh, or $OUTPOST_KAFKA_LIB), the kafka-python venv
//! (~/.cache/outpost/venv or $OUTPOST_PYTHON) and mosquitto + mosquitto_sub (Debian):
//! scripts/test.sh installs them all.
//!
//! The backlog: a week of 10 s positions (60,480) ending an hour ago, two TLEs a day and a week of
//! avalanche warnings (23 class-A regions, a third published twice a day), written into a store
//! with the library. Each run copies that store, starts `outpost run` on it with one sink on and
//! every collector pointed at a closed local port (nothing new is stored), and polls
//! `/api/status` every 20 ms until the sink's cursor reaches the last record. Then the upstream is
//! checked: Kafka is read back with kafka-python (tests/tools/kafka_read.py), every seq exactly
//! once; MQTT (a state sink that coalesces a batch into one publish per topic) must retain the
//! newest position. Cassandra (one Apache Cassandra 5.0 node, tests/it/servers.rs's set-up) is
//! checked by row counts read with the Python driver; its peer, benches/cassandra_write.py, writes
//! the same rows (cql-export's mapping, the same schema) with the DataStax driver's
//! `execute_concurrent_with_args` at concurrency 64 (Outpost's `IN_FLIGHT`) into another keyspace
//! of the same node.

mod common;

use chrono::Utc;
use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const TOPICS: [&str; 3] = ["outpost.iss.position", "outpost.iss.tle", "outpost.avalanche.warning"];

struct Backlog {
    dir: std::path::PathBuf,
    filled: Filled,
}

fn copy_store(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in [outpost::store::DB_FILE, outpost::store::JOURNAL_FILE] {
        std::fs::copy(from.join(f), to.join(f)).unwrap();
    }
}

struct Drained {
    /// From spawning `outpost run` to the sink's cursor at the last record.
    total_s: f64,
    /// From the first acknowledged batch to the end, and the records sent in that time.
    after_first_s: f64,
    after_first_n: u64,
    peak_rss_kib: u64,
    /// CPU seconds used during the run by outpost and by the broker.
    outpost_cpu_s: f64,
    broker_cpu_s: f64,
}

/// Runs `outpost run` on a copy of the backlog with `sink_toml` until the sink has everything.
fn drain(backlog: &Backlog, work: &Path, name: &str, sink: &str, sink_toml: &str, broker: u32) -> Drained {
    let dir = work.join(name);
    let store = dir.join("store");
    copy_store(&backlog.dir, &store);
    let web = free_port();
    let cfg = config(&store, web, None, sink_toml);
    let last = backlog.filled.last_seq;
    let broker_cpu0 = cpu_secs(broker).unwrap_or(0.0);
    let t0 = Instant::now();
    let app = start_outpost(&dir, &cfg);
    let mut first: Option<(Instant, u64)> = None;
    let mut rss = Vec::new();
    let cursor = loop {
        if let Some(s) = status(web) {
            let c = s["sinks"][sink]["cursor"].as_u64().unwrap_or(0);
            if c > 0 && first.is_none() {
                first = Some((Instant::now(), c));
            }
            if c >= last {
                break c;
            }
        }
        rss.extend(rss_kib(app.pid()));
        assert!(t0.elapsed() < Duration::from_secs(600), "{name}: not drained within 600 s");
        std::thread::sleep(Duration::from_millis(20));
    };
    let done = Instant::now();
    assert_eq!(cursor, last);
    let outpost_cpu_s = cpu_secs(app.pid()).unwrap_or(0.0);
    let broker_cpu_s = cpu_secs(broker).unwrap_or(0.0) - broker_cpu0;
    let status = app.stop();
    assert!(status.success(), "outpost exited with {status}");
    let (t_first, c_first) = first.unwrap();
    Drained {
        total_s: (done - t0).as_secs_f64(),
        after_first_s: (done - t_first).as_secs_f64(),
        after_first_n: last - c_first,
        peak_rss_kib: rss.iter().copied().max().unwrap_or(0),
        outpost_cpu_s,
        broker_cpu_s,
    }
}

fn describe(last: u64, d: &Drained) -> String {
    format!(
        "{last} records in {:.2} s from spawn = {:.0} records/s; {} after the first ack in {:.2} s = {:.0} records/s; CPU: outpost {:.2} s, broker {:.2} s; peak RSS {:.1} MB",
        d.total_s,
        last as f64 / d.total_s,
        d.after_first_n,
        d.after_first_s,
        d.after_first_n as f64 / d.after_first_s,
        d.outpost_cpu_s,
        d.broker_cpu_s,
        d.peak_rss_kib as f64 / 1024.0
    )
}

/// Every message of `topic` read back by kafka-python, as JSON lines.
fn read_topic(port: u16, topic: &str) -> Vec<Value> {
    let out = Command::new(home_tool("OUTPOST_PYTHON", "venv/bin/python"))
        .arg(manifest_dir().join("tests/tools/kafka_read.py"))
        .arg(format!("{}:{port}", kafka_host()))
        .arg(topic)
        .args(["--timeout", "300"])
        .output()
        .unwrap();
    assert!(out.status.success(), "kafka_read.py failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn kafka(backlog: &Backlog, work: &Path, batch: usize, peer: bool) {
    let port = free_port();
    let broker = apache_kafka(port);
    let toml = format!("[kafka]\nbrokers = [\"{}:{port}\"]\nbatch_size = {batch}\n", kafka_host());
    let d = drain(backlog, work, &format!("kafka-{batch}"), "kafka", &toml, broker.pid());
    // Verify: every seq exactly once across the three topics.
    let mut seqs = BTreeSet::new();
    let mut messages = Vec::new();
    let mut count = 0u64;
    for topic in TOPICS {
        for m in read_topic(port, topic) {
            count += 1;
            seqs.insert(m["value"]["seq"].as_u64().unwrap());
            messages.push(serde_json::json!({
                "topic": topic.replace("outpost.", "peer."),
                "key": m["key"], "value": m["value"], "headers": m["headers"],
            }));
        }
    }
    let last = backlog.filled.last_seq;
    assert_eq!(count, last, "Kafka holds {count} messages, the store {last} records");
    assert_eq!(seqs.len() as u64, last, "every seq once");
    assert_eq!((seqs.first().copied(), seqs.last().copied()), (Some(1), Some(last)));
    println!(
        "kafka batch_size {batch}: {}\n    verified with kafka-python: {count} messages, seqs 1..={last} once each",
        describe(last, &d)
    );
    if peer {
        let file = work.join("peer.jsonl");
        let text: String = messages.iter().map(|m| format!("{m}\n")).collect();
        std::fs::write(&file, text).unwrap();
        let broker_cpu0 = cpu_secs(broker.pid()).unwrap_or(0.0);
        let out = Command::new(home_tool("OUTPOST_PYTHON", "venv/bin/python"))
            .arg(manifest_dir().join("benches/kafka_produce.py"))
            .arg(format!("{}:{port}", kafka_host()))
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success(), "kafka_produce.py failed: {}", String::from_utf8_lossy(&out.stderr));
        let broker_cpu = cpu_secs(broker.pid()).unwrap_or(0.0) - broker_cpu0;
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        let n = r["messages"].as_u64().unwrap();
        let s = r["seconds"].as_f64().unwrap();
        println!(
            "peer: confluent-kafka (librdkafka), the same {n} messages to the same broker: {s:.2} s = {:.0} messages/s ({} failed); CPU: broker {broker_cpu:.2} s, producer {:.2} s",
            n as f64 / s,
            r["failed"],
            r["cpu_s"].as_f64().unwrap_or(f64::NAN)
        );
    }
    drop(broker);
}

fn mqtt(backlog: &Backlog, work: &Path) {
    let dir = work.join("mosquitto");
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let broker = mosquitto(&dir, port);
    let toml = format!("[mqtt]\nurl = \"mqtt://127.0.0.1:{port}\"\n");
    let d = drain(backlog, work, "mqtt", "mqtt", &toml, broker.pid());
    let last = backlog.filled.last_seq;
    // Verify: the retained position is the newest stored one.
    let out = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", "outpost/bench/iss/position", "-C", "1", "-W", "5"])
        .output()
        .expect("mosquitto_sub runs");
    let retained: Value = serde_json::from_slice(&out.stdout).expect("a retained position");
    let newest = {
        let (store, writer, _) =
            outpost::store::Store::open(&work.join("mqtt/store"), "bench", Default::default()).unwrap();
        drop(writer);
        store.latest_position().unwrap().unwrap().time
    };
    let got: chrono::DateTime<Utc> = retained["time"].as_str().unwrap().parse().unwrap();
    assert_eq!(got, newest, "the retained position is the newest record");
    let log = std::fs::read_to_string(dir.join("mosquitto.log")).unwrap_or_default();
    let publishes = log.lines().filter(|l| l.contains("Received PUBLISH from")).count();
    println!(
        "mqtt: {}\n    {publishes} PUBLISH packets reached mosquitto (coalesced state); verified with mosquitto_sub: retained position = newest record ({got})",
        describe(last, &d)
    );
    drop(broker);
}

/// A cql-export value as JSON for benches/cassandra_write.py (null: not written, as Outpost's
/// unset; timestamps as Unix ms; dates as ISO text).
fn cql_json(v: &cql_export::CqlValue) -> Value {
    use cql_export::CqlValue as C;
    match v {
        C::Null => Value::Null,
        C::Text(t) => Value::from(t.as_str()),
        C::Int(i) => Value::from(*i),
        C::BigInt(i) | C::Timestamp(i) => Value::from(*i),
        C::Double(d) => Value::from(*d),
        C::Date(d) => Value::from(d.to_string()),
        C::TextList(l) => Value::from(l.clone()),
    }
}

/// Rows per table in `keyspace`, counted by the Python driver.
fn cassandra_counts(node: &str, keyspace: &str) -> Vec<(&'static str, u64)> {
    cql_export::Table::ALL
        .iter()
        .map(|t| {
            let cql = format!("SELECT count(*) AS n FROM {keyspace}.{}", t.name());
            let rows = cql_rows(node, &cql).unwrap_or_else(|| panic!("count of {keyspace}.{} failed", t.name()));
            (t.name(), rows[0]["n"].as_u64().unwrap())
        })
        .collect()
}

fn cassandra(backlog: &Backlog, work: &Path, batch: usize, peer: bool) {
    let node = apache_cassandra();
    let n = node.node();
    let toml = format!(
        "[cassandra]\nnodes = [\"{n}\"]\nkeyspace = \"outpost_bench\"\nconsistency = \"local_quorum\"\nbatch_size = {batch}\n"
    );
    let d = drain(backlog, work, &format!("cassandra-{batch}"), "cassandra", &toml, node.pid());
    // The rows Outpost's mapping makes of the backlog: what the node must hold, and the peer's input.
    let copy = work.join(format!("cassandra-{batch}-rows"));
    copy_store(&backlog.dir, &copy);
    let (store, writer, _) = outpost::store::Store::open(&copy, "bench", Default::default()).unwrap();
    drop(writer);
    let mut rows = Vec::new();
    let mut keys: std::collections::BTreeMap<&str, BTreeSet<String>> = Default::default();
    for rec in store.read_after(0, 10_000_000).unwrap() {
        let Some(table) = cql_export::Table::for_kind(rec.record.kind().as_str()) else { continue };
        let row = cql_export::row(&outpost::message::message(&rec)).unwrap();
        keys.entry(table.name()).or_default().insert(format!("{:?}", row.primary_key()));
        rows.push(row);
    }
    drop(store);
    let expected: Vec<(&str, u64)> =
        cql_export::Table::ALL.iter().map(|t| (t.name(), keys.get(t.name()).map_or(0, |k| k.len() as u64))).collect();
    let got = cassandra_counts(&n, "outpost_bench");
    assert_eq!(got, expected, "rows per table");
    let total: u64 = got.iter().map(|(_, c)| c).sum();
    println!(
        "cassandra batch_size {batch}: {}\n    verified with the Python driver: {total} rows {got:?}",
        describe(backlog.filled.last_seq, &d)
    );
    if peer {
        let ks = "peer_bench";
        let file = work.join("peer-rows.jsonl");
        let mut text = serde_json::json!({
            "schema": std::iter::once(cql_export::keyspace_cql(ks, cql_export::DEFAULT_REPLICATION).unwrap())
                .chain(cql_export::Table::ALL.iter().map(|t| t.create_cql(ks).unwrap()))
                .collect::<Vec<_>>(),
            "inserts": cql_export::Table::ALL.iter()
                .map(|t| (t.name().to_owned(), Value::from(cql_export::insert_prepared(*t, ks))))
                .collect::<serde_json::Map<_, _>>(),
            "types": cql_export::Table::ALL.iter()
                .map(|t| (t.name().to_owned(), Value::from(t.column_types().to_vec())))
                .collect::<serde_json::Map<_, _>>(),
        })
        .to_string();
        text.push('\n');
        for row in &rows {
            let line =
                serde_json::json!({"t": row.table.name(), "v": row.values.iter().map(cql_json).collect::<Vec<_>>()});
            text.push_str(&format!("{line}\n"));
        }
        std::fs::write(&file, text).unwrap();
        let cpu0 = cpu_secs(node.pid()).unwrap_or(0.0);
        let out = Command::new(home_tool("OUTPOST_PYTHON", "venv/bin/python"))
            .arg(manifest_dir().join("benches/cassandra_write.py"))
            .arg(&n)
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success(), "cassandra_write.py failed: {}", String::from_utf8_lossy(&out.stderr));
        let node_cpu = cpu_secs(node.pid()).unwrap_or(0.0) - cpu0;
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        let (rows_n, secs) = (r["rows"].as_u64().unwrap(), r["seconds"].as_f64().unwrap());
        let peer_got = cassandra_counts(&n, ks);
        assert_eq!(peer_got, expected, "the peer's rows per table");
        println!(
            "peer: DataStax Python driver {} execute_concurrent_with_args (concurrency {}), the same {rows_n} rows to the same node: {secs:.2} s = {:.0} rows/s ({} failed); CPU: node {node_cpu:.2} s, writer {:.2} s\n    verified with the Python driver: {peer_got:?}",
            r["driver"].as_str().unwrap_or("?"),
            r["concurrency"],
            rows_n as f64 / secs,
            r["failed"],
            r["cpu_s"].as_f64().unwrap_or(f64::NAN)
        );
    }
    drop(node);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let part = args.first().map(String::as_str).unwrap_or("all");
    let batches: Vec<usize> = args.iter().skip(1).filter_map(|a| a.parse().ok()).collect();
    let cassandra_batches = if batches.is_empty() { vec![500] } else { batches.clone() };
    let batches = if batches.is_empty() { vec![1000] } else { batches };
    println!("machine: {}", machine());
    let work = BenchDir::new("sync");
    let template = work.path().join("backlog");
    let clock = Instant::now();
    let filled = fill(&template, Utc::now() - chrono::Duration::hours(1), 60_480, true);
    println!(
        "backlog: {} positions, {} TLEs, {} warnings = {} records (filled in {:.1} s)",
        filled.positions,
        filled.tles,
        filled.warnings,
        filled.last_seq,
        clock.elapsed().as_secs_f64()
    );
    let backlog = Backlog { dir: template, filled };
    if matches!(part, "all" | "kafka") {
        for (i, b) in batches.iter().enumerate() {
            kafka(&backlog, work.path(), *b, part == "all" || i == 0);
        }
    }
    if matches!(part, "all" | "mqtt") {
        mqtt(&backlog, work.path());
    }
    if matches!(part, "all" | "cassandra") {
        for (i, b) in cassandra_batches.iter().enumerate() {
            cassandra(&backlog, work.path(), *b, i == 0);
        }
    }
    println!("done: {}", load());
}
