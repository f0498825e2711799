//! In-place upgrades of an older store, applied by `init_meta` at open, before anything else
//! writes to it.
//!
//! **1 -> 2** builds `iss_track_coarse` (every `COARSE_STRIDE`-th `iss_track` row) from
//! `iss_track`. A year of 10 s positions is about 3 M rows, so the index is built in bounded
//! transactions of `CHUNK_ROWS` coarse rows, each recording how far it got in META
//! (`UPGRADE_PROGRESS`) in the same transaction; every `CHUNKS_PER_SYNC`-th transaction is
//! durable (the others are not: a crash loses them together with their progress mark). A crash
//! mid-way resumes from the last durable mark. `store_format` becomes "2" only in the last
//! transaction, which is durable; until then an older binary still reads the store as format 1
//! (and may append positions: the build runs to the track's end as it is at each chunk).

use super::{COARSE_STRIDE, ISS_TRACK, ISS_TRACK_COARSE, META, STORE_FORMAT};
use anyhow::Context;
use redb::{Database, Durability, ReadableDatabase, ReadableTable};
use std::time::Instant;

/// META key: the next coarse key to build (absent: nothing built yet, or no upgrade under way).
const UPGRADE_PROGRESS: &str = "upgrade.coarse_next";

/// How the 1 -> 2 build is cut up; tests use small chunks.
#[derive(Debug, Clone, Copy)]
pub(super) struct Plan {
    /// Coarse rows per write transaction (each reads as many `iss_track` rows, 64 apart).
    pub chunk_rows: u64,
    /// One durable commit every this many chunks (and at the end).
    pub chunks_per_sync: u64,
}

/// 512 rows (32,768 positions, about 4 days at 10 s) per transaction: a few hundred KB of dirty
/// pages; a durable commit every 131,072 positions, about 24 fsyncs for a year.
pub(super) const DEFAULT_PLAN: Plan = Plan { chunk_rows: 512, chunks_per_sync: 4 };

/// Brings a format-1 store to the current format; nothing for a new or a current store (or one
/// of an unknown format, which `init_meta` refuses).
pub(super) fn to_current_format(db: &Database) -> anyhow::Result<()> {
    if stored_format(db)?.as_deref() == Some("1") {
        build_coarse_index(db, DEFAULT_PLAN, None)?;
    }
    Ok(())
}

