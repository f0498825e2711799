//! Fault drill: random input (proptest, a bounded number of cases) into everything that parses
//! what the outside world sends: the upstream answer parsers, TLE parsing, config loading with
//! environment overrides, and every path, query parameter and `Last-Event-ID` of the running
//! appliance. Nothing may panic; the parsers and the config answer with a value or an error, the
//! web server with 2xx or 4xx, never 5xx or a dropped connection. Seeds are fixed: runs repeat.

use crate::helpers::*;
use outpost::app::Config;

/// Every configuration key, `(section, key, type)`.
static KEYS: std::sync::LazyLock<Vec<outpost::config::Key>> = std::sync::LazyLock::new(Config::keys);
use outpost::sources::{iss_position_parse, tle_parse, varsom_parse};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config as RunConfig, TestRng, TestRunner};
use serde_json::Value;

const CASES: u32 = 400;

/// A fixed seed: every run tries the same inputs (a failure replays as it is).
fn cfg() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        rng_seed: proptest::test_runner::RngSeed::Fixed(15),
        ..ProptestConfig::default()
    }
}

/// Any JSON value, a few levels deep, with the numbers and strings parsers trip over.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop_oneof![
            ".*",
            "[0-9]{1,20}",
            "-?[0-9]{1,4}\\.[0-9]{0,12}",
            "20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9](\\.[0-9]{0,9})?",
            Just(String::new()),
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// `value` with one of its leaves (chosen by `pick`) replaced by `with`.
fn replace_leaf(value: &mut Value, pick: &mut usize, with: &Value) -> bool {
    match value {
        Value::Array(a) => a.iter_mut().any(|v| replace_leaf(v, pick, with)),
        Value::Object(o) => o.values_mut().any(|v| replace_leaf(v, pick, with)),
        leaf => {
            if *pick == 0 {
                *leaf = with.clone();
                return true;
            }
            *pick -= 1;
            false
        }
    }
}

/// A recorded answer with damage: a leaf replaced by any JSON value.
fn mutated_json(name: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let recorded: Value = serde_json::from_slice(&fixture(name)).unwrap();
    (any::<usize>(), json()).prop_map(move |(pick, with)| {
        let mut v = recorded.clone();
        let mut pick = pick % 4096;
        replace_leaf(&mut v, &mut pick, &with);
        serde_json::to_vec(&v).unwrap()
    })
}

/// A recorded answer with bytes flipped, cut or spliced in.
fn mutated_bytes(name: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let recorded = fixture(name);
    (
        prop::collection::vec((any::<usize>(), any::<u8>()), 0..8),
        any::<usize>(),
        prop::collection::vec(any::<u8>(), 0..32),
    )
        .prop_map(move |(flips, cut, splice)| {
            let mut b = recorded.clone();
            for (at, x) in flips {
                let i = at % b.len();
                b[i] ^= x;
            }
            let cut = cut % (b.len() + 1);
            b.splice(cut..cut, splice);
            b
        })
}

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn fuzz_position_answers_never_panic(
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..200),
            mutated_json("open-notify_iss-now.json"),
            mutated_json("wheretheiss_satellites_25544.json"),
            mutated_bytes("wheretheiss_satellites_25544.json"),
        ],
        now in any::<i64>(),
        last in any::<Option<i64>>(),
    ) {
        if let Ok(p) = iss_position_parse::parse_position(&body) {
            prop_assert!((-90.0..=90.0).contains(&p.latitude) && (-180.0..=180.0).contains(&p.longitude));
            let t = |s: i64| chrono::DateTime::from_timestamp(s % 20_000_000_000, 0);
            if let Some(now) = t(now) {
                let _ = iss_position_parse::check_position_time(p.time, now, last.and_then(t));
            }
        }
    }

    #[test]
    fn fuzz_tle_answers_never_panic(
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..200),
            mutated_bytes("celestrak_gp_CATNR25544_FORMAT_TLE.txt"),
            mutated_json("wheretheiss_satellites_25544_tles.full.json"),
            // Two lines of TLE-like characters, checksums and all.
            ("[0-9 .+-]{60,75}", "[0-9 .+-]{60,75}").prop_map(|(a, b)| format!("1{a}\n2{b}\n").into_bytes()),
        ],
    ) {
        if let Ok(tle) = tle_parse::parse_tle(&body) {
            prop_assert!(tle_parse::tle_checksum_ok(&tle.line1) && tle_parse::tle_checksum_ok(&tle.line2));
        }
    }

    #[test]
    fn fuzz_avalanche_answers_never_panic(
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..200),
            mutated_json("nve_AvalancheWarningByRegion_Detail.json"),
            mutated_json("nve_RegionSummary_Simple.json"),
            mutated_bytes("nve_AvalancheWarningByRegion_Detail.json"),
        ],
        time in ".{0,40}",
    ) {
        if let Ok(parsed) = varsom_parse::parse_warnings(&body) {
            for w in parsed.warnings {
                if let outpost::domain::Danger::Level(n) = w.danger_level {
                    prop_assert!(n <= 5, "danger level {n}");
                }
            }
        }
        let _ = varsom_parse::parse_region_summary(&body);
        let _ = varsom_parse::nve_local_time(&time);
    }

    #[test]
    fn fuzz_config_files_and_overrides_never_panic(
        entries in prop::collection::vec((0..KEYS.len(), toml_value()), 0..12),
        env in prop::collection::vec((0..KEYS.len(), ".{0,24}"), 0..4),
        junk in ".{0,80}",
    ) {
        let mut sections: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
        for (k, v) in &entries {
            let (section, key, _) = KEYS[*k];
            sections.entry(section).or_default().push(format!("{key} = {v}"));
        }
        let mut text = String::new();
        for (section, lines) in &sections {
            text.push_str(&format!("[{section}]\n{}\n", lines.join("\n")));
        }
        let env: Vec<(String, String)> = env
            .into_iter()
            .map(|(k, v)| {
                let (section, key, _) = KEYS[k];
                (format!("OUTPOST_{}_{}", section.to_uppercase(), key.to_uppercase()), v)
            })
            .collect();
        if let Ok(c) = Config::parse(&text, "fuzz.toml", env.clone()) {
            // What check-config prints (secrets masked, so it is not meant to parse back).
            let _ = (c.warnings(), c.to_toml());
        }
        let _ = Config::parse(&format!("{text}{junk}"), "fuzz.toml", env);
        let _ = Config::parse(&junk, "junk.toml", Vec::new());
    }
}

