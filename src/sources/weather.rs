//! Collects the daily weather of every followed avalanche region (`varsom.regions`) from
//! Open-Meteo. Owns `[weather]`.
//!
//! Each region is sampled at `points_per_region` points inside it (`regions::sample_points`);
//! all points of all regions go into as few requests as possible (comma-separated coordinates,
//! at most `MAX_LOCATIONS` per request; Open-Meteo answers with an array in request order), with
//! `timezone=Europe/Oslo` so days are Norwegian days like the warnings' `valid_date`, the seven
//! forecast days and `past_days = backfill_days`, so the days missed during downtime come again
//! in the next round. Every `refresh_h` the whole window is fetched again; the store keeps each
//! changed version of a (region, day) and refuses unchanged ones. A 429 (Open-Meteo's daily
//! limit) stops the source until the next Norwegian day, across restarts (`BLOCKED_MARK`).
//!
//! Open-Meteo recommends `past_days` for recent days; it reaches back `MAX_PAST_DAYS`. A longer
//! `backfill_days` asks the archive API (ERA5, complete that far back) for the older days, once
//! per Norwegian day until it answers, so the two never overlap and never fight over a day.

use super::poll::{Answer, Poller, Request, Schedule};
use super::weather_parse::{daily_parameter, daily_records, parse_daily};
use super::{Rejection, SourceCtx};
use crate::backoff::Backoff;
use crate::config::{Invalid, KeyType, Section, http_url, range};
use crate::domain::{Record, norwegian_date};
use crate::store::{Store, WriterHandle};
use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::Duration;

/// `[weather]`: Open-Meteo's endpoints, how often, how far back, how many points per region.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeatherConfig {
    #[serde(default = "d_enabled")]
    pub enabled: bool,
    #[serde(default = "d_forecast_url")]
    pub forecast_url: String,
    #[serde(default = "d_archive_url")]
    pub archive_url: String,
    #[serde(default = "d_refresh")]
    pub refresh_h: f64,
    #[serde(default = "d_backfill")]
    pub backfill_days: u32,
    #[serde(default = "d_points")]
    pub points_per_region: u32,
}

fn d_enabled() -> bool {
    true
}
fn d_forecast_url() -> String {
    "https://api.open-meteo.com/v1/forecast".into()
}
fn d_archive_url() -> String {
    "https://archive-api.open-meteo.com/v1/archive".into()
}
fn d_refresh() -> f64 {
    3.0
}
fn d_backfill() -> u32 {
    7
}
fn d_points() -> u32 {
    3
}

/// Forecast days asked for: today and the next six.
pub const FORECAST_DAYS: u32 = 7;
/// Locations per request at most (the URL stays a few KB).
pub const MAX_LOCATIONS: usize = 100;
/// The time zone the days are asked in.
pub const TIMEZONE: &str = "Europe/Oslo";
/// The forecast API's `past_days` goes to 92; older days come from the archive.
pub const MAX_PAST_DAYS: u32 = 92;
/// `backfill_days` at most: a year and a day.
pub const MAX_BACKFILL_DAYS: u32 = 366;

impl Section for WeatherConfig {
    const KEYS: &'static [(&'static str, KeyType)] = &[
        ("enabled", KeyType::Bool),
        ("forecast_url", KeyType::Str),
        ("archive_url", KeyType::Str),
        ("refresh_h", KeyType::Float),
        ("backfill_days", KeyType::Int),
        ("points_per_region", KeyType::Int),
    ];

    fn validate(&self) -> Result<(), Invalid> {
        http_url("forecast_url", &self.forecast_url)?;
        http_url("archive_url", &self.archive_url)?;
        // Open-Meteo's free use is 10,000 calls a day; every location counts.
        range("refresh_h", self.refresh_h, 0.25, 24.0)?;
        range("backfill_days", f64::from(self.backfill_days), 0.0, f64::from(MAX_BACKFILL_DAYS))?;
        range("points_per_region", f64::from(self.points_per_region), 1.0, 9.0)
    }
}

