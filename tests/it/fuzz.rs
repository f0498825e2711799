//! Fault drill: random input (proptest, a bounded number of cases) into everything that parses
//! what the outside world sends: the upstream answer parsers, TLE parsing, config loading with
//! environment overrides, and the HTTP query parameters of the running appliance. Nothing may
//! panic; the parsers and the config answer with a value or an error, the web server with 200,
//! 400, 404 or 503, never 500 or a dropped connection.

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

fn cfg() -> ProptestConfig {
    ProptestConfig { cases: CASES, failure_persistence: None, ..ProptestConfig::default() }
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

/// Query values that parameter parsers trip over.
fn query_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..24),
        ".{0,24}".prop_map(String::into_bytes),
        any::<i64>().prop_map(|i| i.to_string().into_bytes()),
        any::<f64>().prop_map(|f| f.to_string().into_bytes()),
        prop_oneof![Just("NaN"), Just("inf"), Just("-0"), Just("1e999"), Just("true"), Just("false"), Just("")]
            .prop_map(|s| s.as_bytes().to_vec()),
        "[0-9]{1,6}-[0-9]{1,2}-[0-9]{1,2}".prop_map(String::into_bytes),
        "[0-9]{4}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-9]{2}(\\.[0-9]{1,12})?(Z|[+-][0-9]{2}:[0-9]{2})"
            .prop_map(String::into_bytes),
    ]
}

const ROUTES: &[(&str, &[&str])] = &[
    ("/api/iss/track", &["from", "to", "max_points"]),
    ("/api/avalanche", &["date"]),
    ("/avalanche", &["date", "region"]),
    ("/api/passes", &["from", "hours", "all", "min_elevation", "sun_limit", "lat", "lon", "alt_m", "path"]),
    ("/api/export", &["kind", "format", "from", "to"]),
    ("/api/iss/latest", &[]),
    ("/status", &[]),
];

#[tokio::test]
async fn fuzz_http_query_parameters_never_get_a_500() {
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
    let app = Outpost::start(dir.path(), &config(&fx, &dir.path().join("store"), extra)).await;
    app.wait_for("every kind stored", 30, |s| stored(s, "iss.tle") == 1 && stored(s, "avalanche.warning") == 5).await;

    let query = (0..ROUTES.len(), prop::collection::vec((0..12usize, ".{0,8}", query_value()), 0..5));
    let seed = crate::drills::rng("http fuzz").u64(..);
    let mut runner = TestRunner::new_with_rng(
        RunConfig::default(),
        TestRng::from_seed(proptest::test_runner::RngAlgorithm::ChaCha, &{
            let mut s = [0u8; 32];
            s[..8].copy_from_slice(&seed.to_le_bytes());
            s
        }),
    );
    let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(60)).build().unwrap();
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..CASES {
        let (route, params) = query.new_tree(&mut runner).unwrap().current();
        let (path, known) = ROUTES[route];
        let pairs: Vec<String> = params
            .iter()
            .map(|(k, unknown, v)| {
                let key = known.get(*k).map_or(encode(unknown.as_bytes()), |k| k.to_string());
                format!("{key}={}", encode(v))
            })
            .collect();
        let url = format!("http://{}{path}?{}", app.addr, pairs.join("&"));
        let r = http.get(&url).send().await.unwrap_or_else(|e| panic!("{url}: no answer ({e})\n{}", app.log()));
        let code = r.status().as_u16();
        let body = r.bytes().await.unwrap_or_else(|e| panic!("{url}: the answer broke off ({e})\n{}", app.log()));
        assert!(matches!(code, 200 | 400 | 404 | 503), "{url}: {code} {}", String::from_utf8_lossy(&body));
        *seen.entry((path, code)).or_insert(0) += 1;
    }
    eprintln!("http fuzz: answers by route and status: {seen:?}");
    assert_eq!(app.get("/healthz").await.0, 200);
    assert!(!app.log().contains("panicked"), "{}", app.log());
    assert!(app.stop().await.success());
}
