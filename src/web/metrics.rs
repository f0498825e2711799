//! `GET /metrics`: the status in Prometheus text format, every name prefixed `outpost_`.
//! Built per scrape from the same snapshot as `/api/status`, so the two always agree.

use super::AppState;
use super::error::WebError;
use crate::status::Status;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde_json::Value;
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

fn u(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// An RFC 3339 field as Unix seconds.
fn unix(v: &Value, key: &str) -> Option<f64> {
    let t = chrono::DateTime::parse_from_rfc3339(v.get(key)?.as_str()?).ok()?;
    Some(t.timestamp_millis() as f64 / 1000.0)
}

pub fn render(s: &Status) -> Result<String, std::fmt::Error> {
    let mut m = Metrics { registry: Registry::with_prefix("outpost") };
    let by_source = |key: &'static str| s.sources.iter().map(move |(n, v)| (vec![("source", n.clone())], u(v, key)));
    m.counter("polls", "Upstream requests made, per collector.", by_source("polls"));
    m.counter("poll_failures", "Polls that failed (HTTP error, time-out, bad answer).", by_source("failures"));
    m.counter("records_collected", "Records a collector handed to the store.", by_source("records"));
    m.counter(
        "rejections",
        "Inputs refused, per collector and reason.",
        s.sources.iter().flat_map(|(n, v)| {
            let reasons = v.get("rejections").and_then(Value::as_object).cloned().unwrap_or_default();
            reasons.into_iter().map(move |(r, c)| (vec![("source", n.clone()), ("reason", r)], c.as_u64().unwrap_or(0)))
        }),
    );
    m.gauge(
        "source_last_success_timestamp_seconds",
        "When each collector last succeeded.",
        s.sources.iter().filter_map(|(n, v)| Some((vec![("source", n.clone())], unix(v, "last_success")?))),
    );
    m.counter(
        "records_stored",
        "Records stored by this process, per kind.",
        s.writer.stored.iter().map(|(k, v)| (vec![("kind", k.clone())], *v)),
    );
    m.counter(
        "duplicates",
        "Records refused as already stored, per kind.",
        s.writer.duplicates.iter().map(|(k, v)| (vec![("kind", k.clone())], *v)),
    );
    let kinds = s.store.get("kinds").and_then(Value::as_array).cloned().unwrap_or_default();
    m.gauge(
        "store_records",
        "Records in the log, per kind (all time).",
        kinds.iter().map(|k| (vec![("kind", k["kind"].as_str().unwrap_or("?").to_owned())], u(k, "count") as f64)),
    );
    m.gauge("store_bytes", "Size of the store file.", [(vec![], u(&s.store, "size_bytes") as f64)]);
    m.gauge("store_last_seq", "The newest record's sequence number.", [(vec![], u(&s.store, "last_seq") as f64)]);
    m.gauge("journal_bytes", "Bytes in the journal since the last fold.", [(vec![], s.writer.journal_bytes as f64)]);
    m.counter("commits", "Journal commits (one fsync each).", [(vec![], s.writer.commits)]);
    m.counter("folds", "Durable redb commits.", [(vec![], s.writer.folds)]);
    m.gauge(
        "store_failing",
        "1 while the store cannot write.",
        [(vec![], f64::from(u8::from(s.writer.error.is_some())))],
    );
    let enabled: Vec<_> = s.sinks.iter().filter(|(_, v)| v["enabled"] == true).collect();
    let by_sink = |key: &'static str| enabled.iter().map(move |(n, v)| (vec![("sink", (*n).clone())], u(v, key)));
    m.gauge("sink_backlog_records", "Stored records not yet acknowledged upstream.", by_sink("backlog").map(f));
    m.gauge(
        "sink_connected",
        "1 while the upstream is reachable.",
        enabled.iter().map(|(n, v)| (vec![("sink", (*n).clone())], f64::from(u8::from(v["connected"] == true)))),
    );
    m.counter("sink_delivered", "Records acknowledged upstream by this process.", by_sink("delivered"));
    if s.email["enabled"] == true {
        m.counter(
            "emails",
            "Pass emails by outcome, this process.",
            ["sent", "missed", "failures"].map(|o| (vec![("outcome", o.to_owned())], u(&s.email, o))),
        );
        let pending = s.email.get("pending").and_then(Value::as_array).map_or(0, Vec::len);
        m.gauge("emails_pending", "Pass emails still to send (next 24 h).", [(vec![], pending as f64)]);
    }
    m.gauge("uptime_seconds", "Seconds since start.", [(vec![], s.uptime_s as f64)]);
    m.gauge("build_info", "The running version.", [(vec![("version", s.version.clone())], 1.0)]);
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &m.registry)?;
    Ok(out)
}

fn f((labels, v): (Labels, u64)) -> (Labels, f64) {
    (labels, v as f64)
}

pub async fn metrics(State(app): State<AppState>) -> Result<impl IntoResponse, WebError> {
    let status = super::blocking(move || Status::collect(&app)).await?;
    let text = render(&status).map_err(|e| WebError::Internal(e.into()))?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text))
}
