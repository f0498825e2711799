//! What every collector shares: the `[http]` section, the HTTP fetch with its checks, the live
//! status a collector reports (last success, last error, counts, rejections by reason), and the
//! one poll loop: a source says what to fetch and how to parse it; the loop fetches, hands parse
//! results to the store, reports, and decides when to ask again.
//!
//! Collectors never fail as a whole: a bad answer is a `Rejection`, logged once per reason,
//! counted, persisted as a counter, and the loop carries on.

use super::{Rejection, SourceCtx};
use crate::backoff::Backoff;
use crate::cell::StatusCell;
use crate::config::{Invalid, KeyType, Section, range};
use crate::domain::Record;
use crate::store::WriterHandle;
use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// `[http]`: how every collector talks to its upstream.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    #[serde(default = "d_timeout")]
    pub timeout_s: f64,
}

fn d_timeout() -> f64 {
    15.0
}

impl HttpConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout_s)
    }
}

impl Section for HttpConfig {
    const KEYS: &'static [(&'static str, KeyType)] = &[("timeout_s", KeyType::Float)];

    fn validate(&self) -> Result<(), Invalid> {
        range("timeout_s", self.timeout_s, 0.1, 300.0)
    }
}

/// Sent with every request, so upstream operators can tell who is calling.
pub const USER_AGENT: &str =
    concat!("Outpost/", env!("CARGO_PKG_VERSION"), " (home ISS and avalanche-warning appliance)");

/// The HTTP client every collector uses: rustls, a time-out on every request, our User-Agent.
pub fn http_client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    crate::install_tls_provider();
    reqwest::Client::builder().user_agent(USER_AGENT).timeout(timeout).connect_timeout(timeout).build().context(
        "cannot set up HTTPS for the collectors (are the system's CA certificates installed? On Debian and \
         Raspberry Pi OS: apt install ca-certificates)",
    )
}

/// The most an upstream answer may hold. The largest real one is NVE's detail answer for the
/// longest back-fill (`backfill_days` 60 + 2 days of one region): about 11 KB a day as recorded
/// (tests/fixtures), so under 1 MB; an ISS position or a TLE is under 1 KB. The largest weather
/// answer, the archive's 274 days (`backfill_days` 366 less the forecast's 92) for 100 locations
/// with ten values a day written like `-12.3`, is about 2.1 MB. 4 MiB leaves a margin over both
/// and keeps a captive portal or a man in the middle from filling a Pi's memory.
/// The HTTP client decodes no Content-Encoding (reqwest's gzip/brotli/deflate/zstd features are
/// off, and it sends no Accept-Encoding), so the bytes counted are the bytes parsed: a compressed
/// body cannot expand behind the cap.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// How much of a refused (non-2xx) answer is read for the error detail.
const ERROR_BODY_BYTES: usize = 4 * 1024;

/// GETs `url` and returns the body of a 200 answer; anything else is a `Rejection`. A body over
/// `MAX_BODY_BYTES` is `too_large`: refused on its Content-Length before any of it is read, or as
/// soon as the bytes read pass the cap (a body without a length, or with a false one), so at most
/// the cap is ever held. The URL is not repeated in errors: configured URLs may carry credentials.
pub async fn fetch(client: &reqwest::Client, url: &str, accept: &str) -> Result<Vec<u8>, Rejection> {
    let mut response = client.get(url).header(reqwest::header::ACCEPT, accept).send().await.map_err(transport)?;
    let status = response.status();
    if !status.is_success() {
        // Keep the start of the body: CelesTrak explains its 403s there.
        let body = read_body(&mut response, ERROR_BODY_BYTES).await.unwrap_or_else(|(partial, _)| partial);
        let text = String::from_utf8_lossy(&body[..body.len().min(160)]).trim().to_owned();
        return Err(Rejection::new("http_status", format!("HTTP {status}: {text}")));
    }
    if let Some(length) = response.content_length().filter(|&n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large(format!("Content-Length {length}")));
    }
    read_body(&mut response, MAX_BODY_BYTES).await.map_err(|(partial, error)| match error {
        Some(e) => transport(e),
        None => too_large(format!("more than {} bytes sent", partial.len())),
    })
}

