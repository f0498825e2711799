//! The weather source against the real binary: real Open-Meteo answers (tests/fixtures/open-meteo)
//! replayed by the fixture server, for two regions with two sample points each.

use crate::drills::read_log;
use crate::helpers::*;
use outpost::domain::Record;
use serde_json::Value;
use std::collections::BTreeMap;

pub(crate) const FORECAST: &str = "/open-meteo/v1/forecast";
pub(crate) const GOOD: &str = "open-meteo/forecast_daily_4-points-norway_from-warsaw_RETARGETED.json";
const LATER: &str = "open-meteo/forecast_daily_4-points-norway_from-warsaw_RETARGETED_later-version.json";
/// Regions in request order and how many of the answer's locations are theirs.
const REGIONS: [(u32, usize); 2] = [(3022, 2), (3011, 2)];

/// The shared test config with weather on: regions 3022 and 3011, two points each.
pub(crate) fn weather_config(fx: &FixtureServer, dir: &std::path::Path) -> String {
    with_weather(&config(fx, dir, ""))
}

/// `base` (the shared test config) with weather on for regions 3022 and 3011, two points each:
/// the four locations of the fixtures.
pub(crate) fn with_weather(base: &str) -> String {
    let two_regions = base.replace("regions = [3022]", "regions = [3022, 3011]");
    let on = two_regions.replace(
        "# Off unless a test turns it on (tests/it/weather.rs); never the internet.\nenabled = false",
        "enabled = true\npoints_per_region = 2",
    );
    assert_ne!(on, two_regions, "the helper's [weather] section changed");
    on
}

/// `(region, date) -> the points' daily values` from a fixture, read here independently of
/// Outpost's parser: a point's day counts when any of its values is not null.
pub(crate) fn expected(name: &str) -> BTreeMap<(u32, String), Vec<BTreeMap<String, Value>>> {
    let answer: Value = serde_json::from_slice(&fixture(name)).unwrap();
    let locations = answer.as_array().unwrap();
    let mut out: BTreeMap<(u32, String), Vec<BTreeMap<String, Value>>> = BTreeMap::new();
    let mut next = 0;
    for (region, n) in REGIONS {
        for loc in &locations[next..next + n] {
            let daily = loc["daily"].as_object().unwrap();
            for (i, date) in daily["time"].as_array().unwrap().iter().enumerate() {
                let values: BTreeMap<String, Value> =
                    daily.iter().filter(|(k, _)| *k != "time").map(|(k, v)| (k.clone(), v[i].clone())).collect();
                if values.values().any(|v| !v.is_null()) {
                    out.entry((region, date.as_str().unwrap().to_owned())).or_default().push(values);
                }
            }
        }
        next += n;
    }
    out
}

fn weather_records(dir: &std::path::Path) -> Vec<outpost::domain::WeatherDaily> {
    read_log(dir)
        .into_iter()
        .filter_map(|r| match r.record {
            Record::WeatherDaily(w) => Some(w),
            _ => None,
        })
        .collect()
}

fn max_of(points: &[BTreeMap<String, Value>], key: &str) -> Option<f64> {
    points.iter().filter_map(|p| p.get(key).and_then(Value::as_f64)).reduce(f64::max)
}

