//! Collects the ISS position every `poll_interval_s` (open-notify or wheretheiss.at).
//!
//! Positions must move forward in time: an answer whose timestamp is not after the newest stored
//! one (a cached answer, a clock jump) is rejected, as is one from the future.

use super::SourceCtx;
use super::iss_position_parse::{check_position_time, parse_position};
use super::poll::{Backoff, Poller, fetch, run_polling};
use crate::domain::Record;
use chrono::{DateTime, Utc};
use std::time::Duration;

pub struct IssPositionSource {
    pub url: String,
    pub interval: Duration,
    /// The newest stored position time, read from the store at start.
    pub last_stored: Option<DateTime<Utc>>,
}

impl IssPositionSource {
    pub async fn run(self, ctx: SourceCtx) {
        let every = self.interval;
        let backoff = Backoff::new(every, Duration::from_secs(600).max(every));
        run_polling(self, ctx, every, backoff, Duration::ZERO).await
    }
}

impl Poller for IssPositionSource {
    /// One poll. `Err` means the upstream misbehaved and the next poll should back off.
    async fn poll_once(&mut self, ctx: &SourceCtx) -> Result<(), ()> {
        ctx.status.polled();
        let parsed = match fetch(&ctx.client, &self.url, "application/json").await {
            Ok(body) => parse_position(&body),
            Err(r) => Err(r),
        };
        let position = match parsed {
            Ok(p) => p.rounded(),
            Err(r) => {
                ctx.status.reject(&r, true);
                return Err(());
            }
        };
        if let Err(r) = check_position_time(position.time, Utc::now(), self.last_stored) {
            // An answer that is simply not new yet is normal; a time from the future means a
            // wrong clock (ours or theirs) and is treated like any other bad answer.
            let not_new = r.reason == "time_not_after_last";
            ctx.status.reject(&r, !not_new);
            return if not_new { Ok(()) } else { Err(()) };
        }
        self.last_stored = Some(position.time);
        ctx.writer.append(Record::IssPosition(position));
        ctx.status.succeeded(1);
        Ok(())
    }
}
