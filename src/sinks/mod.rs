//! Sinks: forward the log to upstreams (Kafka, MQTT, Cassandra) whenever they are reachable.
//!
//! Each sink is one file implementing `Sink` (connect, send a batch, say what was acknowledged).
//! The shared `forwarder` owns everything else: reading from the sink's own persisted cursor,
//! batching, back-off, marking replayed records, advancing the cursor only after an
//! acknowledgement, and the status. Collection never waits for a sink, and sinks never wait for
//! each other: each forwarder is its own task reading the store.
//!
//! Adding a sink: one file, its section in `Sections`, one line in `spawn_all`.

pub mod cassandra;
pub mod forwarder;
pub mod kafka;
pub mod mqtt;

use crate::cell::StatusCell;
use crate::config::sections;
use crate::domain::StoredRecord;
use crate::store::{Store, WriterHandle};
use chrono::{DateTime, Utc};
use forwarder::{Forwarder, cursor_name};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use tokio_util::sync::CancellationToken;

sections! {
    /// The sinks' sections, one per upstream.
    pub struct Sections {
        kafka: kafka::KafkaConfig,
        cassandra: cassandra::CassandraConfig,
        mqtt: mqtt::MqttConfig,
    }
}

/// What starting the sinks needs.
pub struct Spawn<'a> {
    /// Forwarders run as the daemon's tasks: one that ends early is reported as dead.
    pub tasks: &'a crate::status::tasks::Tasks,
    pub store: &'a Store,
    pub writer: &'a WriterHandle,
    pub cancel: &'a CancellationToken,
    pub station: &'a str,
    /// The avalanche regions followed (`[varsom] regions`), for the MQTT state topics.
    pub regions: &'a [u32],
    /// `avalanche_alerts.min_level`: the MQTT "danger at or above" binary sensors' threshold.
    pub danger_min_level: u8,
    /// The current-state feed, for state sinks; started only when one is configured.
    pub current: Option<tokio::sync::watch::Receiver<crate::current::Current>>,
}

/// Starts every configured sink, one line each; returns every sink of the list (the status
/// shows the others as off).
pub async fn spawn_all(cfg: &Sections, at: &Spawn<'_>) -> anyhow::Result<Vec<SinkEntry>> {
    let station = at.station.to_owned();
    Ok(vec![
        spawn(
            at,
            cfg.kafka.enabled().then(|| kafka::KafkaSink::new(cfg.kafka.clone(), station.clone())),
            cfg.kafka.batch_size,
        )
        .await?,
        spawn(
            at,
            cfg.cassandra.enabled().then(|| cassandra::CassandraSink::new(cfg.cassandra.clone())),
            cfg.cassandra.batch_size,
        )
        .await?,
        spawn(
            at,
            at.current.clone().filter(|_| cfg.mqtt.enabled()).map(|current| {
                mqtt::MqttSink::new(
                    cfg.mqtt.clone(),
                    station.clone(),
                    at.regions.to_vec(),
                    at.danger_min_level,
                    current,
                )
            }),
            mqtt::BATCH_SIZE,
        )
        .await?,
    ])
}

/// One sink of the list: its name, and its status when it is configured.
pub struct SinkEntry {
    pub name: &'static str,
    pub status: Option<Arc<SinkStatus>>,
    /// Asks the sink's forwarder to re-send its dead letters (`outpost resend`).
    pub resend: Option<tokio::sync::mpsc::Sender<tokio::sync::oneshot::Sender<forwarder::ResendReport>>>,
}

impl SinkEntry {
    /// `None` when the sink is not configured.
    pub fn snapshot(&self, last_seq: u64) -> Option<SinkSnapshot> {
        self.status.as_ref().map(|s| s.snapshot(last_seq))
    }
}

