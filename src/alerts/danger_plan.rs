//! Which avalanche danger alerts are due: a pure function of the shown warnings, the clock, what
//! the log records and what is failing in this process. No I/O.
//!
//! One alert per (region, valid date, level, channel): when the warning shown for today or
//! tomorrow (Norwegian dates) reaches `min_level`, and again when a newer version raises the
//! level above the highest one alerted. A lowered level alerts nothing. An alert is useful
//! until its valid date is over in Norway; a delivery still failing then is recorded as missed.

use crate::domain::{AlertChannel, AvalancheWarning, DangerAlert, norwegian_date};
use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use std::collections::{BTreeMap, HashMap};

/// One alert: (region, valid date, level, channel).
pub type DangerKey = (u32, NaiveDate, u8, AlertChannel);

pub fn key(w: &AvalancheWarning, level: u8, channel: AlertChannel) -> DangerKey {
    (w.region_id, w.valid_date, level, channel)
}

/// The highest level recorded (sent or missed) per (region, date, channel).
#[derive(Debug, Clone, Default)]
pub struct Recorded(BTreeMap<(u32, NaiveDate, AlertChannel), u8>);

impl Recorded {
    pub fn insert(&mut self, k: DangerKey) {
        let slot = self.0.entry((k.0, k.1, k.3)).or_insert(k.2);
        *slot = (*slot).max(k.2);
    }

    pub fn highest(&self, region: u32, date: NaiveDate, channel: AlertChannel) -> Option<u8> {
        self.0.get(&(region, date, channel)).copied()
    }

    /// Whether an alert at `k`'s level or above is recorded for its region, date and channel.
    pub fn covers(&self, k: DangerKey) -> bool {
        self.highest(k.0, k.1, k.3).is_some_and(|h| h >= k.2)
    }
}

impl<'a> FromIterator<&'a DangerAlert> for Recorded {
    fn from_iter<I: IntoIterator<Item = &'a DangerAlert>>(iter: I) -> Self {
        let mut r = Recorded::default();
        for a in iter {
            r.insert((a.region_id, a.valid_date, a.level, a.channel));
        }
        r
    }
}

/// The Norwegian dates alerts are for at `now`: today and tomorrow.
pub fn alert_dates(now: DateTime<Utc>) -> [NaiveDate; 2] {
    let today = norwegian_date(now);
    [today, today.checked_add_days(Days::new(1)).unwrap_or(today)]
}

/// When an alert for `date` stops being useful: the end of that day in Norway.
pub fn deadline(date: NaiveDate) -> DateTime<Utc> {
    let next = date.checked_add_days(Days::new(1)).unwrap_or(date);
    let midnight = next.and_hms_opt(0, 0, 0).unwrap_or_default();
    // Midnight exists in Oslo every day (DST changes at 02:00/03:00); `earliest` covers the rest.
    chrono_tz::Europe::Oslo
        .from_local_datetime(&midnight)
        .earliest()
        .map_or_else(|| Utc.from_utc_datetime(&midnight), |t| t.with_timezone(&Utc))
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send (or retry) the alert for this warning's level on this channel.
    Send(AlertChannel, Box<AvalancheWarning>),
    /// It failed until its date was over (or was refused for good): record it as missed.
    Missed(DangerKey),
    /// Failing, but no longer true (the level changed, or a higher one was recorded): forget it.
    Drop(DangerKey),
}

