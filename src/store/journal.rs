//! The write-ahead journal: small, checksummed, fsynced appends between redb folds.
//!
//! Why it exists: a durable redb commit writes ~40-65 KB (copy-on-write pages, quick-repair
//! state), so committing every 10 s would write hundreds of MB a day to an SD card. Appending the
//! same records here and `fdatasync`ing costs one page per commit; redb is made durable only every
//! few minutes (a "fold"), and on start the journal replays whatever redb had not yet persisted.
//!
//! File layout (`outpost.wal`):
//! ```text
//! [0..24)        header slot A  \  magic "OUTPOSTJ" | version u32 | epoch u64 | crc32 u32
//! [4096..4120)   header slot B  /  the valid slot with the higher epoch is current
//! [8192..)       frames: len u32 | crc32(epoch | len | payload) u32 | payload
//! payload:       count u32, then entries: tag u8 (1 = record) | seq u64 | len u32 | bytes
//!                                          tag u8 (2 = cursor) | seq u64 | len u16 | name
//! ```
//! Invariants:
//! - Bytes before the tail are never changed; a torn write can only damage the frame being
//!   appended, which its CRC rejects. (In direct mode the tail sector is rewritten with its old
//!   bytes unchanged plus the new frame.)
//! - The epoch is part of every frame's CRC. `reset` (after a durable fold) bumps the epoch in the
//!   *other* header slot, which invalidates every older frame without rewriting them; a torn
//!   header write leaves the previous slot valid.
//! - Replay stops at the first frame that is short, zero or fails its CRC: that is the end of the
//!   log as of the crash.
//!
//! Write cost: appends use O_DIRECT, one logical sector (512 B on SD cards) per commit. Through the
//! page cache each fsync would write at least a 4 KB page, and on kernels whose page cache uses
//! large folios (ext4 on Linux 6.1x) a whole folio: measured 256 KB per 46-byte append here. Where
//! O_DIRECT is refused (tmpfs, some filesystems) it falls back to buffered writes with readahead
//! off. The file is zero-filled once to `PREALLOCATED` so appends overwrite allocated blocks and
//! `fdatasync` has no metadata to journal.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use super::io_hook::{Hook, Op, StoreFile};

const MAGIC: &[u8; 8] = b"OUTPOSTJ";
const VERSION: u32 = 2;
const SLOT_STRIDE: u64 = 4096;
const FRAMES_START: u64 = 8192;
const PREALLOCATED: u64 = 256 * 1024;
const TAG_RECORD: u8 = 1;
const TAG_CURSOR: u8 = 2;
/// A frame longer than this is certainly garbage (a week's backlog of warnings is a few MB).
const MAX_FRAME: u32 = 256 * 1024 * 1024;
/// Memory alignment of direct-I/O buffers (a page satisfies every device).
const BUF_ALIGN: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Record { seq: u64, bytes: Vec<u8> },
    Cursor { name: String, seq: u64 },
}

pub struct Journal {
    file: File,
    path: std::path::PathBuf,
    /// Direct-I/O write granularity in bytes (512 or 4096), or `None` for buffered writes.
    sector: Option<u64>,
    epoch: u64,
    /// Which header slot holds `epoch` (0 or 1).
    slot: u64,
    tail: u64,
    /// In direct mode, the bytes of the partly filled sector that ends at `tail`.
    tail_sector: Vec<u8>,
    /// Every write and sync of the file passes through it (crash and fault tests).
    hook: Hook,
}

/// What `Journal::open` found: the journal ready for appends, and the entries to replay.
pub struct Recovered {
    pub journal: Journal,
    pub entries: Vec<Entry>,
    /// Bytes after the last valid frame that were not zero: a torn append (normal after a crash).
    pub torn_tail: bool,
}

/// What `Journal::inspect` found.
#[derive(Debug, Clone, Copy)]
pub struct Inspection {
    pub exists: bool,
    /// It has a valid header: it has been in use (a new or empty file has none).
    pub in_use: bool,
}

