//! Whether a TLE is fit to predict passes from: one rule for every surface (`outpost passes`,
//! `/api/passes`, the map, MQTT's next pass, the pass emails, `/status`).
//!
//! A TLE predicts a pass to within a minute or so for about two weeks after its epoch. A window
//! that starts more than `TLE_USEFUL_DAYS` after the epoch gets fiction; one that starts more than
//! `TLE_CLOCK_SKEW_DAYS` before it means the clock is wrong (a Pi without a real-time clock that
//! booted at 1970). Either way the answer says so, with the epoch and the age, instead of
//! predicting nothing or nonsense.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// How far past its epoch a TLE still predicts passes.
pub const TLE_USEFUL_DAYS: i64 = 14;
/// How far before its epoch a window may start (a clock a few hours behind, a TLE published
/// with an epoch slightly ahead).
pub const TLE_CLOCK_SKEW_DAYS: i64 = 1;
/// `/status` warns from this age on: a TLE arrives every few hours, so three days without one
/// means the TLE source is failing, well before predictions stop.
pub const TLE_WARN_DAYS: i64 = 3;

/// A TLE the rule refuses for a window, with what the answer tells about it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UnusableTle {
    pub epoch: DateTime<Utc>,
    /// The start of the window asked for (the clock, for the appliance's own predictions).
    pub start: DateTime<Utc>,
    /// `start - epoch` in days, to a tenth; negative when the window starts before the epoch.
    pub age_days: f64,
}

impl std::fmt::Display for UnusableTle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let epoch = self.epoch.format("%Y-%m-%d %H:%M UTC");
        let start = self.start.format("%Y-%m-%d %H:%M UTC");
        if self.before_epoch() {
            write!(
                f,
                "the TLE's epoch ({epoch}) is {:.1} days after the start of the passes asked for ({start}): \
                 the clock is wrong, or the time asked for is; passes are predicted from at most \
                 {TLE_CLOCK_SKEW_DAYS} day before the epoch",
                -self.age_days
            )
        } else {
            write!(
                f,
                "the TLE is {:.1} days old (epoch {epoch}) at the start of the passes asked for ({start}): \
                 passes are predicted from a TLE at most {TLE_USEFUL_DAYS} days old; the clock is wrong, \
                 or no new TLE arrived",
                self.age_days
            )
        }
    }
}

impl std::error::Error for UnusableTle {}

impl UnusableTle {
    /// The window starts before the epoch (the clock is behind), rather than too long after it.
    pub fn before_epoch(&self) -> bool {
        self.age_days < 0.0
    }
}

/// `at - epoch` in days, to a tenth.
pub fn age_days(epoch: DateTime<Utc>, at: DateTime<Utc>) -> f64 {
    ((at - epoch).num_seconds() as f64 / 86_400.0 * 10.0).round() / 10.0
}

/// Whether the TLE of `epoch` is usable for a window from `start`: its epoch at most
/// `TLE_USEFUL_DAYS` before `start`, and `start` at most `TLE_CLOCK_SKEW_DAYS` before its epoch.
pub fn check(epoch: DateTime<Utc>, start: DateTime<Utc>) -> Result<(), UnusableTle> {
    // Compared as durations, not by adding them to a time: no overflow at chrono's ends.
    let since = start.signed_duration_since(epoch);
    if since > Duration::days(TLE_USEFUL_DAYS) || since < -Duration::days(TLE_CLOCK_SKEW_DAYS) {
        return Err(UnusableTle { epoch, start, age_days: age_days(epoch, start) });
    }
    Ok(())
}

/// What a pass predicted anyway from an unusable TLE (`--allow-old-tle`, `allow_old_tle=true`)
/// carries besides its own fields: the same names as the 503 that refuses it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OldTleMark {
    /// Always true: present only on passes from an unusable TLE.
    pub old_tle: bool,
    pub tle_epoch: DateTime<Utc>,
    pub tle_age_days: f64,
}

impl From<&UnusableTle> for OldTleMark {
    fn from(u: &UnusableTle) -> Self {
        OldTleMark { old_tle: true, tle_epoch: u.epoch, tle_age_days: u.age_days }
    }
}

