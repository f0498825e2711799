//! What to email now: a pure function of the predicted passes, the clock, what the log already
//! records and what is failing in this process. No I/O, no clock.

use crate::domain::AlertKind;
use crate::passes::{Pass, PassPoint};
use chrono::{DateTime, Duration, Utc};
use std::collections::{HashMap, HashSet};

/// The identity of an email: (alert, pass rise in ms), as the store indexes it.
pub type Key = (AlertKind, i64);

pub fn key(kind: AlertKind, pass: &Pass) -> Key {
    (kind, pass.rise.time.timestamp_millis())
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    /// The pass email goes out this long before the pass becomes visible.
    pub lead: Duration,
    /// The overhead alert's elevation, when the overhead alert is on.
    pub overhead_elevation_deg: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send (or retry) this email now.
    Send(AlertKind, Pass),
    /// Sending failed until it stopped being useful: record it as missed.
    Missed(AlertKind, Pass),
}

/// A pass email that will go out later (for the status).
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub send_at: DateTime<Utc>,
    pub pass: Pass,
}

/// How far past its epoch a TLE still predicts a pass to within a minute or so.
pub const TLE_USEFUL_DAYS: i64 = 14;

/// Whether the clock and the newest TLE fit together well enough to predict passes and email
/// about them. A clock before the TLE's epoch is wrong (a Pi without a real-time clock that booted
/// at 1970); one far past it is either wrong (booted in the future) or no TLE arrived for two
/// weeks. Either way a prediction would be fiction, and its email (and the record of it, keyed by
/// the predicted pass) would carry impossible times, so none is made until they fit.
pub fn clock_fits_tle(now: DateTime<Utc>, epoch: DateTime<Utc>) -> Result<(), String> {
    if now < epoch - Duration::days(1) {
        return Err(format!(
            "the clock ({now}) is before the newest TLE's epoch ({epoch}): the clock is wrong; no pass emails until it is set"
        ));
    }
    if now > epoch + Duration::days(TLE_USEFUL_DAYS) {
        return Err(format!(
            "the newest TLE's epoch ({epoch}) is {} days before the clock ({now}): the clock is wrong or no TLE arrived for {TLE_USEFUL_DAYS} days; no pass emails until they fit",
            (now - epoch).num_days()
        ));
    }
    Ok(())
}

/// Until when an email is worth sending: a pass email until the pass becomes visible, an
/// overhead email until the pass stops being visible.
pub fn deadline(kind: AlertKind, pass: &Pass) -> Option<DateTime<Utc>> {
    match kind {
        AlertKind::Pass => pass.visible_from,
        AlertKind::Overhead => pass.visible_to,
    }
}

/// What to do now.
///
/// - A pass email is due from `visible_from - lead` until `visible_from` (so a late start still
///   sends it while the pass has not begun to be visible), unless the log records it.
/// - An overhead email (when enabled) is due while the pass is visible, its culmination reaches
///   the configured elevation and the ISS is at or above it right now (`sky_now`: where the ISS
///   is now), unless recorded. Visible means sunlit in a dark sky, i.e. at night.
/// - An email in `failing` (tried and failed in this process) whose deadline has passed and
///   that is still unrecorded becomes `Missed`.
pub fn decide(
    passes: &[Pass],
    now: DateTime<Utc>,
    sky_now: Option<PassPoint>,
    recorded: &HashSet<Key>,
    failing: &HashMap<Key, Pass>,
    rules: &Rules,
) -> Vec<Action> {
    let mut out = Vec::new();
    for p in passes.iter().filter(|p| p.visible) {
        let (Some(from), Some(to)) = (p.visible_from, p.visible_to) else { continue };
        if !recorded.contains(&key(AlertKind::Pass, p)) && from - rules.lead <= now && now < from {
            out.push(Action::Send(AlertKind::Pass, p.clone()));
        }
        if let Some(min_el) = rules.overhead_elevation_deg
            && p.culmination.elevation_deg >= min_el
            && from <= now
            && now < to
            && sky_now.is_some_and(|s| s.elevation_deg >= min_el)
            && !recorded.contains(&key(AlertKind::Overhead, p))
        {
            out.push(Action::Send(AlertKind::Overhead, p.clone()));
        }
    }
    for (k, p) in failing {
        if !recorded.contains(k) && deadline(k.0, p).is_some_and(|d| now >= d) {
            out.push(Action::Missed(k.0, p.clone()));
        }
    }
    out
}

