//! `[push]`: alerts as an HTTP POST to an ntfy topic (ntfy.sh or a self-hosted server) or any
//! webhook. `format = "ntfy"` sends ntfy's headers (Title, Priority, Tags, Click) with the message
//! text as the body; `format = "json"` sends one JSON object. An optional `token` goes out as
//! `Authorization: Bearer`. Errors say what went wrong without the URL (an ntfy topic name is as
//! good as a password: whoever knows it reads the alerts) and never the token; a refusal (4xx
//! except 408/429) is permanent, anything else is worth retrying.

use crate::config::{Invalid, KeyType, Secret, Section, http_url};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How long one delivery may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of an error answer's body is quoted.
const BODY_QUOTE: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PushFormat {
    /// ntfy's publish-by-headers form.
    #[default]
    Ntfy,
    /// `{"title", "message", "priority", "tags", "click"}` as the body.
    Json,
}

/// `[push]`; enabled when `url` is set.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushConfig {
    pub url: Option<String>,
    #[serde(default)]
    pub format: PushFormat,
    #[serde(default)]
    pub token: Secret,
}

impl PushConfig {
    pub fn enabled(&self) -> bool {
        self.url.is_some()
    }
}

impl Section for PushConfig {
    const KEYS: &'static [(&'static str, KeyType)] =
        &[("url", KeyType::Str), ("format", KeyType::Str), ("token", KeyType::Secret)];

    fn validate(&self) -> Result<(), Invalid> {
        if let Some(url) = &self.url {
            http_url("url", url)?;
        }
        if !self.token.is_empty() && self.url.is_none() {
            return Err(Invalid::new("token", "is set but push.url is not"));
        }
        if self.token.expose().chars().any(|c| c.is_control() || c == ' ') {
            return Err(Invalid::new("token", "must be one word without spaces or control characters"));
        }
        Ok(())
    }
}

/// One push notification.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notice {
    pub title: String,
    /// The body text.
    pub message: String,
    /// ntfy's 1 (min) ..= 5 (max); 3 is the default.
    pub priority: u8,
    /// ntfy tags (some are shown as emojis, e.g. `warning`).
    pub tags: Vec<String>,
    /// Opened when the notification is tapped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub click: Option<String>,
}

impl Notice {
    /// A pass alert as a push: the email's subject as the title and its text without the
    /// signature as the message, so a push says when, where, for how long and how bright, as the
    /// email does; an overhead alert is more urgent.
    pub fn for_pass(kind: crate::domain::AlertKind, email: &super::message::Content, map_url: &str) -> Notice {
        let message = email.text.split("\n\n-- \n").next().unwrap_or_default().trim_end().to_owned();
        Notice {
            title: email.subject.clone(),
            message,
            priority: if kind == crate::domain::AlertKind::Overhead { 4 } else { 3 },
            tags: vec!["satellite".into()],
            click: Some(map_url.to_owned()),
        }
    }
}

/// Why a delivery failed, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushError {
    pub message: String,
    /// The server refused this request for what it is (bad token, unknown topic, too large):
    /// the same request will be refused again.
    pub permanent: bool,
}

impl std::fmt::Display for PushError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PushError {}

pub struct Pusher {
    client: reqwest::Client,
    url: reqwest::Url,
    format: PushFormat,
    token: Secret,
}

impl Pusher {
    pub fn new(cfg: &PushConfig) -> anyhow::Result<Pusher> {
        let raw = cfg.url.as_deref().ok_or_else(|| anyhow::anyhow!("push.url is not set"))?;
        let url = reqwest::Url::parse(raw).map_err(|_| anyhow::anyhow!("push.url is not a valid URL"))?;
        let client = reqwest::Client::builder()
            .user_agent(concat!("outpost/", env!("CARGO_PKG_VERSION")))
            .timeout(TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            // A redirect would carry the token to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Pusher { client, url, format: cfg.format, token: cfg.token.clone() })
    }

    pub async fn send(&self, notice: &Notice) -> Result<(), PushError> {
        let mut req = self.client.post(self.url.clone());
        if !self.token.is_empty() {
            req = req.bearer_auth(self.token.expose());
        }
        req = match self.format {
            PushFormat::Json => req.json(notice),
            PushFormat::Ntfy => {
                let mut r = req
                    .header("Title", header_text(&notice.title))
                    .header("Priority", notice.priority.clamp(1, 5).to_string())
                    .header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8")
                    .body(notice.message.clone());
                if !notice.tags.is_empty() {
                    r = r.header("Tags", header_text(&notice.tags.join(",")));
                }
                if let Some(click) = &notice.click {
                    r = r.header("Click", header_text(click));
                }
                r
            }
        };
        let answer = req.send().await.map_err(|e| self.transport_error(e))?;
        let status = answer.status();
        if status.is_success() {
            return Ok(());
        }
        let body = answer.text().await.unwrap_or_default();
        let quote: String = body.trim().chars().take(BODY_QUOTE).filter(|c| !c.is_control()).collect();
        let quote = self.scrub(&quote);
        let permanent = status.is_client_error()
            && status != reqwest::StatusCode::TOO_MANY_REQUESTS
            && status != reqwest::StatusCode::REQUEST_TIMEOUT;
        let hint = match status.as_u16() {
            401 | 403 => " (check push.token)",
            404 => " (check push.url)",
            _ => "",
        };
        let said = if quote.is_empty() { String::new() } else { format!(": {quote}") };
        Err(PushError { message: format!("the push server answered HTTP {status}{hint}{said}"), permanent })
    }

    /// A transport failure in words, without the URL reqwest puts in its messages.
    fn transport_error(&self, e: reqwest::Error) -> PushError {
        use std::error::Error as _;
        let what = if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "cannot connect"
        } else {
            "failed"
        };
        let e = e.without_url();
        let mut chain = Vec::new();
        let mut source = e.source();
        while let Some(s) = source {
            chain.push(s.to_string());
            source = s.source();
        }
        let detail = chain.last().cloned().unwrap_or_else(|| e.to_string());
        PushError { message: self.scrub(&format!("push delivery {what}: {detail}")), permanent: false }
    }

