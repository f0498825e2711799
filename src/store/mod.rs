//! The durable log: every record Outpost collected, in order, in one redb file plus a journal.
//!
//! # Files of a store
//! - `outpost.redb`: redb's file, the log and its indexes.
//! - `outpost.wal`: the journal (`journal`): the commits since the last fold.
//! - `outpost.redb.hdr`: one sector, a copy of redb's super-header written and synced before
//!   every header write (`header_guard`): a torn write of redb's first sector, which holds both of
//!   its commit slots, is restored from it at open.
//! - `outpost.redb.new`, `outpost.wal.new`: only while a new store is created. Both files are
//!   initialised completely under these names, synced, then renamed into place, redb's first
//!   (each rename followed by a directory fsync): a crash leaves no store, a complete redb without
//!   a journal (which holds no records; `open` creates the journal the same way), or a complete
//!   store. `open` removes such leftovers: they hold nothing acknowledged.
//!
//! # Design
//! - **One append-only log.** `log: seq -> encoded record`. `seq` starts at 1 and increases by
//!   one per stored record, with no gaps; nothing is ever deleted or rewritten.
//! - **Indexes, written in the same transaction as the log row:**
//!   `iss_track: ordinal -> (time_ms, lat_e6, lon_e6, seq)` (positions are stored in strictly
//!   increasing time, so ordinal order *is* time order: a time range is two binary searches and
//!   its size is a subtraction); `iss_track_coarse: ordinal / 64 -> the iss_track row of that
//!   ordinal` (every 64th position: a long range's binary searches and its downsampled answer
//!   read a few hundred contiguous rows instead of one page per point);
//!   `tle_by_epoch: epoch_ms -> seq`;
//!   `warnings: (valid_date, region, publish_ms, reg_id) -> seq`;
//!   `weather_daily: (date, region, fetched_ms, content hash) -> seq`.
//!   Each index key is also the kind's identity, which is how duplicates are refused; for
//!   weather a version whose hash equals the newest one of its (date, region) is the duplicate,
//!   so an unchanged re-fetch is refused and a change (even back to an older value) is kept.
//! - **Cursors:** `cursors: name -> last acknowledged seq`, advanced by sinks; beside them the
//!   marks, and `counters: name -> count` (rejections), journaled as absolute values.
//! - **Commit policy (SD-card wear):** the writer collects records for up to
//!   `commit_interval_s` (or until a batch fills), appends them to the journal and fsyncs it
//!   (one 512-byte O_DIRECT write, on a sector of its own: see `journal`), then applies them to
//!   redb with `Durability::None`, which redb keeps in memory. Every `fold_interval_s` (or when the journal grows large) one durable redb commit
//!   with quick-repair makes everything so far durable, and the journal is reset.
//! - **Crash behaviour:** redb reopens at its last durable commit (quick-repair keeps that fast;
//!   every durable commit is 2-phase, which `header_guard` relies on);
//!   `open` then replays journal entries with `seq` beyond it, folds, and resets the journal. A
//!   power cut loses at most the records not yet journaled: at most `commit_interval_s`.
//!   A store of the previous release (journal version 2) is replayed the same way once.
//! - **Errors:** a failed journal append keeps the batch in memory; the retry gives each record
//!   the same seq again (replay skips repeats). Once the journal has a batch it is acknowledged:
//!   if redb then refuses it, redb is reopened and the journal replayed into it, never the batch
//!   committed again.
//! - **One process per store:** `open` takes the journal's exclusive `flock` before it reads the
//!   journal or opens redb, and the writer keeps it (with the journal) for its lifetime, also
//!   while it reopens redb after an I/O error: a CLI command can never replay or reset the
//!   running daemon's journal. A held lock is `StoreInUse`, like redb's own.
//! - **Readers** use redb read transactions: they see every journaled record, never a torn batch.
//! - **Store format** (`STORE_FORMAT` in META): an older store is upgraded in place at open, in
//!   bounded, resumable transactions, the format bumped last (`upgrade`); a newer one is refused.
//!
//! Invariants: only this module writes redb; a record is in the log iff it is in its index;
//! records are never stored twice (same index key); the log has no seq gaps.

mod codec;
mod config;
mod header_guard;
pub mod io_hook;
mod journal;
mod read;
mod upgrade;
mod writer;

