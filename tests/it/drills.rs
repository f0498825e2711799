//! What the fault drills (`drills_*.rs`) share: a seeded random source whose seed is printed so a
//! failure can be replayed, the whole log read back from a store no process holds, and the
//! recorded avalanche answer made new for every request.

use crate::helpers::fixture;
use outpost::domain::StoredRecord;
use outpost::store::{Store, StoreOptions};
use std::collections::HashSet;
use std::path::Path;

/// A random source for `drill`, seeded from `OUTPOST_DRILL_SEED` or at random; the seed is
/// printed first, so `OUTPOST_DRILL_SEED=<seed> cargo test --test it <drill>` replays a failure.
pub fn rng(drill: &str) -> fastrand::Rng {
    let seed = std::env::var("OUTPOST_DRILL_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("{drill}: seed {seed} (replay with OUTPOST_DRILL_SEED={seed})");
    fastrand::Rng::with_seed(seed)
}

/// Every record of the log in a store that no process holds (opening it replays its journal, as
/// `outpost run` would), after checking the log's invariants: sequence numbers 1..=n without a
/// gap, every record id once, positions strictly increasing in time.
pub fn read_log(dir: &Path) -> Vec<StoredRecord> {
    let (store, writer, _) = Store::open(dir, "it", StoreOptions::default()).unwrap();
    drop(writer);
    let mut all = Vec::new();
    loop {
        let after = all.last().map_or(0, |r: &StoredRecord| r.seq);
        let batch = store.read_after(after, 10_000).unwrap();
        if batch.is_empty() {
            break;
        }
        all.extend(batch);
    }
    for (i, r) in all.iter().enumerate() {
        assert_eq!(r.seq, i as u64 + 1, "the log has no gap: entry {i} has seq {}", r.seq);
    }
    let mut ids = HashSet::new();
    for r in &all {
        assert!(ids.insert(r.id()), "record {} is stored twice (seq {})", r.id(), r.seq);
    }
    let times: Vec<_> = all
        .iter()
        .filter_map(|r| match &r.record {
            outpost::domain::Record::IssPosition(p) => Some(p.time),
            _ => None,
        })
        .collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "positions are stored in strictly increasing time");
    all
}

/// The recorded NVE answer (five Trollheimen warnings) as new versions: every call gets RegIds no
/// earlier call had, so each avalanche round stores five new records.
pub fn new_warnings(n: u64) -> Vec<u8> {
    let mut recorded: Vec<serde_json::Value> =
        serde_json::from_slice(&fixture("nve_AvalancheWarningByRegion_Detail.json")).unwrap();
    for (i, w) in recorded.iter_mut().enumerate() {
        w["RegId"] = (1_000_000 + n * 10 + i as u64).into();
    }
    serde_json::to_vec(&recorded).unwrap()
}
