use super::*;
use crate::config::{Secret, line_of};
use crate::sources::varsom::CLASS_A_REGIONS;
use std::path::PathBuf;
use std::time::Duration;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, "test.toml", Vec::<(String, String)>::new())
}

fn parse_env(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::parse(text, "test.toml", env.iter().map(|(k, v)| (k.to_string(), v.to_string())))
}

#[test]
fn the_embedded_default_is_valid_and_matches_the_documented_defaults() {
    let c = Config::load(None, Vec::new()).unwrap();
    let empty = parse("").unwrap();
    assert_eq!(c.to_toml(), empty.to_toml(), "example file and code defaults disagree");
    assert_eq!(c.store.commit_interval_s, 10);
    assert!(c.store.verify_on_start, "a damaged store is refused unless the user opts out");
    assert_eq!(c.sources.iss.poll_interval_s, 10);
    assert_eq!(c.sources.varsom.backfill_days, 7);
    assert_eq!(c.sources.varsom.regions, CLASS_A_REGIONS);
    assert_eq!(c.web.listen, "127.0.0.1:8080");
    assert_eq!(c.store.path, PathBuf::from("./data"));
    assert!(!c.station.id.is_empty());
}

#[test]
fn every_key_in_the_schema_is_documented_in_the_example() {
    for (section, key, _) in Config::keys() {
        assert!(
            line_of(DEFAULT_TOML, &format!("{section}.{key}")).is_some()
                || DEFAULT_TOML.contains(&format!("# {key} =")),
            "{section}.{key} is not in outpost.example.toml"
        );
    }
}

#[test]
fn a_wrong_type_names_the_key_and_line() {
    let e = parse("[store]\npath = \"/tmp/x\"\ncommit_interval_s = \"often\"\n").unwrap_err();
    assert_eq!(e.key.as_deref(), Some("store.commit_interval_s"));
    assert_eq!(e.line, Some(3));
    assert!(e.to_string().contains("line 3"), "{e}");
}

#[test]
fn an_unknown_key_is_an_error_that_names_it() {
    let e = parse("[iss]\npoll_interval = 5\n").unwrap_err();
    assert!(e.message.contains("poll_interval"), "{e}");
    assert_eq!(e.key.as_deref(), Some("iss.poll_interval"));
    assert_eq!(e.line, Some(2));
    let e = parse("[isss]\n").unwrap_err();
    assert!(e.message.contains("isss"), "{e}");
    assert_eq!(e.line, Some(1));
    let e = parse("# comment\nstray = 1\n[web]\n").unwrap_err();
    assert_eq!((e.key.as_deref(), e.line), (Some("stray"), Some(2)), "{e}");
}

#[test]
fn a_syntax_error_has_a_line() {
    let e = parse("[web]\nlisten = \"127.0.0.1:8080\n").unwrap_err();
    assert_eq!(e.line, Some(2), "{e}");
}

#[test]
fn impossible_values_are_refused_with_key_and_line() {
    for (text, key, line) in [
        ("[location]\nlatitude = 91.0\nlongitude = 10.0\n", "location.latitude", 2),
        ("[location]\nlatitude = 60.0\n", "location.longitude", 0),
        ("[varsom]\nlang = 3\n", "varsom.lang", 2),
        ("[varsom]\nregions = [3022, 42]\n", "varsom.regions", 2),
        ("[web]\nlisten = \"localhost\"\n", "web.listen", 2),
        ("[store]\ncommit_interval_s = 0\n", "store.commit_interval_s", 2),
        ("[iss]\nposition_url = \"ftp://x\"\n", "iss.position_url", 2),
        ("[location]\ngpsd = \"nohost\"\n", "location.gpsd", 2),
        ("[mqtt]\nurl = \"mqtt://user:pw@h:1883\"\n", "mqtt.url", 2),
        ("[kafka]\nbrokers = [\"nohost\"]\n", "kafka.brokers", 2),
        ("[cassandra]\nkeyspace = \"drop table\"\n", "cassandra.keyspace", 2),
        ("[station]\nid = \"a+b\"\n", "station.id", 2),
        ("[web]\nusername = \"a:b\"\npassword = \"x\"\n", "web.username", 2),
        ("[web]\ntile_url = \"tiles.example/{z}/{x}/{y}.png\"\n", "web.tile_url", 2),
        ("[web]\ntile_url = \"https://tiles.example/map.png\"\n", "web.tile_url", 2),
    ] {
        let e = parse(text).unwrap_err();
        assert_eq!(e.key.as_deref(), Some(key), "{text}: {e}");
        assert_eq!(e.line, (line > 0).then_some(line), "{text}: {e}");
    }
}

