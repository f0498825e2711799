//! Turns one raw TLE answer (CelesTrak `gp.php?FORMAT=TLE` text, or wheretheiss.at's
//! `satellites/25544/tles` JSON) into a verified [`Tle`]: layout, checksums, matching catalog
//! numbers and a readable epoch.
//!
//! Pure: bytes in, a record or a [`Rejection`] out. It never fetches, never reads the clock, never
//! propagates orbits, and never panics on any input (columns are taken with checked `str::get`).

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde_json::Value;

use crate::domain::Tle;
use crate::sources::rejection::Rejection;

const LINE_LEN: usize = 69;
const MICROS_PER_DAY: u128 = 86_400_000_000;

/// Parses a TLE answer; the format (text or wheretheiss.at JSON) is detected from the body.
pub fn parse_tle(body: &[u8]) -> Result<Tle, Rejection> {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return Err(Rejection::new("empty_body", "the answer has no content"));
    }
    if text.starts_with('<') || text.to_ascii_lowercase().contains("<html") {
        return Err(Rejection::new("html", "an HTML page, not a TLE"));
    }
    // CelesTrak answers a repeat download within its 2 h update cycle with this sentence.
    if text.contains("GP data has not updated") {
        return Err(Rejection::new("not_updated_notice", text.chars().take(200).collect::<String>()));
    }
    if text.starts_with('{') || text.starts_with('[') {
        return from_json(text);
    }
    // Blank lines carry nothing; CR and space padding are stripped per line.
    let lines: Vec<&str> = text.lines().map(str::trim_end).filter(|l| !l.is_empty()).collect();
    match lines.as_slice() {
        [l1, l2] => verified(None, l1, l2),
        [name, l1, l2] => {
            // FORMAT=3LE prefixes the name line with "0 ".
            let name = name.strip_prefix("0 ").unwrap_or(name).trim();
            verified(Some(name), l1, l2)
        }
        other => Err(Rejection::new("malformed_tle", format!("{} lines, want 2 or 3", other.len()))),
    }
}

/// The TLE mod-10 checksum: digits count their value, '-' counts 1, everything else 0; the last
/// character of the line (trailing whitespace ignored) must be that sum mod 10.
pub fn tle_checksum_ok(line: &str) -> bool {
    let line = line.trim_end();
    let mut chars = line.chars();
    let Some(check) = chars.next_back().and_then(|c| c.to_digit(10)) else { return false };
    let sum: u32 = chars
        .map(|c| match c {
            '-' => 1,
            c => c.to_digit(10).unwrap_or(0),
        })
        .sum();
    sum % 10 == check
}

/// wheretheiss.at: `{"header": name, "line1": .., "line2": ..}` (its `id` is a string; the catalog
/// number is taken from the lines, which are authoritative).
fn from_json(text: &str) -> Result<Tle, Rejection> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| Rejection::new("malformed_json", format!("not JSON: {e}")))?;
    let field = |k: &str| value.get(k).and_then(Value::as_str);
    match (field("line1"), field("line2")) {
        (Some(l1), Some(l2)) => verified(field("header").map(str::trim), l1.trim_end(), l2.trim_end()),
        _ => Err(Rejection::new("malformed_tle", "JSON without string line1/line2 (OMM JSON is not a TLE)")),
    }
}

fn verified(name: Option<&str>, line1: &str, line2: &str) -> Result<Tle, Rejection> {
    for (n, line) in [(1, line1), (2, line2)] {
        if !line.is_ascii() || line.len() != LINE_LEN {
            return Err(Rejection::new(
                "malformed_tle",
                format!(
                    "line {n} is {} chars (ASCII: {}), want {LINE_LEN} ASCII",
                    line.chars().count(),
                    line.is_ascii()
                ),
            ));
        }
        if !line.starts_with(if n == 1 { "1 " } else { "2 " }) {
            return Err(Rejection::new("malformed_tle", format!("line {n} does not start with \"{n} \": {line:?}")));
        }
        // Checked before the fields so that a corrupted digit is reported as corruption.
        if !tle_checksum_ok(line) {
            return Err(Rejection::new("bad_checksum", format!("line {n}: {line:?}")));
        }
    }
    let (cat1, cat2) = (col(line1, 2, 7), col(line2, 2, 7));
    let norad_id = match (catalog_number(cat1), catalog_number(cat2)) {
        (Some(a), Some(b)) if a == b => a,
        _ => {
            return Err(Rejection::new("malformed_tle", format!("catalog numbers {cat1:?} and {cat2:?}")));
        }
    };
    let field = col(line1, 18, 32);
    let epoch = epoch(field).ok_or_else(|| Rejection::new("malformed_tle", format!("unreadable epoch {field:?}")))?;
    Ok(Tle {
        epoch,
        norad_id,
        name: name.filter(|n| !n.is_empty()).map(str::to_owned),
        line1: line1.to_owned(),
        line2: line2.to_owned(),
    })
}

