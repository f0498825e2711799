//! Test helpers: a scriptable fixture HTTP server and a handle on a running `outpost` process.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Response, StatusCode};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One scripted answer.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    pub delay: Duration,
}

impl Reply {
    pub fn ok(body: impl Into<Vec<u8>>) -> Reply {
        Reply { status: 200, body: body.into(), delay: Duration::ZERO }
    }
    pub fn status(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply { status, body: body.into(), delay: Duration::ZERO }
    }
    pub fn slow(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

type Generator = Box<dyn Fn(u64) -> Reply + Send + Sync>;

/// What a route answers: a queue of replies (the last one repeats), or a generator called with
/// the request number.
enum Route {
    Queue(VecDeque<Reply>),
    Generate(Generator, u64),
}

#[derive(Default)]
struct ServerState {
    routes: Mutex<HashMap<String, Route>>,
    log: Mutex<Vec<String>>,
}

/// A local HTTP server standing in for open-notify, CelesTrak and NVE.
#[derive(Clone)]
pub struct FixtureServer {
    pub addr: SocketAddr,
    state: Arc<ServerState>,
}

impl FixtureServer {
    pub async fn start() -> FixtureServer {
        let state = Arc::new(ServerState::default());
        let app = axum::Router::new().fallback(answer).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        FixtureServer { addr, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answers requests whose path starts with `prefix` with `replies` in order, repeating the last.
    pub fn script(&self, prefix: &str, replies: Vec<Reply>) {
        self.state.routes.lock().unwrap().insert(prefix.to_owned(), Route::Queue(replies.into()));
    }

    pub fn generate(&self, prefix: &str, f: impl Fn(u64) -> Reply + Send + Sync + 'static) {
        self.state.routes.lock().unwrap().insert(prefix.to_owned(), Route::Generate(Box::new(f), 0));
    }

    /// Every request seen so far (path and query), in order.
    pub fn requests(&self) -> Vec<String> {
        self.state.log.lock().unwrap().clone()
    }

    pub fn requests_to(&self, prefix: &str) -> Vec<String> {
        self.requests().into_iter().filter(|r| r.starts_with(prefix)).collect()
    }
}

async fn answer(State(state): State<Arc<ServerState>>, req: Request) -> Response<Body> {
    let target = req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
    state.log.lock().unwrap().push(target.clone());
    let reply = {
        let mut routes = state.routes.lock().unwrap();
        let best = routes.keys().filter(|p| target.starts_with(p.as_str())).max_by_key(|p| p.len()).cloned();
        match best.and_then(|k| routes.get_mut(&k)) {
            Some(Route::Queue(q)) if q.len() > 1 => q.pop_front(),
            Some(Route::Queue(q)) => q.front().cloned(),
            Some(Route::Generate(f, n)) => {
                *n += 1;
                Some(f(*n))
            }
            None => None,
        }
    };
    let reply = reply.unwrap_or_else(|| Reply::status(404, "no such fixture"));
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    Response::builder().status(StatusCode::from_u16(reply.status).unwrap()).body(Body::from(reply.body)).unwrap()
}

/// An open-notify answer (the recorded fixture's shape) for `time`.
pub fn open_notify(time: DateTime<Utc>, lat: &str, lon: &str) -> Vec<u8> {
    format!(
        r#"{{"message": "success", "iss_position": {{"latitude": "{lat}", "longitude": "{lon}"}}, "timestamp": {}}}"#,
        time.timestamp()
    )
    .into_bytes()
}

/// An open-notify answer for `time` at the point under the ISS by `tle` (TLE text, as served):
/// a position that agrees with the orbit, as a real upstream's does.
pub fn on_orbit(tle: &str, time: DateTime<Utc>) -> Vec<u8> {
    let (lat, lon) = subpoint(tle, time);
    open_notify(time, &format!("{lat:.4}"), &format!("{lon:.4}"))
}

/// Where SGP4 puts the ISS by `tle` (TLE text) at `time`: latitude, longitude.
pub fn subpoint(tle: &str, time: DateTime<Utc>) -> (f64, f64) {
    let tle = outpost::sources::tle_parse::parse_tle(tle.as_bytes()).unwrap();
    outpost::passes::GroundTrack::new(&tle).unwrap().subpoint(time).unwrap()
}

/// A config for an outpost that talks only to `fx`, with a short commit interval.
pub fn config(fx: &FixtureServer, store: &Path, extra: &str) -> String {
    format!(
        r#"
[station]
id = "it"
[store]
path = "{store}"
commit_interval_s = 1
[iss]
position_url = "{pos}"
poll_interval_s = 1
tle_url = "{tle}"
tle_refresh_h = 2.0
[varsom]
base_url = "{nve}"
regions = [3022]
lang = 2
backfill_days = 7
[weather]
# Off unless a test turns it on (tests/it/weather.rs); never the internet.
enabled = false
forecast_url = "{weather}"
archive_url = "{weather_archive}"
[http]
timeout_s = 2.0
[web]
listen = "127.0.0.1:0"
{extra}
"#,
        store = store.display(),
        pos = fx.url("/iss-now.json"),
        tle = fx.url("/tle"),
        nve = fx.url("/nve"),
        weather = fx.url("/open-meteo/v1/forecast"),
        weather_archive = fx.url("/open-meteo/v1/archive"),
    )
}

/// A running `outpost run` process.
pub struct Outpost {
    child: Child,
    pub addr: SocketAddr,
    pub config_path: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
    /// The log lines not yet read by `serving` (the kill drill reads on).
    pub lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    http: reqwest::Client,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_outpost")
}

/// A started `outpost run` that may not serve yet: its log lines arrive on `lines` as it writes
/// them (the kill drill acts on them), and are kept in `log`.
pub struct Launched {
    pub child: Child,
    pub config_path: PathBuf,
    pub lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Launched {
    /// Writes `config` next to the store and starts `command` (a program and its first
    /// arguments) as `outpost run` on it, with the JSON log on stderr.
    pub fn spawn(dir: &Path, config: &str, command: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Launched {
        let config_path = dir.join("outpost.toml");
        std::fs::write(&config_path, config).unwrap();
        let mut child = Command::new(command[0])
            .args(&command[1..])
            .args(["--log-format", "json", "run", "--config"])
            .arg(&config_path)
            .env("OUTPOST_LOG", std::env::var("OUTPOST_TEST_LOG").unwrap_or_else(|_| "info,outpost=debug".into()))
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("outpost binary starts");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        let log2 = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = stderr.next_line().await {
                log2.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        Launched { child, config_path, lines, log }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Every line it wrote, once it has closed its stderr (exited or killed; at most 30 s).
    pub async fn every_line(&mut self) -> Vec<String> {
        let eof = async { while self.lines.recv().await.is_some() {} };
        tokio::time::timeout(Duration::from_secs(30), eof).await.expect("its log ends when it has exited");
        self.log.lock().unwrap().clone()
    }

    /// Waits (at most 30 s) until it serves.
    pub async fn serving(mut self) -> Outpost {
        let wait = async {
            while let Some(line) = self.lines.recv().await {
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && v["message"] == "serving the map and API"
                {
                    return Some(v["address"].as_str().unwrap().parse::<SocketAddr>().unwrap());
                }
            }
            None
        };
        let addr = match tokio::time::timeout(Duration::from_secs(30), wait).await {
            Ok(Some(a)) => a,
            _ => panic!("outpost did not start serving; log:\n{}", self.log()),
        };
        outpost::install_tls_provider();
        Outpost {
            child: self.child,
            addr,
            config_path: self.config_path,
            log: self.log,
            lines: self.lines,
            http: reqwest::Client::new(),
        }
    }
}

/// Prints the line a test prints when it cannot run here, `SKIPPED <test name>: <why>`, on
/// stdout (scripts/test.sh counts these and names them in its closing line). The name is the
/// calling test's, as cargo test names it. The caller returns after it.
macro_rules! skip {
    ($($why:tt)*) => {{
        fn here() {}
        $crate::helpers::skip_line(std::any::type_name_of_val(&here), &format!($($why)*))
    }};
}
pub(crate) use skip;

pub fn skip_line(here: &str, why: &str) {
    // "it::drills_disk::a_test::{{closure}}::here" -> "drills_disk::a_test"
    let path = here.replace("::{{closure}}", "");
    let path = path.strip_suffix("::here").unwrap_or(&path);
    let name = path.split_once("::").map_or(path, |(_, rest)| rest);
    println!("SKIPPED {name}: {why}");
}

impl Outpost {
    /// Writes `config` next to the store and starts `outpost run` on it; returns once it serves.
    pub async fn start(dir: &Path, config: &str) -> Outpost {
        Outpost::start_with(dir, config, &[bin()]).await
    }

    /// `start` with `command` (a program and its first arguments) in place of this build's
    /// binary, e.g. qemu-aarch64 running the Raspberry Pi build.
    pub async fn start_with(dir: &Path, config: &str, command: &[&str]) -> Outpost {
        Outpost::start_env(dir, config, command, &[]).await
    }

    /// `start_with`, with extra environment variables (e.g. SSL_CERT_FILE naming a test CA).
    pub async fn start_env(dir: &Path, config: &str, command: &[&str], env: &[(&str, &Path)]) -> Outpost {
        let env: Vec<(&str, &std::ffi::OsStr)> = env.iter().map(|(k, v)| (*k, v.as_os_str())).collect();
        Launched::spawn(dir, config, command, &env).serving().await
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Back to the process and its log lines (e.g. to kill it and read what it wrote last).
    pub fn into_launched(self) -> Launched {
        Launched { child: self.child, config_path: self.config_path, lines: self.lines, log: self.log }
    }

    /// The process id of the running appliance.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("the appliance runs")
    }

    /// How it exited, if it has.
    pub fn try_exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// `get`, or `None` when the appliance does not answer (it is going away).
    pub async fn try_get(&self, path_and_query: &str) -> Option<(u16, Value)> {
        let r = self.http.get(format!("http://{}{path_and_query}", self.addr)).send().await.ok()?;
        let status = r.status().as_u16();
        let text = r.text().await.ok()?;
        Some((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
    }

    pub async fn get(&self, path_and_query: &str) -> (u16, Value) {
        let r = self.http.get(format!("http://{}{path_and_query}", self.addr)).send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn status(&self) -> Value {
        let (code, v) = self.get("/api/status").await;
        assert_eq!(code, 200, "{v}");
        v
    }

    /// Polls /api/status until `cond` holds (at most `secs`), returning that status.
    pub async fn wait_for(&self, what: &str, secs: u64, cond: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.status().await;
            if cond(&s) {
                return s;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("timed out waiting for {what}; last status: {s:#}\nlog:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// kill -9: no shutdown path runs.
    pub async fn kill9(mut self) {
        self.child.kill().await.unwrap();
    }

    /// SIGTERM and wait for a clean exit.
    pub async fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().unwrap().to_string();
        std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(s) => s.unwrap(),
            Err(_) => panic!("outpost did not stop on SIGTERM; log:\n{}", self.log()),
        }
    }
}

/// The stored count of a kind, from a status value.
pub fn stored(status: &Value, kind: &str) -> u64 {
    status["store"]["kinds"].as_array().unwrap().iter().find(|k| k["kind"] == kind).unwrap()["count"].as_u64().unwrap()
}

/// How often `source` rejected for `reason` in this process.
pub fn rejections(status: &Value, source: &str, reason: &str) -> u64 {
    status["sources"][source]["rejections"][reason].as_u64().unwrap_or(0)
}

/// The value of the sample `name` (with its labels) in a Prometheus text scrape.
pub fn sample(metrics: &str, name: &str) -> f64 {
    let line = metrics.lines().find(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with(' ')));
    let line = line.unwrap_or_else(|| panic!("no {name} in\n{metrics}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}
