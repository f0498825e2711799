//! `/avalanche?date=YYYY-MM-DD&region=ID`: every stored region's danger for a date in the
//! European danger scale colours, the regions on a map, the chosen region's text and problems,
//! and its season as a small chart, with each region's weather for the date (Open-Meteo, the
//! `weather.daily` records) beside its danger. Rendered on the server: it works without
//! JavaScript, and static/avalanche.js only adds the map.

use super::{NVE_ATTRIBUTION, Page, layout, leaflet_head, page_data, regions};
use crate::domain::{AvalancheProblem, AvalancheWarning, Danger, ElevationBand, WeatherSummary};
use crate::store::Store;
use crate::web::assets;
use crate::web::error::WebError;
use chrono::{Datelike, NaiveDate};
use maud::{Markup, html};
use std::collections::{BTreeMap, HashMap};

pub struct Request {
    date: NaiveDate,
    region: Option<u32>,
}

impl Request {
    pub fn parse(q: &HashMap<String, String>) -> Result<Request, WebError> {
        if let Some(unknown) = q.keys().find(|k| !matches!(k.as_str(), "date" | "region")) {
            return Err(WebError::BadRequest(format!("unknown parameter {unknown:?}; use date and region")));
        }
        let date = match q.get("date").map(String::as_str) {
            None | Some("") => crate::domain::norwegian_today(),
            Some(v) => crate::web::api::parse_date("date", v)?,
        };
        let region = match q.get("region").map(String::as_str) {
            None | Some("") => None,
            Some(v) => Some(
                v.parse::<u32>()
                    .ok()
                    .filter(|r| (1..100_000).contains(r))
                    .ok_or_else(|| WebError::BadRequest(format!("region={v:?} is not a region id like 3022")))?,
            ),
        };
        Ok(Request { date, region })
    }
}

pub struct Data {
    date: NaiveDate,
    /// Every stored region's warning for `date`, by region id.
    warnings: Vec<AvalancheWarning>,
    /// The region shown in detail: the requested one, else the most dangerous.
    selected: Option<AvalancheWarning>,
    season: Season,
    /// The newest weather summary of each region for `date`, by region id (empty when the
    /// weather source is off or has not fetched that day).
    weather: BTreeMap<u32, WeatherSummary>,
}

/// One avalanche season (1 December to 30 June) and the selected region's danger through it.
struct Season {
    start: NaiveDate,
    end: NaiveDate,
    days: Vec<(NaiveDate, Danger)>,
}

impl Season {
    fn containing(date: NaiveDate) -> (NaiveDate, NaiveDate) {
        // July to November belong to the season ahead.
        let end_year = if date.month() >= 7 { date.year() + 1 } else { date.year() };
        let start = NaiveDate::from_ymd_opt(end_year - 1, 12, 1).unwrap_or(date);
        let end = NaiveDate::from_ymd_opt(end_year, 6, 30).unwrap_or(date);
        (start, end)
    }
}

impl Data {
    /// Blocking: reads the store.
    pub fn load(store: &Store, req: Request) -> anyhow::Result<Data> {
        let warnings = store.avalanche_for_date(req.date)?;
        let selected = match req.region {
            Some(r) => warnings.iter().find(|w| w.region_id == r),
            // Most dangerous first; ties go to the lower region id.
            None => warnings.iter().max_by_key(|w| (w.danger_level, std::cmp::Reverse(w.region_id))),
        }
        .cloned();
        let (start, end) = Season::containing(req.date);
        let days = match &selected {
            Some(w) => store
                .region_warnings(w.region_id, start, end)?
                .into_iter()
                .map(|w| (w.valid_date, w.danger_level))
                .collect(),
            None => Vec::new(),
        };
        // The same query as GET /api/weather?date=.
        let weather = store.weather_for_date(req.date, None)?.into_iter().map(|w| (w.region_id, w.summary)).collect();
        Ok(Data { date: req.date, warnings, selected, season: Season { start, end, days }, weather })
    }
}

fn danger_class(d: Danger) -> String {
    match d.level() {
        None => "danger danger-na".into(),
        Some(l) => format!("danger danger-{l}"),
    }
}

