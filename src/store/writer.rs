//! The single writer: batches records, journals them, applies them to redb, folds.
//!
//! Runs on its own OS thread because every step is blocking file I/O. Producers talk to it
//! through a `WriterHandle` whose `append` never blocks and never fails: the writer keeps a
//! batch in memory until it can commit it, so a full disk or a slow card pauses *storing*, not
//! collecting. See the module docs of `store` for the commit policy and crash behaviour.
//!
//! When storing fails (a full disk, an I/O error):
//! - the batch stays in memory, up to `StoreOptions::max_pending` records; beyond that new
//!   records are dropped and counted (alert emails never are), and the error says so;
//! - the error is published (`WriterStats::error`: `/api/status` `writer.error`, `/healthz` 503)
//!   and the commit or fold is retried every few seconds, not in a loop; a fold is not even tried
//!   while the filesystem has less free space than it needs;
//! - redb refuses every operation after a failed write until its file is reopened, so the writer
//!   reopens it and replays the journal (which holds every commit since the last fold): nothing
//!   that was committed is lost, and the next commit or fold resumes where it stopped;
//! - a batch the journal has is acknowledged, even if redb then refuses it: redb is reopened
//!   from the journal, the batch is never committed again from memory (new seqs, or duplicates
//!   and counters counted twice). A batch the journal refused is retried as it was: the same
//!   records get the same seqs, so a frame whose fsync failed but that reached the disk replays
//!   to the same records (replay skips the repeated seqs).

use super::journal::{Entry, Journal};
use super::{COUNTERS, Store, StoreOptions, Tables, codec, durable_commit, index_key};
use crate::domain::{Kind, Record};
use anyhow::Context;
use redb::{Durability, ReadableTable};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};

enum Msg {
    Record(Record),
    Cursor { name: String, seq: u64 },
    Mark { name: String, value: u64 },
    Count(String),
    Flush(oneshot::Sender<Result<u64, String>>),
    Fold(oneshot::Sender<Result<u64, String>>),
    Shutdown(oneshot::Sender<Result<u64, String>>),
}

/// Live counters of the writer, read by status pages and metrics.
#[derive(Default)]
pub struct WriterStats {
    stored: [AtomicU64; Kind::COUNT],
    duplicates: [AtomicU64; Kind::COUNT],
    pub last_seq: AtomicU64,
    pub pending: AtomicU64,
    pub commits: AtomicU64,
    pub folds: AtomicU64,
    pub journal_bytes: AtomicU64,
    /// Whether journal appends bypass the page cache (O_DIRECT); false means buffered fallback.
    pub journal_direct: std::sync::atomic::AtomicBool,
    /// Bytes one small commit writes to the journal: the sector size (512, or 4096 on a device
    /// that refused 512-byte direct writes) or, buffered, a 4096-byte page.
    pub journal_write_bytes: AtomicU64,
    /// Unix milliseconds of the last successful commit (0 = none yet).
    pub last_commit_ms: AtomicU64,
    pub last_fold_ms: AtomicU64,
    /// Records dropped because storing had failed for so long that `max_pending` were waiting.
    pub dropped: AtomicU64,
    /// The current commit or fold error, cleared once both succeed again. Never holds secrets.
    pub error: Mutex<Option<String>>,
}

impl WriterStats {
    /// Records stored by this process, per kind.
    pub fn stored(&self, kind: Kind) -> u64 {
        self.stored[kind.index()].load(Relaxed)
    }
    /// Records refused as already stored, per kind.
    pub fn duplicates(&self, kind: Kind) -> u64 {
        self.duplicates[kind.index()].load(Relaxed)
    }
    pub fn error(&self) -> Option<String> {
        self.error.lock().map(|e| e.clone()).unwrap_or(None)
    }
    fn set_error(&self, e: Option<String>) {
        if let Ok(mut slot) = self.error.lock() {
            *slot = e;
        }
    }
}

/// The producer side: cheap to clone, never blocks.
#[derive(Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<Msg>,
    stats: Arc<WriterStats>,
    committed: watch::Receiver<u64>,
}

impl WriterHandle {
    /// Queues a record for the next commit. Duplicates are dropped at commit time.
    pub fn append(&self, record: Record) {
        self.stats.pending.fetch_add(1, Relaxed);
        if self.tx.send(Msg::Record(record)).is_err() {
            self.stats.pending.fetch_sub(1, Relaxed);
            tracing::error!("the store writer has stopped; a record was not stored");
        }
    }

    /// Moves a named consumer cursor forward (never backward) with the next commit.
    pub fn set_cursor(&self, name: &str, seq: u64) {
        let _ = self.tx.send(Msg::Cursor { name: name.to_owned(), seq });
    }

