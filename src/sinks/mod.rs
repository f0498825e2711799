//! Sinks: forward the log to upstreams (Kafka, MQTT, Cassandra) whenever they are reachable.
//!
//! Each sink is one file implementing `Sink` (connect, send a batch, say what was acknowledged).
//! The shared `forwarder` owns everything else: reading from the sink's own persisted cursor,
//! batching, back-off, marking replayed records, advancing the cursor only after an
//! acknowledgement, and the status. Collection never waits for a sink, and sinks never wait for
//! each other: each forwarder is its own task reading the store.

pub mod cassandra;
pub mod forwarder;
pub mod kafka;
pub mod message;
pub mod mqtt;

use crate::domain::StoredRecord;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// TLS to an upstream with the system's CA roots (every sink that offers TLS uses it).
pub(crate) fn upstream_tls_config() -> rustls::ClientConfig {
    crate::install_tls_provider();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth()
}

/// Why a send did not complete.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SinkError {
    /// The upstream is down, slow or flapping: retry soon with back-off.
    #[error("{0}")]
    Transient(String),
    /// Configuration or authentication is wrong: retry rarely; an operator must act.
    #[error("{0}")]
    Permanent(String),
}

/// A failed send, with how far the batch got: `acked` is the highest seq such that it and every
/// record before it in the batch were acknowledged.
#[derive(Debug)]
pub struct Partial {
    pub acked: Option<u64>,
    pub error: SinkError,
}

impl From<SinkError> for Partial {
    fn from(error: SinkError) -> Self {
        Partial { acked: None, error }
    }
}

pub trait Sink: Send {
    /// Short name: status key and cursor name (`sink.<name>`).
    fn name(&self) -> &'static str;

    /// Makes sure a connection exists (no-op when it does).
    fn connect(&mut self) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// Sends `batch` (in log order); `Ok` means the upstream acknowledged all of it. Records with
    /// `seq < live_from` were stored while this sink was behind and are marked as replayed.
    fn send(&mut self, batch: &[StoredRecord], live_from: u64) -> impl Future<Output = Result<(), Partial>> + Send;

    /// Called after a failure so the next `connect` starts afresh.
    fn disconnect(&mut self);
}

/// What `/api/status` shows for one sink. Never holds secrets.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SinkSnapshot {
    pub enabled: bool,
    pub connected: bool,
    /// Records stored but not yet acknowledged by this upstream.
    pub backlog: u64,
    pub cursor: u64,
    pub delivered: u64,
    pub replayed: u64,
    pub last_delivered: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_error_time: Option<DateTime<Utc>>,
}

#[derive(Default)]
struct SinkState {
    connected: bool,
    delivered: u64,
    replayed: u64,
    last_delivered: Option<DateTime<Utc>>,
    last_error: Option<String>,
    last_error_time: Option<DateTime<Utc>>,
}

/// A sink's live status; the forwarder writes it, status pages read it.
pub struct SinkStatus {
    pub name: &'static str,
    cursor: AtomicU64,
    state: Mutex<SinkState>,
}

impl SinkStatus {
    pub fn new(name: &'static str, cursor: u64) -> Self {
        SinkStatus { name, cursor: AtomicU64::new(cursor), state: Mutex::new(SinkState::default()) }
    }

    pub fn cursor(&self) -> u64 {
        self.cursor.load(Relaxed)
    }

    /// The snapshot, with the backlog against the store's newest `last_seq`.
    pub fn snapshot(&self, last_seq: u64) -> SinkSnapshot {
        let cursor = self.cursor();
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        SinkSnapshot {
            enabled: true,
            connected: s.connected,
            backlog: last_seq.saturating_sub(cursor),
            cursor,
            delivered: s.delivered,
            replayed: s.replayed,
            last_delivered: s.last_delivered,
            last_error: s.last_error.clone(),
            last_error_time: s.last_error_time,
        }
    }

    fn update(&self, f: impl FnOnce(&mut SinkState)) {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()));
    }

    fn delivered(&self, up_to: u64, count: u64, replayed: u64) {
        self.cursor.store(up_to, Relaxed);
        self.update(|s| {
            s.connected = true;
            s.delivered += count;
            s.replayed += replayed;
            s.last_delivered = Some(Utc::now());
        });
    }

    fn connected(&self) {
        self.update(|s| s.connected = true);
    }

    fn failed(&self, e: &SinkError) {
        self.update(|s| {
            s.connected = false;
            s.last_error = Some(e.to_string());
            s.last_error_time = Some(Utc::now());
        });
    }
}
