use super::*;
use crate::domain::{IssPosition, Kind, Tle};
use chrono::{DateTime, TimeZone, Utc};
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
    block(w.shutdown()).unwrap();
    thread.join().unwrap();
}

#[test]
fn committed_records_survive_reopen_and_nothing_is_stored_twice() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_, w, thread, _) = open(dir.path());
        for s in 0..100 {
            w.append(pos(s * 10));
        }
        block(w.shutdown()).unwrap();
        thread.join().unwrap();
    }
    let (store, w, thread, report) = open(dir.path());
    assert_eq!(report.replayed, 0, "a clean shutdown folds everything");
    for s in 90..110 {
        w.append(pos(s * 10)); // the first ten are re-fetches
    }
    assert_eq!(block(w.flush()).unwrap(), 110);
    assert_eq!(store.summary().unwrap().kinds[0].count, 110);
    block(w.shutdown()).unwrap();
    thread.join().unwrap();
}

#[test]
fn journal_entries_missing_from_redb_are_replayed_on_open() {
    // Simulates a crash after the journal fsync but before any durable redb commit: write the
    // frames redb never saw straight into the journal, then open.
    let dir = tempfile::tempdir().unwrap();
    {
        let (_, w, thread, _) = open(dir.path());
        w.append(pos(0));
        block(w.shutdown()).unwrap();
        thread.join().unwrap();
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
    block(w.shutdown()).unwrap();
    thread.join().unwrap();
    drop(store);
    let (_, w, thread, report) = open(dir.path());
    assert_eq!(report.replayed, 0);
    block(w.shutdown()).unwrap();
    thread.join().unwrap();
}

#[test]
fn a_gap_in_the_journal_is_refused_loudly() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_, w, thread, _) = open(dir.path());
        block(w.shutdown()).unwrap();
        thread.join().unwrap();
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
    block(w.shutdown()).unwrap();
    thread.join().unwrap();
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
    block(w.shutdown()).unwrap();
    thread.join().unwrap();
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
    block(w.shutdown()).unwrap();
    thread.join().unwrap();
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
        block(w.shutdown()).unwrap();
        thread.join().unwrap();
    }
    let (store, w, thread, _) = open(dir.path());
    assert_eq!(store.cursor("kafka").unwrap(), 5);
    assert_eq!(store.cursor("mqtt").unwrap(), 0);
    assert_eq!(store.counter("rejected.iss_position.time_in_future").unwrap(), 2);
    block(w.shutdown()).unwrap();
    thread.join().unwrap();
}

#[test]
fn a_second_process_on_the_same_store_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, w, thread, _) = open(dir.path());
    let err = Store::open(dir.path(), "x", opts()).err().expect("store is locked");
    assert!(format!("{err:#}").contains("in use by another Outpost"), "{err:#}");
    block(w.shutdown()).unwrap();
    thread.join().unwrap();
}

#[test]
fn one_alert_email_per_pass_is_kept_and_found() {
    use crate::domain::{AlertEmail, AlertKind, AlertOutcome};
    let dir = tempfile::tempdir().unwrap();
    let (store, w, thread, _) = open(dir.path());
    let email = |outcome| {
        Record::AlertEmail(AlertEmail {
            alert: AlertKind::Pass,
            pass_rise: t(1000),
            outcome,
            at: t(100),
            visible_from: Some(t(1010)),
            recipients: 2,
            detail: None,
        })
    };
    w.append(email(AlertOutcome::Sent));
    w.append(email(AlertOutcome::Missed)); // the same pass: refused
    block(w.flush()).unwrap();
    assert_eq!(w.stats().stored(Kind::AlertEmail), 1);
    assert_eq!(w.stats().duplicates(Kind::AlertEmail), 1);
    let found = store.alert_email(AlertKind::Pass, t(1000)).unwrap().unwrap();
    assert_eq!(found.outcome, AlertOutcome::Sent);
    assert!(store.alert_email(AlertKind::Overhead, t(1000)).unwrap().is_none());
    assert_eq!(store.alert_emails_since(t(0)).unwrap().len(), 1);
    assert!(store.alert_emails_since(t(2000)).unwrap().is_empty());
    block(w.shutdown()).unwrap();
    thread.join().unwrap();
}
