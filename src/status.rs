//! The appliance's status as one typed value: served on `/api/status`, rendered by `/status`,
//! exported by `/metrics` and printed by `outpost status` (from the daemon, or from the store when
//! none runs). Never contains secrets or configured URLs.
//!
//! Each part keeps its live status in a `StatusCell` it writes; `Probes` holds them all, and
//! `Status::collect` copies them out. Readers use the typed fields, so a renamed field is a
//! compile error, not a silently missing value.

use crate::alerts::{EmailSnapshot, EmailStatus};
use crate::domain::{DeadLetter, Kind};
use crate::location::{LocationSnapshot, LocationStatus};
use crate::sinks::{SinkEntry, SinkSnapshot};
use crate::sources::{SourceSnapshot, SourceStatus};
use crate::store::{Store, StoreSummary, WriterHandle};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

/// Every part's live status, as the running appliance holds it.
#[derive(Clone)]
pub struct Probes {
    pub store: Store,
    pub writer: WriterHandle,
    pub station: String,
    pub started: Instant,
    pub sources: Arc<Vec<Arc<SourceStatus>>>,
    /// Every sink of the registration list, configured or not.
    pub sinks: Arc<Vec<SinkEntry>>,
    pub location: Arc<LocationStatus>,
    /// `None` when `[email]` is off.
    pub email: Option<Arc<EmailStatus>>,
}

/// A part that can be switched off: its snapshot (which says `"enabled": true`) when on,
/// `{"enabled": false}` when off.
#[derive(Debug, Clone, PartialEq)]
pub enum Part<T> {
    Off,
    On(T),
}

impl<T> Part<T> {
    pub fn on(&self) -> Option<&T> {
        match self {
            Part::On(t) => Some(t),
            Part::Off => None,
        }
    }
}

impl<T: Serialize> Serialize for Part<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Off {
            enabled: bool,
        }
        match self {
            Part::On(t) => t.serialize(s),
            Part::Off => Off { enabled: false }.serialize(s),
        }
    }
}

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for Part<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        if v.get("enabled") == Some(&serde_json::Value::Bool(false)) {
            return Ok(Part::Off);
        }
        serde_json::from_value(v).map(Part::On).map_err(serde::de::Error::custom)
    }
}

