//! Helpers around the upstreams the tests talk to: an independent Kafka reader (kafka-python),
//! a TCP proxy that can cut connections, and a way to fill a store with a simulated week of
//! records. The real Kafka and Cassandra servers are in servers.rs; scripts/test.sh installs them
//! and the reader.

use crate::helpers::*;
use chrono::{Duration, Utc};
use outpost::domain::{IssPosition, Record};
use outpost::store::{Store, StoreOptions};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;

pub fn home_tool(env: &str, default: &str) -> PathBuf {
    if let Ok(p) = std::env::var(env) {
        return PathBuf::from(p);
    }
    let p = PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/outpost").join(default);
    assert!(p.exists(), "{} not found: run scripts/test.sh (it installs it) or set {env}", p.display());
    p
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Every message of `topic`, read by kafka-python (offsets from the fetch high watermark).
pub async fn read_topic(port: u16, topic: &str) -> Vec<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/kafka_read.py");
    let out = Command::new(home_tool("OUTPOST_PYTHON", "venv/bin/python"))
        .arg(script)
        .arg(format!("127.0.0.1:{port}"))
        .arg(topic)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "kafka_read.py failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// A TCP proxy whose connections the test can cut (a broker that dies mid-batch and comes
/// back without losing what it stored). It can cut by itself after forwarding a number of bytes
/// towards the upstream, which lands the cut in the middle of a request.
#[derive(Clone)]
pub struct Proxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    budget: Arc<AtomicI64>,
    cut: Arc<tokio::sync::Notify>,
    /// Connections forwarded to the upstream so far.
    connections: Arc<std::sync::atomic::AtomicU64>,
    /// Connections open now.
    open: Arc<std::sync::atomic::AtomicU64>,
    /// Open connections a cut dropped (the cut was felt by a client, not only announced).
    severed: Arc<std::sync::atomic::AtomicU64>,
}

impl Proxy {
    /// Binds the proxy's port now; forwards to `upstream` once connections arrive.
    pub async fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let proxy = Proxy {
            port,
            up: Arc::new(AtomicBool::new(true)),
            budget: Arc::new(AtomicI64::new(i64::MAX)),
            cut: Arc::new(tokio::sync::Notify::new()),
            connections: Arc::default(),
            open: Arc::default(),
            severed: Arc::default(),
        };
        let p = proxy.clone();
        tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else { return };
                if !p.up.load(Ordering::SeqCst) {
                    continue; // dropped at once: the "broker" is down
                }
                let p = p.clone();
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(("127.0.0.1", upstream)).await else { return };
                    p.connections.fetch_add(1, Ordering::SeqCst);
                    p.open.fetch_add(1, Ordering::SeqCst);
                    let (mut in_r, mut in_w) = inbound.into_split();
                    let (mut out_r, mut out_w) = outbound.into_split();
                    // Returns true when this connection ran out of the byte budget (a cut).
                    let towards_upstream = async {
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            let n = match in_r.read(&mut buf).await {
                                Ok(0) | Err(_) => return false,
                                Ok(n) => n,
                            };
                            let left = p.budget.fetch_sub(n as i64, Ordering::SeqCst);
                            let pass = n.min(left.max(0) as usize);
                            if out_w.write_all(&buf[..pass]).await.is_err() {
                                return false;
                            }
                            if pass < n {
                                p.cut();
                                return true;
                            }
                        }
                    };
                    let severed = tokio::select! {
                        by_budget = towards_upstream => by_budget,
                        _ = tokio::io::copy(&mut out_r, &mut in_w) => false,
                        _ = p.cut.notified() => true,
                    };
                    p.open.fetch_sub(1, Ordering::SeqCst);
                    if severed {
                        p.severed.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
        });
        proxy
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.notify_waiters();
    }

    /// Cuts by itself once `bytes` more have been forwarded towards the upstream.
    pub fn cut_after(&self, bytes: i64) {
        self.budget.store(bytes, Ordering::SeqCst);
    }

    pub fn restore(&self) {
        self.budget.store(i64::MAX, Ordering::SeqCst);
        self.up.store(true, Ordering::SeqCst);
    }

    /// How many connections have been forwarded to the upstream.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }

    /// How many connections are open now.
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::SeqCst)
    }

    /// How many open connections cuts have dropped so far.
    pub fn severed(&self) -> u64 {
        self.severed.load(Ordering::SeqCst)
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::SeqCst)
    }
}

/// Writes what `fill` appends into a new store in `dir`, through the store's own writer thread
/// (as the daemon does); returns the last seq.
pub async fn write_store(dir: &Path, fill: impl FnOnce(&outpost::store::WriterHandle) + Send + 'static) -> u64 {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        let opts = StoreOptions { max_batch: 10_000, ..StoreOptions::default() };
        let (_store, writer, _) = Store::open(&dir, "it", opts).unwrap();
        let handle = writer.handle();
        let thread = writer.spawn().unwrap();
        fill(&handle);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let last = rt.block_on(handle.shutdown()).unwrap();
        thread.join().unwrap();
        last
    })
    .await
    .unwrap()
}

