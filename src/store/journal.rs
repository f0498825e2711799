//! The write-ahead journal: small, checksummed, fsynced appends between redb folds.
//!
//! Why it exists: a durable redb commit writes ~40-65 KB (copy-on-write pages, quick-repair
//! state), so committing every 10 s would write hundreds of MB a day to an SD card. Appending the
//! same records here and `fdatasync`ing costs one sector per commit; redb is made durable only
//! every few minutes (a "fold"), and on start the journal replays whatever redb had not yet
//! persisted.
//!
//! File layout (`outpost.wal`, version 3):
//! ```text
//! [0..24)        header slot A  \  magic "OUTPOSTJ" | version u32 | epoch u64 | crc32 u32
//! [4096..4120)   header slot B  /  the valid slot with the higher epoch is current
//! [8192..)       frames, each at a 512-byte boundary and zero-padded to the write granularity
//!                (the sector, 512 or 4096, in direct mode; a 4096-byte page buffered):
//!                len u32 | crc32(epoch | len | payload) u32 | epoch u64 | payload
//! payload:       count u32, then entries: tag u8 (1 = record)  | seq u64   | len u32 | bytes
//!                                          tag u8 (2 = cursor)  | seq u64   | len u16 | name
//!                                          tag u8 (3 = counter) | value u64 | len u16 | name
//! ```
//! Version 2 (the previous release: frames back to back, no epoch field) is still read, once:
//! `Store::open` replays it, folds and resets, and the reset writes a version-3 header.
//!
//! Invariants:
//! - Bytes before the tail are never changed: every frame starts on a sector no acknowledged
//!   frame touches, so a torn (or garbled, non-atomic) sector write can only damage the frame
//!   being appended, which its CRC rejects.
//! - The epoch is part of every frame's CRC. `reset` (after a durable fold) bumps the epoch in the
//!   *other* header slot, which invalidates every older frame without rewriting them; a torn
//!   header write leaves the previous slot valid.
//! - Replay reads frames in order; after a frame ending at `e` the next one is at `e` rounded up
//!   to 512, or else (a frame written with 4 KB granularity) up to 4096. It stops at the first
//!   position holding no valid frame of the current epoch: the end of the log as of the crash.
//!   Only a frame that carries the current epoch there is a torn append; anything else is a stale
//!   frame of an older epoch (normal after a reset). A valid frame of the current epoch further on
//!   means a frame in the middle was damaged: that is refused, never skipped.
//! - After any write or fsync error, the tail, epoch and slot are re-derived from the file (page
//!   cache dropped, read through a fresh handle), never from what memory assumed: after a failed
//!   fsync the page cache no longer says what the device holds (PostgreSQL's "fsyncgate"). A
//!   frame whose fsync failed but that is valid on disk stays, and the next frame goes after it;
//!   the writer retries the same batch with the same seqs, and replay skips seqs it already has.
//! - The journal holds an exclusive `flock` on its file for its lifetime: no other process (an
//!   `outpost export` while the daemon reopens redb) can replay or reset it.
//! - A journal is never created in place: a new one is zero-filled and given its first header
//!   as `outpost.wal.new`, synced, and only then renamed to `outpost.wal` (the directory synced),
//!   so a file named `outpost.wal` always has a header. The lock is taken on the new file before
//!   anything is written, and follows it through the rename.
//!
//! Write cost: appends use O_DIRECT, one logical sector (512 B on SD cards) per commit. Through the
//! page cache each fsync would write at least a 4 KB page, and on kernels whose page cache uses
//! large folios (ext4 on Linux 6.1x) a whole folio: measured 256 KB per 46-byte append here. Where
//! O_DIRECT is refused (tmpfs, some filesystems) it falls back to buffered writes with readahead
//! off. The file is zero-filled once to `PREALLOCATED` so appends overwrite allocated blocks and
//! `fdatasync` has no metadata to journal.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::io_hook::{Hook, Op, StoreFile};

const MAGIC: &[u8; 8] = b"OUTPOSTJ";
/// Version 3: every frame on a fresh sector, with its epoch in the frame header.
const VERSION: u32 = 3;
/// The previous release's format (frames back to back): replayed once, then reset to `VERSION`.
const LEGACY_VERSION: u32 = 2;
const SLOT_STRIDE: u64 = 4096;
const FRAMES_START: u64 = 8192;
const PREALLOCATED: u64 = 256 * 1024;
/// Frames start at multiples of this (the smallest direct-I/O sector).
const SECTOR: u64 = 512;
/// The write granularity of buffered appends and of 4 KB-sector devices.
const PAGE: u64 = 4096;
const FRAME_HEAD: u64 = 16;
const LEGACY_FRAME_HEAD: u64 = 8;
const TAG_RECORD: u8 = 1;
const TAG_CURSOR: u8 = 2;
const TAG_COUNTER: u8 = 3;
/// A frame longer than this is certainly garbage (a week's backlog of warnings is a few MB).
const MAX_FRAME: u32 = 256 * 1024 * 1024;
/// Memory alignment of direct-I/O buffers (a page satisfies every device).
const BUF_ALIGN: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Record {
        seq: u64,
        bytes: Vec<u8>,
    },
    Cursor {
        name: String,
        seq: u64,
    },
    /// A persisted counter's absolute value after the change (replay: the last value wins).
    Counter {
        name: String,
        value: u64,
    },
}

pub struct Journal {
    path: PathBuf,
    /// The buffered handle the journal's `flock` is held on, for its whole lifetime; buffered
    /// appends go through it too.
    locked: File,
    /// The O_DIRECT handle appends go through, when the filesystem allows it.
    direct: Option<File>,
    /// Direct-I/O write granularity in bytes (512 or 4096); `Some` iff `direct` is.
    sector: Option<u64>,
    epoch: u64,
    /// Which header slot holds `epoch` (0 or 1).
    slot: u64,
    /// The current epoch is in the version-2 format: it is read, never appended to.
    legacy: bool,
    /// Where the frames of the current epoch end (512-aligned): the next frame goes at or after.
    tail: u64,
    /// False after a reset whose fsync failed although its header reads back: it is rewritten and
    /// synced before anything is appended under it.
    header_synced: bool,
    /// Re-deriving the state from the file failed after an error: retried before the next write.
    stale: bool,
    /// Every write and sync of the file passes through it (crash and fault tests).
    hook: Hook,
}

/// The journal file opened and exclusively locked, not read yet (`Journal::lock`).
pub struct Locked {
    file: File,
    /// The journal's own name.
    path: PathBuf,
    /// The journal was missing: `file` is the new one being created under this name.
    staging: Option<PathBuf>,
}

