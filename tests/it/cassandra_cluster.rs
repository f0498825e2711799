//! The three-node Cassandra drill (run by scripts/cassandra-cluster-drill.sh; ignored in CI, where
//! three 1 GB JVMs on two cores would add minutes): nodes on 127.0.0.1, 127.0.0.2 and 127.0.0.3
//! (the same ports on each address), one seed, SimpleSnitch, a keyspace with RF 3 and Outpost at
//! `local_quorum` with all three nodes configured.
//!
//! 1. A week's backlog syncs; one node is killed (SIGKILL) mid-sync: the sync goes on to the end.
//! 2. A second node is killed while live positions keep arriving: no quorum, so the sink reports
//!    it in /api/status (`connected` false, `last_error`) and backs off; the backlog waits.
//! 3. Both nodes restart: the sink catches up. Every record of the log is then exactly one row,
//!    read by the DataStax Python driver at consistency ALL (every replica answers).
//!
//! Every node runs `commitlog_sync: batch`, so what it acknowledged survives its SIGKILL.

use crate::helpers::*;
use crate::servers::*;
use crate::upstreams::*;
use chrono::Utc;
use outpost::domain::Record;
use outpost::store::{Store, StoreOptions};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const HOSTS: [&str; 3] = ["127.0.0.1", "127.0.0.2", "127.0.0.3"];
/// Murmur3 tokens a third of the ring apart.
const TOKENS: [&str; 3] = ["-9223372036854775808", "-3074457345618258603", "3074457345618258602"];
const KEYSPACE: &str = "outpost_cluster";

fn sink(s: &Value) -> &Value {
    &s["sinks"]["cassandra"]
}

/// A port free on every address of HOSTS.
fn port_free_everywhere() -> u16 {
    loop {
        let p = free_port();
        if HOSTS.iter().all(|h| std::net::TcpListener::bind((*h, p)).is_ok()) {
            return p;
        }
    }
}

/// Every row of the position and warning tables as (record_id, seq), read at consistency ALL by
/// the DataStax Python driver; None while a replica cannot answer.
async fn rows_at_all(node: &str) -> Option<Vec<(String, u64)>> {
    let script = "import sys, json\n\
        from cassandra.cluster import Cluster\n\
        from cassandra import ConsistencyLevel\n\
        from cassandra.query import SimpleStatement\n\
        host, port = sys.argv[1].rsplit(':', 1)\n\
        c = Cluster([host], port=int(port), protocol_version=5)\n\
        s = c.connect()\n\
        for t in ('iss_position', 'avalanche_warning'):\n\
        \x20   q = SimpleStatement('SELECT record_id, seq FROM ' + sys.argv[2] + '.' + t, fetch_size=5000, consistency_level=ConsistencyLevel.ALL)\n\
        \x20   for r in s.execute(q, timeout=120):\n\
        \x20       print(json.dumps([r.record_id, r.seq]))\n\
        c.shutdown()\n";
    let out = tokio::process::Command::new(home_tool("OUTPOST_PYTHON", "venv/bin/python"))
        .args(["-c", script, node, KEYSPACE])
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    if !out.status.success() {
        eprintln!(
            "read at ALL failed (retrying): {}",
            String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")
        );
        return None;
    }
    Some(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| {
                let v: (String, u64) = serde_json::from_str(l).unwrap();
                v
            })
            .collect(),
    )
}