#[test]
fn environment_overrides_the_file_with_typed_values() {
    let c = parse_env(
        "[store]\ncommit_interval_s = 10\n",
        &[
            ("OUTPOST_STORE_COMMIT_INTERVAL_S", "30"),
            ("OUTPOST_VARSOM_REGIONS", "3011, 3022"),
            ("OUTPOST_LOCATION_LATITUDE", "69.65"),
            ("OUTPOST_LOCATION_LONGITUDE", "18.96"),
            ("OUTPOST_WEB_LISTEN", "0.0.0.0:9000"),
            ("OUTPOST_STATION_ID", "pi-1"),
            ("OUTPOST_STORE_VERIFY_ON_START", "false"),
            ("OUTPOST_TEST_SOMETHING", "ignored"),
            ("PATH", "/usr/bin"),
        ],
    )
    .unwrap();
    assert_eq!(c.store.commit_interval_s, 30);
    assert_eq!(c.sources.varsom.regions, vec![3011, 3022]);
    assert_eq!(c.location.latitude, Some(69.65));
    assert_eq!(c.web.listen, "0.0.0.0:9000");
    assert_eq!(c.station.id, "pi-1");
    assert!(!c.store.verify_on_start);
}

#[test]
fn a_bad_environment_value_names_the_variable() {
    let e = parse_env("", &[("OUTPOST_STORE_COMMIT_INTERVAL_S", "soon")]).unwrap_err();
    assert!(e.to_string().contains("OUTPOST_STORE_COMMIT_INTERVAL_S"), "{e}");
    let e = parse_env("", &[("OUTPOST_LOCATION_LATITUDE", "123"), ("OUTPOST_LOCATION_LONGITUDE", "1")]).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("location.latitude"));
}

#[test]
fn secrets_never_print() {
    let s = Secret::new("hunter2");
    assert_eq!(format!("{s} {s:?}"), "******** \"********\"");
    assert_eq!(serde_json::to_string(&s).unwrap(), "\"********\"");
    assert_eq!(s.expose(), "hunter2");
}

#[test]
fn celestrak_refresh_is_never_under_two_hours() {
    let c = parse("[iss]\ntle_refresh_h = 0.5\n").unwrap();
    assert_eq!(c.sources.iss.tle_refresh(), Duration::from_secs(7200));
    assert!(c.warnings().iter().any(|w| w.contains("2 h")));
    let c = parse("[iss]\ntle_refresh_h = 0.5\ntle_url = \"http://127.0.0.1:1/tle\"\n").unwrap();
    assert_eq!(c.sources.iss.tle_refresh(), Duration::from_secs(1800));
}

#[test]
fn secrets_come_from_a_file_or_the_environment_and_never_print() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kafka.pass");
    std::fs::write(&file, "s3cret-from-file\n").unwrap();
    let text = format!(
        "[kafka]\nbrokers = [\"k1:9092\"]\nsasl_username = \"u\"\nsasl_password_file = \"{}\"\n",
        file.display()
    );
    let c = parse(&text).unwrap();
    assert_eq!(c.sinks.kafka.sasl_password.expose(), "s3cret-from-file");
    let c2 = parse_env("", &[("OUTPOST_MQTT_URL", "mqtt://h:1883"), ("OUTPOST_MQTT_PASSWORD", "hunter2")]).unwrap();
    assert_eq!(c2.sinks.mqtt.password.expose(), "hunter2");
    for shown in [c.to_toml(), format!("{c:?}"), c2.to_toml(), format!("{c2:?}")] {
        assert!(!shown.contains("s3cret") && !shown.contains("hunter2"), "{shown}");
    }
    let e = parse("[kafka]\nsasl_password_file = \"/nonexistent/p\"\n").unwrap_err();
    assert_eq!(e.key.as_deref(), Some("kafka.sasl_password_file"));
    assert!(!e.to_string().contains("hunter2"));
}

