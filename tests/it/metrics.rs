//! `/metrics` of a busy appliance (collecting, rejecting, a sink and email configured, an export
//! refused and one completed) in both encodings: the same samples, every family the README lists,
//! and the Prometheus text format passing Prometheus's own `promtool check metrics`.

use crate::helpers::*;
use chrono::{Duration, Utc};
use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The metric names the README's `GET /metrics` entry lists, as families (a counter's `_total`
/// dropped, as OpenMetrics names it).
fn documented_families() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let entry = readme.split("- `GET /metrics`").nth(1).expect("README documents /metrics");
    let entry = entry.split("\n- ").next().unwrap();
    let mut names = BTreeSet::new();
    for word in entry.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if word.starts_with("outpost_") && word.len() > "outpost_".len() {
            names.insert(word.strip_suffix("_total").unwrap_or(word).to_owned());
        }
    }
    names
}

#[tokio::test]
async fn a_busy_appliance_serves_metrics_promtool_accepts_in_both_encodings() {
    let dir = tempfile::tempdir().unwrap();
    let fx = FixtureServer::start().await;
    let base = Utc::now() - Duration::minutes(10);
    // The first answer is refused (a rejection with a reason), the rest are positions.
    fx.generate("/iss-now.json", move |n| match n {
        1 => Reply::ok("{\"message\": \"success\", \"iss_position\": {}}"),
        n => Reply::ok(open_notify(base + Duration::seconds(10 * n as i64), "51.5", "10.0")),
    });
    fx.script("/tle", vec![Reply::ok(fixture("celestrak_gp_CATNR25544_FORMAT_TLE.txt"))]);
    fx.script("/nve", vec![Reply::ok(fixture("nve_AvalancheWarningByRegion_Detail.json"))]);
    let extra = format!(
        "[location]\nlatitude = 59.91\nlongitude = 10.75\n\
         [kafka]\nbrokers = [\"127.0.0.1:{}\"]\n\
         [email]\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\nsecurity = \"none\"\nfrom = \"outpost@example.org\"\nto = [\"alice@example.org\"]\npush = true\n\
         [push]\nurl = \"http://127.0.0.1:{}/topic\"\n\
         [avalanche_alerts]\nemail = true\npush = true\n",
        free_port(),
        free_port(),
        free_port()
    );
    let app = Outpost::start(dir.path(), &config(&fx, dir.path(), &extra)).await;
    app.wait_for("positions, a rejection, a TLE and warnings", 30, |s| {
        stored(s, "iss.position") >= 3
            && stored(s, "iss.tle") == 1
            && stored(s, "avalanche.warning") == 5
            && s["sources"]["iss_position"]["rejections"].as_object().is_some_and(|r| !r.is_empty())
    })
    .await;
    let export = app.get("/api/export?kind=iss&format=jsonl").await;
    assert_eq!(export.0, 200);

    let http = reqwest::Client::new();
    let scrape = |accept: Option<&'static str>| {
        let mut r = http.get(format!("http://{}/metrics", app.addr));
        if let Some(a) = accept {
            r = r.header("accept", a);
        }
        async move {
            let r = r.send().await.unwrap();
            assert_eq!(r.status(), 200);
            let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
            (content_type, r.text().await.unwrap())
        }
    };
    let (content_type, text) = scrape(None).await;
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert!(!text.contains("# EOF"), "the Prometheus text format has no EOF mark");
    assert!(text.contains("# TYPE outpost_polls_total counter\n"), "{text}");
    assert!(text.contains("outpost_exports_total{outcome=\"completed\"} 1\n"), "{text}");

    // Prometheus's own scrape header gets OpenMetrics: the same samples, counters' families
    // named without `_total`, and the closing EOF.
    let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let (content_type, open_metrics) = scrape(Some(prometheus)).await;
    assert_eq!(content_type, "application/openmetrics-text; version=1.0.0; charset=utf-8");
    assert!(open_metrics.ends_with("# EOF\n"), "{open_metrics}");
    assert!(open_metrics.contains("# TYPE outpost_polls counter\n"), "{open_metrics}");
    let samples = |t: &str| -> BTreeSet<String> {
        // The names and labels of the samples (values move between the two scrapes).
        t.lines().filter(|l| !l.starts_with('#')).map(|l| l.rsplit_once(' ').unwrap().0.to_owned()).collect()
    };
    assert_eq!(samples(&open_metrics), samples(&text));

    let families: BTreeSet<String> = open_metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap().to_owned())
        .collect();
    assert_eq!(families, documented_families(), "the families served are the ones the README lists");
    assert!(app.stop().await.success());

    let Some(promtool) = std::env::var_os("OUTPOST_PROMTOOL").filter(|p| std::path::Path::new(p).exists()) else {
        skip!("OUTPOST_PROMTOOL does not name promtool (scripts/test.sh unpacks it from Debian's prometheus package)");
        return;
    };
    let check = |body: &str| {
        let mut child = Command::new(&promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success() && said.trim().is_empty(), said)
    };
    let (clean, said) = check(&text);
    assert!(clean, "promtool check metrics: {said}\non:\n{text}");
    // It does lint: OpenMetrics' counter families (no `_total`) are what it reads as wrong, the
    // reason the plain scrape gets the Prometheus text format.
    let (clean, said) = check(&open_metrics);
    assert!(!clean && said.contains("outpost_polls_total"), "promtool on OpenMetrics: {said}");
}
