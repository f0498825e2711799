//! In-process fault injection: the card refuses a write, `set_len` or sync with EIO or ENOSPC.
//!
//! Every operation counts: writes, `set_len`s and syncs of the journal, redb's file and its header
//! copy (`outpost.redb.hdr`), and the renames that put a new store's files in place.
//!
//! A workload (open, appends with cursors, marks and counters, folds, a killed writer and the
//! reopen that replays its journal, shutdown) runs once to count the operations of each kind it
//! issues. Then, for every kind and every N, it runs again with the Nth operation of that kind
//! and every later one failing (a card that keeps failing) until the step that met the error has
//! reported it: `Store::open` returns an error, or `flush` / `fold` return one *and* publish it in
//! `WriterStats::error`. The fault is then cleared and the step retried: it must succeed (the
//! writer kept the batch) and the error must be gone. At the end everything is dropped and the
//! directory opened afresh with a clean `Store::open`: every record sent is there exactly once,
//! seqs 1..=n without a gap, cursors, marks and counters exactly as sent.
//!
//! `OUTPOST_FAULT_POINTS=all` runs every injection point; a number runs that many (a
//! deterministic sample); the default is a sample sized for CI.

use super::crash_states::{Ledger, STATION, block, check_store, long_warning, position};
use super::io_hook::{Hook, IoHook, Op, StoreFile};
use super::{Store, StoreOptions, WriterHandle};
use crate::domain::Record;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Injection points run in CI (a debug build): a deterministic sample.
const CI_SAMPLE: usize = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Target {
    JournalWrite,
    JournalSetLen,
    JournalSync,
    DbWrite,
    DbSetLen,
    DbSync,
    HeaderWrite,
    HeaderSetLen,
    HeaderSync,
    /// A new store's journal or redb file renamed into place.
    JournalRename,
    DbRename,
    HeaderRename,
}

fn target(file: StoreFile, op: Op<'_>) -> Target {
    match (file, op) {
        (StoreFile::Journal, Op::Write { .. }) => Target::JournalWrite,
        (StoreFile::Journal, Op::SetLen(_)) => Target::JournalSetLen,
        (StoreFile::Journal, Op::Sync) => Target::JournalSync,
        (StoreFile::Db, Op::Write { .. }) => Target::DbWrite,
        (StoreFile::Db, Op::SetLen(_)) => Target::DbSetLen,
        (StoreFile::Db, Op::Sync) => Target::DbSync,
        (StoreFile::Header, Op::Write { .. }) => Target::HeaderWrite,
        (StoreFile::Header, Op::SetLen(_)) => Target::HeaderSetLen,
        (StoreFile::Header, Op::Sync) => Target::HeaderSync,
        (StoreFile::Journal, Op::Rename) => Target::JournalRename,
        (StoreFile::Db, Op::Rename) => Target::DbRename,
        (StoreFile::Header, Op::Rename) => Target::HeaderRename,
    }
}

#[derive(Debug, Clone, Copy)]
struct Fault {
    target: Target,
    nth: u64,
    errno: i32,
}

/// Counts operations per kind and fails the armed one. While `dead` is set every operation
/// fails uncounted: the process was killed (see `Run::kill`).
#[derive(Default)]
struct FaultHook {
    counts: Mutex<BTreeMap<Target, u64>>,
    armed: Mutex<Option<Fault>>,
    hits: AtomicU64,
    /// The workload step running now, and the one the fault first hit.
    phase: Mutex<&'static str>,
    hit_phase: Mutex<Option<&'static str>>,
    dead: AtomicBool,
}

impl IoHook for FaultHook {
    fn before(&self, file: StoreFile, op: Op<'_>) -> std::io::Result<()> {
        if self.dead.load(SeqCst) {
            return Err(std::io::Error::from_raw_os_error(libc::EIO));
        }
        let t = target(file, op);
        let n = {
            let mut counts = self.counts.lock().unwrap();
            let n = counts.entry(t).or_default();
            *n += 1;
            *n
        };
        match *self.armed.lock().unwrap() {
            Some(f) if f.target == t && n >= f.nth => {
                if self.hits.fetch_add(1, SeqCst) == 0 {
                    *self.hit_phase.lock().unwrap() = Some(*self.phase.lock().unwrap());
                }
                Err(std::io::Error::from_raw_os_error(f.errno))
            }
            _ => Ok(()),
        }
    }
}

