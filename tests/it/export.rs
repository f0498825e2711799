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

/// A client that sends the request and never reads, with a small receive buffer, so that the
/// answer fills the socket buffers and the server's writes wait.
async fn never_reading(addr: std::net::SocketAddr, path: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes()).await.unwrap();
    stream
}

/// Reads a cut-off export to its end: a 200 that ends without HTTP's end-of-body mark, with
/// fewer rows than `positions`. Returns the bytes and rows that arrived.
async fn read_cut_off(mut stream: tokio::net::TcpStream, positions: usize) -> (usize, usize) {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(30), stream.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the server ends the connection");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{}", &text[..text.len().min(300)]);
    assert!(!text.ends_with("\r\n0\r\n\r\n"), "a cut-off export ends without the last chunk");
    let rows = text.matches("INSERT INTO").count();
    assert!(rows < positions, "{rows} of {positions} rows reached the stalled client");
    (got.len(), rows)
}

#[tokio::test]
async fn stalled_exports_are_bounded_and_cut_off_while_pages_keep_answering() {
    // The export's stall time (the connection's is twice that): long enough for the checks
    // below to run inside it on a busy machine.
    const STALL_S: u64 = 8;
    const LIMIT: usize = 2; // web::slow::EXPORT_LIMIT
    let dir = tempfile::tempdir().unwrap();
    // ~16 MB of CQL: far more than the socket buffers (at most 4 MB each with Linux's defaults)
    // and the export's channel hold.
    let positions = 60_000;
    fill_store(dir.path(), positions).await;
    let fx = FixtureServer::start().await;
    let stall = STALL_S.to_string();
    let env = [("OUTPOST_TEST_CLIENT_STALL_S", std::ffi::OsStr::new(&stall))];
    let app = Launched::spawn(dir.path(), &config(&fx, dir.path(), ""), &[bin()], &env).serving().await;
    let metrics = || async { app.get("/metrics").await.1.as_str().unwrap().to_owned() };
    let outcome = |m: &str, o: &str| sample(m, &format!("outpost_exports_total{{outcome=\"{o}\"}}"));
    let within = |secs: u64| tokio::time::Instant::now() + std::time::Duration::from_secs(secs);

    let cql = "/api/export?kind=iss&format=cql";
    let mut stalled = Vec::new();
    for _ in 0..LIMIT {
        stalled.push(never_reading(app.addr, cql).await);
    }
    let deadline = within(10);
    while sample(&metrics().await, "outpost_exports_running") < LIMIT as f64 {
        assert!(tokio::time::Instant::now() < deadline, "the stalled exports did not start");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let stalled_at = std::time::Instant::now();

    // Beyond the bound, exports are refused at once, with a time to come back.
    let http = reqwest::Client::new();
    for _ in 0..3 {
        let r = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            http.get(format!("http://{}{cql}", app.addr)).send(),
        )
        .await
        .expect("a refusal comes at once")
        .unwrap();
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["retry-after"], "10");
        assert!(r.text().await.unwrap().contains("2 exports are running"));
    }
    // The CLI, which goes through the appliance while it holds the store, says why.
    let out = Command::new(bin())
        .args(["export", "--kind", "iss", "--format", "cql", "--config"])
        .arg(&app.config_path)
        .env("OUTPOST_WEB_LISTEN", app.addr.to_string())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("2 exports are running"), "{stderr}");
    // Pages and the store-reading API answer beside the stalled exports.
    let mut slowest = std::time::Duration::ZERO;
    for path in ["/", "/api/status", "/api/iss/track", "/status", "/api/iss/latest"] {
        let asked = std::time::Instant::now();
        let (code, body) = tokio::time::timeout(std::time::Duration::from_secs(2), app.get(path))
            .await
            .unwrap_or_else(|_| panic!("{path} did not answer within 2 s beside {LIMIT} stalled exports"));
        assert_eq!(code, 200, "{path}: {body}");
        slowest = slowest.max(asked.elapsed());
    }
    let m = metrics().await;
    assert_eq!(outcome(&m, "stalled"), 0.0, "the pages were checked while the exports were stalled");
    assert_eq!(sample(&m, "outpost_exports_running"), LIMIT as f64);
    assert_eq!(outcome(&m, "refused"), 4.0);
    eprintln!("slow clients: pages answered within {slowest:?} beside {LIMIT} stalled exports");

    // After the stall time the exports stop, and their places and threads are free again.
    let deadline = within(STALL_S * 4);
    loop {
        let m = metrics().await;
        if outcome(&m, "stalled") == LIMIT as f64 && sample(&m, "outpost_exports_running") == 0.0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the stalled exports were not cut off:\n{m}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let cut_after = stalled_at.elapsed();
    assert!(cut_after >= std::time::Duration::from_secs(STALL_S - 1), "cut off after {cut_after:?}");
    eprintln!("slow clients: exports cut off {cut_after:?} after they stalled (stall time {STALL_S} s)");
    // One stalled client reads again, after the cut-off: it gets what was buffered, then the
    // connection ends without HTTP's end-of-body mark: a cut-off export never looks complete.
    let mut stalled = stalled.into_iter();
    let (bytes, rows) = read_cut_off(stalled.next().unwrap(), positions).await;
    eprintln!("slow clients: a client reading after the cut got {bytes} bytes ({rows} rows), then the cut");

    let r = http.get(format!("http://{}/api/export?kind=iss&format=jsonl", app.addr)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap().lines().count(), positions, "a new export holds every position");
    assert_eq!(outcome(&metrics().await, "completed"), 1.0);

    // The other never reads: after twice the stall time its connection is closed, and with it
    // the answer buffered for it.
    let deadline = within(STALL_S * 4);
    while sample(&metrics().await, "outpost_http_stalled_connections_total") < 1.0 {
        assert!(tokio::time::Instant::now() < deadline, "the stalled connection was not closed");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let closed_after = stalled_at.elapsed();
    let (bytes, rows) = read_cut_off(stalled.next().unwrap(), positions).await;
    eprintln!(
        "slow clients: the connection closed {closed_after:?} after the stall; {bytes} bytes ({rows} rows) had reached it"
    );
    assert_eq!(sample(&metrics().await, "outpost_http_stalled_connections_total"), 1.0);
    assert!(app.stop().await.success());
}
