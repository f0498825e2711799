//! Pure parser for gpsd's JSON protocol: one line (one report object) in, a `Report` or a
//! `Rejection` out.
//!
//! Owns which reports matter (TPV with mode >= 2 is a fix; VERSION and ERROR are shown in the
//! status; everything else, such as DEVICES, WATCH or SKY, is ignored) and what makes a fix
//! usable. Never does I/O, reads a clock, or panics on any input.

use crate::sources::Rejection;
use chrono::{DateTime, Utc};
use serde_json::Value;

/// Altitudes outside this range (metres) are not believed: a glitch must not move the observer
/// into space or deep underground.
const PLAUSIBLE_ALTITUDE_M: std::ops::RangeInclusive<f64> = -1000.0..=20_000.0;

/// One usable GPS position from a TPV report.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fix {
    pub latitude: f64,
    pub longitude: f64,
    /// Metres above mean sea level; only a 3D fix has one.
    pub altitude_m: Option<f64>,
    /// 2 (2D) or 3 (3D).
    pub mode: u8,
    /// The fix's own time, when gpsd knows it.
    pub time: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    Fix(Fix),
    /// A TPV without a usable fix: mode 0 (unknown) or 1 (no fix).
    NoFix {
        mode: u8,
    },
    /// gpsd's greeting, sent as soon as a client connects.
    Version {
        release: String,
    },
    /// gpsd did not understand something we sent.
    Error {
        message: String,
    },
    /// A report we do not use (DEVICES, DEVICE, WATCH, SKY, ...) or an empty line.
    Other,
}

/// Parses one line of gpsd output (without or with its line terminator).
pub fn parse_line(line: &str) -> Result<Report, Rejection> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(Report::Other);
    }
    let value: Value =
        serde_json::from_str(line).map_err(|e| Rejection::new("not_json", format!("{e}: {}", excerpt(line))))?;
    let Some(class) = value.get("class").and_then(Value::as_str) else {
        return Err(Rejection::new("no_class", excerpt(line)));
    };
    let text = |key: &str| value.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
    Ok(match class {
        "TPV" => tpv(&value)?,
        "VERSION" => Report::Version { release: text("release") },
        "ERROR" => Report::Error { message: text("message") },
        _ => Report::Other,
    })
}

fn tpv(v: &Value) -> Result<Report, Rejection> {
    let mode = match v.get("mode").and_then(Value::as_u64) {
        Some(m @ 0..=3) => m as u8,
        other => return Err(Rejection::new("bad_tpv", format!("mode {other:?} is not 0-3"))),
    };
    if mode < 2 {
        return Ok(Report::NoFix { mode });
    }
    let num = |key: &str| v.get(key).and_then(Value::as_f64).filter(|x| x.is_finite());
    let (Some(latitude), Some(longitude)) = (num("lat"), num("lon")) else {
        return Err(Rejection::new("bad_tpv", format!("mode {mode} fix without lat/lon")));
    };
    if !(-90.0..=90.0).contains(&latitude) || !(-180.0..=180.0).contains(&longitude) {
        return Err(Rejection::new("bad_tpv", format!("position {latitude},{longitude} is out of range")));
    }
    // gpsd >= 3.20 sends altMSL; older ones only "alt", which was mean sea level there too.
    let altitude_m = if mode == 3 {
        num("altMSL").or_else(|| num("alt")).filter(|a| PLAUSIBLE_ALTITUDE_M.contains(a))
    } else {
        None
    };
    // A bad time does not spoil the position: the time is only shown, never computed with.
    let time = v
        .get("time")
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    Ok(Report::Fix(Fix { latitude, longitude, altitude_m, mode, time }))
}