/// What to do now.
///
/// - `shown`: the warning shown per region and date (`Store::avalanche_for_date`), already
///   limited to the configured regions; dates other than today and tomorrow are ignored.
/// - `failing`: alerts tried and failed in this process.
pub fn decide(
    shown: &[AvalancheWarning],
    now: DateTime<Utc>,
    min_level: u8,
    channels: &[AlertChannel],
    recorded: &Recorded,
    failing: &[DangerKey],
) -> Vec<Action> {
    let dates = alert_dates(now);
    let mut out = Vec::new();
    // (region, date, channel) -> the level due now.
    let mut due: HashMap<(u32, NaiveDate, AlertChannel), u8> = HashMap::new();
    for w in shown.iter().filter(|w| dates.contains(&w.valid_date) && now < deadline(w.valid_date)) {
        let Some(level) = w.danger_level.level().filter(|l| *l >= min_level) else { continue };
        for &channel in channels {
            if !recorded.covers(key(w, level, channel)) {
                due.insert((w.region_id, w.valid_date, channel), level);
                out.push(Action::Send(channel, Box::new(w.clone())));
            }
        }
    }
    for &k in failing {
        if recorded.covers(k) {
            out.push(Action::Drop(k));
        } else if due.get(&(k.0, k.1, k.3)).is_some_and(|l| *l == k.2) {
            // Still due: the Send above retries it.
        } else if now >= deadline(k.1) {
            out.push(Action::Missed(k));
        } else {
            out.push(Action::Drop(k));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AlertOutcome, Record, test_warning};

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn warning(region: u32, date: &str, reg_id: u64, level: Option<u8>) -> AvalancheWarning {
        match test_warning(region, date, 16, reg_id, level) {
            Record::AvalancheWarning(w) => w,
            _ => unreachable!(),
        }
    }

    const BOTH: [AlertChannel; 2] = [AlertChannel::Email, AlertChannel::Push];
    const EMAIL: AlertChannel = AlertChannel::Email;
    const PUSH: AlertChannel = AlertChannel::Push;

    fn sends(actions: &[Action]) -> Vec<(AlertChannel, u32, u8)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(c, w) => Some((*c, w.region_id, w.danger_level.level().unwrap())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn today_and_tomorrow_are_norwegian_dates() {
        // 23:30 UTC on 15 Jan is 00:30 on 16 Jan in Oslo (CET, UTC+1).
        assert_eq!(alert_dates(t("2024-01-15T23:30:00Z")), [d("2024-01-16"), d("2024-01-17")]);
        assert_eq!(alert_dates(t("2024-01-15T22:59:59Z")), [d("2024-01-15"), d("2024-01-16")]);
        // Summer time (CEST, UTC+2): the day ends at 22:00 UTC.
        assert_eq!(deadline(d("2024-07-01")), t("2024-07-01T22:00:00Z"));
        assert_eq!(deadline(d("2024-01-16")), t("2024-01-16T23:00:00Z"));
        // The day clocks go forward (31 March 2024) still ends at local midnight.
        assert_eq!(deadline(d("2024-03-31")), t("2024-03-31T22:00:00Z"));
    }

    #[test]
    fn a_warning_reaching_min_level_is_due_once_per_channel() {
        let now = t("2024-01-16T08:00:00Z");
        let shown = [
            warning(3003, "2024-01-16", 1, Some(3)),
            warning(3010, "2024-01-16", 2, Some(2)),
            warning(3011, "2024-01-17", 3, Some(4)),
            warning(3012, "2024-01-18", 4, Some(5)), // the day after tomorrow: not yet
            warning(3013, "2024-01-15", 5, Some(5)), // yesterday
            warning(3014, "2024-01-16", 0, None),    // not assessed
        ];
        let got = sends(&decide(&shown, now, 3, &BOTH, &Recorded::default(), &[]));
        assert_eq!(got, vec![(EMAIL, 3003, 3), (PUSH, 3003, 3), (EMAIL, 3011, 4), (PUSH, 3011, 4)]);
        // min_level 4 leaves only the 4.
        assert_eq!(sends(&decide(&shown, now, 4, &[PUSH], &Recorded::default(), &[])), vec![(PUSH, 3011, 4)]);
        // Recorded on one channel: due on the other only.
        let mut rec = Recorded::default();
        rec.insert((3003, d("2024-01-16"), 3, EMAIL));
        rec.insert((3011, d("2024-01-17"), 4, EMAIL));
        rec.insert((3011, d("2024-01-17"), 4, PUSH));
        assert_eq!(sends(&decide(&shown, now, 3, &BOTH, &rec, &[])), vec![(PUSH, 3003, 3)]);
    }

    #[test]
    fn a_raise_alerts_again_and_a_drop_does_not() {
        let now = t("2024-01-16T08:00:00Z");
        let alerted = DangerAlert {
            region_id: 3003,
            region_name: "R3003".into(),
            valid_date: d("2024-01-16"),
            level: 3,
            channel: PUSH,
            outcome: AlertOutcome::Sent,
            at: now,
            reg_id: 1,
            detail: None,
        };
        let rec: Recorded = [&alerted].into_iter().collect();
        let raised = [warning(3003, "2024-01-16", 2, Some(4))];
        assert_eq!(sends(&decide(&raised, now, 3, &[PUSH], &rec, &[])), vec![(PUSH, 3003, 4)]);
        // The same level in a new version: nothing.
        let same = [warning(3003, "2024-01-16", 2, Some(3))];
        assert!(decide(&same, now, 3, &[PUSH], &rec, &[]).is_empty());
        // After 4 was alerted, a version back at 3 alerts nothing.
        let mut rec4 = rec.clone();
        rec4.insert((3003, d("2024-01-16"), 4, PUSH));
        assert!(decide(&same, now, 3, &[PUSH], &rec4, &[]).is_empty());
    }

    #[test]
    fn a_failing_alert_is_retried_until_its_day_is_over_then_missed() {
        let shown = [warning(3003, "2024-01-16", 1, Some(3))];
        let k = (3003, d("2024-01-16"), 3, PUSH);
        let before = t("2024-01-16T22:59:59Z");
        assert_eq!(
            decide(&shown, before, 3, &[PUSH], &Recorded::default(), &[k]),
            vec![Action::Send(PUSH, Box::new(shown[0].clone()))]
        );
        let after = t("2024-01-16T23:00:00Z");
        assert_eq!(decide(&shown, after, 3, &[PUSH], &Recorded::default(), &[k]), vec![Action::Missed(k)]);
        // Recorded meanwhile (by another check): forgotten, not missed.
        let mut rec = Recorded::default();
        rec.insert(k);
        assert_eq!(decide(&shown, after, 3, &[PUSH], &rec, &[k]), vec![Action::Drop(k)]);
    }

    #[test]
    fn a_failing_alert_whose_level_changed_is_dropped_for_the_new_one() {
        let now = t("2024-01-16T08:00:00Z");
        let k3 = (3003, d("2024-01-16"), 3, EMAIL);
        let raised = [warning(3003, "2024-01-16", 2, Some(4))];
        assert_eq!(
            decide(&raised, now, 3, &[EMAIL], &Recorded::default(), &[k3]),
            vec![Action::Send(EMAIL, Box::new(raised[0].clone())), Action::Drop(k3)]
        );
        let lowered = [warning(3003, "2024-01-16", 2, Some(2))];
        assert_eq!(decide(&lowered, now, 3, &[EMAIL], &Recorded::default(), &[k3]), vec![Action::Drop(k3)]);
    }
}
