//! Fault drill: the disk fills up. The store lives on a small filesystem of its own (an ext4
//! image on a loop device, like the Pi's SD card; a tmpfs where loop devices are missing); the
//! test fills it while positions keep coming. Collection must go on, storing must pause with a
//! clear status (`/api/status` `writer.error`, `/healthz` 503) and resume by itself once space
//! returns. A burst larger than `store.max_pending` while the disk is full is dropped and counted
//! (`writer.dropped`, `/metrics`): every record collected is stored, refused as a duplicate or
//! counted as dropped, none silently lost; a restart then finds the log intact.

use crate::drills::{new_warnings, read_log};
use crate::helpers::*;
use chrono::{Duration, Utc};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// A mounted filesystem of a few MB; unmounted when dropped.
struct SmallFs {
    _dir: tempfile::TempDir,
    mount: PathBuf,
    kind: String,
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?}: {} {}", out.status, String::from_utf8_lossy(&out.stderr).trim()))
    }
}

impl SmallFs {
    /// An ext4 image on a loop device, else a tmpfs; `Err` with every reason when neither mounts.
    fn mount(size_mb: u64) -> Result<SmallFs, String> {
        let dir = tempfile::tempdir().unwrap();
        let mount = dir.path().join("mnt");
        std::fs::create_dir(&mount).unwrap();
        let image = dir.path().join("disk.ext4");
        let ext4 = (|| {
            let f = std::fs::File::create(&image).map_err(|e| e.to_string())?;
            f.set_len(size_mb << 20).map_err(|e| e.to_string())?;
            // -m 0: no blocks reserved for root (the tests may run as root, which could use them).
            run(Command::new("mkfs.ext4").args(["-q", "-F", "-m", "0"]).arg(&image))?;
            run(Command::new("mount").args(["-o", "loop"]).arg(&image).arg(&mount))
        })();
        let kind = match ext4 {
            Ok(()) => "ext4 on a loop device".to_owned(),
            Err(ext4_error) => {
                let size = format!("size={size_mb}m");
                match run(Command::new("mount").args(["-t", "tmpfs", "-o", &size, "tmpfs"]).arg(&mount)) {
                    Ok(()) => format!("tmpfs (ext4 image failed: {ext4_error})"),
                    Err(tmpfs_error) => return Err(format!("ext4 image: {ext4_error}; tmpfs: {tmpfs_error}")),
                }
            }
        };
        Ok(SmallFs { _dir: dir, mount, kind })
    }

    /// Writes a filler file until the filesystem refuses; returns its size.
    fn fill(&self) -> u64 {
        let path = self.filler();
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0x5au8; 64 * 1024];
        let mut written = 0u64;
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(libc_enospc()) => break,
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
        // Small writes too, so no block is left that a small append could use.
        loop {
            match f.write(&chunk[..512]) {
                Ok(n) if n > 0 => written += n as u64,
                _ => break,
            }
        }
        let _ = f.sync_all();
        written
    }

    fn free(&self) {
        std::fs::remove_file(self.filler()).unwrap();
        let _ = Command::new("sync").status();
    }

    fn filler(&self) -> PathBuf {
        self.mount.join("filler")
    }
}

fn libc_enospc() -> i32 {
    28
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        if Command::new("umount").arg(&self.mount).status().map(|s| !s.success()).unwrap_or(true) {
            let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
        }
    }
}

fn writer(s: &Value) -> &Value {
    &s["writer"]
}

async fn healthz(app: &Outpost) -> (u16, Value) {
    app.get("/healthz").await
}

/// Avalanche regions asked for; each answers `PER_ANSWER` new warnings (a few KB each), so one
/// round writes more than the journal's preallocated 256 KB, and is more than `MAX_PENDING`.
const REGIONS: u64 = 46;
const PER_ANSWER: u64 = 25;
/// `store.max_pending`, its smallest value: the burst of PER_ANSWER * REGIONS warnings
/// overflows it while the disk is full.
const MAX_PENDING: u64 = 1024;

