//! Collects NVE avalanche warnings (varsom.no) for the configured regions. Owns `[varsom]`.
//!
//! On start and then every `recheck_interval_h` it asks, per region, for the days it is missing
//! (back to `backfill_days`), plus today and tomorrow again, because NVE re-publishes warnings
//! during the day and publishes tomorrow's in the afternoon. Every published version is handed
//! to the store, which refuses the ones it already has. Days are Norwegian calendar days, taken
//! from the clock the poller is given.

use super::poll::{Answer, Poller, Request, Schedule};
use super::varsom_parse::parse_warnings;
use super::{Rejection, SourceCtx};
use crate::backoff::Backoff;
use crate::config::{Invalid, KeyType, Section, http_url, range};
use crate::domain::{Record, norwegian_date};
use crate::store::Store;
use chrono::{DateTime, Days, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// NVE's class-A regions (assessed daily in season): the default `varsom.regions`.
pub const CLASS_A_REGIONS: &[u32] = &[
    3003, 3006, 3007, 3009, 3010, 3011, 3012, 3013, 3014, 3015, 3016, 3017, 3022, 3023, 3024, 3027, 3028, 3029, 3031,
    3032, 3034, 3035, 3037,
];

/// `[varsom]`: NVE's API, the regions followed, and how far back to fill.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VarsomConfig {
    #[serde(default = "d_varsom_url")]
    pub base_url: String,
    #[serde(default = "d_regions")]
    pub regions: Vec<u32>,
    #[serde(default = "d_lang")]
    pub lang: u8,
    #[serde(default = "d_backfill")]
    pub backfill_days: u32,
    #[serde(default = "d_recheck")]
    pub recheck_interval_h: f64,
}

fn d_varsom_url() -> String {
    "https://api01.nve.no/hydrology/forecast/avalanche/v6.3.0/api".into()
}
fn d_regions() -> Vec<u32> {
    CLASS_A_REGIONS.to_vec()
}
fn d_lang() -> u8 {
    2
}
fn d_backfill() -> u32 {
    7
}
fn d_recheck() -> f64 {
    3.0
}

impl Section for VarsomConfig {
    const KEYS: &'static [(&'static str, KeyType)] = &[
        ("base_url", KeyType::Str),
        ("regions", KeyType::IntList),
        ("lang", KeyType::Int),
        ("backfill_days", KeyType::Int),
        ("recheck_interval_h", KeyType::Float),
    ];

    fn validate(&self) -> Result<(), Invalid> {
        http_url("base_url", &self.base_url)?;
        if let Some(bad) = self.regions.iter().find(|r| !(3000..=3999).contains(*r)) {
            return Err(Invalid::new("regions", format!("{bad} is not an NVE region id (3001-3046)")));
        }
        if !matches!(self.lang, 1 | 2) {
            return Err(Invalid::new("lang", "must be 1 (Norwegian) or 2 (English)"));
        }
        range("backfill_days", f64::from(self.backfill_days), 0.0, 60.0)?;
        range("recheck_interval_h", self.recheck_interval_h, 0.25, 24.0)
    }
}

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

impl VarsomSource {
    pub fn new(cfg: &VarsomConfig, store: &Store) -> Self {
        VarsomSource {
            base_url: cfg.base_url.clone(),
            regions: cfg.regions.clone(),
            lang: cfg.lang,
            backfill_days: cfg.backfill_days,
            recheck: Duration::from_secs_f64(cfg.recheck_interval_h * 3600.0),
            store: store.clone(),
        }
    }

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
}

impl Poller for VarsomSource {
    const NAME: &'static str = "varsom";

    fn schedule(&self, _now: DateTime<Utc>) -> Schedule {
        let every = self.recheck;
        Schedule { every, backoff: Backoff::new(Duration::from_secs(60), every), first_wait: Duration::ZERO }
    }

    /// One request per region, for the days it misses (a round fails if any region failed).
    async fn plan(&mut self, _ctx: &SourceCtx, now: DateTime<Utc>) -> Vec<Request> {
        let today = norwegian_date(now);
        let since = today.checked_sub_days(Days::new(u64::from(self.backfill_days) + 1)).unwrap_or(today);
        let newest = match super::read_store(&self.store, move |s| s.newest_warning_dates(since)).await {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "cannot read stored warning dates; fetching the whole back-fill window");
                BTreeMap::new()
            }
        };
        plan(today, &self.regions, &newest, self.backfill_days).iter().map(|r| Request::json(self.url(r))).collect()
    }

    fn parse(&mut self, body: &[u8], _now: DateTime<Utc>) -> Result<Answer, Rejection> {
        let parsed = parse_warnings(body)?;
        let records = parsed.warnings.into_iter().map(Record::AvalancheWarning).collect();
        Ok(Answer { records, rejected: parsed.rejected, success: true })
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

#[cfg(test)]
mod round_tests {
    use super::*;
    use crate::clock::FakeClock;
    use crate::sources::SourceStatus;
    use crate::store::StoreOptions;
    use std::sync::Arc;

    #[tokio::test]
    async fn a_round_asks_for_the_norwegian_days_of_the_clock_it_is_given() {
        let dir = tempfile::tempdir().unwrap();
        let (store, writer, _) = Store::open(dir.path(), "t", StoreOptions::default()).unwrap();
        // 23:30 UTC on 9 March is already 10 March in Oslo.
        let now: DateTime<Utc> = "2023-03-09T23:30:00Z".parse().unwrap();
        let ctx = SourceCtx {
            client: crate::sources::http_client(Duration::from_secs(1)).unwrap(),
            writer: writer.handle(),
            status: Arc::new(SourceStatus::new("varsom", writer.handle())),
            cancel: tokio_util::sync::CancellationToken::new(),
            clock: FakeClock::at(now),
        };
        let mut source = VarsomSource {
            base_url: "http://nve.test/api/".into(),
            regions: vec![3022, 3011],
            lang: 2,
            backfill_days: 2,
            recheck: Duration::from_secs(3600),
            store,
        };
        let requests = source.plan(&ctx, now).await;
        let urls: Vec<&str> = requests.iter().map(|r| r.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "http://nve.test/api/AvalancheWarningByRegion/Detail/3022/2/2023-03-08/2023-03-11",
                "http://nve.test/api/AvalancheWarningByRegion/Detail/3011/2/2023-03-08/2023-03-11",
            ]
        );
        assert!(requests.iter().all(|r| r.accept == "application/json"));
        // An hour earlier it is still the 9th in Norway.
        let earlier = source.plan(&ctx, now - chrono::Duration::hours(1)).await;
        assert!(earlier[0].url.ends_with("/2023-03-07/2023-03-10"), "{}", earlier[0].url);
    }
}