/// Starts a sink's forwarder from its persisted cursor, if the sink is configured.
async fn spawn<S: Sink + 'static>(at: &Spawn<'_>, sink: Option<S>, batch_size: usize) -> anyhow::Result<SinkEntry> {
    let Some(sink) = sink else { return Ok(SinkEntry { name: S::NAME, status: None, resend: None }) };
    let store = at.store.clone();
    let (cursor, dead_letters) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        Ok((store.cursor(&cursor_name(S::NAME))?, store.pending_dead_letters(Some(S::NAME))?.len() as u64))
    })
    .await??;
    let status = Arc::new(SinkStatus::new(S::NAME, cursor));
    status.update(|s| s.dead_letters = dead_letters);
    let (resend, requests) = tokio::sync::mpsc::channel(4);
    let forwarder = Forwarder::new(sink, at.store.clone(), at.writer.clone(), status.clone(), batch_size, requests);
    let cancel = at.cancel.clone();
    at.tasks.spawn(format!("sink {}", S::NAME), async move {
        use tracing::Instrument;
        forwarder.run(cancel).instrument(tracing::info_span!("sink", name = S::NAME)).await
    });
    Ok(SinkEntry { name: S::NAME, status: Some(status), resend: Some(resend) })
}

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
    /// The upstream refuses this one record for what it is (it cannot be mapped, it is too
    /// large, the server rejects it): retrying cannot help. The forwarder sets it aside in the
    /// store's dead-letter list and goes on. Every record before `seq` in the batch must have
    /// been acknowledged (return it in a `Partial` whose `acked` is the record before it).
    #[error("record {seq} refused: {reason}")]
    Refused { seq: u64, reason: String },
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
    const NAME: &'static str;

    fn name(&self) -> &'static str {
        Self::NAME
    }

    /// Makes sure a connection exists (no-op when it does).
    fn connect(&mut self) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// Sends `batch` (in log order); `Ok` means the upstream acknowledged all of it. Records with
    /// `seq < live_from` were stored while this sink was behind and are marked as replayed.
    fn send(&mut self, batch: &[StoredRecord], live_from: u64) -> impl Future<Output = Result<(), Partial>> + Send;

    /// Called after a failure so the next `connect` starts afresh.
    fn disconnect(&mut self);

    /// Resolves when a state sink has something to publish without a new record (the MQTT sky
    /// state at a predicted instant); an idle forwarder then steps at once instead of at its
    /// next tick. Never, by default.
    fn wake(&mut self) -> impl Future<Output = ()> + Send {
        std::future::pending()
    }
}

/// What `/api/status` shows for one sink. Never holds secrets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
    /// Records this upstream refused for what they are, set aside (`outpost status` lists them).
    #[serde(default)]
    pub dead_letters: u64,
}

impl SinkSnapshot {
    /// What a persisted cursor tells while no appliance runs.
    pub fn offline(cursor: u64, last_seq: u64) -> Self {
        SinkSnapshot { enabled: true, backlog: last_seq.saturating_sub(cursor), cursor, ..SinkSnapshot::default() }
    }
}

#[derive(Clone, Default)]
struct SinkState {
    connected: bool,
    delivered: u64,
    replayed: u64,
    last_delivered: Option<DateTime<Utc>>,
    last_error: Option<String>,
    last_error_time: Option<DateTime<Utc>>,
    dead_letters: u64,
}

/// A sink's live status; the forwarder writes it, status pages read it.
pub struct SinkStatus {
    pub name: &'static str,
    cursor: AtomicU64,
    state: StatusCell<SinkState>,
}

impl SinkStatus {
    pub fn new(name: &'static str, cursor: u64) -> Self {
        SinkStatus { name, cursor: AtomicU64::new(cursor), state: StatusCell::default() }
    }

    pub fn cursor(&self) -> u64 {
        self.cursor.load(Relaxed)
    }

    /// The snapshot, with the backlog against the store's newest `last_seq`.
    pub fn snapshot(&self, last_seq: u64) -> SinkSnapshot {
        let cursor = self.cursor();
        let s = self.state.snapshot();
        SinkSnapshot {
            enabled: true,
            connected: s.connected,
            backlog: last_seq.saturating_sub(cursor),
            cursor,
            delivered: s.delivered,
            replayed: s.replayed,
            last_delivered: s.last_delivered,
            last_error: s.last_error,
            last_error_time: s.last_error_time,
            dead_letters: s.dead_letters,
        }
    }

    fn update(&self, f: impl FnOnce(&mut SinkState)) {
        self.state.update(f)
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

    fn set_aside(&self) {
        self.update(|s| s.dead_letters += 1);
    }

    fn resent(&self, n: u64) {
        self.update(|s| s.dead_letters = s.dead_letters.saturating_sub(n));
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
