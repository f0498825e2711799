//! `GET /metrics`: the status as metrics, every name prefixed `outpost_`. Built per scrape from
//! the same snapshot as `/api/status`, so the two always agree. Two encodings of the same
//! families, chosen by the `Accept` header: OpenMetrics 1.0 for a client that asks for it (as
//! Prometheus does), else the Prometheus text format 0.0.4 (curl, `promtool check metrics`). They
//! differ in how a counter's family is named (`x` with samples `x_total`, or `x_total`
//! throughout) and OpenMetrics' closing `# EOF`.

use super::AppState;
use super::error::WebError;
use super::slow::SlowClients;
use crate::sinks::SinkSnapshot;
use crate::sources::SourceSnapshot;
use crate::status::{Part, Status, WriterStatus};
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use std::collections::BTreeMap;
use std::fmt::Write;

type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`
    Prometheus,
    /// `application/openmetrics-text; version=1.0.0`
    OpenMetrics,
}

impl Format {
    /// OpenMetrics when the client ranks it at least as high as plain text, else Prometheus text.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let (mut open_metrics, mut text) = (0.0f32, 0.0f32);
        for range in accept.unwrap_or("").split(',') {
            let mut params = range.split(';').map(str::trim);
            let media = params.next().unwrap_or("").to_ascii_lowercase();
            let q = params.filter_map(|p| p.strip_prefix("q=")).find_map(|q| q.parse::<f32>().ok()).unwrap_or(1.0);
            match media.as_str() {
                "application/openmetrics-text" => open_metrics = open_metrics.max(q),
                "text/plain" | "text/*" | "*/*" => text = text.max(q),
                _ => {}
            }
        }
        if open_metrics > 0.0 && open_metrics >= text { Format::OpenMetrics } else { Format::Prometheus }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

enum Value {
    Count(u64),
    Level(f64),
}

struct Family {
    /// Without the prefix and, for a counter, without `_total`.
    name: String,
    help: String,
    counter: bool,
    samples: Vec<(Labels, Value)>,
}

/// The families of one scrape, in the order they are added.
#[derive(Default)]
struct Metrics {
    families: Vec<Family>,
}

impl Metrics {
    fn counter(&mut self, name: &str, help: &str, values: impl IntoIterator<Item = (Labels, u64)>) {
        let samples = values.into_iter().map(|(l, v)| (l, Value::Count(v))).collect();
        self.families.push(Family { name: name.to_owned(), help: help.to_owned(), counter: true, samples });
    }

    fn gauge(&mut self, name: &str, help: &str, values: impl IntoIterator<Item = (Labels, f64)>) {
        let samples = values.into_iter().map(|(l, v)| (l, Value::Level(v))).collect();
        self.families.push(Family { name: name.to_owned(), help: help.to_owned(), counter: false, samples });
    }

    fn encode(&self, format: Format) -> String {
        let mut out = String::new();
        for f in &self.families {
            let sample = if f.counter { format!("outpost_{}_total", f.name) } else { format!("outpost_{}", f.name) };
            let (family, kind) = match (format, f.counter) {
                (Format::OpenMetrics, true) => (format!("outpost_{}", f.name), "counter"),
                (_, counter) => (sample.clone(), if counter { "counter" } else { "gauge" }),
            };
            let help = f.help.replace('\\', "\\\\").replace('\n', "\\n");
            let help = if format == Format::OpenMetrics { help.replace('"', "\\\"") } else { help };
            let _ = writeln!(out, "# HELP {family} {help}\n# TYPE {family} {kind}");
            for (labels, value) in &f.samples {
                out.push_str(&sample);
                if !labels.is_empty() {
                    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
                    let _ = write!(out, "{{{}}}", labels.join(","));
                }
                let _ = match value {
                    Value::Count(n) => writeln!(out, " {n}"),
                    Value::Level(x) if x.is_nan() => writeln!(out, " NaN"),
                    Value::Level(x) if x.is_infinite() => writeln!(out, " {}Inf", if *x > 0.0 { '+' } else { '-' }),
                    Value::Level(x) => writeln!(out, " {x}"),
                };
            }
        }
        if format == Format::OpenMetrics {
            out.push_str("# EOF\n");
        }
        out
    }
}

/// A label value, escaped the same way by both formats.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn unix(t: Option<chrono::DateTime<chrono::Utc>>) -> Option<f64> {
    Some(t?.timestamp_millis() as f64 / 1000.0)
}

pub fn render(s: &Status, slow: &SlowClients, format: Format) -> String {
    let mut m = Metrics::default();
    let by_source =
        |f: fn(&SourceSnapshot) -> u64| s.sources.iter().map(move |(n, v)| (vec![("source", n.clone())], f(v)));
    m.counter("polls", "Upstream requests made, per collector.", by_source(|v| v.polls));
    m.counter("poll_failures", "Polls that failed (HTTP error, time-out, bad answer).", by_source(|v| v.failures));
    m.counter("records_collected", "Records a collector handed to the store.", by_source(|v| v.records));
    m.counter(
        "rejections",
        "Inputs refused, per collector and reason.",
        s.sources.iter().flat_map(|(n, v)| {
            v.rejections.iter().map(move |(r, c)| (vec![("source", n.clone()), ("reason", r.clone())], *c))
        }),
    );
    m.gauge(
        "source_last_success_timestamp_seconds",
        "When each collector last succeeded.",
        s.sources.iter().filter_map(|(n, v)| Some((vec![("source", n.clone())], unix(v.last_success)?))),
    );
    let writer = s.writer.as_ref();
    let per_kind = |f: fn(&WriterStatus) -> &BTreeMap<String, u64>| {
        writer.into_iter().flat_map(move |w| f(w).iter().map(|(k, v)| (vec![("kind", k.clone())], *v)))
    };
    m.counter("records_stored", "Records stored by this process, per kind.", per_kind(|w| &w.stored));
    m.counter("duplicates", "Records refused as already stored, per kind.", per_kind(|w| &w.duplicates));
    let store = &s.store.summary;
    m.gauge(
        "store_records",
        "Records in the log, per kind (all time).",
        store.kinds.iter().map(|k| (vec![("kind", k.kind.as_str().to_owned())], k.count as f64)),
    );
    m.gauge("store_bytes", "Size of the store file.", [(vec![], store.size_bytes as f64)]);
    m.gauge("store_last_seq", "The newest record's sequence number.", [(vec![], store.last_seq as f64)]);
    let w = |f: fn(&WriterStatus) -> u64| writer.map_or(0, f);
    m.gauge("journal_bytes", "Bytes in the journal since the last fold.", [(vec![], w(|w| w.journal_bytes) as f64)]);
    m.counter("commits", "Journal commits (one fsync each).", [(vec![], w(|w| w.commits))]);
    m.counter("folds", "Durable redb commits.", [(vec![], w(|w| w.folds))]);
    m.counter(
        "records_dropped",
        "Records dropped by this process: storing failed while store.max_pending records waited.",
        [(vec![], w(|w| w.dropped))],
    );
    m.gauge(
        "tasks_died",
        "The daemon's tasks that ended before shutdown (each turns /healthz to 503).",
        [(vec![], s.tasks_died.len() as f64)],
    );
    m.gauge(
        "store_failing",
        "1 while the store cannot write.",
        [(vec![], f64::from(u8::from(writer.is_some_and(|w| w.error.is_some()))))],
    );
    let enabled: Vec<(&String, &SinkSnapshot)> = s.sinks.iter().filter_map(|(n, v)| Some((n, v.on()?))).collect();
    let by_sink = |f: fn(&SinkSnapshot) -> u64| enabled.iter().map(move |(n, v)| (vec![("sink", (*n).clone())], f(v)));
    m.gauge("sink_backlog_records", "Stored records not yet acknowledged upstream.", by_sink(|v| v.backlog).map(f));
    m.gauge("sink_connected", "1 while the upstream is reachable.", by_sink(|v| u64::from(v.connected)).map(f));
    m.counter("sink_delivered", "Records acknowledged upstream by this process.", by_sink(|v| v.delivered));
    m.gauge(
        "sink_dead_letters",
        "Records the upstream refused for what they are, set aside (all time).",
        by_sink(|v| v.dead_letters).map(f),
    );
    if let Some(Part::On(email)) = &s.email {
        m.counter(
            "emails",
            "Pass emails by outcome, this process.",
            [("sent", email.sent), ("missed", email.missed), ("failures", email.failures)]
                .map(|(o, n)| (vec![("outcome", o.to_owned())], n)),
        );
        m.gauge("emails_pending", "Pass emails still to send (next 24 h).", [(vec![], email.pending.len() as f64)]);
    }
    if let Some(Part::On(push)) = &s.pass_push {
        m.counter(
            "pass_pushes",
            "Pass alerts by push, by outcome, this process.",
            [("sent", push.sent), ("missed", push.missed), ("failures", push.failures)]
                .map(|(o, n)| (vec![("outcome", o.to_owned())], n)),
        );
    }
    if let Some(Part::On(danger)) = &s.danger_alerts {
        m.counter(
            "danger_alerts",
            "Avalanche danger alerts by outcome (every channel), this process.",
            [("sent", danger.sent), ("missed", danger.missed), ("failures", danger.failures)]
                .map(|(o, n)| (vec![("outcome", o.to_owned())], n)),
        );
        m.gauge("danger_alerts_retrying", "Danger alerts failing and retried.", [(vec![], danger.retrying as f64)]);
    }
    // The front door (web/guard.rs, web/auth.rs): counted by the web server, not in the status.
    let (refused, auth_failures) = super::guard::DOOR.snapshot();
    m.counter(
        "web_requests_refused",
        "Requests refused at the front door, by reason: host, unauthorized (401), throttled (429).",
        refused.map(|(reason, n)| (vec![("reason", reason.to_owned())], n)),
    );
    m.counter("web_auth_failures", "Requests with wrong basic-auth credentials.", [(vec![], auth_failures)]);
    m.gauge("uptime_seconds", "Seconds since start.", [(vec![], s.uptime_s.unwrap_or(0) as f64)]);
    m.gauge("build_info", "The running version.", [(vec![("version", s.version.clone())], 1.0)]);
    m.counter(
        "exports",
        "Exports (/api/export) by outcome: completed, refused (the limit was running), stalled (cut off: the client took nothing), disconnected, failed.",
        slow.outcomes().map(|(o, n)| (vec![("outcome", o.as_str().to_owned())], n)),
    );
    m.gauge("exports_running", "Exports running now.", [(vec![], slow.exports_running() as f64)]);
    m.counter(
        "http_stalled_connections",
        "Connections closed because the client took no bytes of an answer for the write stall time.",
        [(vec![], slow.stalled_connections())],
    );
    m.counter(
        "http_idle_connections",
        "Connections closed because no byte went either way for the write stall time (a half-sent request, an idle keep-alive).",
        [(vec![], slow.idle_connections())],
    );
    m.counter(
        "http_refused_connections",
        "Connections closed at once because their client address (or all clients) held the most allowed.",
        [(vec![], slow.refused_connections())],
    );
    m.encode(format)
}

fn f((labels, v): (Labels, u64)) -> (Labels, f64) {
    (labels, v as f64)
}

pub async fn metrics(State(app): State<AppState>, headers: HeaderMap) -> Result<impl IntoResponse, WebError> {
    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let probes = app.probes.clone();
    let status = super::blocking(move || Status::collect(&probes)).await?;
    Ok(([(header::CONTENT_TYPE, format.content_type())], render(&status, &app.slow, format)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_asks_for_open_metrics_and_everyone_else_gets_text() {
        // Prometheus 2.x's scrape Accept header.
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(None), Format::Prometheus);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Prometheus);
        assert_eq!(Format::negotiate(Some("text/plain;q=1, application/openmetrics-text;q=0.5")), Format::Prometheus);
        assert_eq!(Format::negotiate(Some("application/openmetrics-text;q=0")), Format::Prometheus);
        assert_eq!(Format::negotiate(Some("Application/OpenMetrics-Text")), Format::OpenMetrics);
    }

    #[test]
    fn a_counter_is_named_as_each_format_wants_and_values_are_escaped() {
        let mut m = Metrics::default();
        m.counter("polls", "Polls \"made\".", [(vec![("source", "a\"b\\c\nd".to_owned())], 7)]);
        m.gauge("level", "A level.", [(vec![], 0.5), (vec![("x", "y".into())], f64::INFINITY)]);
        assert_eq!(
            m.encode(Format::Prometheus),
            "# HELP outpost_polls_total Polls \"made\".\n# TYPE outpost_polls_total counter\n\
             outpost_polls_total{source=\"a\\\"b\\\\c\\nd\"} 7\n\
             # HELP outpost_level A level.\n# TYPE outpost_level gauge\noutpost_level 0.5\noutpost_level{x=\"y\"} +Inf\n"
        );
        assert_eq!(
            m.encode(Format::OpenMetrics),
            "# HELP outpost_polls Polls \\\"made\\\".\n# TYPE outpost_polls counter\n\
             outpost_polls_total{source=\"a\\\"b\\\\c\\nd\"} 7\n\
             # HELP outpost_level A level.\n# TYPE outpost_level gauge\noutpost_level 0.5\noutpost_level{x=\"y\"} +Inf\n# EOF\n"
        );
    }
}