    /// Sets a named mark (a value that may also move back, e.g. a wall-clock time) with the next
    /// commit. It lives beside the cursors and is read with `Store::cursor`.
    pub fn set_mark(&self, name: &str, value: u64) {
        let _ = self.tx.send(Msg::Mark { name: name.to_owned(), value });
    }

    /// Adds one to a persisted counter (e.g. `rejected.iss_position.time_in_future`).
    pub fn count(&self, name: String) {
        let _ = self.tx.send(Msg::Count(name));
    }

    /// Commits everything queued so far; returns the last stored seq.
    pub async fn flush(&self) -> anyhow::Result<u64> {
        self.request(Msg::Flush).await
    }

    /// Commits and folds now (benchmarks drive the fold schedule with it).
    pub async fn fold(&self) -> anyhow::Result<u64> {
        self.request(Msg::Fold).await
    }

    /// Commits, folds and stops the writer.
    pub async fn shutdown(&self) -> anyhow::Result<u64> {
        self.request(Msg::Shutdown).await
    }

    async fn request(&self, msg: impl FnOnce(oneshot::Sender<Result<u64, String>>) -> Msg) -> anyhow::Result<u64> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(msg(tx)).map_err(|_| anyhow::anyhow!("the store writer has stopped"))?;
        rx.await.map_err(|_| anyhow::anyhow!("the store writer has stopped"))?.map_err(|e| anyhow::anyhow!(e))
    }

    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }

    /// Wakes whenever new records are committed (the value is the last committed seq).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.committed.clone()
    }
}

pub struct StoreWriter {
    store: Store,
    journal: Journal,
    station: u16,
    opts: StoreOptions,
    rx: mpsc::Receiver<Msg>,
    /// Cloned into handles; dropped when the writer runs so that dropping every handle ends it.
    tx: Option<mpsc::Sender<Msg>>,
    stats: Arc<WriterStats>,
    committed_rx: watch::Receiver<u64>,
    committed: watch::Sender<u64>,
    batch: Vec<Record>,
    cursors: BTreeMap<String, u64>,
    marks: BTreeMap<String, u64>,
    counts: BTreeMap<String, u64>,
    batch_started: Option<Instant>,
    last_fold: Instant,
    /// Journaled since the last fold, so a fold is owed.
    unfolded: bool,
    retry_at: Option<Instant>,
    fold_retry_at: Option<Instant>,
    /// The failing commit's or fold's error, published together in `WriterStats::error`.
    commit_error: Option<String>,
    fold_error: Option<String>,
    /// redb refused an operation after an I/O error: it must be reopened before the next write.
    needs_reopen: bool,
    /// Tests: the next redb commit after a journal append fails (as a failing card makes it).
    #[cfg(test)]
    fail_next_redb_commit: bool,
}

/// The pause between attempts while storing fails.
const RETRY: Duration = Duration::from_secs(5);

/// Free space a fold needs besides the journal's own size (redb's new pages and its header).
const FOLD_HEADROOM: u64 = 1024 * 1024;

impl StoreWriter {
    pub(super) fn new(store: Store, journal: Journal, station: u16, opts: StoreOptions) -> anyhow::Result<Self> {
        let last_seq = {
            let txn = store.db.begin_read()?;
            txn.open_table(super::LOG)?.last()?.map_or(0, |(k, _)| k.value())
        };
        let (tx, rx) = mpsc::channel();
        let (committed, committed_rx) = watch::channel(last_seq);
        let stats = Arc::new(WriterStats::default());
        stats.last_seq.store(last_seq, Relaxed);
        stats.journal_direct.store(journal.is_direct(), Relaxed);
        stats.journal_write_bytes.store(journal.write_granularity(), Relaxed);
        Ok(StoreWriter {
            store,
            journal,
            station,
            opts,
            rx,
            tx: Some(tx),
            stats,
            committed_rx,
            committed,
            batch: Vec::new(),
            cursors: BTreeMap::new(),
            marks: BTreeMap::new(),
            counts: BTreeMap::new(),
            batch_started: None,
            last_fold: Instant::now(),
            unfolded: false,
            retry_at: None,
            fold_retry_at: None,
            commit_error: None,
            fold_error: None,
            needs_reopen: false,
            #[cfg(test)]
            fail_next_redb_commit: false,
        })
    }

    /// Makes the next redb commit that follows a journal append fail.
    #[cfg(test)]
    pub(super) fn fail_next_redb_commit(&mut self) {
        self.fail_next_redb_commit = true;
    }