/// Where a missing journal is created before it is renamed into place.
pub(crate) fn staging_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".new");
    PathBuf::from(name)
}

fn flock(file: &File) -> io::Result<()> {
    // SAFETY: flock only reads its integer arguments; the fd is open for this call.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = io::Error::last_os_error();
        return Err(if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            io::Error::new(io::ErrorKind::WouldBlock, "the journal is locked by another process")
        } else {
            e
        });
    }
    Ok(())
}

/// Whether `path` still names the open `file` (same device and inode).
fn same_file(file: &File, path: &Path) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let open = file.metadata()?;
    match std::fs::metadata(path) {
        Ok(named) => Ok(open.dev() == named.dev() && open.ino() == named.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Makes the entries of `path`'s directory durable (a created or renamed name).
pub(crate) fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    File::open(dir)?.sync_all()
}

/// What `Journal::open_locked` found: the journal ready for appends, and the entries to replay.
pub struct Recovered {
    pub journal: Journal,
    pub entries: Vec<Entry>,
    /// The log ended in a partly written frame of its current epoch: a torn append (what a crash
    /// mid-commit leaves). Stale frames of older epochs after the end are not torn.
    pub torn_tail: bool,
}

/// What `Locked::inspect` found.
#[derive(Debug, Clone, Copy)]
pub struct Inspection {
    /// The file was there before the lock (which creates a missing one).
    pub exists: bool,
    /// It has a valid header: it has been in use (a new or empty file has none).
    pub in_use: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    epoch: u64,
    slot: u64,
    legacy: bool,
}

/// The current header, or `None` for a new file (all zeros). Damage is an error: data without a
/// readable header, or a file shorter than its preallocated length.
fn check_header(file: &File, len: u64) -> io::Result<Option<Header>> {
    let current = match (read_slot(file, 0)?, read_slot(file, 1)?) {
        (Some(a), Some(b)) if b.0 > a.0 => Some((b, 1)),
        (Some(a), _) => Some((a, 0)),
        (None, Some(b)) => Some((b, 1)),
        (None, None) => None,
    };
    match current {
        None if !all_zero(file, len)? => {
            Err(damaged("neither of its two headers is readable, yet it holds data".into()))
        }
        Some(_) if len < PREALLOCATED => Err(damaged(format!(
            "it is {len} bytes long, shorter than the {PREALLOCATED} bytes it always has: it was truncated"
        ))),
        None => Ok(None),
        Some(((epoch, version), slot)) => Ok(Some(Header { epoch, slot, legacy: version == LEGACY_VERSION })),
    }
}

/// The journal cannot be trusted: replaying it would silently drop records it holds. Returned as
/// an `io::Error` of kind `InvalidData` whose message says what is wrong.
fn damaged(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// True when the first `len` bytes of `file` are all zero (a journal created but never written).
fn all_zero(file: &File, len: u64) -> io::Result<bool> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut at = 0;
    while at < len {
        let n = buf.len().min((len - at) as usize);
        file.read_exact_at(&mut buf[..n], at)?;
        if buf[..n].iter().any(|b| *b != 0) {
            return Ok(false);
        }
        at += n as u64;
    }
    Ok(true)
}

fn align_up(at: u64, to: u64) -> u64 {
    at.div_ceil(to) * to
}

/// How appends reach the disk; `Auto` tries direct I/O first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    Auto,
    /// Only tests force it; production uses it when the filesystem refuses O_DIRECT.
    #[cfg(test)]
    Buffered,
}

