//! The `outpost` binary: everything is in the library; see `outpost::cli`.

use std::process::ExitCode;

/// One malloc arena for the whole process. glibc gives each thread that allocates its own arena
/// (up to 8 per core), and each keeps the memory its thread freed: with tokio's workers and
/// blocking threads, the daemon's steady RSS was about 8 MB higher (BENCHMARKS.md, Footprint).
/// Outpost rarely allocates from several threads at once; sync throughput did not change.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    // SAFETY: mallopt only sets an allocator parameter; it runs first in main, before any other
    // thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}

fn main() -> ExitCode {
    limit_malloc_arenas();
    outpost::cli::main()
}