pub use codec::{from_e6, to_e6};
pub use config::StoreConfig;
pub use read::{StoreSummary, Track, TrackPoint};
pub use writer::{StoreWriter, WriterHandle, WriterStats};

use crate::domain::Record;
use anyhow::{Context, bail};
use chrono::NaiveDate;
use journal::{Entry, Journal};
use redb::{Database, Durability, ReadableTable, TableDefinition};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const ISS_TRACK: TableDefinition<u64, (i64, i32, i32, u64)> = TableDefinition::new("iss_track");
/// Every `COARSE_STRIDE`-th row of `ISS_TRACK`, keyed by ordinal / `COARSE_STRIDE` (format 2).
const ISS_TRACK_COARSE: TableDefinition<u64, (i64, i32, i32, u64)> = TableDefinition::new("iss_track_coarse");
const COARSE_STRIDE: u64 = 64;
const TLE_BY_EPOCH: TableDefinition<i64, u64> = TableDefinition::new("tle_by_epoch");
const WARNINGS: TableDefinition<(i32, u32, i64, u64), u64> = TableDefinition::new("warnings");
const ALERTS: TableDefinition<(u8, i64), u64> = TableDefinition::new("alerts");
/// Records a sink set aside: (sink, refused seq) -> seq of the dead-letter record.
const DEAD_LETTERS: TableDefinition<(&str, u64), u64> = TableDefinition::new("dead_letters");
/// Daily weather versions: (date, region, fetched ms, content hash) -> seq.
const WEATHER: TableDefinition<(i32, u32, i64, u64), u64> = TableDefinition::new("weather_daily");
/// Danger alerts: (valid date, region, level, channel tag) -> seq.
const DANGER_ALERTS: TableDefinition<(i32, u32, u8, u8), u64> = TableDefinition::new("danger_alerts");
const CURSORS: TableDefinition<&str, u64> = TableDefinition::new("cursors");
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");
const META: TableDefinition<&str, &str> = TableDefinition::new("meta");

/// The mark that says dead letter `seq` of `sink` was re-sent and acknowledged (it then leaves
/// the pending list; the dead-letter record itself stays in the log).
pub fn dead_letter_resent_mark(sink: &str, seq: u64) -> String {
    format!("sink.{sink}.dead_letter.{seq}.resent")
}

/// The store format this binary writes (see `codec` for the record format). "2" added
/// `iss_track_coarse`; `upgrade` brings a format-1 store to it in place at open.
const STORE_FORMAT: &str = "2";

pub const DB_FILE: &str = "outpost.redb";
pub const JOURNAL_FILE: &str = "outpost.wal";
/// The copy of redb's super-header written before each header write (`header_guard`).
pub const HEADER_FILE: &str = "outpost.redb.hdr";

/// Commit policy; see the module docs.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub commit_interval: std::time::Duration,
    pub fold_interval: std::time::Duration,
    /// Records per batch before committing early.
    pub max_batch: usize,
    /// Records kept in memory while storing fails (a full disk); newer ones are dropped and
    /// counted beyond it. The default holds about 11 days of positions at 10 s.
    pub max_pending: usize,
    /// redb's page cache. Small on purpose: a Pi has little memory and the working set is the tail.
    pub cache_bytes: usize,
    /// Verify every page of an existing redb file when opening it (see `open_db`).
    pub verify_on_open: bool,
    /// Sees (and may fail) every write, sync and rename of the store's files: crash and fault tests only.
    pub io_hook: io_hook::Hook,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            commit_interval: std::time::Duration::from_secs(10),
            fold_interval: std::time::Duration::from_secs(900),
            max_batch: 1024,
            max_pending: 100_000,
            cache_bytes: 8 * 1024 * 1024,
            verify_on_open: true,
            io_hook: io_hook::Hook::default(),
        }
    }
}

/// A cheap, cloneable read handle on the store.
#[derive(Clone)]
pub struct Store {
    db: Db,
    dir: PathBuf,
    stations: Arc<Vec<String>>,
}

/// What `Store::open` did to bring the store back to a consistent state.
#[derive(Debug, Default, Clone)]
pub struct OpenReport {
    pub replayed: usize,
    pub torn_tail: bool,
    pub open_ms: u128,
}

