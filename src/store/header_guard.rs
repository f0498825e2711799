//! A double-write guard for redb's super-header (InnoDB's doublewrite idea, for one sector).
//!
//! redb 4.5 keeps its magic number, god byte and *both* commit slots in the first
//! `DB_HEADER_SIZE` (320) bytes of its file, which it rewrites in place (one 320-byte write at
//! offset 0, see `write_header` in redb's `page_manager.rs`); every other write lands at or after
//! the first page (4096). SD cards do not promise that a sector write is atomic: a torn write of
//! that sector loses every durable commit at once, and redb refuses the file ("Not a redb
//! database: magic number mismatch"; a garbled commit slot: "Primary is corrupted despite 2-phase
//! commit", "Both commit slots are corrupted"; or a garbled region count).
//!
//! So every write redb makes to its first sector goes first to `outpost.redb.hdr`: one 512-byte
//! sector `magic "OUTPOSTH" | len u32 | crc32(len | bytes) u32 | bytes`, written and
//! `fdatasync`ed, and only then to redb's file. When redb refuses its file and the side file is
//! valid and differs from the header on disk, `Store::open` writes the side file's bytes back over
//! the header, syncs, warns and opens again (`restore`).
//!
//! Why restoring is safe: the side file holds the header redb most recently *began* to write.
//! - Outpost's durable commits are all 2-phase (quick-repair requires it): redb syncs the data
//!   pages before it writes the header that makes them primary, and its other header writes (the
//!   recovery flag at open, the shutdown header) come after a flush too. So the header in the side
//!   file never names a page that is not on the device. More generally, once redb has issued a
//!   header write the device may persist it whole at any moment before the next flush; redb's own
//!   recovery must already accept that state, and restoring is exactly that state.
//! - The side file is written and synced before the header write starts: a torn side-file write
//!   (its CRC fails) means redb's header was not touched yet, so there is nothing to restore.
//!
//! A side file that names another file's header (a store file restored from a copy beside a stale
//! side file) is caught by redb itself: its commit slots are checksummed, and the page check at
//! start verifies every page against the restored roots. A restore that does not make redb open
//! is undone, so a refused start leaves the file as it was.
//!
//! Cost: one sector write and one fdatasync per redb header write, which happen only at durable
//! commits (a fold every `fold_interval_s`, open and shutdown), not per journal commit.

use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Bound;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::io_hook::{Hook, Op, StoreFile};

const MAGIC: &[u8; 8] = b"OUTPOSTH";
const SECTOR: usize = 512;
const HEAD: usize = 16;
/// The bytes of redb's file the side file covers: redb 4.5's super-header (`DB_HEADER_SIZE`).
pub(crate) const HEADER_BYTES: usize = 320;

/// The side file of a store's redb file.
pub(crate) fn side_path(dir: &Path) -> PathBuf {
    dir.join(super::HEADER_FILE)
}

/// redb's file backend: every mutation passes through the hook (tests), and every write to the
/// super-header is written to the side file first (always).
#[derive(Debug)]
pub(crate) struct GuardedBackend {
    inner: redb::backends::FileBackend,
    side: File,
    hook: Hook,
}

impl GuardedBackend {
    /// Opens (creating it if missing, then fsyncing the directory) the side file at `side_path`.
    pub(crate) fn new(inner: redb::backends::FileBackend, side_path: &Path, hook: Hook) -> io::Result<Self> {
        let created = !side_path.exists();
        let side = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(side_path)?;
        if created && let Some(dir) = side_path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(GuardedBackend { inner, side, hook })
    }

    /// Writes the first `HEADER_BYTES` of redb's file as they will be after `data` is written at
    /// `offset` into the side file, and syncs it.
    fn save_header(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        use redb::StorageBackend;
        let mut header = vec![0u8; HEADER_BYTES];
        let len = self.inner.len()?.min(HEADER_BYTES as u64) as usize;
        if len > 0 {
            self.inner.read(0, &mut header[..len])?;
        }
        let from = offset as usize;
        let to = (from + data.len()).min(HEADER_BYTES);
        header[from..to].copy_from_slice(&data[..to - from]);
        let sector = encode(&header);
        self.hook
            .run(StoreFile::Header, Op::Write { offset: 0, data: &sector }, || self.side.write_all_at(&sector, 0))?;
        self.hook.run(StoreFile::Header, Op::Sync, || self.side.sync_data())
    }
}

fn encode(header: &[u8]) -> Vec<u8> {
    let mut sector = vec![0u8; SECTOR];
    let len = header.len() as u32;
    sector[..8].copy_from_slice(MAGIC);
    sector[8..12].copy_from_slice(&len.to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&len.to_le_bytes());
    crc.update(header);
    sector[12..16].copy_from_slice(&crc.finalize().to_le_bytes());
    sector[HEAD..HEAD + header.len()].copy_from_slice(header);
    sector
}

/// The header bytes a valid side file holds, or `None` (absent, empty, torn).
fn decode(sector: &[u8]) -> Option<&[u8]> {
    if sector.len() < HEAD || &sector[..8] != MAGIC {
        return None;
    }
    let len = u32::from_le_bytes(sector[8..12].try_into().ok()?);
    let crc = u32::from_le_bytes(sector[12..16].try_into().ok()?);
    let bytes = sector.get(HEAD..HEAD + len as usize)?;
    let mut h = crc32fast::Hasher::new();
    h.update(&len.to_le_bytes());
    h.update(bytes);
    (h.finalize() == crc).then_some(bytes)
}

