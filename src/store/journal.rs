//! The write-ahead journal: small, checksummed, fsynced appends between redb folds.
//!
//! Why it exists: a durable redb commit writes ~40-65 KB (copy-on-write pages, quick-repair
//! state), so committing every 10 s would write hundreds of MB a day to an SD card. Appending the
//! same records here and `fdatasync`ing costs one page per commit; redb is made durable only every
//! few minutes (a "fold"), and on start the journal replays whatever redb had not yet persisted.
//!
//! File layout (`outpost.wal`):
//! ```text
//! [0..512)     header slot A  \  magic "OUTPOSTJ" | version u32 | epoch u64 | crc32 u32
//! [512..1024)  header slot B  /  the valid slot with the higher epoch is current
//! [4096..)     frames: len u32 | crc32(epoch | len | payload) u32 | payload
//! payload:     count u32, then entries: tag u8 (1 = record) | seq u64 | len u32 | bytes
//!                                        tag u8 (2 = cursor) | seq u64 | len u16 | name
//! ```
//! Invariants:
//! - A frame is written once and never modified; bytes before the tail are never rewritten, so a
//!   torn write can only damage the frame being appended, which its CRC rejects.
//! - The epoch is part of every frame's CRC. `reset` (after a durable fold) bumps the epoch in the
//!   *other* header slot, which invalidates every older frame without rewriting them; a torn
//!   header write leaves the previous slot valid.
//! - Replay stops at the first frame that is short, zero or fails its CRC: that is the end of the
//!   log as of the crash.
//! - The file is zero-filled once to `PREALLOCATED` so steady-state appends overwrite allocated
//!   blocks and `fdatasync` has no metadata to journal.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

const MAGIC: &[u8; 8] = b"OUTPOSTJ";
const VERSION: u32 = 1;
const SLOT_SIZE: u64 = 512;
const FRAMES_START: u64 = 4096;
const PREALLOCATED: u64 = 256 * 1024;
const TAG_RECORD: u8 = 1;
const TAG_CURSOR: u8 = 2;
/// A frame longer than this is certainly garbage (a week's backlog of warnings is a few MB).
const MAX_FRAME: u32 = 256 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Record { seq: u64, bytes: Vec<u8> },
    Cursor { name: String, seq: u64 },
}

pub struct Journal {
    file: File,

    epoch: u64,
    /// Which header slot holds `epoch` (0 or 1).
    slot: u64,
    tail: u64,
}

/// What `Journal::open` found: the journal ready for appends, and the entries to replay.
pub struct Recovered {
    pub journal: Journal,
    pub entries: Vec<Entry>,
    /// Bytes after the last valid frame that were not zero: a torn append (normal after a crash).
    pub torn_tail: bool,
}

impl Journal {
    /// Opens (or creates) the journal and reads back every valid frame of the current epoch.
    pub fn open(path: &Path) -> io::Result<Recovered> {
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        let len = file.metadata()?.len();
        if len < PREALLOCATED {
            // Zero-fill once so later appends overwrite already-allocated blocks.
            let zeros = vec![0u8; (PREALLOCATED - len) as usize];
            file.write_all_at(&zeros, len)?;
        }
        let (epoch, slot) = match (read_slot(&file, 0)?, read_slot(&file, 1)?) {
            (Some(a), Some(b)) if b > a => (b, 1),
            (Some(a), _) => (a, 0),
            (None, Some(b)) => (b, 1),
            (None, None) => (0, 1),
        };
        let mut journal = Journal { file, epoch, slot, tail: FRAMES_START };
        if len == 0 || journal.epoch == 0 {
            // New file (or both headers unreadable: nothing can be trusted after them).
            journal.reset()?;
            journal.file.sync_all()?;
            return Ok(Recovered { journal, entries: Vec::new(), torn_tail: false });
        }
        let (entries, tail, torn_tail) = journal.scan()?;
        journal.tail = tail;
        Ok(Recovered { journal, entries, torn_tail })
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
        self.file.write_all_at(&frame, self.tail)?;
        self.file.sync_data()?;
        self.tail += frame.len() as u64;
        Ok(())
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
        self.file.write_all_at(&header, slot * SLOT_SIZE)?;
        self.file.sync_data()?;
        self.epoch = epoch;
        self.slot = slot;
        self.tail = FRAMES_START;
        Ok(())
    }

