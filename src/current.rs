//! The "what is true now" feed: the newest ISS position, today's avalanche warnings and weather
//! (Norwegian date, configured regions), the next visible pass, whether the ISS is visible or
//! overhead right now (`sky`), and the danger alerts recorded from today on, on a watch channel.
//!
//! One task owns it: it rereads the store when the writer commits, when the location changes and
//! once a minute (the date changes, the next pass moves on), and publishes only real changes.
//! Between reads it also wakes at the next predicted edge of the sky state (a visible pass
//! starting or ending, the ISS crossing the overhead elevation) and re-evaluates the last read's
//! predictions at that instant, without the store or SGP4, so the state flips on time.
//! State consumers (the MQTT sink) read this instead of the store, so they need neither the
//! store nor pass prediction. Never writes to the store; the clock is passed in, so the rules
//! are tested with a fixed time.

use crate::clock::SharedClock;
use crate::domain::{AvalancheWarning, DangerAlert, IssPosition, WeatherDaily};
use crate::location::Located;
use crate::passes::{Pass, PassOptions, PassQuery};
use crate::store::{Store, WriterHandle};
use chrono::{DateTime, NaiveDate, Utc};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

mod sky;
pub use sky::{SkyForecast, SkyNow};

/// How often the feed rereads without a commit: the date and the next pass depend on time.
const TICK: Duration = Duration::from_secs(60);

/// How far ahead the next visible pass is looked for.
const PASS_HOURS: f64 = 72.0;

/// A snapshot of the current state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Current {
    /// Every record with a seq up to this one is reflected (the writer's last commit seen
    /// before the read); a consumer holding a batch waits until `seq` reaches its last record.
    pub seq: u64,
    pub position: Option<IssPosition>,
    /// The Norwegian date `warnings` are for.
    pub date: NaiveDate,
    /// The newest warning per configured region valid on `date` (no entry: none stored yet).
    pub warnings: Vec<AvalancheWarning>,
    /// The next pass still visible after now, within 3 days; `None` without a TLE or location.
    pub next_pass: Option<Pass>,
    /// Why `next_pass` is `None`: no TLE, no location, a TLE that does not fit the clock
    /// (`passes::freshness`, with its epoch and age), or no visible pass within 3 days.
    pub no_pass_reason: Option<String>,
    /// Visible or overhead right now (both off without a TLE or location).
    pub sky: SkyNow,
    /// The danger alerts the log records for `date` and later (every channel).
    pub danger_alerts: Vec<DangerAlert>,
    /// The newest weather version per configured region for `date` (no entry: none stored).
    pub weather: Vec<WeatherDaily>,
}

/// What the feed reads from; `spawn` starts it.
pub struct CurrentFeed {
    pub store: Store,
    pub writer: WriterHandle,
    pub location: watch::Receiver<Option<Located>>,
    pub regions: Vec<u32>,
    pub pass_options: PassOptions,
    /// Above this the ISS is "overhead" (`email.overhead_elevation_deg`).
    pub overhead_elevation_deg: f64,
    pub clock: SharedClock,
}

impl CurrentFeed {
    /// Reads the state once (an error here is a store that cannot be read at all), then keeps
    /// the returned receiver fresh from a task on `tracker` until `cancel` or the writer stops.
    pub async fn spawn(
        mut self,
        tracker: &TaskTracker,
        cancel: CancellationToken,
    ) -> anyhow::Result<watch::Receiver<Current>> {
        let mut committed = self.writer.subscribe();
        let seq = *committed.borrow_and_update();
        let (first, forecast) = self.read_with_forecast(seq).await?;
        let (tx, rx) = watch::channel(first);
        self.location.borrow_and_update();
        tracker.spawn(async move {
            use tracing::Instrument;
            self.run(committed, tx, forecast, cancel).instrument(tracing::info_span!("current")).await
        });
        Ok(rx)
    }