#[tokio::test]
#[ignore = "drill: run by scripts/cassandra-cluster-drill.sh"]
async fn drill_three_nodes_one_down_goes_on_two_down_waits_and_catches_up_with_no_gap() {
    let t0 = Instant::now();
    let stamp = |what: &str| eprintln!("[{:6.1} s] {what}", t0.elapsed().as_secs_f64());
    let (cql, storage) = (port_free_everywhere(), port_free_everywhere());
    let seeds = format!("{}:{storage}", HOSTS[0]);
    let mut nodes = Vec::new();
    for (host, token) in HOSTS.iter().zip(TOKENS) {
        let opts = CassandraOpts {
            durable_commitlog: true,
            address: Some(host.to_string()),
            ports: Some((cql, storage)),
            seeds: Some(seeds.clone()),
            initial_token: Some(token.to_owned()),
            ..CassandraOpts::default()
        };
        nodes.push(Cassandra::start(opts).await);
    }
    stamp("three nodes up");
    let peers = nodes[0].query("SELECT peer FROM system.peers").await;
    assert_eq!(peers.len(), 2, "node 1 sees both others: {peers:?}");

    let dir = tempfile::tempdir().unwrap();
    let backlog = fill_store(dir.path(), 7 * 8_640).await;
    let fx = FixtureServer::start().await;
    // Live positions, one a second (the time of each poll).
    fx.generate("/iss-now.json", |n| {
        let lat = format!("{:.4}", (n as f64 / 30.0).sin() * 51.0);
        let lon = format!("{:.4}", (n as f64 * 0.07) % 180.0);
        Reply::ok(open_notify(Utc::now(), &lat, &lon))
    });
    let node_list = HOSTS.iter().map(|h| format!("\"{h}:{cql}\"")).collect::<Vec<_>>().join(", ");
    let toml = format!(
        "[cassandra]\nnodes = [{node_list}]\nkeyspace = \"{KEYSPACE}\"\nconsistency = \"local_quorum\"\n\
         replication = \"{{'class': 'NetworkTopologyStrategy', 'datacenter1': 3}}\"\n"
    );
    let app = Outpost::start(dir.path(), &config(&fx, dir.path(), &toml)).await;
    stamp(&format!("outpost started on a backlog of {backlog} records"));

    // 1. One node killed mid-sync: the sync goes on to the end.
    let s = app
        .wait_for("part of the backlog", 600, |s| {
            sink(s)["delivered"].as_u64().is_some_and(|d| d >= 10_000) && sink(s)["backlog"].as_u64() > Some(10_000)
        })
        .await;
    nodes[2].kill9();
    stamp(&format!(
        "killed node 3 (SIGKILL) at delivered = {}, backlog = {}",
        sink(&s)["delivered"],
        sink(&s)["backlog"]
    ));
    let s = app
        .wait_for("the sync to the end with one node down", 900, |s| {
            sink(s)["cursor"].as_u64() >= Some(backlog) && sink(s)["backlog"] == 0 && sink(s)["connected"] == true
        })
        .await;
    stamp(&format!(
        "synced to the end with node 3 down: delivered = {}, last_error = {}",
        sink(&s)["delivered"],
        sink(&s)["last_error"]
    ));

    // 2. A second node down: no quorum; the sink reports it and the backlog waits.
    nodes[1].kill9();
    stamp("killed node 2 (SIGKILL)");
    let down = app
        .wait_for("the sink to report no quorum", 120, |s| {
            sink(s)["connected"] == false && sink(s)["last_error"].is_string() && sink(s)["backlog"].as_u64() > Some(0)
        })
        .await;
    stamp(&format!("reported: connected = false, last_error = {}", sink(&down)["last_error"]));
    let cursor_down = sink(&down)["cursor"].as_u64().unwrap();
    let backlog_down = sink(&down)["backlog"].as_u64().unwrap();
    let waited = app
        .wait_for("live records to wait in the backlog", 120, |s| {
            sink(s)["backlog"].as_u64().is_some_and(|b| b >= backlog_down + 10)
        })
        .await;
    assert_eq!(sink(&waited)["cursor"].as_u64(), Some(cursor_down), "nothing is delivered without a quorum");
    stamp(&format!(
        "backlog waiting: {} records, cursor still {cursor_down}, last_error = {}",
        sink(&waited)["backlog"],
        sink(&waited)["last_error"]
    ));

    // 3. Both back: the sink catches up.
    nodes[1].restart().await;
    nodes[2].restart().await;
    stamp("nodes 2 and 3 restarted");
    let before = app.status().await;
    // The last record stored when the nodes were back (live records keep coming after it).
    let target = sink(&before)["cursor"].as_u64().unwrap() + sink(&before)["backlog"].as_u64().unwrap();
    let s = app
        .wait_for("the catch-up", 600, |s| {
            sink(s)["connected"] == true && sink(s)["backlog"] == 0 && sink(s)["cursor"].as_u64() >= Some(target)
        })
        .await;
    stamp(&format!("caught up: cursor = {}, delivered = {}", sink(&s)["cursor"], sink(&s)["delivered"]));
    assert!(app.stop().await.success());

    // Every record exactly one row, read with every replica answering.
    let (store, writer, _) = Store::open(dir.path(), "it", StoreOptions::default()).unwrap();
    drop(writer);
    let log = store.read_after(0, 10_000_000).unwrap();
    drop(store);
    let expected: BTreeMap<String, u64> = log
        .iter()
        .filter(|r| matches!(r.record, Record::IssPosition(_) | Record::AvalancheWarning(_)))
        .map(|r| (r.id(), r.seq))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(300);
    let rows = loop {
        if let Some(rows) = rows_at_all(&nodes[0].node()).await {
            break rows;
        }
        assert!(Instant::now() < deadline, "no read at consistency ALL within 300 s");
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let mut got = BTreeMap::new();
    for (id, seq) in rows {
        assert!(got.insert(id.clone(), seq).is_none(), "two rows for {id}");
    }
    let missing: Vec<_> = expected.keys().filter(|k| !got.contains_key(*k)).take(5).collect();
    assert!(missing.is_empty(), "records with no row (first 5): {missing:?}");
    assert_eq!(got, expected, "exactly one row per record, with its seq");
    let live = expected.values().filter(|s| **s > backlog).count();
    stamp(&format!(
        "verified at consistency ALL: {} rows = {} records ({backlog} backlog + {live} live), no gap",
        got.len(),
        expected.len()
    ));
}
