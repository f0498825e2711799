use super::*;
use crate::domain::{IssPosition, Kind, Tle};
use chrono::{DateTime, TimeZone, Utc};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap()
}

fn pos(secs: i64) -> Record {
    Record::IssPosition(
        IssPosition {
            time: t(secs),
            latitude: (secs as f64 / 100.0).sin() * 51.6,
            longitude: ((secs as f64 * 0.6) % 360.0) - 180.0,
            altitude_km: Some(420.0),
            velocity_kmh: None,
            visibility: None,
        }
        .rounded(),
    )
}

use crate::domain::test_warning as warning;

fn opts() -> StoreOptions {
    StoreOptions {
        commit_interval: Duration::from_secs(3600),
        fold_interval: Duration::from_secs(3600),
        ..StoreOptions::default()
    }
}

/// Opens a store and runs its writer; returns the read handle, a writer handle and the thread.
fn open(dir: &Path) -> (Store, WriterHandle, std::thread::JoinHandle<()>, OpenReport) {
    let (store, writer, report) = Store::open(dir, "test-station", opts()).unwrap();
    let handle = writer.handle();
    (store, handle, writer.spawn().unwrap(), report)
}

/// A clean stop: the writer commits, folds and ends.
fn stop(w: WriterHandle, thread: std::thread::JoinHandle<()>) {
    block(w.shutdown()).unwrap();
    thread.join().unwrap();
}

fn block<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
}

#[test]
fn records_get_gapless_sequence_numbers_and_duplicates_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (store, w, thread, _) = open(dir.path());
    for s in [0, 10, 20, 20, 15, 30] {
        w.append(pos(s));
    }
    w.append(warning(3022, "2023-03-01", -8, 1, Some(2)));
    w.append(warning(3022, "2023-03-01", -8, 1, Some(2)));
    assert_eq!(block(w.flush()).unwrap(), 5);
    assert_eq!(w.stats().stored(Kind::IssPosition), 4);
    assert_eq!(w.stats().duplicates(Kind::IssPosition), 2, "repeat and out-of-order time");
    assert_eq!(w.stats().duplicates(Kind::AvalancheWarning), 1);
    let all = store.read_after(0, 100).unwrap();
    assert_eq!(all.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5]);
    assert!(all.iter().all(|r| r.station == "test-station"));
    assert_eq!(all[0].id(), format!("test-station/iss.position/{}", t(0).timestamp_millis()));
    assert_eq!(store.read_after(3, 1).unwrap()[0].seq, 4);
    stop(w, thread);
}

#[test]
fn committed_records_survive_reopen_and_nothing_is_stored_twice() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_, w, thread, _) = open(dir.path());
        for s in 0..100 {
            w.append(pos(s * 10));
        }
        stop(w, thread);
    }
    let (store, w, thread, report) = open(dir.path());
    assert_eq!(report.replayed, 0, "a clean shutdown folds everything");
    for s in 90..110 {
        w.append(pos(s * 10)); // the first ten are re-fetches
    }
    assert_eq!(block(w.flush()).unwrap(), 110);
    assert_eq!(store.summary().unwrap().kinds[0].count, 110);
    stop(w, thread);
}

#[test]
fn journal_entries_missing_from_redb_are_replayed_on_open() {
    // Simulates a crash after the journal fsync but before any durable redb commit: write the
    // frames redb never saw straight into the journal, then open.
    let dir = tempfile::tempdir().unwrap();
    {
        let (_, w, thread, _) = open(dir.path());
        w.append(pos(0));
        stop(w, thread);
    }
    {
        let mut j = Journal::open(&dir.path().join(JOURNAL_FILE)).unwrap().journal;
        let entries: Vec<Entry> = (1..=3)
            .map(|i| Entry::Record { seq: i + 1, bytes: codec::encode(0, &pos(i as i64 * 10)) })
            .chain([Entry::Cursor { name: "kafka".into(), seq: 3 }])
            .collect();
        // seq 1 again (already durable) must be skipped, not duplicated.
        j.append(&[Entry::Record { seq: 1, bytes: codec::encode(0, &pos(0)) }]).unwrap();
        j.append(&entries).unwrap();
    }
    let (store, w, thread, report) = open(dir.path());
    assert_eq!(report.replayed, 3);
    let all = store.read_after(0, 10).unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all[3].record, pos(30));
    assert_eq!(store.cursor("kafka").unwrap(), 3);
    // The replay was folded and the journal reset: a second open replays nothing.
    stop(w, thread);
    drop(store);
    let (_, w, thread, report) = open(dir.path());
    assert_eq!(report.replayed, 0);
    stop(w, thread);
}

