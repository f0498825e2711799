//! Shared by the bench binaries (benches/*.rs): the machine, simulated history, real upstream
//! servers on loopback, and a plain HTTP/1.1 GET for polling a running `outpost run`.
//!
//! Each bench includes this with `mod common;` and uses only part of it.
#![allow(dead_code)]

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use outpost::domain::{AvalancheWarning, IssPosition, Record, Tle};
use outpost::store::{Store, StoreOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(name: &str) -> Vec<u8> {
    let path = manifest_dir().join("tests/fixtures").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The release `outpost` binary cargo built for this bench (the bench profile is the release one).
pub fn outpost_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_outpost"))
}

/// A tool under ~/.cache/outpost (what scripts/test.sh installs), or `$env` if set.
pub fn home_tool(env: &str, default: &str) -> PathBuf {
    if let Ok(p) = std::env::var(env) {
        return PathBuf::from(p);
    }
    let p = PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/outpost").join(default);
    assert!(p.exists(), "{} not found: run scripts/bench.sh (it installs it) or set {env}", p.display());
    p
}

/// A fresh directory for a bench's stores (under `$OUTPOST_BENCH_DIR`, default the target dir's
/// parent's tmp), removed when dropped. It must be on the filesystem being measured: not tmpfs.
pub struct BenchDir(pub PathBuf);

impl BenchDir {
    pub fn new(name: &str) -> BenchDir {
        let base = std::env::var("OUTPOST_BENCH_DIR").map(PathBuf::from).unwrap_or_else(|_| std::env::temp_dir());
        let dir = base.join(format!("outpost-bench-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        BenchDir(dir)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for BenchDir {
    fn drop(&mut self) {
        if std::env::var_os("OUTPOST_BENCH_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// One line describing the machine and how busy it is now (load averages, other processes).
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem_kb: u64 = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| s.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()))
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpu}, {cores} cores, {:.0} GiB, Linux {}; {}", mem_kb as f64 / 1048576.0, kernel.trim(), load())
}

pub fn load() -> String {
    let l = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let v: Vec<&str> = l.split_whitespace().take(3).collect();
    format!("load average {}", v.join(" "))
}

/// write_bytes of this process (/proc/self/io): what the kernel sent to the storage layer.
pub fn write_bytes() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").expect("/proc/self/io (Linux only)");
    io.lines().find_map(|l| l.strip_prefix("write_bytes: ")).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// Resident set size of `pid` in KiB (VmRSS), None once it has exited.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// CPU time (user + system) `pid` has used so far, in seconds.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest: Vec<&str> = s.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = rest.get(11)?.parse::<f64>().ok()? + rest.get(12)?.parse::<f64>().ok()?;
    Some(ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64)
}

/// (RssAnon, RssFile) of `pid` in KiB: memory the process wrote vs. pages of files it maps (its
/// own binary, libc), which the kernel can drop and read again.
pub fn rss_split_kib(pid: u32) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        s.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.split_whitespace().next()?.parse().ok())
    };
    Some((field("RssAnon:")?, field("RssFile:")?))
}

/// Drops `path` from the page cache, so the next read comes from the disk (a cold start).
pub fn evict(path: &Path) {
    use std::os::fd::AsRawFd;
    if let Ok(f) = std::fs::File::open(path) {
        let _ = f.sync_all();
        // SAFETY: posix_fadvise only reads its integer arguments; the fd is open for this call.
        unsafe {
            libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
        }
    }
}

/// The files' lengths in `dir`, in bytes.
pub fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map(|rd| rd.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum()).unwrap_or(0)
}

/// The disk space the files in `dir` take (allocated blocks). redb grows its file ahead of use
/// in steps that double, so the length overstates what is written by up to half.
pub fn dir_allocated(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.blocks() * 512).sum())
        .unwrap_or(0)
}

/// Median and max of a set of durations, in ms.
pub fn stats_ms(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    let median = v[v.len() / 2];
    (v[0], median, v[v.len() - 1])
}

// ---------------------------------------------------------------------------------------------
// Simulated history

/// The ISS at `t` on a simple circular orbit (51.6 deg, 92.7 min): realistic values for the
/// codec (varints), not a real track.
pub fn position(t: DateTime<Utc>) -> IssPosition {
    let s = t.timestamp() as f64;
    let phase = s / 5_562.0 * std::f64::consts::TAU;
    let lat = 51.6 * phase.sin();
    let lon = ((s / 5_562.0 * 360.0 - s / 86_164.0 * 360.0) % 360.0 + 540.0) % 360.0 - 180.0;
    // open-notify (the default source) gives neither altitude nor velocity.
    IssPosition { time: t, latitude: lat, longitude: lon, altitude_km: None, velocity_kmh: None, visibility: None }
        .rounded()
}

