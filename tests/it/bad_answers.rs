//! Every kind of bad upstream answer is rejected with its reason, counted, and never stored,
//! while the daemon keeps running and stores the next good answer.

use crate::drills::read_log;
use crate::helpers::*;
use chrono::{DateTime, Duration, Utc};
use outpost::domain::Record;
use std::time::Duration as StdDuration;

/// Good answers' latitudes are 40 and more; each bad answer that carries a position carries a
/// latitude of its own below zero, so a stored bad answer cannot pass for a good one.
fn good_latitude(n: u64) -> String {
    format!("{:.4}", 40.0 + n as f64 * 0.01)
}

/// A position answer with `latitude`, three hours old (before every good one).
/// The latitude of every position in the whole log (not a page of it).
fn stored_latitudes(dir: &std::path::Path) -> Vec<f64> {
    read_log(dir)
        .into_iter()
        .filter_map(|r| match r.record {
            Record::IssPosition(p) => Some(p.latitude),
            _ => None,
        })
        .collect()
}

fn position(latitude: &str) -> Vec<u8> {
    open_notify(Utc::now() - Duration::hours(3), latitude, "-0.1")
}

/// Serves `bad` as the first position answer, then good ones; checks the outcome. `marker` is
/// the latitude `bad` carries, if it carries one.
async fn bad_position(bad: Reply, reason: &'static str, marker: Option<&str>) {
    let fx = FixtureServer::start().await;
    let base = Utc::now() - Duration::hours(2);
    fx.generate("/iss-now.json", move |n| {
        if n == 1 {
            bad.clone()
        } else {
            Reply::ok(open_notify(base + Duration::seconds(10 * n as i64), &good_latitude(n), "-0.1"))
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let app = Outpost::start(dir.path(), &config(&fx, dir.path(), "")).await;
    let s = app
        .wait_for(&format!("{reason} then a good position"), 60, |s| {
            rejections(s, "iss_position", reason) >= 1 && stored(s, "iss.position") >= 1
        })
        .await;
    assert!(s["sources"]["iss_position"]["last_error"].as_str().unwrap().starts_with(reason), "{s:#}");
    assert_eq!(app.get("/healthz").await.0, 200);
    assert!(app.stop().await.success(), "{reason}: clean exit");
    // The whole log, not a page of it: only good answers, and the bad one's value nowhere.
    let positions = stored_latitudes(dir.path());
    assert!(!positions.is_empty());
    if let Some(marker) = marker {
        let marker: f64 = marker.parse().unwrap();
        assert!(!positions.contains(&marker), "{reason}: the bad answer's latitude {marker} is stored: {positions:?}");
    }
    assert!(positions.iter().all(|&lat| lat >= 40.0), "{reason}: only good answers are stored: {positions:?}");
}

#[tokio::test]
async fn http_500() {
    // A valid position behind a server error is not a position.
    bad_position(Reply::status(500, position("-33.3301")), "http_status", Some("-33.3301")).await;
}

#[tokio::test]
async fn an_html_page() {
    // CelesTrak's real HTML page: it carries no position of its own.
    bad_position(Reply::ok(fixture("celestrak_legacy_query_removed.html")), "malformed_json", None).await;
}

#[tokio::test]
async fn truncated_json() {
    // Cut after the position, before the time: everything a lenient parser would need but one field.
    let mut body = position("-33.3302");
    body.truncate(String::from_utf8_lossy(&body).find("\"timestamp\"").unwrap() + 5);
    bad_position(Reply::ok(body), "malformed_json", Some("-33.3302")).await;
}

#[tokio::test]
async fn an_empty_body() {
    bad_position(Reply::ok(""), "empty_body", None).await;
}

#[tokio::test]
async fn an_answer_slower_than_the_time_out() {
    // config() sets http.timeout_s = 2
    let late = Reply::ok(position("-33.3303")).slow(StdDuration::from_secs(4));
    bad_position(late, "timeout", Some("-33.3303")).await;
}

#[tokio::test]
async fn impossible_values() {
    bad_position(Reply::ok(position("91.0")), "latitude_out_of_range", Some("91.0")).await;
    bad_position(
        Reply::ok(open_notify(Utc::now() - Duration::hours(3), "-33.3304", "-180.5")),
        "longitude_out_of_range",
        Some("-33.3304"),
    )
    .await;
    bad_position(
        Reply::ok(open_notify(Utc::now() + Duration::minutes(10), "-33.3305", "-0.1")),
        "time_in_future",
        Some("-33.3305"),
    )
    .await;
}

#[tokio::test]
async fn a_repeated_timestamp_is_stored_once() {
    let fx = FixtureServer::start().await;
    fx.script("/iss-now.json", vec![Reply::ok(fixture("open-notify_iss-now.json"))]);
    let dir = tempfile::tempdir().unwrap();
    let app = Outpost::start(dir.path(), &config(&fx, dir.path(), "")).await;
    let s = app
        .wait_for("the same answer three times", 30, |s| rejections(s, "iss_position", "time_not_after_last") >= 2)
        .await;
    assert_eq!(stored(&s, "iss.position"), 1);
    assert_eq!(s["store"]["kinds"][0]["first"], "2020-06-29T02:39:33Z");
    assert!(app.stop().await.success());
}

#[tokio::test]
async fn bad_tles_are_rejected_and_back_off_for_hours() {
    let mut checksum = String::from_utf8(fixture("celestrak_gp_CATNR25544_FORMAT_TLE.txt")).unwrap();
    checksum = checksum.replace("23261.44473810", "23261.44473811");
    for (reply, reason) in [
        (Reply::ok(fixture("celestrak_not_updated_notice.txt")), "not_updated_notice"),
        (Reply::status(403, fixture("celestrak_not_updated_notice.txt")), "http_status"),
        (Reply::ok(fixture("celestrak_legacy_query_removed.html")), "html"),
        (Reply::ok(checksum), "bad_checksum"),
    ] {
        let fx = FixtureServer::start().await;
        fx.script("/tle", vec![reply, Reply::ok(fixture("celestrak_gp_CATNR25544_FORMAT_TLE.txt"))]);
        let dir = tempfile::tempdir().unwrap();
        let app = Outpost::start(dir.path(), &config(&fx, dir.path(), "")).await;
        let next_attempt = |s: &serde_json::Value| {
            s["sources"]["iss_tle"]["next_attempt"].as_str().and_then(|t| t.parse::<chrono::DateTime<Utc>>().ok())
        };
        let s = app
            .wait_for(&format!("{reason}, then a back-off of hours"), 30, |s| {
                rejections(s, "iss_tle", reason) == 1
                    && next_attempt(s).is_some_and(|t| t - Utc::now() > Duration::minutes(55))
            })
            .await;
        assert_eq!(stored(&s, "iss.tle"), 0, "{reason}");
        assert_eq!(fx.requests_to("/tle").len(), 1);
        assert!(app.stop().await.success());
    }
}

#[tokio::test]
async fn one_bad_warning_does_not_lose_the_others_and_bad_bodies_store_nothing() {
    let fx = FixtureServer::start().await;
    // The recorded answer with RegIds from `first` on: each bad body gets RegIds of its own.
    let recorded = |first: u64| {
        let mut w: serde_json::Value =
            serde_json::from_slice(&fixture("nve_AvalancheWarningByRegion_Detail.json")).unwrap();
        for (i, w) in w.as_array_mut().unwrap().iter_mut().enumerate() {
            w["RegId"] = (first + i as u64).into();
        }
        w
    };
    let (behind_500, truncated_ids, bad_level) = (8_000_000, 8_100_000, 8_200_001);
    let mut warnings = recorded(8_200_000);
    warnings[1]["DangerLevel"] = "7".into();
    let mut truncated = serde_json::to_vec(&recorded(truncated_ids)).unwrap();
    truncated.truncate(5000);
    fx.script(
        "/nve",
        vec![
            Reply::status(500, serde_json::to_vec(&recorded(behind_500)).unwrap()),
            Reply::ok(truncated),
            Reply::ok(serde_json::to_vec(&warnings).unwrap()),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    // Three regions, so one round meets all three answers.
    let app = Outpost::start(
        dir.path(),
        &config(&fx, dir.path(), "").replace("regions = [3022]", "regions = [3022, 3023, 3024]"),
    )
    .await;
    let s = app
        .wait_for("the three answers", 30, |s| {
            rejections(s, "varsom", "bad_danger_level") >= 1 && stored(s, "avalanche.warning") >= 4
        })
        .await;
    assert_eq!(rejections(&s, "varsom", "http_status"), 1);
    assert_eq!(rejections(&s, "varsom", "malformed_json"), 1);
    assert_eq!(stored(&s, "avalanche.warning"), 4, "the 4 good warnings of 5");
    let (_, day) = app.get("/api/avalanche?date=2023-03-02").await;
    assert_eq!(day, serde_json::json!([]), "the bad one is not stored");
    assert!(app.stop().await.success());
    let stored_ids: Vec<u64> = read_log(dir.path())
        .into_iter()
        .filter_map(|r| match r.record {
            Record::AvalancheWarning(w) => Some(w.reg_id),
            _ => None,
        })
        .collect();
    assert_eq!(stored_ids.len(), 4, "{stored_ids:?}");
    for id in &stored_ids {
        assert!(
            (8_200_000..8_200_005).contains(id) && *id != bad_level,
            "only the good warnings of the last answer are stored: {stored_ids:?}"
        );
    }
    let from = |first: u64| (first..first + 5).collect::<Vec<u64>>();
    for bad in [from(behind_500), from(truncated_ids)] {
        assert!(stored_ids.iter().all(|id| !bad.contains(id)), "a bad body's warning is stored: {stored_ids:?}");
    }
}

/// The peak resident memory of a process, in bytes (VmHWM).
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).expect("VmHWM in /proc/<pid>/status");
    kb.trim().trim_end_matches("kB").trim().parse::<u64>().unwrap() * 1024
}

/// `outpost_rejections_total` for `source` and `reason` in the /metrics text.
async fn rejections_metric(app: &Outpost, source: &str, reason: &str) -> u64 {
    let (code, text) = app.get("/metrics").await;
    assert_eq!(code, 200);
    let text = text.as_str().unwrap().to_owned();
    let (source, reason) = (format!("source=\"{source}\""), format!("reason=\"{reason}\""));
    text.lines()
        .find(|l| l.starts_with("outpost_rejections_total{") && l.contains(&source) && l.contains(&reason))
        .map_or(0, |l| l.rsplit(' ').next().unwrap().parse().unwrap())
}

/// A 50 MB answer, framed each way HTTP allows (and with a Content-Length that lies), is refused
/// without being held in memory, counted, and stores nothing; the answers after it are stored.
#[tokio::test]
async fn a_50_mb_answer_is_refused_and_memory_stays_bounded() {
    use crate::upstreams::{Framing, RawReply, RawServer};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    const HUGE: usize = 50 * 1024 * 1024;
    let base = Utc::now() - Duration::hours(2);
    let at = move |n: u64| base + Duration::seconds(10 * n as i64);
    // A valid position, then 50 MB of JSON whitespace: read whole, it would parse and be stored.
    let huge = move |n: u64, framing| {
        let body = open_notify(at(n), "-33.3306", "-0.1");
        RawReply { framing, padding: HUGE - body.len(), body, pad: b' ' }
    };
    // Good answers until the test arms it; from the first connection after that (`start`), a
    // hostile answer every other connection.
    let (armed, start) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(u64::MAX)));
    let (armed2, start2) = (armed.clone(), start.clone());
    let server = RawServer::start(move |n| {
        if armed2.load(Ordering::SeqCst) {
            let _ = start2.compare_exchange(u64::MAX, n, Ordering::SeqCst, Ordering::SeqCst);
        }
        match n.checked_sub(start2.load(Ordering::SeqCst)) {
            Some(0) => huge(n, Framing::Length(HUGE as u64)),
            Some(2) => huge(n, Framing::Chunked),
            Some(4) => huge(n, Framing::UntilClose),
            // Says 1000 bytes and sends 50 MB: only the 1000 are read (an unterminated array).
            Some(6) => RawReply { framing: Framing::Length(1000), body: b"[".to_vec(), padding: HUGE, pad: b' ' },
            _ => RawReply::ok(open_notify(at(n), &good_latitude(n), "-0.1")),
        }
    })
    .await;
    let fx = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&fx, dir.path(), "").replace(&fx.url("/iss-now.json"), &server.url("/iss-now.json"));
    let app = Outpost::start(dir.path(), &cfg).await;
    let s = app.wait_for("good positions", 30, |s| stored(s, "iss.position") >= 2).await;
    let (before, baseline) = (stored(&s, "iss.position"), peak_rss(app.pid()));
    armed.store(true, Ordering::SeqCst);
    let s = app
        .wait_for("three answers too large, one cut short, and good ones after them", 90, |s| {
            rejections(s, "iss_position", "too_large") >= 3
                && rejections(s, "iss_position", "malformed_json") >= 1
                && server.connections() > start.load(Ordering::SeqCst).saturating_add(7)
                && stored(s, "iss.position") >= before + 5
        })
        .await;
    let first = start.load(Ordering::SeqCst);
    assert_eq!(rejections(&s, "iss_position", "too_large"), 3, "{s:#}");
    assert_eq!(rejections_metric(&app, "iss_position", "too_large").await, 3);
    let detail = s["sources"]["iss_position"]["rejection_details"]["too_large"].as_str().unwrap();
    assert!(detail.contains("cap"), "{detail}");
    let growth = peak_rss(app.pid()).saturating_sub(baseline);
    eprintln!("peak RSS {} MB before the 50 MB answers, grew by {:.1} MB", baseline >> 20, growth as f64 / 1048576.0);
    assert!(growth < 20 << 20, "the peak RSS grew by {growth} bytes over 50 MB answers");
    // The client stopped reading: most of each 50 MB was never even accepted by the socket.
    for k in [0, 2, 4, 6] {
        let conn = first + k;
        let deadline = tokio::time::Instant::now() + StdDuration::from_secs(30);
        let written = loop {
            if let Some(w) = server.written(conn) {
                break w;
            }
            assert!(tokio::time::Instant::now() < deadline, "connection {conn} never ended");
            tokio::time::sleep(StdDuration::from_millis(50)).await;
        };
        eprintln!("hostile answer {k}: {:.1} MB of 50 written before the client hung up", written as f64 / 1048576.0);
        assert!(written < HUGE / 2, "connection {conn}: {written} bytes of {HUGE} written");
    }
    assert!(app.stop().await.success());
    let positions = stored_latitudes(dir.path());
    assert!(positions.iter().all(|&lat| lat >= 40.0), "only good answers are stored: {positions:?}");
}