#[test]
fn a_gap_in_the_journal_is_refused_loudly() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_, w, thread, _) = open(dir.path());
        stop(w, thread);
    }
    {
        let mut j = Journal::open(&dir.path().join(JOURNAL_FILE)).unwrap().journal;
        j.append(&[Entry::Record { seq: 5, bytes: codec::encode(0, &pos(0)) }]).unwrap();
    }
    let err = Store::open(dir.path(), "test-station", opts()).err().expect("must refuse");
    assert!(format!("{err:#}").contains("skips from seq 0 to 5"), "{err:#}");
}

#[test]
fn track_counts_and_downsamples_without_losing_the_ends() {
    let dir = tempfile::tempdir().unwrap();
    let (store, w, thread, _) = open(dir.path());
    for s in 0..1000 {
        w.append(pos(s * 10));
    }
    block(w.flush()).unwrap();
    let all = store.track(t(0), t(9990), None).unwrap();
    assert_eq!((all.total, all.points.len()), (1000, 1000));
    assert!(all.points.windows(2).all(|p| p[0].time < p[1].time));

    let part = store.track(t(95), t(205), None).unwrap();
    assert_eq!(part.total, 11, "100..=200 inclusive");
    assert_eq!(part.points.first().unwrap().time, t(100));
    assert_eq!(part.points.last().unwrap().time, t(200));

    let down = store.track(t(0), t(9990), Some(7)).unwrap();
    assert_eq!(down.total, 1000);
    assert_eq!(down.points.len(), 7);
    assert_eq!(down.points[0].time, t(0));
    assert_eq!(down.points[6].time, t(9990));
    let steps: Vec<i64> = down.points.windows(2).map(|p| (p[1].time - p[0].time).num_seconds()).collect();
    assert!(steps.iter().all(|s| (1650..=1670).contains(s)), "even steps: {steps:?}");

    assert_eq!(store.track(t(0), t(9990), Some(1)).unwrap().points.len(), 1);
    assert_eq!(store.track(t(20_000), t(30_000), Some(10)).unwrap().total, 0);
    assert_eq!(store.track(t(500), t(100), None).unwrap().total, 0, "reversed range is empty");
    let latest = store.latest_position().unwrap().unwrap();
    assert_eq!(Record::IssPosition(latest), pos(9990));
    stop(w, thread);
}

#[test]
fn avalanche_shows_the_newest_version_and_prefers_assessed_over_placeholders() {
    let dir = tempfile::tempdir().unwrap();
    let (store, w, thread, _) = open(dir.path());
    w.append(warning(3022, "2023-03-01", -8, 100, Some(2)));
    w.append(warning(3022, "2023-03-01", 9, 101, Some(3))); // re-published next morning
    w.append(warning(3011, "2023-03-01", -8, 200, Some(1)));
    w.append(warning(3011, "2023-03-01", 0, 0, None)); // a later "not assessed" placeholder
    w.append(warning(3019, "2023-03-01", 0, 0, None));
    w.append(warning(3022, "2023-03-02", -8, 102, Some(4)));
    block(w.flush()).unwrap();
    let day: Vec<(u32, u64, Option<u8>)> = store
        .avalanche_for_date("2023-03-01".parse().unwrap())
        .unwrap()
        .iter()
        .map(|w| (w.region_id, w.reg_id, w.danger_level.level()))
        .collect();
    assert_eq!(day, vec![(3011, 200, Some(1)), (3019, 0, None), (3022, 101, Some(3))]);
    assert!(store.avalanche_for_date("2023-02-28".parse().unwrap()).unwrap().is_empty());
    let newest = store.newest_warning_dates("2023-03-01".parse().unwrap()).unwrap();
    assert_eq!(newest.get(&3022), Some(&"2023-03-02".parse().unwrap()));
    assert_eq!(newest.get(&3011), Some(&"2023-03-01".parse().unwrap()));
    stop(w, thread);
}

