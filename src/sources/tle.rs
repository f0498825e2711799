//! Collects the ISS two-line elements from CelesTrak (or wheretheiss.at) at most every
//! `tle_refresh_h`, and never within 2 hours for CelesTrak, which firewalls clients that ask
//! more often. Any failure backs off for hours, not seconds.
//!
//! The time of the last attempt is kept in the store as a mark (see `store` cursors), so a
//! restart loop cannot turn into a request loop.

use super::SourceCtx;
use super::poll::{Backoff, Poller, fetch, run_polling};
use super::tle_parse::parse_tle;
use crate::domain::Record;
use chrono::Utc;
use std::time::Duration;

/// Store mark holding the unix seconds of the last TLE request.
pub const LAST_ATTEMPT_MARK: &str = "source.iss_tle.last_attempt_s";

pub struct TleSource {
    pub url: String,
    pub refresh: Duration,
    /// Unix seconds of the previous attempt (from the store), 0 if never.
    pub last_attempt_s: u64,
}

impl TleSource {
    pub async fn run(self, ctx: SourceCtx) {
        let since_last =
            Duration::from_secs((Utc::now().timestamp().max(0) as u64).saturating_sub(self.last_attempt_s));
        let first_wait = self.refresh.saturating_sub(since_last);
        // Failures wait 2-4 hours (jittered), doubling up to a day: CelesTrak answers a repeat
        // within 2 hours with the same refusal, and firewalls clients that keep asking.
        let backoff = Backoff::new(Duration::from_secs(4 * 3600), Duration::from_secs(86_400));
        let every = self.refresh;
        run_polling(self, ctx, every, backoff, first_wait).await
    }
}

impl Poller for TleSource {
    async fn poll_once(&mut self, ctx: &SourceCtx) -> Result<(), ()> {
        ctx.status.polled();
        ctx.writer.set_cursor(LAST_ATTEMPT_MARK, Utc::now().timestamp().max(0) as u64);
        let parsed = match fetch(&ctx.client, &self.url, "text/plain, application/json").await {
            Ok(body) => parse_tle(&body),
            Err(r) => Err(r),
        };
        match parsed {
            Ok(tle) => {
                ctx.writer.append(Record::Tle(tle));
                ctx.status.succeeded(1);
                Ok(())
            }
            Err(r) => {
                ctx.status.reject(&r, true);
                Err(())
            }
        }
    }
}