/// The recorded NVE answer's five warnings, each five times under new RegIds: `PER_ANSWER`
/// warnings no earlier answer had.
fn many_warnings(n: u64) -> Vec<u8> {
    let five: Vec<Value> = serde_json::from_slice(&new_warnings(n)).unwrap();
    let all: Vec<Value> = (0..PER_ANSWER)
        .map(|i| {
            let mut w = five[(i % 5) as usize].clone();
            w["RegId"] = (2_000_000 + n * 100 + i).into();
            w
        })
        .collect();
    serde_json::to_vec(&all).unwrap()
}

/// Records the collectors handed to the writer in this process, per the status.
fn collected(s: &Value) -> u64 {
    s["sources"].as_object().unwrap().values().map(|v| v["records"].as_u64().unwrap()).sum()
}

fn sum(v: &Value) -> u64 {
    v.as_object().unwrap().values().map(|n| n.as_u64().unwrap()).sum()
}

#[tokio::test]
async fn drills_a_full_disk_pauses_storing_then_resumes_without_losing_a_record() {
    let started = Instant::now();
    let fs = match SmallFs::mount(24) {
        Ok(fs) => fs,
        Err(why) => {
            skip!("cannot mount a small filesystem here (it needs root): {why}");
            return;
        }
    };
    eprintln!("disk drill: the store is on {}", fs.kind);
    let store = fs.mount.join("store");
    let fx = FixtureServer::start().await;
    let live_start = Utc::now() - Duration::minutes(50);
    fx.generate("/iss-now.json", move |n| {
        Reply::ok(open_notify(live_start + Duration::seconds(n as i64), "60.1", "9.5"))
    });
    // NVE's first answer comes late, after the disk is full; then every region's answer comes at
    // once: a burst larger than the journal's reserved space.
    fx.generate("/nve", |n| {
        let reply = Reply::ok(many_warnings(n));
        if n == 1 { reply.slow(std::time::Duration::from_secs(8)) } else { reply }
    });
    let regions: Vec<String> = (3001..3001 + REGIONS).map(|r| r.to_string()).collect();
    // Short folds: a full disk hits redb's durable commits within seconds.
    let cfg = config(&fx, &store, "")
        .replace("commit_interval_s = 1", "commit_interval_s = 1\nfold_interval_s = 2")
        .replace("regions = [3022]", &format!("regions = [{}]", regions.join(", ")))
        .replace("timeout_s = 2.0", "timeout_s = 30.0")
        .replace("[iss]", &format!("max_pending = {MAX_PENDING}\n[iss]"));
    let dir = tempfile::tempdir().unwrap();
    let app = Outpost::start(dir.path(), &cfg).await;
    app.wait_for("3 positions", 30, |s| stored(s, "iss.position") >= 3).await;
    let filled = fs.fill();
    let s = app.status().await;
    assert_eq!(
        s["sources"]["varsom"]["successes"], 0,
        "the drill needs the disk full before NVE's first answer arrives; raise its delay"
    );
    eprintln!("disk drill: filled the disk with {filled} bytes");

    // Stage 1: folding into redb pauses, visibly; commits go on into the journal's reserved space.
    let s = app
        .wait_for("the writer to report the full disk", 60, |s| {
            writer(s)["error"].as_str().is_some_and(|e| e.contains("No space left on device"))
        })
        .await;
    eprintln!("disk drill: writer.error = {}", writer(&s)["error"]);
    let (code, body) = healthz(&app).await;
    assert_eq!(code, 503, "/healthz while the disk is full: {body}");
    // Served without the password: it names the part, the reason is in /api/status.
    assert_eq!((body["status"].as_str(), body["error"].as_str()), (Some("store failing"), Some("store")), "{body}");
    let before = stored(&s, "iss.position");
    app.wait_for("commits to go on into the journal", 30, |s| stored(s, "iss.position") >= before + 3).await;

    // Stage 2: the burst fills the journal's reserved space; records wait in memory, collection
    // goes on, and what does not fit in `store.max_pending` is dropped and counted.
    let s = app
        .wait_for("the memory queue to fill and drop records", 60, |s| {
            writer(s)["pending"].as_u64().unwrap() >= MAX_PENDING - 1
                && writer(s)["dropped"].as_u64().unwrap() > 0
                && writer(s)["error"].as_str().is_some_and(|e| {
                    e.contains("cannot store") && e.contains("No space left on device") && e.contains("records dropped")
                })
        })
        .await;
    eprintln!("disk drill: writer.error = {}", writer(&s)["error"]);
    let dropped = writer(&s)["dropped"].as_u64().unwrap();
    let (_, metrics) = app.get("/metrics").await;
    let metrics = metrics.as_str().unwrap().to_owned();
    let published = metrics
        .lines()
        .find(|l| l.starts_with("outpost_records_dropped"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no outpost_records_dropped in /metrics:\n{metrics}"));
    assert!(published >= dropped, "/metrics counts the dropped records: {published} < {dropped}");
    let polled = s["sources"]["iss_position"]["successes"].as_u64().unwrap();
    app.wait_for("collection to go on", 30, |s| {
        s["sources"]["iss_position"]["successes"].as_u64().unwrap() >= polled + 3
    })
    .await;
    // It stays paused, and says so, for as long as the disk is full.
    let paused_at = Instant::now();
    while paused_at.elapsed() < std::time::Duration::from_secs(3) {
        let s = app.status().await;
        assert!(writer(&s)["error"].is_string(), "the error is still reported while the disk is full: {s:#}");
        assert_eq!(healthz(&app).await.0, 503);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    fs.free();
    let freed = Instant::now();
    let before = app.status().await;
    let polled = before["sources"]["iss_position"]["successes"].as_u64().unwrap();
    let commits = writer(&before)["commits"].as_u64().unwrap();
    // Resumed: a commit succeeded after the space came back (it takes the whole waiting batch).
    // Not `pending == 0`: a position arrives every poll, so something is nearly always pending.
    let s = app
        .wait_for("storing to resume once space returns", 60, |s| {
            writer(s)["error"].is_null()
                && writer(s)["commits"].as_u64().unwrap() > commits
                && s["sources"]["iss_position"]["successes"].as_u64().unwrap() > polled
                && s["sources"]["varsom"]["successes"].as_u64().unwrap() > 0
        })
        .await;
    eprintln!("disk drill: resumed {:.1} s after space returned", freed.elapsed().as_secs_f64());
    // Every record handed to the writer is accounted for: stored, a duplicate, or dropped. Counted
    // once collection has stopped (the upstream answers 503) and the writer has nothing waiting.
    fx.script("/iss-now.json", vec![Reply::status(503, "drill over")]);
    let failures = s["sources"]["iss_position"]["failures"].as_u64().unwrap();
    let s = app
        .wait_for("collection to stop", 30, |s| {
            s["sources"]["iss_position"]["failures"].as_u64().unwrap() > failures && writer(s)["pending"] == 0
        })
        .await;
    let w = writer(&s);
    let dropped = w["dropped"].as_u64().unwrap();
    let (stored_now, duplicates) = (sum(&w["stored"]), sum(&w["duplicates"]));
    assert!(dropped > 0, "the burst beyond max_pending was dropped: {dropped}");
    assert_eq!(
        collected(&s),
        stored_now + duplicates + dropped,
        "collected = stored {stored_now} + duplicates {duplicates} + dropped {dropped}: {s:#}"
    );
    assert!(stored(&s, "avalanche.warning") < PER_ANSWER * REGIONS, "some warnings were dropped, not stored");
    let (code, body) = healthz(&app).await;
    assert_eq!(code, 200, "{body}");
    let from = live_start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (_, track) = app.get(&format!("/api/iss/track?from={from}&max_points=50000")).await;
    let points = track["points"].as_array().unwrap().clone();
    let log = app.log();
    assert!(app.stop().await.success(), "a clean stop after the disk was full:\n{log}");

    // A restart finds the same log, nothing corrupted.
    let app = Outpost::start(dir.path(), &cfg).await;
    let (_, after) = app.get(&format!("/api/iss/track?from={from}&max_points=50000")).await;
    let after = after["points"].as_array().unwrap().clone();
    assert_eq!(after[..points.len()], points[..], "the restart kept every stored position");
    assert_eq!(healthz(&app).await.0, 200);
    assert!(app.stop().await.success());
    let log = read_log(Path::new(&store));
    assert!(log.len() as u64 >= points.len() as u64 + stored(&s, "avalanche.warning"));
    eprintln!("disk drill: {} records intact after restart; {:.0} s", log.len(), started.elapsed().as_secs_f64());
}