#[test]
fn tles_are_kept_per_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let (store, w, thread, _) = open(dir.path());
    let tle = |day: i64| {
        Record::Tle(Tle {
            epoch: t(day * 86_400),
            norad_id: 25544,
            name: None,
            line1: format!("l1-{day}"),
            line2: format!("l2-{day}"),
        })
    };
    for d in [1, 0, 1, 2] {
        w.append(tle(d));
    }
    block(w.flush()).unwrap();
    assert_eq!(w.stats().stored(Kind::Tle), 3);
    assert_eq!(store.latest_tle().unwrap().map(Record::Tle), Some(tle(2)));
    let summary = store.summary().unwrap();
    assert_eq!(summary.kinds[1].count, 3);
    assert_eq!(summary.kinds[1].first, Some(t(0)));
    stop(w, thread);
}

#[test]
fn cursors_only_move_forward_and_persist() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (store, w, thread, _) = open(dir.path());
        w.set_cursor("kafka", 5);
        w.set_cursor("kafka", 3);
        w.count("rejected.iss_position.time_in_future".into());
        w.count("rejected.iss_position.time_in_future".into());
        block(w.flush()).unwrap();
        assert_eq!(store.cursor("kafka").unwrap(), 5);
        stop(w, thread);
    }
    let (store, w, thread, _) = open(dir.path());
    assert_eq!(store.cursor("kafka").unwrap(), 5);
    assert_eq!(store.cursor("mqtt").unwrap(), 0);
    assert_eq!(store.counter("rejected.iss_position.time_in_future").unwrap(), 2);
    stop(w, thread);
}

#[test]
fn a_second_process_on_the_same_store_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, w, thread, _) = open(dir.path());
    let err = Store::open(dir.path(), "x", opts()).err().expect("store is locked");
    assert!(format!("{err:#}").contains("in use by another Outpost"), "{err:#}");
    stop(w, thread);
}

#[test]
fn one_alert_email_per_pass_is_kept_and_found() {
    use crate::domain::{AlertChannel, AlertEmail, AlertKind, AlertOutcome};
    let dir = tempfile::tempdir().unwrap();
    let (store, w, thread, _) = open(dir.path());
    let email = |outcome, channel| {
        Record::AlertEmail(AlertEmail {
            alert: AlertKind::Pass,
            pass_rise: t(1000),
            outcome,
            at: t(100),
            visible_from: Some(t(1010)),
            recipients: 2,
            detail: None,
            channel,
        })
    };
    w.append(email(AlertOutcome::Sent, AlertChannel::Email));
    w.append(email(AlertOutcome::Missed, AlertChannel::Email)); // the same pass: refused
    w.append(email(AlertOutcome::Sent, AlertChannel::Push)); // the same pass by push: its own record
    block(w.flush()).unwrap();
    assert_eq!(w.stats().stored(Kind::AlertEmail), 2);
    assert_eq!(w.stats().duplicates(Kind::AlertEmail), 1);
    let found = store.alert_email(AlertKind::Pass, t(1000)).unwrap().unwrap();
    assert_eq!((found.outcome, found.channel), (AlertOutcome::Sent, AlertChannel::Email));
    assert!(store.alert_email(AlertKind::Overhead, t(1000)).unwrap().is_none());
    let since = store.alert_emails_since(t(0)).unwrap();
    assert_eq!(since.iter().map(|a| a.channel).collect::<Vec<_>>(), [AlertChannel::Email, AlertChannel::Push]);
    assert!(store.alert_emails_since(t(2000)).unwrap().is_empty());
    stop(w, thread);
}