fn too_large(what: String) -> Rejection {
    Rejection::new(
        "too_large",
        format!("{what}: the answer is over the {MAX_BODY_BYTES}-byte cap; nothing of it is used"),
    )
}

/// Reads the body chunk by chunk, at most `cap` bytes. On a transport error, or when the body
/// goes on past `cap` (`None`), returns what was read so far; the rest is never read.
async fn read_body(response: &mut reqwest::Response, cap: usize) -> Result<Vec<u8>, (Vec<u8>, Option<reqwest::Error>)> {
    let hint = response.content_length().map_or(0, |n| n.min(cap as u64) as usize);
    let mut body = Vec::with_capacity(hint);
    loop {
        match response.chunk().await {
            Ok(None) => return Ok(body),
            Ok(Some(chunk)) if chunk.len() > cap - body.len() => {
                let room = cap - body.len();
                body.extend_from_slice(&chunk[..room]);
                return Err((body, None));
            }
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Err(e) => return Err((body, Some(e))),
        }
    }
}

fn transport(e: reqwest::Error) -> Rejection {
    let e = e.without_url();
    // reqwest's own message is generic ("error sending request"); the cause is in the chain.
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        detail = format!("{detail}: {s}");
        source = s.source();
    }
    if e.is_timeout() {
        Rejection::new("timeout", "no complete answer within the time-out")
    } else if e.is_connect() {
        Rejection::new("connect", detail)
    } else {
        Rejection::new("transport", detail)
    }
}

/// One collector's live status (shown on /api/status and /status).
#[derive(Debug, Default, Serialize, Deserialize, Clone, PartialEq)]
pub struct SourceSnapshot {
    pub polls: u64,
    pub successes: u64,
    pub failures: u64,
    pub records: u64,
    pub last_success: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_error_time: Option<DateTime<Utc>>,
    pub next_attempt: Option<DateTime<Utc>>,
    /// Count per reason (fetch failures and rejected answers alike).
    pub rejections: BTreeMap<String, u64>,
    /// The latest detail for each reason.
    pub rejection_details: BTreeMap<String, String>,
}

/// A collector's status plus the plumbing to report into it.
pub struct SourceStatus {
    pub name: &'static str,
    cell: StatusCell<SourceSnapshot>,
    writer: WriterHandle,
}

impl SourceStatus {
    pub fn new(name: &'static str, writer: WriterHandle) -> Self {
        SourceStatus { name, cell: StatusCell::default(), writer }
    }

    pub fn snapshot(&self) -> SourceSnapshot {
        self.cell.snapshot()
    }

    fn update(&self, f: impl FnOnce(&mut SourceSnapshot)) {
        self.cell.update(f)
    }

    pub fn polled(&self) {
        self.update(|s| s.polls += 1);
    }

    pub fn succeeded(&self, records: u64) {
        self.update(|s| {
            s.successes += 1;
            s.records += records;
            s.last_success = Some(Utc::now());
        });
    }

    pub fn next_attempt_in(&self, wait: Duration) {
        let at = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
        self.update(|s| s.next_attempt = Some(at));
    }

    /// Records a failure or rejected input: counted always, logged at warn the first time a
    /// reason is seen (and when its detail changes), at debug after that.
    pub fn reject(&self, r: &Rejection, is_failure: bool) {
        let mut first = false;
        self.update(|s| {
            let n = s.rejections.entry(r.reason.to_owned()).or_default();
            *n += 1;
            let changed = s.rejection_details.get(r.reason) != Some(&r.detail);
            first = *n == 1 || changed;
            s.rejection_details.insert(r.reason.to_owned(), r.detail.clone());
            if is_failure {
                s.failures += 1;
                s.last_error = Some(r.to_string());
                s.last_error_time = Some(Utc::now());
            }
        });
        if first {
            tracing::warn!(source = self.name, reason = r.reason, detail = %r.detail, "rejected");
        } else {
            tracing::debug!(source = self.name, reason = r.reason, detail = %r.detail, "rejected again");
        }
        self.writer.count(format!("rejected.{}.{}", self.name, r.reason));
    }
}

