//! The Kafka sink as a production connector, against a real Apache Kafka 4 broker
//! (tests/it/servers.rs) and read back with kafka-python: produce requests bounded in bytes, a
//! record the broker cannot take set aside, topics a producer may not create, TLS with a private
//! CA and the host name checked, and no broker address in the errors.

use crate::helpers::*;
use crate::kafka::read_all;
use crate::servers::*;
use crate::upstreams::*;
use chrono::{Duration, Utc};
use outpost::domain::Record;
use outpost::sources::varsom::CLASS_A_REGIONS;
use outpost::store::{Store, StoreOptions};
use serde_json::Value;
use std::path::Path;

const TOPICS: [&str; 4] =
    ["outpost.iss.position", "outpost.iss.tle", "outpost.avalanche.warning", "outpost.weather.daily"];

fn sink(s: &Value) -> &Value {
    &s["sinks"]["kafka"]
}

fn backlog(s: &Value) -> u64 {
    sink(s)["backlog"].as_u64().unwrap_or(u64::MAX)
}

fn last_error(s: &Value) -> String {
    sink(s)["last_error"].as_str().unwrap_or_default().to_owned()
}

/// What goes into a test store, in log order.
enum Fill {
    /// `n` positions 10 s apart.
    Positions(usize),
    /// `days` days of warnings for every class-A region (the recorded NVE warning, re-dated),
    /// each with its main text padded to `text_bytes`.
    Warnings { days: i64, text_bytes: usize },
    /// One warning whose main text is `bytes` long.
    Huge(usize),
}

/// Fills a new store in `dir`; returns the number of records.
async fn fill(dir: &Path, parts: Vec<Fill>) -> u64 {
    write_store(dir, move |handle| {
        let parsed =
            outpost::sources::varsom_parse::parse_warnings(&fixture("nve_AvalancheWarningByRegion_Detail.json"));
        let template = parsed.unwrap().warnings.remove(0);
        let mut t = Utc::now() - Duration::days(61);
        let mut reg_id = 900_000;
        let mut warning = |date: chrono::DateTime<Utc>, region: u32, text: usize| {
            let mut w = template.clone();
            reg_id += 1;
            w.reg_id = reg_id;
            w.region_id = region;
            w.valid_date = date.date_naive();
            w.publish_time = date;
            w.main_text = format!("{} {}", w.main_text, "x".repeat(text.saturating_sub(w.main_text.len())));
            Record::AvalancheWarning(w)
        };
        for part in parts {
            match part {
                Fill::Positions(n) => {
                    for i in 0..n {
                        t += Duration::seconds(10);
                        handle.append(simulated_position(t, i));
                    }
                }
                Fill::Warnings { days, text_bytes } => {
                    for day in 0..days {
                        for region in CLASS_A_REGIONS {
                            handle.append(warning(t + Duration::days(day), *region, text_bytes));
                        }
                    }
                }
                Fill::Huge(bytes) => {
                    t += Duration::seconds(10);
                    handle.append(warning(t, 3022, bytes));
                }
            }
        }
    })
    .await
}

fn kafka_toml(port: u16, extra: &str) -> String {
    format!("[kafka]\nbrokers = [\"127.0.0.1:{port}\"]\n{extra}")
}

