//! Avalanche danger alerts through the real binary: NVE's recorded Trollheimen answer (level 3,
//! moved to today) served by the fixture server, email through aiosmtpd (tests/tools/smtp_server.py,
//! STARTTLS and AUTH), push to a local HTTP receiver standing in for ntfy that records every
//! request and answers 500 first. One alert per channel, retried after the 500, none again after
//! a restart, one more when a new version raises the level; the token never in the log or status.

use crate::email::{PASSWORD, SmtpServer, USER, parse_eml, smtp_fixture};
use crate::helpers::*;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::{Days, NaiveDate, Utc};
use serde_json::Value;
use std::sync::{Arc, Mutex};

const TOKEN: &str = "tk_it_9f8e7d6c5b4a";
const MAP_URL: &str = "http://outpost.test:8080/";

/// One request as the receiver got it.
#[derive(Clone, Debug)]
pub(crate) struct Got {
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
    pub(crate) answered: u16,
}

impl Got {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Default)]
pub(crate) struct Receiver {
    pub(crate) got: Mutex<Vec<Got>>,
    /// Answers in order; the last one repeats.
    answers: Mutex<Vec<u16>>,
}

/// An HTTP server standing in for an ntfy topic: records each POST and answers it.
pub(crate) async fn receiver(answers: Vec<u16>) -> (String, Arc<Receiver>) {
    let state = Arc::new(Receiver { got: Mutex::default(), answers: Mutex::new(answers) });
    async fn post(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> (StatusCode, String) {
        let code = {
            let mut a = r.answers.lock().unwrap();
            if a.len() > 1 { a.remove(0) } else { a[0] }
        };
        let body = String::from_utf8_lossy(&body).into_owned();
        r.got.lock().unwrap().push(Got { headers, body, answered: code });
        (StatusCode::from_u16(code).unwrap(), format!("{{\"code\":{code}}}"))
    }
    let app = axum::Router::new().route("/alerts-topic-x7", axum::routing::post(post)).with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/alerts-topic-x7", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, state)
}

fn oslo_today() -> NaiveDate {
    Utc::now().with_timezone(&chrono_tz::Europe::Oslo).date_naive()
}

/// NVE's recorded Trollheimen warnings (Detail) by their valid date.
fn recorded(valid: &str) -> Value {
    let all: Vec<Value> = serde_json::from_slice(&fixture("nve_AvalancheWarningByRegion_Detail.json")).unwrap();
    all.into_iter().find(|w| w["ValidFrom"].as_str().unwrap().starts_with(valid)).unwrap()
}

/// The recorded warning of `valid` moved to `day`, as version `reg_id` published at `publish`
/// (Norwegian local time), with `level` if given.
fn moved(valid: &str, day: NaiveDate, reg_id: u64, publish: &str, level: Option<u8>) -> Value {
    let mut w = recorded(valid);
    w["RegId"] = reg_id.into();
    w["ValidFrom"] = format!("{day}T00:00:00").into();
    w["ValidTo"] = format!("{day}T23:59:59").into();
    w["PublishTime"] = publish.into();
    if let Some(l) = level {
        w["DangerLevel"] = l.to_string().into();
    }
    w
}

fn danger(s: &Value) -> &Value {
    &s["danger_alerts"]
}

fn count(s: &Value, field: &str) -> u64 {
    danger(s)[field].as_u64().unwrap_or(0)
}

fn recorded_levels(s: &Value) -> Vec<(u64, String)> {
    let mut v: Vec<(u64, String)> = danger(s)["recorded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["level"].as_u64().unwrap(), format!("{}:{}", a["channel"], a["outcome"]).replace('"', "")))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn danger_alerts_go_out_once_by_email_and_push_and_again_when_the_level_rises() {
    let now_oslo = Utc::now().with_timezone(&chrono_tz::Europe::Oslo);
    if now_oslo.format("%H:%M").to_string().as_str() >= "23:55" {
        skip!("too close to midnight in Norway: today would change mid-test");
        return;
    }
    let today = oslo_today();
    let tomorrow = today.checked_add_days(Days::new(1)).unwrap();
    let eve = today.pred_opt().unwrap();
    let fx = FixtureServer::start().await;
    fx.script("/iss-now.json", vec![Reply::ok(open_notify(Utc::now(), "0.0", "0.0"))]);
    // Today: the recorded level-3 day (two problems); tomorrow: the recorded level-2 day.
    let first = [
        moved("2023-03-03", today, 910_001, &format!("{eve}T15:31:48.56"), None),
        moved("2023-03-01", tomorrow, 910_002, &format!("{today}T15:32:29.677"), None),
    ];
    fx.script("/nve", vec![Reply::ok(serde_json::to_vec(&first).unwrap())]);

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let smtp = SmtpServer::start(dir).await;
    let (url, push) = receiver(vec![500, 200]).await;
    let token_file = dir.join("push.token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let extra = format!(
        r#"
[email]
smtp_host = "127.0.0.1"
smtp_port = {port}
security = "starttls"
username = "{USER}"
password = "{PASSWORD}"
from = "Outpost <outpost@example.org>"
to = ["alice@example.org"]
map_url = "{MAP_URL}"
ca_file = "{ca}"
[push]
url = "{url}"
format = "ntfy"
token_file = "{token}"
[avalanche_alerts]
regions = [3022]
min_level = 3
email = true
push = true
"#,
        port = smtp.port,
        ca = smtp_fixture("ca.pem"),
        token = token_file.display(),
    );
    let cfg = config(&fx, &dir.join("store"), &extra);
    let link = format!("{MAP_URL}avalanche?date={today}");

    // Run 1: the email goes at once; the push gets a 500, is retried after 30 s and delivered.
    let outpost = Outpost::start(dir, &cfg).await;
    let s = outpost
        .wait_for("one email and one push, recorded", 90, |s| count(s, "sent") == 2 && recorded_levels(s).len() == 2)
        .await;
    assert_eq!(count(&s, "failures"), 1, "the 500: {s:#}");
    assert_eq!(recorded_levels(&s), [(3, "email:sent".into()), (3, "push:sent".into())], "{s:#}");
    let got = push.got.lock().unwrap().clone();
    assert_eq!(got.iter().map(|g| g.answered).collect::<Vec<_>>(), [500, 200], "{got:?}");
    let w = recorded("2023-03-03");
    let title = format!("Avalanche danger 3 (considerable) in Trollheimen on {}", today.format("%a %d %b %Y"));
    for g in &got {
        assert_eq!(g.header("authorization"), Some(format!("Bearer {TOKEN}").as_str()));
        assert_eq!(g.header("title"), Some(title.as_str()));
        assert_eq!(g.header("priority"), Some("4"));
        assert_eq!(g.header("tags"), Some("warning,danger-3"));
        assert_eq!(g.header("click"), Some(link.as_str()));
        assert!(g.body.starts_with(w["MainText"].as_str().unwrap().trim()), "{}", g.body);
        for p in w["AvalancheProblems"].as_array().unwrap() {
            let name = p["AvalancheProblemTypeName"].as_str().unwrap();
            assert!(g.body.contains(name), "problem {name:?} in {}", g.body);
        }
    }
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1, "{mails:?}");
    let m = parse_eml(&mails[0]);
    assert_eq!(m["subject"], title.as_str());
    assert!(m["text"].as_str().unwrap().contains(&format!("Details: {link}")), "{m:#}");
    assert!(m["html"].as_str().unwrap().contains(&format!("<a href=\"{link}\">")), "{m:#}");
    // The 500's error is in the status without the receiver's address or topic, and the token is
    // nowhere.
    let shown = outpost.status().await.to_string();
    let log = outpost.log();
    assert!(shown.contains("HTTP 500"), "{shown}");
    let host = url.trim_start_matches("http://").split('/').next().unwrap().to_owned();
    assert!(!shown.contains(&host) && !shown.contains("alerts-topic-x7"), "{shown}");
    assert!(!shown.contains(TOKEN) && !log.contains(TOKEN), "the token leaked:\n{log}");
    assert!(outpost.stop().await.success());

    // Run 2, a restart with the same answer: the log says both were sent.
    let outpost = Outpost::start(dir, &cfg).await;
    let polled = outpost.wait_for("NVE asked again", 30, |s| s["sources"]["varsom"]["polls"].as_u64() >= Some(1)).await;
    let checks = count(&polled, "checks");
    let s = outpost.wait_for("a check after the poll", 60, |s| count(s, "checks") > checks).await;
    assert_eq!((count(&s, "sent"), count(&s, "failures")), (0, 0), "{s:#}");
    assert_eq!(recorded_levels(&s).len(), 2, "{s:#}");
    assert_eq!(push.got.lock().unwrap().len(), 2);
    assert_eq!(smtp.messages().len(), 1);
    assert!(outpost.stop().await.success());

    // Run 3: NVE has a newer version of today's warning at level 4: one more email and push.
    let raised = [
        moved("2023-03-03", today, 910_003, &format!("{today}T09:11:14.2"), Some(4)),
        moved("2023-03-01", tomorrow, 910_002, &format!("{today}T15:32:29.677"), None),
    ];
    fx.script("/nve", vec![Reply::ok(serde_json::to_vec(&raised).unwrap())]);
    let outpost = Outpost::start(dir, &cfg).await;
    let s = outpost.wait_for("the raise alerted", 60, |s| count(s, "sent") == 2 && recorded_levels(s).len() == 4).await;
    assert_eq!(
        recorded_levels(&s),
        [(3, "email:sent".into()), (3, "push:sent".into()), (4, "email:sent".into()), (4, "push:sent".into())],
        "{s:#}"
    );
    let got = push.got.lock().unwrap().clone();
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[2].header("tags"), Some("warning,danger-4"));
    assert_eq!(got[2].header("priority"), Some("5"));
    assert!(got[2].header("title").unwrap().starts_with("Avalanche danger 4 (high) in Trollheimen"));
    let mails = smtp.messages();
    assert_eq!(mails.len(), 2);
    assert!(parse_eml(&mails[1])["subject"].as_str().unwrap().starts_with("Avalanche danger 4 (high)"));
    assert!(!outpost.log().contains(TOKEN));
    assert!(outpost.stop().await.success());
}