fn danger_name(d: Danger) -> &'static str {
    match d.level() {
        None => "not assessed",
        Some(0) => "no rating",
        Some(1) => "1 low",
        Some(2) => "2 moderate",
        Some(3) => "3 considerable",
        Some(4) => "4 high",
        Some(_) => "5 very high",
    }
}

fn href(date: NaiveDate, region: Option<u32>) -> String {
    match region {
        Some(r) => format!("/avalanche?date={date}&region={r}"),
        None => format!("/avalanche?date={date}"),
    }
}

pub fn page(station: &str, tile_url: &str, data: &Data) -> Markup {
    let selected_id = data.selected.as_ref().map(|w| w.region_id);
    let markers: Vec<_> = data
        .warnings
        .iter()
        .filter_map(|w| {
            let (lat, lon) = regions::centre(w.region_id)?;
            Some(serde_json::json!({
                "id": w.region_id, "name": w.region_name, "latitude": lat, "longitude": lon,
                "level": w.danger_level.level(), "label": danger_name(w.danger_level),
                "href": href(data.date, Some(w.region_id)), "selected": Some(w.region_id) == selected_id,
            }))
        })
        .collect();
    let head = html! {
        (leaflet_head())
        script src=(assets::url("avalanche.js")) defer {}
    };
    // No link to a day outside the years a request may name (the date itself is inside them).
    let neighbour = |d: Option<NaiveDate>| d.filter(|d| crate::dates::YEARS.contains(&d.year()));
    let (prev, next) = (neighbour(data.date.pred_opt()), neighbour(data.date.succ_opt()));
    // Every region with a warning or weather for the date, in region order.
    let mut rows: BTreeMap<u32, Option<&AvalancheWarning>> = data.weather.keys().map(|r| (*r, None)).collect();
    rows.extend(data.warnings.iter().map(|w| (w.region_id, Some(w))));
    let body = html! {
        (page_data(&serde_json::json!({ "tile_url": tile_url, "regions": markers })))
        main.content {
            form.date-form method="get" action="/avalanche" {
                @if let Some(d) = prev { a.button href=(href(d, selected_id)) rel="prev" aria-label="previous day" { "‹" } }
                input #date type="date" name="date" value=(data.date) aria-label="date";
                @if let Some(r) = selected_id { input type="hidden" name="region" value=(r); }
                @if let Some(d) = next { a.button href=(href(d, selected_id)) rel="next" aria-label="next day" { "›" } }
                button.primary type="submit" { "Show" }
            }
            h1 { "Avalanche danger " small { (data.date.format("%A %-d %B %Y")) } }
            @if data.warnings.is_empty() {
                p.empty { "No warnings are stored for this date. Outpost collects the regions in "
                    code { "[varsom] regions" } ", back to " code { "backfill_days" } " before it first started." }
            }
            div.avalanche-layout {
                div #region-map .region-map role="region" aria-label="Map of the regions" {}
                div.region-weather {
                    @if !rows.is_empty() { (region_table(data, &rows, selected_id)) }
                    @if data.weather.values().any(|w| known(Some(w)).is_some()) { p.attribution { (weather_attribution()) } }
                }
            }
            @if let Some(w) = &data.selected { (detail(w, data.weather.get(&w.region_id), &data.season, data.date)) }
            (legend())
            p.attribution { (NVE_ATTRIBUTION) " (" a href="https://www.varsom.no" { "varsom.no" } ")." }
        }
    };
    layout(Page::Avalanche, "Avalanche danger", station, head, body)
}

fn region_table(data: &Data, rows: &BTreeMap<u32, Option<&AvalancheWarning>>, selected: Option<u32>) -> Markup {
    html! {
        table.region-table {
            thead { tr {
                th { "Region" }
                th.n title="The most new snow at the region's sample points" { "New snow" }
                th title="The strongest wind at 10 m, from the direction shown" { "Wind" }
                th.n { "Gusts" }
                th.n { "Temperature" }
            } }
            tbody {
                @for (region, warning) in rows {
                    tr aria-current=[(Some(*region) == selected).then_some("true")] {
                        td { @match warning {
                            Some(w) => a href=(href(data.date, Some(w.region_id))) {
                                span class=(danger_class(w.danger_level)) title=(danger_name(w.danger_level)) {
                                    (w.danger_level.level().map_or("–".to_owned(), |l| l.to_string()))
                                }
                                " " (w.region_name)
                            },
                            None => { "Region " (region) " " span.muted { "no warning" } },
                        } }
                        (weather_cells(data.weather.get(region)))
                    }
                }
            }
        }
    }
}

