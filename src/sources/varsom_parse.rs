//! Turns NVE (varsom.no) avalanche-warning answers into validated [`AvalancheWarning`]s:
//! `AvalancheWarningByRegion`/`ByCoordinates` Detail and Simple arrays, and `RegionSummary`
//! (warnings nested per region), plus NVE's offset-less Norwegian local times.
//!
//! One bad warning never costs the good ones: each is checked on its own and reported in
//! [`ParsedWarnings::rejected`]; only a wholly unusable body is an `Err`.
//!
//! Pure: bytes in, records and rejections out. It never fetches, never reads the clock, never
//! stores, and never panics on any input.

use chrono::{DateTime, NaiveDateTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::Europe::Oslo;
use serde_json::{Map, Value};

use crate::domain::{AvalancheProblem, AvalancheWarning, Danger, Direction, ElevationBand, Named};
use crate::sources::rejection::Rejection;

type Obj = Map<String, Value>;

/// NVE's forecast regions are 3001..=3046; the rest of the 3xxx block is tolerated so that a new
/// region does not silently disappear, while ids of other NVE series (flood, landslide) do not pass.
const REGION_IDS: std::ops::RangeInclusive<u64> = 3000..=3999;

/// The usable warnings of one answer, and why the others were dropped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedWarnings {
    pub warnings: Vec<AvalancheWarning>,
    pub rejected: Vec<Rejection>,
}

/// Parses a JSON array of warnings (Detail or Simple; Simple ones get empty problems and advice).
pub fn parse_warnings(body: &[u8]) -> Result<ParsedWarnings, Rejection> {
    let mut out = ParsedWarnings::default();
    for item in &json_array(body, &["RegionId", "RegId"])? {
        out.push(item);
    }
    Ok(out)
}

/// Parses a `RegionSummary` answer: an array of regions, each with its `AvalancheWarningList`.
pub fn parse_region_summary(body: &[u8]) -> Result<ParsedWarnings, Rejection> {
    let mut out = ParsedWarnings::default();
    for region in &json_array(body, &["AvalancheWarningList"])? {
        match region.get("AvalancheWarningList") {
            Some(Value::Array(list)) => list.iter().for_each(|item| out.push(item)),
            Some(Value::Null) => {} // a region with nothing to say
            _ => out
                .rejected
                .push(malformed(format!("region {}: no AvalancheWarningList array", show(region.get("Id"))))),
        }
    }
    Ok(out)
}

/// Converts an NVE timestamp (Europe/Oslo wall-clock time, no offset, 0-9 fractional digits) to
/// UTC. Wall-clock times that DST makes ambiguous or impossible are resolved deterministically:
/// - autumn fall-back (02:00-03:00 happens twice): the earlier instant, still summer time
///   (+02:00). NVE publishes around 16:00, so this hour is only hit by odd data; earlier is the
///   conservative reading for validity starts.
/// - spring gap (02:00-03:00 does not exist): read with the offset in force before the gap,
///   standard time (+01:00), which is the same as moving the clock forward by the gap
///   (02:30 -> 03:30 CEST = 01:30Z).
pub fn nve_local_time(s: &str) -> Result<DateTime<Utc>, Rejection> {
    oslo_to_utc(naive(s)?)
}

fn naive(s: &str) -> Result<NaiveDateTime, Rejection> {
    NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%dT%H:%M:%S%.f")
        .map_err(|e| Rejection::new("bad_time", format!("{s:?}: {e}")))
}

fn oslo_to_utc(local: NaiveDateTime) -> Result<DateTime<Utc>, Rejection> {
    if let Some(t) = Oslo.from_local_datetime(&local).earliest() {
        return Ok(t.with_timezone(&Utc));
    }
    // In a gap: Oslo's gaps last an hour, so 3 h earlier (read as UTC) is before it; use that
    // instant's offset.
    let offset = |b: NaiveDateTime| Oslo.offset_from_utc_datetime(&b).fix().local_minus_utc();
    local
        .checked_sub_signed(TimeDelta::hours(3))
        .and_then(|b| local.checked_sub_signed(TimeDelta::seconds(offset(b).into())))
        .map(|n| n.and_utc())
        .ok_or_else(|| Rejection::new("bad_time", format!("{local} is outside Europe/Oslo's range")))
}

