//! The appliance's status as one typed value: served on `/api/status`, rendered by `/status`,
//! exported by `/metrics` and printed by `outpost status` (from the daemon, or from the store when
//! none runs). Never contains secrets or configured URLs.
//!
//! Each part keeps its live status in a `StatusCell` it writes; `Probes` holds them all, and
//! `Status::collect` copies them out. Readers use the typed fields, so a renamed field is a
//! compile error, not a silently missing value.

pub mod tasks;

use crate::alerts::{DangerSnapshot, DangerStatus, EmailSnapshot, EmailStatus};
use crate::domain::{DeadLetter, Kind};
use crate::location::{LocationSnapshot, LocationStatus};
pub use crate::passes::freshness::AgeLevel;
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
    /// `None` unless `[email] push` is on.
    pub pass_push: Option<Arc<EmailStatus>>,
    /// `None` unless `[avalanche_alerts]` is on.
    pub danger: Option<Arc<DangerStatus>>,
    /// The daemon's tasks and those that died before shutdown.
    pub tasks: tasks::Tasks,
    /// The configured addresses and URLs, taken out of every error the status shows.
    pub redact: Arc<crate::config::Redactor>,
}

impl Probes {
    /// What `/healthz` answers: `Err((status, part))` while the store cannot commit, the
    /// writer has died, or any task ended before shutdown. `/healthz` is served without the
    /// password, so it names only the part that failed; why is in `/api/status` and the log.
    pub fn health(&self) -> Result<(), (&'static str, String)> {
        let w = self.writer.stats();
        if w.stopped().is_some() {
            return Err(("store writer died", "store writer".to_owned()));
        }
        let dead = self.tasks.dead();
        if !dead.is_empty() {
            let named: Vec<&str> = dead.iter().map(|d| d.task.as_str()).collect();
            return Err(("task died", named.join(", ")));
        }
        match w.error() {
            Some(_) => Err(("store failing", "store".to_owned())),
            None => Ok(()),
        }
    }
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
    /// Records dropped by this process because `store.max_pending` records already waited.
    pub dropped: u64,
    /// Why the writer thread has ended; `None` while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
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
    /// The daemon's tasks that ended before shutdown (each also turns `/healthz` to 503).
    #[serde(default)]
    pub tasks_died: Vec<tasks::DeadTask>,
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
    /// The pass alerts by push (`email.push`): the same fields as `email`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass_push: Option<Part<EmailSnapshot>>,
    /// Avalanche danger alerts: channels, sent, missed, retrying, recorded, last error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub danger_alerts: Option<Part<DangerSnapshot>>,
    /// Records the sinks set aside and not yet re-sent, newest last (at most `DEAD_LETTERS_SHOWN`; the counts per
    /// sink are in `sinks`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dead_letters: Vec<DeadLetter>,
    /// The newest stored TLE's epoch and age (absent until one is stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tle: Option<TleAge>,
    /// Where `outpost status` read this: "running appliance" or "store (appliance not running)".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// The newest TLE's age against the clock (`passes::freshness`): `level` is `warn` after
/// `TLE_WARN_DAYS` (the TLE source is failing, passes are still predicted) and `error` once no
/// pass is predicted from it (older than `TLE_USEFUL_DAYS`, or the clock before its epoch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TleAge {
    pub epoch: chrono::DateTime<chrono::Utc>,
    /// Days from the epoch to now, to a tenth (negative: the clock is before the epoch).
    pub age_days: f64,
    pub level: AgeLevel,
    /// What the level means, for people.
    pub message: String,
}

