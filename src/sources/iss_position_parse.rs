//! Turns one raw ISS-position answer (open-notify `iss-now.json` or wheretheiss.at
//! `satellites/25544`) into a validated [`IssPosition`], and checks a position's time against the
//! clock and the last stored one.
//!
//! Pure: bytes in, a record or a [`Rejection`] out. It never fetches, never reads the clock (the
//! caller passes `now`), never stores, and never panics on any input.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Map, Value};

use crate::domain::{IssPosition, Visibility};
use crate::sources::rejection::Rejection;

/// Altitude bounds in km. Below 100 km (the Kármán line) nothing stays in orbit; above 2000 km is
/// no longer low Earth orbit. The ISS flies at 330..440 km, so the margin is wide: a value outside
/// means wrong units or a broken upstream, never a real ISS position.
const ALTITUDE_KM: std::ops::RangeInclusive<f64> = 100.0..=2000.0;
/// Velocity bounds in km/h. Any orbit between 100 and 2000 km moves at roughly 24 800..28 300 km/h;
/// these bounds keep a margin but still catch the usual unit mix-ups (mph ≈ 17 000, m/s ≈ 7 700).
const VELOCITY_KMH: std::ops::RangeInclusive<f64> = 20_000.0..=32_000.0;
/// Zarya, the first ISS module, launched on 1998-11-20: an earlier time cannot be an ISS position
/// (a 0 or tiny timestamp is an upstream default, not data).
const ISS_LAUNCH_UNIX: i64 = 911_520_000;
/// How far ahead of our clock a position may be (clock skew between us and the upstream). The
/// store keeps positions in strictly increasing time, so one accepted from `FUTURE_SKEW` ahead
/// refuses the real ones for that long: this bounds what a single forged timestamp can suppress
/// (3 polls at 10 s). Two clocks kept by NTP agree to well under a second.
pub const FUTURE_SKEW: TimeDelta = TimeDelta::seconds(30);
const KM_PER_MILE: f64 = 1.609_344;
const ISS_NORAD_ID: u64 = 25544;

/// Parses an open-notify or wheretheiss.at position answer; the format is detected from its shape.
pub fn parse_position(body: &[u8]) -> Result<IssPosition, Rejection> {
    if body.trim_ascii().is_empty() {
        return Err(Rejection::new("empty_body", "the answer has no content"));
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        let what = if body.trim_ascii_start().starts_with(b"<") { "HTML, not JSON" } else { "not JSON" };
        Rejection::new("malformed_json", format!("{what}: {e}"))
    })?;
    let Value::Object(obj) = value else {
        return Err(Rejection::new("unknown_format", "the answer is not a JSON object"));
    };
    if let Some(pos) = obj.get("iss_position") {
        open_notify(&obj, pos)
    } else if obj.contains_key("latitude") && obj.contains_key("longitude") {
        wheretheiss(&obj)
    } else {
        Err(Rejection::new("unknown_format", "neither open-notify nor wheretheiss.at"))
    }
}

/// Checks a parsed position's time: not (much) in the future, and strictly after the last stored
/// one (an equal time is a repeat of the same fact; an earlier one is a stale cache upstream).
pub fn check_position_time(
    time: DateTime<Utc>,
    now: DateTime<Utc>,
    last_stored: Option<DateTime<Utc>>,
) -> Result<(), Rejection> {
    if now.checked_add_signed(FUTURE_SKEW).is_some_and(|limit| time > limit) {
        return Err(Rejection::new("time_in_future", format!("{time} is ahead of now ({now})")));
    }
    match last_stored {
        Some(last) if time <= last => {
            Err(Rejection::new("time_not_after_last", format!("{time} is not after the last stored position ({last})")))
        }
        _ => Ok(()),
    }
}