/// A TOML value of any of the types config keys take (often the wrong one for the key).
fn toml_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|i| i.to_string()),
        (-1000i64..100_000).prop_map(|i| i.to_string()),
        any::<f64>().prop_map(|f| if f.is_finite() { format!("{f:?}") } else { "nan".into() }),
        Just("inf".to_owned()),
        any::<bool>().prop_map(|b| b.to_string()),
        ".{0,20}".prop_map(|s| format!("{:?}", s)),
        prop::collection::vec(0i64..5000, 0..4).prop_map(|v| format!("{v:?}")),
        prop::collection::vec("[a-z0-9.:]{0,12}", 0..3).prop_map(|v| format!("{v:?}")),
        Just("{ a = 1 }".to_owned()),
    ]
}

/// Percent-encodes every byte, so any string (or invalid UTF-8) reaches the server intact.
fn encode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| if b.is_ascii_alphanumeric() { (*b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

fn one_of(options: &'static [&'static str]) -> impl Strategy<Value = String> + Clone {
    prop::sample::select(options).prop_map(str::to_owned)
}

/// Dates and times at and past every edge: signed and six-digit years (chrono's `%Y` takes them;
/// its last day `+262142-12-31` plus one day panics), years 0 and 9999, leap days, 24:00, leap
/// seconds, offsets no clock has, overlong numbers.
fn extreme_time() -> impl Strategy<Value = String> {
    let year = prop_oneof![
        one_of(&[
            "+262143",
            "+262142",
            "-262144",
            "-262143",
            "+2026",
            "-2026",
            "02026",
            "0000",
            "9999",
            "1999",
            "2000",
            "2100",
            "2101",
            "2024",
            "99999999999999999999",
            "",
        ]),
        "[+-]?[0-9]{1,7}",
    ];
    let month_day = prop_oneof![
        one_of(&["02-29", "02-30", "12-31", "01-01", "00-00", "13-01", "1-1", "12-32", "02-28", "99999999999-01"]),
        "[0-9]{1,3}-[0-9]{1,3}",
    ];
    let time = prop_oneof![
        one_of(&[
            "T24:00:00",
            "T23:59:60",
            "T00:00:00",
            "T12:00:00.999999999999",
            "T25:61:61",
            "t12:00:00",
            " 12:00:00",
            "T23:59:59.999999999",
            "T12:00",
            "T",
        ]),
        "T[0-9]{1,3}:[0-9]{1,3}:[0-9]{1,3}",
    ];
    let offset = one_of(&[
        "Z",
        "z",
        "",
        "+23:59",
        "-23:59",
        "+24:00",
        "+99:99",
        "+2147483647:00",
        "-9223372036854775808",
        "+00:00",
        "+0000000000000000000",
        "-00:01",
    ]);
    prop_oneof![
        (year, month_day, prop::option::of((time, offset))).prop_map(|(y, md, t)| {
            let t = t.map_or(String::new(), |(t, o)| format!("{t}{o}"));
            format!("{y}-{md}{t}")
        }),
        // chrono's own ends, whatever version: the days where its arithmetic stops.
        Just(chrono::NaiveDate::MAX.to_string()),
        Just(chrono::NaiveDate::MIN.to_string()),
        Just(chrono::DateTime::<chrono::Utc>::MAX_UTC.to_rfc3339()),
        Just(chrono::DateTime::<chrono::Utc>::MIN_UTC.to_rfc3339()),
    ]
}

/// A query value, as it goes into the URL: mostly percent-encoded (any bytes, invalid UTF-8
/// included, reach the server intact), sometimes raw (a `+` is a space; broken `%` escapes).
fn query_value() -> impl Strategy<Value = String> {
    let encoded = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..24),
        ".{0,24}".prop_map(String::into_bytes),
        any::<i64>().prop_map(|i| i.to_string().into_bytes()),
        any::<u64>().prop_map(|i| i.to_string().into_bytes()),
        any::<f64>().prop_map(|f| f.to_string().into_bytes()),
        "[0-9]{20,60}".prop_map(String::into_bytes),
        one_of(&[
            "NaN",
            "inf",
            "-0",
            "1e999",
            "true",
            "false",
            "",
            "iss",
            "tle",
            "avalanche",
            "weather",
            "features",
            "cql",
            "csv",
            "jsonl"
        ])
        .prop_map(String::into_bytes),
        "[0-9]{1,6}-[0-9]{1,2}-[0-9]{1,2}".prop_map(String::into_bytes),
        "[0-9]{4}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-9]{2}(\\.[0-9]{1,12})?(Z|[+-][0-9]{2}:[0-9]{2})"
            .prop_map(String::into_bytes),
        extreme_time().prop_map(String::into_bytes),
        extreme_time().prop_map(String::into_bytes),
    ]
    .prop_map(|v| encode(&v));
    let raw = prop_oneof![
        one_of(&[
            "%",
            "%%",
            "%zz",
            "%2",
            "%C3%28",
            "%FF%FE%FD",
            "%00",
            "%E2%82",
            "%ED%A0%80",
            "%C0%AF",
            "%25%32%42",
            "%2B2026-01-01",
            "%2B262142-12-31",
            "+262142-12-31",
            "+2026-01-01",
            "-2026-01-01",
            "2026-01-01+",
        ]),
        extreme_time().prop_map(|t| t.replace(' ', "+")),
    ];
    prop_oneof![4 => encoded, 1 => raw]
}

