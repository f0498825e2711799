//! `outpost export --kind features`: one row per region and Norwegian day, the danger and its
//! avalanche problems beside that day's weather and the three days before it, for modelling.
//!
//! Constant memory: the stored days are walked in date order (`Store::next_warning_or_weather_day`),
//! one day's warnings and weather read at a time (the versions the pages show), with a window of
//! each region's last three weather summaries. Missing values are empty cells (null), never zeros.

use super::{ExportRequest, Format};
use crate::domain::{AvalancheProblem, AvalancheWarning, ElevationBand, WeatherDaily, WeatherSummary};
use crate::store::Store;
use anyhow::Context;
use chrono::{NaiveDate, SecondsFormat};
use std::collections::BTreeMap;
use std::io::Write;

/// Problems kept per row, in NVE's order (its main problem first); `problem_count` tells how many
/// there were.
pub const MAX_PROBLEMS: usize = 3;
/// The days before a row's day that its `_72h` columns cover.
const WINDOW_DAYS: i64 = 3;

const WARNING_COLUMNS: [&str; 7] =
    ["date", "region_id", "region_name", "danger_level", "warning_reg_id", "warning_published_at", "problem_count"];
const PROBLEM_COLUMNS: [&str; 10] = [
    "type_id",
    "type",
    "exposed_height_fill",
    "exposed_height_1",
    "exposed_height_2",
    "directions",
    "size_id",
    "size",
    "probability_id",
    "probability",
];
const WEATHER_COLUMNS: [&str; 9] = [
    "weather_fetched_at",
    "weather_points",
    "snowfall_max_cm",
    "wind_speed_max_kmh",
    "wind_direction_deg",
    "wind_gusts_max_kmh",
    "temperature_min_c",
    "temperature_max_c",
    "rain_max_mm",
];
const WINDOW_COLUMNS: [&str; 3] = ["snowfall_72h_cm", "wind_speed_max_72h_kmh", "temperature_max_change_72h_c"];

/// One cell of a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
}

impl Cell {
    fn int(v: Option<impl Into<i64>>) -> Cell {
        v.map_or(Cell::Null, |v| Cell::Int(v.into()))
    }
    fn float(v: Option<f64>) -> Cell {
        v.map_or(Cell::Null, Cell::Float)
    }
    fn text(v: Option<String>) -> Cell {
        v.map_or(Cell::Null, Cell::Text)
    }

    /// RFC 4180: quoted only when it holds a comma, a quote or a line break; null is empty.
    fn csv(&self) -> String {
        match self {
            Cell::Null => String::new(),
            Cell::Int(i) => i.to_string(),
            // Rust prints f64 with '.' and never in exponent form.
            Cell::Float(f) => f.to_string(),
            Cell::Text(t) if t.contains([',', '"', '\n', '\r']) => format!("\"{}\"", t.replace('"', "\"\"")),
            Cell::Text(t) => t.clone(),
        }
    }

    fn json(&self) -> serde_json::Value {
        match self {
            Cell::Null => serde_json::Value::Null,
            Cell::Int(i) => (*i).into(),
            Cell::Float(f) => serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, Into::into),
            Cell::Text(t) => t.clone().into(),
        }
    }
}

/// The column names, in row order.
pub fn columns() -> Vec<String> {
    let mut out: Vec<String> = WARNING_COLUMNS.iter().map(|c| c.to_string()).collect();
    for n in 1..=MAX_PROBLEMS {
        out.extend(PROBLEM_COLUMNS.iter().map(|c| format!("problem{n}_{c}")));
    }
    out.extend(WEATHER_COLUMNS.iter().chain(&WINDOW_COLUMNS).map(|c| c.to_string()));
    out
}

/// A region's weather summaries on the three days before a row's day: `[d-1, d-2, d-3]`.
pub type Before<'a> = [Option<&'a WeatherSummary>; WINDOW_DAYS as usize];