    async fn run(
        mut self,
        mut committed: watch::Receiver<u64>,
        tx: watch::Sender<Current>,
        mut forecast: SkyForecast,
        cancel: CancellationToken,
    ) {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + TICK, TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut location_open = true;
        let mut last_error = None;
        loop {
            // Recomputed every round (at least every minute), so a wall clock that was set
            // meanwhile costs at most the tick.
            let now = self.clock.now();
            let sky_change = forecast.next_change(now).map(|at| until(at, now));
            let by_commit = tokio::select! {
                _ = cancel.cancelled() => return,
                r = committed.changed() => if r.is_err() { return } else { true },
                r = self.location.changed(), if location_open => { location_open = r.is_ok(); false }
                _ = tick.tick() => false,
                _ = tokio::time::sleep(sky_change.unwrap_or_default()), if sky_change.is_some() => {
                    let now = self.clock.now();
                    tx.send_if_modified(|c| apply_sky(c, &forecast, now));
                    continue;
                }
            };
            // Marked seen before the read, so a commit during the read wakes the next round.
            let seq = *committed.borrow_and_update();
            // Commits of cursor moves only (sinks draining a backlog) change nothing here.
            if by_commit && seq == tx.borrow().seq && last_error.is_none() {
                continue;
            }
            match self.read_with_forecast(seq).await {
                Ok((new, new_forecast)) => {
                    last_error = None;
                    forecast = new_forecast;
                    tx.send_if_modified(|old| {
                        let changed = *old != new;
                        *old = new;
                        changed
                    });
                }
                Err(e) => {
                    // Kept as it was; consumers waiting for `seq` fail their step meanwhile.
                    let text = format!("{e:#}");
                    if last_error.as_ref() != Some(&text) {
                        tracing::warn!(error = %text, "cannot read the current state; retrying within a minute");
                    }
                    last_error = Some(text);
                }
            }
        }
    }

    /// The state as of now, reflecting at least every record up to `seq` (committed already).
    pub async fn read(&self, seq: u64) -> anyhow::Result<Current> {
        Ok(self.read_with_forecast(seq).await?.0)
    }

    /// `read`, with the predictions the sky state is evaluated from until the next read.
    async fn read_with_forecast(&self, seq: u64) -> anyhow::Result<(Current, SkyForecast)> {
        let now = self.clock.now();
        let date = crate::domain::norwegian_date(now);
        let observer = self.location.borrow().map(|l| l.observer);
        let (store, regions, options) = (self.store.clone(), self.regions.clone(), self.pass_options);
        let overhead_deg = self.overhead_elevation_deg;
        tokio::task::spawn_blocking(move || -> anyhow::Result<(Current, SkyForecast)> {
            let position = store.latest_position()?;
            let mut warnings = store.avalanche_for_date(date)?;
            warnings.retain(|w| regions.contains(&w.region_id));
            let forecast = match (store.latest_tle()?, observer) {
                (_, None) => SkyForecast::refused(
                    "the location is unknown: set [location] latitude and longitude, or attach a GPS",
                ),
                (None, _) => SkyForecast::refused("no TLE has been collected yet"),
                (Some(tle), Some(observer)) => match crate::passes::freshness::check(tle.epoch, now) {
                    Err(unusable) => SkyForecast::refused(&unusable.to_string()),
                    Ok(()) => {
                        let query = PassQuery {
                            observer,
                            from: now,
                            hours: PASS_HOURS,
                            options,
                            all: false,
                            max_magnitude: None,
                            brightest_first: false,
                        };
                        match query.run(&tle) {
                            Ok(passes) => {
                                let overhead = overhead_windows(&tle, observer, now, overhead_deg);
                                SkyForecast { passes, overhead, refused: None }
                            }
                            Err(e) => SkyForecast::refused(&format!("no pass can be predicted: {e}")),
                        }
                    }
                },
            };
            let next_pass = forecast.next_pass(now).cloned();
            let no_pass_reason = forecast.no_pass_reason(now);
            let sky = forecast.at(now);
            let danger_alerts = store.danger_alerts_since(date)?;
            let mut weather = store.weather_for_date(date, None)?;
            weather.retain(|w| regions.contains(&w.region_id));
            Ok((
                Current { seq, position, date, warnings, next_pass, no_pass_reason, sky, danger_alerts, weather },
                forecast,
            ))
        })
        .await?
    }
}

