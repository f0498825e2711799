//! Collects NVE avalanche warnings (varsom.no) for the configured regions. Owns `[varsom]`.
//!
//! On start and then every `recheck_interval_h` it asks, per region, for the days since the
//! newest stored one (back to `backfill_days`), plus today and tomorrow again, because NVE
//! re-publishes warnings during the day and publishes tomorrow's in the afternoon. Days missing
//! before the newest stored one (NVE failed or left them out while later days came) are asked
//! for again in the same round, at most `MAX_GAP_REQUESTS` ranges per round, newest first, until
//! they are stored or fall out of the back-fill window. Every published version is handed to the
//! store, which refuses the ones it already has. Days are Norwegian calendar days, taken from the
//! clock the poller is given.

use super::poll::{Answer, Poller, Request, Schedule};
use super::varsom_parse::parse_warnings;
use super::{Rejection, SourceCtx};
use crate::backoff::Backoff;
use crate::config::{Invalid, KeyType, Section, http_url, range};
use crate::domain::{Record, norwegian_date};
use crate::store::Store;
use chrono::{DateTime, Days, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
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

/// Gap requests per round at most, on top of the one request per region: a day NVE keeps
/// failing (or never has) costs a bounded number of requests each round, not one per day.
pub const MAX_GAP_REQUESTS: usize = 4;

/// The requests of a round, from the days `stored` per region (from the back-fill window's first
/// day on): per region every day since the newest stored one (never further back than
/// `backfill_days`) plus today and tomorrow; then the runs of days missing before the newest
/// stored one, newest first, at most `MAX_GAP_REQUESTS`. Pure, so the back-fill rule is tested
/// directly.
pub fn plan(
    today: NaiveDate,
    regions: &[u32],
    stored: &BTreeMap<u32, BTreeSet<NaiveDate>>,
    backfill_days: u32,
) -> Vec<DayRange> {
    let earliest = today.checked_sub_days(Days::new(u64::from(backfill_days))).unwrap_or(today);
    let tomorrow = today.succ_opt().unwrap_or(today);
    let mut out = Vec::with_capacity(regions.len());
    let mut gaps = Vec::new();
    for &region in regions {
        let days = stored.get(&region);
        let after_newest = days.and_then(|d| d.last()).and_then(|d| d.succ_opt()).unwrap_or(earliest);
        let from = after_newest.clamp(earliest, today);
        out.push(DayRange { region, from, to: tomorrow });
        let mut run: Option<DayRange> = None;
        for day in earliest.iter_days().take_while(|d| *d < from) {
            if days.is_some_and(|d| d.contains(&day)) {
                gaps.extend(run.take());
            } else {
                run.get_or_insert(DayRange { region, from: day, to: day }).to = day;
            }
        }
        gaps.extend(run);
    }
    // Newest first (stable: in region order within a day).
    gaps.sort_by_key(|g| std::cmp::Reverse(g.to));
    out.extend(gaps.into_iter().take(MAX_GAP_REQUESTS));
    out
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

    /// One request per region for the days since its newest, plus its gaps (a round fails if
    /// any request failed).
    async fn plan(&mut self, _ctx: &SourceCtx, now: DateTime<Utc>) -> Vec<Request> {
        let today = norwegian_date(now);
        let since = today.checked_sub_days(Days::new(u64::from(self.backfill_days))).unwrap_or(today);
        let stored = match super::read_store(&self.store, move |s| s.warning_days(since)).await {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "cannot read stored warning dates; fetching the whole back-fill window");
                BTreeMap::new()
            }
        };
        plan(today, &self.regions, &stored, self.backfill_days).iter().map(|r| Request::json(self.url(r))).collect()
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
    use chrono::Datelike;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    /// Every day from `from` to `to` stored.
    fn days(from: &str, to: &str) -> BTreeSet<NaiveDate> {
        d(from).iter_days().take_while(|x| *x <= d(to)).collect()
    }

    fn range(region: u32, from: &str, to: &str) -> DayRange {
        DayRange { region, from: d(from), to: d(to) }
    }

    #[test]
    fn a_fresh_store_back_fills_the_whole_window() {
        let p = plan(d("2023-03-10"), &[3022], &BTreeMap::new(), 7);
        assert_eq!(p, vec![range(3022, "2023-03-03", "2023-03-11")]);
    }

    #[test]
    fn after_downtime_only_the_missed_days_are_asked_for() {
        let stored = BTreeMap::from([
            (3022, days("2023-03-03", "2023-03-06")),
            (3011, days("2023-03-03", "2023-03-11")),
            (3010, days("2023-03-03", "2023-03-10")),
        ]);
        let p = plan(d("2023-03-10"), &[3022, 3011, 3010, 3009], &stored, 7);
        assert_eq!(
            p,
            vec![
                // down since the 6th: the 7th..today, plus tomorrow
                range(3022, "2023-03-07", "2023-03-11"),
                // already has tomorrow: today and tomorrow are re-checked for new versions
                range(3011, "2023-03-10", "2023-03-11"),
                range(3010, "2023-03-10", "2023-03-11"),
                // never seen: the full back-fill window
                range(3009, "2023-03-03", "2023-03-11"),
            ]
        );
    }

    #[test]
    fn a_long_outage_is_capped_at_backfill_days() {
        // Nothing stored inside the window (the last day stored is months ago).
        let p = plan(d("2023-03-10"), &[3022], &BTreeMap::new(), 3);
        assert_eq!(p, vec![range(3022, "2023-03-07", "2023-03-11")]);
        let p = plan(d("2023-03-10"), &[3022], &BTreeMap::new(), 0);
        assert_eq!(p, vec![range(3022, "2023-03-10", "2023-03-11")]);
    }

    #[test]
    fn days_missing_before_the_newest_stored_one_are_asked_for_again() {
        // 3022 misses the 5th and the 7th-8th; 3011 misses the first days of the window.
        let mut with_gaps = days("2023-03-03", "2023-03-11");
        for gap in ["2023-03-05", "2023-03-07", "2023-03-08"] {
            with_gaps.remove(&d(gap));
        }
        let stored = BTreeMap::from([(3022, with_gaps), (3011, days("2023-03-05", "2023-03-10"))]);
        let p = plan(d("2023-03-10"), &[3022, 3011], &stored, 7);
        assert_eq!(
            p,
            vec![
                range(3022, "2023-03-10", "2023-03-11"),
                range(3011, "2023-03-10", "2023-03-11"),
                range(3022, "2023-03-07", "2023-03-08"),
                range(3022, "2023-03-05", "2023-03-05"),
                range(3011, "2023-03-03", "2023-03-04"),
            ]
        );
    }

    #[test]
    fn gap_requests_per_round_are_bounded_newest_first() {
        // Every other day missing in 10 regions: dozens of gaps, MAX_GAP_REQUESTS asked.
        let regions: Vec<u32> = (3001..=3010).collect();
        let alternate: BTreeSet<NaiveDate> =
            days("2023-03-03", "2023-03-11").into_iter().filter(|x| x.day() % 2 == 0).collect();
        let stored = regions.iter().map(|r| (*r, alternate.clone())).collect();
        let p = plan(d("2023-03-10"), &regions, &stored, 7);
        assert_eq!(p.len(), regions.len() + MAX_GAP_REQUESTS);
        let gaps = &p[regions.len()..];
        assert!(gaps.iter().all(|g| g.from == g.to && g.to == d("2023-03-09")), "{gaps:?}");
        // Outside the window nothing is asked for, whatever is missing there.
        assert!(p.iter().all(|r| r.from >= d("2023-03-03")));
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