impl Store {
    /// Opens or creates the store in `dir` for `station`, recovering after a crash.
    /// Returns the read handle and the single writer.
    ///
    /// A damaged file (redb's or the journal's) is an error naming the file and what to do;
    /// nothing is repaired away or dropped, and a damaged journal is left exactly as it was.
    pub fn open(dir: &Path, station: &str, opts: StoreOptions) -> anyhow::Result<(Store, StoreWriter, OpenReport)> {
        let started = Instant::now();
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create the store directory {}", dir.display()))?;
        let db_path = dir.join(DB_FILE);
        let journal_path = dir.join(JOURNAL_FILE);
        // The journal's lock first: while another process (the daemon) holds it, nothing here may
        // read redb or replay or reset the journal, not even while that process reopens redb.
        let locked = Journal::lock(&journal_path).map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock => StoreInUse(db_path.clone()).into(),
            _ => journal_error(&journal_path, e),
        })?;
        // The journal is checked before anything is opened or written: it is the only copy of the
        // records collected since the last fold.
        let journal_state = locked.inspect().map_err(|e| journal_error(&journal_path, e))?;
        let db_was_empty = std::fs::metadata(&db_path).map_or(true, |m| m.len() == 0);
        if db_was_empty && journal_state.in_use {
            bail!(
                "the store {} is empty or missing, but its journal {} has been in use: the store's history is gone. \
                 Stop here: restore {DB_FILE} from a copy if there is one; to start a new, empty store instead, move \
                 both files aside (nothing is deleted automatically)",
                db_path.display(),
                journal_path.display()
            );
        }
        let db = if db_was_empty {
            create_db(dir, station, &opts)
        } else {
            // A file that existed before is checked page by page (redb trusts a file it closed
            // cleanly, and a card can damage it since).
            remove_leftover(&staging_db_path(dir));
            open_db(&db_path, opts.cache_bytes, opts.verify_on_open, &opts.io_hook)
        }
        .inspect_err(|_| {
            // A refused start leaves no journal it began to create.
            let _ = locked.remove_if_created();
        })?;
        if !journal_state.in_use && !log_is_empty(&db)? {
            let what = if journal_state.exists { "is empty" } else { "is missing" };
            let _ = locked.remove_if_created();
            bail!(
                "the journal {} {what}, but the store {} holds records: the records collected since the last fold \
                 are gone from it. Restore {JOURNAL_FILE} from a copy if there is one; to start without it, move \
                 {JOURNAL_FILE} aside (nothing is deleted automatically)",
                journal_path.display(),
                db_path.display()
            );
        }
        let recovered = Journal::open_locked(locked, journal::WriteMode::Auto, opts.io_hook.clone())
            .map_err(|e| journal_error(&journal_path, e))?;
        let stations = init_meta(&db, station)?;
        let station_idx = stations.iter().position(|s| s == station).expect("init_meta interns it") as u16;
        let mut journal = recovered.journal;
        if recovered.torn_tail {
            tracing::warn!(
                "the journal ended in a partly written batch (an interrupted commit); it was never acknowledged and is ignored"
            );
        }
        let replayed = replay(&db, &recovered.entries).map_err(|e| replay_error(&journal_path, e))?;
        // Fold: make the replayed records durable in redb, then start a fresh journal epoch.
        durable_commit(&db)?;
        journal.reset().context("cannot reset the journal")?;

        let store = Store { db: Db::new(db), dir: dir.to_owned(), stations: Arc::new(stations) };
        let writer = StoreWriter::new(store.clone(), journal, station_idx, opts)?;
        let report = OpenReport { replayed, torn_tail: recovered.torn_tail, open_ms: started.elapsed().as_millis() };
        Ok((store, writer, report))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn station_name(&self, idx: u16) -> String {
        self.stations.get(usize::from(idx)).cloned().unwrap_or_else(|| format!("station-{idx}"))
    }
}

/// Turns readahead off for `file` (a hint: failure changes nothing but cost).
pub(crate) fn advise_random(file: &std::fs::File) {
    advise(file, libc::POSIX_FADV_RANDOM);
}

/// Drops `file`'s clean pages from the page cache once a whole-file read is done with them, so
/// that later 4 KB writes do not land in the large folios such a read leaves (a hint, as above).
pub(crate) fn drop_from_page_cache(file: &std::fs::File) {
    advise(file, libc::POSIX_FADV_DONTNEED);
}