impl Journal {
    /// Opens the journal file and takes its exclusive lock. Another holder (a running daemon) is
    /// an error of kind `WouldBlock`; nothing is read or written before the lock is held.
    ///
    /// A missing journal is never created in place (a crash could leave a half-initialised file
    /// under the journal's name): the lock is taken on `<path>.new` instead, created if missing
    /// (a leftover of an interrupted creation holds nothing acknowledged and is reused), and
    /// `open_locked` renames it into place once it is complete. The lock follows the file through
    /// the rename. After locking, the name is checked to still be that file (another process may
    /// have renamed or removed it meanwhile); if not, it starts over.
    pub fn lock(path: &Path) -> io::Result<Locked> {
        let staging = staging_path(path);
        loop {
            match OpenOptions::new().read(true).write(true).open(path) {
                Ok(file) => {
                    flock(&file)?;
                    if same_file(&file, path)? {
                        return Ok(Locked { file, path: path.to_owned(), staging: None });
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    let created = !staging.exists();
                    let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&staging)?;
                    flock(&file)?;
                    if !same_file(&file, &staging)? {
                        continue;
                    }
                    if path.exists() {
                        // Another process put its new journal in place meanwhile: use that one.
                        std::fs::remove_file(&staging)?;
                        continue;
                    }
                    if created {
                        sync_dir(path)?;
                    }
                    return Ok(Locked { file, path: path.to_owned(), staging: Some(staging) });
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Locks, opens (or creates) the journal and reads back every valid frame of its epoch.
    #[cfg(test)]
    pub fn open(path: &Path) -> io::Result<Recovered> {
        Self::open_with(path, WriteMode::Auto)
    }

    #[cfg(test)]
    pub fn open_with(path: &Path, mode: WriteMode) -> io::Result<Recovered> {
        Self::open_locked(Self::lock(path)?, mode, Hook::default())
    }

    /// Opens the locked journal for appends, every write and sync of the file passed through
    /// `hook`, and reads back every valid frame of the current epoch.
    ///
    /// A journal being created (`Journal::lock` found none) is initialised under its creation
    /// name, synced, and only then renamed into place (and the directory synced): a crash leaves
    /// either no journal or a complete one.
    pub fn open_locked(locked: Locked, mode: WriteMode, hook: Hook) -> io::Result<Recovered> {
        let Locked { file: buffered, path, staging } = locked;
        // Setup and recovery go through the page cache with readahead off; appends then use a
        // direct-I/O handle when the filesystem allows it.
        super::advise_random(&buffered);
        let mut len = buffered.metadata()?.len();
        if let Some(staging) = &staging
            && len > 0
        {
            tracing::info!(
                path = %staging.display(),
                "removing the journal an interrupted store creation left (it holds nothing acknowledged)"
            );
            hook.run(StoreFile::Journal, Op::SetLen(0), || buffered.set_len(0))?;
            len = 0;
        }
        // Damage is refused before anything is written: the caller reports it and stops.
        let current = check_header(&buffered, len)?;
        if len < PREALLOCATED {
            // Zero-fill once, a page at a time (one large write would create one large folio).
            let zeros = [0u8; PAGE as usize];
            let mut at = len;
            while at < PREALLOCATED {
                let data = &zeros[..(PAGE - at % PAGE) as usize];
                hook.run(StoreFile::Journal, Op::Write { offset: at, data }, || buffered.write_all_at(data, at))?;
                at += PAGE - at % PAGE;
            }
            hook.run(StoreFile::Journal, Op::Sync, || buffered.sync_all())?;
        }
        let header = current.unwrap_or(Header { epoch: 0, slot: 1, legacy: false });
        let mut journal = Journal {
            path: staging.clone().unwrap_or_else(|| path.clone()),
            locked: buffered,
            direct: None,
            sector: None,
            epoch: header.epoch,
            slot: header.slot,
            legacy: header.legacy,
            tail: FRAMES_START,
            header_synced: true,
            stale: false,
            hook,
        };
        let (entries, torn_tail) = if journal.epoch == 0 {
            // A new file (all zeros: checked above).
            (Vec::new(), false)
        } else {
            let scan = scan(&journal.locked, journal.epoch, journal.legacy)?;
            journal.tail = scan.tail;
            (scan.entries, scan.torn)
        };
        if mode == WriteMode::Auto
            && let Some((direct, sector)) = open_direct(&journal.path)
        {
            // Drop what recovery cached, so no stale page can shadow direct writes.
            super::drop_from_page_cache(&journal.locked);
            journal.direct = Some(direct);
            journal.sector = Some(sector);
        }
        if journal.epoch == 0 {
            journal.reset()?;
        }
        if let Some(staging) = staging {
            // Complete and synced (the reset synced its header): now it may take the name.
            journal.hook.run(StoreFile::Journal, Op::Rename, || {
                std::fs::rename(&staging, &path)?;
                sync_dir(&path)
            })?;
            journal.path = path;
        }
        Ok(Recovered { journal, entries, torn_tail })
    }

    /// Every entry of the current epoch, read back from the file (to rebuild redb's state after
    /// it was reopened).
    pub fn entries(&self) -> io::Result<Vec<Entry>> {
        // A handle of its own: reads through the direct-I/O handle would need aligned buffers.
        let file = File::open(&self.path)?;
        super::advise_random(&file);
        let entries = scan(&file, self.epoch, self.legacy)?.entries;
        super::drop_from_page_cache(&file);
        Ok(entries)
    }

    /// Whether appends bypass the page cache (for status and benchmarks).
    pub fn is_direct(&self) -> bool {
        self.sector.is_some()
    }

    /// The bytes one small commit writes: the sector (direct) or a page (buffered).
    pub fn write_granularity(&self) -> u64 {
        self.sector.unwrap_or(PAGE)
    }

    /// Bytes of frames since the last reset.
    pub fn used(&self) -> u64 {
        self.tail - FRAMES_START
    }

    /// Appends one frame holding `entries` and makes it durable. On an error nothing in memory
    /// is trusted: the state is re-derived from the file, and a retry of the same entries is safe
    /// (replay skips the seqs it already has).
    pub fn append(&mut self, entries: &[Entry]) -> io::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        if self.stale {
            self.rederive()?;
        }
        if self.legacy {
            return Err(io::Error::other("the journal is in the previous release's format: reset it first"));
        }
        let payload = encode_payload(entries);
        let result =
            if self.header_synced { Ok(()) } else { self.write_header(self.epoch, self.slot) }.and_then(|()| {
                self.header_synced = true;
                self.write_frame(&payload)
            });
        if result.is_err() {
            self.after_error();
        }
        result
    }

    /// Writes one frame at the first free `granularity` boundary at or after the tail (never
    /// before it), zero-padded to whole units, and syncs it.
    fn write_frame(&mut self, payload: &[u8]) -> io::Result<()> {
        let len = payload.len() as u32;
        loop {
            let unit = self.write_granularity();
            let start = align_up(self.tail, unit);
            let size = align_up(FRAME_HEAD + u64::from(len), unit);
            let mut buf = AlignedBuf::zeroed(size as usize);
            let frame = buf.as_mut();
            frame[0..4].copy_from_slice(&len.to_le_bytes());
            frame[4..8].copy_from_slice(&frame_crc(self.epoch, len, payload).to_le_bytes());
            frame[8..16].copy_from_slice(&self.epoch.to_le_bytes());
            frame[16..16 + payload.len()].copy_from_slice(payload);
            match self.write_at(buf.as_ref(), start) {
                Err(e) if self.refuses_small_sectors(&e) => continue,
                other => other?,
            }
            self.sync()?;
            self.tail = start + size;
            return Ok(());
        }
    }

    /// A direct write refused with EINVAL at 512 bytes: the device needs 4 KB sectors. Nothing
    /// was written; the caller retries at 4 KB (at the next 4 KB boundary after the tail).
    fn refuses_small_sectors(&mut self, e: &io::Error) -> bool {
        if e.raw_os_error() == Some(libc::EINVAL) && self.sector == Some(SECTOR) {
            tracing::warn!("the journal's device refuses 512-byte direct writes; using 4096-byte sectors");
            self.sector = Some(PAGE);
            return true;
        }
        false
    }

    /// Every write of the file goes through here (and the hook).
    fn write_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        let file = self.direct.as_ref().unwrap_or(&self.locked);
        self.hook.run(StoreFile::Journal, Op::Write { offset, data }, || file.write_all_at(data, offset))
    }

    fn sync(&self) -> io::Result<()> {
        let file = self.direct.as_ref().unwrap_or(&self.locked);
        self.hook.run(StoreFile::Journal, Op::Sync, || file.sync_data())
    }

    /// Starts a new epoch: every frame written so far becomes invalid. Call only after everything
    /// in the journal is durable elsewhere (a durable redb commit). On an error, memory follows
    /// whichever header the file holds afterwards.
    pub fn reset(&mut self) -> io::Result<()> {
        if self.stale {
            self.rederive()?;
        }
        let (epoch, slot) = (self.epoch + 1, 1 - self.slot);
        match self.write_header(epoch, slot) {
            Ok(()) => {
                self.epoch = epoch;
                self.slot = slot;
                self.legacy = false;
                self.tail = FRAMES_START;
                self.header_synced = true;
                Ok(())
            }
            Err(e) => {
                self.after_error();
                if !self.stale && self.epoch == epoch {
                    // The new header reads back, but its fsync failed: it may not be on the
                    // device. Rewrite and sync it before a frame depends on it.
                    self.header_synced = false;
                }
                Err(e)
            }
        }
    }

    /// Writes header `epoch` into `slot` and syncs it.
    fn write_header(&mut self, epoch: u64, slot: u64) -> io::Result<()> {
        let mut header = Vec::with_capacity(24);
        header.extend(MAGIC);
        header.extend(VERSION.to_le_bytes());
        header.extend(epoch.to_le_bytes());
        let crc = crc32fast::hash(&header);
        header.extend(crc.to_le_bytes());
        loop {
            let mut buf = AlignedBuf::zeroed(self.sector.unwrap_or(header.len() as u64) as usize);
            buf.as_mut()[..header.len()].copy_from_slice(&header);
            match self.write_at(buf.as_ref(), slot * SLOT_STRIDE) {
                Err(e) if self.refuses_small_sectors(&e) => continue,
                other => other?,
            }
            return self.sync();
        }
    }

    /// After a failed write or sync: re-derive the state from the file, or, if even that fails,
    /// remember to before the next write.
    fn after_error(&mut self) {
        if let Err(e) = self.rederive() {
            tracing::warn!(error = %e, "cannot read the journal back after a write error; retrying before the next write");
            self.stale = true;
        }
    }

    /// Re-reads both header slots and the frames through a fresh handle, with the file's pages
    /// dropped from the page cache first (after a failed fsync they may not be what the device
    /// holds), and sets epoch, slot and tail from what is there.
    fn rederive(&mut self) -> io::Result<()> {
        let file = File::open(&self.path)?;
        super::drop_from_page_cache(&file);
        super::advise_random(&file);
        let len = file.metadata()?.len();
        let header = check_header(&file, len)?.ok_or_else(|| damaged("neither of its headers is readable".into()))?;
        let found = scan(&file, header.epoch, header.legacy)?;
        super::drop_from_page_cache(&file);
        if header.epoch == self.epoch && found.tail < self.tail {
            tracing::error!(
                was = self.tail,
                now = found.tail,
                "the journal's device lost frames it had acknowledged as written"
            );
        }
        self.epoch = header.epoch;
        self.slot = header.slot;
        self.legacy = header.legacy;
        self.tail = found.tail;
        self.stale = false;
        Ok(())
    }
}

impl Locked {
    /// Checks the locked journal without writing anything: an error of kind `InvalidData` if it
    /// is damaged (truncated, unreadable headers with data, a bad frame before good ones).
    pub fn inspect(&self) -> io::Result<Inspection> {
        if self.staging.is_some() {
            // A journal being created: whatever a leftover holds was never acknowledged.
            return Ok(Inspection { exists: false, in_use: false });
        }
        let len = self.file.metadata()?.len();
        match check_header(&self.file, len)? {
            None => Ok(Inspection { exists: true, in_use: false }),
            Some(h) => {
                scan(&self.file, h.epoch, h.legacy)?;
                Ok(Inspection { exists: true, in_use: true })
            }
        }
    }

    /// Removes the journal being created, if this is one, so that a refused start leaves no
    /// journal behind (still under the lock).
    pub fn remove_if_created(&self) -> io::Result<()> {
        if let Some(staging) = &self.staging {
            std::fs::remove_file(staging)?;
        }
        Ok(())
    }
}

/// A direct-I/O handle on `path` and its sector size, found with an aligned read (512 first,
/// then 4096: a device with 4 KB logical sectors refuses smaller direct I/O with EINVAL).
fn open_direct(path: &Path) -> Option<(File, u64)> {
    let file = OpenOptions::new().read(true).write(true).custom_flags(libc::O_DIRECT).open(path).ok()?;
    for sector in [SECTOR, PAGE] {
        let mut buf = AlignedBuf::zeroed(sector as usize);
        match file.read_at(buf.as_mut(), 0) {
            Ok(_) => return Some((file, sector)),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => continue,
            Err(_) => return None,
        }
    }
    None
}

/// A zeroed buffer aligned for direct I/O.
struct AlignedBuf {
    backing: Vec<u8>,
    off: usize,
    len: usize,
}

impl AlignedBuf {
    fn zeroed(len: usize) -> AlignedBuf {
        let backing = vec![0u8; len + BUF_ALIGN];
        let off = backing.as_ptr().align_offset(BUF_ALIGN);
        AlignedBuf { backing, off, len }
    }
    fn as_ref(&self) -> &[u8] {
        &self.backing[self.off..self.off + self.len]
    }
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.backing[self.off..self.off + self.len]
    }
}

fn encode_payload(entries: &[Entry]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(64);
    payload.extend((entries.len() as u32).to_le_bytes());
    for entry in entries {
        match entry {
            Entry::Record { seq, bytes } => {
                payload.push(TAG_RECORD);
                payload.extend(seq.to_le_bytes());
                payload.extend((bytes.len() as u32).to_le_bytes());
                payload.extend(bytes);
            }
            Entry::Cursor { name, seq } => {
                payload.push(TAG_CURSOR);
                payload.extend(seq.to_le_bytes());
                payload.extend((name.len() as u16).to_le_bytes());
                payload.extend(name.as_bytes());
            }
            Entry::Counter { name, value } => {
                payload.push(TAG_COUNTER);
                payload.extend(value.to_le_bytes());
                payload.extend((name.len() as u16).to_le_bytes());
                payload.extend(name.as_bytes());
            }
        }
    }
    payload
}

/// The frames of one epoch read back.
struct Scan {
    entries: Vec<Entry>,
    /// Where the next frame may go (the end of the last valid one, rounded up to 512).
    tail: u64,
    torn: bool,
}

/// What one frame position holds.
enum Slot {
    Frame {
        entries: Vec<Entry>,
        end: u64,
    },
    /// Zeros (never written, or padding), or the end of the file.
    Empty,
    /// Not a frame of this epoch: a stale frame of an older one (or the middle of one).
    Foreign,
    /// A frame of this epoch that is short or fails its CRC: a torn append.
    Torn,
}

/// Reads the frames of `epoch` from `file`: the entries, where the next frame goes, and whether
/// the log ended in a torn frame. A bad frame with a valid frame of the same epoch after it is
/// not a torn append (appends are sequential, so a crash can only tear the last one): that is
/// damage, and an error.
fn scan(file: &File, epoch: u64, legacy: bool) -> io::Result<Scan> {
    if legacy {
        return scan_legacy(file, epoch);
    }
    let file_len = file.metadata()?.len();
    let mut entries = Vec::new();
    let mut pos = FRAMES_START;
    loop {
        let first = slot_at(file, file_len, pos, epoch)?;
        // A frame written with 4 KB granularity starts at the next 4 KB boundary.
        let page = align_up(pos, PAGE);
        let found = match first {
            Slot::Frame { .. } => first,
            _ if page != pos => match slot_at(file, file_len, page, epoch)? {
                frame @ Slot::Frame { .. } => frame,
                second => {
                    let torn = matches!(first, Slot::Torn) || matches!((&first, second), (Slot::Empty, Slot::Torn));
                    return end_of_log(file, file_len, epoch, entries, pos, torn);
                }
            },
            _ => return end_of_log(file, file_len, epoch, entries, pos, matches!(first, Slot::Torn)),
        };
        if let Slot::Frame { entries: mut parsed, end } = found {
            entries.append(&mut parsed);
            pos = align_up(end, SECTOR);
        }
    }
}

fn end_of_log(file: &File, file_len: u64, epoch: u64, entries: Vec<Entry>, end: u64, torn: bool) -> io::Result<Scan> {
    if let Some(at) = valid_frame_after(file, file_len, end, epoch)? {
        return Err(damaged(format!(
            "the frame at byte {end} is damaged, yet a valid frame follows at byte {at}: the records between would be lost"
        )));
    }
    Ok(Scan { entries, tail: end, torn })
}

fn slot_at(file: &File, file_len: u64, pos: u64, epoch: u64) -> io::Result<Slot> {
    if pos + FRAME_HEAD > file_len {
        return Ok(Slot::Empty);
    }
    let mut head = [0u8; FRAME_HEAD as usize];
    file.read_exact_at(&mut head, pos)?;
    if head.iter().all(|b| *b == 0) {
        return Ok(Slot::Empty);
    }
    let (len, crc, frame_epoch) = frame_head(&head);
    if frame_epoch != epoch {
        return Ok(Slot::Foreign);
    }
    if len > MAX_FRAME || pos + FRAME_HEAD + u64::from(len) > file_len {
        return Ok(Slot::Torn);
    }
    let mut payload = vec![0u8; len as usize];
    file.read_exact_at(&mut payload, pos + FRAME_HEAD)?;
    if frame_crc(epoch, len, &payload) != crc {
        return Ok(Slot::Torn);
    }
    Ok(match parse_payload(&payload) {
        Some(entries) => Slot::Frame { entries, end: pos + FRAME_HEAD + u64::from(len) },
        None => Slot::Torn,
    })
}

fn frame_head(head: &[u8; FRAME_HEAD as usize]) -> (u32, u32, u64) {
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    let mut epoch = [0u8; 8];
    epoch.copy_from_slice(&head[8..16]);
    (len, crc, u64::from_le_bytes(epoch))
}

/// The offset of a valid frame of `epoch` at a 512-byte boundary after `from`, if any.
fn valid_frame_after(file: &File, file_len: u64, from: u64, epoch: u64) -> io::Result<Option<u64>> {
    let mut rest = vec![0u8; file_len.saturating_sub(from) as usize];
    file.read_exact_at(&mut rest, from)?;
    let head_len = FRAME_HEAD as usize;
    for off in (SECTOR as usize..rest.len().saturating_sub(head_len)).step_by(SECTOR as usize) {
        let mut head = [0u8; FRAME_HEAD as usize];
        head.copy_from_slice(&rest[off..off + head_len]);
        let (len, crc, frame_epoch) = frame_head(&head);
        let end = off + head_len + len as usize;
        if frame_epoch != epoch || len == 0 || len > MAX_FRAME || end > rest.len() {
            continue;
        }
        let payload = &rest[off + head_len..end];
        if frame_crc(epoch, len, payload) == crc && parse_payload(payload).is_some() {
            return Ok(Some(from + off as u64));
        }
    }
    Ok(None)
}

/// `scan` for a version-2 epoch: frames back to back, `len u32 | crc u32 | payload`.
fn scan_legacy(file: &File, epoch: u64) -> io::Result<Scan> {
    let file_len = file.metadata()?.len();
    let mut entries = Vec::new();
    let mut pos = FRAMES_START;
    let torn = loop {
        let mut head = [0u8; LEGACY_FRAME_HEAD as usize];
        if pos + LEGACY_FRAME_HEAD > file_len {
            break false;
        }
        file.read_exact_at(&mut head, pos)?;
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if len == 0 && crc == 0 {
            break false;
        }
        if len > MAX_FRAME || pos + LEGACY_FRAME_HEAD + u64::from(len) > file_len {
            break true;
        }
        let mut payload = vec![0u8; len as usize];
        file.read_exact_at(&mut payload, pos + LEGACY_FRAME_HEAD)?;
        if frame_crc(epoch, len, &payload) != crc {
            break true;
        }
        match parse_payload(&payload) {
            Some(mut parsed) => entries.append(&mut parsed),
            None => break true,
        }
        pos += LEGACY_FRAME_HEAD + u64::from(len);
    };
    if torn && let Some(at) = legacy_valid_frame_after(file, file_len, pos, epoch)? {
        return Err(damaged(format!(
            "the frame at byte {pos} is damaged, yet a valid frame follows at byte {at}: the records between would be lost"
        )));
    }
    Ok(Scan { entries, tail: align_up(pos, SECTOR), torn })
}

/// The offset of a valid version-2 frame of `epoch` starting after `from` (at any byte), if any.
fn legacy_valid_frame_after(file: &File, file_len: u64, from: u64, epoch: u64) -> io::Result<Option<u64>> {
    let mut rest = vec![0u8; file_len.saturating_sub(from) as usize];
    file.read_exact_at(&mut rest, from)?;
    for off in 1..rest.len().saturating_sub(8) {
        let len = u32::from_le_bytes([rest[off], rest[off + 1], rest[off + 2], rest[off + 3]]);
        let end = off + 8 + len as usize;
        if len == 0 || len > MAX_FRAME || end > rest.len() {
            continue;
        }
        let payload = &rest[off + 8..end];
        // The structure first: it rejects almost every offset at once, before any checksum.
        if parse_payload(payload).is_none() {
            continue;
        }
        let crc = u32::from_le_bytes([rest[off + 4], rest[off + 5], rest[off + 6], rest[off + 7]]);
        if frame_crc(epoch, len, payload) == crc {
            return Ok(Some(from + off as u64));
        }
    }
    Ok(None)
}

/// A header slot's (epoch, version), or `None` if it holds no valid header of a version read here.
fn read_slot(file: &File, slot: u64) -> io::Result<Option<(u64, u32)>> {
    let mut buf = [0u8; 24];
    match file.read_exact_at(&mut buf, slot * SLOT_STRIDE) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let crc = u32::from_le_bytes([buf[20], buf[21], buf[22], buf[23]]);
    if &buf[..8] != MAGIC || crc32fast::hash(&buf[..20]) != crc {
        return Ok(None);
    }
    let version = u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]]);
    if version != VERSION && version != LEGACY_VERSION {
        return Ok(None);
    }
    let mut epoch = [0u8; 8];
    epoch.copy_from_slice(&buf[12..20]);
    Ok(Some((u64::from_le_bytes(epoch), version)))
}

