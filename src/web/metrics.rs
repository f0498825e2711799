//! `GET /metrics`: the status in Prometheus text format, every name prefixed `outpost_`.
//! Built per scrape from the same snapshot as `/api/status`, so the two always agree.

use super::AppState;
use super::error::WebError;
use crate::sinks::SinkSnapshot;
use crate::sources::SourceSnapshot;
use crate::status::{Part, Status, WriterStatus};
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;

type Labels = Vec<(&'static str, String)>;

/// Adds labelled values of one metric to the registry.
struct Metrics {
    registry: Registry,
}

impl Metrics {
    fn counter(&mut self, name: &str, help: &str, values: impl IntoIterator<Item = (Labels, u64)>) {
        let family = Family::<Labels, Counter>::default();
        for (labels, v) in values {
            family.get_or_create(&labels).inc_by(v);
        }
        self.registry.register(name, help, family);
    }

    fn gauge(&mut self, name: &str, help: &str, values: impl IntoIterator<Item = (Labels, f64)>) {
        let family = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        for (labels, v) in values {
            family.get_or_create(&labels).set(v);
        }
        self.registry.register(name, help, family);
    }
}

fn unix(t: Option<chrono::DateTime<chrono::Utc>>) -> Option<f64> {
    Some(t?.timestamp_millis() as f64 / 1000.0)
}

pub fn render(s: &Status) -> Result<String, std::fmt::Error> {
    let mut m = Metrics { registry: Registry::with_prefix("outpost") };
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
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &m.registry)?;
    Ok(out)
}

fn f((labels, v): (Labels, u64)) -> (Labels, f64) {
    (labels, v as f64)
}

pub async fn metrics(State(app): State<AppState>) -> Result<impl IntoResponse, WebError> {
    let status = super::blocking(move || Status::collect(&app.probes)).await?;
    let text = render(&status).map_err(|e| WebError::Internal(e.into()))?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text))
}