/// The current (epoch, slot), or `None` for a new file (all zeros). Damage is an error: data
/// without a readable header, or a file shorter than its preallocated length.
fn check_header(file: &File, len: u64) -> io::Result<Option<(u64, u64)>> {
    let current = match (read_slot(file, 0)?, read_slot(file, 1)?) {
        (Some(a), Some(b)) if b > a => Some((b, 1)),
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
        other => Ok(other),
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

/// How appends reach the disk; `Auto` tries direct I/O first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    Auto,
    /// Only tests force it; production uses it when the filesystem refuses O_DIRECT.
    #[cfg(test)]
    Buffered,
}

impl Journal {
    /// A journal on its buffered handle, positioned before its frames: `scan` finds the tail.
    fn before_scan(file: File, path: &Path, epoch: u64, slot: u64) -> Journal {
        Journal {
            file,
            path: path.to_owned(),
            sector: None,
            epoch,
            slot,
            tail: FRAMES_START,
            tail_sector: Vec::new(),
            hook: Hook::default(),
        }
    }

    /// Opens (or creates) the journal and reads back every valid frame of the current epoch.
    #[cfg(test)]
    pub fn open(path: &Path) -> io::Result<Recovered> {
        Self::open_with(path, WriteMode::Auto)
    }

    /// Checks the journal at `path` without writing anything: an error of kind `InvalidData`
    /// if it is damaged (truncated, unreadable headers with data, a bad frame before good ones).
    pub fn inspect(path: &Path) -> io::Result<Inspection> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Inspection { exists: false, in_use: false }),
            Err(e) => return Err(e),
        };
        let len = file.metadata()?.len();
        let (epoch, slot) = match check_header(&file, len)? {
            Some(current) => current,
            None => return Ok(Inspection { exists: true, in_use: false }),
        };
        Journal::before_scan(file, path, epoch, slot).scan()?;
        Ok(Inspection { exists: true, in_use: true })
    }

    #[cfg(test)]
    pub fn open_with(path: &Path, mode: WriteMode) -> io::Result<Recovered> {
        Self::open_hooked(path, mode, Hook::default())
    }

    /// `open_with`, every write and sync of the file passed through `hook`.
    pub fn open_hooked(path: &Path, mode: WriteMode, hook: Hook) -> io::Result<Recovered> {
        // Setup and recovery go through the page cache with readahead off; appends then use a
        // direct-I/O handle when the filesystem allows it.
        let buffered = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        super::advise_random(&buffered);
        let len = buffered.metadata()?.len();
        // Damage is refused before anything is written: the caller reports it and stops.
        let current = check_header(&buffered, len)?;
        if len < PREALLOCATED {
            // Zero-fill once, a page at a time (one large write would create one large folio).
            let zeros = [0u8; 4096];
            let mut at = len;
            while at < PREALLOCATED {
                let data = &zeros[..(4096 - at % 4096) as usize];
                hook.run(StoreFile::Journal, Op::Write { offset: at, data }, || buffered.write_all_at(data, at))?;
                at += 4096 - at % 4096;
            }
            hook.run(StoreFile::Journal, Op::Sync, || buffered.sync_all())?;
        }
        let (epoch, slot) = current.unwrap_or((0, 1));
        let mut journal = Journal::before_scan(buffered, path, epoch, slot);
        journal.hook = hook;
        let (entries, torn_tail) = if journal.epoch == 0 {
            // A new file (all zeros: checked above).
            (Vec::new(), false)
        } else {
            let (entries, tail, torn) = journal.scan()?;
            journal.tail = tail;
            (entries, torn)
        };
        if mode == WriteMode::Auto
            && let Ok(direct) = OpenOptions::new().read(true).write(true).custom_flags(libc::O_DIRECT).open(path)
        {
            let start = journal.tail - journal.tail % 512;
            let mut tail_sector = vec![0u8; (journal.tail - start) as usize];
            journal.file.read_exact_at(&mut tail_sector, start)?;
            // Drop what recovery cached, so no stale page can shadow direct writes.
            super::drop_from_page_cache(&journal.file);
            journal.file = direct;
            journal.sector = Some(512);
            journal.tail_sector = tail_sector;
        }
        if journal.epoch == 0 {
            journal.reset()?;
        }
        Ok(Recovered { journal, entries, torn_tail })
    }

    /// Every entry of the current epoch, read back from the file (to rebuild redb's state after
    /// it was reopened).
    pub fn entries(&self) -> io::Result<Vec<Entry>> {
        // A handle of its own: reads through the direct-I/O handle would need aligned buffers.
        let file = File::open(&self.path)?;
        super::advise_random(&file);
        let entries = self.scan_in(&file)?.0;
        super::drop_from_page_cache(&file);
        Ok(entries)
    }

    /// Whether appends bypass the page cache (for status and benchmarks).
    pub fn is_direct(&self) -> bool {
        self.sector.is_some()
    }

    /// Bytes of frames since the last reset.
    pub fn used(&self) -> u64 {
        self.tail - FRAMES_START
    }

    /// Appends one frame holding `entries` and makes it durable.
    pub fn append(&mut self, entries: &[Entry]) -> io::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
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
            }
        }
        let len = payload.len() as u32;
        let mut frame = Vec::with_capacity(payload.len() + 8);
        frame.extend(len.to_le_bytes());
        frame.extend(frame_crc(self.epoch, len, &payload).to_le_bytes());
        frame.extend(&payload);
        match self.sector {
            None => self.write_at(&frame, self.tail)?,
            Some(_) => {
                // The partly filled tail sector is rewritten with its old bytes unchanged,
                // followed by the new frame.
                let start = self.tail - self.tail_sector.len() as u64;
                let mut data = std::mem::take(&mut self.tail_sector);
                let old_len = data.len();
                let sector_before = self.sector;
                data.extend_from_slice(&frame);
                if let Err(e) = self.write_direct(start, &data) {
                    data.truncate(old_len);
                    self.tail_sector = data;
                    return Err(e);
                }
                let end = self.tail + frame.len() as u64;
                let sector = self.sector.unwrap_or(512);
                let end_sector = end - end % sector;
                self.tail_sector = if self.sector == sector_before {
                    data[(end_sector - start) as usize..].to_vec()
                } else {
                    // The sector size grew: the new tail sector may start before `start`.
                    let mut tail = vec![0u8; (end - end_sector) as usize];
                    read_direct(&self.file, end_sector, sector, &mut tail)?;
                    tail
                };
            }
        }
        self.sync()?;
        self.tail += frame.len() as u64;
        Ok(())
    }

    /// Writes `data` at the sector-aligned `start`, zero-padded to whole sectors, from an aligned
    /// buffer. Falls back from 512- to 4096-byte sectors once if the device refuses the smaller.
    fn write_direct(&mut self, start: u64, data: &[u8]) -> io::Result<()> {
        let sector = self.sector.unwrap_or(512);
        let len = data.len().div_ceil(sector as usize).max(1) * sector as usize;
        let mut backing = vec![0u8; len + BUF_ALIGN];
        let off = backing.as_ptr().align_offset(BUF_ALIGN);
        let buf = &mut backing[off..off + len];
        buf[..data.len()].copy_from_slice(data);
        match self.write_at(buf, start) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && sector == 512 => {
                // The device needs 4 KB alignment: realign to the 4 KB block and retry.
                self.sector = Some(4096);
                let block = start - start % 4096;
                let mut prefix = vec![0u8; (start - block) as usize];
                read_direct(&self.file, block, 4096, &mut prefix)?;
                prefix.extend_from_slice(data);
                self.write_direct(block, &prefix)
            }
            other => other,
        }
    }

    /// Every write of the file goes through here (and the hook).
    fn write_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        self.hook.run(StoreFile::Journal, Op::Write { offset, data }, || self.file.write_all_at(data, offset))
    }

    fn sync(&self) -> io::Result<()> {
        self.hook.run(StoreFile::Journal, Op::Sync, || self.file.sync_data())
    }

    /// Starts a new epoch: every frame written so far becomes invalid. Call only after everything
    /// in the journal is durable elsewhere (a durable redb commit).
    pub fn reset(&mut self) -> io::Result<()> {
        let epoch = self.epoch + 1;
        let slot = 1 - self.slot;
        let mut header = Vec::with_capacity(24);
        header.extend(MAGIC);
        header.extend(VERSION.to_le_bytes());
        header.extend(epoch.to_le_bytes());
        let crc = crc32fast::hash(&header);
        header.extend(crc.to_le_bytes());
        match self.sector {
            None => self.write_at(&header, slot * SLOT_STRIDE)?,
            Some(_) => self.write_direct(slot * SLOT_STRIDE, &header)?,
        }
        self.sync()?;
        self.epoch = epoch;
        self.slot = slot;
        self.tail = FRAMES_START;
        self.tail_sector.clear();
        Ok(())
    }

    /// Reads the frames of the current epoch: the entries, where the next frame goes, and whether
    /// the log ended in a torn frame. A bad frame with a valid frame of the same epoch after it is
    /// not a torn append (appends are sequential, so a crash can only tear the last one): that is
    /// damage, and an error.
    fn scan(&self) -> io::Result<(Vec<Entry>, u64, bool)> {
        self.scan_in(&self.file)
    }

    /// `scan` through `file`, a buffered handle on the journal.
    fn scan_in(&self, file: &File) -> io::Result<(Vec<Entry>, u64, bool)> {
        let (entries, end, torn) = self.scan_frames(file)?;
        if torn && let Some(at) = self.valid_frame_after(file, end)? {
            return Err(damaged(format!(
                "the frame at byte {end} is damaged, yet a valid frame follows at byte {at}: the records between would be lost"
            )));
        }
        Ok((entries, end, torn))
    }

    /// The offset of a valid frame of the current epoch starting after `from`, if any.
    fn valid_frame_after(&self, file: &File, from: u64) -> io::Result<Option<u64>> {
        let file_len = file.metadata()?.len();
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
            if frame_crc(self.epoch, len, payload) == crc {
                return Ok(Some(from + off as u64));
            }
        }
        Ok(None)
    }

    fn scan_frames(&self, file: &File) -> io::Result<(Vec<Entry>, u64, bool)> {
        let file_len = file.metadata()?.len();
        let mut entries = Vec::new();
        let mut pos = FRAMES_START;
        loop {
            let mut head = [0u8; 8];
            if pos + 8 > file_len {
                return Ok((entries, pos, false));
            }
            file.read_exact_at(&mut head, pos)?;
            let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
            let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
            if len == 0 && crc == 0 {
                return Ok((entries, pos, false));
            }
            if len > MAX_FRAME || pos + 8 + u64::from(len) > file_len {
                return Ok((entries, pos, true));
            }
            let mut payload = vec![0u8; len as usize];
            file.read_exact_at(&mut payload, pos + 8)?;
            if frame_crc(self.epoch, len, &payload) != crc {
                // A stale frame of an older epoch is the normal end after a reset; anything else
                // is a torn append. Both end the log here.
                return Ok((entries, pos, true));
            }
            match parse_payload(&payload) {
                Some(mut parsed) => entries.append(&mut parsed),
                None => return Ok((entries, pos, true)),
            }
            pos += 8 + u64::from(len);
        }
    }
}