/// The recorded NVE warnings, used as templates.
pub fn warning_templates() -> Vec<AvalancheWarning> {
    outpost::sources::varsom_parse::parse_warnings(&fixture("nve_AvalancheWarningByRegion_Detail.json"))
        .expect("the NVE fixture parses")
        .warnings
}

/// What NVE publishes for one day at the defaults: one version per class-A region, and a second
/// version for every third region (a re-publication during the day).
pub fn warnings_for(day: NaiveDate, templates: &[AvalancheWarning], next_reg_id: &mut u64) -> Vec<AvalancheWarning> {
    let mut out = Vec::new();
    for (i, region) in outpost::sources::varsom::CLASS_A_REGIONS.iter().enumerate() {
        let versions = if i.is_multiple_of(3) { 2 } else { 1 };
        for v in 0..versions {
            let mut w = templates[(i + v) % templates.len()].clone();
            w.region_id = *region;
            w.reg_id = *next_reg_id;
            *next_reg_id += 1;
            w.valid_date = day;
            let midnight = Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0).unwrap());
            w.valid_from = midnight;
            w.valid_to = midnight + Duration::days(1) - Duration::seconds(1);
            w.publish_time = midnight - Duration::hours(8) + Duration::hours(6 * v as i64);
            out.push(w);
        }
    }
    out
}

/// The recorded TLE with its epoch moved to `epoch` (a distinct TLE per epoch, as stored).
pub fn tle_at(epoch: DateTime<Utc>) -> Tle {
    let mut t = outpost::sources::tle_parse::parse_tle(&fixture("celestrak_gp_CATNR25544_FORMAT_TLE.txt"))
        .expect("the TLE fixture parses");
    t.epoch = epoch;
    t
}

pub struct Filled {
    pub positions: u64,
    pub tles: u64,
    pub warnings: u64,
    pub last_seq: u64,
}

/// Fills a new store in `dir` with `days` of history ending at `end`, in batches of up to 10,000
/// (a bulk fill, not the daemon's commit pattern): a position every 10 s, two TLEs a day and
/// the day's warnings (see `warnings_for`), in time order. `extras = false`: positions only.
pub fn fill(dir: &Path, end: DateTime<Utc>, positions: u64, extras: bool) -> Filled {
    let opts = StoreOptions { max_batch: 10_000, ..StoreOptions::default() };
    let (_store, writer, _) = Store::open(dir, "bench", opts).unwrap();
    let w = writer.handle();
    let thread = writer.spawn().unwrap();
    let start = end - Duration::seconds(10 * positions as i64);
    let templates = warning_templates();
    let mut reg_id = 1_000_000;
    let (mut tles, mut warnings) = (0, 0);
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    for i in 0..positions {
        let t = start + Duration::seconds(10 * i as i64);
        if extras && i.is_multiple_of(4_320) {
            // Every 12 h: a new TLE; once a day: the day's warnings.
            w.append(Record::Tle(tle_at(t - Duration::hours(3))));
            tles += 1;
            if i.is_multiple_of(8_640) {
                for warning in warnings_for(t.date_naive(), &templates, &mut reg_id) {
                    w.append(Record::AvalancheWarning(warning));
                    warnings += 1;
                }
            }
        }
        w.append(Record::IssPosition(position(t)));
        if i % 100_000 == 99_999 {
            // Keep the writer's queue bounded.
            rt.block_on(w.flush()).unwrap();
        }
    }
    let last_seq = rt.block_on(w.shutdown()).unwrap();
    thread.join().unwrap();
    Filled { positions, tles, warnings, last_seq }
}

