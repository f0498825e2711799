//! `outpost export --kind features` against the real binary: warnings (NVE) and weather
//! (Open-Meteo) collected from recorded answers by a running appliance, exported as csv and jsonl,
//! loaded by Python (pandas if it is there, else the csv module), and compared with values
//! computed here from the fixtures themselves.

use crate::helpers::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

const FORECAST: &str = "/open-meteo/v1/forecast";
const GOOD: &str = "open-meteo/forecast_daily_4-points-norway_from-warsaw_RETARGETED.json";
const LATER: &str = "open-meteo/forecast_daily_4-points-norway_from-warsaw_RETARGETED_later-version.json";
const NVE: &str = "nve_AvalancheWarningByRegion_Detail.json";
/// Regions in request order and how many of the answer's locations are theirs (as tests/it/weather.rs).
const REGIONS: [(u32, usize); 2] = [(3022, 2), (3011, 2)];

type Day = (u32, String);

/// `(region, date) -> the region's summary` from an Open-Meteo fixture: the most snow, wind and
/// rain, the coldest minimum and warmest maximum over its points (null values left out).
fn weather(name: &str) -> BTreeMap<Day, BTreeMap<&'static str, Option<f64>>> {
    let answer: Value = serde_json::from_slice(&fixture(name)).unwrap();
    let locations = answer.as_array().unwrap();
    let mut values: BTreeMap<Day, Vec<BTreeMap<String, f64>>> = BTreeMap::new();
    let mut next = 0;
    for (region, n) in REGIONS {
        for loc in &locations[next..next + n] {
            let daily = loc["daily"].as_object().unwrap();
            for (i, date) in daily["time"].as_array().unwrap().iter().enumerate() {
                let day: BTreeMap<String, f64> =
                    daily.iter().filter_map(|(k, v)| Some((k.clone(), v[i].as_f64()?))).collect();
                if !day.is_empty() {
                    values.entry((region, date.as_str().unwrap().to_owned())).or_default().push(day);
                }
            }
        }
        next += n;
    }
    values
        .into_iter()
        .map(|(k, points)| {
            let pick = |key: &str, f: fn(f64, f64) -> f64| points.iter().filter_map(|p| p.get(key).copied()).reduce(f);
            let summary = BTreeMap::from([
                ("snowfall_max_cm", pick("snowfall_sum", f64::max)),
                ("wind_speed_max_kmh", pick("windspeed_10m_max", f64::max)),
                ("temperature_min_c", pick("temperature_2m_min", f64::min)),
                ("temperature_max_c", pick("temperature_2m_max", f64::max)),
                ("rain_max_mm", pick("rain_sum", f64::max)),
                ("weather_points", Some(points.len() as f64)),
            ]);
            (k, summary)
        })
        .collect()
}

/// The NVE fixture plus a second, later version of its 2023-03-03 warning at level 4.
fn nve_with_a_new_version() -> (Vec<u8>, u64) {
    let mut warnings: Vec<Value> = serde_json::from_slice(&fixture(NVE)).unwrap();
    let mut v2 = warnings.iter().find(|w| w["ValidFrom"] == "2023-03-03T00:00:00").unwrap().clone();
    let reg_id = v2["RegId"].as_u64().unwrap() + 1_000_000;
    v2["RegId"] = reg_id.into();
    v2["PublishTime"] = "2023-03-03T08:00:00".into();
    v2["DangerLevel"] = if v2["DangerLevel"].is_string() { "4".into() } else { 4.into() };
    warnings.push(v2);
    (serde_json::to_vec(&warnings).unwrap(), reg_id)
}