fn frame_crc(epoch: u64, len: u32, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&epoch.to_le_bytes());
    h.update(&len.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// A tiny cursor over a frame payload; `None` means malformed (never panics).
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Option<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(u64::from_le_bytes(a))
    }
}

fn parse_payload(payload: &[u8]) -> Option<Vec<Entry>> {
    let mut r = Reader(payload);
    let count = r.u32()?;
    let mut entries = Vec::with_capacity(count.min(1 << 16) as usize);
    for _ in 0..count {
        let entry = match r.u8()? {
            TAG_RECORD => {
                let seq = r.u64()?;
                let len = r.u32()? as usize;
                Entry::Record { seq, bytes: r.take(len)?.to_vec() }
            }
            TAG_CURSOR => {
                let seq = r.u64()?;
                let len = r.u16()? as usize;
                let name = String::from_utf8(r.take(len)?.to_vec()).ok()?;
                Entry::Cursor { name, seq }
            }
            TAG_COUNTER => {
                let value = r.u64()?;
                let len = r.u16()? as usize;
                let name = String::from_utf8(r.take(len)?.to_vec()).ok()?;
                Entry::Counter { name, value }
            }
            _ => return None,
        };
        entries.push(entry);
    }
    r.0.is_empty().then_some(entries)
}

/// The previous release's file, for tests: a version-2 header in slot A and `frames` back to back.
#[cfg(test)]
pub(crate) fn write_version_2(path: &Path, epoch: u64, frames: &[&[Entry]]) {
    let mut bytes = vec![0u8; PREALLOCATED as usize];
    let mut header = Vec::new();
    header.extend(MAGIC);
    header.extend(LEGACY_VERSION.to_le_bytes());
    header.extend(epoch.to_le_bytes());
    header.extend(crc32fast::hash(&header).to_le_bytes());
    bytes[..24].copy_from_slice(&header);
    let mut at = FRAMES_START as usize;
    for entries in frames {
        let payload = encode_payload(entries);
        let len = payload.len() as u32;
        bytes[at..at + 4].copy_from_slice(&len.to_le_bytes());
        bytes[at + 4..at + 8].copy_from_slice(&frame_crc(epoch, len, &payload).to_le_bytes());
        bytes[at + 8..at + 8 + payload.len()].copy_from_slice(&payload);
        at += 8 + payload.len();
    }
    std::fs::write(path, bytes).unwrap();
}