#[test]
fn one_danger_alert_per_region_date_level_and_channel_is_kept() {
    use crate::domain::{AlertChannel, AlertOutcome, DangerAlert};
    let dir = tempfile::tempdir().unwrap();
    let (store, w, thread, _) = open(dir.path());
    let alert = |date: &str, region, level, channel, outcome| {
        Record::DangerAlert(DangerAlert {
            region_id: region,
            region_name: format!("R{region}"),
            valid_date: date.parse().unwrap(),
            level,
            channel,
            outcome,
            at: t(100),
            reg_id: 7,
            detail: None,
        })
    };
    let (e, p) = (AlertChannel::Email, AlertChannel::Push);
    w.append(alert("2024-01-16", 3003, 3, e, AlertOutcome::Sent));
    w.append(alert("2024-01-16", 3003, 3, e, AlertOutcome::Missed)); // refused: the same alert
    w.append(alert("2024-01-16", 3003, 3, p, AlertOutcome::Sent));
    w.append(alert("2024-01-16", 3003, 4, p, AlertOutcome::Sent)); // a raise
    w.append(alert("2024-01-15", 3003, 3, p, AlertOutcome::Sent));
    block(w.flush()).unwrap();
    assert_eq!(w.stats().stored(Kind::DangerAlert), 4);
    assert_eq!(w.stats().duplicates(Kind::DangerAlert), 1);
    let since = store.danger_alerts_since("2024-01-16".parse().unwrap()).unwrap();
    let keys: Vec<_> = since.iter().map(|a| (a.level, a.channel, a.outcome)).collect();
    assert_eq!(keys, [(3, e, AlertOutcome::Sent), (3, p, AlertOutcome::Sent), (4, p, AlertOutcome::Sent)]);
    assert_eq!(store.summary().unwrap().kinds.iter().find(|k| k.kind == Kind::DangerAlert).unwrap().count, 4);
    stop(w, thread);
}

/// What a power cut at this moment leaves: both files as they are on disk now (redb without its
/// non-durable commits, the journal with every acknowledged frame), copied while the store runs.
fn crash_copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for file in [DB_FILE, JOURNAL_FILE] {
        std::fs::copy(from.join(file), to.join(file)).unwrap();
    }
}

#[test]
fn rejection_counters_survive_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let crashed = tempfile::tempdir().unwrap();
    let (_store, w, thread, _) = open(dir.path());
    w.append(pos(0));
    for _ in 0..3 {
        w.count("rejected.iss_position.time_in_future".into());
    }
    block(w.flush()).unwrap();
    w.count("rejected.iss_position.time_in_future".into());
    w.count("rejected.tle.bad_checksum".into());
    block(w.flush()).unwrap();
    crash_copy(dir.path(), crashed.path());
    stop(w, thread);

    let (store, w, thread, report) = open(crashed.path());
    assert_eq!(report.replayed, 1);
    assert_eq!(store.counter("rejected.iss_position.time_in_future").unwrap(), 4);
    assert_eq!(store.counter("rejected.tle.bad_checksum").unwrap(), 1);
    // Counting goes on from the replayed value.
    w.count("rejected.tle.bad_checksum".into());
    block(w.flush()).unwrap();
    assert_eq!(store.counter("rejected.tle.bad_checksum").unwrap(), 2);
    stop(w, thread);
}