/// `(region, date) -> the expected warning columns` from NVE warnings: the newest publish time wins.
fn warnings(answer: &[u8]) -> BTreeMap<Day, BTreeMap<String, Value>> {
    let all: Vec<Value> = serde_json::from_slice(answer).unwrap();
    let mut newest: BTreeMap<Day, &Value> = BTreeMap::new();
    for w in &all {
        let day = (w["RegionId"].as_u64().unwrap() as u32, w["ValidFrom"].as_str().unwrap()[..10].to_owned());
        let slot = newest.entry(day).or_insert(w);
        if w["PublishTime"].as_str() > slot["PublishTime"].as_str() {
            *slot = w;
        }
    }
    let mask = ["N", "NE", "E", "SE", "S", "SW", "W", "NW"];
    newest
        .into_iter()
        .map(|(day, w)| {
            let level = w["DangerLevel"].as_str().map_or_else(|| w["DangerLevel"].as_u64(), |s| s.parse().ok());
            let mut cols = BTreeMap::from([
                ("danger_level".to_owned(), Value::from(level.unwrap())),
                ("warning_reg_id".to_owned(), w["RegId"].clone()),
                ("region_name".to_owned(), w["RegionName"].clone()),
            ]);
            let problems = w["AvalancheProblems"].as_array().unwrap();
            cols.insert("problem_count".into(), problems.len().into());
            for (n, p) in problems.iter().take(3).enumerate() {
                let c = |name: &str| format!("problem{}_{name}", n + 1);
                let fill = p["ExposedHeightFill"].as_u64().unwrap();
                let directions: Vec<&str> = p["ValidExpositions"]
                    .as_str()
                    .unwrap()
                    .bytes()
                    .zip(mask)
                    .filter(|(b, _)| *b == b'1')
                    .map(|(_, d)| d)
                    .collect();
                cols.insert(c("type_id"), p["AvalancheProblemTypeId"].clone());
                cols.insert(c("type"), p["AvalancheProblemTypeName"].clone());
                cols.insert(c("exposed_height_fill"), fill.into());
                cols.insert(c("exposed_height_1"), p["ExposedHeight1"].clone());
                let two = if fill >= 3 { p["ExposedHeight2"].clone() } else { Value::Null };
                cols.insert(c("exposed_height_2"), two);
                cols.insert(c("directions"), directions.join(" ").into());
                cols.insert(c("size_id"), p["DestructiveSizeExtId"].clone());
                cols.insert(c("probability"), p["AvalProbabilityName"].clone());
            }
            (day, cols)
        })
        .collect()
}

/// The CSV as Python reads it: pandas' `read_csv` if installed, else the csv module; every row as
/// a JSON object (empty cells null, numbers as numbers, the date checked as an ISO date).
fn python_load(csv: &std::path::Path) -> (Vec<BTreeMap<String, Value>>, &'static str) {
    const SCRIPT: &str = r#"
import csv, datetime, json, math, sys
path = sys.argv[1]
try:
    import pandas
except ImportError:
    pandas = None
rows = []
if pandas is not None:
    frame = pandas.read_csv(path, parse_dates=["date"])
    assert str(frame["date"].dtype).startswith("datetime64"), frame["date"].dtype
    for record in frame.to_dict(orient="records"):
        row = {}
        for k, v in record.items():
            if k == "date":
                row[k] = v.date().isoformat()
            elif isinstance(v, float) and math.isnan(v):
                row[k] = None
            elif hasattr(v, "item"):
                row[k] = v.item()
            else:
                row[k] = v
        rows.append(row)
    loader = "pandas"
else:
    with open(path, newline="") as f:
        for record in csv.DictReader(f):
            row = {}
            for k, v in record.items():
                if k == "date":
                    row[k] = datetime.date.fromisoformat(v).isoformat()
                elif v == "":
                    row[k] = None
                else:
                    try:
                        row[k] = float(v)
                    except ValueError:
                        row[k] = v
            rows.append(row)
    loader = "csv"
print(json.dumps({"loader": loader, "rows": rows}))
"#;
    let python = std::env::var("OUTPOST_PYTHON").unwrap_or_else(|_| "/root/.cache/outpost/venv/bin/python".into());
    let out = std::process::Command::new(python).args(["-c", SCRIPT]).arg(csv).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v["rows"].as_array().unwrap().iter().map(|r| serde_json::from_value(r.clone()).unwrap()).collect();
    (rows, if v["loader"] == "pandas" { "pandas" } else { "csv" })
}

