//! What every collector shares: the HTTP fetch with its checks, back-off with jitter, and the
//! live status a collector reports (last success, last error, counts, rejections by reason).
//!
//! Collectors never fail as a whole: a bad answer is a `Rejection`, logged once per reason,
//! counted, persisted as a counter, and the loop carries on.

use super::Rejection;
use crate::store::WriterHandle;
use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

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

/// GETs `url` and returns the body of a 200 answer; anything else is a `Rejection`.
/// The URL is not repeated in errors: configured URLs may carry credentials.
pub async fn fetch(client: &reqwest::Client, url: &str, accept: &str) -> Result<Vec<u8>, Rejection> {
    let response = client.get(url).header(reqwest::header::ACCEPT, accept).send().await.map_err(transport)?;
    let status = response.status();
    if !status.is_success() {
        // Keep the start of the body: CelesTrak explains its 403s there.
        let body = response.bytes().await.unwrap_or_default();
        let text = String::from_utf8_lossy(&body[..body.len().min(160)]).trim().to_owned();
        return Err(Rejection::new("http_status", format!("HTTP {status}: {text}")));
    }
    Ok(response.bytes().await.map_err(transport)?.to_vec())
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

/// Exponential back-off with full jitter between `base` and `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff { base, max, failures: 0 }
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// The wait after one more failure: base * 2^n capped at max, then jittered into [half, all]
    /// so many appliances that lost the same upstream do not come back in lock-step.
    pub fn next_delay(&mut self) -> Duration {
        let exp = self.base.saturating_mul(1u32 << self.failures.min(16));
        self.failures = self.failures.saturating_add(1);
        let capped = exp.min(self.max);
        capped.mul_f64(0.5 + fastrand::f64() * 0.5)
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// One collector's live status (shown on /api/status and /status).
#[derive(Debug, Default, Serialize, Clone)]
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
    inner: Mutex<SourceSnapshot>,
    writer: WriterHandle,
}

impl SourceStatus {
    pub fn new(name: &'static str, writer: WriterHandle) -> Self {
        SourceStatus { name, inner: Mutex::new(SourceSnapshot::default()), writer }
    }

    pub fn snapshot(&self) -> SourceSnapshot {
        self.inner.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn update(&self, f: impl FnOnce(&mut SourceSnapshot)) {
        if let Ok(mut s) = self.inner.lock() {
            f(&mut s);
        }
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

/// One source's work per round. `Err(())` means the upstream misbehaved (already reported to
/// the status) and the next round should back off.
pub trait Poller: Send {
    fn poll_once(&mut self, ctx: &super::SourceCtx) -> impl std::future::Future<Output = Result<(), ()>> + Send;

    /// The wait after the system clock was set (NTP correcting a Pi that booted at 1970 or in
    /// the future) with `remaining` still to go. By default the round runs at once with a fresh
    /// back-off: what the last rounds asked for, or rejected, followed from the wrong clock.
    fn wait_after_clock_set(&mut self, remaining: Duration) -> Duration {
        let _ = remaining;
        Duration::ZERO
    }
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
pub async fn run_polling(
    mut source: impl Poller,
    ctx: super::SourceCtx,
    every: Duration,
    mut backoff: Backoff,
    first_wait: Duration,
) {
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
            r = source.poll_once(&ctx) => r,
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

    #[test]
    fn backoff_grows_exponentially_with_jitter_and_caps() {
        let mut b = Backoff::new(Duration::from_secs(10), Duration::from_secs(300));
        let delays: Vec<Duration> = (0..10).map(|_| b.next_delay()).collect();
        for (i, d) in delays.iter().enumerate() {
            let full = Duration::from_secs(10 * (1 << i)).min(Duration::from_secs(300));
            assert!(*d >= full / 2 && *d <= full, "attempt {i}: {d:?} not in [{:?}, {full:?}]", full / 2);
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_secs(10));
    }
}
