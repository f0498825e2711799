//! Collects the ISS two-line elements from CelesTrak (or wheretheiss.at) at most every
//! `tle_refresh_h`, and never within 2 hours for CelesTrak, which firewalls clients that ask
//! more often. Any failure backs off for hours, not seconds.
//!
//! The time of the last attempt is kept in the store as a mark (see `store` cursors), durable
//! before the request goes out, so a restart loop cannot turn into a request loop. The mark is wall-clock time, so it is written
//! as a mark (it may move back when a wrong clock is corrected), and a mark in the future was
//! written by a clock that was wrong: it says nothing about when the last attempt was, and is
//! ignored rather than blocking the schedule until the clock catches up with it.

use super::iss_position::IssConfig;
use super::poll::{Answer, Poller, Request, Schedule};
use super::tle_parse::parse_tle;
use super::{Rejection, SourceCtx};
use crate::backoff::Backoff;
use crate::domain::{Record, Tle};
use crate::store::Store;
use chrono::{DateTime, Utc};
use std::time::Duration;
use tokio::sync::watch;

/// Store mark holding the unix seconds of the last TLE request.
pub const LAST_ATTEMPT_MARK: &str = "source.iss_tle.last_attempt_s";

pub struct TleSource {
    pub url: String,
    pub refresh: Duration,
    /// Unix seconds of the previous attempt (from the store), 0 if never.
    pub last_attempt_s: u64,
    /// The newest TLE known (by epoch), for the position source's plausibility check.
    pub newest: watch::Sender<Option<Tle>>,
}

/// Marks up to this far ahead of the clock are taken as clock skew, not a wrong clock.
const MARK_SKEW_S: u64 = 60;

/// The wait before the first attempt: the rest of `refresh` since the last attempt, or none when
/// there was none or its mark lies in the future (written while the clock was wrong). Pure.
pub fn first_wait(now_s: i64, last_attempt_s: u64, refresh: Duration) -> Duration {
    let now_s = now_s.max(0) as u64;
    // Never attempted: at once, also at a clock of 1970 (where "2 h since 0" is not over yet).
    if last_attempt_s == 0 {
        return Duration::ZERO;
    }
    if last_attempt_s > now_s.saturating_add(MARK_SKEW_S) {
        tracing::warn!(
            last_attempt_s,
            now_s,
            "the last attempt is marked in the future (the clock was wrong then); fetching now"
        );
        return Duration::ZERO;
    }
    refresh.saturating_sub(Duration::from_secs(now_s.saturating_sub(last_attempt_s)))
}

impl TleSource {
    pub async fn new(cfg: &IssConfig, store: &Store, newest: watch::Sender<Option<Tle>>) -> anyhow::Result<Self> {
        let last_attempt_s = super::read_store(store, |s| s.cursor(LAST_ATTEMPT_MARK)).await?;
        Ok(TleSource { url: cfg.tle_url.clone(), refresh: cfg.tle_refresh(), last_attempt_s, newest })
    }
}

impl Poller for TleSource {
    const NAME: &'static str = "iss_tle";

    fn schedule(&self, now: DateTime<Utc>) -> Schedule {
        Schedule {
            every: self.refresh,
            // Failures wait 2-4 hours (jittered), doubling up to a day: CelesTrak answers a repeat
            // within 2 hours with the same refusal, and firewalls clients that keep asking.
            backoff: Backoff::new(Duration::from_secs(4 * 3600), Duration::from_secs(86_400)),
            first_wait: first_wait(now.timestamp(), self.last_attempt_s, self.refresh),
        }
    }

    /// A TLE request does not depend on the clock, and CelesTrak must not be asked again within
    /// 2 hours: the wait goes on.
    fn wait_after_clock_set(&mut self, remaining: Duration) -> Duration {
        remaining
    }

    /// Marks the attempt and makes the mark durable before asking: a restart loop (a crash
    /// right after the request, shorter than `commit_interval_s`) must not turn into a request
    /// loop. One small commit per attempt, every few hours. If the mark cannot be made durable,
    /// nothing is asked this round: the store is failing, and it could not keep a TLE either.
    async fn plan(&mut self, ctx: &SourceCtx, now: DateTime<Utc>) -> Vec<Request> {
        ctx.writer.set_mark(LAST_ATTEMPT_MARK, now.timestamp().max(0) as u64);
        if let Err(e) = ctx.writer.flush().await {
            tracing::error!(error = %format!("{e:#}"), "cannot make the TLE attempt mark durable; not asking this round");
            return Vec::new();
        }
        vec![Request { url: self.url.clone(), accept: "text/plain, application/json" }]
    }

