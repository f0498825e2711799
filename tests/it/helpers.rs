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
    )
}

/// A running `outpost run` process.
pub struct Outpost {
    child: Child,
    pub addr: SocketAddr,
    pub config_path: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
    http: reqwest::Client,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_outpost")
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
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let log2 = log.clone();
        tokio::spawn(async move {
            let mut addr_tx = Some(addr_tx);
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && v["message"] == "serving the map and API"
                    && let Some(tx) = addr_tx.take()
                {
                    let _ = tx.send(v["address"].as_str().unwrap().parse::<SocketAddr>().unwrap());
                }
                log2.lock().unwrap().push(line);
            }
        });
        let addr = match tokio::time::timeout(Duration::from_secs(30), addr_rx).await {
            Ok(Ok(a)) => a,
            _ => panic!("outpost did not start serving; log:\n{}", log.lock().unwrap().join("\n")),
        };
        outpost::install_tls_provider();
        Outpost { child, addr, config_path, log, http: reqwest::Client::new() }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
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
