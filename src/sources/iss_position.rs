//! Collects the ISS position every `poll_interval_s` (open-notify or wheretheiss.at). Owns the
//! `[iss]` section, which also holds the TLE source's keys (`tle.rs`): one satellite, one section.
//!
//! Positions must move forward in time: an answer whose timestamp is not after the newest stored
//! one (a cached answer, a clock jump) is rejected, as is one from the future.

use super::iss_position_parse::{check_position_time, parse_position};
use super::poll::{Answer, Poller, Request, Schedule};
use super::{Rejection, SourceCtx};
use crate::backoff::Backoff;
use crate::config::{Invalid, KeyType, Section, http_url, range};
use crate::domain::Record;
use crate::store::Store;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `[iss]`: where the position and the TLE come from, and how often.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssConfig {
    #[serde(default = "d_position_url")]
    pub position_url: String,
    #[serde(default = "d_poll")]
    pub poll_interval_s: u64,
    #[serde(default = "d_tle_url")]
    pub tle_url: String,
    #[serde(default = "d_tle_refresh")]
    pub tle_refresh_h: f64,
}

fn d_position_url() -> String {
    "http://api.open-notify.org/iss-now.json".into()
}
fn d_poll() -> u64 {
    10
}
fn d_tle_url() -> String {
    "https://celestrak.org/NORAD/elements/gp.php?CATNR=25544&FORMAT=TLE".into()
}
fn d_tle_refresh() -> f64 {
    12.0
}

impl IssConfig {
    /// The effective TLE refresh: CelesTrak asks clients not to re-download within 2 hours.
    pub fn tle_refresh(&self) -> Duration {
        let hours = if self.tle_url.contains("celestrak") { self.tle_refresh_h.max(2.0) } else { self.tle_refresh_h };
        Duration::from_secs_f64(hours * 3600.0)
    }
}

impl Section for IssConfig {
    const KEYS: &'static [(&'static str, KeyType)] = &[
        ("position_url", KeyType::Str),
        ("poll_interval_s", KeyType::Int),
        ("tle_url", KeyType::Str),
        ("tle_refresh_h", KeyType::Float),
    ];

    fn validate(&self) -> Result<(), Invalid> {
        range("poll_interval_s", self.poll_interval_s as f64, 1.0, 86_400.0)?;
        range("tle_refresh_h", self.tle_refresh_h, 0.1, 24.0 * 30.0)?;
        http_url("position_url", &self.position_url)?;
        http_url("tle_url", &self.tle_url)
    }

    fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.tle_url.contains("celestrak") && self.tle_refresh_h < 2.0 {
            out.push(format!(
                "iss.tle_refresh_h = {} is below CelesTrak's 2 h update cycle; 2 h is used",
                self.tle_refresh_h
            ));
        }
        if self.position_url.contains("open-notify") && self.poll_interval_s < 5 {
            out.push("iss.poll_interval_s below 5 s exceeds open-notify's request limit".into());
        }
        out
    }
}

pub struct IssPositionSource {
    pub url: String,
    pub interval: Duration,
    /// The newest stored position time, read from the store at start.
    pub last_stored: Option<DateTime<Utc>>,
}

impl IssPositionSource {
    pub async fn new(cfg: &IssConfig, store: &Store) -> anyhow::Result<Self> {
        let last_stored = super::read_store(store, |s| Ok(s.latest_position()?.map(|p| p.time))).await?;
        Ok(IssPositionSource {
            url: cfg.position_url.clone(),
            interval: Duration::from_secs(cfg.poll_interval_s),
            last_stored,
        })
    }
}

impl Poller for IssPositionSource {
    const NAME: &'static str = "iss_position";

    fn schedule(&self, _now: DateTime<Utc>) -> Schedule {
        let every = self.interval;
        Schedule {
            every,
            backoff: Backoff::new(every, Duration::from_secs(600).max(every)),
            first_wait: Duration::ZERO,
        }
    }

    async fn plan(&mut self, _ctx: &SourceCtx, _now: DateTime<Utc>) -> Vec<Request> {
        vec![Request::json(self.url.clone())]
    }

    fn parse(&mut self, body: &[u8], now: DateTime<Utc>) -> Result<Answer, Rejection> {
        let position = parse_position(body)?.rounded();
        if let Err(r) = check_position_time(position.time, now, self.last_stored) {
            // An answer that is simply not new yet is normal; a time from the future means a
            // wrong clock (ours or theirs) and is treated like any other bad answer.
            return if r.reason == "time_not_after_last" { Ok(Answer::nothing_new(r)) } else { Err(r) };
        }
        self.last_stored = Some(position.time);
        Ok(Answer::records(vec![Record::IssPosition(position)]))
    }
}