#[tokio::test]
async fn real_answers_are_stored_once_per_version_and_served_by_the_api() {
    let fx = FakeOpenMeteo::new(GOOD).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = weather_config(&fx.0, dir.path());
    let want = expected(GOOD);
    let app = Outpost::start(dir.path(), &cfg).await;
    let n = want.len() as u64;
    app.wait_for("the weather of both regions", 60, |s| stored(s, "weather.daily") >= n).await;

    // One request for all four points, Norwegian days, the back-fill and the forecast.
    let requests = fx.0.requests_to(FORECAST);
    let first = &requests[0];
    for part in [
        "latitude=62.7,62.8,69.6,69.7",
        "longitude=9.3,9.3,18.7,18.7",
        "timezone=Europe%2FOslo",
        "past_days=7",
        "forecast_days=7",
        "wind_speed_10m_max",
        "snowfall_sum",
    ] {
        assert!(first.contains(part), "{part} not in {first}");
    }

    // The API: both regions on a snowy day, region order, the summary from the points.
    let (code, day) = app.get("/api/weather?date=2023-03-09").await;
    assert_eq!(code, 200, "{day}");
    let day = day.as_array().unwrap();
    assert_eq!(day.iter().map(|w| w["region_id"].as_u64().unwrap()).collect::<Vec<_>>(), [3011, 3022]);
    for w in day {
        let region = w["region_id"].as_u64().unwrap() as u32;
        let points = &want[&(region, "2023-03-09".to_owned())];
        assert_eq!(w["summary"]["snowfall_max_cm"].as_f64(), max_of(points, "snowfall_sum"), "{w}");
        assert_eq!(w["summary"]["wind_speed_max_kmh"].as_f64(), max_of(points, "windspeed_10m_max"), "{w}");
        assert_eq!(w["points"].as_array().unwrap().len(), points.len());
        // Not in this recording: null, never 0.
        assert!(w["summary"]["wind_gusts_max_kmh"].is_null() && w["points"][0]["weather_code"].is_null(), "{w}");
    }
    // The archive's lag: on the last day 3022's first point has only nulls and is left out.
    let (_, last) = app.get("/api/weather?date=2023-03-14&region=3022").await;
    let last = last.as_array().unwrap();
    assert_eq!(last.len(), 1);
    assert_eq!(last[0]["points"].as_array().unwrap().len(), want[&(3022, "2023-03-14".to_owned())].len());
    assert_eq!(app.get("/api/weather?date=2023-03-09&region=3011").await.1.as_array().unwrap().len(), 1);
    assert_eq!(app.get("/api/weather?date=2001-01-01").await.1, Value::Array(vec![]));
    for bad in ["date=1999-12-31", "date=2023-3-9", "date=2023-03-09&region=abc", "date=2023-03-09&region=42"] {
        assert_eq!(app.get(&format!("/api/weather?{bad}")).await.0, 400, "{bad}");
    }
    assert!(app.stop().await.success());
    assert_eq!(weather_records(dir.path()).len(), want.len(), "each (region, day) once");

    // A restart fetches the same answer again: nothing new is stored.
    let app = Outpost::start(dir.path(), &cfg).await;
    app.wait_for("a second fetch", 60, |s| s["sources"]["weather"]["successes"].as_u64() >= Some(1)).await;
    assert!(app.stop().await.success());
    assert_eq!(weather_records(dir.path()).len(), want.len(), "an unchanged re-fetch is a duplicate");

    // A later answer in which 3011's days changed: exactly those are new versions.
    let later = expected(LATER);
    let changed = later.iter().filter(|(k, v)| want.get(*k) != Some(*v)).count();
    assert!(changed > 0 && later.keys().filter(|(r, _)| *r == 3022).all(|k| later[k] == want[k]));
    fx.serve(LATER);
    let app = Outpost::start(dir.path(), &cfg).await;
    let total = (want.len() + changed) as u64;
    app.wait_for("the changed versions", 60, |s| stored(s, "weather.daily") >= total).await;
    let (_, day) = app.get("/api/weather?date=2023-03-09&region=3011").await;
    let points = &later[&(3011, "2023-03-09".to_owned())];
    assert_eq!(day[0]["summary"]["snowfall_max_cm"].as_f64(), max_of(points, "snowfall_sum"), "the newest version");
    let config_path = app.config_path.clone();
    assert!(app.stop().await.success());
    let records = weather_records(dir.path());
    assert_eq!(records.len(), want.len() + changed);

    // outpost export --kind weather, in all three formats, every version once.
    let export = |args: &[&str]| {
        let out = std::process::Command::new(bin())
            .args(["export", "--kind", "weather", "--config"])
            .arg(&config_path)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let jsonl = export(&["--format", "jsonl"]);
    let lines: Vec<Value> = jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), records.len());
    assert!(
        lines
            .iter()
            .all(|l| l["kind"] == "weather.daily" && l["id"].as_str().unwrap().starts_with("it/weather.daily/"))
    );
    let csv = export(&["--format", "csv"]);
    let mut csv_lines = csv.lines();
    assert!(csv_lines.next().unwrap().starts_with("region_id,date,fetched_at,snowfall_max_cm,"), "{csv}");
    assert_eq!(csv_lines.count(), records.len());
    let cql = export(&["--format", "cql"]);
    assert!(cql.contains("CREATE TABLE IF NOT EXISTS outpost.weather_daily"));
    assert_eq!(cql.matches("INSERT INTO outpost.weather_daily").count(), records.len());
    let last_day = export(&["--format", "jsonl", "--from", "2023-03-14", "--to", "2023-03-14"]);
    let on_last_day = records.iter().filter(|w| w.date.to_string() == "2023-03-14").count();
    assert!(on_last_day > 0);
    assert_eq!(last_day.lines().count(), on_last_day, "--from/--to select by the Norwegian day");
}