/// The point `km` kilometres from the ISS's, along its meridian (towards the equator).
fn off_orbit(lat: f64, lon: f64, km: f64) -> (f64, f64) {
    let dlat = km / 111.195;
    (if lat > 0.0 { lat - dlat } else { lat + dlat }, lon)
}

/// With a fresh TLE stored, a position 3,000 km off the orbit (plain HTTP: anyone on the path can
/// send one) is rejected as `implausible` and counted; the real ones around it are kept.
#[tokio::test]
async fn a_position_off_the_orbit_is_rejected_while_real_ones_are_kept() {
    let fx = FixtureServer::start().await;
    let tle = crate::email::tle_at(Utc::now() - Duration::hours(6));
    // Whole seconds, as open-notify's timestamps are: the served point is the orbit's at that time.
    let base = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap() - Duration::minutes(30);
    let at = move |n: u64| base + Duration::seconds(10 * n as i64);
    let (tle2, spoofed_at) = (tle.clone(), 4);
    // Real positions (where SGP4 puts the ISS by the served TLE) until the TLE is stored, then
    // one 3000 km off, then real ones again.
    fx.generate("/iss-now.json", move |n| {
        if n == spoofed_at {
            let (lat, lon) = subpoint(&tle2, at(n));
            let (lat, lon) = off_orbit(lat, lon, 3000.0);
            Reply::ok(open_notify(at(n), &format!("{lat:.4}"), &format!("{lon:.4}")))
        } else {
            Reply::ok(on_orbit(&tle2, at(n)))
        }
    });
    fx.script("/tle", vec![Reply::ok(tle.clone())]);
    let dir = tempfile::tempdir().unwrap();
    // The TLE is asked for first, so that the spoofed answer meets it.
    let cfg = config(&fx, dir.path(), "").replace("poll_interval_s = 1", "poll_interval_s = 2");
    let app = Outpost::start(dir.path(), &cfg).await;
    let s = app
        .wait_for("the spoofed position rejected and real ones after it", 60, |s| {
            rejections(s, "iss_position", "implausible") >= 1
                && fx.requests_to("/iss-now.json").len() as u64 >= spoofed_at + 3
                && stored(s, "iss.position") > spoofed_at
        })
        .await;
    assert_eq!(stored(&s, "iss.tle"), 1);
    assert_eq!(rejections(&s, "iss_position", "implausible"), 1, "{s:#}");
    assert_eq!(rejections_metric(&app, "iss_position", "implausible").await, 1);
    let detail = s["sources"]["iss_position"]["rejection_details"]["implausible"].as_str().unwrap();
    let km: f64 = detail.split(" km from").next().unwrap().rsplit(' ').next().unwrap().parse().unwrap();
    assert!((2990.0..3010.0).contains(&km), "{detail}");
    assert!(app.stop().await.success());
    // Every stored position is on the orbit, and every answer but the spoofed one is stored.
    let times: Vec<_> = read_log(dir.path())
        .into_iter()
        .filter_map(|r| match r.record {
            Record::IssPosition(p) => {
                let (lat, lon) = subpoint(&tle, p.time);
                let off = outpost::passes::great_circle_km(lat, lon, p.latitude, p.longitude);
                assert!(off < 1.0, "a stored position {off:.0} km off the orbit: {p:?}");
                Some(p.time)
            }
            _ => None,
        })
        .collect();
    assert!(!times.contains(&at(spoofed_at)), "the spoofed position is stored");
    let answered = fx.requests_to("/iss-now.json").len() as u64;
    assert!(times.len() as u64 >= answered - 2, "{} of {answered} answers stored", times.len());
}

/// One answer stamped 4 minutes ahead (within the old 5-minute tolerance) is refused as
/// `time_in_future` and does not hold back the real positions after it.
#[tokio::test]
async fn a_position_from_the_future_does_not_suppress_real_ones() {
    let fx = FixtureServer::start().await;
    fx.generate("/iss-now.json", move |n| {
        if n == 1 {
            Reply::ok(open_notify(Utc::now() + Duration::minutes(4), "-33.3307", "-0.1"))
        } else {
            Reply::ok(open_notify(Utc::now() - Duration::seconds(1), &good_latitude(n), "-0.1"))
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let app = Outpost::start(dir.path(), &config(&fx, dir.path(), "")).await;
    // Four minutes of suppression would leave none of these stored for four minutes.
    app.wait_for("real positions after the future one", 30, |s| {
        rejections(s, "iss_position", "time_in_future") == 1 && stored(s, "iss.position") >= 3
    })
    .await;
    assert!(app.stop().await.success());
    let positions = stored_latitudes(dir.path());
    assert!(positions.iter().all(|&lat| lat >= 40.0), "the future position is not stored: {positions:?}");
}