fn advise(file: &std::fs::File, advice: libc::c_int) {
    use std::os::fd::AsRawFd;
    // SAFETY: posix_fadvise only reads its integer arguments; the fd is open for this call.
    unsafe {
        libc::posix_fadvise(file.as_raw_fd(), 0, 0, advice);
    }
}

/// Opens redb's existing file (see `open_guarded`). If redb refuses it and the side file
/// `outpost.redb.hdr` holds a different, valid super-header, that is the header a torn write
/// destroyed: it is written back and the file opened again (`header_guard` argues why that is
/// safe). A restore that does not help is undone, and the first refusal returned.
fn open_db(db_path: &Path, cache_bytes: usize, check: bool, hook: &io_hook::Hook) -> anyhow::Result<Database> {
    let side = db_path.with_file_name(HEADER_FILE);
    let refusal = match open_guarded(db_path, &side, cache_bytes, check, hook) {
        Ok(db) => return Ok(db),
        Err(DbOpenError::Refused(e)) => e,
        Err(DbOpenError::Other(e)) => return Err(e),
    };
    match header_guard::restore(db_path, &side, hook) {
        Ok(header_guard::Restored::Header { undo }) => {
            tracing::warn!(
                path = %db_path.display(),
                refused = %format!("{refusal:#}"),
                "the store's header was torn by an interrupted write; restored it from {HEADER_FILE}"
            );
            match open_guarded(db_path, &side, cache_bytes, check, hook) {
                Ok(db) => Ok(db),
                Err(_) => {
                    // Not a torn header after all: leave the file exactly as it was found.
                    if let Err(e) = header_guard::undo(db_path, &undo, hook) {
                        tracing::error!(error = %e, "cannot put the store's header back as it was");
                    }
                    Err(refusal)
                }
            }
        }
        Ok(header_guard::Restored::Nothing) => Err(refusal),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or restore the store's header from {HEADER_FILE}");
            Err(refusal)
        }
    }
}

/// Creates a new store's redb file completely under a temporary name (`outpost.redb.new`: the
/// tables, the station, one durable commit), then renames it into place and syncs the
/// directory: a crash leaves either no redb file or a complete, empty one. A leftover of an
/// interrupted creation is removed first.
fn create_db(dir: &Path, station: &str, opts: &StoreOptions) -> anyhow::Result<Database> {
    let staging = staging_db_path(dir);
    let db_path = dir.join(DB_FILE);
    remove_leftover(&staging);
    let created = (|| {
        let db = open_guarded(&staging, &header_guard::side_path(dir), opts.cache_bytes, false, &opts.io_hook)
            .map_err(DbOpenError::into_inner)?;
        init_meta(&db, station)?;
        durable_commit(&db)?;
        opts.io_hook
            .run(io_hook::StoreFile::Db, io_hook::Op::Rename, || {
                std::fs::rename(&staging, &db_path)?;
                journal::sync_dir(&db_path)
            })
            .with_context(|| format!("cannot create the store {}", db_path.display()))?;
        anyhow::Ok(db)
    })();
    if created.is_err() {
        let _ = std::fs::remove_file(&staging);
    }
    created
}

fn staging_db_path(dir: &Path) -> PathBuf {
    journal::staging_path(&dir.join(DB_FILE))
}

/// Removes what an interrupted store creation left under `path` (never acknowledged data).
fn remove_leftover(path: &Path) {
    if path.exists() {
        tracing::info!(path = %path.display(), "removing what an interrupted store creation left (it holds nothing acknowledged)");
        if let Err(e) = std::fs::remove_file(path) {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove it");
        }
    }
}

/// Why redb's file did not open: redb refused it (or panicked over it), or anything else.
enum DbOpenError {
    Refused(anyhow::Error),
    Other(anyhow::Error),
}

impl DbOpenError {
    fn into_inner(self) -> anyhow::Error {
        match self {
            DbOpenError::Refused(e) | DbOpenError::Other(e) => e,
        }
    }
}