fn open_notify(obj: &Map<String, Value>, pos: &Value) -> Result<IssPosition, Rejection> {
    match obj.get("message").and_then(Value::as_str) {
        Some("success") => {}
        other => {
            return Err(Rejection::new("upstream_error", format!("open-notify message {other:?}")));
        }
    }
    let Value::Object(pos) = pos else {
        return Err(Rejection::new("unknown_format", "iss_position is not an object"));
    };
    Ok(IssPosition {
        time: timestamp(obj)?,
        latitude: coordinate(pos, "latitude", 90.0, "latitude_out_of_range")?,
        longitude: coordinate(pos, "longitude", 180.0, "longitude_out_of_range")?,
        altitude_km: None,
        velocity_kmh: None,
        visibility: None,
    })
}

fn wheretheiss(obj: &Map<String, Value>) -> Result<IssPosition, Rejection> {
    // The API serves other objects on other ids; only the ISS belongs in this record.
    if let Some(id) = obj.get("id").filter(|id| id.as_u64() != Some(ISS_NORAD_ID)) {
        return Err(Rejection::new("unknown_format", format!("satellite id {id} is not the ISS")));
    }
    // `?units=miles` makes it answer in miles and mph; convert rather than store mixed units.
    let scale = match obj.get("units").and_then(Value::as_str) {
        None | Some("kilometers") => 1.0,
        Some("miles") => KM_PER_MILE,
        Some(other) => return Err(Rejection::new("unknown_format", format!("units {other:?}"))),
    };
    let altitude_km = bounded(obj, "altitude", scale, ALTITUDE_KM)?;
    let velocity_kmh = bounded(obj, "velocity", scale, VELOCITY_KMH)?;
    let visibility = match obj.get("visibility").and_then(Value::as_str) {
        Some("daylight") => Some(Visibility::Daylight),
        Some("eclipsed") => Some(Visibility::Eclipsed),
        _ => None,
    };
    Ok(IssPosition {
        time: timestamp(obj)?,
        latitude: coordinate(obj, "latitude", 90.0, "latitude_out_of_range")?,
        longitude: coordinate(obj, "longitude", 180.0, "longitude_out_of_range")?,
        altitude_km,
        velocity_kmh,
        visibility,
    })
}

/// A JSON number, or a string holding one (open-notify sends strings), as f64.
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Degrees within ±`limit`. Anything unreadable ("abc", "NaN", "inf", null) is out of range too:
/// it is not a coordinate.
fn coordinate(obj: &Map<String, Value>, key: &str, limit: f64, reason: &'static str) -> Result<f64, Rejection> {
    let raw = obj.get(key).ok_or_else(|| Rejection::new("unknown_format", format!("no {key}")))?;
    match number(raw) {
        Some(x) if x.is_finite() && x.abs() <= limit => Ok(x),
        _ => Err(Rejection::new(reason, format!("{key} {raw} is not within ±{limit}"))),
    }
}

/// An optional measurement; when present it must be a finite number within `range` after scaling.
fn bounded(
    obj: &Map<String, Value>,
    key: &str,
    scale: f64,
    range: std::ops::RangeInclusive<f64>,
) -> Result<Option<f64>, Rejection> {
    let Some(raw) = obj.get(key).filter(|v| !v.is_null()) else { return Ok(None) };
    match number(raw).map(|x| x * scale) {
        Some(x) if x.is_finite() && range.contains(&x) => Ok(Some(x)),
        _ => Err(Rejection::new(
            "impossible_value",
            format!("{key} {raw} (x{scale}) is outside {}..={}", range.start(), range.end()),
        )),
    }
}