/// The attribution Open-Meteo's licence (CC BY 4.0) asks for wherever its data is shown.
fn weather_attribution() -> Markup {
    html! {
        "Weather data by " a href="https://open-meteo.com/" { "Open-Meteo.com" }
        " (" a href="https://creativecommons.org/licenses/by/4.0/" rel="license" { "CC BY 4.0" } ")"
    }
}

/// A region has weather when any summary value is known: a summary of nulls is no weather.
fn known(w: Option<&WeatherSummary>) -> Option<&WeatherSummary> {
    w.filter(|w| **w != WeatherSummary::default())
}

/// One decimal, without a "-0.0"; "–" for a value Open-Meteo did not give (never a zero).
fn value(v: Option<f64>, unit: &str) -> String {
    match v {
        Some(v) => format!("{:.1}{unit}", if (v * 10.0).round() == 0.0 { 0.0 } else { v }),
        None => "–".into(),
    }
}

/// The 16-point compass name of a direction the wind comes from, and an arrow pointing where it
/// blows (a wind from the south-west blows towards the north-east: ↗).
fn compass(deg: f64) -> (&'static str, &'static str) {
    const POINTS: [&str; 16] =
        ["N", "NNE", "NE", "ENE", "E", "ESE", "SE", "SSE", "S", "SSW", "SW", "WSW", "W", "WNW", "NW", "NNW"];
    const ARROWS: [&str; 8] = ["↓", "↙", "←", "↖", "↑", "↗", "→", "↘"];
    let deg = deg.rem_euclid(360.0);
    let point = (deg / 22.5).round() as usize % 16;
    let arrow = (deg / 45.0).round() as usize % 8;
    (POINTS[point], ARROWS[arrow])
}

fn wind(w: &WeatherSummary) -> Markup {
    html! {
        @if let Some(deg) = w.wind_direction_deg {
            @let (point, arrow) = compass(deg);
            span.wind-dir title={ "from " (point) " (" (deg.round()) "°)" } { span aria-hidden="true" { (arrow) } " " (point) } " "
        }
        (value(w.wind_speed_max_kmh, " km/h"))
    }
}

fn temperature(w: &WeatherSummary) -> String {
    match (w.temperature_min_c, w.temperature_max_c) {
        (None, None) => "–".into(),
        (min, max) => format!("{} … {} °C", value(min, ""), value(max, "")),
    }
}

/// The weather cells of a region's row: new snow, wind with its direction, gusts, temperature.
fn weather_cells(w: Option<&WeatherSummary>) -> Markup {
    html! {
        @match known(w) {
            Some(w) => {
                td.n.weather.snow { (value(w.snowfall_max_cm, " cm")) }
                td.weather.wind { (wind(w)) }
                td.n.weather.gust { (value(w.wind_gusts_max_kmh, " km/h")) }
                td.n.weather.temp { (temperature(w)) }
            },
            None => td.weather.no-weather colspan="4" { "no weather" },
        }
    }
}

/// The selected region's weather in its detail panel.
fn weather_detail(w: Option<&WeatherSummary>) -> Markup {
    html! {
        h3 { "Weather" }
        @match known(w) {
            Some(w) => {
                dl.weather-facts #region-weather {
                    dt { "New snow" } dd { (value(w.snowfall_max_cm, " cm")) }
                    dt { "Strongest wind" } dd { (wind(w)) }
                    dt { "Gusts" } dd { (value(w.wind_gusts_max_kmh, " km/h")) }
                    dt { "Temperature" } dd { (temperature(w)) }
                    @if let Some(rain) = w.rain_max_mm { dt { "Rain" } dd { (value(Some(rain), " mm")) } }
                }
                p.attribution { "Over the region's sample points: the most, the strongest, the coldest and the warmest. " (weather_attribution()) }
            },
            None => p.muted #region-weather { "no weather" },
        }
    }
}

