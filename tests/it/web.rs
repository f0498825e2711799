//! The map's server side: pages, live events, metrics, embedded files and the front door (Host
//! check, basic auth and its back-off, browser-hardening headers), against a running appliance
//! fed from recorded answers.

use crate::helpers::*;
use chrono::{Duration, Utc};
use serde_json::Value;
use std::net::SocketAddr;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// An appliance collecting a position a second (longitudes crossing the antimeridian), the
/// recorded TLE and Trollheimen's warnings, seen from Oslo.
async fn collecting(dir: &std::path::Path, extra: &str) -> (FixtureServer, Outpost) {
    let fx = FixtureServer::start().await;
    let base = Utc::now() - Duration::minutes(10);
    fx.generate("/iss-now.json", move |n| {
        let lon = (178.0 + n as f64 + 180.0) % 360.0 - 180.0;
        Reply::ok(open_notify(base + Duration::seconds(10 * n as i64), "51.5", &format!("{lon:.4}")))
    });
    fx.script("/tle", vec![Reply::ok(fixture("celestrak_gp_CATNR25544_FORMAT_TLE.txt"))]);
    fx.script("/nve", vec![Reply::ok(fixture("nve_AvalancheWarningByRegion_Detail.json"))]);
    let extra = format!("[location]\nlatitude = 59.91\nlongitude = 10.75\n{extra}");
    let app = Outpost::start(dir, &config(&fx, dir, &extra)).await;
    (fx, app)
}