/// What `restore` did.
pub(crate) enum Restored {
    /// The side file is valid and differs from redb's header: it was written back. `undo` puts
    /// the bytes it replaced back.
    Header { undo: Vec<u8> },
    /// Nothing to restore: no valid side file, or redb's header already holds its bytes.
    Nothing,
}

/// Writes the side file's header over redb's (see the module docs), and syncs it.
pub(crate) fn restore(db_path: &Path, side_path: &Path, hook: &Hook) -> io::Result<Restored> {
    let Ok(sector) = std::fs::read(side_path) else { return Ok(Restored::Nothing) };
    let Some(saved) = decode(&sector) else { return Ok(Restored::Nothing) };
    let file = OpenOptions::new().read(true).write(true).open(db_path)?;
    let mut current = vec![0u8; saved.len()];
    let len = file.metadata()?.len().min(saved.len() as u64) as usize;
    file.read_exact_at(&mut current[..len], 0)?;
    if current == saved {
        return Ok(Restored::Nothing);
    }
    write_header(&file, saved, hook)?;
    Ok(Restored::Header { undo: current })
}

/// Puts back what `restore` replaced (the restore did not make redb open the file).
pub(crate) fn undo(db_path: &Path, bytes: &[u8], hook: &Hook) -> io::Result<()> {
    let file = OpenOptions::new().write(true).open(db_path)?;
    write_header(&file, bytes, hook)
}

fn write_header(file: &File, bytes: &[u8], hook: &Hook) -> io::Result<()> {
    hook.run(StoreFile::Db, Op::Write { offset: 0, data: bytes }, || file.write_all_at(bytes, 0))?;
    hook.run(StoreFile::Db, Op::Sync, || file.sync_data())
}

impl redb::StorageBackend for GuardedBackend {
    fn len(&self) -> Result<u64, io::Error> {
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.hook.run(StoreFile::Db, Op::SetLen(len), || self.inner.set_len(len))
    }
    fn sync_data(&self) -> Result<(), io::Error> {
        self.hook.run(StoreFile::Db, Op::Sync, || self.inner.sync_data())
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        if offset < HEADER_BYTES as u64 {
            // The side file first: a crash during the write below then finds this header there.
            self.save_header(offset, data)?;
        }
        self.hook.run(StoreFile::Db, Op::Write { offset, data }, || self.inner.write(offset, data))
    }
    fn close(&self) -> Result<(), io::Error> {
        self.inner.close()
    }
    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, redb::BackendError> {
        self.inner.try_lock_range(start, end)
    }
    fn try_lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, redb::BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }
    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), redb::BackendError> {
        self.inner.lock_range(start, end)
    }
    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), redb::BackendError> {
        self.inner.lock_shared_range(start, end)
    }
    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), redb::BackendError> {
        self.inner.unlock_range(start, end)
    }
    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, redb::BackendError> {
        self.inner.query_lock_range(start, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_side_file_round_trips_and_a_torn_one_is_invalid() {
        let header: Vec<u8> = (0..HEADER_BYTES).map(|i| i as u8).collect();
        let sector = encode(&header);
        assert_eq!(sector.len(), SECTOR);
        assert_eq!(decode(&sector), Some(&header[..]));
        for cut in [0, 9, HEAD, HEAD + 100, HEAD + HEADER_BYTES - 1] {
            let mut torn = sector.clone();
            torn[cut..].fill(0);
            assert_eq!(decode(&torn), None, "cut at {cut}");
        }
        assert_eq!(decode(&[]), None);
    }

    /// Every write redb makes below its first page is the super-header (one write at offset 0
    /// of at most `HEADER_BYTES`): what the side file covers is all of it.
    #[test]
    fn redb_writes_only_its_header_to_the_first_sector() {
        use std::sync::{Arc, Mutex};
        struct Writes(Mutex<Vec<(u64, usize)>>);
        impl super::super::io_hook::IoHook for Writes {
            fn after(&self, file: StoreFile, op: Op<'_>) {
                if let (StoreFile::Db, Op::Write { offset, data }) = (file, op) {
                    self.0.lock().unwrap().push((offset, data.len()));
                }
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let hook = Arc::new(Writes(Mutex::default()));
        let opts =
            super::super::StoreOptions { io_hook: Hook(Some(hook.clone())), ..super::super::StoreOptions::default() };
        let (_store, writer, _) = super::super::Store::open(dir.path(), "s", opts).unwrap();
        let w = writer.handle();
        let thread = writer.spawn().unwrap();
        w.append(super::super::crash_states::position(1));
        super::super::crash_states::block(w.fold()).unwrap();
        super::super::crash_states::block(w.shutdown()).unwrap();
        thread.join().unwrap();
        let writes = hook.0.lock().unwrap().clone();
        let low: Vec<_> = writes.iter().filter(|(o, _)| *o < 4096).collect();
        assert!(!low.is_empty());
        assert!(low.iter().all(|&&(o, l)| o == 0 && l == HEADER_BYTES), "{low:?}");
        let side = std::fs::read(dir.path().join(super::super::HEADER_FILE)).unwrap();
        let db = std::fs::read(dir.path().join(super::super::DB_FILE)).unwrap();
        assert_eq!(decode(&side), Some(&db[..HEADER_BYTES]), "the side file holds the header on disk");
    }
}
