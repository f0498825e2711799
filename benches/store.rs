//! Store figures for BENCHMARKS.md: append throughput, store size per year, track query times.
//!
//!     cargo bench --bench store                    # everything (about 3 minutes on 2 cores)
//!     cargo bench --bench store -- append          # one part: append | size | track (includes the upgrade)
//!     cargo bench --bench store -- size 62         # the size fill over 62 simulated days (default 31)
//!
//! Stores are created under $OUTPOST_BENCH_DIR (default: the system temp dir), which must be on
//! the filesystem you want to measure (not tmpfs: the journal then falls back to buffered writes).
//!
//! - **append**: records per second through the single writer (journal append with an O_DIRECT
//!   write + fsync, then a non-durable redb commit), at 1, 10, 100 and 1,024 records per commit.
//!   One record per commit is the default policy at the default 10 s polls (one position per
//!   `commit_interval_s`), run back to back with a fold every 90 commits (900 s / 10 s); 1,024 is
//!   the writer's batch limit (`max_batch`), what a burst (a backfill) gets.
//! - **size**: the default commit pattern, time-compressed: one position per commit, a TLE every
//!   12 h, the day's avalanche warnings (23 class-A regions, a third of them published twice) and
//!   a fold every 90 commits; the store's size on disk (allocated blocks: redb grows its file ahead
//!   of use, in doubling steps) every simulated week, extrapolated to a year from the growth
//!   between the first week and the end.
//! - **track**: a year of 10 s positions (3,153,600, bulk-filled with the same extras), then
//!   `Store::track` over the newest day (8,640 points, all returned, as `/api/iss/track` does
//!   below its 50,000-point cap) and over the whole year downsampled to 2,000 points; warm (the
//!   store's file in the page cache, redb's own cache warm) and cold (the store reopened and its
//!   file evicted from the page cache before each query), each through the coarse index (format
//!   2) and through the full index only (format 1's query) in the same run; the two indexes'
//!   sizes; then the same store turned back into format 1 and upgraded in place by
//!   `Store::open` (timed against an open without an upgrade).

mod common;

use chrono::{Duration, Utc};
use common::*;
use outpost::domain::Record;
use outpost::store::{Store, StoreOptions};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let part = args.first().map(String::as_str).unwrap_or("all");
    println!("machine: {}", machine());
    if matches!(part, "all" | "append") {
        append();
    }
    if matches!(part, "all" | "size") {
        let days = args.get(1).and_then(|d| d.parse().ok()).unwrap_or(31);
        size(days);
    }
    if matches!(part, "all" | "track") {
        track();
    }
    println!("done: {}", load());
}

fn append() {
    println!("\n== append throughput (records per commit -> records/s)");
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    // (records per commit, commits, fold every n commits: 0 = only when the journal fills)
    for (per_commit, commits, fold_every) in [(1u64, 3_000u64, 90u64), (10, 1_500, 0), (100, 500, 0), (1_024, 200, 0)] {
        let dir = BenchDir::new("append");
        let (_store, writer, _) = Store::open(dir.path(), "bench", StoreOptions::default()).unwrap();
        let w = writer.handle();
        let direct = w.stats().journal_direct.load(std::sync::atomic::Ordering::Relaxed);
        let thread = writer.spawn().unwrap();
        let start = Utc::now() - Duration::days(60);
        let mut latencies = Vec::with_capacity(commits as usize);
        let mut n = 0u64;
        let clock = Instant::now();
        for c in 0..commits {
            let t0 = Instant::now();
            for _ in 0..per_commit {
                w.append(Record::IssPosition(position(start + Duration::seconds(10 * n as i64))));
                n += 1;
            }
            rt.block_on(w.flush()).unwrap();
            latencies.push(t0.elapsed().as_secs_f64() * 1e3);
            if fold_every > 0 && (c + 1) % fold_every == 0 {
                rt.block_on(w.fold()).unwrap();
            }
        }
        rt.block_on(w.fold()).unwrap();
        let secs = clock.elapsed().as_secs_f64();
        let folds = w.stats().folds.load(std::sync::atomic::Ordering::Relaxed);
        rt.block_on(w.shutdown()).unwrap();
        thread.join().unwrap();
        let (_, median, max) = stats_ms(latencies);
        println!(
            "{per_commit:>5} per commit: {:>9.0} records/s  ({n} records, {commits} commits, {folds} folds, {secs:.2} s; commit median {median:.2} ms, max {max:.2} ms; journal {})",
            n as f64 / secs,
            if direct { "O_DIRECT" } else { "buffered" }
        );
    }
}