/// `(latitude, longitude)`.
type Point = (f64, f64);
/// `(region, how many consecutive locations are its points)`, in request order.
type Layout = Vec<(u32, usize)>;

/// One request of a round: where its answer's locations belong, and which API it asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub layout: Layout,
    pub archive: bool,
}

pub struct WeatherSource {
    forecast_url: String,
    archive_url: String,
    /// `(region, its sample points)`, in request order.
    regions: Vec<(u32, Vec<(f64, f64)>)>,
    backfill_days: u32,
    refresh: Duration,
    /// Each request of this round not yet answered, in order: the answer to the n-th request is
    /// parsed with the n-th layout.
    pending: VecDeque<Pending>,
    /// The Norwegian day the archive last answered (it is asked once a day).
    archive_answered: Option<NaiveDate>,
    /// After a 429: no request before this (the next Norwegian midnight). Kept in the store
    /// (`BLOCKED_MARK`), so a restart does not ask again.
    blocked_until: Option<DateTime<Utc>>,
    /// For the block's mark: set at the first round.
    writer: Option<WriterHandle>,
}

/// Unix seconds until which Open-Meteo's daily limit holds (after a 429), 0 if none.
pub const BLOCKED_MARK: &str = "source.weather.blocked_until_s";

impl WeatherSource {
    /// The source for `regions` (those without a known place are skipped).
    pub fn new(cfg: &WeatherConfig, regions: &[u32]) -> Self {
        let n = cfg.points_per_region as usize;
        WeatherSource {
            forecast_url: cfg.forecast_url.clone(),
            archive_url: cfg.archive_url.clone(),
            regions: regions
                .iter()
                .map(|&r| (r, crate::regions::sample_points(r, n)))
                .filter(|(_, p)| !p.is_empty())
                .collect(),
            backfill_days: cfg.backfill_days,
            refresh: Duration::from_secs_f64(cfg.refresh_h * 3600.0),
            pending: VecDeque::new(),
            archive_answered: None,
            blocked_until: None,
            writer: None,
        }
    }

    /// The source, with any 429 block read from the store.
    pub async fn from_store(cfg: &WeatherConfig, regions: &[u32], store: &Store) -> anyhow::Result<Self> {
        let blocked_s = super::read_store(store, |s| s.cursor(BLOCKED_MARK)).await?;
        let mut source = WeatherSource::new(cfg, regions);
        source.blocked_until = DateTime::from_timestamp(blocked_s as i64, 0).filter(|_| blocked_s > 0);
        Ok(source)
    }

    /// The requests of a round on the Norwegian day `today`: the forecast with its past days,
    /// then, when `backfill_days` reaches past `MAX_PAST_DAYS` and the archive has not answered
    /// today, the archive for the older days.
    pub fn requests(&self, today: NaiveDate) -> Vec<(String, Pending)> {
        let past_days = self.backfill_days.min(MAX_PAST_DAYS);
        let forecast = |points: &[(f64, f64)]| {
            format!("{}&past_days={past_days}&forecast_days={FORECAST_DAYS}", self.url(&self.forecast_url, points))
        };
        let mut out: Vec<(String, Pending)> =
            self.chunks().into_iter().map(|(p, layout)| (forecast(&p), Pending { layout, archive: false })).collect();
        let ago = |days: u32| today.checked_sub_days(Days::new(u64::from(days)));
        let archive_range = (self.backfill_days > MAX_PAST_DAYS && self.archive_answered != Some(today))
            .then(|| ago(self.backfill_days).zip(ago(MAX_PAST_DAYS + 1)))
            .flatten();
        if let Some((start, end)) = archive_range {
            out.extend(self.chunks().into_iter().map(|(p, layout)| {
                let url = format!("{}&start_date={start}&end_date={end}", self.url(&self.archive_url, &p));
                (url, Pending { layout, archive: true })
            }));
        }
        out
    }

