//! `GET /api/events`: the log as server-sent events, so the map moves without polling. Each
//! record committed after the client connects is one event: `id:` its seq and a `data:` line
//! with its published JSON (the Kafka message form, docs/messages.md). A reconnecting browser
//! sends `Last-Event-ID` and gets what it missed (up to `MAX_REPLAY` records), so nothing is
//! skipped by a Wi-Fi blip.

use super::AppState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use std::time::Duration;
use tokio_stream::wrappers::ReceiverStream;

/// A client further behind than this starts from the present.
const MAX_REPLAY: u64 = 2_000;
/// Records read per store transaction.
const CHUNK: usize = 256;

pub async fn events(State(app): State<AppState>, headers: HeaderMap) -> impl IntoResponse {
    let mut committed = app.writer.subscribe();
    let newest = *committed.borrow_and_update();
    let resume = headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    let mut after = match resume {
        Some(seen) if seen <= newest && newest - seen <= MAX_REPLAY => seen,
        _ => newest,
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Event, std::convert::Infallible>>(64);
    tokio::spawn(async move {
        loop {
            // Send everything committed after `after`, then wait for the next commit.
            loop {
                let store = app.store.clone();
                let from = after;
                let batch = match tokio::task::spawn_blocking(move || store.read_after(from, CHUNK)).await {
                    Ok(Ok(batch)) => batch,
                    Ok(Err(e)) => {
                        tracing::warn!(error = format!("{e:#}"), "event stream: store read failed");
                        return;
                    }
                    Err(_) => return,
                };
                let Some(last) = batch.last() else { break };
                after = last.seq;
                for rec in &batch {
                    let data = crate::message::message(rec).to_string();
                    let event = Event::default().id(rec.seq.to_string()).data(data);
                    if tx.send(Ok(event)).await.is_err() {
                        return; // the browser went away
                    }
                }
                if batch.len() < CHUNK {
                    break;
                }
            }
            tokio::select! {
                changed = committed.changed() => if changed.is_err() { return },
                _ = app.shutdown.cancelled() => return,
                _ = tx.closed() => return,
            }
        }
    });
    // Comments every 15 s keep proxies and phones from closing an idle stream.
    Sse::new(ReceiverStream::new(rx)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
