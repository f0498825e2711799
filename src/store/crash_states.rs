//! The crash-state harness (the approach of ALICE and of SQLite's crash tests).
//!
//! 1. **Record**: a workload runs against a real store in a temp dir (appends through the real
//!    writer, cursors, marks, counters, folds, a killed writer and a reopen that replays), and
//!    `Recorder` keeps the one global, ordered sequence of writes, `set_len`s, syncs and renames
//!    that the journal, redb's file and its header copy (`outpost.redb.hdr`) receive (through the
//!    `io_hook` seam: direct-I/O writes with their padding, as the device sees them). After every acknowledged flush the workload notes what
//!    it was told is durable, and at which point of that sequence.
//! 2. **Enumerate** (`for_each_state`): the states a power cut can leave. Every prefix of the
//!    sequence (each operation reached the device in order, the rest did not); plus, for every
//!    write not yet synced at the crash point, each 512-byte sector it touches *unwritten* (its
//!    old bytes: the device reordered it after later writes), *zeroed* or *random* (a sector
//!    write that was cut mid-way: SD cards do not promise sector atomicity). Two crash points per
//!    write: right after it (it is the last write) and just before its file's next sync (every
//!    later unsynced write made it). A sector that already held synced data is the dangerous case
//!    (a write that rewrites acknowledged bytes); those states are counted on their own.
//!    Synced sectors are never garbled: that is media damage, not a crash.
//! 3. **Check** (`check_recovered`): each state is written to a fresh directory and opened with
//!    the real `Store::open` (default options, every page verified). Every record acknowledged
//!    before the crash point is there unchanged, seqs run 1..=n without a gap, no record is
//!    stored twice, cursors are not behind (marks not older than) what was acknowledged, counters
//!    not below. A state a crash can leave must open: a refusal is a failure.
//!
//! The recording starts in an empty directory: the snapshot of the files at its start is "no
//! files yet". A new store's journal and redb file are written under `<name>.new` until their
//! rename (recorded in order, and synced with the directory: a prefix has it or not). Not
//! modelled otherwise: directory entries (a created file is assumed to stay), and reads (not
//! hooked: they change nothing).
//!
//! The states of a store's first `Store::open` (creating the files) and every state with redb's
//! super-header sector torn are checked by tests of their own.
//!
//! `OUTPOST_CRASH_STATES=all` checks every state; a number checks that many (a deterministic
//! sample); the default is a sample sized for CI.

use super::io_hook::{Hook, IoHook, Op, StoreFile};
use super::{DB_FILE, HEADER_FILE, JOURNAL_FILE, Store, StoreOptions, WriterHandle};
use crate::domain::{IssPosition, Record};
use chrono::{TimeZone, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(super) const STATION: &str = "crash-station";
const SECTOR: u64 = 512;
/// The default number of states checked in CI (debug build): a deterministic sample.
const CI_SAMPLE: usize = 1000;

// ---------------------------------------------------------------------------------------------
// Records and what the workload was told
// ---------------------------------------------------------------------------------------------

/// The `i`th position of a workload: strictly increasing times, so every one is new.
pub(super) fn position(i: u64) -> Record {
    Record::IssPosition(
        IssPosition {
            time: Utc.timestamp_opt(1_700_000_000 + i as i64 * 10, 0).unwrap(),
            latitude: (i as f64 / 7.0).sin() * 51.6,
            longitude: ((i as f64 * 23.0) % 360.0) - 180.0,
            altitude_km: Some(420.0),
            velocity_kmh: None,
            visibility: None,
        }
        .rounded(),
    )
}

/// A warning with a text of `text_len` bytes: frames of many sizes, some across sectors.
pub(super) fn long_warning(i: u64, text_len: usize) -> Record {
    let mut record = crate::domain::test_warning(3000 + i as u32, "2024-02-01", 7, i, Some(2));
    if let Record::AvalancheWarning(w) = &mut record {
        w.main_text = format!("{i}:{}", "snow ".repeat(text_len / 5));
    }
    record
}

pub(super) fn block<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
}