/// Opens (or creates) redb's file through `GuardedBackend` (its super-header doubled in
/// `side`). Our own handle with readahead off: redb reads single pages, and readahead would fill
/// the page cache with large folios that turn each 4 KB page write into a much larger one. With
/// `check`, redb verifies the checksum of every page first: an SD card can damage a page of a
/// file redb closed cleanly, and nothing else would notice until a query returned garbage. That
/// reads the whole file, so it is read once sequentially first (see BENCHMARKS.md for the cost).
/// A damaged file is an error that names it, never a panic: a panic in redb over a damaged file
/// is caught and reported as such.
fn open_guarded(
    db_path: &Path,
    side: &Path,
    cache_bytes: usize,
    check: bool,
    hook: &io_hook::Hook,
) -> Result<Database, DbOpenError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(db_path)
        .with_context(|| format!("cannot open the store {}", db_path.display()))
        .map_err(DbOpenError::Other)?;
    advise_random(&file);
    // Takes redb's lock on the file: a store held by another process is refused before it is read.
    let backend = redb::backends::FileBackend::new(file).map_err(|e| DbOpenError::Other(open_error(db_path, e)))?;
    let backend = header_guard::GuardedBackend::new(backend, side, hook.clone())
        .with_context(|| format!("cannot open {}", side.display()))
        .map_err(DbOpenError::Other)?;
    let checking = check.then(|| (Instant::now(), prefetch(db_path)));
    if let Some((_, bytes)) = checking {
        tracing::info!(mb = bytes / 1_000_000, "verifying every page of the store");
    }
    // The hook is only a test's recorder; nothing of it is used after a panic.
    let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut builder = Database::builder();
        builder
            .set_cache_size(cache_bytes)
            .set_check_integrity_on_open(check)
            // Called for the page check as well as for a repair, so it cannot say which.
            .set_repair_callback(|s| tracing::debug!(progress = s.progress(), "checking the store"));
        builder.create_with_backend(backend)
    }));
    let db = match opened {
        Ok(Ok(db)) => db,
        Ok(Err(redb::DatabaseError::DatabaseAlreadyOpen)) => {
            return Err(DbOpenError::Other(StoreInUse(db_path.to_owned()).into()));
        }
        Ok(Err(e)) => return Err(DbOpenError::Refused(open_error(db_path, e))),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            return Err(DbOpenError::Refused(damaged_db(db_path, &format!("it cannot be read ({what})"))));
        }
    };
    if let Some((started, _)) = checking {
        if let Ok(file) = std::fs::File::open(db_path) {
            drop_from_page_cache(&file);
        }
        tracing::info!(ms = started.elapsed().as_millis() as u64, "the store's pages are intact");
    }
    Ok(db)
}

/// Reads `path` once, sequentially with readahead, into the page cache, so that the page check
/// that follows costs one streaming read instead of one random 4 KB read per page (5x faster
/// cold). Best effort: returns the bytes read.
fn prefetch(path: &Path) -> u64 {
    use std::io::Read;
    let Ok(mut file) = std::fs::File::open(path) else { return 0 };
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    while let Ok(n @ 1..) = file.read(&mut buf) {
        total += n as u64;
    }
    total
}

fn damaged_db(db_path: &Path, what: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "the store {} is damaged: {what}. Outpost does not start over a damaged store. Stop here and keep a copy \
         of the store directory; restore {DB_FILE} from a copy if there is one, or move {DB_FILE} and {JOURNAL_FILE} \
         aside to start a new, empty store (nothing is deleted automatically)",
        db_path.display()
    )
}

/// Journal errors at start: damage gets the full explanation, anything else its context.
fn journal_error(path: &Path, e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::InvalidData {
        anyhow::anyhow!(
            "the journal {} is damaged: {e}. It holds the records collected since the store was last folded \
             (at most store.fold_interval_s), so Outpost does not start over it. Stop here and keep a copy of the \
             store directory; restore {JOURNAL_FILE} from a copy if there is one, or move {JOURNAL_FILE} aside to \
             start without it, losing only those records (nothing is deleted automatically)",
            path.display()
        )
    } else {
        anyhow::Error::new(e).context(format!("cannot open the journal {}", path.display()))
    }
}

fn replay_error(path: &Path, e: anyhow::Error) -> anyhow::Error {
    anyhow::anyhow!(
        "the journal {} does not fit the store: {e:#}. Outpost does not guess. Stop here and keep a copy of the \
         store directory; restore both files from one copy if there is one, or move {JOURNAL_FILE} aside to start \
         without the journal, losing the records only it holds (nothing is deleted automatically)",
        path.display()
    )
}

