//! Fault drill: a wrong clock. A Raspberry Pi has no real-time clock: it can boot believing it is
//! 1970, or far in the future, until NTP sets the clock. The real binary runs under Debian's
//! libfaketime (LD_PRELOAD; the offset is re-read from a file at every call, so the test "sets the
//! clock" while it runs; the monotonic clock is left alone, as NTP leaves it). Checked: nothing
//! with an impossible time is stored, and once the clock is set every schedule recovers at once:
//! positions are accepted again, avalanche warnings are asked for the right days, pass emails are
//! planned, and a TLE mark written in the future neither blocks nor survives a restart. While
//! the clock is wrong, `/api/passes` and `/status` say that the TLE does not fit it (with its
//! epoch and age), and predict again once it is set.

use crate::drills::new_warnings;
use crate::email::tle_at;
use crate::helpers::*;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::Value;
use std::path::Path;
use std::time::Instant;

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
const MARK: &str = "source.iss_tle.last_attempt_s";

/// The library, or `None` where Debian's faketime package is missing (the test then skips).
pub(crate) fn libfaketime() -> Option<String> {
    let multiarch = format!("/usr/lib/{}-linux-gnu/faketime/libfaketime.so.1", std::env::consts::ARCH);
    [LIBFAKETIME, multiarch.as_str()].into_iter().find(|p| Path::new(p).exists()).map(str::to_owned)
}

pub(crate) const NO_FAKETIME: &str =
    "libfaketime is not installed (Debian package faketime; scripts/test.sh installs it)";

/// A clock for the appliance: writes libfaketime's offset file.
struct FakeClock {
    file: std::path::PathBuf,
}

impl FakeClock {
    fn set(&self, at: DateTime<Utc>) {
        let offset = (at - Utc::now()).num_seconds();
        std::fs::write(&self.file, format!("{offset:+}\n")).unwrap();
    }
    /// NTP has set the clock: no offset.
    fn correct(&self) {
        std::fs::write(&self.file, "+0\n").unwrap();
    }
}

async fn start_faked(dir: &Path, cfg: &str, lib: &str, clock: &FakeClock) -> Outpost {
    let preload = format!("LD_PRELOAD={lib}");
    let file = format!("FAKETIME_TIMESTAMP_FILE={}", clock.file.display());
    let bin = bin();
    let command = ["/usr/bin/env", &preload, &file, "FAKETIME_NO_CACHE=1", "FAKETIME_DONT_FAKE_MONOTONIC=1", bin];
    Outpost::start_with(dir, cfg, &command).await
}

fn oslo_today() -> NaiveDate {
    Utc::now().with_timezone(&chrono_tz::Europe::Oslo).date_naive()
}

/// NVE was asked for the days up to tomorrow (in Norway): the right days.
fn asked_for_today(fx: &FixtureServer) -> bool {
    let tomorrow = oslo_today().succ_opt().unwrap().to_string();
    fx.requests_to("/nve").iter().any(|r| r.ends_with(&format!("/{tomorrow}")))
}

fn cursor(s: &Value, name: &str) -> Option<i64> {
    s["store"]["cursors"][name].as_i64()
}

/// A fixture server with live positions (real times, one second apart), a TLE of now, and NVE.
fn serve(fx: &FixtureServer) {
    let base = Utc::now() - Duration::minutes(10);
    let tle = tle_at(Utc::now() - Duration::hours(2));
    // On the TLE's orbit: a position that contradicts a fresh TLE is refused.
    let served = tle.clone();
    fx.generate("/iss-now.json", move |n| Reply::ok(on_orbit(&served, base + Duration::seconds(n as i64))));
    fx.script("/tle", vec![Reply::ok(tle)]);
    fx.generate("/nve", |n| Reply::ok(new_warnings(n)));
}

/// Every stored position is from the real past, not from the wrong clock's idea of now.
fn plausible_positions(s: &Value, app_log: &str) {
    let last =
        s["store"]["kinds"].as_array().unwrap().iter().find(|k| k["kind"] == "iss.position").unwrap()["last"].clone();
    if let Some(last) = last.as_str() {
        let last: DateTime<Utc> = last.parse().unwrap();
        assert!(last <= Utc::now() + Duration::minutes(5), "a position from the future was stored: {last}\n{app_log}");
        assert!(last >= Utc::now() - Duration::hours(1), "a position from the past was stored: {last}");
    }
}

