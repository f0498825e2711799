//! The words of an alert email: subject, plain text and HTML. Pure (times are formatted in the
//! zone given; the appliance passes `chrono::Local`).

use crate::domain::AlertKind;
use crate::passes::{Pass, PassPoint, compass};
use chrono::{DateTime, TimeZone, Utc};

/// Where the ISS is at the three moments the email describes.
///
/// `start` and `end` are the look angles at `visible_from` / `visible_to` (from
/// `passes::look_angles`); `highest` is the culmination when it lies inside the visible window,
/// else the higher of `start` and `end` (elevation only grows towards the culmination).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sky {
    pub start: PassPoint,
    pub highest: PassPoint,
    pub end: PassPoint,
    /// The pass's magnitude at its brightest (`Pass::magnitude`).
    pub magnitude: Option<f64>,
}

impl Sky {
    pub fn new(pass: &Pass, start: PassPoint, end: PassPoint) -> Sky {
        let c = pass.culmination;
        let highest = if start.time <= c.time && c.time <= end.time {
            c
        } else if start.elevation_deg >= end.elevation_deg {
            start
        } else {
            end
        };
        Sky { start, highest, end, magnitude: pass.magnitude }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Content {
    pub subject: String,
    pub text: String,
    pub html: String,
}

fn point(p: &PassPoint) -> String {
    format!("{} {:.0}°", compass(p.azimuth_deg), p.elevation_deg.max(0.0))
}

fn duration(secs: i64) -> String {
    let secs = secs.max(0);
    if secs >= 60 { format!("{} min {:02} s", secs / 60, secs % 60) } else { format!("{secs} s") }
}

/// "magnitude -2.5 (bright)": the number as pass predictors give it, and a word for those who do
/// not read magnitudes (lower is brighter; Venus is about -4, the brightest stars about 0).
pub fn brightness(magnitude: f64) -> String {
    let word = match magnitude {
        m if m <= -3.0 => "very bright",
        m if m <= -2.0 => "bright",
        m if m <= -1.0 => "easy to see",
        _ => "faint",
    };
    format!("magnitude {magnitude:.1} ({word})")
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The email for one alert.
pub fn compose<Tz: TimeZone>(kind: AlertKind, sky: &Sky, map_url: &str, tz: &Tz) -> Content
where
    Tz::Offset: std::fmt::Display,
{
    let at = |t: DateTime<Utc>| t.with_timezone(tz);
    let hm = |t: DateTime<Utc>| at(t).format("%H:%M").to_string();
    let (s, h, e) = (&sky.start, &sky.highest, &sky.end);
    let secs = (e.time - s.time).num_seconds();
    let subject = match kind {
        AlertKind::Pass => format!("ISS visible at {} — look {}", hm(s.time), compass(s.azimuth_deg)),
        AlertKind::Overhead => format!("ISS overhead now — look {}", point(h)),
    };
    let intro = match kind {
        AlertKind::Pass => "The International Space Station will be visible from here.".to_owned(),
        AlertKind::Overhead => "The International Space Station is high overhead right now.".to_owned(),
    };
    let when = format!("{}–{} ({})", at(s.time).format("%a %d %b %H:%M:%S"), at(e.time).format("%H:%M:%S %Z"), {
        duration(secs)
    });
    let rows =
        [("Appears", hm(s.time), point(s)), ("Highest", hm(h.time), point(h)), ("Disappears", hm(e.time), point(e))];
    let mut text = format!("{intro}\n\nWhen: {when}\n");
    for (label, time, pos) in &rows {
        text.push_str(&format!("{:<11} {time}  {pos}\n", format!("{label}:")));
    }
    text.push_str(&format!("Visible for: {}\n", duration(secs)));
    if let Some(m) = sky.magnitude {
        text.push_str(&format!("Brightness: {}\n", brightness(m)));
    }
    text.push_str(&format!("\nMap: {map_url}\n\n-- \nOutpost\n"));

    let mut html = format!(
        "<!DOCTYPE html>\n<html><body>\n<p>{}</p>\n<p><b>When:</b> {}</p>\n<table>\n",
        escape(&intro),
        escape(&when)
    );
    for (label, time, pos) in &rows {
        html.push_str(&format!("<tr><th align=\"left\">{label}</th><td>{time}</td><td>{}</td></tr>\n", escape(pos)));
    }
    html.push_str(&format!("</table>\n<p><b>Visible for:</b> {}</p>\n", duration(secs)));
    if let Some(m) = sky.magnitude {
        html.push_str(&format!("<p><b>Brightness:</b> {}</p>\n", escape(&brightness(m))));
    }
    html.push_str(&format!("<p><a href=\"{u}\">{u}</a></p>\n</body></html>\n", u = escape(map_url)));
    Content { subject, text, html }
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
            rise: pt("2023-09-18T19:38:31Z", 217.6, 10.0),
            culmination: pt("2023-09-18T19:40:58Z", 170.7, 18.9),
            set: pt("2023-09-18T19:43:25Z", 123.8, 10.0),
            visible: true,
            visible_from: Some(t("2023-09-18T19:38:31Z")),
            visible_to: Some(t("2023-09-18T19:40:15Z")),
            magnitude: Some(-2.5),
        }
    }

    #[test]
    fn the_highest_point_is_the_culmination_only_inside_the_window() {
        let p = pass();
        let start = p.rise;
        let end = PassPoint { time: t("2023-09-18T19:40:15Z"), azimuth_deg: 185.0, elevation_deg: 18.0 };
        // The window ends before the culmination: the end is the highest point seen.
        assert_eq!(Sky::new(&p, start, end).highest, end);
        let end = p.set;
        assert_eq!(Sky::new(&p, start, end).highest, p.culmination);
    }

    #[test]
    fn a_pass_email_says_when_where_how_long_and_links_the_map() {
        let p = pass();
        let end = PassPoint { time: t("2023-09-18T19:40:15Z"), azimuth_deg: 185.0, elevation_deg: 18.0 };
        let sky = Sky::new(&p, p.rise, end);
        let oslo = chrono::FixedOffset::east_opt(2 * 3600).unwrap();
        let c = compose(AlertKind::Pass, &sky, "http://pi.local:8080/?a=1&b=2", &oslo);
        assert_eq!(c.subject, "ISS visible at 21:38 — look SW");
        assert!(c.text.contains("When: Mon 18 Sep 21:38:31–21:40:15 +02:00 (1 min 44 s)"), "{}", c.text);
        assert!(c.text.contains("Appears:    21:38  SW 10°"), "{}", c.text);
        assert!(c.text.contains("Highest:    21:40  S 18°"), "{}", c.text);
        assert!(c.text.contains("Disappears: 21:40  S 18°"), "{}", c.text);
        assert!(c.text.contains("Map: http://pi.local:8080/?a=1&b=2"));
        assert!(c.html.contains("<a href=\"http://pi.local:8080/?a=1&amp;b=2\">"), "{}", c.html);
        assert!(c.html.contains("<td>SW 10°</td>"), "{}", c.html);
        let o = compose(AlertKind::Overhead, &sky, "http://x/", &oslo);
        assert_eq!(o.subject, "ISS overhead now — look S 18°");
    }

    #[test]
    fn the_email_says_how_bright_when_the_pass_has_a_magnitude() {
        let p = pass();
        let oslo = chrono::FixedOffset::east_opt(2 * 3600).unwrap();
        let sky = Sky::new(&p, p.rise, p.set);
        assert_eq!(sky.magnitude, Some(-2.5));
        let c = compose(AlertKind::Pass, &sky, "http://x/", &oslo);
        assert!(c.text.contains("Visible for: 4 min 54 s\nBrightness: magnitude -2.5 (bright)\n"), "{}", c.text);
        assert!(c.html.contains("<p><b>Brightness:</b> magnitude -2.5 (bright)</p>"), "{}", c.html);
        // Without one (never for a visible pass, but the type allows it) the line is left out.
        let c = compose(AlertKind::Pass, &Sky { magnitude: None, ..sky }, "http://x/", &oslo);
        assert!(!c.text.contains("Brightness") && !c.html.contains("Brightness"), "{}", c.text);
        let words: Vec<String> = [-3.9, -3.0, -2.1, -1.0, -0.4, 0.7].iter().map(|&m| brightness(m)).collect();
        assert_eq!(
            words,
            [
                "magnitude -3.9 (very bright)",
                "magnitude -3.0 (very bright)",
                "magnitude -2.1 (bright)",
                "magnitude -1.0 (easy to see)",
                "magnitude -0.4 (faint)",
                "magnitude 0.7 (faint)"
            ]
        );
    }
}
