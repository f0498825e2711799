//! The loop every sink runs: read from the sink's cursor, send, advance only after an ack.
//!
//! Guarantees:
//! - Log order, no gaps: batches are read in seq order from the cursor, and the cursor moves only
//!   to the highest seq acknowledged with everything before it.
//! - At most one batch is resent after a crash: while draining a backlog, the new cursor is made
//!   durable (a journal commit) before the next batch is sent. When caught up, it rides the next
//!   regular commit, which happens before the next record can be read.
//! - Collection never waits: the forwarder only reads the store and queues cursor moves.

use super::{Partial, Sink, SinkError, SinkStatus};
use crate::backoff::Backoff;
use crate::store::{Store, WriterHandle};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often an idle forwarder checks its sink anyway.
const IDLE_TICK: Duration = Duration::from_secs(60);

/// Longest a single batch may take before it counts as failed (and is resent).
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

pub fn cursor_name(sink: &str) -> String {
    format!("sink.{sink}")
}

/// What one step did; the loop only decides how long to wait.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A batch was acknowledged; `more` if a full batch was read (a backlog remains).
    Sent {
        more: bool,
    },
    /// Nothing to send.
    Idle,
    Failed {
        permanent: bool,
    },
}

pub struct Forwarder<S: Sink> {
    sink: S,
    store: Store,
    writer: WriterHandle,
    status: Arc<SinkStatus>,
    batch_size: usize,
    cursor_name: String,
    /// Records with a lower seq were stored while this sink was behind (sent as replays).
    live_from: u64,
}

impl<S: Sink> Forwarder<S> {
    /// `status` must hold the sink's persisted cursor (`Store::cursor(&cursor_name(..))`).
    pub fn new(sink: S, store: Store, writer: WriterHandle, status: Arc<SinkStatus>, batch_size: usize) -> Self {
        let cursor_name = cursor_name(sink.name());
        // Everything already stored when the sink starts is backlog.
        let live_from = writer.stats().last_seq.load(std::sync::atomic::Ordering::Relaxed) + 1;
        Forwarder { sink, store, writer, status, batch_size: batch_size.max(1), cursor_name, live_from }
    }

    pub async fn run(mut self, cancel: CancellationToken) {
        let mut committed = self.writer.subscribe();
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        loop {
            // Seen before the read, so a commit that lands during the step still wakes us.
            committed.borrow_and_update();
            let outcome = tokio::select! {
                o = self.try_forward_once() => o,
                _ = cancel.cancelled() => return,
            };
            match outcome {
                Outcome::Sent { more: true } => backoff.reset(),
                Outcome::Sent { more: false } | Outcome::Idle => {
                    backoff.reset();
                    // New commits wake us; so does a periodic tick, so that state sinks (MQTT)
                    // refresh day-dependent values and refill a restarted broker without new data.
                    tokio::select! {
                        r = committed.changed() => if r.is_err() { return },
                        _ = tokio::time::sleep(IDLE_TICK) => {}
                        _ = cancel.cancelled() => return,
                    }
                }
                Outcome::Failed { permanent } => {
                    let wait =
                        backoff.next_delay().max(if permanent { Duration::from_secs(60) } else { Duration::ZERO });
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = cancel.cancelled() => return,
                    }
                }
            }
        }
    }

    /// Reads one batch after the cursor and sends it.
    pub async fn try_forward_once(&mut self) -> Outcome {
        if let Err(e) = self.sink.connect().await {
            return self.fail(e);
        }
        self.status.connected();
        let cursor = self.status.cursor();
        let store = self.store.clone();
        let limit = self.batch_size;
        let batch = match tokio::task::spawn_blocking(move || store.read_after(cursor, limit)).await {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => return self.fail(SinkError::Transient(format!("cannot read the store: {e:#}"))),
            Err(e) => return self.fail(SinkError::Transient(format!("store read task failed: {e}"))),
        };
        let Some(last) = batch.last().map(|r| r.seq) else {
            // Caught up: whatever is stored from now on is live.
            self.live_from = cursor + 1;
            return Outcome::Idle;
        };
        let more = batch.len() == self.batch_size;
        let live_from = self.live_from;
        let result = match tokio::time::timeout(SEND_TIMEOUT, self.sink.send(&batch, live_from)).await {
            Ok(r) => r,
            Err(_) => Err(Partial::from(SinkError::Transient(format!("no acknowledgement within {SEND_TIMEOUT:?}")))),
        };
        match result {
            Ok(()) => {
                self.advance(&batch, last, more).await;
                if !more {
                    // A short batch reached the end of the log: caught up.
                    self.live_from = last + 1;
                }
                Outcome::Sent { more }
            }
            Err(Partial { acked, error }) => {
                if let Some(acked) = acked.filter(|a| *a > cursor) {
                    let done: Vec<_> = batch.iter().take_while(|r| r.seq <= acked).cloned().collect();
                    self.advance(&done, acked, true).await;
                }
                self.fail(error)
            }
        }
    }

    async fn advance(&mut self, sent: &[crate::domain::StoredRecord], up_to: u64, durable_now: bool) {
        let replayed = sent.iter().filter(|r| r.seq < self.live_from).count() as u64;
        self.status.delivered(up_to, sent.len() as u64, replayed);
        self.writer.set_cursor(&self.cursor_name, up_to);
        if durable_now && let Err(e) = self.writer.flush().await {
            tracing::warn!(sink = self.sink.name(), error = %e, "cannot persist the cursor yet; the batch may be resent after a crash");
        }
    }

    fn fail(&mut self, e: SinkError) -> Outcome {
        let first = self.status.snapshot(0).last_error.as_deref() != Some(&e.to_string());
        if first {
            tracing::warn!(sink = self.sink.name(), error = %e, "upstream unavailable; records wait in the log");
        }
        self.status.failed(&e);
        self.sink.disconnect();
        // Until caught up again, everything is backlog.
        self.live_from = u64::MAX;
        Outcome::Failed { permanent: matches!(e, SinkError::Permanent(_)) }
    }
}