/// `/api/passes` (at `passes`) refuses the TLE for the wrong clock with the 503 naming its epoch
/// and age (`age_fits` it, the message says `why`), and `/status` shows the TLE as unusable.
async fn assert_tle_refused(app: &Outpost, passes: &str, age_fits: impl Fn(f64) -> bool, why: &str) {
    let (code, body) = app.get(passes).await;
    assert_eq!(code, 503, "{passes}: {body}");
    let age = body["tle_age_days"].as_f64().unwrap_or_else(|| panic!("no tle_age_days: {body}"));
    assert!(age_fits(age), "{body}");
    assert!(body["tle_epoch"].as_str().is_some_and(|e| e.parse::<DateTime<Utc>>().is_ok()), "{body}");
    assert!(body["error"].as_str().is_some_and(|e| e.contains(why)), "{body}");
    let s = app.status().await;
    assert_eq!(s["tle"]["level"], "error", "{}", s["tle"]);
    assert!((s["tle"]["age_days"].as_f64().unwrap() - age).abs() < 0.2, "{} vs {body}", s["tle"]);
    let (_, page) = app.get("/status").await;
    assert!(page.as_str().is_some_and(|p| p.contains(r#"<span class="health bad">unusable</span>"#)), "{page}");
    eprintln!("clock drill: {passes} answered 503: {}", body["error"]);
}

/// Once the clock is set, passes are predicted again.
async fn assert_passes_predicted(app: &Outpost, passes: &str) {
    let (code, body) = app.get(passes).await;
    assert_eq!(code, 200, "{passes}: {body}");
    assert!(app.status().await["tle"]["level"] == "ok");
}

#[tokio::test]
async fn drills_a_pi_that_boots_in_1970_recovers_when_ntp_sets_the_clock() {
    let Some(lib) = libfaketime() else {
        skip!("{NO_FAKETIME}");
        return;
    };
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock { file: dir.path().join("faketime") };
    clock.set("1970-01-01T00:01:00Z".parse().unwrap());
    let fx = FixtureServer::start().await;
    serve(&fx);
    let app = start_faked(dir.path(), &config(&fx, &dir.path().join("store"), ""), &lib, &clock).await;

    // 1970: every real position is "from the future" and rejected; the failures back off.
    let s = app
        .wait_for("positions rejected as from the future, backing off", 60, |s| {
            rejections(s, "iss_position", "time_in_future") >= 5 && !fx.requests_to("/nve").is_empty()
        })
        .await;
    assert_eq!(stored(&s, "iss.position"), 0, "nothing stored at a 1970 clock");
    assert!(fx.requests_to("/nve")[0].contains("/1970-01-0"), "NVE was asked for 1970: {:?}", fx.requests_to("/nve"));
    assert!(!asked_for_today(&fx));
    // The TLE (of two hours ago, fetched at once) is stored; the clock is some 20,000 days before
    // its epoch. No [location] here: the place is asked for.
    let passes = "/api/passes?lat=59.9&lon=10.7";
    app.wait_for("the TLE", 30, |s| stored(s, "iss.tle") == 1).await;
    assert_tle_refused(&app, passes, |age| age < -20_000.0, "the clock is wrong").await;
    eprintln!(
        "clock drill (1970): {} positions rejected, NVE asked for {:?}",
        rejections(&s, "iss_position", "time_in_future"),
        fx.requests_to("/nve")
    );

    // NTP sets the clock. The position back-off (by now 16-32 s) and the 3-hour avalanche
    // re-check are cut short: both happen within seconds.
    clock.correct();
    let set_at = Instant::now();
    let s = app
        .wait_for("positions stored and today's warnings asked for, right after the clock was set", 8, |s| {
            stored(s, "iss.position") >= 1 && asked_for_today(&fx)
        })
        .await;
    eprintln!("clock drill (1970): recovered {:.1} s after the clock was set", set_at.elapsed().as_secs_f64());
    plausible_positions(&s, &app.log());
    assert!(app.log().contains("the system clock was set; rescheduling"));
    assert_passes_predicted(&app, passes).await;
    assert!(app.stop().await.success());
    eprintln!("clock drill (1970): {:.0} s", started.elapsed().as_secs_f64());
}

#[tokio::test]
async fn drills_a_pi_that_boots_in_the_future_recovers_when_ntp_sets_the_clock() {
    let Some(lib) = libfaketime() else {
        skip!("{NO_FAKETIME}");
        return;
    };
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock { file: dir.path().join("faketime") };
    let future = Utc::now() + Duration::days(3650);
    clock.set(future);
    let fx = FixtureServer::start().await;
    serve(&fx);
    // Pass emails on (through an SMTP port nobody listens on, due at once), so a pass planned
    // from the wrong clock would be tried, fail, and end up recorded as missed.
    let smtp = crate::upstreams::free_port();
    let extra = format!(
        "[location]\nlatitude = 59.9\nlongitude = 10.7\n[email]\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {smtp}\n\
         security = \"none\"\nfrom = \"outpost@example.org\"\nto = [\"alice@example.org\"]\nlead_minutes = 1440\n"
    );
    let cfg = config(&fx, &dir.path().join("store"), &extra);
    let app = start_faked(dir.path(), &cfg, &lib, &clock).await;

    // The future: real positions are stored (they are true), the TLE too; its attempt is marked
    // in the future; NVE is asked for 2036; no pass is planned from a TLE ten years old.
    let s = app
        .wait_for("positions, the TLE, and emails waiting for the clock", 60, |s| {
            stored(s, "iss.position") >= 3
                && stored(s, "iss.tle") == 1
                && cursor(s, MARK).is_some_and(|m| m > Utc::now().timestamp() + 86_400)
                && s["email"]["waiting"].as_str().is_some_and(|w| w.contains("clock"))
        })
        .await;
    eprintln!("clock drill (future): email waiting: {}", s["email"]["waiting"]);
    assert_eq!(s["email"]["failures"], 0, "no email tried from a wrong clock");
    assert_eq!(stored(&s, "alert.email"), 0);
    assert!(!asked_for_today(&fx), "NVE was asked for the future: {:?}", fx.requests_to("/nve"));
    plausible_positions(&s, &app.log());
    // Ten years after the TLE's epoch.
    assert_tle_refused(&app, "/api/passes", |age| (3649.0..3651.0).contains(&age), "days old").await;

    // NTP sets the clock back: today's warnings are asked for and passes are planned at once.
    clock.correct();
    let set_at = Instant::now();
    let positions = stored(&s, "iss.position");
    let s = app
        .wait_for("today's warnings and pass planning, right after the clock was set", 8, |s| {
            asked_for_today(&fx) && s["email"]["waiting"].is_null() && stored(s, "iss.position") > positions
        })
        .await;
    eprintln!("clock drill (future): recovered {:.1} s after the clock was set", set_at.elapsed().as_secs_f64());
    plausible_positions(&s, &app.log());
    assert_passes_predicted(&app, "/api/passes").await;
    assert!(app.stop().await.success());

    // A restart with the right clock: the TLE mark from the future neither blocks the next TLE
    // request (tle_refresh_h is 2 here) nor survives it.
    let tle_requests = fx.requests_to("/tle").len();
    let app = start_faked(dir.path(), &cfg, &lib, &clock).await;
    let s = app
        .wait_for("a TLE request at once, and the mark set back to now", 15, |s| {
            fx.requests_to("/tle").len() > tle_requests
                && cursor(s, MARK).is_some_and(|m| m <= Utc::now().timestamp() + 60)
        })
        .await;
    assert_eq!(stored(&s, "alert.email"), 0, "no email record with a pass from the wrong clock");
    plausible_positions(&s, &app.log());
    assert!(app.stop().await.success());
    eprintln!("clock drill (future): {:.0} s", started.elapsed().as_secs_f64());
}