#[tokio::test]
async fn a_60_day_backfill_of_all_class_a_regions_syncs_in_requests_under_the_brokers_limit() {
    let dir = tempfile::tempdir().unwrap();
    let total = fill(dir.path(), vec![Fill::Positions(3_000), Fill::Warnings { days: 60, text_bytes: 4_000 }]).await;
    // A broker with the default limits (message.max.bytes = 1 MB).
    let broker = ApacheKafka::start(KafkaOpts::default()).await;
    let fx = FixtureServer::start().await;
    let cfg = config(&fx, dir.path(), &kafka_toml(broker.port, "batch_size = 1000\n"));
    let app = Outpost::start(dir.path(), &cfg).await;
    let s = app.wait_for("the back-fill to drain", 240, |s| backlog(s) == 0 && sink(s)["connected"] == true).await;
    assert_eq!(sink(&s)["dead_letters"], 0, "nothing set aside: {s}");
    assert!(app.stop().await.success());
    assert_eq!(stored_cursor(dir.path(), "kafka"), total);

    let (all, keys) = read_all(broker.port).await;
    assert_eq!(all.len() as u64, total, "every record once");
    assert!(keys.values().all(|n| *n == 1), "exactly once per key");
    let warnings: Vec<&Value> =
        all.iter().filter(|(_, m)| m["value"]["kind"] == "avalanche.warning").map(|(_, m)| m).collect();
    assert_eq!(warnings.len(), 60 * CLASS_A_REGIONS.len());
    // One produce of a whole batch would have been far over the broker's 1 MB.
    let bytes: usize = warnings.iter().take(1000).map(|m| m["value"].to_string().len()).sum();
    assert!(bytes > 3 * 1_048_588, "a batch of warnings is {bytes} bytes: the test proves nothing");
}

#[tokio::test]
async fn a_record_the_broker_cannot_take_is_set_aside_and_the_records_after_it_arrive() {
    let dir = tempfile::tempdir().unwrap();
    // Over the broker's message.max.bytes (20,000), under max_request_bytes: refused by the
    // broker; over max_request_bytes: refused before it is sent.
    let total = fill(
        dir.path(),
        vec![
            Fill::Positions(2_000),
            Fill::Huge(30_000),
            Fill::Positions(2_000),
            Fill::Huge(1_000_000),
            Fill::Warnings { days: 2, text_bytes: 2_000 },
            Fill::Positions(500),
        ],
    )
    .await;
    let broker =
        ApacheKafka::start(KafkaOpts { extra_properties: "message.max.bytes=20000\n".into(), ..KafkaOpts::default() })
            .await;
    let fx = FixtureServer::start().await;
    let cfg = config(&fx, dir.path(), &kafka_toml(broker.port, "batch_size = 1000\n"));
    let app = Outpost::start(dir.path(), &cfg).await;
    let s = app
        .wait_for("the backlog to drain past the refused records", 180, |s| {
            backlog(s) == 0 && sink(s)["connected"] == true
        })
        .await;
    assert_eq!(sink(&s)["dead_letters"], 2, "both set aside: {s}");
    assert!(app.stop().await.success());
    // The two dead letters are records of the log too (local, never forwarded).
    assert_eq!(stored_cursor(dir.path(), "kafka"), total + 2);

    let (store, writer, _) = Store::open(dir.path(), "it", StoreOptions::default()).unwrap();
    drop(writer);
    let dead = store.dead_letters(Some("kafka")).unwrap();
    assert_eq!(dead.len(), 2);
    assert_eq!(dead[0].seq, 2_001);
    assert!(dead[0].reason.contains("TOO_LARGE"), "the broker's refusal: {}", dead[0].reason);
    assert_eq!(dead[1].seq, 4_002);
    assert!(dead[1].reason.contains("max_request_bytes"), "refused before sending: {}", dead[1].reason);

    let (all, keys) = read_all(broker.port).await;
    assert_eq!(all.len() as u64, total - 2, "every other record, once");
    assert!(keys.values().all(|n| *n == 1));
    let seqs: std::collections::BTreeSet<u64> = all.iter().map(|(s, _)| *s).collect();
    assert!(!seqs.contains(&2_001) && !seqs.contains(&4_002));
    assert!(seqs.contains(&2_002) && seqs.contains(&total), "the records after them arrived");
}

