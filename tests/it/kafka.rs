//! Kafka sync against a real Apache Kafka 4 broker (KRaft, tests/it/servers.rs), read back with
//! kafka-python.

use crate::helpers::*;
use crate::servers::*;
use crate::upstreams::*;
use chrono::{Duration, Utc};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Mutex;

const TOPICS: [&str; 4] =
    ["outpost.iss.position", "outpost.iss.tle", "outpost.avalanche.warning", "outpost.weather.daily"];

fn sink(s: &Value) -> &Value {
    &s["sinks"]["kafka"]
}

fn backlog(s: &Value) -> u64 {
    sink(s)["backlog"].as_u64().unwrap_or(u64::MAX)
}

/// Every message of every topic, as (seq, message), plus how many times each key was seen.
pub(crate) async fn read_all(port: u16) -> (Vec<(u64, Value)>, BTreeMap<String, usize>) {
    let mut all = Vec::new();
    let mut keys = BTreeMap::new();
    for topic in TOPICS {
        let msgs = read_topic(port, topic).await;
        let mut last_seq = 0;
        for m in msgs {
            let seq = m["value"]["seq"].as_u64().unwrap();
            assert!(
                seq > last_seq || keys.contains_key(m["key"].as_str().unwrap()),
                "{topic}: log order broken at seq {seq}"
            );
            last_seq = last_seq.max(seq);
            assert_eq!(m["key"], m["value"]["id"], "key is the record id");
            assert_eq!(m["value"]["schema"], 1);
            assert_eq!(topic.strip_prefix("outpost.").unwrap(), m["value"]["kind"].as_str().unwrap());
            *keys.entry(m["key"].as_str().unwrap().to_owned()).or_insert(0) += 1;
            all.push((seq, m));
        }
    }
    (all, keys)
}

/// Asserts Kafka holds every record 1..=cursor and nothing else; returns how many were resent.
fn assert_no_gap(all: &[(u64, Value)], cursor: u64) -> usize {
    let mut seqs: Vec<u64> = all.iter().map(|(s, _)| *s).collect();
    seqs.sort_unstable();
    let resent = seqs.len() - {
        seqs.dedup();
        seqs.len()
    };
    assert_eq!(seqs.len() as u64, cursor, "every acknowledged record is in Kafka");
    assert_eq!(seqs.first(), Some(&1));
    assert_eq!(seqs.last(), Some(&cursor), "no gap");
    resent
}

/// Waits for the sink to catch up, stops the appliance, and checks that Kafka holds every record
/// with no gap and at most one batch sent twice.
async fn drain_then_check(app: Outpost, dir: &std::path::Path, broker_port: u16, total: u64, batch: usize) {
    app.wait_for("the backlog to drain", 180, |s| backlog(s) == 0 && sink(s)["connected"] == true).await;
    assert!(app.stop().await.success());
    let cursor = stored_cursor(dir, "kafka");
    assert_eq!(cursor, total);
    let (all, _) = read_all(broker_port).await;
    let resent = assert_no_gap(&all, cursor);
    assert!(resent <= batch, "{resent} records resent: more than one batch");
}