/// Pass emails not yet recorded whose pass has not begun to be visible, soonest first.
pub fn pending(passes: &[Pass], now: DateTime<Utc>, recorded: &HashSet<Key>, rules: &Rules) -> Vec<Pending> {
    let mut out: Vec<Pending> = passes
        .iter()
        .filter(|p| p.visible && !recorded.contains(&key(AlertKind::Pass, p)))
        .filter_map(|p| {
            let from = p.visible_from?;
            (now < from).then(|| Pending { send_at: from - rules.lead, pass: p.clone() })
        })
        .collect();
    out.sort_by_key(|p| p.send_at);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn pass() -> Pass {
        let pt = |s: &str, az: f64, el: f64| PassPoint { time: t(s), azimuth_deg: az, elevation_deg: el };
        Pass {
            rise: pt("2023-09-18T19:38:00Z", 217.0, 10.0),
            culmination: pt("2023-09-18T19:41:00Z", 170.0, 70.0),
            set: pt("2023-09-18T19:44:00Z", 123.0, 10.0),
            visible: true,
            visible_from: Some(t("2023-09-18T19:38:30Z")),
            visible_to: Some(t("2023-09-18T19:43:00Z")),
        }
    }

    fn rules(overhead: Option<f64>) -> Rules {
        Rules { lead: Duration::minutes(15), overhead_elevation_deg: overhead }
    }

    fn run(now: &str, recorded: &[Key], failing: &[Key], overhead: Option<f64>, sky_el: f64) -> Vec<Action> {
        let p = pass();
        let recorded: HashSet<Key> = recorded.iter().copied().collect();
        let failing: HashMap<Key, Pass> = failing.iter().map(|k| (*k, p.clone())).collect();
        let sky = PassPoint { time: t(now), azimuth_deg: 180.0, elevation_deg: sky_el };
        decide(&[p], t(now), Some(sky), &recorded, &failing, &rules(overhead))
    }

    #[test]
    fn the_pass_email_is_due_in_the_lead_window_only() {
        assert_eq!(run("2023-09-18T19:23:29Z", &[], &[], None, -20.0), vec![]);
        assert_eq!(run("2023-09-18T19:23:30Z", &[], &[], None, -20.0), vec![Action::Send(AlertKind::Pass, pass())]);
        // A late start still sends while the pass has not begun to be visible...
        assert_eq!(run("2023-09-18T19:38:29Z", &[], &[], None, 5.0), vec![Action::Send(AlertKind::Pass, pass())]);
        // ...but not once it has.
        assert_eq!(run("2023-09-18T19:38:30Z", &[], &[], None, 12.0), vec![]);
    }

    #[test]
    fn a_recorded_email_is_never_due_again() {
        let k = key(AlertKind::Pass, &pass());
        assert_eq!(run("2023-09-18T19:30:00Z", &[k], &[], None, -5.0), vec![]);
        // Not missed either, even if this process had failed before it got recorded.
        assert_eq!(run("2023-09-18T19:39:00Z", &[k], &[k], None, 20.0), vec![]);
    }

    #[test]
    fn a_failing_email_is_retried_until_the_pass_begins_then_missed() {
        let k = key(AlertKind::Pass, &pass());
        assert_eq!(run("2023-09-18T19:38:00Z", &[], &[k], None, 1.0), vec![Action::Send(AlertKind::Pass, pass())]);
        assert_eq!(run("2023-09-18T19:38:30Z", &[], &[k], None, 12.0), vec![Action::Missed(AlertKind::Pass, pass())]);
        // Never tried (e.g. started after the pass began): nothing to record.
        assert_eq!(run("2023-09-18T19:38:30Z", &[], &[], None, 12.0), vec![]);
    }

    #[test]
    fn the_overhead_alert_fires_once_while_high_and_visible() {
        let k = key(AlertKind::Overhead, &pass());
        // Disabled: nothing.
        assert_eq!(run("2023-09-18T19:41:00Z", &[key(AlertKind::Pass, &pass())], &[], None, 70.0), vec![]);
        let pass_sent = [key(AlertKind::Pass, &pass())];
        // Visible but still low.
        assert_eq!(run("2023-09-18T19:39:00Z", &pass_sent, &[], Some(60.0), 30.0), vec![]);
        // High and visible: once.
        assert_eq!(
            run("2023-09-18T19:41:00Z", &pass_sent, &[], Some(60.0), 70.0),
            vec![Action::Send(AlertKind::Overhead, pass())]
        );
        assert_eq!(run("2023-09-18T19:41:10Z", &[pass_sent[0], k], &[], Some(60.0), 69.0), vec![]);
        // High but no longer visible (in the earth's shadow): nothing.
        assert_eq!(run("2023-09-18T19:43:00Z", &pass_sent, &[], Some(10.0), 15.0), vec![]);
        // A pass that never gets that high: nothing.
        assert_eq!(run("2023-09-18T19:41:00Z", &pass_sent, &[], Some(75.0), 70.0), vec![]);
        // Failing until the pass stops being visible: missed.
        assert_eq!(
            run("2023-09-18T19:43:00Z", &pass_sent, &[k], Some(60.0), 20.0),
            vec![Action::Missed(AlertKind::Overhead, pass())]
        );
    }

    #[test]
    fn no_emails_while_the_clock_and_the_tle_do_not_fit() {
        let epoch = t("2025-03-01T06:00:00Z");
        assert!(clock_fits_tle(t("2025-03-01T12:00:00Z"), epoch).is_ok());
        assert!(clock_fits_tle(t("2025-03-14T12:00:00Z"), epoch).is_ok());
        assert!(clock_fits_tle(t("2025-02-28T12:00:00Z"), epoch).is_ok(), "a few hours of skew");
        let booted_in_1970 = clock_fits_tle(t("1970-01-01T00:00:10Z"), epoch).unwrap_err();
        assert!(booted_in_1970.contains("clock is wrong"), "{booted_in_1970}");
        let booted_in_2036 = clock_fits_tle(t("2036-03-01T00:00:00Z"), epoch).unwrap_err();
        assert!(booted_in_2036.contains("4017 days before the clock"), "{booted_in_2036}");
        assert!(clock_fits_tle(t("2025-03-16T07:00:00Z"), epoch).is_err(), "a TLE older than two weeks");
    }

    #[test]
    fn pending_lists_unrecorded_future_passes_with_their_send_time() {
        let p = pass();
        let got = pending(std::slice::from_ref(&p), t("2023-09-18T12:00:00Z"), &HashSet::new(), &rules(None));
        assert_eq!(got, vec![Pending { send_at: t("2023-09-18T19:23:30Z"), pass: p.clone() }]);
        let rec: HashSet<Key> = [key(AlertKind::Pass, &p)].into();
        assert!(pending(std::slice::from_ref(&p), t("2023-09-18T12:00:00Z"), &rec, &rules(None)).is_empty());
        assert!(pending(&[p], t("2023-09-18T19:38:30Z"), &HashSet::new(), &rules(None)).is_empty());
    }
}