// ---------------------------------------------------------------------------------------------
// Servers and processes

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn wait_listening(port: u16, what: &str) {
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start listening on {port}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A child process killed (and reaped) when dropped.
pub struct Proc(pub Child);

impl Proc {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
    /// SIGTERM, then wait.
    pub fn stop(mut self) -> std::process::ExitStatus {
        unsafe {
            libc::kill(self.0.id() as i32, libc::SIGTERM);
        }
        self.0.wait().unwrap()
    }
    pub fn kill9(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Apache Kafka (KRaft combined mode, node 1) on 127.0.0.1:`port`, from the jars scripts/servers.sh
/// installs ($OUTPOST_KAFKA_LIB, or the version of tests/servers/kafka/pom.xml under
/// ~/.cache/outpost/servers). The same set-up as tests/it/servers.rs; killed and its data dir
/// removed when dropped.
pub struct Kafka {
    proc: Proc,
    _dir: tempfile::TempDir,
}

impl Kafka {
    /// The broker JVM's pid (for its CPU time).
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }
}

fn kafka_lib() -> PathBuf {
    if let Ok(p) = std::env::var("OUTPOST_KAFKA_LIB") {
        return PathBuf::from(p);
    }
    let pom = std::fs::read_to_string(manifest_dir().join("tests/servers/kafka/pom.xml")).unwrap();
    let version = pom.split("<kafka.version>").nth(1).and_then(|s| s.split('<').next()).unwrap();
    home_tool("OUTPOST_KAFKA_LIB", &format!("servers/kafka-{version}/lib"))
}

/// The host the bench's broker listens on and is reached at: $OUTPOST_BENCH_KAFKA_HOST, else
/// 127.0.0.1 (scripts/bench-kafka-netns.sh sets it to the far end of a veth pair).
pub fn kafka_host() -> String {
    std::env::var("OUTPOST_BENCH_KAFKA_HOST").unwrap_or_else(|_| "127.0.0.1".into())
}

/// `java`, run inside the network namespace $OUTPOST_BENCH_KAFKA_NETNS when it is set.
fn broker_java() -> Command {
    match std::env::var("OUTPOST_BENCH_KAFKA_NETNS") {
        Ok(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &ns, "java"]);
            c
        }
        Err(_) => Command::new("java"),
    }
}