impl OldTleMark {
    /// Adds the mark's fields to a pass's JSON object (left as it is if it is not an object).
    pub fn apply(&self, pass: &mut serde_json::Value) {
        if let (Some(obj), Ok(serde_json::Value::Object(mark))) = (pass.as_object_mut(), serde_json::to_value(self)) {
            obj.extend(mark);
        }
    }
}

/// How the newest TLE's age reads on `/status`: fine, a warning (the TLE source is failing) or
/// an error (passes are no longer predicted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgeLevel {
    Ok,
    Warn,
    Error,
}

/// The level of a TLE of `epoch` at `now`: an error whenever `check` refuses it (too old, or the
/// clock before the epoch), a warning after `TLE_WARN_DAYS`.
pub fn age_level(epoch: DateTime<Utc>, now: DateTime<Utc>) -> AgeLevel {
    if check(epoch, now).is_err() {
        AgeLevel::Error
    } else if now.signed_duration_since(epoch) > Duration::days(TLE_WARN_DAYS) {
        AgeLevel::Warn
    } else {
        AgeLevel::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn days_after(epoch: DateTime<Utc>, days: f64) -> DateTime<Utc> {
        epoch + Duration::seconds((days * 86_400.0) as i64)
    }

    #[test]
    fn a_tle_is_usable_from_a_day_before_its_epoch_to_14_days_after() {
        let epoch = t("2023-09-18T10:40:25Z");
        for days in [-1.0, -0.5, 0.0, 3.1, 13.9, 14.0] {
            assert_eq!(check(epoch, days_after(epoch, days)), Ok(()), "{days} days");
        }
        let old = check(epoch, days_after(epoch, 14.1)).unwrap_err();
        assert_eq!((old.epoch, old.age_days, old.before_epoch()), (epoch, 14.1, false));
        let msg = old.to_string();
        assert!(msg.contains("14.1 days old") && msg.contains("2023-09-18 10:40 UTC"), "{msg}");
        assert!(msg.contains("at most 14 days"), "{msg}");

        let early = check(epoch, days_after(epoch, -1.1)).unwrap_err();
        assert_eq!((early.age_days, early.before_epoch()), (-1.1, true));
        assert!(early.to_string().contains("the clock is wrong"), "{early}");
    }

    #[test]
    fn the_status_warns_after_3_days_and_errs_after_14() {
        let epoch = t("2025-03-01T06:00:00Z");
        let level = |days| age_level(epoch, days_after(epoch, days));
        assert_eq!(level(0.0), AgeLevel::Ok);
        assert_eq!(level(2.9), AgeLevel::Ok);
        assert_eq!(level(3.1), AgeLevel::Warn);
        assert_eq!(level(13.9), AgeLevel::Warn);
        assert_eq!(level(14.1), AgeLevel::Error);
        assert_eq!(level(-0.5), AgeLevel::Ok, "a few hours of skew");
        assert_eq!(level(-2.0), AgeLevel::Error, "the clock is before the epoch");
    }

    #[test]
    fn the_ends_of_time_are_refused_not_a_panic() {
        let epoch = t("2023-09-18T10:40:25Z");
        assert!(check(epoch, DateTime::<Utc>::MAX_UTC).is_err());
        assert!(check(epoch, DateTime::<Utc>::MIN_UTC).unwrap_err().before_epoch());
        assert!(check(DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC).is_err());
    }

    #[test]
    fn a_marked_pass_keeps_its_fields_and_gains_the_503s() {
        let u = UnusableTle { epoch: t("2023-09-18T10:40:25Z"), start: t("2023-10-08T12:00:00Z"), age_days: 20.1 };
        let mut pass = serde_json::json!({ "visible": true });
        OldTleMark::from(&u).apply(&mut pass);
        assert_eq!(
            pass,
            serde_json::json!({ "visible": true, "old_tle": true, "tle_epoch": "2023-09-18T10:40:25Z", "tle_age_days": 20.1 })
        );
    }
}