/// `/avalanche` shows each region's weather from the real answers beside its danger (NVE's real
/// warnings), the values computed here from the fixture, and Open-Meteo's attribution.
#[tokio::test]
async fn the_avalanche_page_shows_each_regions_weather_beside_its_danger() {
    let fx = FakeOpenMeteo::new(GOOD).await;
    fx.0.script("/nve", vec![Reply::ok(fixture("nve_AvalancheWarningByRegion_Detail.json"))]);
    let dir = tempfile::tempdir().unwrap();
    let want = expected(GOOD);
    let app = Outpost::start(dir.path(), &weather_config(&fx.0, dir.path())).await;
    let n = want.len() as u64;
    app.wait_for("weather and warnings", 60, |s| {
        stored(s, "weather.daily") >= n && stored(s, "avalanche.warning") == 5
    })
    .await;
    let page = |date: &str| {
        let url = format!("http://{}/avalanche?date={date}&region=3022", app.addr);
        async move {
            let r = reqwest::get(url).await.unwrap();
            assert_eq!(r.status(), 200);
            r.text().await.unwrap()
        }
    };
    let html = page("2023-03-05").await;
    let min_of = |points: &[BTreeMap<String, Value>], key: &str| {
        points.iter().filter_map(|p| p.get(key).and_then(Value::as_f64)).reduce(f64::min)
    };
    for (region, row_start) in
        [(3022, r#"<td><a href="/avalanche?date=2023-03-05&amp;region=3022""#), (3011, "<td>Region 3011 ")]
    {
        let points = &want[&(region, "2023-03-05".to_owned())];
        let start = html.find(row_start).unwrap_or_else(|| panic!("no row for {region}: {html}"));
        let row = &html[start..start + html[start..].find("</tr>").unwrap()];
        let snow = format!(">{:.1} cm<", max_of(points, "snowfall_sum").unwrap());
        let wind = format!("{:.1} km/h", max_of(points, "windspeed_10m_max").unwrap());
        let temp = format!(
            "{:.1} … {:.1} °C",
            min_of(points, "temperature_2m_min").unwrap(),
            max_of(points, "temperature_2m_max").unwrap()
        );
        for needle in [&snow, &wind, &temp] {
            assert!(row.contains(needle.as_str()), "{region}: {needle} not in {row}");
        }
        // This recording has no gusts: a dash, not a zero.
        assert!(row.contains(r#"<td class="n weather gust">–</td>"#), "{row}");
    }
    assert!(html.contains("danger danger-3"), "the danger beside the weather: {html}");
    let panel = &html[html.find(r#"id="region-detail""#).unwrap()..];
    assert!(panel.contains("<dt>New snow</dt>"), "the selected region's weather: {panel}");
    assert!(html.contains(r#"Weather data by <a href="https://open-meteo.com/">Open-Meteo.com</a>"#), "{html}");
    assert!(html.contains(r#"<a href="https://creativecommons.org/licenses/by/4.0/" rel="license">CC BY 4.0</a>"#));
    // A day without weather (before the answer's first day) says so.
    let before = page("2023-02-28").await;
    assert!(!before.contains("Open-Meteo") && !before.contains(" km/h"), "{before}");
    assert!(app.stop().await.success());
}

/// The fixture server answering the forecast path with one fixture.
struct FakeOpenMeteo(FixtureServer);

impl FakeOpenMeteo {
    async fn new(name: &str) -> Self {
        let fx = FakeOpenMeteo(FixtureServer::start().await);
        fx.serve(name);
        fx
    }

    fn serve(&self, name: &str) {
        self.0.script(FORECAST, vec![Reply::ok(fixture(name))]);
    }
}

/// Serves `bad` first, then the good answer: `bad` is counted under `reason` (its detail
/// containing `says`) and stores nothing; after a restart the good answer is stored.
async fn bad_weather(bad: Reply, reason: &str, says: &str) {
    let fx = FixtureServer::start().await;
    fx.script(FORECAST, vec![bad, Reply::ok(fixture(GOOD))]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = weather_config(&fx, dir.path());
    let app = Outpost::start(dir.path(), &cfg).await;
    let s = app.wait_for(reason, 60, |s| rejections(s, "weather", reason) >= 1).await;
    let detail = s["sources"]["weather"]["rejection_details"][reason].as_str().unwrap();
    assert!(detail.contains(says), "{reason}: {detail}");
    assert_eq!(s["sources"]["weather"]["failures"].as_u64(), Some(1), "{s:#}");
    assert_eq!(app.get("/healthz").await.0, 200);
    if says.contains("429") {
        // The source heard it as the daily limit (the wait itself is proven in sources/weather.rs).
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while !app.log().contains("no more requests until the next Norwegian day") {
            assert!(tokio::time::Instant::now() < deadline, "no 429 back-off in the log:\n{}", app.log());
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    assert!(app.stop().await.success());
    assert!(weather_records(dir.path()).is_empty(), "{reason}: nothing stored");
    let app = Outpost::start(dir.path(), &cfg).await;
    if says.contains("429") {
        // The daily limit is kept in the store: a restart does not ask again that day.
        let asked = fx.requests_to(FORECAST).len();
        app.wait_for("the kept daily limit", 60, |s| rejections(s, "weather", "rate_limited") >= 1).await;
        assert_eq!(fx.requests_to(FORECAST).len(), asked, "asked again after a restart on the same day");
        assert!(app.stop().await.success());
        return;
    }
    let n = expected(GOOD).len() as u64;
    app.wait_for("the good answer after the bad one", 60, |s| stored(s, "weather.daily") >= n).await;
    assert!(app.stop().await.success());
}

#[tokio::test]
async fn an_http_400_error_body() {
    let body = fixture("open-meteo/error_400_forecast_invalid-hourly-variable_2023-08-05_reason-first.json");
    bad_weather(Reply::status(400, body), "http_status", "SurfaceAndPressureVariable").await;
}

#[tokio::test]
async fn an_http_429_daily_limit() {
    let body = fixture("open-meteo/error_429_daily-request-limit-exceeded_2024-06.json");
    bad_weather(Reply::status(429, body), "http_status", "HTTP 429 Too Many Requests").await;
}

#[tokio::test]
async fn an_error_body_with_status_200() {
    let body = fixture("open-meteo/error_400_forecast_invalid-temperature_unit_2023-10-25.json");
    bad_weather(Reply::ok(body), "api_error", "TemperatureUnit").await;
}

#[tokio::test]
async fn an_html_page() {
    bad_weather(Reply::ok(fixture("celestrak_legacy_query_removed.html")), "html", "HTML").await;
}

#[tokio::test]
async fn fahrenheit_and_mph() {
    // One location where four were asked for is refused before its units are looked at.
    let one =
        fixture("open-meteo/forecast_daily_many-vars_coeur-d-alene-usa_2025-07-28_2025-08-03_gmt_fahrenheit-mph.json");
    bad_weather(Reply::ok(one.clone()), "wrong_count", "1 locations").await;
    let four = format!("[{0},{0},{0},{0}]", String::from_utf8(one).unwrap().replace("\"GMT\"", "\"Europe/Oslo\""));
    bad_weather(Reply::ok(four), "unknown_unit", "°F").await;
}

#[tokio::test]
async fn arrays_of_the_wrong_length() {
    let good = String::from_utf8(fixture(GOOD)).unwrap();
    // Drop the first snowfall value of the first location: 13 values for 14 days.
    let at = good.find("\"snowfall_sum\":[").unwrap() + "\"snowfall_sum\":[".len();
    let end = at + good[at..].find(',').unwrap() + 1;
    let short = format!("{}{}", &good[..at], &good[end..]);
    bad_weather(Reply::ok(short), "wrong_length", "snowfall_sum has 13 values for 14 days").await;
}

/// The weather records in the log with their published ids and messages.
fn published(dir: &std::path::Path) -> Vec<(String, Value)> {
    read_log(dir)
        .into_iter()
        .filter(|r| matches!(r.record, Record::WeatherDaily(_)))
        .map(|r| (r.id(), outpost::message::message(&r)))
        .collect()
}

#[tokio::test]
async fn weather_reaches_a_real_kafka_broker_on_its_own_topic() {
    let broker = crate::servers::ApacheKafka::start(crate::servers::KafkaOpts::default()).await;
    let fx = FakeOpenMeteo::new(GOOD).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = weather_config(&fx.0, dir.path()) + &format!("[kafka]\nbrokers = [\"127.0.0.1:{}\"]\n", broker.port);
    let app = Outpost::start(dir.path(), &cfg).await;
    let n = expected(GOOD).len() as u64;
    app.wait_for("the weather in Kafka", 180, |s| {
        stored(s, "weather.daily") >= n
            && s["sinks"]["kafka"]["backlog"] == 0
            && s["sinks"]["kafka"]["connected"] == true
    })
    .await;
    assert!(app.stop().await.success());
    let sent = published(dir.path());
    assert_eq!(sent.len() as u64, n);
    let topic = crate::upstreams::read_topic(broker.port, "outpost.weather.daily").await;
    assert_eq!(topic.len(), sent.len(), "each record once");
    for m in &topic {
        let key = m["key"].as_str().unwrap();
        let (_, message) = sent.iter().find(|(id, _)| id == key).unwrap_or_else(|| panic!("{key} is not in the log"));
        assert_eq!(&m["value"], message, "the value is the published message");
    }
}

#[tokio::test]
async fn weather_reaches_a_real_cassandra_node_in_weather_daily() {
    let cassandra = crate::servers::Cassandra::start(crate::servers::CassandraOpts::default()).await;
    let fx = FakeOpenMeteo::new(GOOD).await;
    let dir = tempfile::tempdir().unwrap();
    let keyspace = format!("outpost_weather_{}", std::process::id());
    let cfg = weather_config(&fx.0, dir.path())
        + &format!(
            "[cassandra]\nnodes = [\"{}\"]\nkeyspace = \"{keyspace}\"\nconsistency = \"one\"\n",
            cassandra.node()
        );
    let app = Outpost::start(dir.path(), &cfg).await;
    let n = expected(GOOD).len() as u64;
    app.wait_for("the weather in Cassandra", 240, |s| {
        let sink = &s["sinks"]["cassandra"];
        stored(s, "weather.daily") >= n && sink["backlog"] == 0 && sink["connected"] == true
    })
    .await;
    assert!(app.stop().await.success());
    let rows = cassandra
        .query(&format!("SELECT region_id, snowfall_max_cm, record_id, points FROM {keyspace}.weather_daily"))
        .await;
    assert_eq!(rows.len() as u64, n);
    let sent = published(dir.path());
    for row in &rows {
        let id = row["record_id"].as_str().unwrap();
        let (_, message) = sent.iter().find(|(i, _)| i == id).unwrap_or_else(|| panic!("{id} is not in the log"));
        assert_eq!(row["region_id"].as_u64(), message["region_id"].as_u64());
        assert_eq!(row["snowfall_max_cm"].as_f64(), message["summary"]["snowfall_max_cm"].as_f64(), "{row}");
        let points: Value = serde_json::from_str(row["points"].as_str().unwrap()).unwrap();
        assert_eq!(points, message["points"]);
    }
}

#[tokio::test]
async fn a_backfill_beyond_92_days_asks_the_archive_for_the_older_days() {
    let fx = FakeOpenMeteo::new(GOOD).await;
    // The archive answers with the later version, so its records are told from the forecast's.
    fx.0.script("/open-meteo/v1/archive", vec![Reply::ok(fixture(LATER))]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = weather_config(&fx.0, dir.path()).replace("[weather]\n", "[weather]\nbackfill_days = 100\n");
    let before = outpost::domain::norwegian_today();
    let app = Outpost::start(dir.path(), &cfg).await;
    let (want, later) = (expected(GOOD), expected(LATER));
    let changed = later.iter().filter(|(k, v)| want.get(*k) != Some(*v)).count();
    let total = (want.len() + changed) as u64;
    app.wait_for("forecast and archive stored", 60, |s| stored(s, "weather.daily") >= total).await;
    let after = outpost::domain::norwegian_today();
    assert!(app.stop().await.success());
    let forecast = fx.0.requests_to(FORECAST);
    assert!(forecast[0].contains("&past_days=92&forecast_days=7"), "{}", forecast[0]);
    let archive = fx.0.requests_to("/open-meteo/v1/archive");
    assert_eq!(archive.len(), 1, "once: {archive:?}");
    let range = |today: chrono::NaiveDate| {
        let ago = |n| today - chrono::Duration::days(n);
        format!("&start_date={}&end_date={}", ago(100), ago(93))
    };
    assert!(archive[0].ends_with(&range(before)) || archive[0].ends_with(&range(after)), "{}", archive[0]);
    assert!(archive[0].contains("latitude=62.7,62.8,69.6,69.7&") && !archive[0].contains("past_days"));
    assert_eq!(weather_records(dir.path()).len() as u64, total);
}
