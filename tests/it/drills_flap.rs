//! Fault drill: the link to the Kafka broker flaps. A TCP proxy between Outpost and the broker cuts
//! every connection (at once, or part-way through a request) and restores it, again and again at
//! random moments, while a backlog drains and live records flow. Every cut must be felt (it drops
//! a connection the client had open) while collection goes on; afterwards Kafka holds every
//! record of the log, with no gap.

use crate::drills::{new_warnings, read_log, rng};
use crate::helpers::*;
use crate::kafka::read_all;
use crate::servers::*;
use crate::upstreams::*;
use chrono::{Duration, Utc};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Instant;

const FLAPS: usize = 15;

fn sink(s: &Value) -> &Value {
    &s["sinks"]["kafka"]
}

#[tokio::test]
async fn drills_a_flapping_broker_link_leaves_no_gap_in_kafka() {
    let started = Instant::now();
    let mut rng = rng("flap drill");
    let dir = tempfile::tempdir().unwrap();
    fill_store(dir.path(), 3_000).await;
    let broker_port = free_port();
    let proxy = Proxy::start(broker_port).await;
    let broker = ApacheKafka::start(KafkaOpts {
        port: Some(broker_port),
        advertised_port: Some(proxy.port),
        ..KafkaOpts::default()
    })
    .await;

    let fx = FixtureServer::start().await;
    let live_start = Utc::now() - Duration::minutes(50);
    fx.generate("/iss-now.json", move |n| {
        Reply::ok(open_notify(live_start + Duration::seconds(n as i64), "48.1", "11.6"))
    });
    fx.generate("/nve", |n| Reply::ok(new_warnings(n)));
    let extra = format!("[kafka]\nbrokers = [\"127.0.0.1:{}\"]\nbatch_size = 50\n", proxy.port);
    let app = Outpost::start(dir.path(), &config(&fx, dir.path(), &extra)).await;
    app.wait_for("the first delivery", 60, |s| sink(s)["delivered"].as_u64().unwrap_or(0) > 0).await;

    // Cut and restore at random moments, without waiting for the sink: a flapping link does not
    // wait either. The status is polled throughout to count the failures the sink reported.
    let mut plan = Vec::new();
    let mut failures = std::collections::BTreeSet::new();
    let mut watch = async |ms: u64| {
        let until = Instant::now() + std::time::Duration::from_millis(ms);
        while Instant::now() < until {
            if let Some(t) = sink(&app.status().await)["last_error_time"].as_str() {
                failures.insert(t.to_owned());
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    };
    let positions_before = stored(&app.status().await, "iss.position");
    let mut felt = Vec::new();
    for flap in 0..FLAPS {
        // Cut at a random moment: at once, or after a random number of bytes (mid-request; a
        // live produce request is a few hundred bytes).
        let up_ms = rng.u64(300..3_000);
        let mid_request = rng.bool();
        let bytes = rng.i64(1..1_500);
        let down_ms = rng.u64(200..2_500);
        plan.push((up_ms, if mid_request { Some(bytes) } else { None }, down_ms));
        watch(up_ms).await;
        // A cut is only a cut if the client has a connection through the proxy: wait for it to
        // have reconnected after the last one.
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        while proxy.open() == 0 {
            assert!(Instant::now() < deadline, "flap {flap}: the client did not reconnect within 30 s");
            watch(50).await;
        }
        let severed = proxy.severed();
        if mid_request {
            proxy.cut_after(bytes);
        } else {
            proxy.cut();
        }
        // The cut lands once the client sends (mid-request) or at once; the link then stays down.
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        while proxy.severed() == severed {
            assert!(Instant::now() < deadline, "flap {flap}: the cut dropped no connection within 30 s");
            watch(50).await;
        }
        felt.push(proxy.severed() - severed);
        watch(down_ms).await;
        proxy.restore();
    }
    watch(1_000).await;
    eprintln!("flap drill: (up ms, cut after bytes, down ms) per flap: {plan:?}");
    eprintln!("flap drill: connections each cut dropped: {felt:?}");
    let positions_after = stored(&app.status().await, "iss.position");
    assert!(
        positions_after > positions_before + FLAPS as u64,
        "collection went on through the flaps: {positions_before} -> {positions_after} positions"
    );

    // Collection stops (the upstream answers 503), so the log has an end for Kafka to reach.
    fx.script("/iss-now.json", vec![Reply::status(503, "drill over")]);
    app.wait_for("collection to stop", 30, |s| {
        s["sources"]["iss_position"]["failures"].as_u64().unwrap_or(0) > 0 && s["writer"]["pending"] == 0
    })
    .await;
    app.wait_for("the backlog to drain", 120, |s| sink(s)["backlog"] == 0 && sink(s)["connected"] == true).await;
    assert!(app.stop().await.success());

    let log = read_log(dir.path());
    let last = log.last().unwrap().seq;
    assert_eq!(stored_cursor(dir.path(), "kafka"), last);
    let (all, keys) = read_all(broker.port).await;
    let by_id: BTreeMap<String, u64> = log.iter().map(|r| (r.id(), r.seq)).collect();
    for (seq, m) in &all {
        let key = m["key"].as_str().unwrap();
        assert_eq!(by_id.get(key), Some(seq), "Kafka has {key} at seq {seq}, the log does not");
    }
    let mut seqs: Vec<u64> = all.iter().map(|(s, _)| *s).collect();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs, (1..=last).collect::<Vec<_>>(), "Kafka holds seq 1..={last} with no gap");
    assert_eq!(keys.len(), by_id.len(), "every record of the log is in Kafka under its key");
    // Each cut dropped a connection, and the client came back through the proxy after each
    // (rskafka retries inside a send, so the sink itself reports a failure only when a send
    // gives up).
    let connections = proxy.connections();
    assert!(connections > FLAPS as u64, "{connections} connections to the broker for {FLAPS} cuts");
    assert!(proxy.severed() >= FLAPS as u64, "{} connections dropped by {FLAPS} cuts", proxy.severed());
    eprintln!(
        "flap drill: {FLAPS} cuts, {} connections dropped, {connections} connections, {} failures reported by the sink; {last} records in Kafka with no gap, {} resent; {:.0} s",
        proxy.severed(),
        failures.len(),
        all.len() - by_id.len(),
        started.elapsed().as_secs_f64()
    );
}