    fn scan(&self) -> io::Result<(Vec<Entry>, u64, bool)> {
        let file_len = self.file.metadata()?.len();
        let mut entries = Vec::new();
        let mut pos = FRAMES_START;
        loop {
            let mut head = [0u8; 8];
            if pos + 8 > file_len {
                return Ok((entries, pos, false));
            }
            self.file.read_exact_at(&mut head, pos)?;
            let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
            let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
            if len == 0 && crc == 0 {
                return Ok((entries, pos, false));
            }
            if len > MAX_FRAME || pos + 8 + u64::from(len) > file_len {
                return Ok((entries, pos, true));
            }
            let mut payload = vec![0u8; len as usize];
            self.file.read_exact_at(&mut payload, pos + 8)?;
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
    match file.read_exact_at(&mut buf, slot * SLOT_SIZE) {
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

    fn rec(seq: u64) -> Entry {
        Entry::Record { seq, bytes: vec![seq as u8; 20] }
    }

    fn open(dir: &Path) -> Recovered {
        Journal::open(&dir.join("j.wal")).unwrap()
    }

    #[test]
    fn appended_frames_replay_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = open(dir.path()).journal;
        j.append(&[rec(1), rec(2)]).unwrap();
        j.append(&[Entry::Cursor { name: "kafka".into(), seq: 2 }, rec(3)]).unwrap();
        drop(j);
        let r = open(dir.path());
        assert_eq!(r.entries, vec![rec(1), rec(2), Entry::Cursor { name: "kafka".into(), seq: 2 }, rec(3)]);
        assert!(!r.torn_tail);
    }

    #[test]
    fn reset_invalidates_old_frames_even_where_new_ones_stop_short() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = open(dir.path()).journal;
        j.append(&[rec(1), rec(2), rec(3)]).unwrap();
        j.reset().unwrap();
        j.append(&[rec(4)]).unwrap();
        drop(j);
        assert_eq!(open(dir.path()).entries, vec![rec(4)]);
        // Twice more, so both header slots have been rewritten.
        let mut j = open(dir.path()).journal;
        j.reset().unwrap();
        j.reset().unwrap();
        drop(j);
        assert_eq!(open(dir.path()).entries, vec![]);
    }

    #[test]
    fn every_torn_append_keeps_the_frames_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.wal");
        let mut j = Journal::open(&path).unwrap().journal;
        j.append(&[rec(1)]).unwrap();
        let good_tail = j.tail;
        j.append(&[rec(2), rec(3)]).unwrap();
        let full_tail = j.tail;
        drop(j);
        let pristine = std::fs::read(&path).unwrap();
        // Cut the second frame at every byte (as a crash mid-write would), and also flip each of
        // its bytes: replay must return exactly the first frame, and never panic.
        for cut in good_tail..full_tail {
            let mut bytes = pristine.clone();
            for b in &mut bytes[cut as usize..full_tail as usize] {
                *b = 0;
            }
            std::fs::write(&path, &bytes).unwrap();
            assert_eq!(Journal::open(&path).unwrap().entries, vec![rec(1)], "cut at {cut}");

            let mut bytes = pristine.clone();
            bytes[cut as usize] ^= 0x5a;
            std::fs::write(&path, &bytes).unwrap();
            let r = Journal::open(&path).unwrap();
            assert_eq!(r.entries, vec![rec(1)], "flip at {cut}");
            assert!(r.torn_tail);
        }
    }

    #[test]
    fn a_torn_header_write_falls_back_to_the_other_slot() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.wal");
        let mut j = Journal::open(&path).unwrap().journal;
        j.append(&[rec(1)]).unwrap();
        let slot = j.slot;
        drop(j);
        // Damage the slot that is *not* current (as a torn reset would): frames stay valid.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[((1 - slot) * SLOT_SIZE + 3) as usize] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(Journal::open(&path).unwrap().entries, vec![rec(1)]);
    }
}