#[test]
fn every_key_of_every_section_is_in_the_readme_table() {
    let readme = include_str!("../../README.md");
    let table: Vec<&str> = readme.lines().filter(|l| l.starts_with("| `")).collect();
    for (section, key, _) in Config::keys() {
        let name = format!("`{section}.{key}`");
        assert!(
            table.iter().any(|row| row.split('|').nth(1).is_some_and(|c| c.contains(&name))),
            "{name} is not in the README's configuration table"
        );
    }
}

#[test]
fn choices_are_parsed_once_into_their_enums() {
    use crate::alerts::Security;
    use crate::sinks::cassandra::Consistency;
    use crate::sinks::kafka::{Compression, SaslMechanism};
    let c = parse(
        "[kafka]\ncompression = \"zstd\"\nsasl_mechanism = \"scram-sha-512\"\n[cassandra]\nconsistency = \"local_one\"\n[email]\nsecurity = \"tls\"\n",
    )
    .unwrap();
    assert_eq!(c.sinks.kafka.compression, Compression::Zstd);
    assert_eq!(c.sinks.kafka.sasl_mechanism, SaslMechanism::ScramSha512);
    assert_eq!(c.sinks.cassandra.consistency, Consistency::LocalOne);
    assert_eq!(c.email.security, Security::Tls);
    for (text, key) in [
        ("[kafka]\ncompression = \"brotli\"\n", "kafka.compression"),
        ("[kafka]\nsasl_mechanism = \"gssapi\"\n", "kafka.sasl_mechanism"),
        ("[cassandra]\nconsistency = \"most\"\n", "cassandra.consistency"),
        ("[email]\nsecurity = \"ssl\"\n", "email.security"),
    ] {
        let e = parse(text).unwrap_err();
        assert_eq!(e.key.as_deref(), Some(key), "{text}: {e}");
        assert_eq!(e.line, Some(2), "{text}: {e}");
        assert!(e.message.contains("unknown variant"), "{text}: {e}");
    }
}

#[test]
fn host_port_lists_are_checked_at_load_and_name_the_key() {
    let c = parse("[kafka]\nbrokers = [\"k1:9092\", \"[::1]:9093\"]\n").unwrap();
    assert_eq!(c.sinks.kafka.brokers.iter().map(ToString::to_string).collect::<Vec<_>>(), ["k1:9092", "[::1]:9093"]);
    let e = parse("[cassandra]\nnodes = [\"c1:9042\", \"c2\"]\n").unwrap_err();
    assert_eq!((e.key.as_deref(), e.line), (Some("cassandra.nodes"), Some(2)), "{e}");
    assert!(e.message.contains("\"c2\" is not host:port"), "{e}");
    let e = parse_env("", &[("OUTPOST_KAFKA_BROKERS", "k1:9092,oops")]).unwrap_err();
    assert!(e.to_string().contains("OUTPOST_KAFKA_BROKERS"), "{e}");
}