fn read_slot(file: &File, slot: u64) -> io::Result<Option<u64>> {
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
    if version != VERSION {
        return Ok(None);
    }
    let mut epoch = [0u8; 8];
    epoch.copy_from_slice(&buf[12..20]);
    Ok(Some(u64::from_le_bytes(epoch)))
}

/// Reads `out.len()` bytes at the `sector`-aligned `start` through a direct-I/O handle.
fn read_direct(file: &File, start: u64, sector: u64, out: &mut [u8]) -> io::Result<()> {
    let len = out.len().div_ceil(sector as usize).max(1) * sector as usize;
    let mut backing = vec![0u8; len + BUF_ALIGN];
    let off = backing.as_ptr().align_offset(BUF_ALIGN);
    let buf = &mut backing[off..off + len];
    let n = file.read_at(buf, start)?;
    let want = out.len();
    if n < want {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "journal shorter than its tail"));
    }
    out.copy_from_slice(&buf[..want]);
    Ok(())
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
            _ => return None,
        };
        entries.push(entry);
    }
    r.0.is_empty().then_some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODES: [WriteMode; 2] = [WriteMode::Auto, WriteMode::Buffered];

    fn rec(seq: u64) -> Entry {
        Entry::Record { seq, bytes: vec![seq as u8; 20] }
    }

    fn open(path: &Path, mode: WriteMode) -> Recovered {
        Journal::open_with(path, mode).unwrap()
    }

    #[test]
    fn appended_frames_replay_in_order() {
        for mode in MODES {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("j.wal");
            let mut j = open(&path, mode).journal;
            j.append(&[rec(1), rec(2)]).unwrap();
            j.append(&[Entry::Cursor { name: "kafka".into(), seq: 2 }, rec(3)]).unwrap();
            drop(j);
            let r = open(&path, mode);
            assert_eq!(r.entries, vec![rec(1), rec(2), Entry::Cursor { name: "kafka".into(), seq: 2 }, rec(3)]);
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
            // Reopen between batches: the tail sector must be recovered from disk, not memory.
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
    fn every_torn_append_keeps_the_frames_before_it() {
        for mode in MODES {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("j.wal");
            let mut j = open(&path, mode).journal;
            j.append(&[rec(1)]).unwrap();
            let good_tail = j.tail;
            j.append(&[rec(2), rec(3)]).unwrap();
            let full_tail = j.tail;
            drop(j);
            let pristine = std::fs::read(&path).unwrap();
            // Cut the second frame at every byte (as a crash mid-write would), and also flip each
            // of its bytes: replay must return exactly the first frame, and never panic.
            for cut in good_tail..full_tail {
                let mut bytes = pristine.clone();
                for b in &mut bytes[cut as usize..full_tail as usize] {
                    *b = 0;
                }
                std::fs::write(&path, &bytes).unwrap();
                assert_eq!(open(&path, mode).entries, vec![rec(1)], "{mode:?} cut at {cut}");

                let mut bytes = pristine.clone();
                bytes[cut as usize] ^= 0x5a;
                std::fs::write(&path, &bytes).unwrap();
                let r = open(&path, mode);
                assert_eq!(r.entries, vec![rec(1)], "{mode:?} flip at {cut}");
                assert!(r.torn_tail);
            }
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
        let per_append = (thread_write_bytes() - before) / 50;
        // One 512-byte sector per append, two when a frame crosses a sector boundary (a device
        // with 4 KB sectors needs 4096); a page-cache write would cost at least a 4 KB page.
        let limit = if j.sector == Some(4096) { 4096 + 512 } else { 1024 };
        assert!(per_append < limit, "{per_append} bytes per append");
    }

    /// This thread's own count (other tests run in parallel threads of the same process).
    fn thread_write_bytes() -> u64 {
        let io = std::fs::read_to_string("/proc/thread-self/io").unwrap();
        io.lines().find_map(|l| l.strip_prefix("write_bytes: ")).unwrap().trim().parse().unwrap()
    }
}