/// The version of the current header (for tests).
#[cfg(test)]
pub(crate) fn current_version(path: &Path) -> Option<u32> {
    let file = File::open(path).ok()?;
    let header = check_header(&file, file.metadata().ok()?.len()).ok()??;
    read_slot(&file, header.slot).ok()?.map(|(_, version)| version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::io_hook::IoHook;
    use std::sync::{Arc, Mutex};

    const MODES: [WriteMode; 2] = [WriteMode::Auto, WriteMode::Buffered];

    fn rec(seq: u64) -> Entry {
        Entry::Record { seq, bytes: vec![seq as u8; 20] }
    }

    fn open(path: &Path, mode: WriteMode) -> Recovered {
        Journal::open_with(path, mode).unwrap()
    }

    /// A failure the test hook injects once: on the next sync, or the next write.
    #[derive(Clone, Copy)]
    struct Fault {
        on_sync: bool,
        errno: i32,
        /// The device also drops the last (unsynced) write: it reads back as zeros.
        lose_last_write: bool,
    }

    /// Records every write (offset, length) and injects one `Fault` when armed.
    struct TestHook {
        path: PathBuf,
        state: Mutex<HookState>,
    }

    /// The writes seen so far (offset, length), and the armed fault.
    type HookState = (Vec<(u64, usize)>, Option<Fault>);

    impl IoHook for TestHook {
        fn before(&self, _file: StoreFile, op: Op<'_>) -> io::Result<()> {
            let mut state = self.state.lock().unwrap();
            let Some(fault) = state.1 else { return Ok(()) };
            if fault.on_sync != matches!(op, Op::Sync) || matches!(op, Op::SetLen(_) | Op::Rename) {
                return Ok(());
            }
            state.1 = None;
            if fault.lose_last_write
                && let Some(&(offset, len)) = state.0.last()
            {
                let file = OpenOptions::new().write(true).open(&self.path).unwrap();
                file.write_all_at(&vec![0u8; len], offset).unwrap();
            }
            Err(io::Error::from_raw_os_error(fault.errno))
        }
        fn after(&self, _file: StoreFile, op: Op<'_>) {
            if let Op::Write { offset, data } = op {
                self.state.lock().unwrap().0.push((offset, data.len()));
            }
        }
    }

    impl TestHook {
        fn arm(&self, fault: Fault) {
            self.state.lock().unwrap().1 = Some(fault);
        }
        fn writes(&self) -> Vec<(u64, usize)> {
            self.state.lock().unwrap().0.clone()
        }
    }

    fn open_hooked(path: &Path, mode: WriteMode) -> (Journal, Arc<TestHook>) {
        let hook = Arc::new(TestHook { path: path.to_owned(), state: Mutex::default() });
        let r = Journal::open_locked(Journal::lock(path).unwrap(), mode, Hook(Some(hook.clone()))).unwrap();
        (r.journal, hook)
    }

    #[test]
    fn appended_frames_replay_in_order() {
        for mode in MODES {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("j.wal");
            let mut j = open(&path, mode).journal;
            j.append(&[rec(1), rec(2)]).unwrap();
            let counter = Entry::Counter { name: "rejected.x".into(), value: 7 };
            j.append(&[Entry::Cursor { name: "kafka".into(), seq: 2 }, rec(3), counter.clone()]).unwrap();
            drop(j);
            let r = open(&path, mode);
            assert_eq!(
                r.entries,
                vec![rec(1), rec(2), Entry::Cursor { name: "kafka".into(), seq: 2 }, rec(3), counter]
            );
            assert!(!r.torn_tail);
        }
    }

    #[test]
    fn many_small_and_odd_sized_frames_across_sectors_and_reopens() {
        for mode in MODES {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("j.wal");
            let mut expected = Vec::new();
            let mut seq = 0;
            // Reopen between batches: the tail must be recovered from disk, not memory.
            for batch in 0..4 {
                let mut j = open(&path, mode).journal;
                for size in [1usize, 3, 511, 512, 513, 100, 1500, 7, 4096, 9000] {
                    seq += 1;
                    let e = Entry::Record { seq, bytes: vec![(seq + batch) as u8; size] };
                    j.append(std::slice::from_ref(&e)).unwrap();
                    expected.push(e);
                }
            }
            let r = open(&path, mode);
            assert_eq!(r.entries.len(), expected.len(), "{mode:?}");
            assert!(r.entries == expected, "{mode:?}: replay differs");
        }
    }

    #[test]
    fn a_frame_never_shares_a_sector_with_acknowledged_data() {
        for mode in MODES {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("j.wal");
            let (mut j, hook) = open_hooked(&path, mode);
            let unit = j.write_granularity();
            let mut seq = 0;
            for size in [1usize, 600, 30, 5000, 2, 511, 4100] {
                seq += 1;
                let acknowledged = std::fs::read(&path).unwrap()[..j.tail as usize].to_vec();
                let tail = j.tail;
                let before = hook.writes().len();
                j.append(&[Entry::Record { seq, bytes: vec![seq as u8; size] }]).unwrap();
                // Every write of the append starts at or after the old tail, on a unit boundary,
                // and covers whole units; the bytes before the old tail are unchanged.
                for &(offset, len) in &hook.writes()[before..] {
                    assert!(offset >= tail, "{mode:?}: wrote at {offset}, before the tail {tail}");
                    assert_eq!(offset % unit, 0, "{mode:?}: frame at {offset} is not on a {unit}-byte boundary");
                    assert_eq!(len as u64 % unit, 0, "{mode:?}: {len} bytes is not whole {unit}-byte units");
                }
                assert!(std::fs::read(&path).unwrap()[..tail as usize] == acknowledged[..], "{mode:?}: rewritten");
                assert_eq!(j.tail % unit, 0);
            }
            drop(j);
            assert_eq!(open(&path, mode).entries.len(), seq as usize);
        }
    }

    #[test]
    fn reset_invalidates_old_frames_even_where_new_ones_stop_short() {
        for mode in MODES {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("j.wal");
            let mut j = open(&path, mode).journal;
            j.append(&[rec(1), rec(2), rec(3)]).unwrap();
            j.reset().unwrap();
            j.append(&[rec(4)]).unwrap();
            drop(j);
            assert_eq!(open(&path, mode).entries, vec![rec(4)]);
            // Twice more, so both header slots have been rewritten.
            let mut j = open(&path, mode).journal;
            j.reset().unwrap();
            j.reset().unwrap();
            drop(j);
            assert_eq!(open(&path, mode).entries, vec![]);
        }
    }

    #[test]
    fn stale_frames_after_a_reset_are_not_a_torn_tail_but_a_torn_append_is() {
        for mode in MODES {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("j.wal");
            let mut j = open(&path, mode).journal;
            // A multi-sector frame first, so the new epoch's end lands inside it.
            j.append(&[Entry::Record { seq: 1, bytes: vec![7; 9000] }]).unwrap();
            for seq in 2..6 {
                j.append(&[rec(seq)]).unwrap();
            }
            j.reset().unwrap();
            j.append(&[rec(6)]).unwrap();
            j.append(&[rec(7)]).unwrap();
            let start = j.tail;
            j.append(&[Entry::Record { seq: 8, bytes: vec![8; 3000] }]).unwrap();
            drop(j);
            let r = open(&path, mode);
            assert_eq!(r.entries.len(), 3);
            assert!(!r.torn_tail, "{mode:?}: a clean end among stale frames is not torn");
            drop(r);
            // The last frame's first sector reached the disk, the rest did not (a power cut).
            let mut bytes = std::fs::read(&path).unwrap();
            for b in &mut bytes[(start + SECTOR) as usize..(start + 4096) as usize] {
                *b = 0;
            }
            std::fs::write(&path, &bytes).unwrap();
            let r = open(&path, mode);
            assert_eq!(r.entries, vec![rec(6), rec(7)], "{mode:?}");
            assert!(r.torn_tail, "{mode:?}: a torn append is reported");
        }
    }

    #[test]
    fn every_torn_append_keeps_the_frames_before_it() {
        for mode in MODES {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("j.wal");
            let mut j = open(&path, mode).journal;
            j.append(&[rec(1)]).unwrap();
            let start = j.tail;
            j.append(&[rec(2), rec(3)]).unwrap();
            drop(j);
            let pristine = std::fs::read(&path).unwrap();
            let end = start + FRAME_HEAD + encode_payload(&[rec(2), rec(3)]).len() as u64;
            // Cut the second frame at every byte (as a crash mid-write would), and also flip each
            // of its bytes: replay must return exactly the first frame, and never panic.
            for cut in start..end {
                let mut bytes = pristine.clone();
                for b in &mut bytes[cut as usize..end as usize] {
                    *b = 0;
                }
                std::fs::write(&path, &bytes).unwrap();
                let epoch_field = (start + 8) as usize..(start + 16) as usize;
                let epoch_there = bytes[epoch_field.clone()] == pristine[epoch_field];
                let r = open(&path, mode);
                assert_eq!(r.entries, vec![rec(1)], "{mode:?} cut at {cut}");
                // Once its epoch is there, the frame is known to be a torn append of this epoch.
                assert_eq!(r.torn_tail, epoch_there, "{mode:?} cut at {cut}");
                drop(r);

                let mut bytes = pristine.clone();
                bytes[cut as usize] ^= 0x5a;
                std::fs::write(&path, &bytes).unwrap();
                let r = open(&path, mode);
                assert_eq!(r.entries, vec![rec(1)], "{mode:?} flip at {cut}");
                let in_epoch_field = (start + 8..start + 16).contains(&cut);
                assert_eq!(r.torn_tail, !in_epoch_field, "{mode:?} flip at {cut}");
            }
        }
    }

    #[test]
    fn a_damaged_frame_before_a_valid_one_is_refused() {
        for mode in MODES {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("j.wal");
            let mut j = open(&path, mode).journal;
            j.append(&[rec(1)]).unwrap();
            let second = j.tail;
            j.append(&[rec(2)]).unwrap();
            j.append(&[rec(3)]).unwrap();
            drop(j);
            let mut bytes = std::fs::read(&path).unwrap();
            // Zeros in the middle (a lost sector) are damage too, not the end of the log.
            for b in &mut bytes[second as usize..second as usize + 16] {
                *b = 0;
            }
            std::fs::write(&path, &bytes).unwrap();
            let err = Journal::open_with(&path, mode).err().expect("refused");
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
            assert!(Journal::lock(&path).unwrap().inspect().is_err());
        }
    }

    #[test]
    fn a_torn_header_write_falls_back_to_the_other_slot() {
        for mode in MODES {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("j.wal");
            let mut j = open(&path, mode).journal;
            j.append(&[rec(1)]).unwrap();
            let slot = j.slot;
            drop(j);
            // Damage the slot that is *not* current (as a torn reset would): frames stay valid.
            let mut bytes = std::fs::read(&path).unwrap();
            bytes[((1 - slot) * SLOT_STRIDE + 3) as usize] ^= 0xff;
            std::fs::write(&path, &bytes).unwrap();
            assert_eq!(open(&path, mode).entries, vec![rec(1)]);
        }
    }

    #[test]
    fn a_version_2_journal_is_replayed_once_and_its_reset_writes_version_3() {
        for mode in MODES {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("j.wal");
            write_version_2(&path, 5, &[&[rec(1), rec(2)], &[rec(3)]]);
            assert!(Journal::lock(&path).unwrap().inspect().unwrap().in_use);
            let r = open(&path, mode);
            assert_eq!(r.entries, vec![rec(1), rec(2), rec(3)]);
            assert!(!r.torn_tail);
            let mut j = r.journal;
            assert!(j.append(&[rec(4)]).is_err(), "no version-3 frame under a version-2 header");
            j.reset().unwrap();
            j.append(&[rec(4)]).unwrap();
            drop(j);
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(u32::from_le_bytes(bytes[4096 + 8..4096 + 12].try_into().unwrap()), VERSION);
            let r = open(&path, mode);
            assert_eq!(r.entries, vec![rec(4)]);
            assert!(!r.torn_tail, "the version-2 frames left are stale, not torn");
        }
    }

    #[test]
    fn a_failed_fsync_or_write_never_poisons_the_next_append() {
        let eio = libc::EIO;
        let cases = [
            // fsync failed, the frame is on disk all the same: it stays, the retry goes after it.
            (Fault { on_sync: true, errno: eio, lose_last_write: false }, vec![rec(1), rec(2), rec(2), rec(3)]),
            // fsync failed and the device lost the frame: the retry takes its place.
            (Fault { on_sync: true, errno: eio, lose_last_write: true }, vec![rec(1), rec(2), rec(3)]),
            // The write itself failed (a full disk).
            (Fault { on_sync: false, errno: libc::ENOSPC, lose_last_write: false }, vec![rec(1), rec(2), rec(3)]),
        ];
        for mode in MODES {
            for (fault, expected) in &cases {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("j.wal");
                let (mut j, hook) = open_hooked(&path, mode);
                j.append(&[rec(1)]).unwrap();
                let acknowledged = std::fs::read(&path).unwrap()[..j.tail as usize].to_vec();
                hook.arm(*fault);
                assert!(j.append(&[rec(2)]).is_err());
                // The writer retries the same batch, then goes on.
                j.append(&[rec(2)]).unwrap();
                j.append(&[rec(3)]).unwrap();
                let bytes = std::fs::read(&path).unwrap();
                assert!(bytes[..acknowledged.len()] == acknowledged[..], "{mode:?}: acknowledged bytes changed");
                drop(j);
                let r = open(&path, mode);
                assert_eq!(&r.entries, expected, "{mode:?}");
                assert!(!r.torn_tail);
            }
        }
    }

    #[test]
    fn a_failed_reset_leaves_memory_on_the_epoch_the_file_has() {
        for mode in MODES {
            for lose in [false, true] {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("j.wal");
                let (mut j, hook) = open_hooked(&path, mode);
                j.append(&[rec(1)]).unwrap();
                hook.arm(Fault { on_sync: true, errno: libc::EIO, lose_last_write: lose });
                assert!(j.reset().is_err());
                let on_disk = {
                    let file = File::open(&path).unwrap();
                    check_header(&file, file.metadata().unwrap().len()).unwrap().unwrap()
                };
                assert_eq!((j.epoch, j.slot), (on_disk.epoch, on_disk.slot), "{mode:?} lose={lose}");
                j.append(&[rec(2)]).unwrap();
                drop(j);
                // Either the old epoch goes on, or the new one starts with the frame after it.
                let expected = if lose { vec![rec(1), rec(2)] } else { vec![rec(2)] };
                assert_eq!(open(&path, mode).entries, expected, "{mode:?} lose={lose}");
            }
        }
    }

    #[test]
    fn a_4k_sector_device_is_detected_without_rewriting_anything() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.wal");
        let (mut j, hook) = open_hooked(&path, WriteMode::Auto);
        if !j.is_direct() {
            println!(
                "SKIPPED a_4k_sector_device_is_detected_without_rewriting_anything: this filesystem refuses O_DIRECT"
            );
            return;
        }
        j.sector = Some(SECTOR);
        j.append(&[rec(1)]).unwrap();
        let tail = j.tail;
        // The device refuses 512-byte direct writes (EINVAL): the frame goes to the next 4 KB.
        hook.arm(Fault { on_sync: false, errno: libc::EINVAL, lose_last_write: false });
        j.append(&[rec(2)]).unwrap();
        assert_eq!(j.write_granularity(), 4096, "the new granularity is what status reports");
        let &(offset, len) = hook.writes().last().unwrap();
        assert_eq!((offset, len), (align_up(tail, 4096), 4096));
        j.append(&[rec(3)]).unwrap();
        drop(j);
        assert_eq!(open(&path, WriteMode::Auto).entries, vec![rec(1), rec(2), rec(3)]);
    }

    #[test]
    fn the_journal_is_locked_for_its_lifetime() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.wal");
        let mut j = open(&path, WriteMode::Auto).journal;
        j.append(&[rec(1)]).unwrap();
        let before = std::fs::read(&path).unwrap();
        let err = Journal::lock(&path).err().expect("locked");
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert!(Journal::open(&path).is_err());
        assert!(std::fs::read(&path).unwrap() == before);
        drop(j);
        assert_eq!(open(&path, WriteMode::Auto).entries, vec![rec(1)]);
    }

    #[test]
    fn appends_write_one_sector_not_a_page_when_direct_io_is_available() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = open(&dir.path().join("j.wal"), WriteMode::Auto).journal;
        if !j.is_direct() {
            println!(
                "SKIPPED store::journal::tests::appends_write_one_sector_not_a_page_when_direct_io_is_available: \
                 this filesystem refuses O_DIRECT; the buffered path is tested above"
            );
            return;
        }
        let before = thread_write_bytes();
        for i in 0..50 {
            j.append(&[rec(i)]).unwrap();
        }
        let written = thread_write_bytes() - before;
        // Exactly one sector per small append (512 bytes, or 4096 on a 4 KB-sector device); a
        // page-cache write would cost at least a 4 KB page.
        assert_eq!(written, 50 * j.write_granularity(), "{written} bytes for 50 appends");
    }

    /// This thread's own count (other tests run in parallel threads of the same process).
    fn thread_write_bytes() -> u64 {
        let io = std::fs::read_to_string("/proc/thread-self/io").unwrap();
        io.lines().find_map(|l| l.strip_prefix("write_bytes: ")).unwrap().trim().parse().unwrap()
    }
}