/// Numbers equal within the exports' two decimals; anything else exactly.
fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => (x - y).abs() < 0.005,
        _ => a == b,
    }
}

/// `outpost export --kind features`; `daemon` is the running appliance's address, if one runs.
fn export(cfg: &std::path::Path, daemon: Option<std::net::SocketAddr>, args: &[&str]) -> (i32, String, String) {
    let mut command = std::process::Command::new(bin());
    command.args(["export", "--kind", "features", "--config"]).arg(cfg).args(args);
    if let Some(addr) = daemon {
        command.env("OUTPOST_WEB_LISTEN", addr.to_string());
    }
    let out = command.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[tokio::test]
async fn the_feature_table_joins_the_newest_warnings_and_weather_with_the_three_days_before() {
    let fx = FixtureServer::start().await;
    fx.script("/nve", vec![Reply::ok(fixture(NVE))]);
    fx.script(FORECAST, vec![Reply::ok(fixture(GOOD))]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&fx, dir.path(), "").replace("regions = [3022]", "regions = [3022, 3011]").replace(
        "# Off unless a test turns it on (tests/it/weather.rs); never the internet.\nenabled = false",
        "enabled = true\npoints_per_region = 2",
    );
    assert!(cfg.contains("points_per_region = 2"), "the helper's [weather] section changed");
    let app = Outpost::start(dir.path(), &cfg).await;
    let first = weather(GOOD).len() as u64;
    app.wait_for("warnings and weather", 60, |s| {
        stored(s, "avalanche.warning") >= 5 && stored(s, "weather.daily") >= first
    })
    .await;
    assert!(app.stop().await.success());

    // A restart collects newer versions: a re-issued warning and re-fetched weather for 3011.
    let (nve, new_reg_id) = nve_with_a_new_version();
    fx.script("/nve", vec![Reply::ok(nve.clone())]);
    fx.script(FORECAST, vec![Reply::ok(fixture(LATER))]);
    let (old, new) = (weather(GOOD), weather(LATER));
    let changed = new.iter().filter(|(k, v)| old.get(*k) != Some(*v)).count() as u64;
    assert!(changed > 0);
    let app = Outpost::start(dir.path(), &cfg).await;
    app.wait_for("the newer versions", 60, |s| {
        stored(s, "avalanche.warning") >= 6 && stored(s, "weather.daily") >= first + changed
    })
    .await;

    // Through the running appliance: the CLI streams /api/export; cql is refused.
    let cfg_path = app.config_path.clone();
    let (code, csv_live, err) = export(&cfg_path, Some(app.addr), &["--format", "csv"]);
    assert_eq!(code, 0, "{err}");
    let (code, jsonl, err) = export(&cfg_path, Some(app.addr), &["--format", "jsonl"]);
    assert_eq!(code, 0, "{err}");
    let (code, body) = app.get("/api/export?kind=features&format=cql").await;
    assert_eq!(code, 400, "{body}");
    assert!(body.to_string().contains("not a Cassandra table"), "{body}");
    let (code, body) = app.get("/api/export?kind=features&format=csv&from=2023-03-13").await;
    assert_eq!(code, 200);
    assert_eq!(body.as_str().unwrap().lines().count(), 1 + 2 * 2, "the header and two days of two regions");
    assert!(app.stop().await.success());

    // Directly from the store: the same table.
    let out = dir.path().join("features.csv");
    let (code, _, err) = export(&cfg_path, None, &["--format", "csv", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("rows to ") && err.contains("pandas.read_csv("), "{err}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), csv_live, "the same export with and without the daemon");
    let (code, stdout, err) = export(&cfg_path, None, &["--format", "cql"]);
    assert_eq!((code, stdout.as_str()), (2, ""), "{err}");
    assert!(err.contains("use --format csv or --format jsonl"), "{err}");

    // Expected, from the fixtures: a row per (region, day) with a warning or weather.
    let warned = warnings(&nve);
    assert_eq!(warned[&(3022, "2023-03-03".to_owned())]["warning_reg_id"], Value::from(new_reg_id));
    let days: BTreeSet<Day> = warned.keys().chain(new.keys()).cloned().collect();
    let (rows, loader) = python_load(&out);
    let mut keys: Vec<Day> = rows
        .iter()
        .map(|r| (r["region_id"].as_f64().unwrap() as u32, r["date"].as_str().unwrap().to_owned()))
        .collect();
    let in_date_order = keys.windows(2).all(|w| (&w[0].1, w[0].0) < (&w[1].1, w[1].0));
    assert!(in_date_order, "date, then region order: {keys:?}");
    keys.sort();
    assert_eq!(keys, days.iter().cloned().collect::<Vec<_>>());

    let day_before =
        |d: &str, n: i64| (d.parse::<chrono::NaiveDate>().unwrap() - chrono::Duration::days(n)).to_string();
    let mut checked_72h = 0;
    for row in &rows {
        let key = (row["region_id"].as_f64().unwrap() as u32, row["date"].as_str().unwrap().to_owned());
        let mut want: BTreeMap<String, Value> = warned.get(&key).cloned().unwrap_or_else(|| {
            ["danger_level", "warning_reg_id", "region_name", "problem_count", "problem1_type_id"]
                .into_iter()
                .map(|c| (c.to_owned(), Value::Null))
                .collect()
        });
        let today = new.get(&key);
        for c in [
            "snowfall_max_cm",
            "wind_speed_max_kmh",
            "temperature_min_c",
            "temperature_max_c",
            "rain_max_mm",
            "weather_points",
        ] {
            want.insert(c.into(), today.and_then(|s| s[c]).map_or(Value::Null, Value::from));
        }
        // Not in these recordings: null, never 0.
        want.insert("wind_gusts_max_kmh".into(), Value::Null);
        let before: Vec<_> = (1..=3).map(|n| new.get(&(key.0, day_before(&key.1, n)))).collect();
        let every = |c: &str| before.iter().map(|s| s.and_then(|s| s[c])).collect::<Option<Vec<f64>>>();
        let snow = every("snowfall_max_cm").map(|v| v.iter().sum::<f64>());
        let wind = every("wind_speed_max_kmh").map(|v| v.into_iter().fold(f64::MIN, f64::max));
        let warming = today.and_then(|s| s["temperature_max_c"]).zip(before[2].and_then(|s| s["temperature_max_c"]));
        want.insert("snowfall_72h_cm".into(), snow.map_or(Value::Null, Value::from));
        want.insert("wind_speed_max_72h_kmh".into(), wind.map_or(Value::Null, Value::from));
        want.insert("temperature_max_change_72h_c".into(), warming.map_or(Value::Null, |(a, b)| Value::from(a - b)));
        checked_72h += usize::from(snow.is_some());
        for (column, value) in &want {
            assert!(same(&row[column], value), "{key:?} {column}: got {} want {value} ({loader})", row[column]);
        }
    }
    assert!(checked_72h >= 10, "only {checked_72h} rows had three days before");
    let first_day = rows.iter().find(|r| r["date"] == "2023-03-01").unwrap();
    assert!(first_day["snowfall_72h_cm"].is_null(), "no days before the first: null, not 0");

    // jsonl: the same rows and columns, typed.
    let header: Vec<&str> = csv_live.lines().next().unwrap().split(',').collect();
    let lines: Vec<serde_json::Map<String, Value>> = jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), rows.len());
    for (line, row) in lines.iter().zip(&rows) {
        assert_eq!(line.keys().map(String::as_str).collect::<Vec<_>>(), header, "the csv's columns in order");
        for (column, value) in line {
            assert!(same(value, &row[column]), "{column}: jsonl {value}, csv {}", row[column]);
        }
    }
    println!("features: {} rows checked, the csv loaded by Python's {loader}", rows.len());
}