/// With MQTT on: the alert is one event on `{prefix}/{station}/alerts` (not retained), read by a
/// subscriber on a real mosquitto, and not repeated by later batches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_danger_alert_is_one_mqtt_event() {
    use crate::mqtt::{Broker, free_port};
    let now_oslo = Utc::now().with_timezone(&chrono_tz::Europe::Oslo);
    if now_oslo.format("%H:%M").to_string().as_str() >= "23:58" {
        skip!("too close to midnight in Norway: today would change mid-test");
        return;
    }
    let today = oslo_today();
    let fx = FixtureServer::start().await;
    // Positions with increasing times: a batch for the MQTT sink every commit.
    let base = Utc::now() - chrono::Duration::hours(1);
    fx.generate("/iss-now.json", move |n| {
        Reply::ok(open_notify(base + chrono::Duration::seconds(10 * n as i64), "10.5", &format!("{}.25", n % 170)))
    });
    let eve = today.pred_opt().unwrap();
    let nve = [moved("2023-03-03", today, 920_001, &format!("{eve}T15:31:48.56"), None)];
    fx.script("/nve", vec![Reply::ok(serde_json::to_vec(&nve).unwrap())]);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let broker = Broker::start(dir, free_port(), None).await.unwrap();
    let (url, push) = receiver(vec![200]).await;
    // Subscribed before the appliance starts: the event is not retained.
    let sub = tokio::process::Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &broker.port.to_string(), "-t", "outpost/it/alerts", "-v"])
        .args(["-C", "1", "-W", "60"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("mosquitto_sub runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !std::fs::read_to_string(&broker.log).unwrap_or_default().contains("SUBSCRIBE") {
        assert!(std::time::Instant::now() < deadline, "mosquitto_sub did not subscribe");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let extra = format!(
        "[mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\n[push]\nurl = \"{url}\"\nformat = \"json\"\n[avalanche_alerts]\npush = true\n",
        broker.port
    );
    let outpost = Outpost::start(dir, &config(&fx, &dir.join("store"), &extra)).await;
    let out = sub.wait_with_output().await.unwrap();
    let line = String::from_utf8(out.stdout).unwrap();
    let (topic, payload) =
        line.trim().split_once(' ').unwrap_or_else(|| panic!("no event: {line:?}\n{}", outpost.log()));
    assert_eq!(topic, "outpost/it/alerts");
    let e: Value = serde_json::from_str(payload).unwrap();
    assert_eq!(e["event"], "avalanche_danger");
    assert_eq!((e["region_id"].as_u64(), e["danger_level"].as_u64()), (Some(3022), Some(3)), "{e}");
    assert_eq!(e["valid_date"], today.to_string());
    assert_eq!(e["region_name"], "Trollheimen");
    // The JSON push went out too, once.
    let got = push.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    let body: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(body["tags"], serde_json::json!(["warning", "danger-3"]));
    // Later batches do not repeat it.
    let s = outpost.status().await;
    let delivered = s["sinks"]["mqtt"]["delivered"].as_u64().unwrap();
    outpost
        .wait_for("more batches through MQTT", 30, |s| s["sinks"]["mqtt"]["delivered"].as_u64() >= Some(delivered + 5))
        .await;
    assert_eq!(broker.publishes_to("outpost/it/alerts"), 1);
    assert!(outpost.stop().await.success());
}