#[test]
fn a_secret_that_is_not_a_string_is_refused_without_its_value() {
    let secrets = Config::keys().into_iter().filter(|k| k.2 == crate::config::KeyType::Secret).collect::<Vec<_>>();
    assert_eq!(secrets.len(), 6, "web, email, push, kafka, mqtt, cassandra: {secrets:?}");
    for (section, key, _) in secrets {
        for value in ["918273645", "[918273645, 2]", "{ x = 918273645 }", "9182.73645", "true"] {
            let Err(e) = parse(&format!("[{section}]\n{key} = {value}\n")) else {
                panic!("{section}.{key} = {value} accepted")
            };
            let shown = format!("{e} {e:?}");
            assert!(!shown.contains("918273645") && !shown.contains("9182.7"), "{shown}");
            assert_eq!((e.key.as_deref(), e.line), (Some(format!("{section}.{key}").as_str()), Some(2)), "{shown}");
            let var = format!("OUTPOST_{section}_{key}").to_ascii_uppercase();
            assert!(e.message.contains("must be a string") && e.message.contains(&var), "{shown}");
            assert!(e.message.contains(&format!("`{key}_file")), "{shown}");
        }
    }
}

#[test]
fn a_syntax_error_on_a_secret_line_does_not_show_the_line() {
    for line in [
        "password = \"hunter2",
        "password = hunter2",
        "password = \"hunter2\"hunter2",
        "password = 'hunter2",
        "password = \"\"\"hunter2",
        "password = \"hunter2\\q\"",
        "password = [\"hunter2\"",
        "password = \"hunter2\u{7}\"",
    ] {
        let e = parse(&format!("[web]\nusername = \"u\"\n{line}\n")).unwrap_err();
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains("hunter"), "{line}: {shown}");
        assert_eq!(e.line, Some(3), "{line}: {shown}");
    }
}

#[test]
fn web_auth_half_set_is_a_problem_for_run_only() {
    // Loading succeeds (status, export, ... are run without the service's env file).
    let c = parse("[web]\nusername = \"ada\"\n").unwrap();
    assert!(c.web_auth_problem().unwrap().contains("web.password is not set"));
    let c = parse("[web]\npassword = \"x\"\n").unwrap();
    assert!(c.web_auth_problem().unwrap().contains("web.username is not set"));
    let c = parse_env("[web]\nusername = \"ada\"\n", &[("OUTPOST_WEB_PASSWORD", "pw")]).unwrap();
    assert_eq!(c.web_auth_problem(), None);
    assert_eq!(parse("").unwrap().web_auth_problem(), None);
}

#[test]
fn alert_channels_must_be_set_up_and_alert_regions_followed() {
    let email = "[email]\nsmtp_host = \"mx\"\nfrom = \"o@x.org\"\nto = [\"me@x.org\"]\n";
    let push = "[push]\nurl = \"https://ntfy.sh/t\"\n";
    for (text, key) in [
        ("[email]\npush = true\n".to_owned(), "email.push"),
        ("[avalanche_alerts]\npush = true\n".to_owned(), "avalanche_alerts.push"),
        (format!("{push}[avalanche_alerts]\nemail = true\n"), "avalanche_alerts.email"),
        (format!("{push}[avalanche_alerts]\npush = true\nregions = [3999]\n"), "avalanche_alerts.regions"),
        ("[avalanche_alerts]\nmin_level = 0\n".to_owned(), "avalanche_alerts.min_level"),
        ("[push]\nurl = \"ntfy.sh/t\"\n".to_owned(), "push.url"),
    ] {
        let e = parse(&text).unwrap_err();
        assert_eq!(e.key.as_deref(), Some(key), "{text}: {e}");
    }
    let c =
        parse(&format!("{email}push = true\n{push}[avalanche_alerts]\nemail = true\npush = true\nregions = [3022]\n"))
            .unwrap();
    assert!(c.email.push && c.avalanche_alerts.email && c.avalanche_alerts.push);
    // The token from the environment, never shown; the URL becomes its role in shown errors.
    let c = parse_env(push, &[("OUTPOST_PUSH_TOKEN", "tk_env_secret")]).unwrap();
    assert_eq!(c.push.token.expose(), "tk_env_secret");
    assert!(!c.to_toml().contains("tk_env_secret") && !format!("{c:?}").contains("tk_env_secret"));
    assert_eq!(c.redactor().apply("POST https://ntfy.sh/t failed"), "POST <push url> failed");
}