    /// A producer handle. Take every handle you need before `spawn`.
    pub fn handle(&self) -> WriterHandle {
        WriterHandle {
            tx: self.tx.clone().expect("handles are taken before the writer runs"),
            stats: self.stats.clone(),
            committed: self.committed_rx.clone(),
        }
    }

    /// Runs the writer on its own thread until `shutdown` or until every handle is dropped.
    pub fn spawn(self) -> std::io::Result<std::thread::JoinHandle<()>> {
        let span = tracing::info_span!("store");
        std::thread::Builder::new().name("store-writer".into()).spawn(move || {
            let _enter = span.enter();
            self.run()
        })
    }

    fn run(mut self) {
        self.tx = None;
        loop {
            let msg = self.rx.recv_timeout(self.next_wake());
            match msg {
                Ok(Msg::Record(r)) => {
                    self.batch_started.get_or_insert_with(Instant::now);
                    // The appliance's own bookkeeping is never dropped: a lost alert record sends an
                    // email twice, a lost dead letter loses the refused record from the list.
                    if self.batch.len() >= self.opts.max_pending && r.kind().is_forwarded() {
                        self.drop_record();
                        continue;
                    }
                    self.batch.push(r);
                    if self.batch.len() >= self.opts.max_batch && self.retry_at.is_none_or(|t| Instant::now() >= t) {
                        let _ = self.try_commit();
                    }
                }
                Ok(Msg::Cursor { name, seq }) => {
                    let slot = self.cursors.entry(name).or_default();
                    *slot = (*slot).max(seq);
                    self.batch_started.get_or_insert_with(Instant::now);
                }
                Ok(Msg::Mark { name, value }) => {
                    self.marks.insert(name, value);
                    self.batch_started.get_or_insert_with(Instant::now);
                }
                Ok(Msg::Count(name)) => {
                    *self.counts.entry(name).or_default() += 1;
                    self.batch_started.get_or_insert_with(Instant::now);
                }
                Ok(Msg::Flush(reply)) => {
                    let _ = reply.send(self.try_commit());
                }
                Ok(Msg::Fold(reply)) => {
                    let result = self.try_commit().and_then(|seq| self.try_fold().map(|()| seq));
                    let _ = reply.send(result);
                }
                Ok(Msg::Shutdown(reply)) => {
                    let result = self.try_commit().and_then(|seq| self.try_fold().map(|()| seq));
                    let _ = reply.send(result);
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    if let Err(e) = self.try_commit().and_then(|_| self.try_fold()) {
                        tracing::error!(error = %e, "final commit failed; the journal keeps what it has");
                    }
                    return;
                }
            }
            let now = Instant::now();
            let due = self.batch_started.is_some_and(|t| now >= t + self.opts.commit_interval)
                && self.retry_at.is_none_or(|t| now >= t);
            if due {
                let _ = self.try_commit();
            }
            if self.unfolded && self.fold_due(now) {
                let _ = self.try_fold();
            }
            self.stats.pending.store(self.batch.len() as u64, Relaxed);
        }
    }

    fn fold_due(&self, now: Instant) -> bool {
        (now >= self.last_fold + self.opts.fold_interval || self.journal.used() >= 4 * 1024 * 1024)
            && self.fold_retry_at.is_none_or(|t| now >= t)
    }

    fn next_wake(&self) -> Duration {
        let now = Instant::now();
        let mut wake = now + Duration::from_secs(3600);
        if let Some(t) = self.batch_started {
            let due = t + self.opts.commit_interval;
            wake = wake.min(self.retry_at.map_or(due, |r| r.max(due)));
        }
        if self.unfolded {
            let due = self.last_fold + self.opts.fold_interval;
            wake = wake.min(self.fold_retry_at.map_or(due, |r| r.max(due)));
        }
        wake.saturating_duration_since(now)
    }

    /// A record that cannot be kept: storing has failed for so long that `max_pending` wait.
    fn drop_record(&mut self) {
        let dropped = self.stats.dropped.fetch_add(1, Relaxed) + 1;
        if dropped == 1 || dropped.is_power_of_two() {
            tracing::error!(
                dropped,
                pending = self.batch.len(),
                "storing has failed for so long that the memory queue is full; new records are dropped"
            );
        }
        self.publish_error();
    }

    /// Publishes the commit and fold errors (with what waits in memory) as the writer's error.
    fn publish_error(&self) {
        let mut parts: Vec<String> = self.commit_error.iter().chain(self.fold_error.iter()).cloned().collect();
        if !parts.is_empty() && !self.batch.is_empty() {
            parts.push(format!("{} records wait in memory", self.batch.len()));
        }
        let dropped = self.stats.dropped.load(Relaxed);
        if !parts.is_empty() && dropped > 0 {
            parts.push(format!("{dropped} records dropped (the queue holds at most {})", self.opts.max_pending));
        }
        self.stats.set_error((!parts.is_empty()).then(|| parts.join("; ")));
    }

