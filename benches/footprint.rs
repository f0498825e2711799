//! Footprint of the release `outpost` binary: steady RSS with every sink on, start-up time to a
//! serving `/healthz`, and the time to reopen a 1 GB store after kill -9.
//!
//!     cargo bench --bench footprint                   # everything (about 6 minutes)
//!     cargo bench --bench footprint -- rss 300        # one part: rss [SECONDS] | startup | reopen [GB] | size
//!
//! - **rss**: `outpost run` at the default settings on a store holding a week of history (the
//!   sync bench's backlog), collectors polling a local fixture server (open-notify answers with
//!   the current time, the recorded TLE and NVE answers), the observer set (passes for MQTT), and
//!   every sink on: Kafka = Apache Kafka 4, MQTT = mosquitto, Cassandra = a closed local port (no CQL
//!   server can run here: the sink is on, failing to connect and retrying with back-off). The
//!   week drains to Kafka and MQTT first. VmRSS is sampled every second; `/api/status` is read
//!   every second and the map page and a day's track once a minute (a browser on the map).
//! - **startup**: spawn to the first 200 from `/healthz`, on an empty store and on the week's
//!   store, 5 runs each (median).
//! - **reopen**: a 1 GB store is filled by a child process (this bench binary, bulk appends at
//!   the writer's batch limit, folding whenever the journal reaches 4 MB, as the daemon does) which
//!   is killed with SIGKILL while it keeps committing; then `outpost run` is started on it and timed
//!   to `/healthz` (the page cache still holds the file, as after a crash and a restart by
//!   systemd), and, after another kill, `Store::open` in this process with the file evicted from
//!   the page cache first (as after a power cut). Repeated 3 times each.

mod common;

use chrono::{Duration as TimeDelta, Utc};
use common::*;
use outpost::domain::Record;
use outpost::store::{DB_FILE, Store, StoreOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    if args.first().map(String::as_str) == Some("__fill_child") {
        return fill_child(Path::new(&args[1]), args[2].parse().unwrap());
    }
    let part = args.first().map(String::as_str).unwrap_or("all");
    let arg = args.get(1).and_then(|v| v.parse::<f64>().ok());
    println!("machine: {}", machine());
    if matches!(part, "all" | "rss") {
        rss(arg.unwrap_or(240.0) as u64);
    }
    if matches!(part, "all" | "startup") {
        startup();
    }
    if matches!(part, "all" | "reopen") {
        reopen(arg.unwrap_or(1.0));
    }
    if matches!(part, "all" | "size") {
        sizes();
    }
    println!("done: {}", load());
}

/// A minimal HTTP server standing in for open-notify, CelesTrak and NVE.
fn fixture_server() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let tle = fixture("celestrak_gp_CATNR25544_FORMAT_TLE.txt");
    let nve = fixture("nve_AvalancheWarningByRegion_Detail.json");
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let (tle, nve) = (tle.clone(), nve.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let n = conn.read(&mut buf).unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]);
                let path = req.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let (ctype, body) = if path.starts_with("/iss-now.json") {
                    let p = position(Utc::now());
                    let b = format!(
                        r#"{{"message": "success", "iss_position": {{"latitude": "{:.4}", "longitude": "{:.4}"}}, "timestamp": {}}}"#,
                        p.latitude,
                        p.longitude,
                        p.time.timestamp()
                    );
                    ("application/json", b.into_bytes())
                } else if path.starts_with("/tle") {
                    ("text/plain", tle)
                } else {
                    ("application/json", nve)
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(&body);
            });
        }
    });
    port
}