fn log_is_empty(db: &Database) -> anyhow::Result<bool> {
    use redb::ReadableDatabase;
    let txn = db.begin_read()?;
    match txn.open_table(LOG) {
        Ok(log) => Ok(log.first()?.is_none()),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(true),
        Err(e) => Err(e.into()),
    }
}

/// The redb database behind a lock, so that the writer can replace it: after an I/O error (a
/// full disk failing a durable commit) redb refuses every later operation until the file is
/// reopened (`StoreWriter` does that). Readers take the current handle for one transaction.
#[derive(Clone)]
pub(crate) struct Db(Arc<std::sync::RwLock<Option<Arc<Database>>>>);

impl Db {
    fn new(db: Database) -> Db {
        Db(Arc::new(std::sync::RwLock::new(Some(Arc::new(db)))))
    }

    /// The current database, or an error while the writer is reopening it.
    fn get(&self) -> Result<Arc<Database>, redb::StorageError> {
        let slot = self.0.read().unwrap_or_else(|e| e.into_inner());
        slot.clone().ok_or_else(|| {
            redb::StorageError::Io(std::io::Error::other("the store is being reopened after a write error"))
        })
    }

    pub(crate) fn begin_read(&self) -> Result<redb::ReadTransaction, redb::TransactionError> {
        use redb::ReadableDatabase;
        self.get()?.begin_read()
    }

    fn begin_write(&self) -> Result<redb::WriteTransaction, redb::TransactionError> {
        self.get()?.begin_write()
    }

    /// Takes the database out (readers get an error until `put`).
    fn take(&self) -> Option<Arc<Database>> {
        self.0.write().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn put(&self, db: Database) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(db));
    }
}

/// The store is locked by another process (normally a running `outpost run`).
#[derive(Debug, thiserror::Error)]
#[error("the store {} is in use by another Outpost process (is `outpost run` already running?)", .0.display())]
pub struct StoreInUse(pub PathBuf);

fn open_error(path: &Path, e: redb::DatabaseError) -> anyhow::Error {
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreInUse(path.to_owned()).into(),
        other => damaged_db(path, &other.to_string()),
    }
}

/// Checks the store format and interns `station`; returns the station table.
/// Not durable by itself: `Store::open` (and `create_db`) follow it with `durable_commit`, whose
/// 2-phase commit `header_guard` relies on.
fn init_meta(db: &Database, station: &str) -> anyhow::Result<Vec<String>> {
    upgrade::to_current_format(db)?;
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::None)?;
    let stations = {
        let mut meta = txn.open_table(META)?;
        let format = meta.get("store_format")?.map(|v| v.value().to_owned());
        match format {
            None => {
                meta.insert("store_format", STORE_FORMAT)?;
            }
            Some(v) if v == STORE_FORMAT => {}
            Some(v) => bail!(
                "the store was written in format {v}; this Outpost reads format {STORE_FORMAT}. Use a newer Outpost"
            ),
        }
        let stored = meta.get("stations")?.map(|v| v.value().to_owned());
        let mut stations: Vec<String> = match stored {
            Some(v) => serde_json::from_str(&v).context("the store's station table is corrupt")?,
            None => Vec::new(),
        };
        if !stations.iter().any(|s| s == station) {
            if stations.len() >= usize::from(u16::MAX) {
                bail!("too many station ids in one store");
            }
            stations.push(station.to_owned());
            meta.insert("stations", serde_json::to_string(&stations)?.as_str())?;
        }
        // Create every table so readers never meet a missing one.
        txn.open_table(LOG)?;
        txn.open_table(ISS_TRACK)?;
        txn.open_table(ISS_TRACK_COARSE)?;
        txn.open_table(TLE_BY_EPOCH)?;
        txn.open_table(WARNINGS)?;
        txn.open_table(ALERTS)?;
        txn.open_table(DEAD_LETTERS)?;
        txn.open_table(WEATHER)?;
        txn.open_table(DANGER_ALERTS)?;
        txn.open_table(CURSORS)?;
        txn.open_table(COUNTERS)?;
        stations
    };
    txn.commit()?;
    Ok(stations)
}

