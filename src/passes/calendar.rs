//! Visible passes as an iCalendar feed (RFC 5545) that a phone subscribes to: one event per pass,
//! from the moment the ISS becomes visible to the moment it stops being visible, written by hand
//! (a few properties; no crate needed). `GET /api/passes.ics` serves it (`web::calendar`).
//!
//! - **UIDs**: `{norad}-r{revolution}@outpost`, the revolution at the culmination counted from a
//!   point of the orbit far from every pass the observer can see (`Revolutions`). A new TLE moves a
//!   pass by seconds and leaves its UID alone, so the calendar app updates the event instead of
//!   adding a second one; a number made by rounding times would flip at the rounding's edges.
//! - **Text**: lines end in CRLF and are folded at 75 octets (never inside a UTF-8 character); TEXT
//!   values escape backslash, semicolon, comma and newline, and lose other control characters.
//! - **Times**: UTC (`...Z`), so no VTIMEZONE is needed; the phone shows them in its own zone. The
//!   description's times are in the zone given (the appliance's).

use super::{Observer, Pass, PassPoint, PredictError, Revolutions, compass, look_angles};
use crate::domain::Tle;
use chrono::{DateTime, Utc};
use std::fmt::Write as _;

/// How often a subscribed calendar should fetch again. New TLEs move passes by seconds; a day's
/// new passes come into the window once a day.
pub const REFRESH: &str = "PT6H";
/// RFC 5545 3.1: "Lines of text SHOULD NOT be longer than 75 octets, excluding the line break."
const MAX_LINE_OCTETS: usize = 75;

/// The calendar as a whole.
pub struct Feed<'a> {
    /// X-WR-CALNAME / NAME: what the calendar app lists it as.
    pub name: &'a str,
    /// X-WR-CALDESC / DESCRIPTION.
    pub description: &'a str,
    /// DTSTAMP of every event: when this feed was made.
    pub generated: DateTime<Utc>,
}

/// One visible pass, with what its event says besides the pass itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub pass: Pass,
    pub norad_id: u32,
    /// The revolution at the culmination (`Revolutions`): the UID.
    pub revolution: u32,
    /// Where the ISS is when it becomes visible and when it stops being visible.
    pub appears: PassPoint,
    pub vanishes: PassPoint,
}

/// The events of the visible ones of `passes` (predicted from `tle` for `observer`), in order.
pub fn events(tle: &Tle, observer: Observer, passes: &[Pass]) -> Result<Vec<Event>, PredictError> {
    let mut revolutions = Revolutions::new(tle, observer)?;
    let mut events = Vec::new();
    for pass in passes {
        let (Some(from), Some(to)) = (pass.visible_from, pass.visible_to) else { continue };
        events.push(Event {
            pass: pass.clone(),
            norad_id: tle.norad_id,
            revolution: revolutions.at(pass.culmination.time)?,
            appears: look_angles(tle, observer, from)?,
            vanishes: look_angles(tle, observer, to)?,
        });
    }
    Ok(events)
}

impl Event {
    pub fn uid(&self) -> String {
        format!("{}-r{}@outpost", self.norad_id, self.revolution)
    }

    /// The highest elevation while visible: the culmination's, unless visibility begins after it
    /// or ends before it (then the elevation at that end, the pass being highest at its culmination).
    pub fn highest_visible_deg(&self) -> f64 {
        let c = &self.pass.culmination;
        if (self.appears.time..=self.vanishes.time).contains(&c.time) {
            c.elevation_deg
        } else {
            self.appears.elevation_deg.max(self.vanishes.elevation_deg)
        }
    }

    /// `ISS mag -3.1, WSW → SE, max 54°`: how bright, where to look first and last, how high.
    pub fn summary(&self) -> String {
        let mut s = String::from("ISS");
        if let Some(m) = self.pass.magnitude {
            let _ = write!(s, " mag {m:.1}");
        }
        let _ = write!(
            s,
            ", {} → {}, max {:.0}°",
            compass(self.appears.azimuth_deg),
            compass(self.vanishes.azimuth_deg),
            self.highest_visible_deg()
        );
        s
    }