    fn parse(&mut self, body: &[u8], _now: DateTime<Utc>) -> Result<Answer, Rejection> {
        let tle = parse_tle(body)?;
        // An older element set than one already known (a stale mirror) does not replace it.
        self.newest.send_if_modified(|known| {
            let newer = known.as_ref().is_none_or(|k| tle.epoch > k.epoch);
            if newer {
                *known = Some(tle.clone());
            }
            newer
        });
        Ok(Answer::records(vec![Record::Tle(tle)]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H2: Duration = Duration::from_secs(7200);

    #[test]
    fn the_first_attempt_waits_out_the_refresh_since_the_last_one() {
        let now = 1_700_000_000;
        assert_eq!(first_wait(now, 0, H2), Duration::ZERO, "never attempted");
        assert_eq!(first_wait(60, 0, H2), Duration::ZERO, "never attempted, by a Pi that booted in 1970");
        assert_eq!(first_wait(now, now as u64 - 600, H2), H2 - Duration::from_secs(600));
        assert_eq!(first_wait(now, now as u64 - 9000, H2), Duration::ZERO);
        assert_eq!(first_wait(now, now as u64 + 30, H2), H2, "a little clock skew counts as just now");
    }

    #[test]
    fn a_mark_from_a_clock_that_was_in_the_future_does_not_block_the_schedule() {
        let now = 1_700_000_000;
        // Written while the clock said 2036; NTP has since set it back.
        assert_eq!(first_wait(now, 2_100_000_000, H2), Duration::ZERO);
        // Written while the clock said 1970: far in the past, so no wait either.
        assert_eq!(first_wait(now, 86_400, H2), Duration::ZERO);
        // A clock before 1970 (negative) never underflows.
        assert_eq!(first_wait(-5, 10, H2), H2);
        assert_eq!(first_wait(-5, 0, H2), Duration::ZERO, "never attempted");
    }

    #[test]
    fn the_schedule_follows_the_clock_it_is_given() {
        let source = TleSource {
            url: "http://x/tle".into(),
            refresh: H2,
            last_attempt_s: 1_700_000_000,
            newest: watch::channel(None).0,
        };
        let at = |s| DateTime::from_timestamp(s, 0).unwrap();
        assert_eq!(source.schedule(at(1_700_000_600)).first_wait, H2 - Duration::from_secs(600));
        assert_eq!(source.schedule(at(1_700_010_000)).first_wait, Duration::ZERO);
        assert_eq!(source.schedule(at(1_700_000_000)).every, H2);
    }

    /// The mark is committed by the time the request goes out, however long the commit interval:
    /// a reader (and so a restart) sees it at once.
    #[tokio::test]
    async fn the_attempt_mark_is_committed_before_the_request_goes_out() {
        use crate::clock::FakeClock;
        use crate::sources::SourceStatus;
        use crate::store::StoreOptions;
        let dir = tempfile::tempdir().unwrap();
        let opts = StoreOptions {
            commit_interval: Duration::from_secs(3600),
            fold_interval: Duration::from_secs(7200),
            ..StoreOptions::default()
        };
        let (store, writer, _) = Store::open(dir.path(), "t", opts).unwrap();
        let handle = writer.handle();
        writer.spawn().unwrap();
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let ctx = SourceCtx {
            client: crate::sources::http_client(Duration::from_secs(1)).unwrap(),
            writer: handle.clone(),
            status: std::sync::Arc::new(SourceStatus::new("iss_tle", handle.clone())),
            cancel: tokio_util::sync::CancellationToken::new(),
            clock: FakeClock::at(now),
        };
        let mut source =
            TleSource { url: "http://x/tle".into(), refresh: H2, last_attempt_s: 0, newest: watch::channel(None).0 };
        assert_eq!(store.cursor(LAST_ATTEMPT_MARK).unwrap(), 0);
        let requests = source.plan(&ctx, now).await;
        assert_eq!(requests.len(), 1);
        assert_eq!(store.cursor(LAST_ATTEMPT_MARK).unwrap(), 1_700_000_000);
        handle.shutdown().await.unwrap();
    }
}