    /// Commits the batch; on failure keeps it for a retry. Returns the last stored seq.
    fn try_commit(&mut self) -> Result<u64, String> {
        let result = self.reopen_if_needed().and_then(|()| self.commit());
        match result {
            Ok(seq) => {
                self.retry_at = None;
                if self.commit_error.take().is_some() {
                    tracing::info!("storing works again");
                }
                self.publish_error();
                Ok(seq)
            }
            Err(e) => {
                let msg = format!("cannot store: {e:#}");
                if self.commit_error.is_none() {
                    tracing::error!(error = %msg, pending = self.batch.len(), "store commit failed; keeping the batch in memory and retrying");
                } else {
                    tracing::debug!(error = %msg, pending = self.batch.len(), "store commit failed again");
                }
                self.note_failure();
                self.commit_error = Some(msg.clone());
                self.publish_error();
                self.retry_at = Some(Instant::now() + self.opts.commit_interval.min(RETRY));
                Err(msg)
            }
        }
    }

    /// Folds; on failure keeps the journal and retries later, never in a loop.
    fn try_fold(&mut self) -> Result<(), String> {
        let result = self.reopen_if_needed().and_then(|()| {
            let free = free_bytes(self.store.dir());
            let needed = self.journal.used().saturating_mul(2) + FOLD_HEADROOM;
            match free {
                Some(free) if free < needed => Err(anyhow::anyhow!(
                    "No space left on device: {} KB free where the store is, a fold needs about {} KB",
                    free / 1024,
                    needed / 1024
                )),
                _ => self.fold(),
            }
        });
        match result {
            Ok(()) => {
                self.fold_retry_at = None;
                if self.fold_error.take().is_some() {
                    tracing::info!("folding works again");
                }
                self.publish_error();
                Ok(())
            }
            Err(e) => {
                let msg =
                    format!("cannot fold the journal into the store: {e:#} (committed records stay in the journal)");
                if self.fold_error.is_none() {
                    tracing::warn!(error = %msg, "fold failed; records stay safe in the journal, retrying later");
                } else {
                    tracing::debug!(error = %msg, "fold failed again");
                }
                self.note_failure();
                self.fold_error = Some(msg.clone());
                self.publish_error();
                self.fold_retry_at = Some(Instant::now() + RETRY);
                Err(msg)
            }
        }
    }

    /// After a failed write: does redb now refuse everything until it is reopened?
    fn note_failure(&mut self) {
        if let Err(e) = self.store.db.begin_write() {
            tracing::warn!(error = %e, "the store must be reopened before it can be written again");
            self.needs_reopen = true;
        }
    }

    /// Reopens redb after an I/O error and replays the journal into it, which holds every commit
    /// since the last fold: redb comes back exactly as the readers saw it.
    fn reopen_if_needed(&mut self) -> anyhow::Result<()> {
        if !self.needs_reopen {
            return Ok(());
        }
        drop(self.store.db.take());
        let path = self.store.dir().join(super::DB_FILE);
        let db = super::open_db(&path, self.opts.cache_bytes, false, &self.opts.io_hook)
            .context("cannot reopen the store")?;
        let entries = self.journal.entries().context("cannot read the journal back")?;
        let replayed = super::replay(&db, &entries).context("cannot replay the journal")?;
        self.store.db.put(db);
        self.needs_reopen = false;
        tracing::warn!(replayed, "reopened the store after a write error; the journal restored every commit");
        // Readers see the replayed commits now.
        self.committed.send_replace(self.stats.last_seq.load(Relaxed));
        Ok(())
    }