/// Every path and the parameters it knows (unknown ones are generated too).
const ROUTES: &[(&str, &[&str])] = &[
    ("/", &[]),
    ("/avalanche", &["date", "region"]),
    ("/status", &[]),
    ("/api/iss/latest", &[]),
    ("/api/iss/track", &["from", "to", "max_points"]),
    ("/api/iss/predicted", &["from", "to", "step_s"]),
    ("/api/avalanche", &["date"]),
    ("/api/weather", &["date", "region"]),
    ("/api/status", &[]),
    ("/api/export", &["kind", "format", "from", "to"]),
    ("/api/passes", &["from", "hours", "all", "min_elevation", "sun_limit", "lat", "lon", "alt_m", "path"]),
    ("/metrics", &[]),
    ("/healthz", &[]),
    ("/api/events", &[]),
    ("/static/", &[]),
];

/// `Last-Event-ID` values a reconnecting browser would never send.
fn last_event_id() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        one_of(&[
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999999999",
            "-1",
            "-0",
            "0",
            " 3 ",
            "abc",
            "1e3",
            "0x10",
            "",
            "+5",
            "9223372036854775808",
        ])
        .prop_map(String::into_bytes),
        any::<u64>().prop_map(|n| n.to_string().into_bytes()),
        any::<i64>().prop_map(|n| n.to_string().into_bytes()),
        // Any byte a header value may carry (visible ASCII, tab, and obs-text 0x80..=0xFF).
        prop::collection::vec(prop_oneof![0x20u8..0x7f, 0x80u8..=0xff, Just(b'\t')], 0..24),
    ]
}

