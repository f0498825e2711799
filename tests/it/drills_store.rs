//! Fault drill: damaged store files. A store is left as a crash leaves it (kill -9 with records
//! only in the journal), then one file is truncated or overwritten. `outpost run` must refuse to
//! start over it: exit 1 (as README promises), a message naming the file and what to do, and the journal (the
//! only copy of what was collected since the last fold) left exactly as it was. A journal whose
//! last frame was torn by the crash itself is normal and must still start.

use crate::helpers::*;
use chrono::{Duration, Utc};
use std::path::{Path, PathBuf};
use std::time::Instant;

const DB: &str = "outpost.redb";
const WAL: &str = "outpost.wal";
/// The copy of redb's super-header, written before each header write (src/store/header_guard.rs).
const HDR: &str = "outpost.redb.hdr";

/// One way to damage a store, and which file it damages.
struct Damage {
    name: &'static str,
    file: &'static str,
    apply: fn(&mut Vec<u8>),
    /// The copy of redb's header is gone too (with it, a damaged header is restored).
    without_header_copy: bool,
}

/// The journal's frames start here (see src/store/journal.rs).
const FRAMES_START: usize = 8192;

/// (offset, length) of every frame in the journal's current epoch (the first frame's): each
/// frame header is `len u32 | crc u32 | epoch u64`, and the next frame starts at the next
/// 512-byte boundary, or the next 4096-byte one where the writes are 4 KB.
fn frames(wal: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let Some(epoch) = wal.get(FRAMES_START + 8..FRAMES_START + 16) else { return out };
    let mut pos = FRAMES_START;
    while pos + 16 <= wal.len() {
        let len = u32::from_le_bytes(wal[pos..pos + 4].try_into().unwrap()) as usize;
        if len == 0 || &wal[pos + 8..pos + 16] != epoch || pos + 16 + len > wal.len() {
            match pos.next_multiple_of(4096) {
                page if page != pos => pos = page,
                _ => break,
            }
            continue;
        }
        out.push((pos, 16 + len));
        pos = (pos + 16 + len).next_multiple_of(512);
    }
    out
}

const DAMAGES: &[Damage] = &[
    Damage { name: "redb truncated to half", file: DB, apply: |b| b.truncate(b.len() / 2), without_header_copy: false },
    Damage { name: "redb truncated to nothing", file: DB, apply: |b| b.clear(), without_header_copy: false },
    Damage {
        name: "redb header overwritten, its copy gone",
        file: DB,
        apply: |b| overwrite_redb_header(b),
        without_header_copy: true,
    },
    Damage {
        name: "redb data page overwritten",
        file: DB,
        apply: |b| {
            // A page holding stored warnings (their region name is in the log's values).
            let at = b.windows(11).position(|w| w == b"Trollheimen").expect("a stored warning in redb's file");
            let page = at - at % 4096;
            b[page..page + 4096].iter_mut().enumerate().for_each(|(i, x)| *x = (i * 13 + 1) as u8)
        },
        without_header_copy: false,
    },
    Damage {
        name: "journal truncated inside its frames",
        file: WAL,
        apply: |b| b.truncate(FRAMES_START + 40),
        without_header_copy: false,
    },
    Damage { name: "journal truncated to nothing", file: WAL, apply: |b| b.clear(), without_header_copy: false },
    Damage {
        name: "journal headers overwritten",
        file: WAL,
        apply: |b| {
            b[..24].fill(0x77);
            b[4096..4096 + 24].fill(0x77);
        },
        without_header_copy: false,
    },
    Damage {
        name: "journal frame damaged before good ones",
        file: WAL,
        apply: |b| {
            let f = frames(b);
            assert!(f.len() >= 3, "the crash left {} frames; the drill needs 3", f.len());
            let (at, len) = f[0];
            b[at + len / 2] ^= 0x5a;
        },
        without_header_copy: false,
    },
];

fn overwrite_redb_header(b: &mut [u8]) {
    b[..4096].iter_mut().enumerate().for_each(|(i, x)| *x = (i * 7 + 3) as u8);
}

/// A store as `kill -9` leaves it: a first run's records folded into redb, and a journal holding
/// the second run's, which redb does not have yet.
async fn crashed_store() -> (tempfile::TempDir, FixtureServer) {
    let fx = FixtureServer::start().await;
    let base = Utc::now() - Duration::minutes(30);
    fx.generate("/iss-now.json", move |n| Reply::ok(open_notify(base + Duration::seconds(n as i64), "63.4", "10.4")));
    fx.script("/tle", vec![Reply::ok(fixture("celestrak_gp_CATNR25544_FORMAT_TLE.txt"))]);
    fx.script("/nve", vec![Reply::ok(fixture("nve_AvalancheWarningByRegion_Detail.json"))]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&fx, &dir.path().join("store"), "")
        .replace("commit_interval_s = 1", "commit_interval_s = 1\nfold_interval_s = 3600");
    let app = Outpost::start(dir.path(), &cfg).await;
    app.wait_for("warnings and positions", 30, |s| {
        stored(s, "avalanche.warning") == 5 && stored(s, "iss.position") >= 2
    })
    .await;
    assert!(app.stop().await.success());
    let app = Outpost::start(dir.path(), &cfg).await;
    app.wait_for("positions in four commits", 30, |s| s["writer"]["commits"].as_u64().unwrap() >= 4).await;
    app.kill9().await;
    (dir, fx)
}

