//! A seam under the store's two files, for the crash-state harness and fault injection.
//!
//! Every write, `set_len` and sync that the journal or redb's file receives passes through
//! `IoHook::before` (which may refuse it, as a failing card would: EIO, ENOSPC) and, once it
//! succeeded, `IoHook::after` (which may record it). Production stores have no hook; the cost is
//! one branch per operation.

use std::io;
use std::ops::Bound;
use std::sync::Arc;

/// Which of the store's files an operation touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreFile {
    Journal,
    Db,
}

/// One operation on a store file, as the device sees it (direct-I/O writes with their padding).
#[derive(Debug, Clone, Copy)]
pub enum Op<'a> {
    Write {
        offset: u64,
        data: &'a [u8],
    },
    SetLen(u64),
    /// `fdatasync` / `fsync`: everything written before it is on the device once it returns.
    Sync,
}

pub trait IoHook: Send + Sync {
    /// Called before the operation; an error is returned to the store instead of doing it.
    fn before(&self, _file: StoreFile, _op: Op<'_>) -> io::Result<()> {
        Ok(())
    }
    /// Called after the operation succeeded.
    fn after(&self, _file: StoreFile, _op: Op<'_>) {}
}

/// The hook a store was opened with, if any (cheap to clone into the journal and redb's backend).
#[derive(Clone, Default)]
pub struct Hook(pub Option<Arc<dyn IoHook>>);

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Hook(set)" } else { "Hook(none)" })
    }
}

impl Hook {
    /// Runs `op` through the hook: `before` may refuse it, `after` sees it once `run` succeeded.
    pub(crate) fn run<T>(&self, file: StoreFile, op: Op<'_>, run: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        match &self.0 {
            None => run(),
            Some(hook) => {
                hook.before(file, op)?;
                let out = run()?;
                hook.after(file, op);
                Ok(out)
            }
        }
    }
}

/// redb's file backend with every mutation passed through the hook.
#[derive(Debug)]
pub(crate) struct HookedBackend {
    pub(crate) inner: redb::backends::FileBackend,
    pub(crate) hook: Hook,
}

impl redb::StorageBackend for HookedBackend {
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