/// The answer's own unix timestamp (seconds, UTC); a fractional one keeps its milliseconds.
fn timestamp(obj: &Map<String, Value>) -> Result<DateTime<Utc>, Rejection> {
    let raw = obj.get("timestamp");
    let time = match raw {
        Some(Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
            (Some(secs), _) => DateTime::from_timestamp(secs, 0),
            (None, Some(f)) if f.is_finite() && f.abs() < 1e15 => {
                // |f| < 1e15 s keeps f * 1000 well inside i64.
                DateTime::from_timestamp_millis((f * 1000.0).round() as i64)
            }
            _ => None,
        },
        _ => None,
    };
    match time {
        Some(t) if t.timestamp() >= ISS_LAUNCH_UNIX => Ok(t),
        _ => Err(Rejection::new("bad_timestamp", format!("timestamp {raw:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN_NOTIFY: &[u8] = include_bytes!("../../tests/fixtures/open-notify_iss-now.json");
    const WHERETHEISS: &[u8] = include_bytes!("../../tests/fixtures/wheretheiss_satellites_25544.json");

    fn reason(body: &str) -> &'static str {
        parse_position(body.as_bytes()).unwrap_err().reason
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn open_notify_fixture() {
        let p = parse_position(OPEN_NOTIFY).unwrap();
        assert_eq!(p.time, at(1_593_398_373));
        assert_eq!((p.latitude, p.longitude), (10.0909, 143.8120));
        assert_eq!((p.altitude_km, p.velocity_kmh, p.visibility), (None, None, None));
    }

    #[test]
    fn wheretheiss_fixture() {
        let p = parse_position(WHERETHEISS).unwrap();
        assert_eq!(p.time, at(1_669_950_667));
        assert_eq!((p.latitude, p.longitude), (-21.950941583641, 87.375660097541));
        assert_eq!(p.altitude_km, Some(425.78196100125));
        assert_eq!(p.velocity_kmh, Some(27556.981335915));
        assert_eq!(p.visibility, Some(Visibility::Daylight));
    }

    #[test]
    fn open_notify_numbers_instead_of_strings() {
        let body =
            r#"{"message":"success","iss_position":{"latitude":-51.5,"longitude":-179.25},"timestamp":1593398373}"#;
        let p = parse_position(body.as_bytes()).unwrap();
        assert_eq!((p.latitude, p.longitude), (-51.5, -179.25));
    }

    #[test]
    fn wheretheiss_eclipsed_other_visibility_and_miles() {
        let base = r#""latitude":1,"longitude":2,"altitude":260,"velocity":17150,"timestamp":1669950667"#;
        let p = parse_position(format!(r#"{{{base},"visibility":"eclipsed","units":"miles"}}"#).as_bytes()).unwrap();
        assert_eq!(p.visibility, Some(Visibility::Eclipsed));
        assert!((p.altitude_km.unwrap() - 418.43).abs() < 0.01);
        let p = parse_position(format!(r#"{{{base},"visibility":"umbra","units":"miles"}}"#).as_bytes()).unwrap();
        assert_eq!(p.visibility, None);
        // The same numbers read as km are impossible: mph taken for km/h.
        assert_eq!(reason(&format!("{{{base}}}")), "impossible_value");
    }

    #[test]
    fn rejects_empty_and_broken_bodies() {
        assert_eq!(reason(""), "empty_body");
        assert_eq!(reason(" \r\n\t"), "empty_body");
        let whole = std::str::from_utf8(OPEN_NOTIFY).unwrap();
        for cut in [1, 20, whole.len() / 2, whole.len() - 1] {
            assert_eq!(reason(&whole[..cut]), "malformed_json", "cut at {cut}");
        }
        assert_eq!(reason("<html><body>502 Bad Gateway</body></html>"), "malformed_json");
        assert_eq!(parse_position(&[0xff, 0xfe, 0x00]).unwrap_err().reason, "malformed_json");
    }

    #[test]
    fn rejects_unknown_formats() {
        assert_eq!(reason("[1,2]"), "unknown_format");
        assert_eq!(reason(r#""success""#), "unknown_format");
        assert_eq!(reason(r#"{"name":"iss","id":25544}"#), "unknown_format");
        assert_eq!(reason(r#"{"latitude":1,"longitude":2,"timestamp":1669950667,"id":43013}"#), "unknown_format");
        assert_eq!(reason(r#"{"message":"success","iss_position":[1,2],"timestamp":1593398373}"#), "unknown_format");
        assert_eq!(
            reason(r#"{"message":"success","iss_position":{"latitude":"1"},"timestamp":1593398373}"#),
            "unknown_format"
        );
        assert_eq!(reason(r#"{"message":"failure","iss_position":{},"timestamp":1}"#), "upstream_error");
    }

    #[test]
    fn rejects_bad_coordinates() {
        let on = |lat: &str, lon: &str| {
            reason(&format!(
                r#"{{"message":"success","iss_position":{{"latitude":{lat},"longitude":{lon}}},"timestamp":1593398373}}"#
            ))
        };
        assert_eq!(on("91", "0"), "latitude_out_of_range");
        assert_eq!(on(r#""-90.0001""#, "0"), "latitude_out_of_range");
        assert_eq!(on(r#""abc""#, "0"), "latitude_out_of_range");
        assert_eq!(on(r#""NaN""#, "0"), "latitude_out_of_range");
        assert_eq!(on("null", "0"), "latitude_out_of_range");
        assert_eq!(on("0", "-181"), "longitude_out_of_range");
        assert_eq!(on("0", r#""inf""#), "longitude_out_of_range");
        assert_eq!(on("0", r#""""#), "longitude_out_of_range");
        assert!(
            parse_position(
                br#"{"message":"success","iss_position":{"latitude":"-90","longitude":"180"},"timestamp":1593398373}"#
            )
            .is_ok()
        );
    }

    #[test]
    fn rejects_bad_timestamps() {
        let with = |ts: &str| reason(&format!(r#"{{"latitude":1,"longitude":2,"timestamp":{ts}}}"#));
        for ts in ["-5", "0", "1000", r#""1669950667""#, "null", "1e300", "9223372036854775807"] {
            assert_eq!(with(ts), "bad_timestamp", "{ts}");
        }
        assert_eq!(reason(r#"{"latitude":1,"longitude":2}"#), "bad_timestamp");
        let p = parse_position(br#"{"latitude":1,"longitude":2,"timestamp":1669950667.25}"#).unwrap();
        assert_eq!(p.time.timestamp_millis(), 1_669_950_667_250);
    }

    #[test]
    fn rejects_impossible_altitude_and_velocity() {
        let with = |alt: &str, vel: &str| {
            reason(&format!(
                r#"{{"latitude":1,"longitude":2,"altitude":{alt},"velocity":{vel},"timestamp":1669950667}}"#
            ))
        };
        for (alt, vel) in [
            ("-400", "27000"),
            ("50", "27000"),
            ("42164", "27000"),
            ("420", "-27000"),
            ("420", "7.66"),
            ("420", "99999"),
            ("\"x\"", "27000"),
        ] {
            assert_eq!(with(alt, vel), "impossible_value", "{alt} {vel}");
        }
        let p = parse_position(br#"{"latitude":1,"longitude":2,"altitude":null,"timestamp":1669950667}"#).unwrap();
        assert_eq!((p.altitude_km, p.velocity_kmh), (None, None));
    }

    #[test]
    fn position_time_checks() {
        let now = at(1_700_000_000);
        assert!(check_position_time(now, now, None).is_ok());
        assert!(check_position_time(at(1_700_000_030), now, None).is_ok());
        assert_eq!(check_position_time(at(1_700_000_031), now, None).unwrap_err().reason, "time_in_future");
        // Four minutes ahead: within the old 5-minute tolerance, which let one such answer
        // suppress every real position for that long.
        assert_eq!(check_position_time(at(1_700_000_240), now, None).unwrap_err().reason, "time_in_future");
        assert!(check_position_time(now, now, Some(at(1_699_999_999))).is_ok());
        assert_eq!(check_position_time(now, now, Some(now)).unwrap_err().reason, "time_not_after_last");
        assert_eq!(check_position_time(at(1), now, Some(now)).unwrap_err().reason, "time_not_after_last");
        assert!(check_position_time(now, DateTime::<Utc>::MAX_UTC, None).is_ok());
    }
}