/// A broker with StandardAuthorizer ACLs: PLAINTEXT (the test's admin and reader, and the
/// controller) is the super user; `alice` over SASL_SSL/SCRAM-SHA-512 may only Write and
/// Describe the three topics, made beforehand by an admin.
#[tokio::test]
async fn a_producer_allowed_only_write_and_describe_sends_over_sasl_ssl_with_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let total = fill(dir.path(), vec![Fill::Positions(1_000), Fill::Warnings { days: 1, text_bytes: 0 }]).await;
    let broker = ApacheKafka::start(KafkaOpts {
        scram_users: vec![("alice".into(), "alice-secret".into())],
        extra_properties: "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer\n\
                           super.users=User:ANONYMOUS\n"
            .into(),
        ..KafkaOpts::default()
    })
    .await;
    kafka_admin(broker.port, &[&["topic"][..], &TOPICS].concat()).await;
    for op in ["write", "describe"] {
        kafka_admin(broker.port, &[&["allow", "User:alice", op][..], &TOPICS].concat()).await;
    }
    let (port, ca) = (broker.sasl_ssl_port.unwrap(), broker.ca.clone().unwrap());
    let fx = FixtureServer::start().await;
    // The CA comes from kafka.ca_file only (no SSL_CERT_FILE), the host name is checked against
    // the certificate's (localhost).
    let extra = format!(
        "[kafka]\nbrokers = [\"localhost:{port}\"]\ntls = true\nca_file = \"{}\"\nsasl_mechanism = \"scram-sha-512\"\n\
         sasl_username = \"alice\"\nsasl_password = \"alice-secret\"\n",
        ca.display()
    );
    let app = Outpost::start(dir.path(), &config(&fx, dir.path(), &extra)).await;
    app.wait_for("the backlog to drain", 120, |s| backlog(s) == 0 && sink(s)["connected"] == true).await;
    assert!(!app.log().contains("alice-secret"), "no secret in the log");
    assert!(app.stop().await.success());
    let (all, keys) = read_all(broker.port).await;
    assert_eq!(all.len() as u64, total);
    assert!(keys.values().all(|n| *n == 1));
}

#[tokio::test]
async fn create_topics_false_and_a_missing_topic_is_a_clear_error_that_names_no_broker() {
    let dir = tempfile::tempdir().unwrap();
    let total = fill(dir.path(), vec![Fill::Positions(100)]).await;
    let broker = ApacheKafka::start(KafkaOpts::default()).await;
    // Two of the four exist.
    kafka_admin(broker.port, &["topic", TOPICS[0], TOPICS[1]]).await;
    let fx = FixtureServer::start().await;
    let cfg = config(&fx, dir.path(), &kafka_toml(broker.port, "create_topics = false\n"));
    let app = Outpost::start(dir.path(), &cfg).await;
    let s = app.wait_for("the missing topic reported", 60, |s| !last_error(s).is_empty()).await;
    let error = last_error(&s);
    assert!(error.contains("outpost.avalanche.warning") && error.contains("kafka.create_topics"), "{error}");
    assert!(!error.contains("127.0.0.1") && !error.contains(&broker.port.to_string()), "no broker address: {error}");
    assert_eq!(backlog(&s), total);
    assert!(app.stop().await.success());
    assert_eq!(stored_cursor(dir.path(), "kafka"), 0, "nothing sent");
    // It never created the topic.
    let out = tokio::process::Command::new(home_tool("OUTPOST_PYTHON", "venv/bin/python"))
        .args(["-c", "import sys; from confluent_kafka.admin import AdminClient; \
                      print('\\n'.join(AdminClient({'bootstrap.servers': sys.argv[1]}).list_topics(timeout=20).topics))"])
        .arg(format!("127.0.0.1:{}", broker.port))
        .output()
        .await
        .unwrap();
    let topics = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && topics.contains(TOPICS[0]), "{topics}");
    assert!(!topics.contains("outpost.avalanche.warning"), "created anyway: {topics}");
}