/// The body as a JSON array whose elements (if any) include one with one of `keys`; anything
/// else is some other answer (an error object, another endpoint's shape), not an empty result.
fn json_array(body: &[u8], keys: &[&str]) -> Result<Vec<Value>, Rejection> {
    let trimmed = body.trim_ascii();
    if trimmed.is_empty() {
        return Err(Rejection::new("empty_body", "the answer has no content"));
    }
    if trimmed.starts_with(b"<") {
        return Err(Rejection::new("html", "an HTML page, not JSON"));
    }
    match serde_json::from_slice::<Value>(trimmed) {
        Ok(Value::Array(items))
            if items.is_empty() || items.iter().any(|i| keys.iter().any(|k| i.get(k).is_some())) =>
        {
            Ok(items)
        }
        Ok(_) => Err(Rejection::new("unknown_format", format!("not an array of objects with {keys:?}"))),
        // Only call it HTML when it is not JSON: warning texts may mention "<html" legitimately.
        Err(_) if String::from_utf8_lossy(trimmed).to_ascii_lowercase().contains("<html") => {
            Err(Rejection::new("html", "an HTML page, not JSON"))
        }
        Err(e) => Err(Rejection::new("malformed_json", e.to_string())),
    }
}

impl ParsedWarnings {
    fn push(&mut self, item: &Value) {
        match warning(item) {
            Ok(w) => self.warnings.push(w),
            Err(r) => {
                // Say which warning it was, so the log line can be traced back to varsom.no.
                let [reg, region, from] = ["RegId", "RegionId", "ValidFrom"].map(|k| show(item.get(k)));
                let detail = format!("RegId {reg} RegionId {region} ValidFrom {from}: {}", r.detail);
                self.rejected.push(Rejection::new(r.reason, detail));
            }
        }
    }
}

fn warning(item: &Value) -> Result<AvalancheWarning, Rejection> {
    let o = item.as_object().ok_or_else(|| malformed("not a JSON object"))?;
    let reg_id =
        o.get("RegId").and_then(Value::as_u64).ok_or_else(|| malformed("RegId is not a non-negative integer"))?;
    let region_id = o
        .get("RegionId")
        .and_then(Value::as_u64)
        .filter(|id| REGION_IDS.contains(id))
        .and_then(|id| u32::try_from(id).ok())
        .ok_or_else(|| Rejection::new("bad_region", format!("RegionId {}", show(o.get("RegionId")))))?;
    let region_name = text(o, "RegionName")?.ok_or_else(|| malformed("no RegionName"))?;
    let lang = int(o, "LangKey")?.unwrap_or(0);
    let lang = u8::try_from(lang).map_err(|_| malformed(format!("LangKey {lang}")))?;
    let main_text = text(o, "MainText")?.unwrap_or_default();
    // NVE marks regions it did not assess with RegId 0 and danger "0"; that is not "no danger".
    let unassessed = reg_id == 0 || ["Ikke vurdert", "Not assessed"].iter().any(|t| main_text.eq_ignore_ascii_case(t));
    // The level is checked even when unassessed: garbage there means the format changed.
    let danger_level = match (level(o.get("DangerLevel"))?, unassessed) {
        (_, true) => Danger::NotAssessed,
        (Some(l), false) => Danger::Level(l),
        (None, false) => return Err(Rejection::new("bad_danger_level", "no DangerLevel")),
    };
    let from = o.get("ValidFrom").and_then(Value::as_str);
    let valid_from_local = naive(required_time(from, "ValidFrom string")?)?;
    let valid_from = oslo_to_utc(valid_from_local)?;
    let valid_to = required_time(time(o, "ValidTo")?, "ValidTo")?;
    if valid_to < valid_from {
        return Err(Rejection::new("bad_time", format!("ValidTo {valid_to} before ValidFrom {valid_from}")));
    }
    Ok(AvalancheWarning {
        reg_id,
        region_id,
        region_name,
        region_type: text(o, "RegionTypeName")?,
        lang,
        danger_level,
        valid_date: valid_from_local.date(),
        valid_from,
        valid_to,
        publish_time: required_time(time(o, "PublishTime")?, "PublishTime")?,
        next_warning_time: time(o, "NextWarningTime")?,
        main_text,
        avalanche_danger: text(o, "AvalancheDanger")?,
        advice: list(o, "AvalancheAdvices")?
            .iter()
            .filter_map(|a| a.get("Text").and_then(Value::as_str).map(str::trim))
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        problems: list(o, "AvalancheProblems")?.iter().map(problem).collect::<Result<_, _>>()?,
    })
}

