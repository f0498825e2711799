//! The appliance's status as one serializable value: served on /api/status and printed by
//! `outpost status`. Never contains secrets or configured URLs.

use crate::domain::Kind;
use crate::sources::SourceSnapshot;
use crate::store::StoreSummary;
use crate::web::AppState;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;

#[derive(Debug, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub station: String,
    pub uptime_s: u64,
    pub store: serde_json::Value,
    pub writer: WriterStatus,
    pub sources: BTreeMap<String, serde_json::Value>,
    /// Per upstream: enabled, connected, backlog, last delivered, last error. Sinks that are not
    /// configured appear with `enabled: false`.
    pub sinks: BTreeMap<String, serde_json::Value>,
    /// The observer's location and where it came from (gps, last_fix, config).
    #[serde(default)]
    pub location: serde_json::Value,
    /// Night-pass email alerts: sent, missed, pending, last error (`enabled: false` when off).
    #[serde(default)]
    pub email: serde_json::Value,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct WriterStatus {
    pub stored: BTreeMap<String, u64>,
    pub duplicates: BTreeMap<String, u64>,
    pub pending: u64,
    pub commits: u64,
    pub folds: u64,
    pub journal_bytes: u64,
    /// "direct" (one sector per commit) or "buffered" (the filesystem refused O_DIRECT).
    pub journal_mode: String,
    pub last_commit: Option<chrono::DateTime<chrono::Utc>>,
    pub last_fold: Option<chrono::DateTime<chrono::Utc>>,
    pub error: Option<String>,
}

fn ms_time(ms: u64) -> Option<chrono::DateTime<chrono::Utc>> {
    (ms > 0).then(|| chrono::DateTime::from_timestamp_millis(ms as i64)).flatten()
}

/// Store growth per day, estimated from the last 24 h of positions (nearly every record is one)
/// and the store's average bytes per position. `None` until positions older than a day exist:
/// a young store's file is mostly preallocated space, which would overstate it.
fn growth_per_day(store: &crate::store::Store, size_bytes: u64) -> anyhow::Result<Option<u64>> {
    let now = chrono::Utc::now();
    let all = store.track(chrono::DateTime::<chrono::Utc>::MIN_UTC, now, Some(1))?.total;
    let last_day = store.track(now - chrono::Duration::days(1), now, Some(1))?.total;
    Ok((all > last_day).then(|| (size_bytes as f64 * last_day as f64 / all as f64) as u64))
}

impl Status {
    /// Blocking: reads the store summary.
    pub fn collect(app: &AppState) -> anyhow::Result<Status> {
        let summary: StoreSummary = app.store.summary()?;
        let mut store = serde_json::to_value(&summary)?;
        store["growth_bytes_per_day"] = growth_per_day(&app.store, summary.size_bytes)?.into();
        let w = app.writer.stats();
        let per_kind = |f: &dyn Fn(Kind) -> u64| Kind::ALL.iter().map(|k| (k.to_string(), f(*k))).collect();
        let sources = app
            .sources
            .iter()
            .map(|s| {
                let snap: SourceSnapshot = s.snapshot();
                (s.name.to_owned(), serde_json::to_value(snap).unwrap_or_default())
            })
            .collect();
        let last_seq = w.last_seq.load(Relaxed);
        let mut sinks: BTreeMap<String, serde_json::Value> = ["kafka", "cassandra", "mqtt"]
            .iter()
            .map(|n| (n.to_string(), serde_json::json!({ "enabled": false })))
            .collect();
        for s in app.sinks.iter() {
            sinks.insert(s.name.to_owned(), serde_json::to_value(s.snapshot(last_seq)).unwrap_or_default());
        }
        Ok(Status {
            version: env!("CARGO_PKG_VERSION").into(),
            station: app.station.clone(),
            uptime_s: app.started.elapsed().as_secs(),
            store,
            writer: WriterStatus {
                stored: per_kind(&|k| w.stored(k)),
                duplicates: per_kind(&|k| w.duplicates(k)),
                pending: w.pending.load(Relaxed),
                commits: w.commits.load(Relaxed),
                folds: w.folds.load(Relaxed),
                journal_bytes: w.journal_bytes.load(Relaxed),
                journal_mode: if w.journal_direct.load(Relaxed) { "direct" } else { "buffered" }.into(),
                last_commit: ms_time(w.last_commit_ms.load(Relaxed)),
                last_fold: ms_time(w.last_fold_ms.load(Relaxed)),
                error: w.error(),
            },
            sources,
            sinks,
            location: serde_json::to_value(app.location_status.snapshot()).unwrap_or_default(),
            email: match app.email.as_ref().and_then(|e| e.snapshot()) {
                Some(s) => serde_json::to_value(s).unwrap_or_default(),
                None => crate::alerts::disabled_status(),
            },
        })
    }
}