/// What follows `/static/`: real files, traversal in every spelling, junk.
fn static_path() -> impl Strategy<Value = String> {
    prop_oneof![
        one_of(&[
            "style.css",
            "map.js",
            "..%2f..%2fCargo.toml",
            "..%2F..%2F..%2Fetc%2Fpasswd",
            "%2e%2e/%2e%2e/Cargo.toml",
            "../../Cargo.toml",
            "..%5c..%5cCargo.toml",
            "style.css%00",
            "style.css%00.png",
            "%2fetc%2fpasswd",
            "vendor/leaflet/../../../Cargo.toml",
            "vendor%2fleaflet%2fleaflet.js",
            "%C0%AE%C0%AE/Cargo.toml",
            "%FF",
            "",
            "/",
            "//etc/passwd",
        ]),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(|b| encode(&b)),
        "[a-z./%0-9]{0,40}",
    ]
}

/// A request: route, its parameters (`(known name index, unknown name, value)`), a static path,
/// a `Last-Event-ID`, and for `/api/export` valid `kind` and `format` first (or not), so that the
/// dates behind them are reached.
type Case = (usize, Vec<(usize, String, String)>, String, Option<Vec<u8>>, Option<(String, String)>);

fn case() -> impl Strategy<Value = Case> {
    (
        0..ROUTES.len(),
        prop::collection::vec((0..12usize, ".{0,8}", query_value()), 0..5),
        static_path(),
        prop::option::of(last_event_id()),
        prop::option::weighted(
            0.8,
            (one_of(&["iss", "tle", "avalanche", "weather", "features"]), one_of(&["cql", "csv", "jsonl"])),
        ),
    )
}

/// The seed of the HTTP fuzz: fixed, so a run is repeatable; `OUTPOST_DRILL_SEED` explores others.
fn http_fuzz_seed() -> u64 {
    let seed = std::env::var("OUTPOST_DRILL_SEED").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(15);
    eprintln!("http fuzz: seed {seed} (replay with OUTPOST_DRILL_SEED={seed})");
    seed
}

const HTTP_CASES: u32 = 1200;

/// The one 5xx a request may get: `/api/passes` asked for a window its newest TLE does not fit
/// (`passes::freshness`), answered with the TLE's epoch and age.
fn unusable_tle(code: u16, body: &[u8]) -> bool {
    let body: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    code == 503 && body["tle_epoch"].is_string() && body["tle_age_days"].is_number()
}