fn problem(item: &Value) -> Result<AvalancheProblem, Rejection> {
    let p = item.as_object().ok_or_else(|| malformed("a problem that is not an object"))?;
    let type_id =
        int(p, "AvalancheProblemTypeId")?.ok_or_else(|| malformed("problem without AvalancheProblemTypeId"))?;
    let expositions = match get(p, "ValidExpositions") {
        None => Vec::new(),
        Some(Value::String(m)) if m.len() == 8 && m.bytes().all(|b| b == b'0' || b == b'1') => {
            Direction::MASK_ORDER.iter().zip(m.bytes()).filter(|(_, b)| *b == b'1').map(|(d, _)| *d).collect()
        }
        Some(other) => {
            return Err(Rejection::new("bad_expositions", format!("ValidExpositions {other}")));
        }
    };
    let (h1, h2) = (int(p, "ExposedHeight1")?, int(p, "ExposedHeight2")?);
    let elevation = match (int(p, "ExposedHeightFill")?.unwrap_or(0), h1, h2) {
        (0, ..) => ElevationBand::Unspecified,
        (1, Some(m), _) => ElevationBand::Above { m },
        (2, Some(m), _) => ElevationBand::Below { m },
        (3, Some(above_m), Some(below_m)) => ElevationBand::AboveAndBelow { above_m, below_m },
        (4, Some(a), Some(b)) => ElevationBand::Between { low_m: a.min(b), high_m: a.max(b) },
        (fill, ..) => {
            return Err(malformed(format!("ExposedHeightFill {fill} with heights {h1:?}/{h2:?}")));
        }
    };
    Ok(AvalancheProblem {
        problem_type: Named { id: type_id, name: text(p, "AvalancheProblemTypeName")?.unwrap_or_default() },
        cause: named(p, "AvalCauseId", "AvalCauseName")?,
        size: named(p, "DestructiveSizeExtId", "DestructiveSizeExtName")?,
        probability: named(p, "AvalProbabilityId", "AvalProbabilityName")?,
        sensitivity: named(p, "AvalTriggerSensitivityId", "AvalTriggerSensitivityName")?,
        propagation: named(p, "AvalPropagationId", "AvalPropagationName")?,
        expositions,
        elevation,
        danger_level: level(p.get("DangerLevel"))?,
    })
}

/// A danger level 0..=5, sent as a string ("2") in warnings and as an integer in problems.
fn level(v: Option<&Value>) -> Result<Option<u8>, Rejection> {
    let parsed = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.trim().parse::<u8>().ok(),
        Some(n) => n.as_u64().and_then(|l| u8::try_from(l).ok()),
    };
    match parsed {
        Some(l) if l <= 5 => Ok(Some(l)),
        _ => Err(Rejection::new("bad_danger_level", format!("DangerLevel {}", show(v)))),
    }
}