impl FaultHook {
    fn clear(&self) {
        *self.armed.lock().unwrap() = None;
    }
    fn hit(&self) -> bool {
        self.hits.load(SeqCst) > 0
    }
}

struct Live {
    store: Store,
    handle: WriterHandle,
    thread: std::thread::JoinHandle<()>,
}

/// One run of the workload with (at most) one fault armed.
struct Run<'a> {
    dir: &'a Path,
    hook: Arc<FaultHook>,
    live: Option<Live>,
    ledger: Ledger,
    appended: Vec<Record>,
    /// Whether a failed step reported the error and succeeded on retry (for the tally).
    surfaced: bool,
}

impl Run<'_> {
    fn opts(&self) -> StoreOptions {
        StoreOptions {
            commit_interval: Duration::from_secs(3600),
            fold_interval: Duration::from_secs(3600),
            io_hook: Hook(Some(self.hook.clone())),
            ..StoreOptions::default()
        }
    }

    fn set_phase(&self, phase: &'static str) {
        *self.hook.phase.lock().unwrap() = phase;
    }

    /// Opens the store; an open that meets the fault must fail, and succeed once it is cleared.
    fn open(&mut self) -> Result<(), String> {
        self.set_phase("open");
        let opened = match Store::open(self.dir, STATION, self.opts()) {
            Ok(opened) => opened,
            Err(e) if self.hook.hit() => {
                self.hook.clear();
                self.surfaced = true;
                Store::open(self.dir, STATION, self.opts())
                    .map_err(|e2| format!("open failed ({e:#}), and again once the fault was cleared: {e2:#}"))?
            }
            Err(e) => return Err(format!("open failed without a fault: {e:#}")),
        };
        self.after_step();
        let (store, writer, _) = opened;
        let handle = writer.handle();
        self.live = Some(Live { store, handle, thread: writer.spawn().unwrap() });
        Ok(())
    }

    /// A fault that met a step which still succeeded (say, a sync redb retries) is over.
    fn after_step(&self) {
        if self.hook.hit() {
            self.hook.clear();
        }
    }

    /// Runs a flush or fold; a failure must be published, kept and retried successfully.
    fn commit(&mut self, fold: bool) -> Result<(), String> {
        self.set_phase(if fold { "fold" } else { "append" });
        let w = self.live.as_ref().unwrap().handle.clone();
        let run = |w: &WriterHandle| if fold { block(w.fold()) } else { block(w.flush()) };
        let seq = match run(&w) {
            Ok(seq) => seq,
            Err(e) if self.hook.hit() => {
                let published = w.stats().error();
                if published.is_none() {
                    return Err(format!("the step failed ({e:#}) but WriterStats::error is empty"));
                }
                self.hook.clear();
                self.surfaced = true;
                let seq =
                    run(&w).map_err(|e2| format!("failed ({e:#}), and again once the fault was cleared: {e2:#}"))?;
                if let Some(still) = w.stats().error() {
                    return Err(format!("the retry succeeded but WriterStats::error still says: {still}"));
                }
                seq
            }
            Err(e) => return Err(format!("failed without a fault: {e:#}")),
        };
        self.after_step();
        if seq != self.appended.len() as u64 {
            return Err(format!("the writer acknowledged up to seq {seq}, {} records were sent", self.appended.len()));
        }
        Ok(())
    }

    fn append_round(&mut self, round: u64) {
        let w = self.live.as_ref().unwrap().handle.clone();
        for i in 0..1 + round % 3 {
            let r = position(round * 10 + i);
            w.append(r.clone());
            self.appended.push(r);
        }
        if round % 2 == 1 {
            let r = long_warning(round, 100 + round as usize * 300);
            w.append(r.clone());
            self.appended.push(r);
        }
        self.ledger.cursor(&w, "sink.kafka", self.appended.len() as u64 - 1);
        self.ledger.mark(&w, "source.tle.last_attempt", if round == 3 { 10 } else { 100 + round });
        self.ledger.count(&w, "rejected.iss_position.time_in_future");
    }

    /// Stops the writer as `kill -9` would: from now on nothing reaches the disk, so its final
    /// commit and fold fail and the journal keeps what redb never folded.
    fn kill(&mut self) {
        self.hook.dead.store(true, SeqCst);
        let live = self.live.take().unwrap();
        let _ = block(live.handle.shutdown());
        let Live { store, handle, thread } = live;
        thread.join().unwrap();
        drop((store, handle));
        self.hook.dead.store(false, SeqCst);
    }

    /// A clean stop; a failing fold here is fine (the journal keeps everything), it is reported
    /// by the reopen's check if it is not.
    fn shutdown(&mut self) {
        self.set_phase("shutdown");
        let live = self.live.take().unwrap();
        let _ = block(live.handle.shutdown());
        let Live { store, handle, thread } = live;
        thread.join().unwrap();
        drop((store, handle));
        self.after_step();
    }

    fn workload(&mut self) -> Result<(), String> {
        self.open()?;
        for round in 0..7 {
            // Two commits per round: the second appends behind an acknowledged frame of the
            // same journal epoch (where a retry that trusts memory can damage it).
            for step in [2 * round, 2 * round + 1] {
                self.append_round(step);
                self.commit(false).map_err(|e| format!("flush {step}: {e}"))?;
            }
            if round == 1 || round == 4 {
                self.commit(true).map_err(|e| format!("fold after round {round}: {e}"))?;
            }
            if round == 2 {
                self.kill();
                self.open().map_err(|e| format!("reopen after the kill: {e}"))?;
            }
            if round == 4 {
                self.shutdown();
                self.open().map_err(|e| format!("reopen after the shutdown: {e}"))?;
            }
        }
        // The end is a kill too: the check below then needs the journal, not a final fold.
        self.kill();
        Ok(())
    }

    /// Reopens the directory with a clean `Store::open` and checks everything sent is there once.
    fn verify(&self) -> Result<(), String> {
        let (store, writer, _) = Store::open(self.dir, STATION, StoreOptions::default())
            .map_err(|e| format!("the clean reopen fails: {e:#}"))?;
        drop(writer);
        let mut all = self.ledger.all_sent().clone();
        all.last_seq = self.appended.len() as u64;
        check_store(&store, &self.appended, &self.ledger, &all, true)
    }
}