#[test]
fn a_clean_restart_does_not_warn_of_a_torn_tail_but_a_torn_commit_does() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..3 {
        let (_store, w, thread, report) = open(dir.path());
        assert!(!report.torn_tail, "restart {round}: the previous epoch's frames are not torn");
        // A burst (a multi-sector frame), then small commits, then a fold at shutdown.
        for s in 0..300 {
            w.append(pos(round * 10_000 + s * 10));
        }
        block(w.flush()).unwrap();
        for s in 300..305 {
            w.append(pos(round * 10_000 + s * 10));
            block(w.flush()).unwrap();
        }
        stop(w, thread);
    }
    // A crash in the middle of writing a multi-sector commit: its first sector is on disk only.
    let crashed = tempfile::tempdir().unwrap();
    let (_store, w, thread, _) = open(dir.path());
    w.append(pos(100_000));
    block(w.flush()).unwrap();
    // The epoch's first frame is at 8192; the next one starts at the next sector after it.
    let wal = std::fs::read(dir.path().join(JOURNAL_FILE)).unwrap();
    let first_len = u32::from_le_bytes(wal[8192..8196].try_into().unwrap()) as usize;
    let torn_at = (8192 + 16 + first_len).next_multiple_of(w.stats().journal_write_bytes.load(Relaxed) as usize);
    for s in 1..200 {
        w.append(pos(100_000 + s * 10));
    }
    block(w.flush()).unwrap();
    crash_copy(dir.path(), crashed.path());
    stop(w, thread);
    let wal = crashed.path().join(JOURNAL_FILE);
    let mut bytes = std::fs::read(&wal).unwrap();
    bytes[torn_at + 512..torn_at + 4096].fill(0);
    std::fs::write(&wal, &bytes).unwrap();
    let (store, w, thread, report) = open(crashed.path());
    assert!(report.torn_tail, "a torn commit is reported");
    assert_eq!(report.replayed, 1, "the commit before it is replayed");
    assert_eq!(store.summary().unwrap().kinds[0].count, 3 * 305 + 1);
    stop(w, thread);
}

#[test]
fn a_store_written_by_the_previous_release_opens_and_its_journal_is_replayed() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_, w, thread, _) = open(dir.path());
        w.append(pos(0));
        stop(w, thread);
    }
    // The previous release crashed with two commits in its (version-2) journal.
    let wal = dir.path().join(JOURNAL_FILE);
    let first = [Entry::Record { seq: 2, bytes: codec::encode(0, &pos(10)) }];
    let second =
        [Entry::Record { seq: 3, bytes: codec::encode(0, &pos(20)) }, Entry::Cursor { name: "kafka".into(), seq: 2 }];
    journal::write_version_2(&wal, 9, &[&first, &second]);
    let (store, w, thread, report) = open(dir.path());
    assert_eq!(report.replayed, 2);
    assert!(!report.torn_tail);
    assert_eq!(
        store.read_after(0, 10).unwrap().iter().map(|r| r.record.clone()).collect::<Vec<_>>(),
        vec![pos(0), pos(10), pos(20)]
    );
    assert_eq!(store.cursor("kafka").unwrap(), 2);
    assert_eq!(journal::current_version(&wal), Some(3), "the reset after replay writes version 3");
    w.append(pos(30));
    stop(w, thread);
    drop(store);
    let (store, w, thread, report) = open(dir.path());
    assert_eq!(report.replayed, 0);
    assert_eq!(store.summary().unwrap().kinds[0].count, 4);
    stop(w, thread);
}

#[test]
fn a_missing_journal_beside_records_is_refused_and_not_recreated() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_, w, thread, _) = open(dir.path());
        w.append(pos(0));
        stop(w, thread);
    }
    let wal = dir.path().join(JOURNAL_FILE);
    std::fs::remove_file(&wal).unwrap();
    let err = Store::open(dir.path(), "test-station", opts()).err().expect("must refuse");
    let msg = format!("{err:#}");
    assert!(msg.contains("is missing") && msg.contains(&wal.display().to_string()), "{msg}");
    assert!(!wal.exists(), "the refused start leaves the directory as it was");
    // A brand-new store has neither file, and opens.
    let fresh = tempfile::tempdir().unwrap();
    let (_, w, thread, _) = open(fresh.path());
    stop(w, thread);
    assert!(fresh.path().join(JOURNAL_FILE).exists());
}