fn rss(seconds: u64) {
    println!("\n== steady RSS, every sink on, {seconds} s");
    let work = BenchDir::new("rss");
    let store = work.path().join("store");
    let f = fill(&store, Utc::now() - TimeDelta::minutes(5), 60_480, true);
    let kafka_port = free_port();
    let _kafka = apache_kafka(kafka_port);
    let mqtt_port = free_port();
    let _mosquitto = mosquitto(work.path(), mqtt_port);
    let fx = fixture_server();
    let closed = free_port();
    let web = free_port();
    let sources = format!(
        "[iss]\nposition_url = \"http://127.0.0.1:{fx}/iss-now.json\"\ntle_url = \"http://127.0.0.1:{fx}/tle\"\n[varsom]\nbase_url = \"http://127.0.0.1:{fx}/nve\"\n[weather]\nenabled = false\n[location]\nlatitude = 59.9139\nlongitude = 10.7522\n"
    );
    let sinks = format!(
        "[kafka]\nbrokers = [\"127.0.0.1:{kafka_port}\"]\n[mqtt]\nurl = \"mqtt://127.0.0.1:{mqtt_port}\"\n[cassandra]\nnodes = [\"127.0.0.1:{closed}\"]\n"
    );
    let app = start_outpost(work.path(), &config(&store, web, Some(&sources), &sinks));
    let t0 = Instant::now();
    wait_healthy(web, t0, 30);
    let mut samples: Vec<(f64, u64)> = Vec::new();
    let mut drained_at = None;
    let mut last_status = serde_json::Value::Null;
    while t0.elapsed() < Duration::from_secs(seconds) {
        let t = t0.elapsed().as_secs_f64();
        samples.push((t, rss_kib(app.pid()).expect("outpost is running")));
        if let Some(s) = status(web) {
            let k = s["sinks"]["kafka"]["cursor"].as_u64().unwrap_or(0);
            let m = s["sinks"]["mqtt"]["cursor"].as_u64().unwrap_or(0);
            if drained_at.is_none() && k >= f.last_seq && m >= f.last_seq {
                drained_at = Some(t);
            }
            last_status = s;
        }
        if samples.len() % 60 == 1 {
            let day = Utc::now() - TimeDelta::days(1);
            let _ = http_get(web, "/");
            let _ = http_get(web, &format!("/api/iss/track?from={}", day.format("%Y-%m-%dT%H:%M:%SZ")));
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let (anon, file) = rss_split_kib(app.pid()).unwrap_or_default();
    let stopped = app.stop();
    let peak = samples.iter().map(|s| s.1).max().unwrap();
    let first = samples[0].1;
    let tail: Vec<f64> = samples.iter().filter(|s| s.0 >= seconds as f64 - 60.0).map(|s| s.1 as f64 / 1024.0).collect();
    let (tmin, tmed, tmax) = stats_ms(tail);
    println!(
        "  at the end: RssAnon {:.1} MB (heap, stacks, redb's cache), RssFile {:.1} MB (mapped pages of the binary and libc)",
        anon as f64 / 1024.0,
        file as f64 / 1024.0
    );
    let sinks = &last_status["sinks"];
    println!(
        "RSS: {:.1} MB at /healthz, peak {:.1} MB, last 60 s: median {tmed:.1} MB (min {tmin:.1}, max {tmax:.1}); backlog drained at {} s; exit {stopped}",
        first as f64 / 1024.0,
        peak as f64 / 1024.0,
        drained_at.map_or("never".into(), |t| format!("{t:.0}")),
    );
    for name in ["kafka", "mqtt", "cassandra"] {
        let s = &sinks[name];
        println!(
            "  sink {name}: enabled {}, connected {}, delivered {}, backlog {}, last_error {}",
            s["enabled"], s["connected"], s["delivered"], s["backlog"], s["last_error"]
        );
    }
    let stored = &last_status["store"]["kinds"];
    println!("  stored now: {stored}");
    let mut per_min = String::new();
    for s in samples.iter().filter(|s| (s.0 as u64).is_multiple_of(30)) {
        per_min.push_str(&format!(" {:.0}s={:.1}", s.0, s.1 as f64 / 1024.0));
    }
    println!("  RSS (MB) every 30 s:{per_min}");
}

fn startup() {
    println!("\n== start-up time (spawn to /healthz 200)");
    let work = BenchDir::new("startup");
    let week = work.path().join("week");
    fill(&week, Utc::now() - TimeDelta::hours(1), 60_480, true);
    for (what, store) in [("empty store", work.path().join("empty")), ("a week's store", week)] {
        let mut times = Vec::new();
        for _ in 0..5 {
            let web = free_port();
            let cfg = config(&store, web, None, "");
            let t0 = Instant::now();
            let app = start_outpost(work.path(), &cfg);
            times.push(wait_healthy(web, t0, 30).as_secs_f64() * 1e3);
            app.stop();
        }
        let (min, med, max) = stats_ms(times);
        println!("{what}: median {med:.1} ms (min {min:.1}, max {max:.1}, 5 runs)");
    }
}

/// The child of `reopen`: opens the store (reporting what the open did), then appends positions
/// for ever, reporting the database file's size; the parent kills it.
fn fill_child(dir: &Path, start_s: i64) {
    let t0 = Instant::now();
    let (store, writer, report) = Store::open(dir, "bench", StoreOptions::default()).unwrap();
    println!("opened {} ms replayed {} torn {}", t0.elapsed().as_millis(), report.replayed, report.torn_tail);
    let next = store.latest_position().unwrap().map_or(start_s, |p| p.time.timestamp() + 10);
    let w = writer.handle();
    let _thread = writer.spawn().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let db = dir.join(DB_FILE);
    let start = chrono::DateTime::from_timestamp(next, 0).unwrap();
    for i in 0.. {
        w.append(Record::IssPosition(position(start + TimeDelta::seconds(10 * i))));
        if i % 50_000 == 49_999 {
            rt.block_on(w.flush()).unwrap();
            println!("size {}", std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0));
            std::io::stdout().flush().unwrap();
        }
    }
}

/// Runs the fill child until the database file reaches `bytes`, lets it go on committing for a
/// moment, and kills it with SIGKILL. Returns what the child's own open reported.
fn fill_and_kill(dir: &Path, bytes: u64) -> String {
    let mut child = Proc(
        Command::new(std::env::current_exe().unwrap())
            .arg("__fill_child")
            .arg(dir)
            .arg((Utc::now() - TimeDelta::days(3650)).timestamp().to_string())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let opened = lines.next().unwrap().unwrap();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.strip_prefix("size ").and_then(|v| v.parse::<u64>().ok()).is_some_and(|s| s >= bytes) {
            break;
        }
    }
    // Mid-stream: the writer commits a 1,024-record batch every few milliseconds.
    std::thread::sleep(Duration::from_millis(300 + fastrand::u64(0..400)));
    child.kill9();
    opened
}

fn reopen(gb: f64) {
    let bytes = (gb * 1e9) as u64;
    println!("\n== reopen a {gb} GB store after kill -9");
    let work = BenchDir::new("reopen");
    let store = work.path().join("store");
    let clock = Instant::now();
    let opened = fill_and_kill(&store, bytes);
    println!("filled to {:.2} GB in {:.0} s ({opened})", dir_size(&store) as f64 / 1e9, clock.elapsed().as_secs_f64());
    // `outpost run` after kill -9, page cache warm (a crash, then systemd's restart).
    for round in 0..3 {
        if round > 0 {
            fill_and_kill(&store, 0);
        }
        let web = free_port();
        let cfg = config(&store, web, None, "");
        let t0 = Instant::now();
        let app = start_outpost(work.path(), &cfg);
        let took = wait_healthy(web, t0, 120);
        app.stop();
        let log = std::fs::read_to_string(work.path().join("outpost.log")).unwrap_or_default();
        let open = log.lines().find(|l| l.contains("\"store open\"")).unwrap_or("").to_owned();
        let v: serde_json::Value = serde_json::from_str(&open).unwrap_or_default();
        println!(
            "outpost run after kill -9 ({:.2} GB, page cache warm): /healthz after {:.0} ms (store open {} ms, replayed {} records)",
            dir_size(&store) as f64 / 1e9,
            took.as_secs_f64() * 1e3,
            v["open_ms"],
            v["replayed"]
        );
    }
    // Store::open after kill -9 with the file evicted from the page cache (a power cut), with
    // the default page check (store.verify_on_start) and without it.
    for verify_on_open in [true, false] {
        for _ in 0..3 {
            fill_and_kill(&store, 0);
            evict(&store.join(DB_FILE));
            let t0 = Instant::now();
            let opts = StoreOptions { verify_on_open, ..StoreOptions::default() };
            let (_s, _w, report) = Store::open(&store, "bench", opts).unwrap();
            println!(
                "Store::open after kill -9 ({:.2} GB, evicted from the page cache, verify_on_start {verify_on_open}): {:.0} ms (replayed {} records, torn tail {})",
                dir_size(&store) as f64 / 1e9,
                t0.elapsed().as_secs_f64() * 1e3,
                report.replayed,
                report.torn_tail
            );
        }
    }
    // What the page check costs at most: one read of the whole file (the store streams it
    // with readahead before checking; redb's own page reads have readahead off).
    let db = store.join(DB_FILE);
    let (n, random_ms) = read_cold(&db, 4096, true);
    let (_, seq_ms) = read_cold(&db, 1 << 20, false);
    println!(
        "reading the whole {:.2} GB file once, cold: {random_ms:.0} ms in 4 KB reads with readahead off (FADV_RANDOM, as the store opens it), {seq_ms:.0} ms in 1 MB reads with readahead",
        n as f64 / 1e9
    );
}

/// How long reading all of `path` takes with the page cache cold, in `chunk`-byte reads, with
/// readahead off (`random`, as the store opens redb's file) or on.
fn read_cold(path: &Path, chunk: usize, random: bool) -> (u64, f64) {
    use std::os::fd::AsRawFd;
    evict(path);
    let mut f = std::fs::File::open(path).unwrap();
    let advice = if random { libc::POSIX_FADV_RANDOM } else { libc::POSIX_FADV_SEQUENTIAL };
    // SAFETY: posix_fadvise only reads its integer arguments; the fd is open for this call.
    unsafe {
        libc::posix_fadvise(f.as_raw_fd(), 0, 0, advice);
    }
    let mut buf = vec![0u8; chunk];
    let (mut total, t0) = (0u64, Instant::now());
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    (total, t0.elapsed().as_secs_f64() * 1e3)
}

fn sizes() {
    println!("\n== binary size");
    let x86 = outpost_bin();
    println!("x86_64 release (this build, stripped): {:.1} MB", std::fs::metadata(&x86).unwrap().len() as f64 / 1e6);
    println!("(the Raspberry Pi's aarch64 binary: see BENCHMARKS.md, Raspberry Pi)");
}