#[tokio::test]
async fn a_week_offline_is_synced_once_per_key_in_log_order_when_the_broker_comes_up() {
    let dir = tempfile::tempdir().unwrap();
    let total = fill_store(dir.path(), 60_480).await;
    let fx = FixtureServer::start().await;
    let live_start = Utc::now() - Duration::minutes(30);
    fx.generate("/iss-now.json", move |n| {
        Reply::ok(open_notify(live_start + Duration::seconds(10 * n as i64), "59.9", "10.7"))
    });
    let port = free_port();
    let cfg = config(&fx, dir.path(), &format!("[kafka]\nbrokers = [\"127.0.0.1:{port}\"]\nbatch_size = 1000\n"));
    let app = Outpost::start(dir.path(), &cfg).await;

    let s = app
        .wait_for("the backlog, with Kafka down", 60, |s| sink(s)["last_error"].is_string() && backlog(s) >= total)
        .await;
    assert_eq!(sink(&s)["connected"], false);
    assert_eq!(sink(&s)["enabled"], true);

    let _broker = ApacheKafka::start(KafkaOpts { port: Some(port), ..KafkaOpts::default() }).await;
    let sync_started = Utc::now();
    let seen = Mutex::new(Vec::new());
    let s = app
        .wait_for("the backlog to drain", 180, |s| {
            seen.lock().unwrap().push(backlog(s));
            backlog(s) == 0 && sink(s)["connected"] == true
        })
        .await;
    let seen = seen.into_inner().unwrap();
    eprintln!("backlog while draining: {:?}", seen.iter().rev().take(20).collect::<Vec<_>>());
    // And one more live position after the catch-up, sent as live.
    let cursor = sink(&s)["cursor"].as_u64().unwrap();
    app.wait_for("a live record", 30, |s| sink(s)["cursor"].as_u64().unwrap() > cursor && backlog(s) == 0).await;
    assert!(app.stop().await.success());
    let cursor = stored_cursor(dir.path(), "kafka");

    let (all, keys) = read_all(port).await;
    assert_eq!(assert_no_gap(&all, cursor), 0, "nothing sent twice");
    assert!(keys.values().all(|n| *n == 1), "exactly once per key");
    let replayed = |seq: u64| all.iter().find(|(s, _)| *s == seq).unwrap().1["headers"]["outpost-replay"].clone();
    assert_eq!(replayed(1), "true", "the backlog is marked as replayed");
    assert_eq!(replayed(total), "true");
    assert_eq!(replayed(cursor), "false", "a record collected after the catch-up is live");
    let warnings: Vec<_> = all.iter().filter(|(_, m)| m["value"]["kind"] == "avalanche.warning").collect();
    assert_eq!(warnings.len(), 5);
    assert_eq!(warnings[0].1["value"]["region_id"], 3022);
    // The Kafka timestamp is when Outpost produced the message, not the 2023 publish time: a
    // topic's time-based retention would otherwise delete a back-fill as soon as it arrives.
    let produced = warnings[0].1["timestamp_ms"].as_i64().unwrap();
    assert!(produced >= sync_started.timestamp_millis() - 1000, "timestamp {produced} is before the sync began");
    assert_eq!(warnings[0].1["value"]["publish_time"].as_str().map(|t| t.starts_with("2023")), Some(true));
}

#[tokio::test]
async fn a_broker_lost_mid_batch_leaves_no_gap_and_resends_at_most_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let total = fill_store(dir.path(), 20_000).await;
    // Every client connection, bootstrap and produce alike, goes through the proxy.
    let broker_port = free_port();
    let proxy = Proxy::start(broker_port).await;
    let broker = ApacheKafka::start(KafkaOpts {
        port: Some(broker_port),
        advertised_port: Some(proxy.port),
        ..KafkaOpts::default()
    })
    .await;
    // The connection dies part-way through a produce request, about a third into the backlog.
    proxy.cut_after(2_000_000);
    let fx = FixtureServer::start().await;
    let cfg =
        config(&fx, dir.path(), &format!("[kafka]\nbrokers = [\"127.0.0.1:{}\"]\nbatch_size = 200\n", proxy.port));
    let app = Outpost::start(dir.path(), &cfg).await;
    let s = app
        .wait_for("the sink to lose the broker", 120, |s| {
            sink(s)["connected"] == false && sink(s)["last_error"].is_string()
        })
        .await;
    assert!(!proxy.is_up());
    let at_cut = sink(&s)["cursor"].as_u64().unwrap();
    assert!(at_cut > 0 && at_cut < total, "cut mid-sync, at cursor {at_cut}");
    proxy.restore();
    drain_then_check(app, dir.path(), broker.port, total, 200).await;
}