#[test]
fn the_journal_is_locked_before_redb_even_while_the_writer_reopens_redb() {
    let dir = tempfile::tempdir().unwrap();
    let (store, w, thread, _) = open(dir.path());
    w.append(pos(0));
    w.append(pos(10));
    block(w.flush()).unwrap();
    let wal = dir.path().join(JOURNAL_FILE);
    let before = std::fs::read(&wal).unwrap();
    let in_use = |err: anyhow::Error| err.downcast_ref::<StoreInUse>().is_some();
    assert!(in_use(Store::open(dir.path(), "cli", opts()).err().expect("locked")));
    // The window while the writer reopens redb after an I/O error: redb's own lock is free.
    let db = store.db.take().unwrap();
    drop(db);
    let err = Store::open(dir.path(), "cli", opts()).err().expect("the journal's lock still refuses");
    assert!(in_use(err));
    assert!(std::fs::read(&wal).unwrap() == before, "the running store's journal is untouched");
    let (db, _) = (open_db(&dir.path().join(DB_FILE), 1 << 20, false, &io_hook::Hook::default()).unwrap(), ());
    store.db.put(db);
    stop(w, thread);
}

#[test]
fn another_process_cannot_open_the_store_or_touch_its_journal() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, w, thread, _) = open(dir.path());
    w.append(pos(0));
    block(w.flush()).unwrap();
    let wal = dir.path().join(JOURNAL_FILE);
    let before = std::fs::read(&wal).unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "store::tests::second_process_opens_the_store", "--ignored", "--nocapture"])
        .env("OUTPOST_TEST_STORE_DIR", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("second process: refused: store in use"), "{stdout}");
    assert!(std::fs::read(&wal).unwrap() == before, "the running store's journal is untouched");
    stop(w, thread);
}

/// Run by `another_process_cannot_open_the_store_or_touch_its_journal` in a child process.
#[test]
#[ignore = "run as a child process by another test"]
fn second_process_opens_the_store() {
    let Some(dir) = std::env::var_os("OUTPOST_TEST_STORE_DIR") else { return };
    match Store::open(Path::new(&dir), "cli", opts()) {
        Err(e) if e.downcast_ref::<StoreInUse>().is_some() => println!("second process: refused: store in use"),
        Err(e) => println!("second process: refused otherwise: {e:#}"),
        Ok(_) => println!("second process: opened the store"),
    }
}

#[test]
fn a_batch_journaled_before_redb_failed_is_replayed_not_committed_again() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut writer, _) = Store::open(dir.path(), "test-station", opts()).unwrap();
    writer.fail_next_redb_commit();
    let w = writer.handle();
    let thread = writer.spawn().unwrap();
    w.append(pos(0));
    w.append(pos(10));
    w.set_cursor("kafka", 1);
    w.count("rejected.iss_position.time_in_future".into());
    // The journal has the batch; redb's commit fails: the writer reopens redb from the journal.
    assert_eq!(block(w.flush()).unwrap(), 2);
    assert_eq!(store.read_after(0, 10).unwrap().len(), 2, "readers see the batch");
    assert_eq!(w.stats().stored(Kind::IssPosition), 2);
    assert_eq!(w.stats().duplicates(Kind::IssPosition), 0, "the batch was not committed a second time");
    assert_eq!(store.counter("rejected.iss_position.time_in_future").unwrap(), 1, "counted once");
    assert_eq!(store.cursor("kafka").unwrap(), 1);
    w.append(pos(20));
    assert_eq!(block(w.flush()).unwrap(), 3, "the next commit goes on after it");
    let crashed = tempfile::tempdir().unwrap();
    crash_copy(dir.path(), crashed.path());
    stop(w, thread);
    drop(store);
    let (store, w, thread, report) = open(crashed.path());
    assert_eq!(report.replayed, 3);
    let seqs: Vec<u64> = store.read_after(0, 10).unwrap().iter().map(|r| r.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3]);
    assert_eq!(store.counter("rejected.iss_position.time_in_future").unwrap(), 1);
    stop(w, thread);
}