/// Bytes `from..to` of a line; "" if out of range (cannot happen once a line is known to be 69
/// ASCII characters, but slicing stays panic-free by construction).
fn col(line: &str, from: usize, to: usize) -> &str {
    line.get(from..to).unwrap_or("")
}

/// Columns 3-7: five digits, or Alpha-5 (a leading letter A..Z without I and O stands for 10..33
/// ten-thousands) as used for catalog numbers above 99 999.
fn catalog_number(field: &str) -> Option<u32> {
    let field = field.trim_start();
    let mut chars = field.chars();
    let first = chars.next()?;
    let (high, rest) = match first {
        'A'..='H' => (u32::from(first) - u32::from('A') + 10, chars.as_str()),
        'J'..='N' => (u32::from(first) - u32::from('A') + 9, chars.as_str()),
        'P'..='Z' => (u32::from(first) - u32::from('A') + 8, chars.as_str()),
        _ => (0, field),
    };
    if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    high.checked_mul(10_000)?.checked_add(rest.parse::<u32>().ok()?)
}

/// Columns 19-32, `YYDDD.DDDDDDDD`: two-digit year (57-99 -> 19xx, 00-56 -> 20xx, the NORAD
/// convention since Sputnik), day of year 1-based with a fraction. Integer arithmetic keeps the
/// microsecond exact instead of adding float error.
fn epoch(field: &str) -> Option<DateTime<Utc>> {
    let (yy, day) = (field.get(..2)?, field.get(2..)?);
    if !yy.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let yy: i32 = yy.parse().ok()?;
    let year = if yy >= 57 { 1900 + yy } else { 2000 + yy };
    let (whole, frac) = day.trim_start().split_once('.')?;
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(whole) || !all_digits(frac) || frac.len() > 12 {
        return None;
    }
    let doy: u32 = whole.parse().ok()?;
    let scale = 10u128.checked_pow(u32::try_from(frac.len()).ok()?)?;
    let micros = (frac.parse::<u128>().ok()? * MICROS_PER_DAY + scale / 2) / scale;
    let midnight = NaiveDate::from_yo_opt(year, doy)?.and_hms_opt(0, 0, 0)?.and_utc();
    midnight.checked_add_signed(TimeDelta::microseconds(i64::try_from(micros).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CELESTRAK: &[u8] = include_bytes!("../../tests/fixtures/celestrak_gp_CATNR25544_FORMAT_TLE.txt");
    const WHERETHEISS: &[u8] = include_bytes!("../../tests/fixtures/wheretheiss_satellites_25544_tles.full.json");
    const NOTICE: &[u8] = include_bytes!("../../tests/fixtures/celestrak_not_updated_notice.txt");
    const LEGACY_HTML: &[u8] = include_bytes!("../../tests/fixtures/celestrak_legacy_query_removed.html");
    const L1: &str = "1 25544U 98067A   23261.44473810  .00015356  00000+0  28244-3 0  9997";
    const L2: &str = "2 25544  51.6419 226.5842 0005864  32.1953 116.9329 15.49383676416254";

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn reason(body: &str) -> &'static str {
        parse_tle(body.as_bytes()).unwrap_err().reason
    }

    /// Replaces line 1's epoch field and repairs the checksum, to test epochs alone.
    fn with_epoch(field: &str) -> String {
        let body = format!("{}{field}{}", &L1[..18], &L1[32..68]);
        let sum: u32 = body.chars().map(|c| if c == '-' { 1 } else { c.to_digit(10).unwrap_or(0) }).sum();
        format!("{body}{}\n{L2}\n", sum % 10)
    }

    #[test]
    fn celestrak_fixture() {
        let t = parse_tle(CELESTRAK).unwrap();
        assert_eq!(t.name.as_deref(), Some("ISS (ZARYA)"));
        assert_eq!(t.norad_id, 25544);
        assert_eq!((t.line1.as_str(), t.line2.as_str()), (L1, L2));
        // 0.44473810 d = 38 425.371 840 s exactly.
        assert_eq!(t.epoch, utc("2023-09-18T10:40:25.371840Z"));
    }

    #[test]
    fn wheretheiss_fixture() {
        let t = parse_tle(WHERETHEISS).unwrap();
        assert_eq!(t.name.as_deref(), Some("ISS (ZARYA)"));
        assert_eq!(t.norad_id, 25544);
        assert_eq!(t.line1, "1 25544U 98067A   17055.97885185  .00018774  00000-0  28647-3 0  9996");
        assert_eq!(t.line2, "2 25544  51.6412 237.6632 0006911 227.6655 268.1045 15.54462621 44303");
        // 0.97885185 d = 84 572.799 84 s.
        assert_eq!(t.epoch, utc("2017-02-24T23:29:32.799840Z"));
    }

    #[test]
    fn crlf_padding_blank_lines_and_two_line_form() {
        let crlf = std::str::from_utf8(CELESTRAK).unwrap().replace('\n', "\r\n");
        let expected = parse_tle(CELESTRAK).unwrap();
        assert_eq!(parse_tle(format!("\r\n{crlf}  \r\n\r\n").as_bytes()).unwrap(), expected);
        let two = parse_tle(format!("{L1}   \r\n{L2}\r\n").as_bytes()).unwrap();
        assert_eq!(two, Tle { name: None, ..expected.clone() });
        let three_le = parse_tle(format!("0 ISS (ZARYA)\n{L1}\n{L2}").as_bytes()).unwrap();
        assert_eq!(three_le, expected);
    }

    #[test]
    fn notice_html_and_empty() {
        assert_eq!(parse_tle(NOTICE).unwrap_err().reason, "not_updated_notice");
        assert_eq!(parse_tle(LEGACY_HTML).unwrap_err().reason, "html");
        assert_eq!(reason("  <!DOCTYPE html>"), "html");
        assert_eq!(reason("Error\n<HTML>oops</HTML>"), "html");
        assert_eq!(reason(""), "empty_body");
        assert_eq!(reason("\r\n \n"), "empty_body");
    }

    #[test]
    fn flipped_digit_is_bad_checksum() {
        let flipped = L2.replacen("51.6419", "51.6418", 1);
        assert_eq!(reason(&format!("{L1}\n{flipped}")), "bad_checksum");
        let flipped = L1.replacen("23261.4", "23262.4", 1);
        assert_eq!(reason(&format!("{flipped}\n{L2}")), "bad_checksum");
    }

    #[test]
    fn checksum_function() {
        assert!(tle_checksum_ok(L1));
        assert!(tle_checksum_ok(&format!("{L2}\r")));
        assert!(!tle_checksum_ok(&L2.replace("15.49", "15.48")));
        assert!(!tle_checksum_ok(""));
        assert!(!tle_checksum_ok("1 25544X"));
        assert!(tle_checksum_ok("--2")); // '-' counts one
        assert!(tle_checksum_ok("éA0")); // non-digits count zero
    }

    #[test]
    fn malformed_layouts() {
        assert_eq!(reason(&format!("{}\n{L2}", &L1[..60])), "malformed_tle");
        assert_eq!(reason(&format!("{L1}\n{}", &L2[..68])), "malformed_tle");
        assert_eq!(reason(L1), "malformed_tle");
        assert_eq!(reason(&format!("a\nb\n{L1}\n{L2}")), "malformed_tle");
        assert_eq!(reason(&format!("{L2}\n{L1}")), "malformed_tle");
        assert_eq!(reason(&format!("{L1}\n{}", L2.replacen('1', "é", 1))), "malformed_tle");
        // Other object's line 2 (checksum kept valid by swapping two digits).
        let other = L2.replacen("25544", "25454", 1);
        assert_eq!(reason(&format!("{L1}\n{other}")), "malformed_tle");
        assert_eq!(reason(r#"{"header":"ISS","line1":"1 25544U"}"#), "malformed_tle");
        assert_eq!(
            parse_tle(include_bytes!("../../tests/fixtures/celestrak_gp_FORMAT_JSON_element.json")).unwrap_err().reason,
            "malformed_tle"
        );
        assert_eq!(reason(r#"{"line1": "1 2"#), "malformed_json");
        assert_eq!(reason(&std::str::from_utf8(CELESTRAK).unwrap()[..100]), "malformed_tle");
    }

    #[test]
    fn epoch_years_and_bad_epochs() {
        let epoch = |f: &str| parse_tle(with_epoch(f).as_bytes()).map(|t| t.epoch);
        assert_eq!(epoch("99001.50000000").unwrap(), utc("1999-01-01T12:00:00Z"));
        assert_eq!(epoch("57001.00000000").unwrap(), utc("1957-01-01T00:00:00Z"));
        assert_eq!(epoch("23001.00000000").unwrap(), utc("2023-01-01T00:00:00Z"));
        assert_eq!(epoch("56366.99999999").unwrap(), utc("2056-12-31T23:59:59.999136Z")); // 1e-8 d = 864 µs
        assert_eq!(epoch("24366.00000000").unwrap(), utc("2024-12-31T00:00:00Z"));
        for bad in ["23366.00000000", "23000.50000000", "2x261.44473810", "23261,44473810", "        .     "] {
            assert_eq!(epoch(bad).unwrap_err().reason, "malformed_tle", "{bad}");
        }
    }

    #[test]
    fn alpha5_catalog_numbers() {
        assert_eq!(catalog_number("25544"), Some(25544));
        assert_eq!(catalog_number("A0001"), Some(100_001));
        assert_eq!(catalog_number("J2345"), Some(182_345));
        assert_eq!(catalog_number("Z9999"), Some(339_999));
        assert_eq!(catalog_number("I0001"), None);
        assert_eq!(catalog_number("   12"), Some(12));
        assert_eq!(catalog_number("12 34"), None);
    }
}
