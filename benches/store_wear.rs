//! Bytes the store writes to disk per commit and per fold, and the resulting daily volume at a
//! given commit and fold interval (the SD-card wear figure in BENCHMARKS.md).
//!
//!     cargo bench --bench store_wear -- [DIR] [COMMIT_S] [FOLD_S]
//!
//! DIR (default: a new directory under ./target) must be on the filesystem you want to measure
//! (an SD card on a Pi). Each simulated commit holds one ISS position, as at the defaults
//! (10 s polls, 10 s commits); folds happen every FOLD_S / COMMIT_S commits. Measured with the
//! process's write_bytes (/proc/self/io): what the kernel sent to the storage layer.

use chrono::{Duration, Utc};
use outpost::domain::{IssPosition, Record};
use outpost::store::{Store, StoreOptions};

fn write_bytes() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").expect("/proc/self/io (Linux only)");
    io.lines().find_map(|l| l.strip_prefix("write_bytes: ")).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let dir = args
        .first()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(format!("target/store-wear-{}", std::process::id())));
    let commit_s: u64 = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(10);
    let fold_s: u64 = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(900);
    let commits_per_fold = (fold_s / commit_s).max(1);
    let folds = 8u64;
    let commits = commits_per_fold * folds;
    std::fs::create_dir_all(&dir).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let opts = StoreOptions {
        commit_interval: std::time::Duration::from_secs(3600),
        fold_interval: std::time::Duration::from_secs(86_400),
        ..StoreOptions::default()
    };
    let (_store, writer, _) = Store::open(&dir, "bench", opts).unwrap();
    let w = writer.handle();
    let direct = w.stats().journal_direct.load(std::sync::atomic::Ordering::Relaxed);
    let thread = writer.spawn().unwrap();
    let start = Utc::now() - Duration::days(30);
    let (mut commit_bytes, mut fold_bytes) = (0u64, 0u64);
    for i in 0..commits {
        w.append(Record::IssPosition(
            IssPosition {
                time: start + Duration::seconds((i * commit_s) as i64),
                latitude: (i as f64 / 50.0).sin() * 51.6,
                longitude: ((i as f64 * 0.7) % 360.0) - 180.0,
                altitude_km: Some(420.0),
                velocity_kmh: Some(27_600.0),
                visibility: None,
            }
            .rounded(),
        ));
        let before = write_bytes();
        rt.block_on(w.flush()).unwrap();
        commit_bytes += write_bytes() - before;
        if (i + 1) % commits_per_fold == 0 {
            let before = write_bytes();
            rt.block_on(w.fold()).unwrap();
            fold_bytes += write_bytes() - before;
        }
    }
    rt.block_on(w.shutdown()).unwrap();
    thread.join().unwrap();
    let per_commit = commit_bytes as f64 / commits as f64;
    let per_fold = fold_bytes as f64 / folds as f64;
    let per_day = per_commit * 86_400.0 / commit_s as f64 + per_fold * 86_400.0 / fold_s as f64;
    println!("journal mode:          {}", if direct { "direct (O_DIRECT)" } else { "buffered" });
    println!("commits measured:      {commits} ({commit_s} s apart), folds: {folds} ({fold_s} s apart)");
    println!("bytes per commit:      {per_commit:.0}");
    println!("bytes per fold:        {per_fold:.0}");
    println!(
        "bytes per day:         {:.1} MB (commit_interval_s = {commit_s}, fold_interval_s = {fold_s})",
        per_day / 1e6
    );
    let _ = std::fs::remove_dir_all(&dir);
}
