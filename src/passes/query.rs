//! One place that turns "passes for these parameters" into a list: used by `outpost passes`
//! and `GET /api/passes`, so both answer the same way.

use super::{Observer, Pass, PassOptions, predict};
use crate::domain::Tle;
use chrono::{DateTime, Duration, Utc};

/// A request for passes; `hours` from `from`.
#[derive(Debug, Clone)]
pub struct PassQuery {
    pub observer: Observer,
    pub from: DateTime<Utc>,
    pub hours: f64,
    pub options: PassOptions,
    /// Include passes that are not visible.
    pub all: bool,
    /// Only passes at least this bright (magnitude at most this); passes that are not visible have
    /// no magnitude and are left out when this is set.
    pub max_magnitude: Option<f64>,
    /// Brightest first instead of in time order (passes without a magnitude last, in time order).
    pub brightest_first: bool,
}

pub const MAX_HOURS: f64 = 24.0 * 14.0;

impl PassQuery {
    pub fn run(&self, tle: &Tle) -> Result<Vec<Pass>, super::PredictError> {
        let span = Duration::milliseconds((self.hours.clamp(0.0, MAX_HOURS) * 3_600_000.0) as i64);
        let to = self.from.checked_add_signed(span).ok_or_else(|| {
            super::PredictError::InvalidOptions(format!(
                "{} + {} h is past the last representable time",
                self.from, self.hours
            ))
        })?;
        let mut passes = predict(tle, self.observer, self.from, to, self.options)?;
        if !self.all {
            passes.retain(|p| p.visible);
        }
        if let Some(max) = self.max_magnitude {
            passes.retain(|p| p.magnitude.is_some_and(|m| m <= max));
        }
        if self.brightest_first {
            // Stable: equal magnitudes stay in time order.
            passes
                .sort_by(|a, b| a.magnitude.unwrap_or(f64::INFINITY).total_cmp(&b.magnitude.unwrap_or(f64::INFINITY)));
        }
        Ok(passes)
    }
}

/// "SW", "NNE", ...: the 16-point compass direction of an azimuth.
pub fn compass(azimuth_deg: f64) -> &'static str {
    const POINTS: [&str; 16] =
        ["N", "NNE", "NE", "ENE", "E", "ESE", "SE", "SSE", "S", "SSW", "SW", "WSW", "W", "WNW", "NW", "NNW"];
    let i = ((azimuth_deg.rem_euclid(360.0) / 22.5) + 0.5).floor() as usize % 16;
    POINTS[i]
}

/// One readable line per pass, in the given time zone:
/// `Mon 18 Sep 21:38  SW 12° -> SE 45° -> NE 10°  4 min 54 s  visible 21:38:31-21:40:15`.
pub fn table_line<Tz: chrono::TimeZone>(p: &Pass, tz: &Tz) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let at = |t: DateTime<Utc>| t.with_timezone(tz);
    let point = |pp: &super::PassPoint| format!("{} {:.0}°", compass(pp.azimuth_deg), pp.elevation_deg);
    let secs = (p.set.time - p.rise.time).num_seconds().max(0);
    let mut line = format!(
        "{}  {} -> {} -> {}  {} min {:02} s",
        at(p.rise.time).format("%a %d %b %H:%M"),
        point(&p.rise),
        point(&p.culmination),
        point(&p.set),
        secs / 60,
        secs % 60
    );
    match (p.visible_from, p.visible_to) {
        (Some(a), Some(b)) => {
            line.push_str(&format!("  visible {}-{}", at(a).format("%H:%M:%S"), at(b).format("%H:%M:%S")))
        }
        _ => line.push_str("  not visible"),
    }
    if let Some(m) = p.magnitude {
        line.push_str(&format!("  mag {m:.1}"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_past_the_last_representable_time_is_an_error_not_a_panic() {
        let tle =
            Tle { epoch: DateTime::<Utc>::MAX_UTC, norad_id: 25544, name: None, line1: "1".into(), line2: "2".into() };
        let query = PassQuery {
            observer: Observer { latitude: 59.9, longitude: 10.7, altitude_m: 0.0 },
            from: DateTime::<Utc>::MAX_UTC - Duration::hours(1),
            hours: 72.0,
            options: PassOptions { min_elevation_deg: 10.0, sun_limit_deg: -6.0 },
            all: true,
            max_magnitude: None,
            brightest_first: false,
        };
        let err = query.run(&tle).unwrap_err();
        assert!(matches!(err, crate::passes::PredictError::InvalidOptions(_)), "{err}");
    }

    #[test]
    fn compass_points_wrap_and_round() {
        assert_eq!(compass(0.0), "N");
        assert_eq!(compass(359.0), "N");
        assert_eq!(compass(-10.0), "N");
        assert_eq!(compass(225.0), "SW");
        assert_eq!(compass(123.8), "SE");
        assert_eq!(compass(11.24), "N");
        assert_eq!(compass(11.26), "NNE");
    }

    #[test]
    fn a_table_line_reads_like_the_sky() {
        let p = crate::passes::oslo_reference_pass();
        let oslo = chrono::FixedOffset::east_opt(2 * 3600).unwrap();
        assert_eq!(
            table_line(&p, &oslo),
            "Mon 18 Sep 21:38  SW 10° -> S 19° -> SE 10°  4 min 54 s  visible 21:38:31-21:40:15  mag -2.5"
        );
    }
}