/// The index row a record gets; also its identity for duplicate detection.
enum IndexKey {
    Position { time_ms: i64, lat_e6: i32, lon_e6: i32 },
    Tle { epoch_ms: i64 },
    Warning { key: (i32, u32, i64, u64) },
    Alert { key: (u8, i64) },
    DeadLetter { sink: String, seq: u64 },
    Weather { key: (i32, u32, i64, u64) },
    DangerAlert { key: (i32, u32, u8, u8) },
}

fn index_key(record: &Record) -> IndexKey {
    match record {
        Record::IssPosition(p) => IndexKey::Position {
            time_ms: p.time.timestamp_millis(),
            lat_e6: to_e6(p.latitude),
            lon_e6: to_e6(p.longitude),
        },
        Record::Tle(t) => IndexKey::Tle { epoch_ms: t.epoch.timestamp_millis() },
        Record::AvalancheWarning(w) => IndexKey::Warning {
            key: (date_key(w.valid_date), w.region_id, w.publish_time.timestamp_millis(), w.reg_id),
        },
        Record::AlertEmail(a) => IndexKey::Alert {
            key: (crate::domain::AlertEmail::index_tag(a.alert, a.channel), a.pass_rise.timestamp_millis()),
        },
        Record::DeadLetter(d) => IndexKey::DeadLetter { sink: d.sink.clone(), seq: d.seq },
        Record::WeatherDaily(w) => IndexKey::Weather {
            key: (date_key(w.date), w.region_id, w.fetched_at.timestamp_millis(), w.content_hash()),
        },
        Record::DangerAlert(a) => {
            IndexKey::DangerAlert { key: (date_key(a.valid_date), a.region_id, a.level, a.channel.tag()) }
        }
    }
}

pub(crate) fn date_key(d: NaiveDate) -> i32 {
    use chrono::Datelike;
    d.num_days_from_ce()
}

pub(crate) fn key_date(k: i32) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(k)
}

/// The open tables of one write transaction; `apply` is the single path records take into redb,
/// used both by live commits and by journal replay.
struct Tables<'t> {
    log: redb::Table<'t, u64, &'static [u8]>,
    track: redb::Table<'t, u64, (i64, i32, i32, u64)>,
    track_coarse: redb::Table<'t, u64, (i64, i32, i32, u64)>,
    tle: redb::Table<'t, i64, u64>,
    warnings: redb::Table<'t, (i32, u32, i64, u64), u64>,
    alerts: redb::Table<'t, (u8, i64), u64>,
    dead_letters: redb::Table<'t, (&'static str, u64), u64>,
    weather: redb::Table<'t, (i32, u32, i64, u64), u64>,
    danger_alerts: redb::Table<'t, (i32, u32, u8, u8), u64>,
    cursors: redb::Table<'t, &'static str, u64>,
}

impl<'t> Tables<'t> {
    fn open(txn: &'t redb::WriteTransaction) -> Result<Self, redb::TableError> {
        Ok(Tables {
            log: txn.open_table(LOG)?,
            track: txn.open_table(ISS_TRACK)?,
            track_coarse: txn.open_table(ISS_TRACK_COARSE)?,
            tle: txn.open_table(TLE_BY_EPOCH)?,
            warnings: txn.open_table(WARNINGS)?,
            alerts: txn.open_table(ALERTS)?,
            dead_letters: txn.open_table(DEAD_LETTERS)?,
            weather: txn.open_table(WEATHER)?,
            danger_alerts: txn.open_table(DANGER_ALERTS)?,
            cursors: txn.open_table(CURSORS)?,
        })
    }

    fn next_seq(&self) -> Result<u64, redb::StorageError> {
        Ok(self.log.last()?.map_or(1, |(k, _)| k.value() + 1))
    }

