//! Collects NVE avalanche warnings (varsom.no) for the configured regions.
//!
//! On start and then every `recheck_interval_h` it asks, per region, for the days it is missing
//! (back to `backfill_days`), plus today and tomorrow again, because NVE re-publishes warnings
//! during the day and publishes tomorrow's in the afternoon. Every published version is handed
//! to the store, which refuses the ones it already has. Days are Norwegian calendar days.

use super::SourceCtx;
use super::poll::{Backoff, Poller, fetch, run_polling};
use super::varsom_parse::parse_warnings;
use crate::domain::Record;
use crate::store::Store;
use chrono::{Days, NaiveDate, Utc};
use std::collections::BTreeMap;
use std::time::Duration;

pub struct VarsomSource {
    pub base_url: String,
    pub regions: Vec<u32>,
    pub lang: u8,
    pub backfill_days: u32,
    pub recheck: Duration,
    pub store: Store,
}

/// One request: a region and an inclusive range of days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayRange {
    pub region: u32,
    pub from: NaiveDate,
    pub to: NaiveDate,
}

/// The requests that cover every missed day since the newest stored one (never further back than
/// `backfill_days`), plus today and tomorrow. Pure, so the back-fill rule is tested directly.
pub fn plan(today: NaiveDate, regions: &[u32], newest: &BTreeMap<u32, NaiveDate>, backfill_days: u32) -> Vec<DayRange> {
    let earliest = today.checked_sub_days(Days::new(u64::from(backfill_days))).unwrap_or(today);
    let tomorrow = today.succ_opt().unwrap_or(today);
    regions
        .iter()
        .map(|&region| {
            let after_newest = newest.get(&region).and_then(|d| d.succ_opt()).unwrap_or(earliest);
            DayRange { region, from: after_newest.clamp(earliest, today), to: tomorrow }
        })
        .collect()
}

/// Today in Norway, where NVE's days begin and end.
pub fn norwegian_today() -> NaiveDate {
    Utc::now().with_timezone(&chrono_tz::Europe::Oslo).date_naive()
}

impl VarsomSource {
    pub fn url(&self, r: &DayRange) -> String {
        format!(
            "{}/AvalancheWarningByRegion/Detail/{}/{}/{}/{}",
            self.base_url.trim_end_matches('/'),
            r.region,
            self.lang,
            r.from.format("%Y-%m-%d"),
            r.to.format("%Y-%m-%d")
        )
    }

    pub async fn run(self, ctx: SourceCtx) {
        let every = self.recheck;
        run_polling(self, ctx, every, Backoff::new(Duration::from_secs(60), every), Duration::ZERO).await
    }
}

impl Poller for VarsomSource {
    /// One round over every region. `Err` if any region failed (the round is retried sooner).
    async fn poll_once(&mut self, ctx: &SourceCtx) -> Result<(), ()> {
        let today = norwegian_today();
        let since = today.checked_sub_days(Days::new(u64::from(self.backfill_days) + 1)).unwrap_or(today);
        let store = self.store.clone();
        let newest = match tokio::task::spawn_blocking(move || store.newest_warning_dates(since)).await {
            Ok(Ok(n)) => n,
            other => {
                tracing::error!(?other, "cannot read stored warning dates; fetching the whole back-fill window");
                BTreeMap::new()
            }
        };
        let mut ok = true;
        for range in plan(today, &self.regions, &newest, self.backfill_days) {
            if ctx.cancel.is_cancelled() {
                return Ok(());
            }
            ctx.status.polled();
            let url = self.url(&range);
            tracing::debug!(region = range.region, from = %range.from, to = %range.to, "fetching avalanche warnings");
            let parsed = match fetch(&ctx.client, &url, "application/json").await {
                Ok(body) => parse_warnings(&body),
                Err(r) => Err(r),
            };
            match parsed {
                Ok(p) => {
                    for r in &p.rejected {
                        ctx.status.reject(r, false);
                    }
                    let n = p.warnings.len() as u64;
                    for w in p.warnings {
                        ctx.writer.append(Record::AvalancheWarning(w));
                    }
                    ctx.status.succeeded(n);
                }
                Err(r) => {
                    ctx.status.reject(&r, true);
                    ok = false;
                }
            }
        }
        if ok { Ok(()) } else { Err(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn a_fresh_store_back_fills_the_whole_window() {
        let p = plan(d("2023-03-10"), &[3022], &BTreeMap::new(), 7);
        assert_eq!(p, vec![DayRange { region: 3022, from: d("2023-03-03"), to: d("2023-03-11") }]);
    }

    #[test]
    fn after_downtime_only_the_missed_days_are_asked_for() {
        let newest = BTreeMap::from([(3022, d("2023-03-06")), (3011, d("2023-03-11")), (3010, d("2023-03-10"))]);
        let p = plan(d("2023-03-10"), &[3022, 3011, 3010, 3009], &newest, 7);
        assert_eq!(
            p,
            vec![
                // down since the 6th: the 7th..today, plus tomorrow
                DayRange { region: 3022, from: d("2023-03-07"), to: d("2023-03-11") },
                // already has tomorrow: today and tomorrow are re-checked for new versions
                DayRange { region: 3011, from: d("2023-03-10"), to: d("2023-03-11") },
                DayRange { region: 3010, from: d("2023-03-10"), to: d("2023-03-11") },
                // never seen: the full back-fill window
                DayRange { region: 3009, from: d("2023-03-03"), to: d("2023-03-11") },
            ]
        );
    }

    #[test]
    fn a_long_outage_is_capped_at_backfill_days() {
        let newest = BTreeMap::from([(3022, d("2022-12-01"))]);
        let p = plan(d("2023-03-10"), &[3022], &newest, 3);
        assert_eq!(p[0].from, d("2023-03-07"));
        let p = plan(d("2023-03-10"), &[3022], &newest, 0);
        assert_eq!((p[0].from, p[0].to), (d("2023-03-10"), d("2023-03-11")));
    }
}