/// What the workload has been told is durable, as of one acknowledgement.
#[derive(Debug, Clone, Default)]
pub(super) struct Acked {
    pub last_seq: u64,
    pub cursors: BTreeMap<String, u64>,
    /// Index into `Ledger::mark_history` of the acknowledged value.
    pub marks: BTreeMap<String, usize>,
    pub counters: BTreeMap<String, u64>,
}

/// Everything the workload sent, and the values as of the last send (acknowledged at the next
/// successful flush).
#[derive(Debug, Default)]
pub(super) struct Ledger {
    sent: Acked,
    /// Every value each mark was set to, in order (marks may move back).
    pub mark_history: BTreeMap<String, Vec<u64>>,
}

impl Ledger {
    pub fn cursor(&mut self, w: &WriterHandle, name: &str, seq: u64) {
        w.set_cursor(name, seq);
        let slot = self.sent.cursors.entry(name.into()).or_default();
        *slot = (*slot).max(seq);
    }
    pub fn mark(&mut self, w: &WriterHandle, name: &str, value: u64) {
        w.set_mark(name, value);
        let history = self.mark_history.entry(name.into()).or_default();
        history.push(value);
        self.sent.marks.insert(name.into(), history.len() - 1);
    }
    pub fn count(&mut self, w: &WriterHandle, name: &str) {
        w.count(name.into());
        *self.sent.counters.entry(name.into()).or_default() += 1;
    }
    /// What a flush that just returned `last_seq` acknowledged.
    pub fn acked(&self, last_seq: u64) -> Acked {
        Acked { last_seq, ..self.sent.clone() }
    }
    /// Everything ever sent, as if acknowledged (the end of a fault run, where every step ended
    /// in success).
    pub fn all_sent(&self) -> &Acked {
        &self.sent
    }
}