/// Runs the workload in `dir` with `fault` armed. With `existing`, the store is created first
/// (unarmed, uncounted): the fault then meets an existing store's life, not its creation.
fn run_workload(dir: &Path, fault: Option<Fault>, existing: bool) -> (Result<(), String>, Arc<FaultHook>, bool) {
    let hook = Arc::new(FaultHook::default());
    let mut run =
        Run { dir, hook: hook.clone(), live: None, ledger: Ledger::default(), appended: Vec::new(), surfaced: false };
    if existing {
        run.open().expect("the store is created");
        run.shutdown();
        hook.counts.lock().unwrap().clear();
    }
    *hook.armed.lock().unwrap() = fault;
    let result = run.workload().and_then(|()| run.verify());
    if let Some(live) = run.live.take() {
        // A failed run: stop the writer before the directory goes.
        let _ = block(live.handle.shutdown());
        let _ = live.thread.join();
    }
    (result, hook, run.surfaced)
}

fn sample_size(total: usize) -> usize {
    match std::env::var("OUTPOST_FAULT_POINTS").as_deref() {
        Ok("all") => total,
        Ok(n) => n.parse().expect("OUTPOST_FAULT_POINTS is `all` or a number"),
        Err(_) => CI_SAMPLE,
    }
    .min(total)
}