    /// Rise, culmination and set, where it appears and vanishes, in `tz`.
    pub fn description<Tz: chrono::TimeZone>(&self, tz: &Tz) -> String
    where
        Tz::Offset: std::fmt::Display,
    {
        let at = |t: DateTime<Utc>| t.with_timezone(tz).format("%H:%M:%S").to_string();
        let point = |p: &PassPoint| {
            format!(
                "{}, {} {:.0}°, elevation {:.0}°",
                at(p.time),
                compass(p.azimuth_deg),
                p.azimuth_deg,
                p.elevation_deg
            )
        };
        let p = &self.pass;
        let mut s =
            format!("Visible {}–{} {}", at(self.appears.time), at(self.vanishes.time), zone(self.appears.time, tz));
        match p.magnitude {
            Some(m) => {
                let _ = write!(s, ", magnitude {m:.1} at its brightest.");
            }
            None => s.push('.'),
        }
        let _ = write!(
            s,
            "\nAppears: {}\nVanishes: {}\nRise: {}\nCulmination: {}\nSet: {}\nRevolution {} (NORAD {}).",
            point(&self.appears),
            point(&self.vanishes),
            point(&p.rise),
            point(&p.culmination),
            point(&p.set),
            self.revolution,
            self.norad_id
        );
        s
    }
}

/// "UTC" for UTC, else the offset ("+02:00").
fn zone<Tz: chrono::TimeZone>(t: DateTime<Utc>, tz: &Tz) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let local = t.with_timezone(tz);
    let offset = local.format("%:z").to_string();
    if offset == "+00:00" { "UTC".to_owned() } else { offset }
}

/// The whole calendar, CRLF line ends, folded.
pub fn render<Tz: chrono::TimeZone>(feed: &Feed, events: &[Event], tz: &Tz) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let mut out = String::new();
    let mut line = |name: &str, value: &str| out.push_str(&fold(&format!("{name}:{value}")));
    line("BEGIN", "VCALENDAR");
    line("VERSION", "2.0");
    line("PRODID", "-//Outpost//ISS passes//EN");
    line("CALSCALE", "GREGORIAN");
    line("METHOD", "PUBLISH");
    // RFC 7986's names, and the older X-WR- ones that Apple's and Google's calendars read.
    line("NAME", &escape_text(feed.name));
    line("X-WR-CALNAME", &escape_text(feed.name));
    line("DESCRIPTION", &escape_text(feed.description));
    line("X-WR-CALDESC", &escape_text(feed.description));
    line("REFRESH-INTERVAL;VALUE=DURATION", REFRESH);
    line("X-PUBLISHED-TTL", REFRESH);
    for e in events {
        let (Some(from), Some(to)) = (e.pass.visible_from, e.pass.visible_to) else { continue };
        line("BEGIN", "VEVENT");
        line("UID", &e.uid());
        line("DTSTAMP", &utc(feed.generated));
        line("DTSTART", &utc(from));
        // DTEND must be later than DTSTART: a window rounded to nothing ends where it starts
        // (RFC 5545 3.6.1: no DTEND).
        if to > from {
            line("DTEND", &utc(to));
        }
        line("SUMMARY", &escape_text(&e.summary()));
        line("DESCRIPTION", &escape_text(&e.description(tz)));
        // A pass does not make anyone busy.
        line("TRANSP", "TRANSPARENT");
        line("END", "VEVENT");
    }
    line("END", "VCALENDAR");
    out
}

