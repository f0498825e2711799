//! A seam under the store's two files, for the crash-state harness and fault injection.
//!
//! Every write, `set_len`, sync and rename that the store's files receive passes through
//! `IoHook::before` (which may refuse it, as a failing card would: EIO, ENOSPC) and, once it
//! succeeded, `IoHook::after` (which may record it). Production stores have no hook; the cost is
//! one branch per operation.

use std::io;
use std::sync::Arc;

/// Which of the store's files an operation touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreFile {
    Journal,
    Db,
    /// `outpost.redb.hdr`, the copy of redb's super-header (`header_guard`).
    Header,
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
    /// A new store's file renamed from its creation name (`<name>.new`) to its own, and the
    /// directory fsynced: it is in place once this returns.
    Rename,
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