    /// True if the record is already stored (or, for positions, not after the newest one).
    fn is_duplicate(&self, key: &IndexKey) -> Result<bool, redb::StorageError> {
        Ok(match key {
            IndexKey::Position { time_ms, .. } => self.track.last()?.is_some_and(|(_, v)| v.value().0 >= *time_ms),
            IndexKey::Tle { epoch_ms } => self.tle.get(epoch_ms)?.is_some(),
            IndexKey::Warning { key } => self.warnings.get(key)?.is_some(),
            IndexKey::Alert { key } => self.alerts.get(key)?.is_some(),
            IndexKey::DeadLetter { sink, seq } => self.dead_letters.get((sink.as_str(), *seq))?.is_some(),
            // A version is new only if it differs from the newest one stored for its (date, region).
            &IndexKey::Weather { key: (date, region, _, hash) } => self
                .weather
                .range((date, region, i64::MIN, 0)..=(date, region, i64::MAX, u64::MAX))?
                .next_back()
                .transpose()?
                .is_some_and(|(k, _)| k.value().3 == hash),
            IndexKey::DangerAlert { key } => self.danger_alerts.get(key)?.is_some(),
        })
    }

    fn insert(&mut self, seq: u64, key: &IndexKey, bytes: &[u8]) -> Result<(), redb::StorageError> {
        self.log.insert(seq, bytes)?;
        match key {
            &IndexKey::Position { time_ms, lat_e6, lon_e6 } => {
                let ordinal = self.track.last()?.map_or(0, |(k, _)| k.value() + 1);
                self.track.insert(ordinal, (time_ms, lat_e6, lon_e6, seq))?;
                if ordinal.is_multiple_of(COARSE_STRIDE) {
                    self.track_coarse.insert(ordinal / COARSE_STRIDE, (time_ms, lat_e6, lon_e6, seq))?;
                }
            }
            IndexKey::Tle { epoch_ms } => {
                self.tle.insert(epoch_ms, seq)?;
            }
            IndexKey::Warning { key } => {
                self.warnings.insert(key, seq)?;
            }
            IndexKey::Alert { key } => {
                self.alerts.insert(key, seq)?;
            }
            IndexKey::DeadLetter { sink, seq: refused } => {
                self.dead_letters.insert((sink.as_str(), *refused), seq)?;
            }
            IndexKey::Weather { key } => {
                self.weather.insert(key, seq)?;
            }
            IndexKey::DangerAlert { key } => {
                self.danger_alerts.insert(key, seq)?;
            }
        }
        Ok(())
    }
}

/// Applies journal entries that redb does not have yet. Returns how many records were applied.
fn replay(db: &Database, entries: &[Entry]) -> anyhow::Result<usize> {
    if entries.is_empty() {
        return Ok(0);
    }
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::None)?;
    let mut applied = 0;
    {
        let mut t = Tables::open(&txn)?;
        let mut counters = txn.open_table(COUNTERS)?;
        let mut next = t.next_seq()?;
        for entry in entries {
            match entry {
                Entry::Record { seq, bytes } if *seq == next => {
                    let (_, record) = codec::decode(bytes).context("a journaled record does not decode")?;
                    t.insert(*seq, &index_key(&record), bytes)?;
                    next += 1;
                    applied += 1;
                }
                Entry::Record { seq, .. } if *seq < next => {} // already durable in redb
                Entry::Record { seq, .. } => bail!(
                    "the journal skips from seq {} to {seq}: refusing to guess; the store needs attention",
                    next - 1
                ),
                Entry::Cursor { name, seq } => {
                    // The journal holds every change in order, so the last one wins. Sink
                    // cursors only move forward; marks (a source's last attempt) may move back
                    // when a wrong clock is corrected.
                    t.cursors.insert(name.as_str(), *seq)?;
                }
                // An absolute value: replaying it twice changes nothing; the last one wins.
                Entry::Counter { name, value } => {
                    counters.insert(name.as_str(), *value)?;
                }
            }
        }
    }
    txn.commit()?;
    if applied > 0 {
        tracing::info!(records = applied, "replayed records from the journal");
    }
    Ok(applied)
}

/// Makes every earlier non-durable commit durable (an empty commit with `Durability::Immediate`).
fn durable_commit(db: &Database) -> anyhow::Result<()> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    txn.set_quick_repair(true);
    txn.commit().context("durable commit of the store failed")?;
    Ok(())
}

/// Reads a counter (e.g. "stored.iss.position") without a store handle's writer.
fn counter(txn: &redb::ReadTransaction, name: &str) -> anyhow::Result<u64> {
    Ok(txn.open_table(COUNTERS)?.get(name)?.map_or(0, |v| v.value()))
}

#[cfg(test)]
mod crash_states;
#[cfg(test)]
mod faults;
#[cfg(test)]
mod tests;