/// A DATE-TIME in UTC: `20230918T193831Z`.
pub fn utc(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

/// A TEXT value (RFC 5545 3.3.11): `\`, `;` and `,` escaped, newlines as `\n`; other control
/// characters, which TEXT may not hold, dropped (tab stays).
pub fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\r' => out.push_str("\\n"),
            '\t' => out.push('\t'),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// One content line, folded (RFC 5545 3.1): at most 75 octets per physical line, continuation
/// lines start with a space, and a UTF-8 character is never split. Each physical line ends in CRLF.
pub fn fold(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + line.len() / 64 * 3 + 2);
    let mut room = MAX_LINE_OCTETS;
    for c in line.chars() {
        if c.len_utf8() > room {
            out.push_str("\r\n ");
            room = MAX_LINE_OCTETS - 1;
        }
        out.push(c);
        room -= c.len_utf8();
    }
    out.push_str("\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passes::PassPoint;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn event() -> Event {
        let pass = crate::passes::oslo_reference_pass();
        Event {
            norad_id: 25544,
            revolution: 41626,
            appears: pass.rise,
            vanishes: PassPoint { time: t("2023-09-18T19:40:15Z"), azimuth_deg: 190.2, elevation_deg: 17.6 },
            pass,
        }
    }

    /// Undoes `fold`: RFC 5545's unfolding (a CRLF followed by one space or tab goes).
    fn unfold(s: &str) -> String {
        s.replace("\r\n ", "").replace("\r\n\t", "")
    }

    #[test]
    fn short_lines_are_not_folded_and_long_ones_fold_at_75_octets() {
        assert_eq!(fold("UID:25544-r1@outpost"), "UID:25544-r1@outpost\r\n");
        let exactly = "X".repeat(75);
        assert_eq!(fold(&exactly), format!("{exactly}\r\n"));
        let long = format!("DESCRIPTION:{}", "a".repeat(200));
        let folded = fold(&long);
        let lines: Vec<&str> = folded.strip_suffix("\r\n").unwrap().split("\r\n").collect();
        assert_eq!(lines.len(), 3, "{folded:?}");
        assert_eq!(lines[0].len(), 75);
        assert_eq!(lines[1].len(), 75);
        assert!(lines[1].starts_with(' ') && lines[2].starts_with(' '));
        assert_eq!(unfold(&folded), format!("{long}\r\n"));
    }

    #[test]
    fn folding_never_splits_a_utf8_character() {
        // "°" and "→" are 2 and 3 octets: at every offset, each physical line stays within 75
        // octets, is valid UTF-8 on its own, and the unfolded line is the original.
        for pad in 0..6 {
            let line = format!("SUMMARY:{}{}", "x".repeat(pad), "ISS mag -3.1\\, WSW → SE\\, max 54° ".repeat(6));
            let folded = fold(&line);
            for physical in folded.split("\r\n") {
                assert!(physical.len() <= 75, "{} octets: {physical:?}", physical.len());
            }
            assert!(folded.split("\r\n").nth(1).unwrap().len() >= 72, "a line is filled: {folded:?}");
            assert_eq!(unfold(&folded), format!("{line}\r\n"));
        }
    }

    #[test]
    fn text_values_are_escaped() {
        assert_eq!(escape_text(r"a\b;c,d"), r"a\\b\;c\,d");
        assert_eq!(escape_text("one\ntwo\r\nthree\rfour"), r"one\ntwo\nthree\nfour");
        assert_eq!(escape_text("bell\u{7}\u{0} tab\t"), "bell tab\t");
        assert_eq!(escape_text("Tromsø: ISS → SE, 54°"), r"Tromsø: ISS → SE\, 54°");
        // A property's name and value separator and its parameters stay intact.
        assert_eq!(escape_text("X:Y"), "X:Y");
    }

    #[test]
    fn an_event_says_how_bright_where_and_how_high() {
        let e = event();
        assert_eq!(e.uid(), "25544-r41626@outpost");
        // Visible only until before the culmination: the highest seen is where it vanishes.
        assert_eq!(e.summary(), "ISS mag -2.5, SW → S, max 18°");
        let mut whole = e.clone();
        whole.vanishes = whole.pass.set;
        assert_eq!(whole.summary(), "ISS mag -2.5, SW → SE, max 19°");
        let oslo = chrono::FixedOffset::east_opt(2 * 3600).unwrap();
        let d = e.description(&oslo);
        assert!(d.starts_with("Visible 21:38:31–21:40:15 +02:00, magnitude -2.5 at its brightest.\n"), "{d}");
        assert!(d.contains("\nCulmination: 21:40:58, S 171°, elevation 19°\n"), "{d}");
        assert!(d.contains("\nRise: 21:38:31, SW 218°, elevation 10°\n"), "{d}");
        assert!(d.contains("\nSet: 21:43:25, SE 124°, elevation 10°\n"), "{d}");
        assert!(d.ends_with("Revolution 41626 (NORAD 25544)."), "{d}");
        assert!(e.description(&Utc).starts_with("Visible 19:38:31–19:40:15 UTC,"));
    }

    #[test]
    fn the_calendar_is_crlf_folded_and_complete() {
        let feed = Feed {
            name: "ISS passes, pi; \"hut\"",
            description: "Visible ISS passes over 59.9139, 10.7522",
            generated: t("2023-09-18T12:00:00Z"),
        };
        let mut zero = event();
        zero.revolution = 41627;
        zero.pass.visible_to = zero.pass.visible_from;
        let text = render(&feed, &[event(), zero], &Utc);
        assert!(text.ends_with("END:VCALENDAR\r\n"));
        assert!(!text.replace("\r\n", "").contains('\n'), "bare LF");
        assert!(text.split("\r\n").all(|l| l.len() <= 75));
        let lines: Vec<String> = unfold(&text).split("\r\n").map(str::to_owned).collect();
        for want in [
            "BEGIN:VCALENDAR",
            "VERSION:2.0",
            "CALSCALE:GREGORIAN",
            r#"X-WR-CALNAME:ISS passes\, pi\; "hut""#,
            "REFRESH-INTERVAL;VALUE=DURATION:PT6H",
            "X-PUBLISHED-TTL:PT6H",
            "UID:25544-r41626@outpost",
            "DTSTAMP:20230918T120000Z",
            "DTSTART:20230918T193831Z",
            "DTEND:20230918T194015Z",
            r"SUMMARY:ISS mag -2.5\, SW → S\, max 18°",
        ] {
            assert!(lines.iter().any(|l| l == want), "no {want:?} in\n{text}");
        }
        assert_eq!(lines.iter().filter(|l| *l == "BEGIN:VEVENT").count(), 2);
        // The zero-length window has no DTEND (it must be later than DTSTART).
        assert_eq!(lines.iter().filter(|l| l.starts_with("DTEND:")).count(), 1);
        assert!(lines.iter().any(|l| l.starts_with(r"DESCRIPTION:Visible 19:38:31–19:40:15 UTC\, magnitude -2.5")));
    }

    #[test]
    fn events_number_passes_by_revolution() {
        let tle =
            crate::sources::tle_parse::parse_tle(include_bytes!("../../tests/fixtures/passes/iss-2023-09-18.tle"))
                .unwrap();
        let oslo = Observer { latitude: 59.9139, longitude: 10.7522, altitude_m: 20.0 };
        let from = t("2023-09-18T12:00:00Z");
        let passes =
            super::super::predict(&tle, oslo, from, from + chrono::TimeDelta::days(3), Default::default()).unwrap();
        let events = events(&tle, oslo, &passes).unwrap();
        assert_eq!(events.len(), passes.iter().filter(|p| p.visible).count());
        assert!(!events.is_empty());
        for e in &events {
            assert_eq!(Some(e.appears.time), e.pass.visible_from);
            assert_eq!(Some(e.vanishes.time), e.pass.visible_to);
            assert!(e.highest_visible_deg() <= e.pass.culmination.elevation_deg + 1e-9);
        }
        let mut uids: Vec<String> = events.iter().map(Event::uid).collect();
        uids.dedup();
        assert_eq!(uids.len(), events.len(), "{uids:?}");
    }
}