#[tokio::test]
async fn kill_9_mid_sync_resends_at_most_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let total = fill_store(dir.path(), 20_000).await;
    let broker = ApacheKafka::start(KafkaOpts::default()).await;
    let fx = FixtureServer::start().await;
    let cfg =
        config(&fx, dir.path(), &format!("[kafka]\nbrokers = [\"127.0.0.1:{}\"]\nbatch_size = 200\n", broker.port));
    let app = Outpost::start(dir.path(), &cfg).await;
    let s = app
        .wait_for("the sync to be under way", 60, |s| {
            let c = sink(s)["cursor"].as_u64().unwrap_or(0);
            c > 0 && c < total
        })
        .await;
    app.kill9().await;
    eprintln!("killed at cursor {}", sink(&s)["cursor"]);
    let app = Outpost::start(dir.path(), &cfg).await;
    drain_then_check(app, dir.path(), broker.port, total, 200).await;
}

#[tokio::test]
async fn compressed_batches_arrive_intact() {
    for codec in ["lz4", "zstd", "gzip", "snappy"] {
        let dir = tempfile::tempdir().unwrap();
        let total = fill_store(dir.path(), 2_000).await;
        let broker = ApacheKafka::start(KafkaOpts::default()).await;
        let fx = FixtureServer::start().await;
        let extra = format!("[kafka]\nbrokers = [\"127.0.0.1:{}\"]\ncompression = \"{codec}\"\n", broker.port);
        let app = Outpost::start(dir.path(), &config(&fx, dir.path(), &extra)).await;
        drain_then_check(app, dir.path(), broker.port, total, 0).await;
        // The broker stored the batches as sent (compression.type=producer): the codec was used.
        for topic in ["outpost.iss.position", "outpost.avalanche.warning"] {
            let codecs = broker.stored_codecs(topic);
            assert_eq!(codecs, [codec.to_owned()].into(), "{topic}: batches stored with {codecs:?}, not {codec}");
        }
    }
}

#[tokio::test]
async fn sasl_ssl_with_scram_sha_512_delivers_and_a_wrong_password_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let total = fill_store(dir.path(), 500).await;
    let users = vec![("alice".to_owned(), "alice-secret".to_owned())];
    let broker = ApacheKafka::start(KafkaOpts { scram_users: users, ..KafkaOpts::default() }).await;
    let (port, ca) = (broker.sasl_ssl_port.unwrap(), broker.ca.clone().unwrap());
    let fx = FixtureServer::start().await;
    // Outpost trusts the test CA through SSL_CERT_FILE (its TLS roots are the system's).
    let env = [("SSL_CERT_FILE", ca.as_path())];
    let kafka = |password: &str| {
        format!(
            "[kafka]\nbrokers = [\"127.0.0.1:{port}\"]\ntls = true\nsasl_mechanism = \"scram-sha-512\"\n\
             sasl_username = \"alice\"\nsasl_password = \"{password}\"\n"
        )
    };

    let app = Outpost::start_env(dir.path(), &config(&fx, dir.path(), &kafka("not-alices")), &[bin()], &env).await;
    // A loaded machine can make the first TLS + SCRAM exchange outlast the connect time-out ("no
    // answer"); the sink retries, and the broker's refusal is what it must end up reporting.
    let refused =
        |s: &serde_json::Value| sink(s)["last_error"].as_str().is_some_and(|e| e.contains("SaslAuthenticationFailed"));
    let s = app.wait_for("the sink to report the refusal", 120, refused).await;
    assert_eq!(sink(&s)["connected"], false);
    assert_eq!(backlog(&s), total);
    let error = sink(&s)["last_error"].as_str().unwrap().to_owned();
    assert!(error.contains("SaslAuthenticationFailed"), "TLS held and SCRAM refused: {error}");
    assert!(!app.log().contains("not-alices"), "no secret in the log");
    assert!(app.stop().await.success());

    let app = Outpost::start_env(dir.path(), &config(&fx, dir.path(), &kafka("alice-secret")), &[bin()], &env).await;
    drain_then_check(app, dir.path(), broker.port, total, 0).await;
}