/// An id with its name; `None` when the id is absent or 0 or the name is empty (NVE's "nothing").
fn named(o: &Obj, id_key: &str, name_key: &str) -> Result<Option<Named>, Rejection> {
    Ok(match (int(o, id_key)?, text(o, name_key)?) {
        (Some(id), Some(name)) if id != 0 => Some(Named { id, name }),
        _ => None,
    })
}

/// A field that is present and not null (NVE sends null for "nothing" as often as it omits).
fn get<'a>(o: &'a Obj, key: &str) -> Option<&'a Value> {
    o.get(key).filter(|v| !v.is_null())
}

/// A trimmed, non-empty string field (NVE pads texts with spaces and "\r\n").
fn text(o: &Obj, key: &str) -> Result<Option<String>, Rejection> {
    let Some(v) = get(o, key) else { return Ok(None) };
    let s = v.as_str().ok_or_else(|| malformed(format!("{key} {v} is not a string")))?.trim();
    Ok(Some(s.to_owned()).filter(|s| !s.is_empty()))
}

fn int(o: &Obj, key: &str) -> Result<Option<i32>, Rejection> {
    let Some(v) = get(o, key) else { return Ok(None) };
    let i = v.as_i64().and_then(|i| i32::try_from(i).ok());
    i.map(Some).ok_or_else(|| malformed(format!("{key} {v} is not an i32")))
}

fn time(o: &Obj, key: &str) -> Result<Option<DateTime<Utc>>, Rejection> {
    let Some(v) = get(o, key) else { return Ok(None) };
    let s = v.as_str().ok_or_else(|| Rejection::new("bad_time", format!("{key} {v}")))?;
    nve_local_time(s).map(Some).map_err(|r| Rejection::new(r.reason, format!("{key} {}", r.detail)))
}

fn required_time<T>(v: Option<T>, key: &str) -> Result<T, Rejection> {
    v.ok_or_else(|| Rejection::new("bad_time", format!("no {key}")))
}

fn list<'a>(o: &'a Obj, key: &str) -> Result<&'a [Value], Rejection> {
    match get(o, key) {
        None => Ok(&[]),
        Some(v) => v.as_array().map(Vec::as_slice).ok_or_else(|| malformed(format!("{key} is not an array"))),
    }
}

fn malformed(detail: impl Into<String>) -> Rejection {
    Rejection::new("malformed_warning", detail)
}