#[test]
fn a_torn_redb_header_is_restored_from_its_copy_and_a_restore_that_does_not_help_is_undone() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_, w, thread, _) = open(dir.path());
        for s in 0..50 {
            w.append(pos(s * 10));
        }
        stop(w, thread);
    }
    let db_path = dir.path().join(DB_FILE);
    let pristine = std::fs::read(&db_path).unwrap();
    let torn_header = |bytes: &mut Vec<u8>| bytes[..512].iter_mut().enumerate().for_each(|(i, b)| *b = (i * 7) as u8);

    // A torn header with its copy there: restored, and every record is there.
    let mut bytes = pristine.clone();
    torn_header(&mut bytes);
    std::fs::write(&db_path, &bytes).unwrap();
    let (store, w, thread, _) = open(dir.path());
    assert_eq!(store.summary().unwrap().kinds[0].count, 50);
    stop(w, thread);
    drop(store);

    // A torn header *and* damaged data pages: the restore cannot help, so it is undone and the
    // start refused, the file exactly as it was found.
    let mut bytes = std::fs::read(&db_path).unwrap();
    torn_header(&mut bytes);
    for b in &mut bytes[4096..] {
        *b = 0x5a;
    }
    std::fs::write(&db_path, &bytes).unwrap();
    let err = Store::open(dir.path(), "test-station", opts()).err().expect("refused");
    assert!(format!("{err:#}").contains("is damaged"), "{err:#}");
    assert!(std::fs::read(&db_path).unwrap() == bytes, "the refused start left redb's file as it was");

    // Without the copy, a torn header is refused as before.
    let mut bytes = pristine;
    torn_header(&mut bytes);
    std::fs::write(&db_path, &bytes).unwrap();
    std::fs::remove_file(dir.path().join(HEADER_FILE)).unwrap();
    let err = Store::open(dir.path(), "test-station", opts()).err().expect("refused");
    assert!(format!("{err:#}").contains("magic number mismatch"), "{err:#}");
}

fn weather(region: u32, date: &str, fetched_s: i64, snow_cm: f64) -> Record {
    let point = crate::domain::WeatherPoint {
        latitude: 62.7,
        longitude: 9.3,
        elevation_m: Some(1200.0),
        values: crate::domain::WeatherValues { snowfall_cm: Some(snow_cm), ..Default::default() },
    };
    Record::WeatherDaily(crate::domain::WeatherDaily {
        region_id: region,
        date: date.parse().unwrap(),
        fetched_at: t(fetched_s),
        summary: crate::domain::WeatherSummary::of(std::slice::from_ref(&point)),
        points: vec![point],
    })
}

#[test]
fn weather_keeps_each_changed_version_and_refuses_unchanged_refetches() {
    let dir = tempfile::tempdir().unwrap();
    let (store, w, thread, _) = open(dir.path());
    w.append(weather(3022, "2024-01-15", 0, 10.0));
    w.append(weather(3022, "2024-01-15", 3600, 10.0)); // re-fetched, unchanged
    w.append(weather(3011, "2024-01-15", 3600, 10.0)); // another region, same values
    w.append(weather(3022, "2024-01-16", 3600, 10.0)); // another day
    w.append(weather(3022, "2024-01-15", 7200, 12.0)); // changed
    w.append(weather(3022, "2024-01-15", 10800, 10.0)); // changed back: new again against the newest
    assert_eq!(block(w.flush()).unwrap(), 5);
    assert_eq!(w.stats().stored(Kind::WeatherDaily), 5);
    assert_eq!(w.stats().duplicates(Kind::WeatherDaily), 1);
    let day = store.weather_for_date("2024-01-15".parse().unwrap(), None).unwrap();
    assert_eq!(
        day.iter().map(|d| (d.region_id, d.fetched_at)).collect::<Vec<_>>(),
        [(3011, t(3600)), (3022, t(10800))]
    );
    let one = store.weather_for_date("2024-01-15".parse().unwrap(), Some(3011)).unwrap();
    assert_eq!(one.len(), 1);
    assert!(store.weather_for_date("2024-01-17".parse().unwrap(), None).unwrap().is_empty());
    stop(w, thread);
    drop(store);
    // After a restart (journal replay and redb) the index still refuses the unchanged version.
    let (store, w, thread, _) = open(dir.path());
    w.append(weather(3022, "2024-01-15", 14400, 10.0));
    assert_eq!(block(w.flush()).unwrap(), 5, "nothing new after seq 5");
    assert_eq!(w.stats().duplicates(Kind::WeatherDaily), 1);
    assert_eq!(store.summary().unwrap().kinds.iter().find(|k| k.kind == Kind::WeatherDaily).unwrap().count, 5);
    stop(w, thread);
}