fn legend() -> Markup {
    let levels = [Danger::Level(1), Danger::Level(2), Danger::Level(3), Danger::Level(4), Danger::Level(5)];
    html! {
        ul.legend aria-label="European avalanche danger scale" {
            @for d in levels { li { span class=(danger_class(d)) { (d.level().unwrap_or(0)) } " " (danger_name(d)[2..]) } }
            li { span class=(danger_class(Danger::NotAssessed)) { "–" } " not assessed" }
        }
    }
}

fn detail(w: &AvalancheWarning, weather: Option<&WeatherSummary>, season: &Season, date: NaiveDate) -> Markup {
    html! {
        section.region-detail #region-detail {
            h2 {
                span class=(danger_class(w.danger_level)) { (w.danger_level.level().map_or("–".to_owned(), |l| l.to_string())) }
                " " (w.region_name) " "
                small { (danger_name(w.danger_level)) }
            }
            p.muted { "Published " (w.publish_time.format("%Y-%m-%d %H:%M UTC")) }
            @if !w.main_text.is_empty() { p.main-text { (w.main_text) } }
            @if let Some(text) = &w.avalanche_danger { p { (text) } }
            (weather_detail(weather))
            @if !w.problems.is_empty() {
                h3 { "Avalanche problems" }
                ol.problems { @for p in &w.problems { li { (problem(p)) } } }
            }
            @if !w.advice.is_empty() {
                h3 { "Advice" }
                ul { @for a in &w.advice { li { (a) } } }
            }
            h3 { "Season " (season.start.year()) "/" (season.end.format("%y")) }
            div.chart-scroll { (season_chart(season, date)) }
        }
    }
}

fn problem(p: &AvalancheProblem) -> Markup {
    let named = [
        ("Cause", &p.cause),
        ("Size", &p.size),
        ("Probability", &p.probability),
        ("Sensitivity", &p.sensitivity),
        ("Spread", &p.propagation),
    ];
    let aspects: Vec<String> = p.expositions.iter().map(|d| format!("{d:?}")).collect();
    let elevation = match p.elevation {
        ElevationBand::Above { m } => Some(format!("above {m} m")),
        ElevationBand::Below { m } => Some(format!("below {m} m")),
        ElevationBand::AboveAndBelow { above_m, below_m } => Some(format!("above {above_m} m and below {below_m} m")),
        ElevationBand::Between { low_m, high_m } => Some(format!("{low_m}–{high_m} m")),
        ElevationBand::Unspecified => None,
    };
    html! {
        strong { (p.problem_type.name) }
        @if let Some(l) = p.danger_level { " " span class=(danger_class(Danger::Level(l))) { (l) } }
        dl.problem {
            @for (label, value) in named { @if let Some(v) = value { dt { (label) } dd { (v.name) } } }
            @if !aspects.is_empty() { dt { "Aspects" } dd { (aspects.join(" ")) } }
            @if let Some(e) = elevation { dt { "Elevation" } dd { (e) } }
        }
    }
}