    /// Regions packed whole into groups of at most `MAX_LOCATIONS` points, with their layout.
    fn chunks(&self) -> Vec<(Vec<Point>, Layout)> {
        let mut out = Vec::new();
        let mut points: Vec<(f64, f64)> = Vec::new();
        let mut layout = Vec::new();
        for (region, pts) in &self.regions {
            if !points.is_empty() && points.len() + pts.len() > MAX_LOCATIONS {
                out.push((std::mem::take(&mut points), std::mem::take(&mut layout)));
            }
            points.extend(pts);
            layout.push((*region, pts.len()));
        }
        if !points.is_empty() {
            out.push((points, layout));
        }
        out
    }

    /// `base` asked for `points`' daily variables in Norwegian days.
    fn url(&self, base: &str, points: &[(f64, f64)]) -> String {
        let join = |f: fn(&(f64, f64)) -> f64| points.iter().map(|p| f(p).to_string()).collect::<Vec<_>>().join(",");
        format!(
            "{base}?latitude={}&longitude={}&daily={}&timezone={}",
            join(|p| p.0),
            join(|p| p.1),
            daily_parameter(),
            TIMEZONE.replace('/', "%2F"),
        )
    }
}

/// The first instant of the Norwegian day after the one at `now`.
fn next_norwegian_midnight(now: DateTime<Utc>) -> DateTime<Utc> {
    let tomorrow = norwegian_date(now).checked_add_days(Days::new(1)).unwrap_or(norwegian_date(now));
    let midnight = tomorrow.and_time(chrono::NaiveTime::MIN);
    // Norway's clock changes happen at 01:00-03:00, never at midnight, so midnight always exists.
    chrono_tz::Europe::Oslo
        .from_local_datetime(&midnight)
        .earliest()
        .map_or(now + chrono::Duration::hours(24), |t| t.with_timezone(&Utc))
}

impl Poller for WeatherSource {
    const NAME: &'static str = "weather";

    fn schedule(&self, _now: DateTime<Utc>) -> Schedule {
        let every = self.refresh;
        Schedule { every, backoff: Backoff::new(Duration::from_secs(60), every), first_wait: Duration::ZERO }
    }

    async fn plan(&mut self, ctx: &SourceCtx, now: DateTime<Utc>) -> Vec<Request> {
        self.pending.clear();
        self.writer.get_or_insert_with(|| ctx.writer.clone());
        // A block marked far in the future was written while the clock was wrong.
        if self.blocked_until.is_some_and(|until| until > now + chrono::Duration::hours(25)) {
            self.blocked_until = None;
        }
        if let Some(until) = self.blocked_until {
            if now < until {
                let r = Rejection::new(
                    "rate_limited",
                    format!("Open-Meteo's daily limit was reached; asking again from {until}"),
                );
                ctx.status.reject(&r, false);
                return Vec::new();
            }
            self.blocked_until = None;
        }
        self.requests(norwegian_date(now))
            .into_iter()
            .map(|(url, pending)| {
                self.pending.push_back(pending);
                Request::json(url)
            })
            .collect()
    }

    fn parse(&mut self, body: &[u8], now: DateTime<Utc>) -> Result<Answer, Rejection> {
        let pending = self.pending.pop_front().unwrap_or(Pending { layout: Vec::new(), archive: false });
        let expected = pending.layout.iter().map(|(_, n)| n).sum();
        let locations = parse_daily(body, expected, TIMEZONE)?;
        if pending.archive {
            self.archive_answered = Some(norwegian_date(now));
        }
        let records = daily_records(&locations, &pending.layout, now).into_iter().map(Record::WeatherDaily).collect();
        Ok(Answer::records(records))
    }