/// One row: what is known of `region` on `date`. A missing warning or weather gives empty cells.
pub fn row(
    date: NaiveDate,
    region: u32,
    warning: Option<&AvalancheWarning>,
    weather: Option<&WeatherDaily>,
    before: Before,
) -> Vec<Cell> {
    let time = |t: chrono::DateTime<chrono::Utc>| Cell::Text(t.to_rfc3339_opts(SecondsFormat::Secs, true));
    let mut out = vec![
        Cell::Text(date.to_string()),
        Cell::Int(region.into()),
        Cell::text(warning.map(|w| w.region_name.clone())),
        Cell::int(warning.and_then(|w| w.danger_level.level())),
        Cell::int(warning.map(|w| w.reg_id as i64)),
        warning.map_or(Cell::Null, |w| time(w.publish_time)),
        Cell::int(warning.map(|w| w.problems.len() as i64)),
    ];
    let problems = warning.map_or(&[][..], |w| &w.problems[..]);
    for n in 0..MAX_PROBLEMS {
        match problems.get(n) {
            Some(p) => out.extend(problem_cells(p)),
            None => out.extend(std::iter::repeat_n(Cell::Null, PROBLEM_COLUMNS.len())),
        }
    }
    let summary = weather.map(|w| &w.summary);
    let s = |f: fn(&WeatherSummary) -> Option<f64>| Cell::float(summary.and_then(f));
    out.extend([
        weather.map_or(Cell::Null, |w| time(w.fetched_at)),
        Cell::int(weather.map(|w| w.points.len() as i64)),
        s(|s| s.snowfall_max_cm),
        s(|s| s.wind_speed_max_kmh),
        s(|s| s.wind_direction_deg),
        s(|s| s.wind_gusts_max_kmh),
        s(|s| s.temperature_min_c),
        s(|s| s.temperature_max_c),
        s(|s| s.rain_max_mm),
    ]);
    // Every one of the three days must have the value: a partial sum would pass for a small one.
    let all =
        |f: fn(&WeatherSummary) -> Option<f64>| -> Option<Vec<f64>> { before.iter().map(|d| d.and_then(f)).collect() };
    let snow = all(|s| s.snowfall_max_cm).map(|v| round2(v.iter().sum()));
    let wind = all(|s| s.wind_speed_max_kmh).and_then(|v| v.into_iter().reduce(f64::max));
    let warming = summary
        .and_then(|s| s.temperature_max_c)
        .zip(before[WINDOW_DAYS as usize - 1].and_then(|s| s.temperature_max_c))
        .map(|(now, then)| round2(now - then));
    out.extend([Cell::float(snow), Cell::float(wind), Cell::float(warming)]);
    out
}

/// Sums and differences of values with two decimals, without float noise (0.1 + 0.2).
fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn problem_cells(p: &AvalancheProblem) -> [Cell; PROBLEM_COLUMNS.len()] {
    // NVE's ExposedHeightFill with its heights; height 2 only where the band has two.
    let (fill, h1, h2) = match p.elevation {
        ElevationBand::Unspecified => (0, None, None),
        ElevationBand::Above { m } => (1, Some(m), None),
        ElevationBand::Below { m } => (2, Some(m), None),
        ElevationBand::AboveAndBelow { above_m, below_m } => (3, Some(above_m), Some(below_m)),
        ElevationBand::Between { low_m, high_m } => (4, Some(low_m), Some(high_m)),
    };
    let directions = p.expositions.iter().map(|d| format!("{d:?}")).collect::<Vec<_>>().join(" ");
    [
        Cell::Int(p.problem_type.id.into()),
        Cell::Text(p.problem_type.name.clone()),
        Cell::Int(fill),
        Cell::int(h1),
        Cell::int(h2),
        if directions.is_empty() { Cell::Null } else { Cell::Text(directions) },
        Cell::int(p.size.as_ref().map(|n| n.id)),
        Cell::text(p.size.as_ref().map(|n| n.name.clone())),
        Cell::int(p.probability.as_ref().map(|n| n.id)),
        Cell::text(p.probability.as_ref().map(|n| n.name.clone())),
    ]
}