fn copy_store(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in [DB, WAL, HDR] {
        std::fs::copy(from.join(f), to.join(f)).unwrap();
    }
}

/// Runs `outpost run` on `store` until it exits or serves; returns the exit code (None if it
/// came up and was stopped) and its stderr.
async fn start_on(store: &Path, fx: &FixtureServer) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = dir.path().join("outpost.toml");
    std::fs::write(&cfg_path, config(fx, store, "")).unwrap();
    let mut child = tokio::process::Command::new(bin())
        .args(["run", "--config"])
        .arg(&cfg_path)
        .env("OUTPOST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let mut text = String::new();
    let read = async {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 4096];
        loop {
            let n = stderr.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                return false;
            }
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
            if text.contains("serving the map and API") {
                return true;
            }
        }
    };
    let serving = tokio::time::timeout(std::time::Duration::from_secs(60), read)
        .await
        .expect("outpost neither exited nor served within 60 s");
    if serving {
        child.kill().await.unwrap();
        return (None, text);
    }
    let status = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait()).await.unwrap().unwrap();
    (status.code(), text)
}

fn journal(store: &Path) -> (PathBuf, Option<Vec<u8>>) {
    (store.join(WAL), std::fs::read(store.join(WAL)).ok())
}

#[tokio::test]
async fn drills_a_damaged_store_file_is_refused_at_start_with_a_clear_message() {
    let started = Instant::now();
    let (crashed, fx) = crashed_store().await;
    let pristine = crashed.path().join("store");
    eprintln!(
        "store drill: crashed store: {} is {} bytes, {} has {} frames",
        DB,
        std::fs::metadata(pristine.join(DB)).unwrap().len(),
        WAL,
        frames(&std::fs::read(pristine.join(WAL)).unwrap()).len()
    );
    let mut failures = Vec::new();
    for damage in DAMAGES {
        let case = tempfile::tempdir().unwrap();
        let store = case.path().join("store");
        copy_store(&pristine, &store);
        let mut bytes = std::fs::read(store.join(damage.file)).unwrap();
        (damage.apply)(&mut bytes);
        std::fs::write(store.join(damage.file), &bytes).unwrap();
        if damage.without_header_copy {
            std::fs::remove_file(store.join(HDR)).unwrap();
        }
        let before = journal(&store);
        let (code, stderr) = start_on(&store, &fx).await;
        let last_line = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").to_owned();
        eprintln!("store drill: {}: exit {code:?}: {last_line}", damage.name);
        let named = store.join(damage.file).display().to_string();
        if code.is_none() {
            failures.push(format!("{}: started anyway\n{stderr}", damage.name));
        } else if code != Some(1) {
            // README: "`outpost run` exits 1 with a message naming the file" (2 is a config error,
            // which systemd does not retry; a signal is a crash).
            failures.push(format!("{}: exit {code:?}, not 1\n{stderr}", damage.name));
        } else if !last_line.contains(&named) || !last_line.contains("move") {
            failures
                .push(format!("{}: the message does not name {named} and say what to do: {last_line}", damage.name));
        } else if journal(&store) != before {
            failures.push(format!("{}: the refused start changed the journal", damage.name));
        }
    }

    // The control: the last frame torn (as a crash mid-commit leaves it) is normal.
    let case = tempfile::tempdir().unwrap();
    let store = case.path().join("store");
    copy_store(&pristine, &store);
    let mut wal = std::fs::read(store.join(WAL)).unwrap();
    let f = frames(&wal);
    let (at, len) = *f.last().unwrap();
    wal[at + len - 5..at + len].fill(0);
    std::fs::write(store.join(WAL), &wal).unwrap();
    let (code, stderr) = start_on(&store, &fx).await;
    if code.is_some() {
        failures.push(format!("a torn last frame: refused to start\n{stderr}"));
    }
    // The other control: redb's header destroyed (as a torn write of its sector leaves it) is
    // restored from its copy, with a warning.
    let case = tempfile::tempdir().unwrap();
    let store = case.path().join("store");
    copy_store(&pristine, &store);
    let mut db = std::fs::read(store.join(DB)).unwrap();
    overwrite_redb_header(&mut db);
    std::fs::write(store.join(DB), &db).unwrap();
    let (code, stderr) = start_on(&store, &fx).await;
    if code.is_some() || !stderr.contains("restored it from outpost.redb.hdr") {
        failures.push(format!("redb's header overwritten, its copy there: not restored ({code:?})\n{stderr}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    eprintln!(
        "store drill: {} damages refused, the torn tail accepted, the torn redb header restored; {:.0} s",
        DAMAGES.len(),
        started.elapsed().as_secs_f64()
    );
}
