//! The Cassandra sink: its behaviour with an unreachable cluster, and the round trip against a
//! real Apache Cassandra 5.0 node the test starts (tests/it/servers.rs), read back with the
//! DataStax Python driver (tests/tools/cql_read.py). Statements and row mapping are also tested in
//! cql-export against the schema files.

use crate::helpers::*;
use crate::servers::*;
use crate::upstreams::*;

fn sink(s: &serde_json::Value) -> &serde_json::Value {
    &s["sinks"]["cassandra"]
}

#[tokio::test]
async fn an_unreachable_cluster_is_reported_and_the_backlog_waits() {
    let dir = tempfile::tempdir().unwrap();
    let total = fill_store(dir.path(), 500).await;
    let fx = FixtureServer::start().await;
    let port = free_port();
    let extra =
        format!("[cassandra]\nnodes = [\"127.0.0.1:{port}\"]\npassword = \"do-not-show-me\"\nusername = \"u\"\n");
    let app = Outpost::start(dir.path(), &config(&fx, dir.path(), &extra)).await;
    let s = app.wait_for("the sink to report the cluster down", 60, |s| sink(s)["last_error"].is_string()).await;
    assert_eq!(sink(&s)["enabled"], true);
    assert_eq!(sink(&s)["connected"], false);
    assert_eq!(sink(&s)["backlog"].as_u64(), Some(total));
    let (_, status_text) = app.get("/api/status").await;
    assert!(!status_text.to_string().contains("do-not-show-me"), "no secret in the status");
    assert!(!app.log().contains("do-not-show-me"), "no secret in the log");
    assert_eq!(app.get("/healthz").await.0, 200);
    assert!(app.stop().await.success());
}

#[tokio::test]
async fn round_trip_against_a_real_node() {
    let cassandra = Cassandra::start(CassandraOpts::default()).await;
    let node = cassandra.node();
    // cqlsh (PyPI) talks to it too: it is the real thing, at the version tests/servers names.
    let out = tokio::process::Command::new(cqlsh())
        .args(["127.0.0.1", &cassandra.port.to_string(), "-e", "SELECT release_version FROM system.local"])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains(" 5.0."), "cqlsh: {text}{}", String::from_utf8_lossy(&out.stderr));
    let dir = tempfile::tempdir().unwrap();
    let total = fill_store(dir.path(), 2_000).await;
    // A copy taken before any sync: replaying it later resends every record.
    let replay = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), replay.path());
    let keyspace = format!("outpost_it_{}", std::process::id());
    let fx = FixtureServer::start().await;
    let extra = format!("[cassandra]\nnodes = [\"{node}\"]\nkeyspace = \"{keyspace}\"\nconsistency = \"one\"\n");
    let cfg = config(&fx, dir.path(), &extra);
    let app = Outpost::start(dir.path(), &cfg).await;
    app.wait_for("the sync", 180, |s| sink(s)["backlog"] == 0 && sink(s)["connected"] == true).await;
    assert!(app.stop().await.success());

    let count = |table: &'static str| {
        let cassandra = &cassandra;
        let keyspace = keyspace.clone();
        async move {
            let rows = cassandra.query(&format!("SELECT count(*) AS n FROM {keyspace}.{table}")).await;
            rows[0]["n"].as_i64().unwrap()
        }
    };
    assert_eq!(count("iss_position").await + count("avalanche_warning").await, total as i64);
    assert_eq!(count("avalanche_warning").await, 5);

    // The same records again from the copy (cursor 0): natural keys make it an upsert.
    let cfg2 = cfg.replace(&dir.path().display().to_string(), &replay.path().display().to_string());
    let app = Outpost::start(replay.path(), &cfg2).await;
    app.wait_for("the replay", 180, |s| sink(s)["backlog"] == 0 && sink(s)["connected"] == true).await;
    assert!(app.stop().await.success());
    assert_eq!(count("iss_position").await + count("avalanche_warning").await, total as i64, "a replay upserts");
    let warnings: Vec<_> = cassandra
        .log()
        .lines()
        .filter(|l| l.starts_with("WARN") || l.starts_with("ERROR"))
        .map(str::to_owned)
        .collect();
    eprintln!("Cassandra WARN/ERROR lines:\n{}", warnings.join("\n"));
}

#[tokio::test]
async fn password_authentication_is_used_and_a_wrong_password_is_reported() {
    let cassandra = Cassandra::start(CassandraOpts { password_auth: true, ..CassandraOpts::default() }).await;
    let node = cassandra.node();
    let dir = tempfile::tempdir().unwrap();
    let total = fill_store(dir.path(), 300).await;
    let fx = FixtureServer::start().await;
    let keyspace = format!("outpost_auth_{}", std::process::id());
    let cassandra_toml = |password: &str| {
        format!(
            "[cassandra]\nnodes = [\"{node}\"]\nkeyspace = \"{keyspace}\"\nconsistency = \"one\"\n\
             username = \"cassandra\"\npassword = \"{password}\"\n"
        )
    };
    let app = Outpost::start(dir.path(), &config(&fx, dir.path(), &cassandra_toml("not-the-password"))).await;
    let s = app.wait_for("the sink to report the refusal", 60, |s| sink(s)["last_error"].is_string()).await;
    assert_eq!(sink(&s)["connected"], false);
    assert_eq!(sink(&s)["backlog"].as_u64(), Some(total));
    let error = sink(&s)["last_error"].as_str().unwrap().to_owned();
    assert!(error.contains("bad credentials"), "the node refused the password: {error}");
    assert!(!app.log().contains("not-the-password"), "no secret in the log");
    assert!(app.stop().await.success());

    let app = Outpost::start(dir.path(), &config(&fx, dir.path(), &cassandra_toml("cassandra"))).await;
    app.wait_for("the sync", 180, |s| sink(s)["backlog"] == 0 && sink(s)["connected"] == true).await;
    assert!(app.stop().await.success());
    let rows = cassandra.query(&format!("SELECT count(*) AS n FROM {keyspace}.iss_position")).await;
    assert_eq!(rows[0]["n"].as_i64().unwrap() + 5, total as i64);
}

#[tokio::test]
async fn client_tls_with_a_test_ca_delivers() {
    let cassandra = Cassandra::start(CassandraOpts { client_tls: true, ..CassandraOpts::default() }).await;
    let node = cassandra.node();
    let ca = cassandra.ca.clone().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let total = fill_store(dir.path(), 300).await;
    let fx = FixtureServer::start().await;
    let keyspace = format!("outpost_tls_{}", std::process::id());
    let extra =
        format!("[cassandra]\nnodes = [\"{node}\"]\nkeyspace = \"{keyspace}\"\nconsistency = \"one\"\ntls = true\n");
    let cfg = config(&fx, dir.path(), &extra);
    // Outpost trusts the test CA through SSL_CERT_FILE (its TLS roots are the system's).
    let app = Outpost::start_env(dir.path(), &cfg, &[bin()], &[("SSL_CERT_FILE", ca.as_path())]).await;
    app.wait_for("the sync", 180, |s| sink(s)["backlog"] == 0 && sink(s)["connected"] == true).await;
    assert!(app.stop().await.success());
    let rows = cassandra.query(&format!("SELECT count(*) AS n FROM {keyspace}.iss_position")).await;
    assert_eq!(rows[0]["n"].as_i64().unwrap() + 5, total as i64);
    assert!(cassandra.log().contains("(encrypted)"), "the node listened with TLS only");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}
