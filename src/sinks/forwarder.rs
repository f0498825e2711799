//! The loop every sink runs: read from the sink's cursor, send, advance only after an ack.
//!
//! Guarantees:
//! - Log order, no gaps: batches are read in seq order from the cursor, and the cursor moves only
//!   to the highest seq acknowledged with everything before it.
//! - At most one batch is resent after a crash: while draining a backlog, the new cursor is made
//!   durable (a journal commit) before the next batch is sent. When caught up, it rides the next
//!   regular commit, which happens before the next record can be read.
//! - Collection never waits: the forwarder only reads the store and queues cursor moves.
//! - One bad record never stops a sink: a record the upstream refuses for what it is
//!   (`SinkError::Refused`) is set aside in the store's dead-letter list, in the same commit as
//!   the cursor moving past it; transient failures are retried for ever.
//! - The appliance's own bookkeeping (alert emails, dead letters) is never sent upstream.

use super::{Partial, Sink, SinkError, SinkStatus};
use crate::backoff::Backoff;
use crate::domain::{DeadLetter, Record, StoredRecord};
use crate::store::{Store, WriterHandle};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
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
    /// Requests to re-send the dead letters (`outpost resend`), answered with a report.
    resend: mpsc::Receiver<oneshot::Sender<ResendReport>>,
}

/// What re-sending a sink's dead letters did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResendReport {
    /// Dead letters the upstream has now acknowledged (they leave the list).
    pub resent: u64,
    /// Dead letters it refused again (they stay, with the new reason logged).
    pub refused_again: u64,
    /// Why the re-send stopped early (the upstream is down): the rest stay for a later try.
    pub error: Option<String>,
}

impl<S: Sink> Forwarder<S> {
    /// `status` must hold the sink's persisted cursor (`Store::cursor(&cursor_name(..))`).
    /// `resend` receives `outpost resend` requests (keep its sender; dropping it is fine).
    pub fn new(
        sink: S,
        store: Store,
        writer: WriterHandle,
        status: Arc<SinkStatus>,
        batch_size: usize,
        resend: mpsc::Receiver<oneshot::Sender<ResendReport>>,
    ) -> Self {
        let cursor_name = cursor_name(sink.name());
        // Everything already stored when the sink starts is backlog.
        let live_from = writer.stats().last_seq.load(std::sync::atomic::Ordering::Relaxed) + 1;
        Forwarder { sink, store, writer, status, batch_size: batch_size.max(1), cursor_name, live_from, resend }
    }