fn write_row(out: &mut dyn Write, format: Format, names: &[String], cells: &[Cell]) -> anyhow::Result<()> {
    match format {
        Format::Csv => writeln!(out, "{}", cells.iter().map(Cell::csv).collect::<Vec<_>>().join(","))?,
        Format::Jsonl => {
            let object: serde_json::Map<String, serde_json::Value> =
                names.iter().cloned().zip(cells.iter().map(Cell::json)).collect();
            writeln!(out, "{}", serde_json::Value::Object(object))?
        }
        Format::Cql => anyhow::bail!("{CQL_REFUSED}"),
    }
    Ok(())
}

/// Why `--format cql` is refused for features (the CLI exits 2 with it, the API answers 400).
pub const CQL_REFUSED: &str =
    "--kind features is a table for modelling, not a Cassandra table: use --format csv or --format jsonl";

/// Writes the feature table for the days in `req.from..=req.to`; returns the rows written.
pub fn export(
    store: &Store,
    req: &ExportRequest,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(u64),
) -> anyhow::Result<u64> {
    let names = columns();
    match req.format {
        Format::Csv => writeln!(out, "{}", names.join(","))?,
        Format::Jsonl => {}
        Format::Cql => anyhow::bail!("{CQL_REFUSED}"),
    }
    let first_year = chrono::NaiveDate::from_ymd_opt(*crate::dates::YEARS.start(), 1, 1).context("first year")?;
    // The window needs the three days before the first row's.
    let start = req.from.and_then(|f| f.checked_sub_days(chrono::Days::new(WINDOW_DAYS as u64))).unwrap_or(first_year);
    // region -> its newest weather summaries by day, at most the three days before the current one.
    let mut window: BTreeMap<u32, BTreeMap<NaiveDate, WeatherSummary>> = BTreeMap::new();
    let mut written = 0u64;
    let mut next = Some(start);
    while let Some(day) = next.map(|d| store.next_warning_or_weather_day(d)).transpose()?.flatten() {
        if req.to.is_some_and(|t| day > t) {
            break;
        }
        next = day.succ_opt();
        let oldest = day - chrono::Days::new(WINDOW_DAYS as u64);
        for days in window.values_mut() {
            days.retain(|d, _| *d >= oldest);
        }
        window.retain(|_, days| !days.is_empty());
        let mut regions: BTreeMap<u32, (Option<AvalancheWarning>, Option<WeatherDaily>)> = BTreeMap::new();
        for w in store.avalanche_for_date(day)? {
            let region = w.region_id;
            regions.entry(region).or_default().0 = Some(w);
        }
        for w in store.weather_for_date(day, None)? {
            let region = w.region_id;
            regions.entry(region).or_default().1 = Some(w);
        }
        let wanted = req.from.is_none_or(|f| day >= f);
        for (region, (warning, weather)) in &regions {
            if wanted {
                let days = window.get(region);
                let before: Before = std::array::from_fn(|i| {
                    let d = day - chrono::Days::new(i as u64 + 1);
                    days.and_then(|days| days.get(&d))
                });
                write_row(out, req.format, &names, &row(day, *region, warning.as_ref(), weather.as_ref(), before))?;
                written += 1;
            }
        }
        for (region, (_, weather)) in regions {
            if let Some(w) = weather {
                window.entry(region).or_default().insert(day, w.summary);
            }
        }
        progress(written);
    }
    out.flush()?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Danger, Direction, Named, Record, WeatherPoint, WeatherValues};

    fn warning(problems: Vec<AvalancheProblem>) -> AvalancheWarning {
        let Record::AvalancheWarning(mut w) = crate::domain::test_warning(3022, "2023-03-04", 15, 332811, Some(3))
        else {
            unreachable!()
        };
        w.problems = problems;
        w
    }

    fn problem(type_id: i32, elevation: ElevationBand, expositions: Vec<Direction>) -> AvalancheProblem {
        AvalancheProblem {
            problem_type: Named { id: type_id, name: "Wind drifted snow, \"slab\"".into() },
            cause: None,
            size: Some(Named { id: 3, name: "3 - Large".into() }),
            probability: None,
            sensitivity: None,
            propagation: None,
            expositions,
            elevation,
            danger_level: Some(3),
        }
    }

    fn summary(snow: Option<f64>, wind: Option<f64>, t_max: Option<f64>) -> WeatherSummary {
        WeatherSummary {
            snowfall_max_cm: snow,
            wind_speed_max_kmh: wind,
            temperature_max_c: t_max,
            ..WeatherSummary::default()
        }
    }

    fn weather(s: WeatherSummary) -> WeatherDaily {
        WeatherDaily {
            region_id: 3022,
            date: "2023-03-04".parse().unwrap(),
            fetched_at: "2023-03-04T06:00:00Z".parse().unwrap(),
            summary: s,
            points: vec![WeatherPoint {
                latitude: 62.7,
                longitude: 9.3,
                elevation_m: None,
                values: WeatherValues::default(),
            }],
        }
    }

    fn by_name(cells: &[Cell]) -> BTreeMap<String, Cell> {
        let names = columns();
        assert_eq!(names.len(), cells.len(), "a cell per column");
        names.into_iter().zip(cells.iter().cloned()).collect()
    }

    #[test]
    fn a_day_with_warning_and_weather_and_three_days_before() {
        let w = warning(vec![
            problem(10, ElevationBand::Above { m: 700 }, vec![Direction::NE, Direction::E]),
            problem(5, ElevationBand::Between { low_m: 300, high_m: 900 }, vec![]),
        ]);
        let today = weather(summary(Some(3.92), Some(22.4), Some(4.0)));
        let (d1, d2, d3) = (
            summary(Some(0.1), Some(30.3), None),
            summary(Some(0.2), Some(12.0), None),
            summary(Some(1.61), None, Some(-1.5)),
        );
        let row = by_name(&super::row(w.valid_date, 3022, Some(&w), Some(&today), [Some(&d1), Some(&d2), Some(&d3)]));
        let text = |s: &str| Cell::Text(s.into());
        assert_eq!(row["date"], text("2023-03-04"));
        assert_eq!(row["danger_level"], Cell::Int(3));
        assert_eq!(row["warning_published_at"], text("2023-03-04T15:00:00Z"));
        assert_eq!(row["problem_count"], Cell::Int(2));
        assert_eq!(row["problem1_exposed_height_fill"], Cell::Int(1));
        assert_eq!(row["problem1_exposed_height_1"], Cell::Int(700));
        assert_eq!(row["problem1_exposed_height_2"], Cell::Null, "one height for 'above'");
        assert_eq!(row["problem1_directions"], text("NE E"));
        assert_eq!(row["problem1_size_id"], Cell::Int(3));
        assert_eq!(row["problem1_probability"], Cell::Null);
        assert_eq!(
            (&row["problem2_exposed_height_1"], &row["problem2_exposed_height_2"]),
            (&Cell::Int(300), &Cell::Int(900))
        );
        assert_eq!(row["problem2_directions"], Cell::Null);
        assert_eq!(row["problem3_type_id"], Cell::Null, "no third problem");
        assert_eq!(row["snowfall_max_cm"], Cell::Float(3.92));
        assert_eq!(row["wind_gusts_max_kmh"], Cell::Null, "not given: null, not 0");
        assert_eq!(row["weather_points"], Cell::Int(1));
        // 0.1 + 0.2 + 1.61 without float noise.
        assert_eq!(row["snowfall_72h_cm"], Cell::Float(1.91));
        // d-3 had no wind: the strongest wind over the three days is unknown.
        assert_eq!(row["wind_speed_max_72h_kmh"], Cell::Null);
        assert_eq!(row["temperature_max_change_72h_c"], Cell::Float(5.5));
    }

    #[test]
    fn missing_days_and_missing_warnings_are_nulls_never_zeros() {
        let today = weather(summary(Some(0.0), Some(5.0), Some(1.0)));
        let d = summary(Some(1.0), Some(10.0), Some(2.0));
        let row =
            by_name(&super::row("2023-03-04".parse().unwrap(), 3022, None, Some(&today), [Some(&d), None, Some(&d)]));
        for c in ["region_name", "danger_level", "warning_reg_id", "problem_count", "problem1_type", "snowfall_72h_cm"]
        {
            assert_eq!(row[c], Cell::Null, "{c}");
        }
        assert_eq!(row["snowfall_max_cm"], Cell::Float(0.0), "a measured zero stays a zero");
        assert_eq!(row["temperature_max_change_72h_c"], Cell::Float(-1.0), "d-3 and the day are enough");
        let row = by_name(&super::row("2023-03-04".parse().unwrap(), 3022, None, None, [Some(&d); 3]));
        assert_eq!(row["snowfall_72h_cm"], Cell::Float(3.0));
        assert_eq!(row["wind_speed_max_72h_kmh"], Cell::Float(10.0));
        assert_eq!(row["temperature_max_change_72h_c"], Cell::Null);
        assert_eq!(row["weather_fetched_at"], Cell::Null);
    }

    #[test]
    fn a_not_assessed_warning_has_no_level_and_more_problems_than_kept_are_counted() {
        let mut w = warning(vec![problem(3, ElevationBand::Unspecified, vec![]); 4]);
        w.danger_level = Danger::NotAssessed;
        let row = by_name(&super::row(w.valid_date, 3022, Some(&w), None, [None; 3]));
        assert_eq!(row["danger_level"], Cell::Null);
        assert_eq!(row["problem_count"], Cell::Int(4));
        assert_eq!(row["problem3_exposed_height_fill"], Cell::Int(0));
        assert!(!row.contains_key("problem4_type"));
    }

    #[test]
    fn csv_cells_quote_only_what_needs_it_and_jsonl_keeps_types() {
        assert_eq!(Cell::Text("Wind drifted snow, \"slab\"".into()).csv(), "\"Wind drifted snow, \"\"slab\"\"\"");
        assert_eq!(Cell::Text("NE E".into()).csv(), "NE E");
        assert_eq!(Cell::Float(-0.25).csv(), "-0.25");
        assert_eq!(Cell::Float(1e-7).csv(), "0.0000001", "never an exponent");
        assert_eq!(Cell::Null.csv(), "");
        assert_eq!(Cell::Null.json(), serde_json::Value::Null);
        assert_eq!(Cell::Float(2.5).json(), serde_json::json!(2.5));
        let mut out = Vec::new();
        let names = columns();
        let cells = super::row("2023-03-04".parse().unwrap(), 3011, None, None, [None; 3]);
        write_row(&mut out, Format::Csv, &names, &cells).unwrap();
        let line = String::from_utf8(out).unwrap();
        assert_eq!(line.trim_end().split(',').count(), names.len());
        assert!(line.starts_with("2023-03-04,3011,,"), "{line}");
        let mut out = Vec::new();
        write_row(&mut out, Format::Jsonl, &names, &cells).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v.as_object().unwrap().keys().cloned().collect::<Vec<_>>(), names, "the CSV's columns, in order");
        assert_eq!((v["region_id"].as_u64(), v["danger_level"].is_null()), (Some(3011), true));
        assert!(write_row(&mut Vec::new(), Format::Cql, &names, &cells).is_err());
    }
}