/// The `i`-th position of a simulated orbit, at `time` (a sine in latitude, steps in longitude).
pub fn simulated_position(time: chrono::DateTime<Utc>, i: usize) -> Record {
    Record::IssPosition(
        IssPosition {
            time,
            latitude: ((i as f64) / 50.0).sin() * 51.6,
            longitude: ((i as f64 * 0.7) % 360.0) - 180.0,
            altitude_km: Some(420.0),
            velocity_kmh: None,
            visibility: None,
        }
        .rounded(),
    )
}

/// Fills a new store in `dir` with `n` positions 10 s apart, ending an hour ago (a simulated
/// offline stretch), plus the recorded avalanche warnings. Returns the number of records.
pub async fn fill_store(dir: &Path, n: usize) -> u64 {
    write_store(dir, move |handle| {
        let start = Utc::now() - Duration::hours(1) - Duration::seconds(10 * n as i64);
        for i in 0..n {
            handle.append(simulated_position(start + Duration::seconds(10 * i as i64), i));
        }
        let parsed =
            outpost::sources::varsom_parse::parse_warnings(&fixture("nve_AvalancheWarningByRegion_Detail.json"));
        for w in parsed.unwrap().warnings {
            handle.append(Record::AvalancheWarning(w));
        }
    })
    .await
}

/// A sink's cursor as persisted in a store that no process holds.
pub fn stored_cursor(dir: &Path, sink: &str) -> u64 {
    let (store, writer, _) = Store::open(dir, "it", StoreOptions::default()).unwrap();
    drop(writer);
    store.cursor(&format!("sink.{sink}")).unwrap()
}

/// How a raw answer frames its body.
#[derive(Clone, Copy, Debug)]
pub enum Framing {
    /// `Content-Length: n`, whatever the body really holds.
    Length(u64),
    Chunked,
    /// No length at all: the body ends when the connection closes.
    UntilClose,
}

/// One answer of the `RawServer`: `body`, then `padding` bytes of `pad`, written 64 KB at a time
/// as the client reads (never held whole), then the connection closes.
#[derive(Clone, Debug)]
pub struct RawReply {
    pub framing: Framing,
    pub body: Vec<u8>,
    pub padding: usize,
    pub pad: u8,
}

impl RawReply {
    /// A plain 200 answer with the right Content-Length.
    pub fn ok(body: Vec<u8>) -> RawReply {
        RawReply { framing: Framing::Length(body.len() as u64), body, padding: 0, pad: b' ' }
    }
}

/// A hostile upstream: HTTP/1.1 written by hand, for answers a server library will not send (a
/// body far longer than its Content-Length says, a body without any length). Connection `n` (from
/// 1) gets `reply(n)`; every answer says `Connection: close`.
pub struct RawServer {
    pub addr: std::net::SocketAddr,
    connections: Arc<std::sync::atomic::AtomicU64>,
    /// Body bytes written per connection number, the socket buffers' share included (filled when
    /// a connection ends): far less than an answer holds when the client stopped reading.
    written: Arc<std::sync::Mutex<Vec<(u64, usize)>>>,
}

impl RawServer {
    pub async fn start(reply: impl Fn(u64) -> RawReply + Send + Sync + 'static) -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server =
            RawServer { addr: listener.local_addr().unwrap(), connections: Arc::default(), written: Arc::default() };
        let (connections, written, reply) = (server.connections.clone(), server.written.clone(), Arc::new(reply));
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else { return };
                let n = connections.fetch_add(1, Ordering::SeqCst) + 1;
                let (reply, written) = (reply(n), written.clone());
                tokio::spawn(async move {
                    let sent = answer_raw(socket, reply).await;
                    written.lock().unwrap().push((n, sent));
                });
            }
        });
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }

    /// Body bytes written on connection `n`, once it has ended.
    pub fn written(&self, n: u64) -> Option<usize> {
        self.written.lock().unwrap().iter().find(|(c, _)| *c == n).map(|(_, w)| *w)
    }
}

/// Reads the request head, writes `reply`; returns how many body bytes got written.
async fn answer_raw(mut socket: TcpStream, reply: RawReply) -> usize {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return 0,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let framing = match reply.framing {
        Framing::Length(n) => format!("Content-Length: {n}\r\n"),
        Framing::Chunked => "Transfer-Encoding: chunked\r\n".into(),
        Framing::UntilClose => String::new(),
    };
    let head = format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{framing}Connection: close\r\n\r\n");
    if socket.write_all(head.as_bytes()).await.is_err() {
        return 0;
    }
    let chunked = matches!(reply.framing, Framing::Chunked);
    let mut sent = 0;
    let pad = vec![reply.pad; 64 * 1024];
    let mut pieces = std::iter::once(&reply.body[..])
        .chain(std::iter::repeat_n(&pad[..], reply.padding / pad.len()))
        .chain(std::iter::once(&pad[..reply.padding % pad.len()]));
    let ok = loop {
        let Some(piece) = pieces.next() else { break true };
        if piece.is_empty() {
            continue;
        }
        let framed = if chunked {
            [format!("{:x}\r\n", piece.len()).as_bytes(), piece, b"\r\n"].concat()
        } else {
            piece.to_vec()
        };
        if socket.write_all(&framed).await.is_err() {
            break false;
        }
        sent += piece.len();
    };
    if ok && chunked {
        let _ = socket.write_all(b"0\r\n\r\n").await;
    }
    let _ = socket.shutdown().await;
    sent
}
