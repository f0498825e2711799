//! What the daemon puts under the store's files (`store::io_hook`): nothing, unless asked for at
//! start.
//!
//! - With `OUTPOST_LOG` enabling `outpost::store::io=trace`, every write, `set_len` and sync of the
//!   journal, of redb's file and of its header copy is logged ("store io", and "store io synced" once a sync
//!   returned): what a commit and a fold do on the card. The kill drill times its kills by it.
//! - `OUTPOST_TEST_PANIC_WRITER_AFTER_SYNCS=N` (tests only): after N journal syncs of the
//!   running writer (one per commit, one per fold), it panics at its next journal write, before writing, to test that a
//!   dead writer ends the process (exit 1) and that nothing committed is lost. It is read once at
//!   start from the environment, never from input, and is inert unless set.

use crate::store::io_hook::{Hook, IoHook, Op, StoreFile};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

pub const PANIC_WRITER_ENV: &str = "OUTPOST_TEST_PANIC_WRITER_AFTER_SYNCS";
const TARGET: &str = "outpost::store::io";

pub struct DaemonHook {
    trace: bool,
    panic_after: Option<u64>,
    /// Set once the store is open: the open's own journal writes do not count.
    armed: AtomicBool,
    syncs: AtomicU64,
}

impl DaemonHook {
    /// The hook the environment and log filter ask for, or `None` (production: no hook at all).
    pub fn from_env() -> anyhow::Result<Option<Arc<DaemonHook>>> {
        let panic_after = match std::env::var(PANIC_WRITER_ENV) {
            Ok(v) => {
                Some(v.trim().parse::<u64>().map_err(|_| anyhow::anyhow!("{PANIC_WRITER_ENV}={v:?} is not a count"))?)
            }
            Err(_) => None,
        };
        let trace = tracing::enabled!(target: TARGET, tracing::Level::TRACE);
        if panic_after.is_some() {
            tracing::warn!("{PANIC_WRITER_ENV} is set: the store writer will panic on purpose (a test)");
        }
        Ok((trace || panic_after.is_some()).then(|| {
            Arc::new(DaemonHook { trace, panic_after, armed: AtomicBool::new(false), syncs: AtomicU64::new(0) })
        }))
    }

    pub fn hook(self: &Arc<Self>) -> Hook {
        Hook(Some(self.clone()))
    }

    /// From now on, journal syncs are the running writer's.
    pub fn arm(&self) {
        self.armed.store(true, Relaxed);
    }
}

fn file_name(file: StoreFile) -> &'static str {
    match file {
        StoreFile::Journal => "journal",
        StoreFile::Db => "db",
        StoreFile::Header => "header copy",
    }
}

impl IoHook for DaemonHook {
    fn before(&self, file: StoreFile, op: Op<'_>) -> std::io::Result<()> {
        if self.trace {
            let file = file_name(file);
            match op {
                Op::Write { offset, data } => {
                    tracing::trace!(target: TARGET, file, op = "write", offset, len = data.len(), "store io")
                }
                Op::SetLen(len) => tracing::trace!(target: TARGET, file, op = "set_len", len, "store io"),
                Op::Sync => tracing::trace!(target: TARGET, file, op = "sync", "store io"),
                Op::Rename => tracing::trace!(target: TARGET, file, op = "rename", "store io"),
            }
        }
        if let (Some(after), StoreFile::Journal, Op::Write { .. }) = (self.panic_after, file, op)
            && self.armed.load(Relaxed)
            && self.syncs.load(Relaxed) >= after
            && std::thread::current().name() == Some("store-writer")
        {
            panic!("{PANIC_WRITER_ENV}: the test-only writer panic after {after} journal syncs");
        }
        Ok(())
    }

    fn after(&self, file: StoreFile, op: Op<'_>) {
        if let Op::Sync = op {
            if self.trace {
                tracing::trace!(target: TARGET, file = file_name(file), op = "sync", "store io synced");
            }
            if file == StoreFile::Journal && self.armed.load(Relaxed) {
                self.syncs.fetch_add(1, Relaxed);
            }
        }
    }
}