/// One request of a round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub url: String,
    pub accept: &'static str,
}

impl Request {
    pub fn json(url: String) -> Self {
        Request { url, accept: "application/json" }
    }
}

/// What a source made of one answer.
#[derive(Debug, Default)]
pub struct Answer {
    pub records: Vec<Record>,
    /// Parts of the answer refused (counted, not a failure of the poll).
    pub rejected: Vec<Rejection>,
    /// Whether the answer counts as a success (an answer that is simply not new yet does not).
    pub success: bool,
}

impl Answer {
    pub fn records(records: Vec<Record>) -> Self {
        Answer { records, rejected: Vec::new(), success: true }
    }

    /// Nothing to store, and nothing wrong either (a cached answer): counted under its reason.
    pub fn nothing_new(r: Rejection) -> Self {
        Answer { records: Vec::new(), rejected: vec![r], success: false }
    }
}

/// When a source polls.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub every: Duration,
    pub backoff: Backoff,
    pub first_wait: Duration,
}

/// A source: what to fetch each round and how to parse it. The loop (`run_polling`) does the
/// rest: fetch with time-out and status checks, hand records to the writer, report, back off.
pub trait Poller: Send + 'static {
    /// Status name (`/api/status` key, rejection counters, log span).
    const NAME: &'static str;

    /// When to poll, decided once at start (`now` from the appliance's clock).
    fn schedule(&self, now: DateTime<Utc>) -> Schedule;

    /// The requests of the next round, planned at `now`. Most sources ask one URL.
    fn plan(&mut self, ctx: &SourceCtx, now: DateTime<Utc>) -> impl std::future::Future<Output = Vec<Request>> + Send;

    /// Turns one answer into records; `Err` refuses the whole answer (a failed poll).
    fn parse(&mut self, body: &[u8], now: DateTime<Utc>) -> Result<Answer, Rejection>;

    /// A request of the round failed before its answer could be parsed (`fetch` refused it:
    /// transport, HTTP status, size). Sources that keep state per request, or react to an
    /// upstream's limit, hear it here; most do not.
    fn failed(&mut self, rejection: &Rejection, now: DateTime<Utc>) {
        let _ = (rejection, now);
    }

    /// The wait after the system clock was set (NTP correcting a Pi that booted at 1970 or in
    /// the future) with `remaining` still to go. By default the round runs at once with a fresh
    /// back-off: what the last rounds asked for, or rejected, followed from the wrong clock.
    fn wait_after_clock_set(&mut self, remaining: Duration) -> Duration {
        let _ = remaining;
        Duration::ZERO
    }
}

/// One round: every planned request fetched, parsed and handed to the writer. `Err(())` when
/// any request failed (already reported), so the next round backs off.
pub async fn poll_round(source: &mut impl Poller, ctx: &SourceCtx) -> Result<(), ()> {
    let requests = source.plan(ctx, ctx.clock.now()).await;
    let mut ok = true;
    for request in requests {
        if ctx.cancel.is_cancelled() {
            return Ok(());
        }
        ctx.status.polled();
        let answer = match fetch(&ctx.client, &request.url, request.accept).await {
            Ok(body) => source.parse(&body, ctx.clock.now()),
            Err(r) => {
                source.failed(&r, ctx.clock.now());
                Err(r)
            }
        };
        match answer {
            Ok(answer) => {
                for r in &answer.rejected {
                    ctx.status.reject(r, false);
                }
                let n = answer.records.len() as u64;
                for record in answer.records {
                    ctx.writer.append(record);
                }
                if answer.success {
                    ctx.status.succeeded(n);
                }
            }
            Err(r) => {
                ctx.status.reject(&r, true);
                ok = false;
            }
        }
    }
    if ok { Ok(()) } else { Err(()) }
}

/// How far the wall clock may move against the monotonic clock while a collector waits before it
/// counts as set (a step by NTP), not drift.
const CLOCK_STEP: chrono::TimeDelta = chrono::TimeDelta::seconds(60);
/// How often a waiting collector compares the two clocks.
const CLOCK_CHECK: Duration = Duration::from_secs(1);