    /// Takes the token out of text a server or a library wrote.
    fn scrub(&self, text: &str) -> String {
        let t = self.token.expose();
        if t.len() >= 3 { text.replace(t, "***") } else { text.to_owned() }
    }
}

/// A header value: ASCII as is; anything else as an RFC 2047 encoded word, which ntfy decodes
/// (a region named "Lofoten og Vesterålen" is not ASCII).
fn header_text(s: &str) -> String {
    let clean: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if clean.is_ascii() { clean } else { format!("=?UTF-8?B?{}?=", base64(clean.as_bytes())) }
}

fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ABC[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// One request as the receiver saw it: request line, headers (lower-case names), body.
    #[derive(Debug, Clone)]
    pub(crate) struct Seen {
        pub line: String,
        pub headers: Vec<(String, String)>,
        pub body: String,
    }

    impl Seen {
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
        }
    }

    /// A real HTTP/1.1 server on loopback answering each request with the next status of
    /// `answers` (the last one repeats), recording what it got.
    pub(crate) async fn receiver(answers: Vec<u16>) -> (String, Arc<Mutex<Vec<Seen>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/outpost-alerts", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            let mut n = 0;
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head_end, length) = loop {
                    let Ok(k) = socket.read(&mut chunk).await else { break (0, 0) };
                    if k == 0 {
                        break (0, 0);
                    }
                    buf.extend_from_slice(&chunk[..k]);
                    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..p]).to_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0usize);
                        break (p + 4, len);
                    }
                };
                while buf.len() < head_end + length {
                    let Ok(k) = socket.read(&mut chunk).await else { break };
                    if k == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..k]);
                }
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let mut lines = head.lines();
                let line = lines.next().unwrap_or_default().to_owned();
                let headers = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_owned()))
                    .collect();
                let body = String::from_utf8_lossy(&buf[head_end..]).to_string();
                log.lock().unwrap().push(Seen { line, headers, body });
                let code = answers[n.min(answers.len() - 1)];
                n += 1;
                let body = format!("{{\"error\":\"said {code} here\"}}");
                let text =
                    format!("HTTP/1.1 {code} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                let _ = socket.write_all(text.as_bytes()).await;
            }
        });
        (url, seen)
    }

    fn notice() -> Notice {
        Notice {
            title: "Avalanche danger 3 in Lofoten og Vesterålen".into(),
            message: "Considerable danger.\nWind slabs above 600 m.".into(),
            priority: 4,
            tags: vec!["warning".into(), "danger-3".into()],
            click: Some("http://outpost.local:8080/avalanche?date=2024-01-16".into()),
        }
    }

    #[test]
    fn a_pass_push_carries_the_email_text_with_the_brightness_and_no_signature() {
        use crate::alerts::message::{Sky, compose};
        use crate::domain::AlertKind;
        use crate::passes::{Pass, PassPoint};
        let t = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
        let pt = |s: &str, az: f64, el: f64| PassPoint { time: t(s), azimuth_deg: az, elevation_deg: el };
        let pass = Pass {
            rise: pt("2023-09-18T19:38:31Z", 217.6, 10.0),
            culmination: pt("2023-09-18T19:40:58Z", 170.7, 18.9),
            set: pt("2023-09-18T19:43:25Z", 123.8, 10.0),
            visible: true,
            visible_from: Some(t("2023-09-18T19:38:31Z")),
            visible_to: Some(t("2023-09-18T19:43:25Z")),
            magnitude: Some(-3.2),
        };
        let oslo = chrono::FixedOffset::east_opt(2 * 3600).unwrap();
        let email = compose(AlertKind::Pass, &Sky::new(&pass, pass.rise, pass.set), "http://pi.local/", &oslo);
        let n = Notice::for_pass(AlertKind::Pass, &email, "http://pi.local/");
        assert_eq!(n.title, "ISS visible at 21:38 — look SW");
        assert!(
            n.message.ends_with(
                "Visible for: 4 min 54 s\nBrightness: magnitude -3.2 (very bright)\n\nMap: http://pi.local/"
            ),
            "{}",
            n.message
        );
        assert!(!n.message.contains("Outpost"), "the signature is left out: {}", n.message);
        assert_eq!((n.priority, n.click.as_deref()), (3, Some("http://pi.local/")));
        assert_eq!(Notice::for_pass(AlertKind::Overhead, &email, "http://pi.local/").priority, 4);
    }

    fn pusher(url: &str, format: &str, token: &str) -> Pusher {
        crate::install_tls_provider();
        let cfg: PushConfig =
            toml::from_str(&format!("url = \"{url}\"\nformat = \"{format}\"\ntoken = \"{token}\"\n")).unwrap();
        cfg.validate().unwrap();
        Pusher::new(&cfg).unwrap()
    }

    #[tokio::test]
    async fn ntfy_format_sends_the_headers_ntfy_reads_and_the_text_as_body() {
        let (url, seen) = receiver(vec![200]).await;
        pusher(&url, "ntfy", "tk_secret123").send(&notice()).await.unwrap();
        let seen = seen.lock().unwrap()[0].clone();
        assert_eq!(seen.line, "POST /outpost-alerts HTTP/1.1");
        assert_eq!(seen.header("authorization"), Some("Bearer tk_secret123"));
        assert_eq!(seen.header("priority"), Some("4"));
        assert_eq!(seen.header("tags"), Some("warning,danger-3"));
        assert_eq!(seen.header("click"), Some("http://outpost.local:8080/avalanche?date=2024-01-16"));
        let title = seen.header("title").unwrap();
        let encoded = title.strip_prefix("=?UTF-8?B?").and_then(|t| t.strip_suffix("?=")).unwrap();
        assert_eq!(encoded, base64("Avalanche danger 3 in Lofoten og Vesterålen".as_bytes()));
        assert_eq!(seen.body, "Considerable danger.\nWind slabs above 600 m.");
    }

    #[tokio::test]
    async fn json_format_sends_one_object() {
        let (url, seen) = receiver(vec![204]).await;
        pusher(&url, "json", "").send(&notice()).await.unwrap();
        let seen = seen.lock().unwrap()[0].clone();
        assert_eq!(seen.header("authorization"), None);
        assert_eq!(seen.header("content-type"), Some("application/json"));
        let v: serde_json::Value = serde_json::from_str(&seen.body).unwrap();
        assert_eq!(v["title"], "Avalanche danger 3 in Lofoten og Vesterålen");
        assert_eq!(v["priority"], 4);
        assert_eq!(v["tags"][1], "danger-3");
        assert_eq!(v["click"], "http://outpost.local:8080/avalanche?date=2024-01-16");
    }

    #[tokio::test]
    async fn errors_are_classified_and_name_neither_the_url_nor_the_token() {
        for (code, permanent) in [(401, true), (404, true), (429, false), (500, false), (503, false)] {
            let (url, _) = receiver(vec![code]).await;
            let e = pusher(&url, "ntfy", "tk_secret123").send(&notice()).await.unwrap_err();
            assert_eq!(e.permanent, permanent, "{code}: {e}");
            assert!(e.message.contains(&format!("HTTP {code}")), "{e}");
            assert!(e.message.contains(&format!("said {code} here")), "the server's words are quoted: {e}");
            assert!(!e.message.contains("127.0.0.1") && !e.message.contains("outpost-alerts"), "{e}");
        }
        // Nothing listens: a transport error, retried, without the address.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let e = pusher(&format!("http://{closed}/topic"), "ntfy", "tk_secret123").send(&notice()).await.unwrap_err();
        assert!(!e.permanent, "{e}");
        assert!(e.message.starts_with("push delivery cannot connect"), "{e}");
        assert!(!e.message.contains(&closed.to_string()) && !e.message.contains("topic"), "{e}");
    }

    #[test]
    fn the_token_never_prints_and_the_section_is_checked() {
        let cfg: PushConfig = toml::from_str("url = \"https://ntfy.sh/x\"\ntoken = \"tk_secret123\"\n").unwrap();
        assert!(!format!("{cfg:?}").contains("tk_secret123"));
        assert!(!toml::to_string(&cfg).unwrap().contains("tk_secret123"));
        let bad: PushConfig = toml::from_str("url = \"ftp://x\"\n").unwrap();
        assert!(bad.validate().is_err());
        let orphan: PushConfig = toml::from_str("token = \"abc\"\n").unwrap();
        assert!(orphan.validate().is_err());
        assert!(toml::from_str::<PushConfig>("url = \"https://ntfy.sh/x\"\nformat = \"xml\"\n").is_err());
        assert_eq!(base64(b"Ma"), "TWE=");
        assert_eq!(base64(b"Man"), "TWFu");
        assert_eq!(base64(b"M"), "TQ==");
    }
}