#[test]
fn the_feature_export_walks_stored_days_in_order_with_the_three_days_before() {
    let dir = tempfile::tempdir().unwrap();
    let (store, w, thread, _) = open(dir.path());
    w.append(weather(3022, "2024-01-10", 0, 1.0));
    w.append(weather(3022, "2024-01-11", 0, 0.25));
    w.append(weather(3022, "2024-01-12", 0, 2.0));
    w.append(weather(3022, "2024-01-13", 0, 4.0));
    w.append(weather(3022, "2024-01-13", 60, 8.0)); // a newer version of the 13th
    w.append(warning(3022, "2024-01-14", -8, 100, Some(3)));
    w.append(weather(3022, "2024-01-14", 0, 0.5));
    w.append(weather(3011, "2024-01-20", 0, 3.0)); // after a gap of days with nothing
    block(w.flush()).unwrap();
    let day = |d: &str| d.parse::<chrono::NaiveDate>().unwrap();
    assert_eq!(store.next_warning_or_weather_day(day("2000-01-01")).unwrap(), Some(day("2024-01-10")));
    assert_eq!(store.next_warning_or_weather_day(day("2024-01-15")).unwrap(), Some(day("2024-01-20")));
    assert_eq!(store.next_warning_or_weather_day(day("2024-01-21")).unwrap(), None);

    let export = |from: Option<&str>, to: Option<&str>| {
        let req = crate::export::ExportRequest {
            kind: crate::export::KindArg::Features,
            format: crate::export::Format::Jsonl,
            from: from.map(day),
            to: to.map(day),
            keyspace: "outpost".into(),
            replication: String::new(),
        };
        let mut out = Vec::new();
        let n = crate::export::export(&store, &req, &mut out, &mut |_| {}).unwrap();
        let rows: Vec<serde_json::Value> =
            String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(rows.len() as u64, n);
        rows
    };
    let all = export(None, None);
    let keys: Vec<(String, u64)> =
        all.iter().map(|r| (r["date"].as_str().unwrap().to_owned(), r["region_id"].as_u64().unwrap())).collect();
    let want = [
        ("2024-01-10", 3022),
        ("2024-01-11", 3022),
        ("2024-01-12", 3022),
        ("2024-01-13", 3022),
        ("2024-01-14", 3022),
        ("2024-01-20", 3011),
    ];
    assert_eq!(keys, want.map(|(d, r)| (d.to_owned(), r)));
    // The 14th: its warning, and the 13th's newest version, the 12th and the 11th.
    assert_eq!(all[4]["danger_level"], 3);
    assert_eq!(all[4]["snowfall_max_cm"], 0.5);
    assert_eq!(all[4]["snowfall_72h_cm"], 10.25, "{}", all[4]);
    assert_eq!(all[3]["snowfall_max_cm"], 8.0, "the newest version");
    assert_eq!(all[3]["snowfall_72h_cm"], 3.25);
    assert!(all[3]["danger_level"].is_null());
    assert!(all[2]["snowfall_72h_cm"].is_null(), "the 9th is missing: {}", all[2]);
    assert!(all[5]["snowfall_72h_cm"].is_null(), "nothing in the three days before the 20th");
    // --from reads the days before it for the window, but writes only from it on.
    let from = export(Some("2024-01-13"), Some("2024-01-13"));
    assert_eq!(from.len(), 1);
    assert_eq!(from[0], all[3]);
    assert!(export(Some("2024-01-15"), Some("2024-01-19")).is_empty());
    stop(w, thread);
}