/// How a wait ended.
#[derive(Debug, PartialEq, Eq)]
enum Woke {
    Due,
    Cancelled,
    /// The wall clock moved by `by` against the monotonic one; `remaining` of the wait was left.
    ClockSet {
        remaining: Duration,
        by: chrono::TimeDelta,
    },
}

/// Whether the wall clock moved by more than `CLOCK_STEP` relative to the monotonic clock.
/// Pure, for the tests: `wall` and `mono` are how far each moved over the same interval.
fn clock_was_set(wall: chrono::TimeDelta, mono: Duration) -> Option<chrono::TimeDelta> {
    let by = wall - chrono::TimeDelta::from_std(mono).unwrap_or(chrono::TimeDelta::MAX);
    (by.abs() > CLOCK_STEP).then_some(by)
}

/// Waits `d` (monotonic) unless cancelled, watching the wall clock for a step.
async fn wait_watching_clock(d: Duration, cancel: &tokio_util::sync::CancellationToken) -> Woke {
    let deadline = std::time::Instant::now() + d;
    let (mut wall, mut mono) = (Utc::now(), std::time::Instant::now());
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Woke::Due;
        }
        if !sleep_or_cancel(left.min(CLOCK_CHECK), cancel).await {
            return Woke::Cancelled;
        }
        let (w, m) = (Utc::now(), std::time::Instant::now());
        if let Some(by) = clock_was_set(w - wall, m - mono) {
            return Woke::ClockSet { remaining: deadline.saturating_duration_since(m), by };
        }
        (wall, mono) = (w, m);
    }
}

/// The loop every collector runs: wait, poll, then wait `every` after a success or the
/// back-off's next delay after a failure, until cancelled. A poll in flight is abandoned on
/// shutdown; whatever it would have stored is fetched again by the next start. Waits are
/// monotonic, but a step of the wall clock ends them early (see `Poller::wait_after_clock_set`):
/// rounds planned from a wrong clock (dates asked for, answers rejected as being "from the
/// future") are redone as soon as the clock is right.
pub async fn run_polling(mut source: impl Poller, ctx: SourceCtx) {
    let Schedule { every, mut backoff, first_wait } = source.schedule(ctx.clock.now());
    let mut wait = first_wait;
    loop {
        ctx.status.next_attempt_in(wait);
        match wait_watching_clock(wait, &ctx.cancel).await {
            Woke::Due => {}
            Woke::Cancelled => return,
            Woke::ClockSet { remaining, by } => {
                wait = source.wait_after_clock_set(remaining);
                tracing::info!(
                    source = ctx.status.name,
                    clock_moved_s = by.num_seconds(),
                    next_in_s = wait.as_secs(),
                    "the system clock was set; rescheduling"
                );
                if !wait.is_zero() {
                    continue;
                }
                backoff.reset();
            }
        }
        let outcome = tokio::select! {
            r = poll_round(&mut source, &ctx) => r,
            _ = ctx.cancel.cancelled() => return,
        };
        wait = match outcome {
            Ok(()) => {
                backoff.reset();
                every
            }
            Err(()) => backoff.next_delay(),
        };
    }
}

/// Sleeps for `d` unless cancelled first; returns false when cancelled.
pub async fn sleep_or_cancel(d: Duration, cancel: &tokio_util::sync::CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = cancel.cancelled() => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_step_is_told_from_drift() {
        let secs = chrono::TimeDelta::seconds;
        assert_eq!(clock_was_set(secs(1), Duration::from_secs(1)), None);
        assert_eq!(clock_was_set(secs(59), Duration::from_secs(1)), None, "under a minute is drift");
        // NTP setting a Pi that booted at 1970 to 2025: a jump forward of decades.
        assert_eq!(clock_was_set(secs(1_700_000_000), Duration::from_secs(1)), Some(secs(1_699_999_999)));
        // ...and one that booted in the future, set back.
        assert_eq!(clock_was_set(secs(-86_400 * 365), Duration::from_secs(2)), Some(secs(-86_400 * 365 - 2)));
    }
}