/// What a set of fault runs found.
#[derive(Default)]
struct Tally {
    points: usize,
    run: usize,
    not_reached: usize,
    surfaced: usize,
    covered: BTreeMap<String, usize>,
    failures: Vec<String>,
}

/// Runs the workload once per chosen injection point among `points` (`counts`: operations of
/// each kind a run issues, to keep the first and last of each in every sample).
fn run_points(points: &[Fault], counts: &BTreeMap<Target, u64>, existing: bool) -> Tally {
    let wanted = sample_size(points.len());
    let mut rng = fastrand::Rng::with_seed(14);
    // Journal syncs with EIO first (where "fsync error poisons the next write" shows), then the
    // first and last operation of each kind, then random ones.
    let mut chosen: Vec<bool> = points
        .iter()
        .map(|p| (p.target == Target::JournalSync && p.errno == libc::EIO) || p.nth == 1 || p.nth == counts[&p.target])
        .collect();
    if wanted == points.len() {
        chosen.iter_mut().for_each(|c| *c = true);
    }
    while chosen.iter().filter(|c| **c).count() < wanted {
        chosen[rng.usize(..points.len())] = true;
    }
    let mut tally = Tally { points: points.len(), ..Tally::default() };
    for (point, _) in points.iter().zip(&chosen).filter(|(_, c)| **c) {
        tally.run += 1;
        let dir = tempfile::tempdir().unwrap();
        let (result, hook, reported) = run_workload(dir.path(), Some(*point), existing);
        let Some(phase) = *hook.hit_phase.lock().unwrap() else {
            tally.not_reached += 1;
            continue;
        };
        *tally.covered.entry(format!("{phase}/{:?}", point.target)).or_default() += 1;
        tally.surfaced += usize::from(reported);
        if let Err(e) = result {
            tally
                .failures
                .push(format!("{:?} #{} errno {} (first hit in {phase}): {e}", point.target, point.nth, point.errno));
        }
    }
    tally
}

/// Every (kind, N, errno) for the operations counted in `counts`.
fn points_of(counts: &BTreeMap<Target, u64>) -> Vec<Fault> {
    let mut points = Vec::new();
    for (&target, &count) in counts {
        for nth in 1..=count {
            for errno in [libc::EIO, libc::ENOSPC] {
                points.push(Fault { target, nth, errno });
            }
        }
    }
    points
}

fn report(what: &str, tally: &Tally, counts: &BTreeMap<Target, u64>, started: Instant) {
    let hit: usize = tally.covered.values().sum();
    println!(
        "{what}: fault injection points covered: {hit} of {} ({} run, {} not reached, {} failed a step that then \
         succeeded on retry); by step/operation: {:?}; operations per run: {counts:?}; {:.1} s",
        tally.points,
        tally.run,
        tally.not_reached,
        tally.surfaced,
        tally.covered,
        started.elapsed().as_secs_f64()
    );
    assert!(hit > 0);
    assert!(
        tally.failures.is_empty(),
        "{} of {hit} injected faults lost, duplicated or wedged data:\n{}",
        tally.failures.len(),
        tally.failures.iter().take(12).cloned().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn every_injected_io_error_is_reported_retried_and_loses_nothing() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (clean, hook, _) = run_workload(dir.path(), None, true);
    clean.expect("the workload passes without faults");
    let counts = hook.counts.lock().unwrap().clone();
    let tally = run_points(&points_of(&counts), &counts, true);
    report("an existing store", &tally, &counts, started);
}

/// The same for the operations of a new store's creation (the first `Store::open`): an error
/// there must leave a directory that the next start can still open.
#[test]
fn an_io_error_while_a_store_is_created_leaves_it_openable() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let hook = Arc::new(FaultHook::default());
    let mut run = Run {
        dir: dir.path(),
        hook: hook.clone(),
        live: None,
        ledger: Ledger::default(),
        appended: Vec::new(),
        surfaced: false,
    };
    run.open().expect("the store is created");
    let counts = hook.counts.lock().unwrap().clone();
    run.shutdown();
    let tally = run_points(&points_of(&counts), &counts, false);
    report("a new store", &tally, &counts, started);
}