/// The store's summary plus its estimated growth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreStatus {
    #[serde(flatten)]
    pub summary: StoreSummary,
    /// Bytes per day, from the last 24 h of positions; `None` until positions older than a day
    /// exist.
    pub growth_bytes_per_day: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WriterStatus {
    pub stored: BTreeMap<String, u64>,
    pub duplicates: BTreeMap<String, u64>,
    pub pending: u64,
    pub commits: u64,
    pub folds: u64,
    pub journal_bytes: u64,
    /// "direct" (one sector per commit) or "buffered" (the filesystem refused O_DIRECT).
    pub journal_mode: String,
    /// Bytes one small commit writes to the journal: the sector (512, or 4096 where the device
    /// refused 512-byte direct writes) or, buffered, a 4096-byte page.
    #[serde(default)]
    pub journal_write_bytes: u64,
    pub last_commit: Option<chrono::DateTime<chrono::Utc>>,
    pub last_fold: Option<chrono::DateTime<chrono::Utc>>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub station: String,
    /// Absent when read from the store without a running appliance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_s: Option<u64>,
    pub store: StoreStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer: Option<WriterStatus>,
    #[serde(default)]
    pub sources: BTreeMap<String, SourceSnapshot>,
    /// Per upstream: enabled, connected, backlog, last delivered, last error. Sinks that are not
    /// configured appear with `enabled: false`.
    pub sinks: BTreeMap<String, Part<SinkSnapshot>>,
    /// The observer's location and where it came from (gps, last_fix, config).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<LocationSnapshot>,
    /// Night-pass email alerts: sent, missed, pending, last error (`enabled: false` when off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<Part<EmailSnapshot>>,
    /// Records the sinks set aside and not yet re-sent, newest last (at most `DEAD_LETTERS_SHOWN`; the counts per
    /// sink are in `sinks`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dead_letters: Vec<DeadLetter>,
    /// Where `outpost status` read this: "running appliance" or "store (appliance not running)".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// How many dead letters the status lists (the newest).
pub const DEAD_LETTERS_SHOWN: usize = 50;

fn newest_dead_letters(store: &Store) -> anyhow::Result<Vec<DeadLetter>> {
    let mut all = store.pending_dead_letters(None)?;
    Ok(all.split_off(all.len().saturating_sub(DEAD_LETTERS_SHOWN)))
}

fn ms_time(ms: u64) -> Option<chrono::DateTime<chrono::Utc>> {
    (ms > 0).then(|| chrono::DateTime::from_timestamp_millis(ms as i64)).flatten()
}

/// Store growth per day, estimated from the last 24 h of positions (nearly every record is one)
/// and the store's average bytes per position. `None` until positions older than a day exist:
/// a young store's file is mostly preallocated space, which would overstate it.
fn growth_per_day(store: &Store, size_bytes: u64) -> anyhow::Result<Option<u64>> {
    let now = chrono::Utc::now();
    let all = store.track(chrono::DateTime::<chrono::Utc>::MIN_UTC, now, Some(1))?.total;
    let last_day = store.track(now - chrono::Duration::days(1), now, Some(1))?.total;
    Ok((all > last_day).then(|| (size_bytes as f64 * last_day as f64 / all as f64) as u64))
}

impl Status {
    /// Blocking: reads the store summary.
    pub fn collect(p: &Probes) -> anyhow::Result<Status> {
        let summary = p.store.summary()?;
        let growth_bytes_per_day = growth_per_day(&p.store, summary.size_bytes)?;
        let w = p.writer.stats();
        let per_kind = |f: &dyn Fn(Kind) -> u64| Kind::ALL.iter().map(|k| (k.to_string(), f(*k))).collect();
        let last_seq = w.last_seq.load(Relaxed);
        Ok(Status {
            version: env!("CARGO_PKG_VERSION").into(),
            station: p.station.clone(),
            uptime_s: Some(p.started.elapsed().as_secs()),
            store: StoreStatus { summary, growth_bytes_per_day },
            writer: Some(WriterStatus {
                stored: per_kind(&|k| w.stored(k)),
                duplicates: per_kind(&|k| w.duplicates(k)),
                pending: w.pending.load(Relaxed),
                commits: w.commits.load(Relaxed),
                folds: w.folds.load(Relaxed),
                journal_bytes: w.journal_bytes.load(Relaxed),
                journal_mode: if w.journal_direct.load(Relaxed) { "direct" } else { "buffered" }.into(),
                journal_write_bytes: w.journal_write_bytes.load(Relaxed),
                last_commit: ms_time(w.last_commit_ms.load(Relaxed)),
                last_fold: ms_time(w.last_fold_ms.load(Relaxed)),
                error: w.error(),
            }),
            sources: p.sources.iter().map(|s| (s.name.to_owned(), s.snapshot())).collect(),
            sinks: p
                .sinks
                .iter()
                .map(|e| (e.name.to_owned(), e.snapshot(last_seq).map_or(Part::Off, Part::On)))
                .collect(),
            location: Some(p.location.snapshot()),
            email: Some(match &p.email {
                Some(e) => Part::On(e.snapshot()),
                None => Part::Off,
            }),
            dead_letters: newest_dead_letters(&p.store)?,
            source: None,
        })
    }

    /// What the store alone tells, for `outpost status` while no appliance runs: a sink's backlog
    /// is what its persisted cursor has not reached.
    pub fn from_store(store: &Store, station: &str) -> anyhow::Result<Status> {
        let summary = store.summary()?;
        let dead_letters = store.pending_dead_letters(None)?;
        let sinks = summary
            .cursors
            .iter()
            .filter_map(|(name, cursor)| {
                let sink = name.strip_prefix("sink.")?;
                let mut snapshot = SinkSnapshot::offline(*cursor, summary.last_seq);
                snapshot.dead_letters = dead_letters.iter().filter(|d| d.sink == sink).count() as u64;
                Some((sink.to_owned(), Part::On(snapshot)))
            })
            .collect();
        Ok(Status {
            version: env!("CARGO_PKG_VERSION").into(),
            station: station.to_owned(),
            uptime_s: None,
            store: StoreStatus { growth_bytes_per_day: growth_per_day(store, summary.size_bytes)?, summary },
            writer: None,
            sources: BTreeMap::new(),
            sinks,
            location: None,
            email: None,
            dead_letters: newest_dead_letters(store)?,
            source: Some("store (appliance not running)".into()),
        })
    }
}