impl TleAge {
    /// The age of the newest TLE `summary` counts, at `now`.
    pub fn of(summary: &StoreSummary, now: chrono::DateTime<chrono::Utc>) -> Option<TleAge> {
        use crate::passes::freshness::{TLE_USEFUL_DAYS, age_days, age_level, check};
        let epoch = summary.kinds.iter().find(|k| k.kind == Kind::Tle)?.last?;
        let age_days = age_days(epoch, now);
        let level = age_level(epoch, now);
        let message = match (level, check(epoch, now)) {
            (_, Err(unusable)) => format!("no passes are predicted: {unusable}"),
            (AgeLevel::Warn, _) => format!(
                "no new TLE for {age_days:.1} days: is the TLE source failing? Passes are predicted until it is {TLE_USEFUL_DAYS} days old"
            ),
            _ => "passes are predicted from it".to_owned(),
        };
        Some(TleAge { epoch, age_days, level, message })
    }
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
        let tle = TleAge::of(&summary, chrono::Utc::now());
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
                dropped: w.dropped.load(Relaxed),
                stopped: w.stopped(),
            }),
            tasks_died: p.tasks.dead(),
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
            pass_push: Some(match &p.pass_push {
                Some(e) => Part::On(e.snapshot()),
                None => Part::Off,
            }),
            danger_alerts: Some(match &p.danger {
                Some(e) => Part::On(e.snapshot()),
                None => Part::Off,
            }),
            dead_letters: newest_dead_letters(&p.store)?,
            tle,
            source: None,
        }
        .redacted(&p.redact))
    }

    /// Every error text with `redact` applied: what the status shows leaves the process.
    pub fn redacted(mut self, redact: &crate::config::Redactor) -> Status {
        if let Some(w) = &mut self.writer {
            redact.apply_opt(&mut w.error);
            redact.apply_opt(&mut w.stopped);
        }
        for dead in &mut self.tasks_died {
            dead.why = redact.apply(&dead.why);
        }
        for source in self.sources.values_mut() {
            redact.apply_opt(&mut source.last_error);
            for detail in source.rejection_details.values_mut() {
                *detail = redact.apply(detail);
            }
        }
        for sink in self.sinks.values_mut() {
            if let Part::On(sink) = sink {
                redact.apply_opt(&mut sink.last_error);
            }
        }
        if let Some(location) = &mut self.location {
            redact.apply_opt(&mut location.last_error);
        }
        if let Some(Part::On(email)) = &mut self.email {
            redact.apply_opt(&mut email.last_error);
            redact.apply_opt(&mut email.waiting);
        }
        if let Some(Part::On(push)) = &mut self.pass_push {
            redact.apply_opt(&mut push.last_error);
            redact.apply_opt(&mut push.waiting);
        }
        if let Some(Part::On(danger)) = &mut self.danger_alerts {
            redact.apply_opt(&mut danger.last_error);
            redact.apply_opt(&mut danger.waiting);
            for a in &mut danger.recorded {
                redact.apply_opt(&mut a.detail);
            }
        }
        for d in &mut self.dead_letters {
            d.reason = redact.apply(&d.reason);
        }
        self
    }

    /// What the store alone tells, for `outpost status` while no appliance runs: a sink's backlog
    /// is what its persisted cursor has not reached.
    pub fn from_store(store: &Store, station: &str) -> anyhow::Result<Status> {
        let summary = store.summary()?;
        let tle = TleAge::of(&summary, chrono::Utc::now());
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
            tasks_died: Vec::new(),
            sources: BTreeMap::new(),
            sinks,
            location: None,
            email: None,
            pass_push: None,
            danger_alerts: None,
            dead_letters: newest_dead_letters(store)?,
            tle,
            source: Some("store (appliance not running)".into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreOptions;
    use tokio_util::sync::CancellationToken;
    use tokio_util::task::TaskTracker;

    #[tokio::test]
    async fn health_fails_naming_a_dead_task_or_a_dead_writer() {
        let dir = tempfile::tempdir().unwrap();
        let (store, writer, _) = Store::open(dir.path(), "it", StoreOptions::default()).unwrap();
        let handle = writer.handle();
        let thread = writer.spawn().unwrap();
        let probes = |tasks: &tasks::Tasks| Probes {
            store: store.clone(),
            writer: handle.clone(),
            station: "it".into(),
            started: Instant::now(),
            sources: Arc::default(),
            sinks: Arc::default(),
            location: Arc::default(),
            email: None,
            pass_push: None,
            danger: None,
            tasks: tasks.clone(),
            redact: Arc::default(),
        };
        let tasks = tasks::Tasks::new(TaskTracker::new(), CancellationToken::new());
        assert_eq!(probes(&tasks).health(), Ok(()));

        tasks.died("sink kafka", "it panicked: a bug");
        let (status, error) = probes(&tasks).health().unwrap_err();
        assert_eq!(status, "task died");
        assert_eq!(error, "sink kafka", "/healthz names the part, never why (it is served without auth)");
        let listed = Status::collect(&probes(&tasks)).unwrap().tasks_died;
        assert_eq!(listed.iter().map(|d| d.task.as_str()).collect::<Vec<_>>(), ["sink kafka"]);

        // The writer's end is seen at once, and comes first.
        handle.shutdown().await.unwrap();
        thread.join().unwrap();
        assert_eq!(handle.stats().wait_stopped().await, "the store writer has stopped");
        let (status, _) = probes(&tasks).health().unwrap_err();
        assert_eq!(status, "store writer died");
    }
}