pub fn apache_kafka(port: u16) -> Kafka {
    let host = kafka_host();
    let lib = kafka_lib();
    let cp = format!("{}/*", lib.display());
    let dir = tempfile::Builder::new().prefix("outpost-bench-kafka-").tempdir().unwrap();
    let controller = free_port();
    let props = dir.path().join("server.properties");
    std::fs::write(
        &props,
        format!(
            "process.roles=broker,controller\nnode.id=1\n\
             controller.quorum.bootstrap.servers=127.0.0.1:{controller}\n\
             listeners=PLAINTEXT://{host}:{port},CONTROLLER://127.0.0.1:{controller}\n\
             advertised.listeners=PLAINTEXT://{host}:{port}\ncontroller.listener.names=CONTROLLER\n\
             inter.broker.listener.name=PLAINTEXT\n\
             listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n\
             log.dirs={}\nnum.partitions=1\nauto.create.topics.enable=false\n\
             offsets.topic.replication.factor=1\ntransaction.state.log.replication.factor=1\n\
             transaction.state.log.min.isr=1\nshare.coordinator.state.topic.replication.factor=1\n\
             share.coordinator.state.topic.min.isr=1\ngroup.initial.rebalance.delay.ms=0\n\
             log.retention.ms=-1\n", // no time retention: see tests/it/servers.rs
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let log4j = dir.path().join("log4j2.properties");
    std::fs::write(
        &log4j,
        "appender.out.type = Console\nappender.out.name = out\nappender.out.layout.type = PatternLayout\n\
         appender.out.layout.pattern = [%d] %p %m (%c)%n\nrootLogger.level = INFO\nrootLogger.appenderRef.out.ref = out\n",
    )
    .unwrap();
    let log_prop = format!("-Dlog4j2.configurationFile={}", log4j.display());
    // A cluster id as `kafka-storage random-uuid` prints it: 16 bytes, base64url, no padding.
    let id = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(fastrand::u128(..).to_be_bytes())
    };
    let out = Command::new("java")
        .args([
            "-XX:TieredStopAtLevel=1",
            &log_prop,
            "-cp",
            &cp,
            "kafka.tools.StorageTool",
            "format",
            &format!("--cluster-id={id}"),
            "-c",
        ])
        .arg(&props)
        .arg("--standalone")
        .output()
        .expect("java runs");
    assert!(out.status.success(), "kafka-storage format failed: {}", String::from_utf8_lossy(&out.stdout));
    let log = dir.path().join("server.log");
    let file = std::fs::File::create(&log).unwrap();
    let child = broker_java()
        .args(["-Xms256m", "-Xmx512m", &log_prop, "-cp", &cp, "kafka.Kafka"])
        .arg(&props)
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .expect("java starts");
    let mut proc = Proc(child);
    let deadline = Instant::now() + std::time::Duration::from_secs(120);
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("Kafka Server started") {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(proc.0.try_wait().unwrap().is_none(), "Kafka exited during start-up:\n{text}");
        assert!(Instant::now() < deadline, "Kafka not ready after 120 s:\n{text}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Kafka { proc, _dir: dir }
}

/// A mosquitto on 127.0.0.1:`port` with its own config in `dir`, logging publishes to
/// `dir/mosquitto.log`.
pub fn mosquitto(dir: &Path, port: u16) -> Proc {
    let log = dir.join("mosquitto.log");
    let conf = format!(
        "user root\nlistener {port} 127.0.0.1\npersistence false\nallow_anonymous true\nlog_dest file {}\nlog_type all\n",
        log.display()
    );
    let conf_path = dir.join("mosquitto.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let bin = if Path::new("/usr/sbin/mosquitto").exists() { "/usr/sbin/mosquitto" } else { "mosquitto" };
    let child = Command::new(bin)
        .arg("-c")
        .arg(&conf_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto starts (apt-get install mosquitto)");
    wait_listening(port, "mosquitto");
    Proc(child)
}

/// A config for `outpost run` on `store` whose collectors point at a closed local port (they
/// back off; nothing new is stored unless `sources` overrides them), web on `web_port`.
pub fn config(store: &Path, web_port: u16, sources: Option<&str>, extra: &str) -> String {
    let closed = format!("http://127.0.0.1:{}", free_port());
    let src = sources.map(str::to_owned).unwrap_or_else(|| {
        format!(
            "[iss]\nposition_url = \"{closed}/iss-now.json\"\ntle_url = \"{closed}/tle\"\n[varsom]\nbase_url = \"{closed}/nve\"\n[weather]\nforecast_url = \"{closed}/forecast\"\n"
        )
    });
    format!(
        "[station]\nid = \"bench\"\n[store]\npath = \"{}\"\n{src}[http]\ntimeout_s = 2.0\n[web]\nlisten = \"127.0.0.1:{web_port}\"\ntile_url = \"\"\n{extra}",
        store.display()
    )
}

/// Starts `outpost run --config` (config written to `dir/outpost.toml`), logging JSON to
/// `dir/outpost.log`.
pub fn start_outpost(dir: &Path, config: &str) -> Proc {
    let path = dir.join("outpost.toml");
    std::fs::write(&path, config).unwrap();
    let log = std::fs::File::create(dir.join("outpost.log")).unwrap();
    let child = Command::new(outpost_bin())
        .args(["--log-format", "json", "run", "--config"])
        .arg(&path)
        .env("OUTPOST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("outpost starts");
    Proc(child)
}

/// A blocking HTTP/1.1 GET on 127.0.0.1:`port`: (status, body), None if nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let body =
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(body) } else { body.to_owned() };
    Some((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// `/api/status` as JSON.
pub fn status(port: u16) -> Option<serde_json::Value> {
    let (code, body) = http_get(port, "/api/status")?;
    if code != 200 {
        return None;
    }
    serde_json::from_str(&body).ok()
}

/// Polls `/healthz` every millisecond until it answers 200; the time since `since`.
pub fn wait_healthy(port: u16, since: Instant, limit_s: u64) -> std::time::Duration {
    loop {
        if let Some((200, _)) = http_get(port, "/healthz") {
            return since.elapsed();
        }
        assert!(since.elapsed().as_secs() < limit_s, "no /healthz within {limit_s} s");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// One Apache Cassandra 5.0 node on 127.0.0.1:`port` (CQL), from the jars scripts/servers.sh
/// installs ($OUTPOST_CASSANDRA_LIB, or the version of tests/servers/cassandra/pom.xml under
/// ~/.cache/outpost/servers): the set-up of tests/it/servers.rs (SimpleSnitch, one token, the JVM
/// options of tests/servers/cassandra/jvm17.options, -Xmx1G, periodic commit log). Ready when the
/// Python driver (tests/tools/cql_read.py) runs a query. Killed and its dir removed when dropped.
pub struct CassandraNode {
    proc: Proc,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl CassandraNode {
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }
    pub fn node(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

fn cassandra_lib() -> PathBuf {
    if let Ok(p) = std::env::var("OUTPOST_CASSANDRA_LIB") {
        return PathBuf::from(p);
    }
    let pom = std::fs::read_to_string(manifest_dir().join("tests/servers/cassandra/pom.xml")).unwrap();
    let version = pom.split("<cassandra.version>").nth(1).and_then(|s| s.split('<').next()).unwrap();
    home_tool("OUTPOST_CASSANDRA_LIB", &format!("servers/cassandra-{version}/lib"))
}

/// `cql` run by tests/tools/cql_read.py on `node`: its JSON rows, or None if it failed.
pub fn cql_rows(node: &str, cql: &str) -> Option<Vec<serde_json::Value>> {
    let out = Command::new(home_tool("OUTPOST_PYTHON", "venv/bin/python"))
        .arg(manifest_dir().join("tests/tools/cql_read.py"))
        .arg(node)
        .arg(cql)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout).ok()?.lines().map(|l| serde_json::from_str(l).ok()).collect()
}

pub fn apache_cassandra() -> CassandraNode {
    let started = Instant::now();
    let lib = cassandra_lib();
    let dir = tempfile::Builder::new().prefix("outpost-bench-cassandra-").tempdir().unwrap();
    let d = dir.path();
    let (port, storage) = (free_port(), free_port());
    let yaml = d.join("cassandra.yaml");
    std::fs::write(
        &yaml,
        format!(
            "cluster_name: outpost-bench\nnum_tokens: 1\ninitial_token: 0\n\
             partitioner: org.apache.cassandra.dht.Murmur3Partitioner\nauto_bootstrap: false\n\
             commitlog_sync: periodic\ncommitlog_sync_period: 10000ms\n\
             seed_provider:\n  - class_name: org.apache.cassandra.locator.SimpleSeedProvider\n    parameters:\n      - seeds: \"127.0.0.1:{storage}\"\n\
             listen_address: 127.0.0.1\nrpc_address: 127.0.0.1\nstorage_port: {storage}\nnative_transport_port: {port}\n\
             start_native_transport: true\nendpoint_snitch: SimpleSnitch\n\
             data_file_directories: [{d}/data]\ncommitlog_directory: {d}/commitlog\n\
             saved_caches_directory: {d}/saved_caches\nhints_directory: {d}/hints\ncdc_raw_directory: {d}/cdc_raw\n\
             authenticator: AllowAllAuthenticator\nauthorizer: AllowAllAuthorizer\nrole_manager: CassandraRoleManager\n\
             disk_access_mode: mmap_index_only\n",
            d = d.display()
        ),
    )
    .unwrap();
    let system_log = d.join("system.log");
    let logback = d.join("logback.xml");
    std::fs::write(
        &logback,
        format!(
            "<configuration>\n  <appender name=\"FILE\" class=\"ch.qos.logback.core.FileAppender\">\n    \
             <file>{}</file>\n    <encoder><pattern>%-5level [%thread] %date{{ISO8601}} %F:%L - %msg%n</pattern></encoder>\n  \
             </appender>\n  <root level=\"INFO\"><appender-ref ref=\"FILE\"/></root>\n</configuration>\n",
            system_log.display()
        ),
    )
    .unwrap();
    let options = std::fs::read_to_string(manifest_dir().join("tests/servers/cassandra/jvm17.options")).unwrap();
    let out = std::fs::File::create(d.join("stdout.log")).unwrap();
    let child = Command::new("java")
        .args(options.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')))
        .args(["-Xms1G", "-Xmx1G", "-XX:+UseG1GC", "-XX:+ExitOnOutOfMemoryError"])
        .arg(format!("-Dcassandra.config=file://{}", yaml.display()))
        .arg(format!("-Dlogback.configurationFile={}", logback.display()))
        .arg(format!("-Dcassandra.storagedir={}", d.display()))
        .arg(format!("-Dcassandra.logdir={}", d.display()))
        .args(["-Dcassandra-foreground=yes", "-Dcassandra.skip_wait_for_gossip_to_settle=0"])
        .args(["-Dcassandra.superuser_setup_delay_ms=0", "-Djava.awt.headless=true"])
        .args(["-cp", &format!("{}/*", lib.display()), "org.apache.cassandra.service.CassandraDaemon"])
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .stdin(Stdio::null())
        .spawn()
        .expect("java starts");
    let mut proc = Proc(child);
    let node = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + std::time::Duration::from_secs(240);
    loop {
        assert!(proc.0.try_wait().unwrap().is_none(), "Cassandra exited during start-up; see {}", system_log.display());
        let listening =
            std::fs::read_to_string(&system_log).unwrap_or_default().contains("Starting listening for CQL clients");
        if listening && cql_rows(&node, "SELECT release_version FROM system.local").is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "Cassandra not ready after 240 s; see {}", system_log.display());
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    println!("Apache Cassandra on {node} ready in {:.1} s", started.elapsed().as_secs_f64());
    CassandraNode { proc, port, _dir: dir }
}