    fn failed(&mut self, rejection: &Rejection, now: DateTime<Utc>) {
        self.pending.pop_front();
        if rejection.reason == "http_status" && rejection.detail.starts_with("HTTP 429") {
            let until = next_norwegian_midnight(now);
            tracing::warn!(%until, "Open-Meteo answered 429 (daily request limit): no more requests until the next Norwegian day");
            self.blocked_until = Some(until);
            if let Some(writer) = &self.writer {
                // Committed with the next batch (seconds): a restart then waits too.
                writer.set_mark(BLOCKED_MARK, until.timestamp().max(0) as u64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FakeClock;
    use crate::sources::SourceStatus;
    use crate::store::{Store, StoreOptions};
    use std::sync::Arc;

    fn config(points: u32) -> WeatherConfig {
        let mut cfg: WeatherConfig = crate::config::default_section();
        cfg.forecast_url = "http://om.test/v1/forecast".into();
        cfg.points_per_region = points;
        cfg
    }

    #[test]
    fn the_defaults_validate_and_bad_values_do_not() {
        let cfg: WeatherConfig = crate::config::default_section();
        assert!(cfg.enabled);
        assert_eq!((cfg.refresh_h, cfg.backfill_days, cfg.points_per_region), (3.0, 7, 3));
        assert!(cfg.validate().is_ok());
        for (key, bad) in [("refresh_h", 0.1), ("backfill_days", 367.0), ("points_per_region", 0.0)] {
            let mut c = cfg.clone();
            match key {
                "refresh_h" => c.refresh_h = bad,
                "backfill_days" => c.backfill_days = bad as u32,
                _ => c.points_per_region = bad as u32,
            }
            assert_eq!(c.validate().unwrap_err().key, key);
        }
        let mut c = cfg.clone();
        c.forecast_url = "ftp://x".into();
        assert_eq!(c.validate().unwrap_err().key, "forecast_url");
    }

    #[test]
    fn all_points_of_all_regions_go_in_one_request() {
        let source = WeatherSource::new(&config(2), &[3022, 3011, 9999]);
        let requests = source.requests(today());
        assert_eq!(requests.len(), 1);
        let (url, pending) = &requests[0];
        assert_eq!(pending.layout, [(3022, 2), (3011, 2)], "an unknown region is skipped");
        assert!(!pending.archive);
        assert_eq!(
            url,
            "http://om.test/v1/forecast?latitude=62.7,62.8,69.6,69.7&longitude=9.3,9.3,18.7,18.7\
             &daily=weather_code,temperature_2m_max,temperature_2m_min,temperature_2m_mean,rain_sum,snowfall_sum,\
             precipitation_hours,wind_speed_10m_max,wind_gusts_10m_max,wind_direction_10m_dominant\
             &timezone=Europe%2FOslo&past_days=7&forecast_days=7"
        );
    }

    #[test]
    fn many_regions_are_split_between_regions_at_the_location_cap() {
        let all: Vec<u32> = (3001..=3046).collect();
        let source = WeatherSource::new(&config(9), &all);
        let requests = source.requests(today());
        // 46 regions x 9 points = 414 locations: 5 requests of 11 whole regions (99 points) at most.
        assert_eq!(requests.len(), 5);
        let counts: Vec<usize> = requests.iter().map(|(_, p)| p.layout.iter().map(|(_, n)| n).sum()).collect();
        assert!(counts.iter().all(|&n| n <= MAX_LOCATIONS), "{counts:?}");
        assert_eq!(counts.iter().sum::<usize>(), 414);
        for (url, pending) in &requests {
            let lats = url.split("latitude=").nth(1).unwrap().split('&').next().unwrap().split(',').count();
            assert_eq!(lats, pending.layout.iter().map(|(_, n)| n).sum::<usize>());
        }
    }

    fn today() -> NaiveDate {
        "2024-01-15".parse().unwrap()
    }

    fn fixture_body() -> Vec<u8> {
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/open-meteo/forecast_daily_4-points-norway_from-warsaw_RETARGETED.json"),
        )
        .unwrap()
    }

    #[test]
    fn days_past_the_forecast_apis_reach_come_from_the_archive_once_a_day() {
        let mut cfg = config(2);
        cfg.archive_url = "http://om.test/v1/archive".into();
        cfg.backfill_days = 92;
        let source = WeatherSource::new(&cfg, &[3022, 3011]);
        let requests = source.requests(today());
        assert_eq!(requests.len(), 1, "92 days: past_days alone");
        assert!(requests[0].0.contains("&past_days=92&forecast_days=7"));
        cfg.backfill_days = 366;
        let mut source = WeatherSource::new(&cfg, &[3022, 3011]);
        let requests = source.requests(today());
        assert_eq!(requests.len(), 2);
        assert!(requests[0].0.contains("&past_days=92&forecast_days=7") && !requests[0].1.archive);
        let (archive, pending) = &requests[1];
        assert!(pending.archive);
        assert!(archive.starts_with("http://om.test/v1/archive?latitude=62.7,62.8,69.6,69.7&"), "{archive}");
        // 366 days back to the day before the forecast's 92 past days: no overlap.
        assert!(archive.ends_with("&timezone=Europe%2FOslo&start_date=2023-01-14&end_date=2023-10-14"), "{archive}");
        assert!(!archive.contains("past_days"));
        // The archive answered: asked again only the next day.
        source.pending = requests.into_iter().map(|(_, p)| p).collect();
        let now: DateTime<Utc> = "2024-01-15T08:00:00Z".parse().unwrap();
        source.parse(&fixture_body(), now).unwrap();
        source.parse(&fixture_body(), now).unwrap();
        assert_eq!(source.requests(today()).len(), 1);
        assert_eq!(source.requests(today().succ_opt().unwrap()).len(), 2);
    }

    #[test]
    fn the_next_norwegian_midnight_follows_the_norwegian_day() {
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        // 23:30 UTC in winter is already 00:30 the next day in Oslo.
        assert_eq!(next_norwegian_midnight(t("2024-01-15T23:30:00Z")), t("2024-01-16T23:00:00Z"));
        assert_eq!(next_norwegian_midnight(t("2024-01-15T12:00:00Z")), t("2024-01-15T23:00:00Z"));
        // Summer time: midnight is 22:00 UTC.
        assert_eq!(next_norwegian_midnight(t("2024-07-01T12:00:00Z")), t("2024-07-01T22:00:00Z"));
    }

    #[tokio::test]
    async fn a_429_stops_requests_until_the_next_norwegian_day() {
        let dir = tempfile::tempdir().unwrap();
        let (_store, writer, _) = Store::open(dir.path(), "t", StoreOptions::default()).unwrap();
        let now: DateTime<Utc> = "2024-01-15T12:00:00Z".parse().unwrap();
        let status = Arc::new(SourceStatus::new("weather", writer.handle()));
        let ctx = SourceCtx {
            client: crate::sources::http_client(Duration::from_secs(1)).unwrap(),
            writer: writer.handle(),
            status: status.clone(),
            cancel: tokio_util::sync::CancellationToken::new(),
            clock: FakeClock::at(now),
        };
        let mut source = WeatherSource::new(&config(3), &[3022]);
        assert_eq!(source.plan(&ctx, now).await.len(), 1);
        // An HTTP 400 is a failure, nothing more.
        source.failed(&Rejection::new("http_status", "HTTP 400 Bad Request: {\"error\":true}"), now);
        assert_eq!(source.plan(&ctx, now).await.len(), 1);
        source.failed(&Rejection::new("http_status", "HTTP 429 Too Many Requests: {\"error\":true}"), now);
        assert!(source.plan(&ctx, now + chrono::Duration::hours(10)).await.is_empty(), "22:00 UTC is 23:00 in Oslo");
        assert_eq!(status.snapshot().rejections.get("rate_limited"), Some(&1));
        assert_eq!(source.plan(&ctx, now + chrono::Duration::hours(11)).await.len(), 1, "00:00 in Oslo");
    }

    #[test]
    fn an_answer_is_parsed_with_the_layout_of_its_request() {
        let mut source = WeatherSource::new(&config(2), &[3022, 3011]);
        source.pending = source.requests(today()).into_iter().map(|(_, p)| p).collect();
        let body = fixture_body();
        let now: DateTime<Utc> = "2023-03-14T06:00:00Z".parse().unwrap();
        let answer = source.parse(&body, now).unwrap();
        let regions: std::collections::BTreeSet<u32> = answer
            .records
            .iter()
            .map(|r| match r {
                Record::WeatherDaily(w) => w.region_id,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(regions, [3011, 3022].into());
        assert!(source.pending.is_empty());
        // With no request pending (a stray answer), nothing can be placed.
        assert_eq!(source.parse(&body, now).unwrap_err().reason, "wrong_count");
    }
}