/// The start of a bad line, for a log message (gpsd output holds no secrets).
fn excerpt(line: &str) -> String {
    match line.char_indices().nth(80) {
        Some((i, _)) => format!("{}...", &line[..i]),
        None => line.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Lines as gpsd 3.22 sends them (captured from gpsd fed by gpsfake), plus SKY and DEVICES
    // in the shape of gpsd's JSON protocol documentation.
    const VERSION: &str = r#"{"class":"VERSION","release":"3.22","rev":"3.22","proto_major":3,"proto_minor":14}"#;
    const DEVICES: &str = r#"{"class":"DEVICES","devices":[{"class":"DEVICE","path":"/dev/pts/3","activated":"2026-11-22T01:49:51.945Z","native":0,"bps":4800,"parity":"N","stopbits":1,"cycle":1.00}]}"#;
    const WATCH: &str = r#"{"class":"WATCH","enable":true,"json":true,"nmea":false,"raw":0,"scaled":false,"timing":false,"split24":false,"pps":false}"#;
    const TPV_2D: &str = r#"{"class":"TPV","device":"/dev/pts/3","mode":2,"time":"2023-09-18T19:38:31.000Z","ept":0.005,"lat":59.913900000,"lon":10.752200000,"track":0.0000,"magtrack":3.5662,"magvar":3.6,"speed":0.000}"#;
    const TPV_3D: &str = r#"{"class":"TPV","device":"/dev/pts/3","mode":3,"time":"2023-09-18T19:38:32.000Z","ept":0.005,"lat":59.913900000,"lon":10.752200000,"altHAE":59.0000,"altMSL":20.0000,"alt":20.0000,"track":0.0000,"magtrack":3.5662,"magvar":3.6,"speed":0.000,"geoidSep":39.000,"eph":17.100}"#;
    const TPV_NO_FIX: &str =
        r#"{"class":"TPV","device":"/dev/ttyUSB0","mode":1,"time":"2023-09-18T19:40:00.000Z","ept":0.005}"#;
    const SKY: &str = r#"{"class":"SKY","device":"/dev/ttyUSB0","time":"2023-09-18T19:38:31.000Z","xdop":0.54,"ydop":1.42,"vdop":1.31,"tdop":0.98,"hdop":1.52,"gdop":2.24,"pdop":1.97,"satellites":[{"PRN":23,"el":6,"az":84,"ss":0,"used":false},{"PRN":28,"el":7,"az":160,"ss":0,"used":false},{"PRN":8,"el":66,"az":189,"ss":44,"used":true}]}"#;

    fn fix(line: &str) -> Fix {
        match parse_line(line) {
            Ok(Report::Fix(f)) => f,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn a_3d_tpv_is_a_fix_with_the_mean_sea_level_altitude() {
        let f = fix(TPV_3D);
        assert_eq!((f.latitude, f.longitude, f.altitude_m, f.mode), (59.9139, 10.7522, Some(20.0), 3));
        assert_eq!(f.time.unwrap().to_rfc3339(), "2023-09-18T19:38:32+00:00");
        // Without altMSL (gpsd before 3.20) "alt" is used.
        let old = r#"{"class":"TPV","mode":3,"lat":60.39,"lon":5.32,"alt":12.5}"#;
        assert_eq!(fix(old).altitude_m, Some(12.5));
        assert_eq!(fix(old).time, None);
    }

    #[test]
    fn a_2d_tpv_has_no_altitude_even_if_one_is_sent() {
        let f = fix(TPV_2D);
        assert_eq!((f.latitude, f.longitude, f.altitude_m, f.mode), (59.9139, 10.7522, None, 2));
        assert_eq!(fix(r#"{"class":"TPV","mode":2,"lat":1.0,"lon":2.0,"altMSL":300.0}"#).altitude_m, None);
    }

    #[test]
    fn tpv_without_a_fix_and_other_reports_are_not_fixes() {
        assert_eq!(parse_line(TPV_NO_FIX), Ok(Report::NoFix { mode: 1 }));
        assert_eq!(parse_line(r#"{"class":"TPV","mode":0}"#), Ok(Report::NoFix { mode: 0 }));
        assert_eq!(parse_line(VERSION), Ok(Report::Version { release: "3.22".into() }));
        for other in [DEVICES, WATCH, SKY, "", "\r\n", r#"{"class":"PPS","device":"/dev/pps0"}"#] {
            assert_eq!(parse_line(other), Ok(Report::Other), "{other}");
        }
        let err = r#"{"class":"ERROR","message":"Unrecognized request '?FOO'"}"#;
        assert_eq!(parse_line(err), Ok(Report::Error { message: "Unrecognized request '?FOO'".into() }));
        // The line terminator gpsd sends is not part of the report.
        assert_eq!(fix(&format!("{TPV_3D}\r\n")).mode, 3);
    }

    #[test]
    fn bad_lines_are_rejections_never_panics() {
        let cases = [
            ("not_json", "garbage"),
            ("not_json", r#"{"class":"TPV","mode":3,"lat":59.9"#),
            ("not_json", r#"{"class":"TPV","mode":3,"lat":1e999,"lon":2}"#),
            ("no_class", r#"{"mode":3,"lat":1,"lon":2}"#),
            ("no_class", "[1,2,3]"),
            ("no_class", r#"{"class":7}"#),
            ("bad_tpv", r#"{"class":"TPV","lat":1,"lon":2}"#),
            ("bad_tpv", r#"{"class":"TPV","mode":"3","lat":1,"lon":2}"#),
            ("bad_tpv", r#"{"class":"TPV","mode":4,"lat":1,"lon":2}"#),
            ("bad_tpv", r#"{"class":"TPV","mode":-1,"lat":1,"lon":2}"#),
            ("bad_tpv", r#"{"class":"TPV","mode":3,"lon":2}"#),
            ("bad_tpv", r#"{"class":"TPV","mode":2,"lat":"59.9","lon":10.7}"#),
            ("bad_tpv", r#"{"class":"TPV","mode":3,"lat":91.0,"lon":10.7}"#),
            ("bad_tpv", r#"{"class":"TPV","mode":3,"lat":59.0,"lon":-180.5}"#),
        ];
        for (reason, line) in cases {
            assert_eq!(parse_line(line).map_err(|r| r.reason), Err(reason), "{line}");
        }
        let long = format!("{{\"class\":\"{}", "x".repeat(10_000));
        assert!(parse_line(&long).unwrap_err().detail.len() < 300, "details stay short");
    }

    #[test]
    fn implausible_altitudes_and_times_are_dropped_but_keep_the_position() {
        let f = fix(r#"{"class":"TPV","mode":3,"lat":1.0,"lon":2.0,"altMSL":99999.0,"time":"yesterday"}"#);
        assert_eq!((f.latitude, f.altitude_m, f.time), (1.0, None, None));
        let f = fix(r#"{"class":"TPV","mode":3,"lat":1.0,"lon":2.0,"altMSL":null,"alt":-20.5}"#);
        assert_eq!(f.altitude_m, Some(-20.5));
    }
}