/// One bar per day, its height and colour the danger; not-assessed days a grey tick; a line
/// marks the shown date.
fn season_chart(season: &Season, date: NaiveDate) -> Markup {
    let days = (season.end - season.start).num_days().max(1) as f64 + 1.0;
    let (w, h, bar) = (days * 3.0, 60.0, 3.0);
    let x = |d: NaiveDate| (d - season.start).num_days() as f64 * bar;
    let months: Vec<NaiveDate> =
        (0..7).filter_map(|i| season.start.checked_add_months(chrono::Months::new(i))).collect();
    html! {
        svg.season-chart viewBox={ "0 0 " (w) " " (h + 14.0) } role="img"
            aria-label={ "Danger level per day from " (season.start) " to " (season.end) } {
            @for l in 1..=5 { line.grid x1="0" x2=(w) y1=(h - f64::from(l) * 11.0) y2=(h - f64::from(l) * 11.0) {} }
            @for (d, danger) in &season.days {
                @let level = f64::from(danger.level().unwrap_or(0));
                @let height = if danger.level().is_some() { level.max(0.3) * 11.0 } else { 3.0 };
                rect class=(danger_class(*danger)) x=(x(*d)) y=(h - height) width=(bar - 0.5) height=(height) {
                    title { (d) ": " (danger_name(*danger)) }
                }
            }
            @if (season.start..=season.end).contains(&date) {
                line.today x1=(x(date) + bar / 2.0) x2=(x(date) + bar / 2.0) y1="0" y2=(h) {}
            }
            @for m in &months { text x=(x(*m)) y=(h + 12.0) { (m.format("%b")) } }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seasons_run_from_december_to_june() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        assert_eq!(Season::containing(d("2023-03-01")), (d("2022-12-01"), d("2023-06-30")));
        assert_eq!(Season::containing(d("2023-12-24")), (d("2023-12-01"), d("2024-06-30")));
        assert_eq!(Season::containing(d("2023-08-01")), (d("2023-12-01"), d("2024-06-30")));
    }

    #[test]
    fn bad_parameters_are_refused_with_a_reason() {
        let q = |k: &str, v: &str| HashMap::from([(k.to_owned(), v.to_owned())]);
        for (k, v, needle) in [
            ("date", "2023-13-01", "not a day of the calendar"),
            ("date", "+262143-12-31", "not a date"),
            ("date", "-2026-01-01", "not a date"),
            ("date", "2101-01-01", "outside the years"),
            ("region", "abc", "region id"),
            ("foo", "1", "unknown"),
        ] {
            match Request::parse(&q(k, v)) {
                Err(WebError::BadRequest(m)) => assert!(m.contains(needle), "{m}"),
                _ => panic!("{k}={v} was accepted"),
            }
        }
        assert!(Request::parse(&q("region", "3022")).is_ok());
    }

    #[test]
    fn the_first_and_last_day_of_the_range_link_no_further() {
        let links = |date: &str| {
            let date: NaiveDate = date.parse().unwrap();
            let (start, end) = Season::containing(date);
            let data = Data {
                date,
                warnings: Vec::new(),
                selected: None,
                season: Season { start, end, days: Vec::new() },
                weather: BTreeMap::new(),
            };
            let html = page("station", "", &data).into_string();
            (html.contains(r#"rel="prev""#), html.contains(r#"rel="next""#))
        };
        assert_eq!(links("2023-03-01"), (true, true));
        assert_eq!(links("2100-12-31"), (true, false));
        assert_eq!(links("2000-01-01"), (false, true));
    }
}

#[cfg(test)]
mod weather_tests {
    use super::*;
    use crate::domain::{Record, WeatherDaily, WeatherPoint, WeatherValues, test_warning};
    use crate::store::StoreOptions;

    fn point(values: WeatherValues) -> WeatherPoint {
        WeatherPoint { latitude: 62.7, longitude: 9.3, elevation_m: Some(1100.0), values }
    }

    fn weather(region: u32, points: Vec<WeatherPoint>) -> Record {
        Record::WeatherDaily(WeatherDaily {
            region_id: region,
            date: "2023-03-03".parse().unwrap(),
            fetched_at: chrono::DateTime::UNIX_EPOCH,
            summary: WeatherSummary::of(&points),
            points,
        })
    }

    /// The page for 2023-03-03 from a real store holding `records`.
    async fn render(records: Vec<Record>, region: Option<&str>) -> String {
        let dir = tempfile::tempdir().unwrap();
        let (store, writer, _) = Store::open(dir.path(), "test", StoreOptions::default()).unwrap();
        let handle = writer.handle();
        let thread = writer.spawn().unwrap();
        let n = records.len() as u64;
        for r in records {
            handle.append(r);
        }
        assert_eq!(handle.flush().await.unwrap(), n);
        let mut q = HashMap::from([("date".to_owned(), "2023-03-03".to_owned())]);
        if let Some(r) = region {
            q.insert("region".into(), r.into());
        }
        let data = Data::load(&store, Request::parse(&q).unwrap()).unwrap();
        handle.shutdown().await.unwrap();
        thread.join().unwrap();
        page("station", "", &data).into_string()
    }

    #[tokio::test]
    async fn each_region_shows_its_weather_beside_its_danger() {
        let snowy = WeatherValues {
            snowfall_cm: Some(12.34),
            wind_speed_max_kmh: Some(40.0),
            wind_gusts_max_kmh: Some(71.5),
            wind_direction_deg: Some(225.0),
            temperature_min_c: Some(-8.04),
            temperature_max_c: Some(-1.0),
            ..Default::default()
        };
        // The calmer point's values lose to the snowy one's: the summary takes the extremes.
        let calm = WeatherValues {
            snowfall_cm: Some(2.0),
            wind_speed_max_kmh: Some(10.0),
            wind_direction_deg: Some(0.0),
            temperature_min_c: Some(-12.0),
            ..Default::default()
        };
        let records = vec![
            test_warning(3022, "2023-03-03", 16, 1, Some(3)),
            test_warning(3023, "2023-03-03", 16, 2, Some(2)),
            weather(3022, vec![point(snowy), point(calm)]),
            // 3011 has weather but no warning; 3023 a warning but no weather.
            weather(3011, vec![point(WeatherValues { snowfall_cm: Some(0.0), ..Default::default() })]),
        ];
        let html = render(records, Some("3022")).await;
        let row = |region: &str| {
            let start = html
                .find(&format!("<td><a href=\"/avalanche?date=2023-03-03&amp;region={region}\""))
                .or_else(|| html.find(&format!("Region {region} ")))
                .unwrap_or_else(|| panic!("no row for {region}: {html}"));
            html[start..start + html[start..].find("</tr>").unwrap()].to_owned()
        };
        let trollheimen = row("3022");
        assert!(trollheimen.contains("danger danger-3"), "{trollheimen}");
        assert!(trollheimen.contains(r#"<td class="n weather snow">12.3 cm</td>"#), "{trollheimen}");
        assert!(trollheimen.contains("↗</span> SW</span> 40.0 km/h"), "wind from the SW: {trollheimen}");
        assert!(trollheimen.contains(r#"<td class="n weather gust">71.5 km/h</td>"#), "{trollheimen}");
        assert!(trollheimen.contains("-12.0 … -1.0 °C"), "{trollheimen}");
        assert!(row("3023").contains("no weather"), "a warning without weather");
        // Zero snow is a value, and unknown values are dashes, not zeros.
        let tromso = row("3011");
        assert!(tromso.contains("no warning") && tromso.contains(">0.0 cm<"), "{tromso}");
        assert!(tromso.contains(r#"<td class="weather wind">–</td>"#) && tromso.contains(">–</td>"), "{tromso}");
        // The selected region's panel, and the licence's attribution.
        let panel = &html[html.find("id=\"region-detail\"").unwrap()..];
        assert!(panel.contains("<dt>New snow</dt><dd>12.3 cm</dd>"), "{panel}");
        assert!(panel.contains("<dt>Gusts</dt><dd>71.5 km/h</dd>"), "{panel}");
        assert!(html.contains(r#"Weather data by <a href="https://open-meteo.com/">Open-Meteo.com</a>"#));
        assert!(html.contains(r#"href="https://creativecommons.org/licenses/by/4.0/" rel="license">CC BY 4.0</a>"#));
        // No inline style or script: the page keeps the strict CSP.
        assert!(!html.contains("style=") && !html.contains("<script>"), "{html}");
    }

    #[tokio::test]
    async fn without_weather_every_region_says_so() {
        let nulls = weather(3023, vec![point(WeatherValues::default())]);
        let html = render(
            vec![
                test_warning(3022, "2023-03-03", 16, 1, Some(3)),
                test_warning(3023, "2023-03-03", 16, 2, Some(2)),
                nulls,
            ],
            None,
        )
        .await;
        assert_eq!(html.matches("no weather").count(), 3, "two rows and the panel: {html}");
        assert!(!html.contains(" cm<") && !html.contains("km/h"), "{html}");
        assert!(!html.contains("Open-Meteo"), "nothing of Open-Meteo's is shown: {html}");
    }

    #[test]
    fn compass_points_and_arrows() {
        assert_eq!(compass(0.0), ("N", "↓"));
        assert_eq!(compass(359.0), ("N", "↓"));
        assert_eq!(compass(90.0), ("E", "←"));
        assert_eq!(compass(200.0), ("SSW", "↑"));
        assert_eq!(compass(225.0), ("SW", "↗"));
        assert_eq!(compass(-90.0), ("W", "→"));
        assert_eq!(value(Some(-0.04), " °C"), "0.0 °C");
        assert_eq!(value(None, " cm"), "–");
    }
}
