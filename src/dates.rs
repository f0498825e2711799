//! Dates and times from outside (query strings, command-line flags): one strict form each, a sane
//! range of years, and checked arithmetic. chrono's `%Y` takes a signed year of up to six digits
//! (`+262143-12-31` is its last day, where `date + 1 day` panics); nothing from a request may get
//! there, so every parser of a request's date or time is one of these.

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc};
use std::ops::RangeInclusive;

/// The calendar years (UTC) a request may name. Everything Outpost stores or predicts is in this
/// century; the margin on both sides keeps any arithmetic on such a date far from chrono's limits.
pub const YEARS: RangeInclusive<i32> = 2000..=2100;

fn out_of_range() -> String {
    format!("is outside the years {} to {} (UTC)", YEARS.start(), YEARS.end())
}

/// `YYYY-MM-DD` exactly: four-digit year, no sign, no spaces, two-digit month and day.
pub fn parse_date(v: &str) -> Result<NaiveDate, String> {
    let b = v.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape {
        return Err("is not a date like 2023-03-01".into());
    }
    let num = |r: std::ops::Range<usize>| v[r].parse::<u32>().unwrap_or(0);
    let year = num(0..4) as i32;
    if !YEARS.contains(&year) {
        return Err(out_of_range());
    }
    NaiveDate::from_ymd_opt(year, num(5..7), num(8..10)).ok_or_else(|| "is not a day of the calendar".into())
}

/// RFC 3339 (`2023-09-18T12:00:00Z`, any offset), or a date (`2023-09-18`): a whole UTC day, its
/// first millisecond, or with `end_of_day` its last.
pub fn parse_time(v: &str, end_of_day: bool) -> Result<DateTime<Utc>, String> {
    if v.len() == 10 {
        let day = parse_date(v)?;
        let start = day.and_time(chrono::NaiveTime::MIN).and_utc();
        return if end_of_day { add(start, TimeDelta::days(1) - TimeDelta::milliseconds(1)) } else { Ok(start) };
    }
    // RFC 3339 has a four-digit year; chrono's parser is checked not to take a sign, but say it here.
    let unsigned = v.as_bytes().get(..4).is_some_and(|y| y.iter().all(u8::is_ascii_digit));
    let t = DateTime::parse_from_rfc3339(v)
        .ok()
        .filter(|_| unsigned)
        .ok_or("is neither RFC 3339 (2023-09-18T12:00:00Z) nor a date (2023-09-18)")?;
    in_range(t.with_timezone(&Utc))
}

/// `t` if its UTC year is in `YEARS`.
pub fn in_range(t: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if YEARS.contains(&t.year()) { Ok(t) } else { Err(out_of_range()) }
}

/// `t + delta`, or an error where chrono would panic.
pub fn add(t: DateTime<Utc>, delta: TimeDelta) -> Result<DateTime<Utc>, String> {
    t.checked_add_signed(delta).ok_or_else(|| format!("{t} + {delta} is past the last representable time"))
}

/// `parse_time` for a command-line flag (clap's `value_parser`).
pub fn time_arg(v: &str) -> Result<DateTime<Utc>, String> {
    parse_time(v, false)
}

/// `parse_date` for a command-line flag (clap's `value_parser`).
pub fn date_arg(v: &str) -> Result<NaiveDate, String> {
    parse_date(v)
}