/// When the ISS is above `elevation_deg` in the next `PASS_HOURS` (none for a TLE the predictor
/// refuses, like the passes).
fn overhead_windows(
    tle: &crate::domain::Tle,
    observer: crate::passes::Observer,
    now: DateTime<Utc>,
    elevation_deg: f64,
) -> Vec<std::ops::Range<DateTime<Utc>>> {
    let to = now + chrono::Duration::seconds((PASS_HOURS * 3600.0) as i64);
    crate::passes::elevation_windows(tle, observer, now, to, elevation_deg).unwrap_or_default()
}

/// `c` as of `now` by the predictions of the last read (the sky state and the next pass, which
/// moves on when a visible pass ends); whether it changed.
fn apply_sky(c: &mut Current, forecast: &SkyForecast, now: DateTime<Utc>) -> bool {
    let (sky, next_pass, no_pass_reason) = (forecast.at(now), forecast.next_pass(now), forecast.no_pass_reason(now));
    let changed = c.sky != sky || c.next_pass.as_ref() != next_pass || c.no_pass_reason != no_pass_reason;
    c.sky = sky;
    c.next_pass = next_pass.cloned();
    c.no_pass_reason = no_pass_reason;
    changed
}

/// How long from `now` until `at` (zero when it has passed).
fn until(at: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (at - now).to_std().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Record;
    use crate::domain::Tle;
    use crate::location::LocationSource;
    use crate::passes::Observer;
    use crate::store::StoreOptions;
    use chrono::TimeZone;
    use std::sync::atomic::{AtomicI64, Ordering::SeqCst};

    fn warning(region: u32, date: NaiveDate, reg_id: u64, level: u8) -> Record {
        crate::domain::test_warning(region, &date.to_string(), -8, reg_id, Some(level))
    }

    fn position(t: DateTime<Utc>) -> Record {
        Record::IssPosition(IssPosition {
            time: t,
            latitude: 1.5,
            longitude: 2.5,
            altitude_km: None,
            velocity_kmh: None,
            visibility: None,
        })
    }

    /// 2024-01-15 23:30 in Oslo (22:30 UTC).
    fn evening() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 1, 15, 22, 30, 0).unwrap()
    }
    /// 40 minutes later: still the 15th in UTC, the 16th in Oslo.
    fn after_midnight() -> DateTime<Utc> {
        evening() + chrono::Duration::minutes(40)
    }

    fn tle() -> Tle {
        let text = std::fs::read("tests/fixtures/celestrak_gp_CATNR25544_FORMAT_TLE.txt").unwrap();
        crate::sources::tle_parse::parse_tle(&text).unwrap()
    }

    /// The fixture TLE's epoch: prediction is good for days around it.
    fn at_epoch() -> DateTime<Utc> {
        tle().epoch
    }

    fn oslo() -> Located {
        Located {
            observer: Observer { latitude: 59.91, longitude: 10.75, altitude_m: 0.0 },
            source: LocationSource::Config,
            fix_time: None,
        }
    }

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        store: Store,
        writer: WriterHandle,
    }

    fn open() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let (store, writer, _) = Store::open(dir.path(), "test", StoreOptions::default()).unwrap();
        let handle = writer.handle();
        // The thread stops when the last handle is dropped.
        writer.spawn().unwrap();
        Fixture { _dir: dir, store, writer: handle }
    }

    impl Fixture {
        fn feed(
            &self,
            location: Option<Located>,
            now: fn() -> DateTime<Utc>,
        ) -> (CurrentFeed, watch::Sender<Option<Located>>) {
            self.feed_with(location, std::sync::Arc::new(now))
        }

        fn feed_with(
            &self,
            location: Option<Located>,
            clock: SharedClock,
        ) -> (CurrentFeed, watch::Sender<Option<Located>>) {
            let (tx, rx) = watch::channel(location);
            let feed = CurrentFeed {
                store: self.store.clone(),
                writer: self.writer.clone(),
                location: rx,
                regions: vec![3022, 3023],
                pass_options: PassOptions::default(),
                overhead_elevation_deg: 15.0,
                clock,
            };
            (feed, tx)
        }
    }

    #[tokio::test]
    async fn the_state_is_the_newest_position_and_the_norwegian_days_warnings_of_the_configured_regions() {
        let f = open();
        f.writer.append(position(evening() - chrono::Duration::seconds(20)));
        f.writer.append(position(evening() - chrono::Duration::seconds(10)));
        f.writer.append(warning(3022, day("2024-01-15"), 1, 2));
        f.writer.append(warning(3022, day("2024-01-16"), 2, 4));
        f.writer.append(warning(3023, day("2024-01-16"), 3, 1));
        f.writer.append(warning(3099, day("2024-01-16"), 4, 5));
        let seq = f.writer.flush().await.unwrap();
        assert_eq!(seq, 6);

        let (feed, _location) = f.feed(None, evening);
        let c = feed.read(seq).await.unwrap();
        assert_eq!(c.seq, 6);
        assert_eq!(c.position.map(|p| p.time), Some(evening() - chrono::Duration::seconds(10)));
        assert_eq!(c.date, day("2024-01-15"));
        assert_eq!(c.warnings.iter().map(|w| w.reg_id).collect::<Vec<_>>(), [1]);
        assert_eq!(c.next_pass, None, "no TLE, no location");

        // After midnight in Oslo: the 16th's warnings, region 3099 (not configured) left out.
        let (feed, _location) = f.feed(None, after_midnight);
        let c = feed.read(seq).await.unwrap();
        assert_eq!(c.date, day("2024-01-16"));
        assert_eq!(c.warnings.iter().map(|w| w.reg_id).collect::<Vec<_>>(), [2, 3]);
    }

    #[tokio::test]
    async fn the_next_pass_is_the_first_visible_one_not_over_yet_and_needs_a_location() {
        let f = open();
        let tle = tle();
        f.writer.append(Record::Tle(tle.clone()));
        let seq = f.writer.flush().await.unwrap();
        let now = at_epoch();

        let (without, _l) = f.feed(None, at_epoch);
        assert_eq!(without.read(seq).await.unwrap().next_pass, None, "no location, no pass");

        let (feed, _l) = f.feed(Some(oslo()), at_epoch);
        let next = feed.read(seq).await.unwrap().next_pass.expect("a visible pass within 3 days of the epoch");
        assert!(next.visible && next.visible_to.unwrap() > now, "{next:?}");
        assert!(next.rise.time < now + chrono::Duration::hours(72), "{next:?}");
        // Every visible pass that rises before it has ended already.
        let query = PassQuery {
            observer: oslo().observer,
            from: now,
            hours: 72.0,
            options: PassOptions::default(),
            all: true,
            max_magnitude: None,
            brightest_first: false,
        };
        let all = query.run(&tle).unwrap();
        let earlier: Vec<_> = all.iter().filter(|p| p.visible && p.rise.time < next.rise.time).collect();
        assert!(earlier.iter().all(|p| p.visible_to.unwrap() <= now), "{earlier:?}");
    }

    #[tokio::test]
    async fn without_a_next_pass_the_state_says_why() {
        let f = open();
        let (feed, _l) = f.feed(Some(oslo()), at_epoch);
        let c = feed.read(0).await.unwrap();
        assert_eq!((c.next_pass, c.no_pass_reason.as_deref()), (None, Some("no TLE has been collected yet")));

        f.writer.append(Record::Tle(tle()));
        let seq = f.writer.flush().await.unwrap();
        let (feed, _l) = f.feed(None, at_epoch);
        assert!(feed.read(seq).await.unwrap().no_pass_reason.unwrap().contains("location is unknown"));
        let (feed, _l) = f.feed(Some(oslo()), at_epoch);
        assert_eq!(feed.read(seq).await.unwrap().no_pass_reason, None, "a pass, no reason");

        // The clock 20 days past the epoch, and in 1970: the TLE's epoch and age, not a pass.
        fn twenty_days_on() -> DateTime<Utc> {
            tle().epoch + chrono::Duration::days(20)
        }
        let (feed, _l) = f.feed(Some(oslo()), twenty_days_on);
        let c = feed.read(seq).await.unwrap();
        let why = c.no_pass_reason.unwrap();
        assert_eq!(c.next_pass, None);
        let epoch = tle().epoch.format("%Y-%m-%d %H:%M UTC").to_string();
        assert!(why.contains("20.0 days old") && why.contains(&epoch), "{why}");
        let (feed, _l) = f.feed(Some(oslo()), || DateTime::from_timestamp(60, 0).unwrap());
        let why = feed.read(seq).await.unwrap().no_pass_reason.unwrap();
        assert!(why.contains("the clock is wrong") && why.contains(&epoch), "{why}");
    }

    #[tokio::test]
    async fn a_commit_or_a_location_change_refreshes_the_feed_and_cancel_stops_it() {
        let f = open();
        f.writer.append(Record::Tle(tle()));
        f.writer.flush().await.unwrap();
        let (feed, location) = f.feed(None, at_epoch);
        let tracker = TaskTracker::new();
        let cancel = CancellationToken::new();
        let mut rx = feed.spawn(&tracker, cancel.clone()).await.unwrap();
        assert_eq!(rx.borrow_and_update().seq, 1, "read before spawn returns");
        let wait = Duration::from_secs(30);

        f.writer.append(position(evening()));
        f.writer.flush().await.unwrap();
        let c = tokio::time::timeout(wait, rx.wait_for(|c| c.seq == 2)).await.unwrap().unwrap().clone();
        assert_eq!(c.position.map(|p| p.time), Some(evening()));
        assert_eq!(c.next_pass, None, "no location yet");

        // No commit: the location alone makes the feed read again.
        location.send_replace(Some(oslo()));
        let c = tokio::time::timeout(wait, rx.wait_for(|c| c.next_pass.is_some())).await.unwrap().unwrap().clone();
        assert_eq!(c.seq, 2);

        cancel.cancel();
        tracker.close();
        tokio::time::timeout(wait, tracker.wait()).await.expect("the feed stops on cancel");
    }

    static CLOCK: AtomicI64 = AtomicI64::new(0);
    fn test_clock() -> DateTime<Utc> {
        DateTime::from_timestamp(CLOCK.load(SeqCst), 0).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn the_minute_tick_moves_the_warnings_to_the_new_date_without_a_commit() {
        let f = open();
        f.writer.append(warning(3022, day("2024-01-15"), 1, 2));
        f.writer.append(warning(3022, day("2024-01-16"), 2, 4));
        f.writer.flush().await.unwrap();
        CLOCK.store(evening().timestamp(), SeqCst);
        let (feed, _location) = f.feed(None, test_clock);
        let tracker = TaskTracker::new();
        let mut rx = feed.spawn(&tracker, CancellationToken::new()).await.unwrap();
        assert_eq!(rx.borrow_and_update().warnings.iter().map(|w| w.reg_id).collect::<Vec<_>>(), [1]);

        CLOCK.store(after_midnight().timestamp(), SeqCst);
        let started = tokio::time::Instant::now();
        let c = rx.wait_for(|c| c.date == day("2024-01-16")).await.unwrap().clone();
        assert_eq!(c.warnings.iter().map(|w| w.reg_id).collect::<Vec<_>>(), [2]);
        assert!(started.elapsed() >= TICK - Duration::from_secs(1), "it was the tick: {:?}", started.elapsed());
    }

    /// Oslo's reference place (tests/fixtures/passes) and the reference passes' TLE.
    fn oslo_reference() -> (Located, Tle) {
        let observer = Observer { latitude: 59.9139, longitude: 10.7522, altitude_m: 20.0 };
        let tle =
            crate::sources::tle_parse::parse_tle(&std::fs::read("tests/fixtures/passes/iss-2023-09-18.tle").unwrap());
        (Located { observer, source: LocationSource::Config, fix_time: None }, tle.unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn the_sky_state_flips_at_the_predicted_instants_without_a_commit_or_a_tick() {
        let f = open();
        let (oslo, tle) = oslo_reference();
        f.writer.append(Record::Tle(tle));
        f.writer.flush().await.unwrap();
        // A wall clock that runs with Tokio's (paused, auto-advancing) time from 19:36:00, so
        // the minute ticks fall on whole minutes and none is at an edge of the sky state.
        let base: DateTime<Utc> = "2023-09-18T19:36:00Z".parse().unwrap();
        let start = tokio::time::Instant::now();
        let clock: SharedClock =
            std::sync::Arc::new(move || base + chrono::Duration::from_std(start.elapsed()).unwrap());
        let (feed, _location) = f.feed_with(Some(oslo), clock.clone());
        let mut rx = feed.spawn(&TaskTracker::new(), CancellationToken::new()).await.unwrap();
        let first = rx.borrow_and_update().clone();
        assert_eq!(first.sky, SkyNow::default());
        let pass = first.next_pass.expect("the 19:38 pass");
        let (from, to) = (pass.visible_from.unwrap(), pass.visible_to.unwrap());
        assert_eq!(from.to_rfc3339(), "2023-09-18T19:38:31+00:00", "the reference's visible start");

        // Each edge in turn: visible, overhead (15 deg), no longer visible, no longer overhead.
        let mut seen = vec![];
        for want in [(true, false), (true, true), (false, true), (false, false)] {
            let c = rx.wait_for(|c| (c.sky.visible_now, c.sky.overhead) == want).await.unwrap().clone();
            seen.push((clock.now(), c));
        }
        let flip_at = |i: usize| seen[i].0;
        let late = |at: DateTime<Utc>, edge: DateTime<Utc>| at - edge;
        assert!(
            late(flip_at(0), from) >= chrono::Duration::zero() && late(flip_at(0), from) < chrono::Duration::seconds(1),
            "on at {}",
            flip_at(0)
        );
        assert!(
            late(flip_at(2), to) >= chrono::Duration::zero() && late(flip_at(2), to) < chrono::Duration::seconds(1),
            "off at {}",
            flip_at(2)
        );
        // The overhead edges are the predicted crossings of 15 deg, to the second.
        let windows = crate::passes::elevation_windows(
            &oslo_reference().1,
            oslo_reference().0.observer,
            base,
            base + chrono::Duration::hours(1),
            15.0,
        )
        .unwrap();
        let overhead = windows.first().unwrap();
        for (i, edge) in [(1, overhead.start), (3, overhead.end)] {
            let late = late(flip_at(i), edge);
            assert!(
                late >= chrono::Duration::zero() && late < chrono::Duration::seconds(1),
                "edge {edge}, flipped at {}",
                flip_at(i)
            );
        }
        // The pass is over once it is no longer visible: the next pass moves on at once.
        assert_eq!(seen[1].1.next_pass.as_ref().and_then(|p| p.visible_from), Some(from));
        assert!(
            seen[2].1.next_pass.as_ref().and_then(|p| p.visible_from).is_some_and(|t| t > to),
            "{:?}",
            seen[2].1.next_pass
        );
    }
}