fn show(v: Option<&Value>) -> String {
    v.map_or_else(|| "(absent)".to_owned(), Value::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    const DETAIL: &[u8] = include_bytes!("../../tests/fixtures/nve_AvalancheWarningByRegion_Detail.json");
    const SIMPLE: &[u8] = include_bytes!("../../tests/fixtures/nve_AvalancheWarningByCoordinates_Simple.json");
    const SUMMARY: &[u8] = include_bytes!("../../tests/fixtures/nve_RegionSummary_Simple.json");

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn named(id: i32, name: &str) -> Option<Named> {
        Some(Named { id, name: name.to_owned() })
    }

    /// One valid Simple warning with `field` set to the raw JSON `value`.
    fn warning_with(field: &str, value: &str) -> String {
        let mut w: Obj = serde_json::from_str(
            r#"{"RegId":1,"RegionId":3022,"RegionName":"Trollheimen","RegionTypeName":"A",
            "DangerLevel":"2","ValidFrom":"2023-03-01T00:00:00","ValidTo":"2023-03-01T23:59:59",
            "PublishTime":"2023-02-28T15:32:29.677","MainText":" x ","LangKey":1}"#,
        )
        .unwrap();
        w.insert(field.to_owned(), serde_json::from_str(value).unwrap());
        Value::Object(w).to_string()
    }

    /// Parses `[good, warning_with(field, value), good]`.
    fn among_good(field: &str, value: &str) -> ParsedWarnings {
        let good = warning_with("RegId", "2");
        let body = format!("[{good},{},{good}]", warning_with(field, value));
        parse_warnings(body.as_bytes()).unwrap()
    }

    /// The one problem of a warning whose problem has `extra` fields, or the rejection reason.
    fn problem_with(extra: &str) -> Result<AvalancheProblem, &'static str> {
        let p = format!(r#"[{{"AvalancheProblemTypeId":7,"AvalancheProblemTypeName":"New"{extra}}}]"#);
        let mut parsed = among_good("AvalancheProblems", &p);
        match parsed.rejected.pop() {
            Some(r) => Err(r.reason),
            None => Ok(parsed.warnings.remove(1).problems.remove(0)),
        }
    }

    #[test]
    fn detail_fixture() {
        let parsed = parse_warnings(DETAIL).unwrap();
        assert_eq!((parsed.warnings.len(), parsed.rejected.len()), (5, 0));
        let w = &parsed.warnings[0];
        assert_eq!((w.reg_id, w.region_id, w.region_name.as_str()), (332137, 3022, "Trollheimen"));
        assert_eq!((w.region_type.as_deref(), w.lang, w.danger_level), (Some("A"), 2, Danger::Level(2)));
        assert_eq!(w.valid_date, NaiveDate::from_ymd_opt(2023, 3, 1).unwrap());
        assert_eq!(w.valid_from, utc("2023-02-28T23:00:00Z"));
        assert_eq!(w.valid_to, utc("2023-03-01T22:59:59Z"));
        assert_eq!(w.publish_time, utc("2023-02-28T14:32:29.677Z"));
        assert_eq!(w.next_warning_time, Some(utc("2023-03-02T15:00:00Z")));
        assert!(w.main_text.starts_with("Be careful in sun") && w.main_text.ends_with("cornices."));
        assert!(w.avalanche_danger.as_deref().unwrap().starts_with("I lavlandet"));
        assert_eq!((w.advice.len(), w.advice[2].as_str()), (3, "Avoid terrain traps."));
        assert_eq!(w.problems.len(), 2);
        let p = &w.problems[0];
        assert_eq!(Some(p.problem_type.clone()), named(10, "Wind drifted snow (slab avalanches)"));
        assert_eq!(p.cause, named(10, "Buried weak layer of new snow"));
        assert_eq!((p.size.clone(), p.probability.clone()), (named(2, "2 - Medium"), named(3, "Possible")));
        assert_eq!(p.sensitivity, named(30, "Easy to trigger")); // sent as "Easy to trigger\r\n"
        assert_eq!(p.propagation, named(1, "Few steep slopes"));
        assert_eq!(p.expositions, [Direction::E, Direction::SE, Direction::S]);
        assert_eq!((p.elevation, p.danger_level), (ElevationBand::Above { m: 1000 }, Some(2)));
        let p = &w.problems[1];
        assert_eq!(
            (p.expositions.clone(), p.elevation),
            (Direction::MASK_ORDER.to_vec(), ElevationBand::Below { m: 800 })
        );
        assert_eq!(parsed.warnings[2].danger_level, Danger::Level(3));
    }

    #[test]
    fn simple_and_summary_fixtures() {
        let simple = parse_warnings(SIMPLE).unwrap();
        assert_eq!((simple.warnings.len(), simple.rejected.len()), (3, 0));
        assert!(simple.warnings.iter().all(|w| w.problems.is_empty() && w.advice.is_empty()));
        assert_eq!(simple.warnings[1].publish_time, utc("2026-03-01T14:31:11.070Z"));
        let summary = parse_region_summary(SUMMARY).unwrap();
        assert_eq!((summary.warnings.len(), summary.rejected.len()), (138, 0));
        let unassessed: Vec<_> = summary.warnings.iter().filter(|w| w.reg_id == 0).collect();
        assert_eq!(unassessed.len(), 65);
        assert!(unassessed.iter().all(|w| w.danger_level == Danger::NotAssessed));
        let first = summary.warnings.iter().find(|w| w.region_id == 3003).unwrap();
        assert_eq!(first.valid_date, NaiveDate::from_ymd_opt(2022, 1, 16).unwrap());
        assert_eq!(first.danger_level, Danger::Level(2));
        // Each function refuses the other's shape instead of returning nothing.
        assert_eq!(parse_warnings(SUMMARY).unwrap_err().reason, "unknown_format");
        assert_eq!(parse_region_summary(SIMPLE).unwrap_err().reason, "unknown_format");
    }

    #[test]
    fn local_times_across_dst_and_fraction_lengths() {
        for (local, expected) in [
            ("2023-03-26T01:30:00", "2023-03-26T00:30:00Z"),
            ("2023-03-26T02:30:00", "2023-03-26T01:30:00Z"), // spring gap: read as +01:00
            ("2023-03-26T03:30:00", "2023-03-26T01:30:00Z"),
            ("2023-10-29T01:59:59.5", "2023-10-28T23:59:59.5Z"),
            ("2023-10-29T02:30:00", "2023-10-29T00:30:00Z"), // ambiguous: the earlier, +02:00
            ("2023-10-29T03:30:00", "2023-10-29T02:30:00Z"),
            ("2023-02-28T15:32:29.78", "2023-02-28T14:32:29.780Z"),
            ("2023-02-28T15:32:29.673", "2023-02-28T14:32:29.673Z"),
            ("2023-02-28T15:32:29.1234567", "2023-02-28T14:32:29.1234567Z"),
            (" 2023-07-01T12:00:00 ", "2023-07-01T10:00:00Z"),
        ] {
            assert_eq!(nve_local_time(local).unwrap(), utc(expected), "{local}");
        }
        for bad in ["", "x", "2023-02-30T00:00:00", "2023-03-01", "2023-03-01T00:00:00Z"] {
            assert_eq!(nve_local_time(bad).unwrap_err().reason, "bad_time", "{bad:?}");
        }
        for bad in ["2023-03-01T00:00:00+01:00", "2023-03-01T00:00:00.", "-262143-01-01T00:00:00"] {
            assert_eq!(nve_local_time(bad).unwrap_err().reason, "bad_time", "{bad:?}");
        }
    }

    #[test]
    fn a_bad_warning_is_rejected_alone() {
        for (field, value, reason) in [
            ("DangerLevel", r#""6""#, "bad_danger_level"),
            ("DangerLevel", r#""x""#, "bad_danger_level"),
            ("DangerLevel", r#""""#, "bad_danger_level"),
            ("DangerLevel", "-1", "bad_danger_level"),
            ("DangerLevel", "null", "bad_danger_level"),
            ("RegionId", "2999", "bad_region"),
            ("RegionId", r#""3022""#, "bad_region"),
            ("ValidTo", r#""2023-02-28T23:59:59""#, "bad_time"),
            ("PublishTime", "null", "bad_time"),
            ("NextWarningTime", r#""soon""#, "bad_time"),
            ("RegId", "-3", "malformed_warning"),
            ("RegionName", "null", "malformed_warning"),
            ("LangKey", "300", "malformed_warning"),
            ("AvalancheAdvices", r#""none""#, "malformed_warning"),
        ] {
            let parsed = among_good(field, value);
            assert_eq!(parsed.warnings.len(), 2, "{field}={value}");
            let reasons: Vec<_> = parsed.rejected.iter().map(|r| r.reason).collect();
            assert_eq!(reasons, [reason], "{field}={value}");
            assert!(parsed.rejected[0].detail.contains(" RegionId "));
        }
        let parsed = parse_warnings(format!("[{},42]", warning_with("RegId", "1")).as_bytes());
        assert_eq!(parsed.unwrap().rejected[0].reason, "malformed_warning");
    }

    #[test]
    fn danger_forms_and_defaults() {
        let w = |field: &str, value: &str| among_good(field, value).warnings.remove(1);
        assert_eq!(w("DangerLevel", "4").danger_level, Danger::Level(4));
        assert_eq!(w("DangerLevel", r#""0""#).danger_level, Danger::Level(0));
        assert_eq!(w("RegId", "0").danger_level, Danger::NotAssessed);
        assert_eq!(w("MainText", r#""Not assessed""#).danger_level, Danger::NotAssessed);
        assert_eq!((w("LangKey", "null").lang, w("MainText", "null").main_text), (0, String::new()));
        assert_eq!(w("NextWarningTime", "null").next_warning_time, None);
    }

    #[test]
    fn problem_fields() {
        use ElevationBand::*;
        let p = problem_with(r#","AvalCauseId":0,"AvalCauseName":"x","DestructiveSizeExtId":2"#);
        let p = p.unwrap();
        assert_eq!((p.cause, p.size, p.danger_level, p.elevation), (None, None, None, Unspecified));
        assert_eq!(p.problem_type, Named { id: 7, name: "New".into() });
        let band = |fill: i32, h1: i32, h2: i32| {
            let f = format!(r#","ExposedHeightFill":{fill},"ExposedHeight1":{h1},"ExposedHeight2":{h2}"#);
            problem_with(&f).map(|p| p.elevation)
        };
        assert_eq!(band(3, 1200, 600), Ok(AboveAndBelow { above_m: 1200, below_m: 600 }));
        assert_eq!(band(4, 900, 300), Ok(Between { low_m: 300, high_m: 900 }));
        assert_eq!((band(0, 900, 0), band(5, 1, 1)), (Ok(Unspecified), Err("malformed_warning")));
        let mask = problem_with(r#","ValidExpositions":"10000001""#).unwrap().expositions;
        assert_eq!(mask, [Direction::N, Direction::NW]);
        for (extra, reason) in [
            (r#","ValidExpositions":"0011100""#, "bad_expositions"),
            (r#","ValidExpositions":"00111002""#, "bad_expositions"),
            (r#","ValidExpositions":"ééé""#, "bad_expositions"),
            (r#","ValidExpositions":11100000"#, "bad_expositions"),
            (r#","ExposedHeightFill":4,"ExposedHeight1":100"#, "malformed_warning"),
            (r#","DangerLevel":9"#, "bad_danger_level"),
            (r#","AvalancheProblemTypeId":null"#, "malformed_warning"),
        ] {
            assert_eq!(problem_with(extra).unwrap_err(), reason, "{extra}");
        }
    }

    #[test]
    fn unusable_bodies() {
        let reason = |b: &[u8]| parse_warnings(b).unwrap_err().reason;
        assert_eq!((reason(b""), reason(b" \n ")), ("empty_body", "empty_body"));
        assert_eq!(reason(&DETAIL[..DETAIL.len() / 2]), "malformed_json");
        assert_eq!(reason(&SIMPLE[..SIMPLE.len() - 3]), "malformed_json");
        assert_eq!(reason(b"<!DOCTYPE html><html><body>Unavailable</body></html>"), "html");
        assert_eq!(reason(b"Error 503 <HTML>"), "html");
        assert_eq!(reason(br#"{"Message":"An error has occurred."}"#), "unknown_format");
        assert_eq!(reason(b"[1,2,3]"), "unknown_format");
        assert_eq!(parse_warnings(b"[]").unwrap(), ParsedWarnings::default());
        assert_eq!(parse_region_summary(b" [] ").unwrap(), ParsedWarnings::default());
        let body = br#"[{"Id":3001,"AvalancheWarningList":null},{"Id":3002,"AvalancheWarningList":1}]"#;
        assert_eq!(parse_region_summary(body).unwrap().rejected[0].reason, "malformed_warning");
    }
}