fn size(days: u64) {
    println!("\n== store size, default commit pattern ({days} simulated days)");
    let dir = BenchDir::new("size");
    let (_store, writer, _) = Store::open(dir.path(), "bench", StoreOptions::default()).unwrap();
    let w = writer.handle();
    let thread = writer.spawn().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let start = Utc::now() - Duration::days(days as i64 + 1);
    let templates = warning_templates();
    let mut reg_id = 1_000_000;
    let per_day = 8_640u64;
    let mut weekly = Vec::new();
    let clock = Instant::now();
    for i in 0..days * per_day {
        let t = start + Duration::seconds(10 * i as i64);
        if i.is_multiple_of(4_320) {
            w.append(Record::Tle(tle_at(t - Duration::hours(3))));
        }
        if i % per_day == 0 {
            for warning in warnings_for(t.date_naive(), &templates, &mut reg_id) {
                w.append(Record::AvalancheWarning(warning));
            }
        }
        w.append(Record::IssPosition(position(t)));
        rt.block_on(w.flush()).unwrap();
        if (i + 1).is_multiple_of(90) {
            rt.block_on(w.fold()).unwrap();
        }
        let day = (i + 1) / per_day;
        if (i + 1).is_multiple_of(per_day) && (day.is_multiple_of(7) || day == days) {
            rt.block_on(w.fold()).unwrap();
            let bytes = dir_allocated(dir.path());
            println!(
                "day {day:>3}: {:>7.1} MB on disk (allocated; file length {:.1} MB) ({:.0} s so far)",
                bytes as f64 / 1e6,
                dir_size(dir.path()) as f64 / 1e6,
                clock.elapsed().as_secs_f64()
            );
            weekly.push((day, bytes));
        }
    }
    let s = rt.block_on(async { w.shutdown().await }).unwrap();
    thread.join().unwrap();
    let (d0, b0) = weekly[0];
    let (d1, b1) = *weekly.last().unwrap();
    let per_day_bytes = (b1 - b0) as f64 / (d1 - d0) as f64;
    println!(
        "growth day {d0}..{d1}: {:.2} MB/day -> {:.0} MB per year (extrapolated; {s} records stored)",
        per_day_bytes / 1e6,
        per_day_bytes * 365.0 / 1e6
    );
}

fn track() {
    println!("\n== track queries on a year of 10 s positions");
    let dir = BenchDir::new("track");
    let clock = Instant::now();
    let end = Utc::now();
    let f = fill(dir.path(), end, 365 * 8_640, true);
    println!(
        "bulk fill: {} positions, {} TLEs, {} warnings in {:.1} s; {:.0} MB on disk (allocated; file length {:.0} MB)",
        f.positions,
        f.tles,
        f.warnings,
        clock.elapsed().as_secs_f64(),
        dir_allocated(dir.path()) as f64 / 1e6,
        dir_size(dir.path()) as f64 / 1e6
    );
    let db = dir.path().join(outpost::store::DB_FILE);
    for table in [ISS_TRACK, ISS_TRACK_COARSE] {
        println!("{}", table_size(&db, table));
    }
    let last = end - Duration::seconds(10);
    let day = (last - Duration::days(1), last, 50_000usize, "1 day (8,640 points)");
    let year = (last - Duration::days(365), last, 2_000usize, "1 year -> 2,000 points");
    let mut answers = Vec::new();
    for (from, to, max, what) in [day, year] {
        // The format-2 query (coarse index) and, in the same run, format 1's (full index only).
        for coarse in [true, false] {
            let query = |store: &Store| {
                if coarse { store.track(from, to, Some(max)) } else { store.track_full_index(from, to, Some(max)) }
                    .unwrap()
            };
            // Warm: one store handle, the same query repeated.
            let (store, writer, _) = Store::open(dir.path(), "bench", StoreOptions::default()).unwrap();
            let mut warm = Vec::new();
            let mut answer = None;
            for _ in 0..50 {
                let t0 = Instant::now();
                let tr = query(&store);
                warm.push(t0.elapsed().as_secs_f64() * 1e3);
                answer = Some(tr);
            }
            drop((store, writer));
            let answer = answer.unwrap();
            // Cold: the store reopened, then its file dropped from the page cache, before each
            // query (in that order: opening reads the whole file to check it).
            let mut cold = Vec::new();
            for _ in 0..5 {
                let (store, writer, _) = Store::open(dir.path(), "bench", StoreOptions::default()).unwrap();
                evict(&db);
                let t0 = Instant::now();
                let tr = query(&store);
                cold.push(t0.elapsed().as_secs_f64() * 1e3);
                assert_eq!(tr, answer);
                drop((store, writer));
            }
            let (wmin, wmed, wmax) = stats_ms(warm);
            let (cmin, cmed, cmax) = stats_ms(cold);
            println!(
                "{what}, {}: {} points; warm median {wmed:.2} ms (min {wmin:.2}, max {wmax:.2}, 50 runs); cold median {cmed:.2} ms (min {cmin:.2}, max {cmax:.2}, 5 runs)",
                if coarse { "coarse index (format 2)" } else { "full index only (format 1)" },
                answer.points.len()
            );
            answers.push((what, coarse, answer));
        }
    }
    // How far the coarse answer's points are from the full index's (same count, same ends).
    for pair in answers.chunks(2) {
        let [(what, _, c), (_, _, f)] = pair else { unreachable!() };
        assert_eq!(
            (c.total, c.points.len(), c.points.first(), c.points.last()),
            (f.total, f.points.len(), f.points.first(), f.points.last())
        );
        let apart =
            c.points.iter().zip(&f.points).map(|(c, f)| (c.time - f.time).num_seconds().abs()).max().unwrap_or(0);
        println!("{what}: coarse vs full index: same count and ends, points at most {apart} s apart");
    }
    upgrade(dir.path(), &db);
}