#[tokio::test]
async fn an_unreachable_broker_is_reported_without_its_address() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), vec![Fill::Positions(10)]).await;
    let fx = FixtureServer::start().await;
    let port = free_port();
    let cfg = config(&fx, dir.path(), &format!("[kafka]\nbrokers = [\"localhost:{port}\", \"127.0.0.1:{port}\"]\n"));
    let app = Outpost::start(dir.path(), &cfg).await;
    let s = app.wait_for("the error", 60, |s| !last_error(s).is_empty()).await;
    let error = last_error(&s);
    assert!(
        !error.contains("localhost") && !error.contains("127.0.0.1") && !error.contains(&port.to_string()),
        "{error}"
    );
    assert!(app.stop().await.success());
}

#[tokio::test]
async fn a_certificate_for_another_host_name_is_a_clear_error_and_nothing_is_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let total = fill(dir.path(), vec![Fill::Positions(100)]).await;
    let certs = tempfile::tempdir().unwrap();
    let other = TestCa::for_names(certs.path(), "other-", "DNS:kafka.other.invalid");
    let keystore = certs.path().join("other-keystore.pem");
    let key = std::fs::read_to_string(&other.server_key).unwrap();
    let cert = std::fs::read_to_string(&other.server_cert).unwrap();
    std::fs::write(&keystore, format!("{key}{cert}")).unwrap();
    // The SASL_SSL listener serves a certificate (from a CA the sink trusts) for another name.
    let broker = ApacheKafka::start(KafkaOpts {
        scram_users: vec![("alice".into(), "alice-secret".into())],
        extra_properties: format!("listener.name.sasl_ssl.ssl.keystore.location={}\n", keystore.display()),
        ..KafkaOpts::default()
    })
    .await;
    let port = broker.sasl_ssl_port.unwrap();
    let fx = FixtureServer::start().await;
    let extra = format!(
        "[kafka]\nbrokers = [\"127.0.0.1:{port}\"]\ntls = true\nca_file = \"{}\"\nsasl_mechanism = \"scram-sha-512\"\n\
         sasl_username = \"alice\"\nsasl_password = \"alice-secret\"\n",
        other.ca.display()
    );
    let app = Outpost::start(dir.path(), &config(&fx, dir.path(), &extra)).await;
    let s = app.wait_for("the certificate refused", 60, |s| !last_error(s).is_empty()).await;
    let error = last_error(&s);
    assert!(error.contains("TLS") && error.to_ascii_lowercase().contains("not valid for name"), "{error}");
    assert!(!error.contains("127.0.0.1"), "{error}");
    assert_eq!(backlog(&s), total);
    assert!(app.stop().await.success());
    assert_eq!(stored_cursor(dir.path(), "kafka"), 0, "nothing delivered");
}

/// KIP-896: Kafka 4 removed old protocol versions. The versions rskafka 0.6.0 offers for what the
/// sink uses (vendor/rskafka/src/protocol/messages/*.rs) must meet the broker's ranges; the
/// other tests show the requests themselves work.
#[tokio::test]
async fn the_brokers_protocol_versions_cover_what_rskafka_offers() {
    let broker = ApacheKafka::start(KafkaOpts::default()).await;
    let versions = broker.api_versions().await;
    eprintln!("Apache Kafka ApiVersions (key, min, max): {versions:?}");
    // (api, its key, rskafka's range).
    for (api, key, lo, hi) in [
        ("Produce", 0, 3, 7),
        ("Metadata", 3, 0, 4),
        ("SaslHandshake", 17, 1, 1),
        ("ApiVersions", 18, 0, 3),
        ("CreateTopics", 19, 0, 5),
        ("SaslAuthenticate", 36, 0, 2),
    ] {
        let (_, min, max) =
            versions.iter().find(|(k, ..)| *k == key).unwrap_or_else(|| panic!("{api} in {versions:?}"));
        let used = hi.min(*max);
        assert!(used >= *min && used >= lo, "{api}: rskafka offers {lo}-{hi}, the broker {min}-{max}");
        eprintln!("{api}: broker {min}-{max}, rskafka {lo}-{hi}: v{used}");
    }
}