/// Checks a reopened store against what was acknowledged. `records` is every record the live
/// store ever stored, by seq - 1 (a crash state may hold unacknowledged ones too, but only those,
/// at their seqs). With `exact`, everything sent must be there: nothing more, nothing less.
pub(super) fn check_store(
    store: &Store,
    records: &[Record],
    ledger: &Ledger,
    acked: &Acked,
    exact: bool,
) -> Result<(), String> {
    let got = store.read_after(0, usize::MAX).map_err(|e| format!("cannot read the log: {e:#}"))?;
    let mut ids = BTreeSet::new();
    for (i, r) in got.iter().enumerate() {
        if r.seq != i as u64 + 1 {
            return Err(format!("seq gap: the log's record {} has seq {}", i + 1, r.seq));
        }
        match records.get(i) {
            Some(want) if *want == r.record => {}
            Some(want) => return Err(format!("seq {} holds {:?}, acknowledged as {want:?}", r.seq, r.record)),
            None => return Err(format!("seq {} holds {:?}, which the workload never stored", r.seq, r.record)),
        }
        if !ids.insert(r.id()) {
            return Err(format!("seq {} is stored twice ({})", r.seq, r.id()));
        }
    }
    let n = got.len() as u64;
    if n < acked.last_seq {
        return Err(format!(
            "acknowledged records lost: the log ends at seq {n}, seq {} was acknowledged",
            acked.last_seq
        ));
    }
    if exact && n != records.len() as u64 {
        return Err(format!("the log ends at seq {n}, {} records were stored", records.len()));
    }
    let sent = &ledger.sent;
    for (name, &want) in &acked.cursors {
        let have = store.cursor(name).map_err(|e| format!("{e:#}"))?;
        let max = sent.cursors[name];
        if have < want || have > max || (exact && have != max) {
            return Err(format!("cursor {name} is {have}; acknowledged {want}, the newest sent {max}"));
        }
    }
    for (name, &idx) in &acked.marks {
        let have = store.cursor(name).map_err(|e| format!("{e:#}"))?;
        let history = &ledger.mark_history[name];
        let allowed = if exact { &history[history.len() - 1..] } else { &history[idx..] };
        if !allowed.contains(&have) {
            return Err(format!("mark {name} is {have}; acknowledged {}, later values {allowed:?}", history[idx]));
        }
    }
    for (name, &want) in &acked.counters {
        let have = store.counter(name).map_err(|e| format!("{e:#}"))?;
        let max = sent.counters[name];
        if have < want || have > max || (exact && have != max) {
            return Err(format!("counter {name} is {have}; acknowledged {want}, sent {max}"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Recorder
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum RecordedOp {
    Write {
        offset: u64,
        data: Vec<u8>,
    },
    SetLen(u64),
    Sync,
    /// The file moved from its creation name to its own (`Op::Rename`).
    Rename,
}

/// Keeps every operation that reached either file, in one global order. While `dead` is set
/// every operation fails before it happens: the process is "killed" and nothing more reaches the
/// disk (the writer's final commit and fold, redb's close), yet the test keeps running.
#[derive(Default)]
struct Recorder {
    ops: Mutex<Vec<(StoreFile, RecordedOp)>>,
    dead: AtomicBool,
}

impl Recorder {
    fn len(&self) -> usize {
        self.ops.lock().unwrap().len()
    }
}

impl IoHook for Recorder {
    fn before(&self, _file: StoreFile, _op: Op<'_>) -> std::io::Result<()> {
        if self.dead.load(Ordering::SeqCst) {
            return Err(std::io::Error::from_raw_os_error(libc::EIO));
        }
        Ok(())
    }
    fn after(&self, file: StoreFile, op: Op<'_>) {
        let op = match op {
            Op::Write { offset, data } => RecordedOp::Write { offset, data: data.to_vec() },
            Op::SetLen(len) => RecordedOp::SetLen(len),
            Op::Sync => RecordedOp::Sync,
            Op::Rename => RecordedOp::Rename,
        };
        self.ops.lock().unwrap().push((file, op));
    }
}

/// One recorded workload: the operations, and what was acknowledged when.
struct Recording {
    ops: Vec<(StoreFile, RecordedOp)>,
    /// (operations recorded when the flush returned, what it acknowledged), in order.
    acks: Vec<(usize, Acked)>,
    /// Every record the live store stored, by seq - 1.
    records: Vec<Record>,
    ledger: Ledger,
    /// Operations of the first `Store::open`, which created both files.
    created_at: usize,
}

impl Recording {
    /// What was acknowledged before a crash after the first `crash_at` operations.
    fn acked_at(&self, crash_at: usize) -> Acked {
        self.acks.iter().rev().find(|(op, _)| *op <= crash_at).map(|(_, a)| a.clone()).unwrap_or_default()
    }
}

/// A store under the recorder, its writer running.
struct Live {
    store: Store,
    handle: WriterHandle,
    thread: std::thread::JoinHandle<()>,
}

fn open_live(dir: &Path, hook: &Arc<Recorder>) -> Live {
    let opts = StoreOptions {
        // Only the workload's flushes and folds commit: the recording is deterministic.
        commit_interval: Duration::from_secs(3600),
        fold_interval: Duration::from_secs(3600),
        io_hook: Hook(Some(hook.clone())),
        ..StoreOptions::default()
    };
    let (store, writer, _) = Store::open(dir, STATION, opts).expect("the recorded store opens");
    let handle = writer.handle();
    Live { store, handle, thread: writer.spawn().unwrap() }
}

/// Runs the workload in `dir` (on a real filesystem, so that the journal uses direct I/O as on
/// the card) and returns its recording.
fn record_workload(dir: &Path) -> Recording {
    let hook = Arc::new(Recorder::default());
    let mut ledger = Ledger::default();
    let mut acks = Vec::new();
    let mut next = 0u64;
    let mut live = open_live(dir, &hook);
    let created_at = hook.len();
    let mut mark = 1_000u64;
    for round in 0..16u64 {
        let w = live.handle.clone();
        for _ in 0..1 + round % 4 {
            w.append(position(next));
            next += 1;
        }
        if round % 3 == 1 {
            // 150 B to 2 KB: frames that end mid-sector, fill one, or span several.
            w.append(long_warning(round, 150 + (round as usize * 397) % 1900));
        }
        let acked_seq = acks.last().map_or(0, |(_, a): &(usize, Acked)| a.last_seq);
        ledger.cursor(&w, "sink.kafka", acked_seq.saturating_sub(1));
        // A mark moves back once (a corrected clock): the journal's last value must win.
        mark = if round == 5 { mark - 500 } else { mark + 1_000 };
        ledger.mark(&w, "source.tle.last_attempt", mark);
        if round % 2 == 0 {
            ledger.count(&w, "rejected.iss_position.time_in_future");
        }
        let fold = matches!(round, 3 | 7 | 13);
        let seq = if fold { block(w.fold()) } else { block(w.flush()) }.expect("the recorded workload commits");
        acks.push((hook.len(), ledger.acked(seq)));
        if round == 10 {
            // A kill with a batch in flight: nothing more reaches the disk, so the journal keeps
            // commits the store never folded, and the reopen replays them.
            w.append(position(1_000_000));
            hook.dead.store(true, Ordering::SeqCst);
            assert!(block(w.shutdown()).is_err(), "the killed writer cannot commit");
            let Live { store, handle, thread } = live;
            thread.join().unwrap();
            drop((store, handle));
            hook.dead.store(false, Ordering::SeqCst);
            live = open_live(dir, &hook);
        }
    }
    let records: Vec<Record> = live.store.read_after(0, usize::MAX).unwrap().into_iter().map(|r| r.record).collect();
    let seq = block(live.handle.shutdown()).unwrap();
    acks.push((hook.len(), ledger.acked(seq)));
    let Live { store, handle, thread } = live;
    thread.join().unwrap();
    drop((store, handle));
    let ops = std::mem::take(&mut *hook.ops.lock().unwrap());
    let recording = Recording { ops, acks, records, ledger, created_at };
    // The recorder must have seen every change: replaying it gives the files on disk.
    let mut images = Images::default();
    for (file, op) in &recording.ops {
        images.apply(*file, op);
    }
    for (file, name) in [(StoreFile::Journal, JOURNAL_FILE), (StoreFile::Db, DB_FILE), (StoreFile::Header, HEADER_FILE)]
    {
        let on_disk = std::fs::read(dir.join(name)).unwrap();
        assert!(images.get(file) == on_disk.as_slice(), "the recording of {name} differs from the file");
    }
    recording
}

// ---------------------------------------------------------------------------------------------
// State enumerator
// ---------------------------------------------------------------------------------------------

/// The store's files as the device holds them; `None`: not written yet (not created, as far as
/// a crash is concerned). A new store's journal and redb file are created under `<name>.new`
/// and renamed into place (`renamed`) once complete.
#[derive(Default, Clone)]
struct Images {
    journal: Option<Vec<u8>>,
    db: Option<Vec<u8>>,
    header: Option<Vec<u8>>,
    renamed: BTreeSet<&'static str>,
}

const FILES: [(StoreFile, &str); 3] =
    [(StoreFile::Journal, JOURNAL_FILE), (StoreFile::Db, DB_FILE), (StoreFile::Header, HEADER_FILE)];

impl Images {
    fn image(&self, file: StoreFile) -> &Option<Vec<u8>> {
        match file {
            StoreFile::Journal => &self.journal,
            StoreFile::Db => &self.db,
            StoreFile::Header => &self.header,
        }
    }
    fn slot(&mut self, file: StoreFile) -> &mut Vec<u8> {
        match file {
            StoreFile::Journal => self.journal.get_or_insert_with(Vec::new),
            StoreFile::Db => self.db.get_or_insert_with(Vec::new),
            StoreFile::Header => self.header.get_or_insert_with(Vec::new),
        }
    }
    fn get(&self, file: StoreFile) -> &[u8] {
        self.image(file).as_deref().unwrap_or_default()
    }
    /// The name the file has on disk: its own, or (the journal and redb's file of a store being
    /// created, until renamed) `<name>.new`. The side file is written under its own name.
    fn name(&self, file: StoreFile, name: &'static str) -> String {
        if file == StoreFile::Header || self.renamed.contains(name) { name.to_owned() } else { format!("{name}.new") }
    }
    fn apply(&mut self, file: StoreFile, op: &RecordedOp) {
        if let RecordedOp::Rename = op {
            let name = FILES.iter().find(|(f, _)| *f == file).unwrap().1;
            self.renamed.insert(name);
            return;
        }
        let bytes = self.slot(file);
        match op {
            RecordedOp::Write { offset, data } => {
                let end = *offset as usize + data.len();
                if bytes.len() < end {
                    bytes.resize(end, 0);
                }
                bytes[*offset as usize..end].copy_from_slice(data);
            }
            RecordedOp::SetLen(len) => bytes.resize(*len as usize, 0),
            RecordedOp::Sync | RecordedOp::Rename => {}
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum TearKind {
    /// The sector kept its old bytes (the write never reached it).
    Unwritten,
    /// A sector write cut mid-way that left zeros.
    Zeros,
    /// A sector write cut mid-way that left garbage.
    Random,
}

/// One sector of one unsynced write, not as the write meant it.
#[derive(Debug, Clone, Copy)]
struct Tear {
    op: usize,
    file: StoreFile,
    sector: u64,
    kind: TearKind,
    /// The sector held synced bytes before this write: the write rewrote durable data.
    over_synced: bool,
}

/// A state a crash can leave: the first `crash_at` operations reached the device, possibly with
/// one sector of an unsynced write torn.
#[derive(Debug, Clone, Copy)]
struct CrashState {
    crash_at: usize,
    tear: Option<Tear>,
}

impl std::fmt::Display for CrashState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "crash after op {}", self.crash_at)?;
        if let Some(t) = self.tear {
            write!(f, ", sector {} of op {} ({:?}) {:?}", t.sector, t.op, t.file, t.kind)?;
            if t.over_synced {
                write!(f, " over synced data")?;
            }
        }
        Ok(())
    }
}

/// Calls `visit` with every distinct crash state of `ops`, in order of crash point: the state
/// and the files it leaves (the reference images plus at most one patched sector).
fn for_each_state(ops: &[(StoreFile, RecordedOp)], mut visit: impl FnMut(CrashState, &Images, Option<(u64, &[u8])>)) {
    // The sync that makes each write durable (or none: `ops.len()`).
    let mut next_sync = vec![ops.len(); ops.len()];
    let mut upcoming: HashMap<StoreFile, usize> = HashMap::new();
    for (i, (file, op)) in ops.iter().enumerate().rev() {
        if matches!(op, RecordedOp::Sync) {
            upcoming.insert(*file, i);
        } else {
            next_sync[i] = upcoming.get(file).copied().unwrap_or(ops.len());
        }
    }
    // Tears due at each crash point: (write, sector, kind).
    let mut due: BTreeMap<usize, Vec<(usize, u64, TearKind)>> = BTreeMap::new();
    let mut images = Images::default();
    // Each written sector's bytes before the write (a sector may be partly written).
    let mut before: HashMap<(usize, u64), Vec<u8>> = HashMap::new();
    let mut synced: HashMap<StoreFile, BTreeSet<u64>> = HashMap::new();
    let mut unsynced: HashMap<StoreFile, BTreeSet<u64>> = HashMap::new();
    let mut over_synced: BTreeSet<(usize, u64)> = BTreeSet::new();
    let mut rng = fastrand::Rng::with_seed(0xC0FFEE);
    for crash_at in 0..=ops.len() {
        visit(CrashState { crash_at, tear: None }, &images, None);
        for (w, sector, kind) in due.remove(&crash_at).unwrap_or_default() {
            let file = ops[w].0;
            let start = (sector * SECTOR) as usize;
            let reference = images.get(file);
            if start >= reference.len() {
                continue; // truncated since
            }
            let end = (start + SECTOR as usize).min(reference.len());
            // The sector as the tear leaves it, then every later write of the file up to the crash.
            let mut bytes = match kind {
                TearKind::Unwritten => before[&(w, sector)].clone(),
                TearKind::Zeros => vec![0; SECTOR as usize],
                TearKind::Random => (0..SECTOR).map(|_| rng.u8(..)).collect(),
            };
            for (f, op) in &ops[w + 1..crash_at] {
                if *f != file {
                    continue;
                }
                match op {
                    RecordedOp::Write { offset, data } => overlay(&mut bytes, start as u64, *offset, data),
                    RecordedOp::SetLen(len) => {
                        for (i, b) in bytes.iter_mut().enumerate() {
                            if (start + i) as u64 >= *len {
                                *b = 0;
                            }
                        }
                    }
                    RecordedOp::Sync | RecordedOp::Rename => {}
                }
            }
            let bytes = &bytes[..end - start];
            if bytes == &reference[start..end] {
                continue; // the same state as the prefix
            }
            let tear = Tear { op: w, file, sector, kind, over_synced: over_synced.contains(&(w, sector)) };
            visit(CrashState { crash_at, tear: Some(tear) }, &images, Some((start as u64, bytes)));
        }
        let Some((file, op)) = ops.get(crash_at) else { break };
        match op {
            RecordedOp::Write { offset, data } => {
                let first = offset / SECTOR;
                let last = (offset + data.len() as u64).div_ceil(SECTOR);
                let current = images.get(*file);
                for sector in first..last {
                    let start = (sector * SECTOR) as usize;
                    let mut old = vec![0u8; SECTOR as usize];
                    if start < current.len() {
                        let end = (start + SECTOR as usize).min(current.len());
                        old[..end - start].copy_from_slice(&current[start..end]);
                    }
                    if synced.get(file).is_some_and(|s| s.contains(&sector)) && old.iter().any(|b| *b != 0) {
                        over_synced.insert((crash_at, sector));
                    }
                    before.insert((crash_at, sector), old);
                    unsynced.entry(*file).or_default().insert(sector);
                    for c in [crash_at + 1, next_sync[crash_at]] {
                        for kind in [TearKind::Unwritten, TearKind::Zeros, TearKind::Random] {
                            due.entry(c).or_default().push((crash_at, sector, kind));
                        }
                    }
                }
                // Both crash points may be the same one.
                if let Some(list) = due.get_mut(&(crash_at + 1)) {
                    list.sort_by_key(|(w, s, k)| (*w, *s, *k));
                    list.dedup();
                }
            }
            RecordedOp::Sync => {
                let now = unsynced.remove(file).unwrap_or_default();
                synced.entry(*file).or_default().extend(now);
            }
            RecordedOp::SetLen(_) | RecordedOp::Rename => {}
        }
        images.apply(*file, op);
    }
}

/// Copies the part of the write (`data` at `offset`) that falls in the sector starting at `start`.
fn overlay(sector: &mut [u8], start: u64, offset: u64, data: &[u8]) {
    let end = start + sector.len() as u64;
    let from = offset.max(start);
    let to = (offset + data.len() as u64).min(end);
    if from < to {
        sector[(from - start) as usize..(to - start) as usize]
            .copy_from_slice(&data[(from - offset) as usize..(to - offset) as usize]);
    }
}

// ---------------------------------------------------------------------------------------------
// Checker
// ---------------------------------------------------------------------------------------------

/// redb keeps its magic, god byte and *both* commit slots in the first 320 bytes of the file:
/// one 512-byte sector. A torn write of that sector destroys both slots at once; without help
/// redb could no longer find its last durable commit and would refuse the file. `header_guard`
/// writes every header to `outpost.redb.hdr` (synced) before redb's file, and `Store::open`
/// restores it from there: these states must open like any other (their own test checks all of
/// them).
const REDB_SUPER_HEADER: u64 = 0;

enum Outcome {
    Opened,
    Refused(String),
}

fn materialize(dir: &Path, images: &Images, patch: Option<(StoreFile, u64, &[u8])>) {
    for (file, name) in FILES {
        let Some(bytes) = images.image(file) else { continue };
        let mut bytes = bytes.clone();
        if let Some((f, at, data)) = patch
            && f == file
        {
            bytes[at as usize..at as usize + data.len()].copy_from_slice(data);
        }
        std::fs::write(dir.join(images.name(file, name)), bytes).unwrap();
    }
}

/// Opens the state in `dir` with the real `Store::open` and checks it against `acked`.
fn check_recovered(dir: &Path, rec: &Recording, acked: &Acked) -> Result<Outcome, String> {
    let (store, writer, _) = match Store::open(dir, STATION, StoreOptions::default()) {
        Ok(opened) => opened,
        Err(e) => {
            let msg = format!("{e:#}");
            // The clear messages of `Store::open`: they name the damaged file and what to do.
            return if msg.contains("is damaged") || msg.contains("does not fit the store") {
                Ok(Outcome::Refused(msg))
            } else {
                Err(format!("open failed without the damaged-store message: {msg}"))
            };
        }
    };
    drop(writer);
    check_store(&store, &rec.records, &rec.ledger, acked, false)?;
    Ok(Outcome::Opened)
}

/// How many states to check: `OUTPOST_CRASH_STATES` (`all` or a number), else `default`.
fn sample_size(total: usize, default: usize) -> usize {
    match std::env::var("OUTPOST_CRASH_STATES").as_deref() {
        Ok("all") => total,
        Ok(n) => n.parse().expect("OUTPOST_CRASH_STATES is `all` or a number"),
        Err(_) => default,
    }
    .min(total)
}

/// A directory for the states: memory if there is some (a state is opened and thrown away).
fn scratch_root() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::tempdir_in(shm)
    {
        return dir;
    }
    tempfile::tempdir().unwrap()
}

#[derive(Default, Debug)]
struct Tally {
    total: usize,
    checked: usize,
    prefixes: usize,
    tears: usize,
    over_synced: BTreeMap<&'static str, usize>,
    /// States with redb's super-header sector torn (`REDB_SUPER_HEADER`).
    redb_header_tears: usize,
    refused: usize,
    failures: usize,
    /// Failures grouped by class (file, tear kind, over synced data, what went wrong): the count
    /// and the first example.
    classes: BTreeMap<String, (usize, String)>,
}

impl Tally {
    fn fail(&mut self, state: &CrashState, what: String) {
        self.failures += 1;
        self.refused += usize::from(what.starts_with("refused"));
        // What went wrong, without the state's numbers and paths.
        let gist: String = what
            .split([':', ';'])
            .take(if what.starts_with("refused") { 3 } else { 1 })
            .collect::<String>()
            .chars()
            .filter(|c| !c.is_ascii_digit())
            .collect();
        let gist = gist.split_whitespace().filter(|w| !w.starts_with('/')).take(12).collect::<Vec<_>>().join(" ");
        let class = match state.tear {
            None => format!("in-order prefix: {gist}"),
            Some(t) => format!(
                "{:?} {:?} sector{}: {gist}",
                t.file,
                t.kind,
                if t.over_synced { " over synced data" } else { "" }
            ),
        };
        self.classes.entry(class).or_insert((0, format!("{state}: {what}"))).0 += 1;
    }

    fn print(&self, what: &str, rec: &Recording, started: Instant) {
        println!(
            "{what}: crash states checked: {} ({} refused) of {} distinct states ({} ops recorded, {} acknowledgements, \
             {} records); {} prefixes, {} torn sectors, over synced data: {:?}; {:.1} s",
            self.checked,
            self.refused,
            self.total,
            rec.ops.len(),
            rec.acks.len(),
            rec.records.len(),
            self.prefixes,
            self.tears,
            self.over_synced,
            started.elapsed().as_secs_f64(),
        );
        println!("  of them with redb's super-header sector torn (see REDB_SUPER_HEADER): {}", self.redb_header_tears);
    }

    fn assert_none_failed(&self) {
        let classes: Vec<String> =
            self.classes.iter().map(|(class, (n, first))| format!("{n} x {class}\n    first: {first}")).collect();
        assert!(self.checked > 0, "no state checked");
        assert!(
            self.failures == 0,
            "{} of {} crash states lose or damage acknowledged data, or refuse to open, by class:\n{}",
            self.failures,
            self.checked,
            classes.join("\n")
        );
    }
}

/// A torn write of redb's sector 0 (not a sector left unwritten: that keeps the old header).
fn tears_redb_super_header(state: &CrashState) -> bool {
    state
        .tear
        .is_some_and(|t| t.file == StoreFile::Db && t.sector == REDB_SUPER_HEADER && t.kind != TearKind::Unwritten)
}

/// Records the workload in a fresh directory, then checks a deterministic sample of up to
/// `default_sample` (see `sample_size`) of the crash states that `wanted` selects. Every state
/// must open: a refusal is a failure.
fn check_states(wanted: impl Fn(&Recording, &CrashState) -> bool, default_sample: usize) -> (Tally, Recording) {
    // A real filesystem for the recording (direct I/O, as on the card).
    let work = tempfile::tempdir().unwrap();
    let rec = record_workload(work.path());

    // (wanted, a torn journal sector that held synced data: the tail-sector case, always checked)
    let mut selected = Vec::new();
    for_each_state(&rec.ops, |state, _, _| {
        let over_synced_journal = state.tear.is_some_and(|t| t.file == StoreFile::Journal && t.over_synced);
        selected.push((wanted(&rec, &state), over_synced_journal));
    });
    let candidates: Vec<usize> = (0..selected.len()).filter(|i| selected[*i].0).collect();
    let n = sample_size(candidates.len(), default_sample);
    // A deterministic sample (the same states every run): first the journal sectors that held
    // synced data, then the others in a seeded order; every state when all are wanted.
    let mut rng = fastrand::Rng::with_seed(14);
    let mut order = candidates.clone();
    rng.shuffle(&mut order);
    order.sort_by_key(|i| !selected[*i].1);
    let mut chosen = vec![false; selected.len()];
    for i in order.into_iter().take(n) {
        chosen[i] = true;
    }

    let scratch = scratch_root();
    let mut tally = Tally { total: candidates.len(), ..Tally::default() };
    let mut index = 0usize;
    for_each_state(&rec.ops, |state, images, patch| {
        index += 1;
        if !chosen[index - 1] {
            return;
        }
        let dir = scratch.path().join(format!("s{index}"));
        std::fs::create_dir(&dir).unwrap();
        let file = state.tear.map(|t| t.file);
        materialize(&dir, images, file.zip(patch).map(|(f, (at, bytes))| (f, at, bytes)));
        let acked = rec.acked_at(state.crash_at);
        tally.checked += 1;
        match state.tear {
            None => tally.prefixes += 1,
            Some(t) => {
                tally.tears += 1;
                if t.over_synced {
                    let file = match t.file {
                        StoreFile::Db => "redb",
                        StoreFile::Journal => "journal",
                        StoreFile::Header => "redb header copy",
                    };
                    *tally.over_synced.entry(file).or_default() += 1;
                }
                tally.redb_header_tears += usize::from(tears_redb_super_header(&state));
            }
        }
        match check_recovered(&dir, &rec, &acked) {
            Ok(Outcome::Opened) => {}
            Ok(Outcome::Refused(msg)) => tally.fail(&state, format!("refused: {msg}")),
            Err(e) => tally.fail(&state, format!("(acknowledged up to seq {}) {e}", acked.last_seq)),
        }
        let _ = std::fs::remove_dir_all(&dir);
    });
    (tally, rec)
}

/// Every crash state of the store's life once it exists (after its first `Store::open`).
#[test]
fn every_crash_state_keeps_every_acknowledged_record_once() {
    let started = Instant::now();
    let (tally, rec) = check_states(|rec, s| s.crash_at >= rec.created_at, CI_SAMPLE);
    tally.print("an existing store", &rec, started);
    tally.assert_none_failed();
    assert_eq!(tally.refused, 0, "a crash state of an existing store was refused");
}

/// A crash while the very first `Store::open` creates both files: nothing is acknowledged yet,
/// so every such state must open (as a new, empty store).
/// Both files are created under `<name>.new` and renamed into place once complete.
#[test]
fn a_crash_while_a_store_is_created_leaves_it_openable() {
    let started = Instant::now();
    let (tally, rec) = check_states(|rec, s| s.crash_at < rec.created_at, CI_SAMPLE);
    tally.print("a new store", &rec, started);
    tally.assert_none_failed();
}

/// Every state with redb's super-header sector torn (see `REDB_SUPER_HEADER`).
#[test]
fn a_torn_redb_super_header_sector_keeps_the_last_durable_commit() {
    let started = Instant::now();
    let (tally, rec) = check_states(|rec, s| s.crash_at >= rec.created_at && tears_redb_super_header(s), usize::MAX);
    tally.print("redb's super-header sector", &rec, started);
    tally.assert_none_failed();
    assert!(tally.redb_header_tears > 0 && tally.redb_header_tears == tally.checked);
}