    /// Sends every dead letter of this sink again, oldest first, as a replay; the acknowledged
    /// ones get their `store::dead_letter_resent_mark` and leave the list. Stops at the first failure that is not
    /// a refusal (the rest wait for a later try).
    pub async fn resend_dead_letters(&mut self) -> ResendReport {
        let mut report = ResendReport::default();
        if let Err(e) = self.sink.connect().await {
            report.error = Some(e.to_string());
            return report;
        }
        let (store, name) = (self.store.clone(), self.sink.name());
        let pending = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<StoredRecord>> {
            let mut out = Vec::new();
            for d in store.pending_dead_letters(Some(name))? {
                out.extend(store.read_after(d.seq - 1, 1)?.into_iter().filter(|r| r.seq == d.seq));
            }
            Ok(out)
        })
        .await;
        let pending = match pending {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                report.error = Some(format!("cannot read the store: {e:#}"));
                return report;
            }
            Err(e) => {
                report.error = Some(format!("store read task failed: {e}"));
                return report;
            }
        };
        for record in pending {
            let one = std::slice::from_ref(&record);
            match tokio::time::timeout(SEND_TIMEOUT, self.sink.send(one, 0)).await {
                Ok(Ok(())) => {
                    self.writer.set_mark(&crate::store::dead_letter_resent_mark(name, record.seq), 1);
                    report.resent += 1;
                }
                Ok(Err(Partial { error: SinkError::Refused { reason, .. }, .. })) => {
                    tracing::warn!(sink = name, seq = record.seq, reason = %reason, "dead letter refused again");
                    report.refused_again += 1;
                }
                Ok(Err(Partial { error, .. })) => {
                    report.error = Some(error.to_string());
                    self.sink.disconnect();
                    break;
                }
                Err(_) => {
                    report.error = Some(format!("no acknowledgement within {SEND_TIMEOUT:?}"));
                    self.sink.disconnect();
                    break;
                }
            }
        }
        if let Err(e) = self.writer.flush().await {
            report.error.get_or_insert(format!("cannot record the re-sent dead letters: {e:#}"));
        }
        self.status.resent(report.resent);
        tracing::info!(sink = name, resent = report.resent, refused_again = report.refused_again, error = ?report.error, "dead letters re-sent");
        report
    }

    pub async fn run(mut self, cancel: CancellationToken) {
        let mut committed = self.writer.subscribe();
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        loop {
            while let Ok(reply) = self.resend.try_recv() {
                let _ = reply.send(self.resend_dead_letters().await);
            }
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
                    // refresh day-dependent values and refill a restarted broker without new data,
                    // and the sink itself when a value of its changes on time.
                    tokio::select! {
                        r = committed.changed() => if r.is_err() { return },
                        _ = tokio::time::sleep(IDLE_TICK) => {}
                        _ = self.sink.wake() => {}
                        Some(reply) = self.resend.recv() => { let _ = reply.send(self.resend_dead_letters().await); }
                        _ = cancel.cancelled() => return,
                    }
                }
                Outcome::Failed { permanent } => {
                    let wait =
                        backoff.next_delay().max(if permanent { Duration::from_secs(60) } else { Duration::ZERO });
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        Some(reply) = self.resend.recv() => { let _ = reply.send(self.resend_dead_letters().await); }
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
        // The appliance's own bookkeeping (alert emails, dead letters) stays local.
        let batch: Vec<StoredRecord> = batch.into_iter().filter(|r| r.record.kind().is_forwarded()).collect();
        if batch.is_empty() {
            self.advance(&[], last, more).await;
            if !more {
                self.live_from = last + 1;
            }
            return Outcome::Sent { more };
        }
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
            Err(Partial { error: SinkError::Refused { seq, reason }, .. }) => self.set_aside(&batch, seq, reason).await,
            Err(Partial { acked, error }) => {
                if let Some(acked) = acked.filter(|a| *a > cursor) {
                    let done: Vec<_> = batch.iter().take_while(|r| r.seq <= acked).cloned().collect();
                    self.advance(&done, acked, true).await;
                }
                self.fail(error)
            }
        }
    }

    /// The upstream refused record `seq` for what it is, after acknowledging everything before
    /// it: the record goes to the dead-letter list and the cursor moves past it, in one commit.
    async fn set_aside(&mut self, batch: &[StoredRecord], seq: u64, reason: String) -> Outcome {
        let Some(refused) = batch.iter().find(|r| r.seq == seq) else {
            return self.fail(SinkError::Transient(format!("the sink refused record {seq}, which it was not sent")));
        };
        let kind = refused.record.kind();
        tracing::warn!(sink = self.sink.name(), seq, kind = %kind, reason = %reason, "record refused by the upstream; set aside in the dead-letter list");
        self.writer.append(Record::DeadLetter(DeadLetter {
            sink: self.sink.name().to_owned(),
            seq,
            record_kind: kind,
            reason,
            at: chrono::Utc::now(),
        }));
        self.status.set_aside();
        let done: Vec<StoredRecord> = batch.iter().take_while(|r| r.seq < seq).cloned().collect();
        self.advance(&done, seq, true).await;
        Outcome::Sent { more: true }
    }

    async fn advance(&mut self, sent: &[StoredRecord], up_to: u64, durable_now: bool) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{IssPosition, Kind};
    use crate::store::StoreOptions;
    use std::collections::VecDeque;

    /// What the fake sink answers to one `send`.
    enum Reply {
        Ack,
        Partial(Option<u64>, SinkError),
        /// Never answers (an upstream that accepted the socket and went quiet).
        Hang,
    }

    /// Records every call and answers from a script (then `Ack`, and `Ok` to connect).
    #[derive(Default)]
    struct FakeSink {
        connects: VecDeque<Result<(), SinkError>>,
        replies: VecDeque<Reply>,
        /// (the batch's seqs, live_from) per `send`.
        sent: Vec<(Vec<u64>, u64)>,
        connect_calls: usize,
        disconnects: usize,
    }

    impl Sink for FakeSink {
        const NAME: &'static str = "fake";

        async fn connect(&mut self) -> Result<(), SinkError> {
            self.connect_calls += 1;
            self.connects.pop_front().unwrap_or(Ok(()))
        }

        async fn send(&mut self, batch: &[StoredRecord], live_from: u64) -> Result<(), Partial> {
            self.sent.push((batch.iter().map(|r| r.seq).collect(), live_from));
            match self.replies.pop_front().unwrap_or(Reply::Ack) {
                Reply::Ack => Ok(()),
                Reply::Partial(acked, error) => Err(Partial { acked, error }),
                Reply::Hang => std::future::pending().await,
            }
        }

        fn disconnect(&mut self) {
            self.disconnects += 1;
        }
    }

    struct Log {
        _dir: tempfile::TempDir,
        store: Store,
        writer: WriterHandle,
        /// Seconds of the next position's time (positions must move forward to be stored).
        next: i64,
    }

    /// An empty store in a tempdir with its writer running (it stops with the last handle).
    fn log() -> Log {
        let dir = tempfile::tempdir().unwrap();
        let (store, writer, _) = Store::open(dir.path(), "test", StoreOptions::default()).unwrap();
        let handle = writer.handle();
        writer.spawn().unwrap();
        Log { _dir: dir, store, writer: handle, next: 0 }
    }

    impl Log {
        /// Stores `n` new positions; returns the last seq.
        async fn append(&mut self, n: usize) -> u64 {
            for _ in 0..n {
                self.next += 10;
                let time = chrono::DateTime::from_timestamp(1_700_000_000 + self.next, 0).unwrap();
                self.writer.append(Record::IssPosition(IssPosition {
                    time,
                    latitude: 1.0,
                    longitude: 2.0,
                    altitude_km: None,
                    velocity_kmh: None,
                    visibility: None,
                }));
            }
            self.writer.flush().await.unwrap()
        }

        fn forwarder(&self, sink: FakeSink, batch_size: usize) -> Forwarder<FakeSink> {
            let cursor = self.store.cursor(&cursor_name("fake")).unwrap();
            let status = Arc::new(SinkStatus::new("fake", cursor));
            Forwarder::new(sink, self.store.clone(), self.writer.clone(), status, batch_size, mpsc::channel(1).1)
        }

        fn persisted_cursor(&self) -> u64 {
            self.store.cursor(&cursor_name("fake")).unwrap()
        }
    }

    fn seqs(f: &Forwarder<FakeSink>) -> Vec<Vec<u64>> {
        f.sink.sent.iter().map(|(s, _)| s.clone()).collect()
    }

    #[tokio::test]
    async fn an_ack_moves_the_cursor_to_the_batch_end_and_more_says_whether_a_backlog_remains() {
        let mut log = log();
        log.append(5).await;
        let mut f = log.forwarder(FakeSink::default(), 2);

        assert_eq!(f.try_forward_once().await, Outcome::Sent { more: true });
        assert_eq!(f.status.cursor(), 2);
        // While draining, the cursor is durable before the next batch is sent.
        assert_eq!(log.persisted_cursor(), 2);
        assert_eq!(f.try_forward_once().await, Outcome::Sent { more: true });
        assert_eq!(f.status.cursor(), 4);
        assert_eq!(f.try_forward_once().await, Outcome::Sent { more: false }, "a short batch: the end of the log");
        assert_eq!(f.status.cursor(), 5);
        assert_eq!(f.try_forward_once().await, Outcome::Idle);
        assert_eq!(seqs(&f), [vec![1, 2], vec![3, 4], vec![5]], "in order, no gaps, nothing twice");
        assert_eq!(f.sink.connect_calls, 4, "every step makes sure of the connection");
        let s = f.status.snapshot(5);
        assert_eq!((s.delivered, s.backlog, s.connected), (5, 0, true));
        assert!(s.last_delivered.is_some() && s.last_error.is_none(), "{s:?}");

        // A full batch that happens to end the log says `more`; the next step finds nothing.
        log.append(2).await;
        assert_eq!(f.try_forward_once().await, Outcome::Sent { more: true });
        assert_eq!(f.try_forward_once().await, Outcome::Idle);
        assert_eq!(f.status.cursor(), 7);
    }

    #[tokio::test]
    async fn a_partial_ack_advances_exactly_to_the_acked_seq_and_fails() {
        let mut log = log();
        log.append(5).await;
        let mut sink = FakeSink::default();
        sink.replies.push_back(Reply::Partial(Some(3), SinkError::Transient("broker hiccup".into())));
        sink.replies.push_back(Reply::Partial(None, SinkError::Permanent("quota".into())));
        let mut f = log.forwarder(sink, 10);

        assert_eq!(f.try_forward_once().await, Outcome::Failed { permanent: false });
        assert_eq!(f.status.cursor(), 3);
        assert_eq!(log.persisted_cursor(), 3, "a partial ack is made durable at once");
        let s = f.status.snapshot(5);
        assert_eq!((s.delivered, s.backlog, s.connected), (3, 2, false));
        assert_eq!(s.last_error.as_deref(), Some("broker hiccup"));
        assert_eq!(f.sink.disconnects, 1, "the next connect starts afresh");

        // Nothing acked: the cursor stays; a permanent error says so.
        assert_eq!(f.try_forward_once().await, Outcome::Failed { permanent: true });
        assert_eq!(f.status.cursor(), 3);
        assert_eq!(f.try_forward_once().await, Outcome::Sent { more: false });
        assert_eq!(seqs(&f), [vec![1, 2, 3, 4, 5], vec![4, 5], vec![4, 5]], "resent from after the ack");
        assert_eq!(f.status.cursor(), 5);
        assert_eq!(f.status.snapshot(5).delivered, 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_send_that_never_answers_times_out_without_moving_the_cursor() {
        let mut log = log();
        log.append(3).await;
        let mut sink = FakeSink::default();
        sink.replies.push_back(Reply::Hang);
        let mut f = log.forwarder(sink, 10);

        let started = tokio::time::Instant::now();
        // The store read runs on the blocking pool, which holds paused time still meanwhile;
        // the hung send then lets the 30 s pass at once.
        assert_eq!(f.try_forward_once().await, Outcome::Failed { permanent: false });
        assert!(started.elapsed() >= SEND_TIMEOUT, "{:?}", started.elapsed());
        assert_eq!(seqs(&f), [vec![1, 2, 3]], "the batch was read and handed over");
        assert_eq!(f.status.cursor(), 0);
        let s = f.status.snapshot(3);
        assert_eq!((s.delivered, s.backlog), (0, 3));
        assert_eq!(s.last_error.as_deref(), Some("no acknowledgement within 30s"));
        assert_eq!(f.sink.disconnects, 1);

        assert_eq!(f.try_forward_once().await, Outcome::Sent { more: false }, "resent whole");
        assert_eq!(seqs(&f)[1], [1, 2, 3]);
        assert_eq!(f.status.cursor(), 3);
    }

    #[tokio::test]
    async fn records_stored_before_the_start_or_after_a_failure_are_replays_and_the_rest_live() {
        let mut log = log();
        log.append(3).await;
        let mut f = log.forwarder(FakeSink::default(), 10);

        // Stored before the forwarder started: a backlog, marked as replays.
        assert_eq!(f.try_forward_once().await, Outcome::Sent { more: false });
        assert_eq!(f.sink.sent[0], (vec![1, 2, 3], 4));
        assert_eq!((f.status.snapshot(3).delivered, f.status.snapshot(3).replayed), (3, 3));

        // Stored after it caught up: live.
        log.append(2).await;
        assert_eq!(f.try_forward_once().await, Outcome::Sent { more: false });
        assert_eq!(f.sink.sent[1], (vec![4, 5], 4));
        assert_eq!((f.status.snapshot(5).delivered, f.status.snapshot(5).replayed), (5, 3));

        // After a failure everything waiting is backlog, until the forwarder catches up again.
        log.append(1).await;
        f.sink.replies.push_back(Reply::Partial(None, SinkError::Transient("down".into())));
        assert_eq!(f.try_forward_once().await, Outcome::Failed { permanent: false });
        assert_eq!(f.try_forward_once().await, Outcome::Sent { more: false });
        assert_eq!(f.sink.sent[2], (vec![6], 6), "live when first sent");
        assert_eq!(f.sink.sent[3], (vec![6], u64::MAX), "a replay when resent after the failure");
        assert_eq!(f.status.snapshot(6).replayed, 4);
        log.append(1).await;
        assert_eq!(f.try_forward_once().await, Outcome::Sent { more: false });
        assert_eq!(f.sink.sent[4], (vec![7], 7), "live again");
        assert_eq!((f.status.snapshot(7).delivered, f.status.snapshot(7).replayed), (7, 4));
    }

    #[tokio::test]
    async fn a_connect_error_fails_by_its_kind_and_reads_nothing() {
        let mut log = log();
        log.append(2).await;
        let mut sink = FakeSink::default();
        sink.connects.push_back(Err(SinkError::Permanent("bad password".into())));
        sink.connects.push_back(Err(SinkError::Transient("unreachable".into())));
        let mut f = log.forwarder(sink, 10);

        assert_eq!(f.try_forward_once().await, Outcome::Failed { permanent: true });
        assert_eq!(f.status.snapshot(2).last_error.as_deref(), Some("bad password"));
        assert_eq!(f.try_forward_once().await, Outcome::Failed { permanent: false });
        let s = f.status.snapshot(2);
        assert_eq!((s.last_error.as_deref(), s.connected, s.cursor), (Some("unreachable"), false, 0));
        assert!(f.sink.sent.is_empty(), "no batch without a connection");
        assert_eq!(f.sink.disconnects, 2);
        assert_eq!(f.live_from, u64::MAX, "no read, so not caught up either");

        assert_eq!(f.try_forward_once().await, Outcome::Sent { more: false });
        assert_eq!(f.sink.sent, [(vec![1, 2], u64::MAX)], "after failures, what waited is a replay");
    }

    #[tokio::test]
    async fn a_refused_record_is_set_aside_with_its_reason_and_the_sink_goes_on() {
        let mut log = log();
        log.append(5).await;
        let mut sink = FakeSink::default();
        sink.replies
            .push_back(Reply::Partial(Some(2), SinkError::Refused { seq: 3, reason: "MESSAGE_TOO_LARGE".into() }));
        let mut f = log.forwarder(sink, 10);
        assert_eq!(f.try_forward_once().await, Outcome::Sent { more: true }, "it goes on at once");
        assert_eq!(log.persisted_cursor(), 3, "past the refused record, durably");
        let dead = log.store.dead_letters(Some("fake")).unwrap();
        assert_eq!(dead.len(), 1, "{dead:?}");
        assert_eq!(
            (dead[0].seq, dead[0].record_kind, dead[0].reason.as_str()),
            (3, Kind::IssPosition, "MESSAGE_TOO_LARGE")
        );
        assert_eq!(f.status.snapshot(0).dead_letters, 1);
        assert_eq!(f.status.snapshot(0).delivered, 2, "the two before it were acknowledged");
        // The next step sends what follows it; the dead-letter record itself stays local.
        assert!(matches!(f.try_forward_once().await, Outcome::Sent { .. }));
        assert_eq!(seqs(&f), vec![vec![1, 2, 3, 4, 5], vec![4, 5]]);
        assert_eq!(f.status.cursor(), 6, "the dead-letter record (seq 6) was skipped, not sent");
        assert_eq!(f.try_forward_once().await, Outcome::Idle);
        assert_eq!(f.sink.disconnects, 0, "a refused record is not a connection failure");
    }

    #[tokio::test]
    async fn a_refusal_of_a_record_not_in_the_batch_is_a_failure_not_a_skip() {
        let mut log = log();
        log.append(3).await;
        let mut sink = FakeSink::default();
        sink.replies.push_back(Reply::Partial(None, SinkError::Refused { seq: 99, reason: "bug".into() }));
        let mut f = log.forwarder(sink, 10);
        assert_eq!(f.try_forward_once().await, Outcome::Failed { permanent: false });
        assert_eq!(log.persisted_cursor(), 0);
        assert!(log.store.dead_letters(None).unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_appliances_own_bookkeeping_is_never_sent_upstream() {
        use crate::domain::{AlertEmail, AlertKind, AlertOutcome};
        let mut log = log();
        log.append(2).await;
        let at = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        log.writer.append(Record::AlertEmail(AlertEmail {
            alert: AlertKind::Pass,
            pass_rise: at,
            outcome: AlertOutcome::Sent,
            at,
            visible_from: None,
            recipients: 1,
            detail: None,
            channel: Default::default(),
        }));
        log.writer.flush().await.unwrap();
        let mut f = log.forwarder(FakeSink::default(), 10);
        assert!(matches!(f.try_forward_once().await, Outcome::Sent { .. }));
        assert_eq!(seqs(&f), vec![vec![1, 2]]);
        assert_eq!(f.status.cursor(), 3, "the cursor passes the local record");
        // A batch of nothing but bookkeeping moves the cursor without calling the sink.
        log.writer.append(Record::AlertEmail(AlertEmail {
            alert: AlertKind::Overhead,
            pass_rise: at,
            outcome: AlertOutcome::Sent,
            at,
            visible_from: None,
            recipients: 1,
            detail: None,
            channel: Default::default(),
        }));
        log.writer.flush().await.unwrap();
        assert!(matches!(f.try_forward_once().await, Outcome::Sent { more: false }));
        assert_eq!(f.sink.sent.len(), 1);
        assert_eq!(f.status.cursor(), 4);
    }

    #[tokio::test]
    async fn resending_dead_letters_clears_the_acknowledged_and_keeps_the_refused() {
        let mut log = log();
        log.append(4).await;
        let mut sink = FakeSink::default();
        sink.replies.push_back(Reply::Partial(Some(1), SinkError::Refused { seq: 2, reason: "too large".into() }));
        sink.replies.push_back(Reply::Partial(Some(2), SinkError::Refused { seq: 3, reason: "too large".into() }));
        let mut f = log.forwarder(sink, 10);
        for _ in 0..3 {
            f.try_forward_once().await;
        }
        assert_eq!(log.store.pending_dead_letters(Some("fake")).unwrap().len(), 2);
        // The operator raised the limit for one of them: seq 2 now goes through, 3 is refused again.
        f.sink.replies.push_back(Reply::Ack);
        f.sink.replies.push_back(Reply::Partial(None, SinkError::Refused { seq: 3, reason: "still too large".into() }));
        let report = f.resend_dead_letters().await;
        assert_eq!(report, ResendReport { resent: 1, refused_again: 1, error: None });
        let sent_again: Vec<(Vec<u64>, u64)> = f.sink.sent.iter().rev().take(2).rev().cloned().collect();
        assert_eq!(sent_again, vec![(vec![2], 0), (vec![3], 0)], "one by one, as replays");
        let pending = log.store.pending_dead_letters(Some("fake")).unwrap();
        assert_eq!(pending.iter().map(|d| d.seq).collect::<Vec<_>>(), vec![3]);
        assert_eq!(f.status.snapshot(0).dead_letters, 1);
        // An upstream that is down stops the re-send and keeps the rest.
        f.sink.replies.push_back(Reply::Partial(None, SinkError::Transient("down".into())));
        let report = f.resend_dead_letters().await;
        assert_eq!((report.resent, report.error.as_deref()), (0, Some("down")));
        assert_eq!(log.store.pending_dead_letters(Some("fake")).unwrap().len(), 1);
    }
}