/// `parse_date` for an optional serde field (query strings read with serde).
pub fn optional_date<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<NaiveDate>, D::Error> {
    let v: Option<String> = serde::Deserialize::deserialize(d)?;
    v.map(|v| parse_date(&v).map_err(|e| serde::de::Error::custom(format!("{v:?} {e}")))).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn dates_in_the_range_parse() {
        assert_eq!(parse_date("2023-03-01"), Ok(NaiveDate::from_ymd_opt(2023, 3, 1).unwrap()));
        assert_eq!(parse_date("2000-01-01"), Ok(NaiveDate::from_ymd_opt(2000, 1, 1).unwrap()));
        assert_eq!(parse_date("2100-12-31"), Ok(NaiveDate::from_ymd_opt(2100, 12, 31).unwrap()));
        assert_eq!(parse_date("2024-02-29"), Ok(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()));
    }

    #[test]
    fn signed_extreme_and_malformed_dates_are_refused() {
        // The original panic: chrono's `%Y` reads a signed year, up to its last representable day.
        let last = NaiveDate::MAX.format("%Y-%m-%d").to_string();
        assert_eq!(NaiveDate::parse_from_str(&last, "%Y-%m-%d"), Ok(NaiveDate::MAX));
        assert!(last.starts_with('+') && parse_date(&last).is_err() && parse_time(&last, true).is_err(), "{last}");
        for v in ["+262143-12-31", "-262144-01-01", "+2026-01-01", "-2026-01-01", "+02026-01-01", "02026-01-01"] {
            assert!(parse_date(v).is_err(), "{v}");
            assert!(parse_time(v, true).is_err(), "{v}");
        }
        for v in ["1999-12-31", "2101-01-01", "0000-01-01", "9999-12-31"] {
            assert_eq!(parse_date(v), Err(out_of_range()), "{v}");
        }
        for v in ["2023-02-29", "2100-02-29", "2023-13-01", "2023-00-10", "2023-01-32", "2023-01-00"] {
            assert_eq!(parse_date(v), Err("is not a day of the calendar".into()), "{v}");
        }
        for v in
            ["", "2023-3-01", "2023-03-1", " 2023-03-01", "2023-03-01 ", "2023/03/01", "２０２３-03-01", "20230301"]
        {
            assert_eq!(parse_date(v), Err("is not a date like 2023-03-01".into()), "{v:?}");
        }
    }

    #[test]
    fn times_are_rfc_3339_or_a_whole_day_in_the_range() {
        assert_eq!(parse_time("2023-09-18", false), Ok(utc("2023-09-18T00:00:00Z")));
        assert_eq!(parse_time("2023-09-18", true), Ok(utc("2023-09-18T23:59:59.999Z")));
        assert_eq!(parse_time("2100-12-31", true), Ok(utc("2100-12-31T23:59:59.999Z")));
        assert_eq!(parse_time("2023-09-18T12:00:00+02:00", false), Ok(utc("2023-09-18T10:00:00Z")));
        assert_eq!(parse_time("2000-01-01T00:00:00Z", false), Ok(utc("2000-01-01T00:00:00Z")));
        // chrono reads nanoseconds and ignores further digits: harmless.
        assert_eq!(parse_time("2023-09-18T12:00:00.1234567891234Z", false), Ok(utc("2023-09-18T12:00:00.123456789Z")));
        // The range is in UTC: an offset can move a time across its edge.
        assert_eq!(parse_time("2000-01-01T00:30:00+01:00", false), Err(out_of_range()));
        assert_eq!(parse_time("2100-12-31T23:30:00-01:00", false), Err(out_of_range()));
        for v in ["0000-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "1970-01-01T00:00:00Z"] {
            assert_eq!(parse_time(v, false), Err(out_of_range()), "{v}");
        }
        for v in [
            "+262143-12-31T00:00:00Z",
            "+2023-09-18T12:00:00Z",
            "-2023-09-18T12:00:00Z",
            "2023-09-18T24:00:00Z",
            "2023-09-18T12:00:00+99:00",
            "2023-09-18T12:00:00+0200000000000",
            "2023-09-18T12:00:00",
            "yesterday",
            "",
        ] {
            assert!(parse_time(v, false).is_err(), "{v}");
        }
    }

    #[test]
    fn arithmetic_at_the_edge_of_chrono_is_an_error_not_a_panic() {
        let last = DateTime::<Utc>::MAX_UTC;
        assert!(add(last, TimeDelta::days(1)).is_err());
        assert!(add(DateTime::<Utc>::MIN_UTC, TimeDelta::days(-1)).is_err());
        assert_eq!(add(utc("2023-09-18T00:00:00Z"), TimeDelta::hours(1)), Ok(utc("2023-09-18T01:00:00Z")));
    }

    #[test]
    fn flags_and_serde_fields_use_the_same_rules() {
        assert!(time_arg("+262143-12-31T00:00:00Z").is_err());
        assert!(date_arg("+262143-12-31").is_err());
        #[derive(serde::Deserialize, Debug)]
        struct Q {
            #[serde(default, deserialize_with = "optional_date")]
            from: Option<NaiveDate>,
        }
        let q = |s: &str| serde_json::from_str::<Q>(s);
        assert_eq!(q(r#"{"from":"2023-03-01"}"#).unwrap().from, NaiveDate::from_ymd_opt(2023, 3, 1));
        assert_eq!(q("{}").unwrap().from, None);
        assert!(q(r#"{"from":"+262143-12-31"}"#).unwrap_err().to_string().contains("is not a date"));
        assert!(q(r#"{"from":"2101-01-01"}"#).unwrap_err().to_string().contains("outside the years"));
    }
}