fn stored_format(db: &Database) -> anyhow::Result<Option<String>> {
    let txn = db.begin_read()?;
    match txn.open_table(META) {
        Ok(meta) => Ok(meta.get("store_format")?.map(|v| v.value().to_owned())),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Builds `iss_track_coarse` from the progress mark on, `plan.chunk_rows` rows per transaction,
/// and sets the format to "2" at the end. `stop_after` (tests): return after that many chunks,
/// as if the process had died there. Returns true once the store is at format 2.
pub(super) fn build_coarse_index(db: &Database, plan: Plan, stop_after: Option<u64>) -> anyhow::Result<bool> {
    let started = Instant::now();
    let (mut next, positions) = {
        let txn = db.begin_read()?;
        let next = progress(&txn.open_table(META)?)?;
        let positions = txn.open_table(ISS_TRACK)?.last()?.map_or(0, |(k, _)| k.value() + 1);
        (next, positions)
    };
    if next == 0 {
        tracing::info!(
            positions,
            "upgrading the store from format 1 to {STORE_FORMAT}: building the coarse track index"
        );
    } else {
        tracing::info!(
            positions,
            done = (next * COARSE_STRIDE).min(positions),
            "resuming the store upgrade to format {STORE_FORMAT} where it was interrupted"
        );
    }
    let mut chunks = 0u64;
    loop {
        if stop_after.is_some_and(|n| chunks >= n) {
            return Ok(false);
        }
        chunks += 1;
        let mut txn = db.begin_write()?;
        let (done, built_to, positions) = {
            let track = txn.open_table(ISS_TRACK)?;
            let mut coarse = txn.open_table(ISS_TRACK_COARSE)?;
            let mut meta = txn.open_table(META)?;
            let from = progress(&meta)?;
            // Rows 0..coarse_end exist for the track as it is now.
            let positions = track.last()?.map_or(0, |(k, _)| k.value() + 1);
            let coarse_end = positions.div_ceil(COARSE_STRIDE);
            let to = (from + plan.chunk_rows).min(coarse_end);
            for k in from..to {
                let row = track
                    .get(k * COARSE_STRIDE)?
                    .with_context(|| format!("the track index has a hole at {}", k * COARSE_STRIDE))?
                    .value();
                coarse.insert(k, row)?;
            }
            let done = to == coarse_end;
            if done {
                meta.insert("store_format", STORE_FORMAT)?;
                meta.remove(UPGRADE_PROGRESS)?;
            } else {
                meta.insert(UPGRADE_PROGRESS, to.to_string().as_str())?;
            }
            (done, to, positions)
        };
        let durable = done || chunks.is_multiple_of(plan.chunks_per_sync);
        if durable {
            txn.set_durability(Durability::Immediate)?;
            txn.set_quick_repair(true);
        } else {
            txn.set_durability(Durability::None)?;
        }
        txn.commit().context("the store upgrade's commit failed")?;
        next = built_to;
        if done {
            tracing::info!(
                positions,
                coarse_rows = next,
                ms = started.elapsed().as_millis() as u64,
                "store upgraded to format {STORE_FORMAT}"
            );
            return Ok(true);
        }
        if durable {
            tracing::info!(
                done = next * COARSE_STRIDE,
                positions,
                "store upgrade in progress (coarse track index; resumes here after a crash)"
            );
        }
    }
}

fn progress(meta: &impl ReadableTable<&'static str, &'static str>) -> anyhow::Result<u64> {
    match meta.get(UPGRADE_PROGRESS)? {
        None => Ok(0),
        Some(v) => v.value().parse().with_context(|| format!("the store's {UPGRADE_PROGRESS} is {:?}", v.value())),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{DB_FILE, Store, StoreOptions, Track};
    use super::*;
    use crate::domain::{IssPosition, Record};
    use chrono::{DateTime, TimeZone, Utc};
    use std::path::Path;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap()
    }

    fn position(secs: i64, latitude: f64, longitude: f64) -> Record {
        let p =
            IssPosition { time: t(secs), latitude, longitude, altitude_km: None, velocity_kmh: None, visibility: None };
        Record::IssPosition(p.rounded())
    }

    fn block<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    }

    /// A store of `n` positions 10 s apart (plus a warning, so other kinds sit between them).
    fn fill(dir: &Path, n: i64) {
        let opts = StoreOptions { max_batch: 10_000, ..StoreOptions::default() };
        let (_store, writer, _) = Store::open(dir, "test", opts).unwrap();
        let w = writer.handle();
        let thread = writer.spawn().unwrap();
        for i in 0..n {
            if i == n / 3 {
                w.append(crate::domain::test_warning(3022, "2023-03-01", -8, 1, Some(2)));
            }
            w.append(position(10 * i, (i as f64 / 50.0).sin() * 51.6, ((i as f64 * 0.7) % 360.0) - 180.0));
        }
        block(w.shutdown()).unwrap();
        thread.join().unwrap();
    }

    /// Makes a format-2 store what format 1 wrote: no coarse index, format "1".
    fn downgrade_to_format_1(dir: &Path) {
        let db = Database::create(dir.join(DB_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        assert!(txn.delete_table(ISS_TRACK_COARSE).unwrap());
        txn.open_table(META).unwrap().insert("store_format", "1").unwrap();
        txn.commit().unwrap();
    }

    /// (format, progress mark, coarse rows) as stored.
    fn state(db: &Database) -> (String, Option<String>, u64) {
        use redb::ReadableTableMetadata;
        let txn = db.begin_read().unwrap();
        let meta = txn.open_table(META).unwrap();
        let format = meta.get("store_format").unwrap().unwrap().value().to_owned();
        let mark = meta.get(UPGRADE_PROGRESS).unwrap().map(|v| v.value().to_owned());
        let rows = match txn.open_table(ISS_TRACK_COARSE) {
            Ok(c) => c.len().unwrap(),
            Err(redb::TableError::TableDoesNotExist(_)) => 0,
            Err(e) => panic!("{e}"),
        };
        (format, mark, rows)
    }

    /// The coarse index holds exactly every 64th track row.
    fn assert_coarse_complete(store: &Store) {
        use redb::ReadableTableMetadata;
        let txn = store.db.begin_read().unwrap();
        let track = txn.open_table(ISS_TRACK).unwrap();
        let coarse = txn.open_table(ISS_TRACK_COARSE).unwrap();
        assert_eq!(coarse.len().unwrap(), track.len().unwrap().div_ceil(COARSE_STRIDE));
        for row in coarse.iter().unwrap() {
            let (k, v) = row.unwrap();
            assert_eq!(
                track.get(k.value() * COARSE_STRIDE).unwrap().unwrap().value(),
                v.value(),
                "coarse row {}",
                k.value()
            );
        }
    }

    /// Ranges long enough for the coarse index (and short ones that are not), with and without
    /// downsampling; the answers of both indexes compared.
    fn compare_with_full_index(store: &Store, n: i64) {
        let last = 10 * (n - 1);
        let cases: &[(i64, i64, Option<usize>)] = &[
            (0, last, Some(20)),
            (0, last, Some(25)),
            (0, last, Some(2_000)),
            (0, last, Some(2)),
            (0, last, Some(1)),
            (0, last, None),
            (-500, last + 500, Some(13)),
            (5, last - 5, Some(11)),
            (12_345, 12_345 + 5_120 * 10 * 4, Some(5)), // past the last position
            (12_345, 12_345 + 5_120 * 10, Some(11)),    // a step of 511 positions: the full index
            (777, 777 + 10 * 63, None),
            (last - 86_400, last, Some(50_000)),
            (last + 10, last + 1_000, Some(10)),
        ];
        let mut differed = 0;
        for &(from, to, max) in cases {
            let coarse: Track = store.track(t(from), t(to), max).unwrap();
            let full: Track = store.track_full_index(t(from), t(to), max).unwrap();
            let what = format!("{from}..={to} max {max:?}");
            assert_eq!(coarse.total, full.total, "{what}");
            assert_eq!(coarse.points.len(), full.points.len(), "{what}");
            assert_eq!(coarse.points.first(), full.points.first(), "{what}: first kept");
            assert_eq!(coarse.points.last(), full.points.last(), "{what}: last kept");
            differed += usize::from(coarse != full);
            for (c, f) in coarse.points.iter().zip(&full.points) {
                let apart = (c.time - f.time).num_seconds().abs();
                assert!(apart <= 10 * COARSE_STRIDE as i64 / 2, "{what}: {} vs {}", c.time, f.time);
            }
            assert!(coarse.points.windows(2).all(|w| w[0].time < w[1].time), "{what}: increasing, no repeats");
            // Every point is a stored position.
            for c in &coarse.points {
                let one = store.track(c.time, c.time, None).unwrap();
                assert_eq!(one.points, vec![c.clone()], "{what}");
            }
        }
        assert!(differed > 0, "some answers came from the coarse index");
    }

    #[test]
    fn an_interrupted_upgrade_resumes_and_ends_as_a_fresh_store() {
        let n = 64 * 200 + 17; // 201 coarse rows: 13 chunks of 16
        let plan = Plan { chunk_rows: 16, chunks_per_sync: 3 };
        let fresh = tempfile::tempdir().unwrap();
        fill(fresh.path(), n);
        let dir = tempfile::tempdir().unwrap();
        fill(dir.path(), n);
        downgrade_to_format_1(dir.path());
        {
            let db = Database::create(dir.path().join(DB_FILE)).unwrap();
            assert_eq!(state(&db), ("1".into(), None, 0));
            // Stopped after 7 chunks (the 3rd and 6th durable): the mark says 7 * 16, format still 1.
            assert!(!build_coarse_index(&db, plan, Some(7)).unwrap());
            let (format, mark, rows) = state(&db);
            assert_eq!(format, "1");
            assert_eq!(mark.as_deref(), Some("112"));
            assert_eq!(rows, 112);
        }
        {
            // A crash loses the non-durable seventh chunk: the mark and the rows go together.
            let db = Database::create(dir.path().join(DB_FILE)).unwrap();
            let (format, mark, rows) = state(&db);
            assert_eq!(format, "1");
            let mark: u64 = mark.unwrap().parse().unwrap();
            assert!(mark == 96 || mark == 112, "{mark}");
            assert_eq!(rows, mark);
            assert!(!build_coarse_index(&db, plan, Some(2)).unwrap());
            assert_eq!(state(&db).2, mark + 32);
        }
        // Store::open finishes the upgrade (with the default plan) and the result is a format-2 store.
        let (store, writer, _) = Store::open(dir.path(), "test", StoreOptions::default()).unwrap();
        assert_coarse_complete(&store);
        let (fresh_store, fresh_writer, _) = Store::open(fresh.path(), "test", StoreOptions::default()).unwrap();
        assert_coarse_complete(&fresh_store);
        let (from, to) = (t(0), t(10 * n));
        for max in [Some(3), Some(40), Some(1000), None] {
            assert_eq!(store.track(from, to, max).unwrap(), fresh_store.track(from, to, max).unwrap());
        }
        compare_with_full_index(&store, n);
        drop((store, writer, fresh_store, fresh_writer));
        let db = Database::create(dir.path().join(DB_FILE)).unwrap();
        assert_eq!(state(&db), (STORE_FORMAT.into(), None, (n as u64).div_ceil(COARSE_STRIDE)));
    }

    #[test]
    fn new_positions_keep_the_coarse_index_complete_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let n = 64 * 150 + 5;
        fill(dir.path(), n);
        let (store, writer, _) = Store::open(dir.path(), "test", StoreOptions::default()).unwrap();
        assert_coarse_complete(&store);
        compare_with_full_index(&store, n);
        drop((store, writer));
        // More positions after a reopen, through the same writer path.
        let opts = StoreOptions { max_batch: 100, ..StoreOptions::default() };
        let (store, writer, _) = Store::open(dir.path(), "test", opts).unwrap();
        let w = writer.handle();
        let thread = writer.spawn().unwrap();
        for i in n..n + 200 {
            w.append(position(10 * i, 1.0, 2.0));
        }
        block(w.shutdown()).unwrap();
        thread.join().unwrap();
        assert_coarse_complete(&store);
        compare_with_full_index(&store, n + 200);
    }

    #[test]
    fn a_store_of_an_unknown_format_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        fill(dir.path(), 10);
        {
            let db = Database::create(dir.path().join(DB_FILE)).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META).unwrap().insert("store_format", "3").unwrap();
            txn.commit().unwrap();
        }
        let err = Store::open(dir.path(), "test", StoreOptions::default()).err().unwrap();
        let msg = format!("{err:#}");
        assert!(msg.contains("written in format 3") && msg.contains("Use a newer Outpost"), "{msg}");
    }
}
