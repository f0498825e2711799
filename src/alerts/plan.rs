//! What to email now: a pure function of the predicted passes, the clock, what the log already
//! records and what is failing in this process. No I/O, no clock.

use crate::domain::AlertKind;
use crate::passes::{Pass, PassPoint};
use chrono::{DateTime, Duration, Utc};
use std::collections::{BTreeSet, HashMap};

/// One prediction of an email's pass: (alert, pass rise in ms), as the store indexes it. Two
/// keys are the same physical pass when `same_pass` says so, not only when they are equal.
pub type Key = (AlertKind, i64);

pub fn key(kind: AlertKind, pass: &Pass) -> Key {
    (kind, pass.rise.time.timestamp_millis())
}

/// Two predicted rise times of one kind of alert this close belong to the same physical pass.
/// A new TLE (every 12 h; tens of seconds for one a few days older), the switch from the
/// configured location to the GPS fix, or GPS wander move a prediction by seconds. The ISS
/// passes over one place about every 90 minutes (one orbit), so 5 minutes can never merge two
/// real passes.
pub const SAME_PASS: Duration = Duration::minutes(5);

/// Whether `a` and `b` are the same physical pass (same alert, rises within `SAME_PASS`).
pub fn same_pass(a: Key, b: Key) -> bool {
    a.0 == b.0 && a.1.abs_diff(b.1) <= SAME_PASS.num_milliseconds().unsigned_abs()
}

/// The emails already sent or given up (recorded in the log, or done by this run), looked up by
/// alert and a rise time within `SAME_PASS` of the recorded one.
#[derive(Debug, Clone, Default)]
pub struct Recorded(BTreeSet<(u8, i64)>);

impl Recorded {
    pub fn insert(&mut self, k: Key) {
        self.0.insert((k.0.tag(), k.1));
    }

    /// Whether an email for the pass predicted as `k` is recorded.
    pub fn contains(&self, k: Key) -> bool {
        let tol = SAME_PASS.num_milliseconds();
        let (tag, rise) = (k.0.tag(), k.1);
        self.0.range((tag, rise.saturating_sub(tol))..=(tag, rise.saturating_add(tol))).next().is_some()
    }

    pub fn has(&self, kind: AlertKind, pass: &Pass) -> bool {
        self.contains(key(kind, pass))
    }
}

impl Extend<Key> for Recorded {
    fn extend<I: IntoIterator<Item = Key>>(&mut self, iter: I) {
        for k in iter {
            self.insert(k);
        }
    }
}

impl FromIterator<Key> for Recorded {
    fn from_iter<I: IntoIterator<Item = Key>>(iter: I) -> Self {
        let mut r = Recorded::default();
        r.extend(iter);
        r
    }
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

/// Whether the clock and the newest TLE fit together well enough to predict passes and email
/// about them (`passes::freshness`, the rule every surface uses). A clock before the TLE's epoch
/// is wrong (a Pi without a real-time clock that booted at 1970); one far past it is either wrong
/// (booted in the future) or no TLE arrived for two weeks. Either way a prediction would be
/// fiction, and its email (and the record of it, keyed by the predicted pass) would carry
/// impossible times, so none is made until they fit.
pub fn clock_fits_tle(now: DateTime<Utc>, epoch: DateTime<Utc>) -> Result<(), String> {
    crate::passes::freshness::check(epoch, now).map_err(|e| format!("{e}; no pass emails until they fit"))
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
///   that is still unrecorded becomes `Missed`, unless a newer prediction of its pass is due.
///
/// "Recorded" matches by alert and a rise within `SAME_PASS`: a pass whose prediction moved by
/// seconds is still the pass that was emailed.
pub fn decide(
    passes: &[Pass],
    now: DateTime<Utc>,
    sky_now: Option<PassPoint>,
    recorded: &Recorded,
    failing: &HashMap<Key, Pass>,
    rules: &Rules,
) -> Vec<Action> {
    let mut out = Vec::new();
    for p in passes.iter().filter(|p| p.visible) {
        let (Some(from), Some(to)) = (p.visible_from, p.visible_to) else { continue };
        if !recorded.has(AlertKind::Pass, p) && from - rules.lead <= now && now < from {
            out.push(Action::Send(AlertKind::Pass, p.clone()));
        }
        if let Some(min_el) = rules.overhead_elevation_deg
            && p.culmination.elevation_deg >= min_el
            && from <= now
            && now < to
            && sky_now.is_some_and(|s| s.elevation_deg >= min_el)
            && !recorded.has(AlertKind::Overhead, p)
        {
            out.push(Action::Send(AlertKind::Overhead, p.clone()));
        }
    }
    let sending: Vec<Key> =
        out.iter().filter_map(|a| if let Action::Send(kind, p) = a { Some(key(*kind, p)) } else { None }).collect();
    for (k, p) in failing {
        if !recorded.contains(*k)
            && !sending.iter().any(|s| same_pass(*s, *k))
            && deadline(k.0, p).is_some_and(|d| now >= d)
        {
            out.push(Action::Missed(k.0, p.clone()));
        }
    }
    out
}

/// Pass emails not yet recorded whose pass has not begun to be visible, soonest first.
pub fn pending(passes: &[Pass], now: DateTime<Utc>, recorded: &Recorded, rules: &Rules) -> Vec<Pending> {
    let mut out: Vec<Pending> = passes
        .iter()
        .filter(|p| p.visible && !recorded.has(AlertKind::Pass, p))
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
            magnitude: Some(-2.5),
        }
    }