#[tokio::test]
async fn fuzz_http_requests_never_get_a_5xx() {
    let fx = FixtureServer::start().await;
    let base = chrono::Utc::now() - chrono::Duration::minutes(20);
    fx.generate("/iss-now.json", move |n| {
        Reply::ok(open_notify(base + chrono::Duration::seconds(n as i64), "51.5", "-0.1"))
    });
    // Four days old: the made-up positions above are not held against its orbit (a TLE within 3 days is).
    fx.script("/tle", vec![Reply::ok(crate::email::tle_at(chrono::Utc::now() - chrono::Duration::days(4)))]);
    fx.script("/nve", vec![Reply::ok(fixture("nve_AvalancheWarningByRegion_Detail.json"))]);
    let dir = tempfile::tempdir().unwrap();
    let extra = "[location]\nlatitude = 59.9\nlongitude = 10.7\n";
    let mut app = Outpost::start(dir.path(), &config(&fx, &dir.path().join("store"), extra)).await;
    app.wait_for("every kind stored", 30, |s| stored(s, "iss.tle") == 1 && stored(s, "avalanche.warning") == 5).await;
    let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(60)).build().unwrap();
    let started = std::time::Instant::now();

    // The requests of issue 15, each once: chrono's last day, where `+ 1 day` panicked.
    let last = encode(chrono::NaiveDate::MAX.to_string().as_bytes());
    for path in [
        format!("/api/iss/track?to={last}"),
        format!("/api/iss/track?from={last}"),
        format!("/api/iss/predicted?from={last}"),
        format!("/api/iss/predicted?to={last}"),
        "/api/iss/track?to=%2B262143-12-31".to_owned(),
        format!("/avalanche?date={last}"),
        format!("/api/avalanche?date={last}"),
        format!("/api/weather?date={last}"),
        format!("/api/passes?from={last}"),
        format!("/api/export?kind=iss&format=jsonl&to={last}"),
        "/api/passes?from=%2B2026-12-01".to_owned(),
        "/api/iss/track?from=-2026-12-01".to_owned(),
    ] {
        let url = format!("http://{}{path}", app.addr);
        let r = http.get(&url).send().await.unwrap_or_else(|e| panic!("{url}: no answer ({e})\n{}", app.log()));
        let code = r.status().as_u16();
        let body = r.text().await.unwrap_or_default();
        assert_eq!(code, 400, "{url}: {body}");
        assert!(body.contains("is not a date") || body.contains("neither RFC 3339"), "{url}: {body}");
    }
    // The edges of the range are answered (the passes far from the TLE's epoch as a 4xx, or as
    // the 503 that names the TLE's epoch and age).
    for path in [
        "/api/passes?from=2100-12-31T23:59:59Z&hours=336&all=true&path=true",
        "/api/passes?from=2000-01-01&hours=336&all=true",
        "/api/iss/track?from=2000-01-01&to=2100-12-31",
        "/api/iss/predicted?from=2100-12-31T23:59:59Z&to=2100-12-31&step_s=1",
        "/api/iss/predicted?from=2000-01-01&step_s=3600",
        "/avalanche?date=2100-12-31",
        "/avalanche?date=2000-01-01",
        "/api/export?kind=iss&format=csv&from=2000-01-01&to=2100-12-31",
    ] {
        let url = format!("http://{}{path}", app.addr);
        let r = http.get(&url).send().await.unwrap_or_else(|e| panic!("{url}: no answer ({e})\n{}", app.log()));
        let code = r.status().as_u16();
        let body = r.text().await.unwrap_or_default();
        assert!(
            code == 200 || (400..500).contains(&code) || unusable_tle(code, body.as_bytes()),
            "{url}: {code} {body}"
        );
        eprintln!("edge {path}: {code} {}", body.chars().take(200).collect::<String>());
    }

    let mut runner = TestRunner::new_with_rng(
        RunConfig::default(),
        TestRng::from_seed(proptest::test_runner::RngAlgorithm::ChaCha, &{
            let mut s = [0u8; 32];
            s[..8].copy_from_slice(&http_fuzz_seed().to_le_bytes());
            s
        }),
    );
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..HTTP_CASES {
        let (route, params, static_tail, event_id, export) = case().new_tree(&mut runner).unwrap().current();
        let (path, known) = ROUTES[route];
        let export = export.filter(|_| path == "/api/export");
        let pairs: Vec<String> = export
            .map(|(kind, format)| [format!("kind={kind}"), format!("format={format}")])
            .into_iter()
            .flatten()
            .chain(params.iter().map(|(k, unknown, v)| {
                let key = known.get(*k).map_or(encode(unknown.as_bytes()), |k| k.to_string());
                format!("{key}={v}")
            }))
            .collect();
        let path_part = if path == "/static/" { format!("/static/{static_tail}") } else { path.to_owned() };
        let url = format!("http://{}{path_part}?{}", app.addr, pairs.join("&"));
        let mut request = http.get(&url);
        let event_id = event_id.and_then(|v| reqwest::header::HeaderValue::from_bytes(&v).ok());
        if let Some(v) = &event_id {
            request = request.header("last-event-id", v.clone());
        }
        let r = request.send().await.unwrap_or_else(|e| panic!("{url}: no answer ({e})\n{}", app.log()));
        let code = r.status().as_u16();
        let what = format!("{url} (Last-Event-ID {event_id:?})");
        if path == "/api/events" && code == 200 {
            // A stream never ends: the status and type are the answer; dropping it hangs up.
            let content_type = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
            assert!(content_type.starts_with("text/event-stream"), "{what}: {content_type}");
        } else {
            let body = r.bytes().await.unwrap_or_else(|e| panic!("{what}: the answer broke off ({e})\n{}", app.log()));
            assert!(
                (200..300).contains(&code) || (400..500).contains(&code) || unusable_tle(code, &body),
                "{what}: {code} {}",
                String::from_utf8_lossy(&body)
            );
            if path == "/static/" && code == 200 {
                // Only embedded files are served, whatever the path spells.
                let text = String::from_utf8_lossy(&body);
                assert!(!text.contains("[package]") && !text.contains("root:x:0"), "{what} served a file from disk");
            }
        }
        *seen.entry((path, code)).or_insert(0) += 1;
    }
    let elapsed = started.elapsed();
    eprintln!("http fuzz: {HTTP_CASES} requests in {elapsed:?}; answers by route and status: {seen:?}");
    for (path, _) in ROUTES {
        assert!(seen.keys().any(|(p, _)| p == path), "{path} was never requested");
    }
    for path in [
        "/api/iss/track",
        "/api/iss/predicted",
        "/avalanche",
        "/api/avalanche",
        "/api/weather",
        "/api/export",
        "/api/passes",
    ] {
        assert!(seen.contains_key(&(path, 200)) && seen.contains_key(&(path, 400)), "{path}: only {seen:?}");
    }
    assert_eq!(app.try_exited(), None, "the appliance exited\n{}", app.log());
    assert_eq!(app.get("/healthz").await.0, 200);
    assert!(!app.log().contains("panicked"), "{}", app.log());
    assert!(app.stop().await.success());
}