async fn text(app: &Outpost, path: &str) -> (u16, String) {
    let r = reqwest::get(format!("http://{}{path}", app.addr)).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn pages_metrics_and_files_render_what_was_collected() {
    let dir = tempfile::tempdir().unwrap();
    let (_fx, app) = collecting(dir.path(), "").await;
    app.wait_for("positions, a TLE and warnings", 30, |s| {
        stored(s, "iss.position") >= 3 && stored(s, "iss.tle") == 1 && stored(s, "avalanche.warning") == 5
    })
    .await;

    let (code, map) = text(&app, "/").await;
    assert_eq!(code, 200);
    assert!(map.contains(r#"<div id="map""#) && map.contains("/static/map.js?v="), "{map}");
    assert!(map.contains(r#""observer":{"latitude":59.91"#), "the observer is handed to the page: {map}");

    let (code, page) = text(&app, "/avalanche?date=2023-03-03").await;
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("Trollheimen") && page.contains("danger danger-3"), "{page}");
    assert!(page.contains("Varsler fra Snøskredvarslingen i Norge og www.varsom.no"), "NVE's attribution");
    assert!(page.contains("Avalanche problems"), "the problems of the selected region");
    assert!(page.contains(r#"<svg class="season-chart""#), "the season chart");
    // The weather source is off in this config: the page still renders, saying so.
    assert!(page.contains("no weather") && !page.contains("Open-Meteo"), "{page}");
    // Five stored days in the season chart, one bar each.
    assert_eq!(page.matches("<rect class=\"danger").count(), 5, "{page}");
    let (_, empty) = text(&app, "/avalanche?date=2021-01-01").await;
    assert!(empty.contains("No warnings are stored for this date"));
    for (query, needle) in [
        ("/avalanche?date=2023-02-30", "date"),
        ("/avalanche?region=trollheimen", "region"),
        ("/avalanche?dato=2023-03-01", "unknown parameter"),
    ] {
        let (code, body) = app.get(query).await;
        assert_eq!(code, 400, "{query}: {body}");
        assert!(body["error"].as_str().unwrap().contains(needle), "{query}: {body}");
    }

    let (code, status) = text(&app, "/status").await;
    assert_eq!(code, 200);
    for needle in [
        "Collectors",
        "iss_position",
        "Upstream links",
        "not configured",
        "once positions older than a day",
        "Night-pass emails",
    ] {
        assert!(status.contains(needle), "/status lacks {needle:?}: {status}");
    }

    let (code, metrics) = text(&app, "/metrics").await;
    assert_eq!(code, 200);
    let value = |name: &str| -> f64 {
        let line = metrics.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} in\n{metrics}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert!(value(r#"outpost_polls_total{source="iss_position"}"#) >= 3.0);
    assert!(value(r#"outpost_records_stored_total{kind="iss.position"}"#) >= 3.0);
    assert!(value("outpost_store_bytes") > 0.0);
    assert_eq!(value(r#"outpost_store_records{kind="avalanche.warning"}"#), 5.0);
    assert!(metrics.contains("# TYPE outpost_polls_total counter"), "{metrics}");
    assert!(metrics.lines().all(|l| l.starts_with('#') || l.starts_with("outpost_")), "{metrics}");

    let http = reqwest::Client::new();
    let url = |p: &str| format!("http://{}{p}", app.addr);
    let leaflet = http.get(url("/static/vendor/leaflet/leaflet.js")).send().await.unwrap();
    assert_eq!(leaflet.headers()["content-type"], "text/javascript; charset=utf-8");
    let etag = leaflet.headers()["etag"].clone();
    assert!(leaflet.text().await.unwrap().contains("Leaflet"));
    let again = http.get(url("/static/vendor/leaflet/leaflet.js")).header("if-none-match", etag).send().await.unwrap();
    assert_eq!(again.status(), 304);
    let basemap =
        http.get(url("/static/basemap/countries.geojson")).header("accept-encoding", "gzip").send().await.unwrap();
    assert_eq!(basemap.status(), 200);
    assert_eq!(basemap.headers()["content-encoding"], "gzip", "the 1 MB basemap is compressed");
    assert!(basemap.bytes().await.unwrap().len() < 1_000_000);
    assert_eq!(http.get(url("/static/nothing.js")).send().await.unwrap().status(), 404);
    let (code, body) = app.get("/no/such/page").await;
    assert_eq!(code, 404, "{body}");
    assert!(app.stop().await.success());
}

/// Reads server-sent events until `count` arrived: `(id, data)`.
async fn read_events(addr: SocketAddr, last_event_id: Option<u64>, count: usize) -> Vec<(u64, Value)> {
    read_events_until(addr, last_event_id, |events| events.len() >= count).await
}

/// Reads server-sent events until `enough` says so: `(id, data)`.
async fn read_events_until(
    addr: SocketAddr,
    last_event_id: Option<u64>,
    enough: impl Fn(&[(u64, Value)]) -> bool,
) -> Vec<(u64, Value)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let resume = last_event_id.map(|id| format!("Last-Event-ID: {id}\r\n")).unwrap_or_default();
    let request = format!("GET /api/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n{resume}\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut lines = BufReader::new(stream).lines();
    let mut events = Vec::new();
    let mut id = None;
    let read = async {
        while !enough(&events) {
            let line = lines.next_line().await.unwrap().expect("the stream stays open");
            if let Some(v) = line.strip_prefix("id: ").or_else(|| line.strip_prefix("id:")) {
                id = v.trim().parse::<u64>().ok();
            } else if let Some(data) = line.strip_prefix("data: ").or_else(|| line.strip_prefix("data:")) {
                events.push((id.take().expect("every event has an id"), serde_json::from_str(data).unwrap()));
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), read).await.expect("events arrive");
    events
}

#[tokio::test]
async fn events_push_each_new_record_and_a_reconnect_resumes_without_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let (_fx, app) = collecting(dir.path(), "").await;
    // Warnings and the TLE may come first (their order depends on the collectors' timing).
    let is_position = |v: &Value| v["kind"] == "iss.position";
    let live = read_events_until(app.addr, None, |e| e.len() >= 3 && e.iter().any(|(_, v)| is_position(v))).await;
    let ids: Vec<u64> = live.iter().map(|(id, _)| *id).collect();
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "consecutive seqs: {ids:?}");
    let positions: Vec<&Value> = live.iter().map(|(_, v)| v).filter(|v| is_position(v)).collect();
    assert!(!positions.is_empty(), "{live:?}");
    for (id, v) in &live {
        assert_eq!(v["seq"].as_u64(), Some(*id), "the id is the record's seq");
        assert_eq!(v["schema"], 1);
    }
    let p = positions[0];
    assert!(p["latitude"].is_number() && p["longitude"].is_number() && p["time"].is_string(), "{p}");

    // A browser that saw the first event and reconnects gets the next one first.
    let resumed = read_events(app.addr, Some(ids[0]), 2).await;
    assert_eq!(resumed[0].0, ids[0] + 1);
    assert_eq!(resumed[0].1, live[1].1, "the same record, the same JSON");
    assert!(app.stop().await.success(), "an open event stream does not hold up shutdown");
}

#[tokio::test]
async fn passes_can_carry_their_path_over_the_ground_and_through_the_sky() {
    let dir = tempfile::tempdir().unwrap();
    let (_fx, app) = collecting(dir.path(), "").await;
    app.wait_for("the TLE", 30, |s| stored(s, "iss.tle") == 1).await;
    // The recorded TLE's epoch is 2023-09-18 10:40 UTC; predict near it.
    let (code, passes) = app.get("/api/passes?from=2023-09-18T12:00:00Z&hours=24&all=true&path=true").await;
    assert_eq!(code, 200, "{passes}");
    let passes = passes.as_array().unwrap();
    assert!(passes.len() >= 3, "{passes:?}");
    for p in passes {
        let path = p["path"].as_array().unwrap();
        assert_eq!(path.first().unwrap()["time"], p["rise"]["time"]);
        assert_eq!(path.last().unwrap()["time"], p["set"]["time"]);
        let top = path.iter().map(|q| q["elevation_deg"].as_f64().unwrap()).fold(f64::MIN, f64::max);
        let culmination = p["culmination"]["elevation_deg"].as_f64().unwrap();
        assert!(top <= culmination + 0.01 && top > culmination - 1.5, "path top {top} vs culmination {culmination}");
        for q in path {
            let (lat, lon) = (q["latitude"].as_f64().unwrap(), q["longitude"].as_f64().unwrap());
            // Seen from Oslo, the ISS is within ~2,300 km: latitude 35..75, longitude -30..50.
            assert!((35.0..75.0).contains(&lat) && (-30.0..50.0).contains(&lon), "{q}");
        }
    }
    let (_, plain) = app.get("/api/passes?from=2023-09-18T12:00:00Z&hours=24&all=true").await;
    assert!(plain[0].get("path").is_none(), "no path unless asked");
    let (code, body) = app.get("/api/passes?path=yes").await;
    assert_eq!(code, 400, "{body}");
    assert!(app.stop().await.success());
}

/// `config()` with `lines` added to its `[web]` table (a second `[web]` would be a TOML error).
fn with_web(fx: &FixtureServer, dir: &std::path::Path, lines: &str) -> String {
    config(fx, dir, "").replace("[web]\n", &format!("[web]\n{lines}"))
}

/// An appliance with basic auth for `ada` and `secret` (from a password file).
async fn with_password(dir: &std::path::Path, secret: &str) -> (FixtureServer, Outpost) {
    let pass_file = dir.join("web.pass");
    std::fs::write(&pass_file, format!("{secret}\n")).unwrap();
    let fx = FixtureServer::start().await;
    let cfg = with_web(&fx, dir, &format!("username = \"ada\"\npassword_file = \"{}\"\n", pass_file.display()));
    let app = Outpost::start(dir, &cfg).await;
    (fx, app)
}

#[tokio::test]
async fn basic_auth_guards_every_path_and_the_password_stays_secret() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "correct horse battery staple";
    let (_fx, app) = with_password(dir.path(), secret).await;
    let http = reqwest::Client::new();
    for path in ["/", "/status", "/avalanche", "/api/status", "/api/iss/track", "/metrics", "/static/map.js"] {
        let url = format!("http://{}{path}", app.addr);
        let r = http.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path} without credentials");
        assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic"));
        let wrong = http.get(&url).basic_auth("ada", Some("guess")).send().await.unwrap();
        assert_eq!(wrong.status(), 401, "{path} with a wrong password");
        let ok = http.get(&url).basic_auth("ada", Some(secret)).send().await.unwrap();
        assert_eq!(ok.status(), 200, "{path} with the password");
        let body = ok.text().await.unwrap();
        assert!(!body.contains(secret), "{path} shows the password");
    }
    // The one open path: install scripts and supervisors poll it without the password.
    let health = http.get(format!("http://{}/healthz", app.addr)).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.json::<Value>().await.unwrap(), serde_json::json!({ "status": "ok" }));
    assert!(!app.log().contains(secret), "the log shows the password");
    // The CLI signs in with the same [web] credentials when it asks the running appliance.
    let cfg = app.config_path.clone();
    let addr = app.addr.to_string();
    let out = tokio::process::Command::new(bin())
        .args(["status", "--json", "--config"])
        .arg(&cfg)
        .env("OUTPOST_WEB_LISTEN", &addr)
        .output()
        .await
        .unwrap();
    let status: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{out:?}"));
    assert_eq!(status["source"], "running appliance", "{status}");
    assert!(app.stop().await.success());
}

/// One request over a fresh connection, sent byte for byte as given (forged and missing Host
/// headers are beyond reqwest): `(status, header lines in lower case, body)`.
async fn raw(addr: SocketAddr, request: &str) -> (u16, Vec<String>, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .unwrap_or_else(|_| panic!("no complete answer to {request:?}"))
        .unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or_else(|| panic!("{request:?} -> {answer:?}"));
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    (status, lines.map(str::to_ascii_lowercase).collect(), body.to_owned())
}

fn get_with(path: &str, host_lines: &str) -> String {
    format!("GET {path} HTTP/1.1\r\n{host_lines}Connection: close\r\n\r\n")
}

/// The value of `name` in `/metrics` (0 when absent; a metric without labels may carry `{}`).
fn metric(metrics: &str, name: &str) -> f64 {
    let value = |l: &str| {
        let rest = l.strip_prefix(name)?;
        rest.strip_prefix("{}").unwrap_or(rest).strip_prefix(' ')?.parse().ok()
    };
    metrics.lines().find_map(value).unwrap_or(0.0)
}

const CSP: &str = "default-src 'self'; img-src 'self' data: https://tile.openstreetmap.org; connect-src 'self'; \
                   frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";

fn assert_hardened(headers: &[String], what: &str) {
    for expected in [
        format!("content-security-policy: {}", CSP.to_ascii_lowercase()),
        "x-content-type-options: nosniff".into(),
        "referrer-policy: no-referrer".into(),
        "x-frame-options: deny".into(),
    ] {
        assert!(headers.contains(&expected), "{what} lacks {expected:?}: {headers:#?}");
    }
}

#[tokio::test]
async fn a_rebinding_page_reads_nothing_and_the_appliances_own_names_are_answered() {
    let dir = tempfile::tempdir().unwrap();
    let fx = FixtureServer::start().await;
    let app =
        Outpost::start(dir.path(), &with_web(&fx, dir.path(), "allowed_hosts = [\"Outpost.Example.com\"]\n")).await;
    let (addr, port) = (app.addr, app.addr.port());
    let mut refused = 0;

    // A page at evil.example whose name now resolves to this appliance: the right address and
    // port, its own name in Host. Every path, the password-free /healthz included (one rule).
    for path in [
        "/",
        "/avalanche",
        "/status",
        "/api/status",
        "/api/iss/latest",
        "/api/iss/track",
        "/api/iss/predicted",
        "/api/export?kind=iss&format=jsonl",
        "/api/events",
        "/api/passes",
        "/metrics",
        "/healthz",
        "/static/map.js",
        "/no/such/page",
    ] {
        let (code, headers, body) = raw(addr, &get_with(path, &format!("Host: evil.example:{port}\r\n"))).await;
        refused += 1;
        assert_eq!(code, 421, "{path}: {body}");
        assert!(body.contains("web.allowed_hosts") && !body.contains('{'), "{path}: a short plain refusal: {body}");
        assert_hardened(&headers, path);
    }
    let post = format!(
        "POST /api/sinks/kafka/resend HTTP/1.1\r\nHost: evil.example:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(raw(addr, &post).await.0, 421, "the one POST");
    refused += 1;

    // Forged and missing Host headers, and a request target naming another host.
    for request in [
        get_with("/api/status", "Host: evil.example\r\n"),
        get_with("/api/status", &format!("Host: 127.0.0.1.nip.io:{port}\r\n")),
        get_with("/api/status", "Host: localhost.evil.example\r\n"),
        get_with("/api/status", "Host: outpost.example.com.evil\r\n"),
        get_with("/api/status", "Host: 203.0.113.7\r\n"),
        get_with("/api/status", "Host: \r\n"),
        get_with("/api/status", &format!("Host: 127.0.0.1:{port}\r\nHost: evil.example\r\n")),
        get_with("/api/status", ""),
        format!("GET http://evil.example/api/status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"),
        "GET /api/status HTTP/1.0\r\n\r\n".to_owned(),
    ] {
        let (code, _, body) = raw(addr, &request).await;
        refused += 1;
        assert_eq!(code, 421, "{request:?}: {body}");
    }

    // The names it is known by: any case, any port, with or without the trailing dot.
    let hostname = gethostname::gethostname().to_string_lossy().trim().to_ascii_lowercase();
    for host in [
        format!("127.0.0.1:{port}"),
        "localhost".into(),
        format!("LOCALHOST.:{port}"),
        format!("[::1]:{port}"),
        hostname.clone(),
        format!("{}.local:{port}", hostname.to_ascii_uppercase()),
        "OUTPOST.example.COM.".into(),
        format!("outpost.example.com:{port}"),
    ] {
        let (code, headers, body) = raw(addr, &get_with("/api/status", &format!("Host: {host}\r\n"))).await;
        assert_eq!(code, 200, "{host}: {body}");
        assert_hardened(&headers, &host);
    }
    for path in ["/", "/static/map.js", "/healthz", "/no/such/page"] {
        let (_, headers, _) = raw(addr, &get_with(path, &format!("Host: localhost:{port}\r\n"))).await;
        assert_hardened(&headers, path);
    }

    let (_, metrics) = text(&app, "/metrics").await;
    assert_eq!(metric(&metrics, r#"outpost_web_requests_refused_total{reason="host"}"#), refused as f64, "{metrics}");
    assert!(app.stop().await.success());
}

/// This machine's address on its default route, if it has one besides loopback.
fn lan_address() -> Option<std::net::IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    // Connecting a UDP socket sends nothing; it only picks the outgoing interface.
    socket.connect("192.0.2.1:9").ok()?;
    Some(socket.local_addr().ok()?.ip()).filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
}

#[tokio::test]
async fn a_lan_user_reaches_the_appliance_by_the_address_it_was_reached_at() {
    let Some(lan) = lan_address() else {
        crate::helpers::skip!("this machine has no address besides loopback");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let fx = FixtureServer::start().await;
    let cfg = config(&fx, dir.path(), "").replace("listen = \"127.0.0.1:0\"", "listen = \"0.0.0.0:0\"");
    let app = Outpost::start(dir.path(), &cfg).await;
    let port = app.addr.port();
    let at_lan = SocketAddr::new(lan, port);
    // http://192.168.1.20:8080 typed on a phone: the address the connection arrived at.
    let (code, _, body) = raw(at_lan, &get_with("/api/status", &format!("Host: {at_lan}\r\n"))).await;
    assert_eq!(code, 200, "{body}");
    let (code, _, _) = raw(at_lan, &get_with("/api/status", &format!("Host: 0.0.0.0:{port}\r\n"))).await;
    assert_eq!(code, 200, "the listen address as configured");
    // Any other address is not this connection's: a port-forward's goes in allowed_hosts.
    let (code, _, _) = raw(at_lan, &get_with("/api/status", &format!("Host: 203.0.113.7:{port}\r\n"))).await;
    assert_eq!(code, 421);
    let loopback = SocketAddr::new([127, 0, 0, 1].into(), port);
    let (code, _, _) = raw(loopback, &get_with("/api/status", &format!("Host: {at_lan}\r\n"))).await;
    assert_eq!(code, 421, "arrived at loopback, not at {lan}");
    let (code, _, _) = raw(at_lan, &get_with("/api/status", &format!("Host: evil.example:{port}\r\n"))).await;
    assert_eq!(code, 421);
    assert!(app.stop().await.success());
}

/// Basic-auth attempts, with the refusals they met (to hold against /metrics).
#[derive(Default)]
struct Attempts {
    unauthorized: u32,
    throttled: u32,
}

impl Attempts {
    /// `(status, Retry-After)` of a GET of `url` as `ada` with `password` (none: no header).
    async fn ask(&mut self, client: &reqwest::Client, url: &str, password: Option<&str>) -> (u16, Option<u64>) {
        let request = client.get(url);
        let request = match password {
            Some(p) => request.basic_auth("ada", Some(p)),
            None => request,
        };
        let r = request.send().await.unwrap();
        let retry_after = r.headers().get("retry-after").map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
        match r.status().as_u16() {
            401 => self.unauthorized += 1,
            429 => self.throttled += 1,
            _ => {}
        }
        (r.status().as_u16(), retry_after)
    }

    /// Asks without a password until the answer is not 429 (the wait is over); that answer.
    async fn after_the_wait(&mut self, client: &reqwest::Client, url: &str) -> u16 {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(70);
        loop {
            let (code, _) = self.ask(client, url, None).await;
            if code != 429 {
                return code;
            }
            assert!(tokio::time::Instant::now() < deadline, "the wait never ends");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn guessing_the_password_is_slowed_down_per_client() {
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap();
    let secret = "correct horse battery staple";
    let (_fx, app) = with_password(dir.path(), secret).await;
    let url = format!("http://{}/api/status", app.addr);
    let eve = reqwest::Client::new();
    // Another machine on the LAN: the same loopback server, from 127.0.0.2.
    let ada = reqwest::Client::builder().local_address(std::net::IpAddr::from([127, 0, 0, 2])).build().unwrap();
    let mut attempts = Attempts::default();
    let mut failures = 0;

    // The scheme in any case, with extra spaces (RFC 7235, 7617).
    let token = base64::engine::general_purpose::STANDARD.encode(format!("ada:{secret}"));
    for header in [format!("basic {token}"), format!("BASIC   {token}  ")] {
        let r = eve.get(&url).header("authorization", &header).send().await.unwrap();
        assert_eq!(r.status(), 200, "{header}");
    }
    for n in 1..=5 {
        assert_eq!(attempts.ask(&eve, &url, Some("guess")).await, (401, None), "wrong guess {n} is answered");
        failures += 1;
    }
    // During the wait nothing is checked, the right password included: a 200 here would tell
    // the right guess from the wrong ones as fast as ever.
    let (code, first_wait) = attempts.ask(&eve, &url, Some(secret)).await;
    assert_eq!(code, 429, "the sixth attempt waits");
    let first_wait = first_wait.expect("a 429 says how long to wait");
    assert!((1..=2).contains(&first_wait), "{first_wait}");
    assert_eq!(attempts.ask(&eve, &url, Some("guess")).await.0, 429);
    assert_eq!(reqwest::get(format!("http://{}/healthz", app.addr)).await.unwrap().status(), 200, "/healthz is open");
    // Another client is not held up by eve's guesses.
    assert_eq!(attempts.ask(&ada, &url, Some("guess")).await.0, 401);
    failures += 1;
    assert_eq!(attempts.ask(&ada, &url, Some(secret)).await.0, 200);

    // Once the wait is over, one more wrong guess doubles it.
    assert_eq!(attempts.after_the_wait(&eve, &url).await, 401, "no password: asked for one, not a guess");
    assert_eq!(attempts.ask(&eve, &url, Some("guess")).await.0, 401);
    failures += 1;
    let (code, second_wait) = attempts.ask(&eve, &url, Some(secret)).await;
    assert_eq!(code, 429);
    assert!(second_wait.unwrap() > first_wait, "{second_wait:?} after {first_wait}");
    // The right password, once let through, forgives: the next wrong guess is answered at once.
    assert_eq!(attempts.after_the_wait(&eve, &url).await, 401);
    assert_eq!(attempts.ask(&eve, &url, Some(secret)).await.0, 200);
    assert_eq!(attempts.ask(&eve, &url, Some("guess")).await.0, 401);
    failures += 1;
    // The Host check comes first: a rebinding page's guess is no guess, and counts as none.
    let forged = get_with("/api/status", "Host: evil.example\r\nAuthorization: Basic Z3Vlc3M6Z3Vlc3M=\r\n");
    assert_eq!(raw(app.addr, &forged).await.0, 421);
    let (code, headers, _) = raw(app.addr, &get_with("/api/status", &format!("Host: {}\r\n", app.addr))).await;
    assert_eq!(code, 401);
    attempts.unauthorized += 1;
    assert_hardened(&headers, "a 401");

    let r = eve.get(format!("http://{}/metrics", app.addr)).basic_auth("ada", Some(secret)).send().await.unwrap();
    let metrics = r.text().await.unwrap();
    assert_eq!(metric(&metrics, "outpost_web_auth_failures_total"), f64::from(failures), "{metrics}");
    let refused =
        |reason: &str| metric(&metrics, &format!("outpost_web_requests_refused_total{{reason=\"{reason}\"}}"));
    assert_eq!(refused("throttled"), f64::from(attempts.throttled), "{metrics}");
    assert_eq!(refused("unauthorized"), f64::from(attempts.unauthorized), "{metrics}");
    assert!(app.stop().await.success());
}

/// Reads until the server closes the connection (EOF or reset), within `secs`.
async fn closed_by_server(stream: &mut tokio::net::TcpStream, secs: u64) -> bool {
    let mut buf = [0u8; 1024];
    let read = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(secs), read).await.is_ok()
}

#[tokio::test]
async fn one_client_cannot_hold_every_connection_and_idle_ones_are_closed() {
    const PER_CLIENT: usize = 64; // web::slow::CONNECTIONS_PER_CLIENT
    const STALL_S: u64 = 2; // idle connections are closed after twice this
    let dir = tempfile::tempdir().unwrap();
    let fx = FixtureServer::start().await;
    let stall = STALL_S.to_string();
    let env = [("OUTPOST_TEST_CLIENT_STALL_S", std::ffi::OsStr::new(&stall))];
    let app = Launched::spawn(dir.path(), &config(&fx, dir.path(), ""), &[bin()], &env).serving().await;
    // Another client of the same machine, whose requests the held connections must not stop.
    // No idle pooled connection of its own, which the idle rule would close and count too.
    let other = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let url = |path: &str| format!("http://{}{path}", app.addr);
    let metrics = || async { other.get(url("/metrics")).send().await.unwrap().text().await.unwrap() };

    // One client holds the most it may: idle connections and half-sent requests.
    let mut held = Vec::new();
    for i in 0..PER_CLIENT {
        let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        if i % 2 == 0 {
            stream.write_all(format!("GET / HTTP/1.1\r\nHost: {}\r\nX-Slow: ", app.addr).as_bytes()).await.unwrap();
        }
        held.push(stream);
    }
    // Its next connection is closed at once, unanswered; the other client is served.
    let refused = std::time::Instant::now();
    let mut extra = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    extra.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", app.addr).as_bytes()).await.ok();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(STALL_S), extra.read_to_end(&mut answer)).await;
    assert!(read.is_ok() && answer.is_empty(), "closed unanswered before the idle time: {read:?} {answer:?}");
    assert!(refused.elapsed() < std::time::Duration::from_secs(STALL_S));
    let page = other.get(url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200, "another client is served beside the held connections");
    assert_eq!(sample(&metrics().await, "outpost_http_refused_connections_total"), 1.0);

    // After twice the stall time without a byte, every held connection is closed.
    for stream in &mut held {
        assert!(closed_by_server(stream, 4 * STALL_S + 10).await, "an idle connection stays open");
    }
    assert_eq!(sample(&metrics().await, "outpost_http_idle_connections_total"), PER_CLIENT as f64);
    let (code, _) = app.get("/api/status").await;
    assert_eq!(code, 200, "the client's places are free again");
    assert!(app.stop().await.success());
}