const ISS_TRACK: redb::TableDefinition<u64, (i64, i32, i32, u64)> = redb::TableDefinition::new("iss_track");
const ISS_TRACK_COARSE: redb::TableDefinition<u64, (i64, i32, i32, u64)> =
    redb::TableDefinition::new("iss_track_coarse");
const META: redb::TableDefinition<&str, &str> = redb::TableDefinition::new("meta");

/// A table's rows and pages, read from redb's file with the store closed.
fn table_size(db: &std::path::Path, table: redb::TableDefinition<u64, (i64, i32, i32, u64)>) -> String {
    use redb::{ReadableDatabase, ReadableTableMetadata};
    let db = redb::Database::open(db).unwrap();
    let txn = db.begin_read().unwrap();
    let t = txn.open_table(table).unwrap();
    let s = t.stats().unwrap();
    format!(
        "table {}: {} rows, {} leaf + {} branch pages ({:.2} MB of pages; {:.2} MB stored)",
        redb::TableHandle::name(&table),
        t.len().unwrap(),
        s.leaf_pages(),
        s.branch_pages(),
        (s.leaf_pages() + s.branch_pages()) as f64 * 4096.0 / 1e6,
        s.stored_bytes() as f64 / 1e6
    )
}

/// The year's store made format 1 again (no coarse index), then opened by this build, which
/// upgrades it in place: the open timed against an open of the same store without an upgrade,
/// both with the file dropped from the page cache first.
fn upgrade(dir: &std::path::Path, db_path: &std::path::Path) {
    println!("\n== upgrade of the year's store from format 1");
    let timed_open = |verify: bool| {
        evict(db_path);
        let opts = StoreOptions { verify_on_open: verify, ..StoreOptions::default() };
        let t0 = Instant::now();
        let (store, writer, _) = Store::open(dir, "bench", opts).unwrap();
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        drop((store, writer));
        ms
    };
    for verify in [false, true] {
        {
            let db = redb::Database::create(db_path).unwrap();
            let txn = db.begin_write().unwrap();
            assert!(txn.delete_table(ISS_TRACK_COARSE).unwrap());
            txn.open_table(META).unwrap().insert("store_format", "1").unwrap();
            txn.commit().unwrap();
        }
        let with_upgrade = timed_open(verify);
        let without = timed_open(verify);
        println!(
            "Store::open, page cache cold, verify_on_open {verify}: {with_upgrade:.0} ms with the upgrade, {without:.0} ms without: the upgrade took {:.0} ms",
            with_upgrade - without
        );
    }
    println!("{}", table_size(db_path, ISS_TRACK_COARSE));
}