    fn rules(overhead: Option<f64>) -> Rules {
        Rules { lead: Duration::minutes(15), overhead_elevation_deg: overhead }
    }

    fn run(now: &str, recorded: &[Key], failing: &[Key], overhead: Option<f64>, sky_el: f64) -> Vec<Action> {
        let p = pass();
        let recorded: Recorded = recorded.iter().copied().collect();
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

    /// `pass()` predicted `secs` later (a new TLE or another location moves every time).
    fn moved(secs: i64) -> Pass {
        let d = Duration::seconds(secs);
        let mut p = pass();
        for pt in [&mut p.rise, &mut p.culmination, &mut p.set] {
            pt.time += d;
        }
        p.visible_from = p.visible_from.map(|t| t + d);
        p.visible_to = p.visible_to.map(|t| t + d);
        p
    }

    #[test]
    fn a_pass_whose_prediction_moved_by_seconds_is_the_recorded_pass() {
        let sent = [key(AlertKind::Pass, &pass())];
        let recorded: Recorded = sent.into_iter().collect();
        let now = t("2023-09-18T19:30:00Z");
        for secs in [1, -1, 30, -30, 299, -299] {
            let p = moved(secs);
            assert!(recorded.has(AlertKind::Pass, &p), "{secs} s");
            let actions = decide(std::slice::from_ref(&p), now, None, &recorded, &HashMap::new(), &rules(None));
            assert_eq!(actions, vec![], "moved by {secs} s: already emailed");
            assert!(pending(&[p], now, &recorded, &rules(None)).is_empty());
        }
        // Another kind of alert for the same pass is another email.
        assert!(!recorded.has(AlertKind::Overhead, &pass()));
        // Beyond the tolerance it is another pass (the next real one is ~90 min later).
        assert!(!recorded.has(AlertKind::Pass, &moved(301)));
        let next = moved(90 * 60);
        let due = t("2023-09-18T21:00:00Z");
        assert_eq!(
            decide(&[pass(), next.clone()], due, None, &recorded, &HashMap::new(), &rules(None)),
            vec![Action::Send(AlertKind::Pass, next)]
        );
    }

    #[test]
    fn tolerance_fits_between_real_passes() {
        // One orbit of the ISS is about 92 minutes: the tolerance is far below half of it.
        assert!(SAME_PASS * 2 < Duration::minutes(90));
        assert!(same_pass((AlertKind::Pass, 0), (AlertKind::Pass, SAME_PASS.num_milliseconds())));
        assert!(!same_pass((AlertKind::Pass, 0), (AlertKind::Pass, SAME_PASS.num_milliseconds() + 1)));
        assert!(!same_pass((AlertKind::Pass, 0), (AlertKind::Overhead, 0)));
        // The ends of the range never overflow.
        let r: Recorded = [(AlertKind::Pass, i64::MAX), (AlertKind::Pass, i64::MIN)].into_iter().collect();
        assert!(r.contains((AlertKind::Pass, i64::MAX - 1)) && r.contains((AlertKind::Pass, i64::MIN + 1)));
    }

    #[test]
    fn a_failing_email_whose_new_prediction_is_due_is_not_also_missed() {
        // Failing under the old prediction, whose visibility began a moment ago; the new one
        // (30 s later) has not begun yet: retried, not recorded as missed.
        let old = key(AlertKind::Pass, &pass());
        let failing: HashMap<Key, Pass> = [(old, pass())].into();
        let now = t("2023-09-18T19:38:40Z");
        let actions = decide(&[moved(30)], now, None, &Recorded::default(), &failing, &rules(None));
        assert_eq!(actions, vec![Action::Send(AlertKind::Pass, moved(30))]);
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
        assert!(booted_in_2036.contains("4017.8 days old"), "{booted_in_2036}");
        assert!(clock_fits_tle(t("2025-03-16T07:00:00Z"), epoch).is_err(), "a TLE older than two weeks");
    }

    #[test]
    fn pending_lists_unrecorded_future_passes_with_their_send_time() {
        let p = pass();
        let none = Recorded::default();
        let got = pending(std::slice::from_ref(&p), t("2023-09-18T12:00:00Z"), &none, &rules(None));
        assert_eq!(got, vec![Pending { send_at: t("2023-09-18T19:23:30Z"), pass: p.clone() }]);
        let rec: Recorded = [key(AlertKind::Pass, &p)].into_iter().collect();
        assert!(pending(std::slice::from_ref(&p), t("2023-09-18T12:00:00Z"), &rec, &rules(None)).is_empty());
        assert!(pending(&[p], t("2023-09-18T19:38:30Z"), &none, &rules(None)).is_empty());
    }
}