    fn commit(&mut self) -> anyhow::Result<u64> {
        let stats = self.stats.clone();
        if self.batch.is_empty() && self.cursors.is_empty() && self.marks.is_empty() && self.counts.is_empty() {
            self.batch_started = None;
            return Ok(stats.last_seq.load(Relaxed));
        }
        let mut txn = self.store.db.begin_write()?;
        txn.set_durability(Durability::None)?;
        let mut entries = Vec::new();
        let mut stored = [0u64; Kind::COUNT];
        let mut dups = [0u64; Kind::COUNT];
        let last_seq;
        {
            let mut t = Tables::open(&txn)?;
            let mut seq = t.next_seq()?;
            for record in &self.batch {
                let key = index_key(record);
                let k = record.kind().index();
                if t.is_duplicate(&key)? {
                    dups[k] += 1;
                    continue;
                }
                let bytes = codec::encode(self.station, record);
                t.insert(seq, &key, &bytes)?;
                entries.push(Entry::Record { seq, bytes });
                stored[k] += 1;
                seq += 1;
            }
            last_seq = seq - 1;
            for (name, seq) in &self.cursors {
                let current = t.cursors.get(name.as_str())?.map_or(0, |v| v.value());
                if *seq > current {
                    t.cursors.insert(name.as_str(), *seq)?;
                    entries.push(Entry::Cursor { name: name.clone(), seq: *seq });
                }
            }
            // Marks are journaled like cursors; replay applies the journal's last value.
            for (name, value) in &self.marks {
                let current = t.cursors.get(name.as_str())?.map(|v| v.value());
                if current != Some(*value) {
                    t.cursors.insert(name.as_str(), *value)?;
                    entries.push(Entry::Cursor { name: name.clone(), seq: *value });
                }
            }
            // Journaled as absolute values, so that replay is idempotent (the last one wins).
            let mut counters = txn.open_table(COUNTERS)?;
            for (name, n) in &self.counts {
                let value = counters.get(name.as_str())?.map_or(0, |v| v.value()) + n;
                counters.insert(name.as_str(), value)?;
                entries.push(Entry::Counter { name: name.clone(), value });
            }
        }
        // Journal first: once this returns the batch survives a power cut; then let readers see it.
        // If it fails, the batch stays in memory and the retry, against the same redb state, gives
        // each record the same seq again (a frame whose fsync failed may still be on disk: replay
        // then skips the repeated seqs).
        let appended = self.journal.append(&entries);
        stats.journal_direct.store(self.journal.is_direct(), Relaxed);
        stats.journal_write_bytes.store(self.journal.write_granularity(), Relaxed);
        appended.map_err(|e| anyhow::anyhow!("cannot write the journal: {e}"))?;
        // From here the batch is acknowledged: it is durable in the journal, whatever redb does.
        if !entries.is_empty() {
            self.unfolded = true;
        }
        #[cfg(test)]
        let visible = if std::mem::take(&mut self.fail_next_redb_commit) {
            txn.abort().map_err(anyhow::Error::from).and(Err(anyhow::anyhow!("injected: the redb commit failed")))
        } else {
            txn.commit().map_err(anyhow::Error::from)
        };
        #[cfg(not(test))]
        let visible = txn.commit();
        self.batch.clear();
        self.cursors.clear();
        self.marks.clear();
        self.counts.clear();
        self.batch_started = None;
        for k in 0..Kind::COUNT {
            stats.stored[k].fetch_add(stored[k], Relaxed);
            stats.duplicates[k].fetch_add(dups[k], Relaxed);
        }
        stats.last_seq.store(last_seq, Relaxed);
        stats.pending.store(0, Relaxed);
        stats.commits.fetch_add(1, Relaxed);
        stats.journal_bytes.store(self.journal.used(), Relaxed);
        stats.last_commit_ms.store(chrono::Utc::now().timestamp_millis().max(0) as u64, Relaxed);
        if let Err(e) = visible {
            // The journal has the batch; committing it to redb again from memory would give its
            // records new seqs or refuse them as duplicates. Reopen redb and replay the journal
            // instead (now, or at the next attempt if the reopen fails too).
            tracing::warn!(error = %e, "the batch is journaled but redb refused it; reopening redb from the journal");
            self.needs_reopen = true;
            self.reopen_if_needed().context("the batch is safe in the journal, but the store cannot be reopened")?;
            return Ok(last_seq);
        }
        self.committed.send_replace(last_seq);
        Ok(last_seq)
    }

    fn fold(&mut self) -> anyhow::Result<()> {
        let db = self.store.db.get()?;
        durable_commit(&db)?;
        let reset = self.journal.reset();
        self.stats.journal_direct.store(self.journal.is_direct(), Relaxed);
        self.stats.journal_write_bytes.store(self.journal.write_granularity(), Relaxed);
        reset.map_err(|e| anyhow::anyhow!("cannot reset the journal: {e}"))?;
        self.unfolded = false;
        self.last_fold = Instant::now();
        let stats = &self.stats;
        stats.folds.fetch_add(1, Relaxed);
        stats.journal_bytes.store(0, Relaxed);
        stats.last_fold_ms.store(chrono::Utc::now().timestamp_millis().max(0) as u64, Relaxed);
        Ok(())
    }
}

/// Bytes available to us on the filesystem holding `dir` (`None` if it cannot be asked).
fn free_bytes(dir: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid C string and `st` a writable statvfs for the call.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}
