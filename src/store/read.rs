//! Read queries over the log and its indexes. All blocking: call them from `spawn_blocking`.

use super::{
    ALERTS, COARSE_STRIDE, COUNTERS, CURSORS, DANGER_ALERTS, DEAD_LETTERS, ISS_TRACK, ISS_TRACK_COARSE, LOG, Store,
    TLE_BY_EPOCH, WARNINGS, WEATHER, codec, counter, date_key, from_e6, key_date,
};
use crate::domain::{
    AlertChannel, AlertEmail, AlertKind, AvalancheWarning, DangerAlert, DeadLetter, IssPosition, Kind, Record,
    StoredRecord, Tle, WeatherDaily,
};
use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use redb::{ReadableTable, ReadableTableMetadata};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrackPoint {
    pub time: DateTime<Utc>,
    pub latitude: f64,
    pub longitude: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Track {
    pub points: Vec<TrackPoint>,
    /// Positions in the range before downsampling.
    pub total: u64,
}

/// Per-kind totals and time span, for `outpost status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KindSummary {
    pub kind: Kind,
    pub count: u64,
    pub first: Option<DateTime<Utc>>,
    pub last: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreSummary {
    pub path: String,
    pub last_seq: u64,
    pub kinds: Vec<KindSummary>,
    pub size_bytes: u64,
    pub cursors: BTreeMap<String, u64>,
    /// Persisted counters such as `rejected.<source>.<reason>`.
    pub counters: BTreeMap<String, u64>,
}

type TrackRow = (i64, i32, i32, u64);

/// The shortest step (in positions) between downsampled points that takes them from the coarse
/// index: rounding to every `COARSE_STRIDE`-th position then moves a point by at most 1/16 step.
const COARSE_MIN_STEP: u64 = 8 * COARSE_STRIDE;

fn point(row: TrackRow) -> Option<TrackPoint> {
    Some(TrackPoint {
        time: DateTime::from_timestamp_millis(row.0)?,
        latitude: from_e6(row.1),
        longitude: from_e6(row.2),
    })
}

impl Store {
    fn decode_seq(&self, log: &impl ReadableTable<u64, &'static [u8]>, seq: u64) -> anyhow::Result<StoredRecord> {
        let bytes = log.get(seq)?.with_context(|| format!("index points at missing log entry {seq}"))?;
        let (station, record) = codec::decode(bytes.value()).with_context(|| format!("log entry {seq}"))?;
        Ok(StoredRecord { seq, station: self.station_name(station), record })
    }

    /// The newest ISS position.
    pub fn latest_position(&self) -> anyhow::Result<Option<IssPosition>> {
        let txn = self.db.begin_read()?;
        let Some(seq) = txn.open_table(ISS_TRACK)?.last()?.map(|(_, row)| row.value().3) else {
            return Ok(None);
        };
        let log = txn.open_table(LOG)?;
        match self.decode_seq(&log, seq)?.record {
            Record::IssPosition(p) => Ok(Some(p)),
            other => anyhow::bail!("track index points at a {} record", other.kind()),
        }
    }

    /// The newest TLE (by epoch).
    pub fn latest_tle(&self) -> anyhow::Result<Option<Tle>> {
        let txn = self.db.begin_read()?;
        let Some(seq) = txn.open_table(TLE_BY_EPOCH)?.last()?.map(|(_, v)| v.value()) else {
            return Ok(None);
        };
        let log = txn.open_table(LOG)?;
        match self.decode_seq(&log, seq)?.record {
            Record::Tle(t) => Ok(Some(t)),
            other => anyhow::bail!("TLE index points at a {} record", other.kind()),
        }
    }

    /// Positions with `from <= time <= to`, in time order. With `max_points`, at most that many,
    /// taken at even steps through the range (first and last always kept), so the track keeps its
    /// shape. `total` is always the exact count in the range.
    ///
    /// Cost: two binary searches over the coarse index (every 64th position) each narrowed to
    /// one run of at most 63 track rows, plus one lookup per returned point. When the steps are
    /// at least `COARSE_MIN_STEP` (512) positions apart, the points between the first and the
    /// last come from the coarse index: each is the stored position nearest to its even step
    /// among every 64th (at most 32 positions, 1/16 of a step, from the one an exact even step
    /// would pick; about 5 minutes at 10 s polls), so the steps stay even within 1/8 and
    /// strictly increasing. A year downsampled to 2,000 points then reads a few hundred coarse
    /// pages instead of 2,000 track pages (see BENCHMARKS.md).
    pub fn track(&self, from: DateTime<Utc>, to: DateTime<Utc>, max_points: Option<usize>) -> anyhow::Result<Track> {
        self.track_via(from, to, max_points, true)
    }

    /// `track` as format 1 answered it, from the full index only: the benches' and tests'
    /// reference for the coarse index.
    #[doc(hidden)]
    pub fn track_full_index(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        max_points: Option<usize>,
    ) -> anyhow::Result<Track> {
        self.track_via(from, to, max_points, false)
    }

    fn track_via(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        max_points: Option<usize>,
        use_coarse: bool,
    ) -> anyhow::Result<Track> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ISS_TRACK)?;
        let coarse = txn.open_table(ISS_TRACK_COARSE)?;
        let empty = Track { points: Vec::new(), total: 0 };
        let Some((last_key, _)) = table.last()? else { return Ok(empty) };
        let last = last_key.value();
        let row_at = |ordinal: u64| -> anyhow::Result<TrackRow> {
            Ok(table.get(ordinal)?.context("the track index has a hole")?.value())
        };
        let coarse_at = |k: u64| -> anyhow::Result<TrackRow> {
            Ok(coarse.get(k)?.context("the coarse track index has a hole")?.value())
        };
        // First ordinal whose time is >= t (or last + 1 if none).
        let lower_bound = |t: i64| -> anyhow::Result<u64> {
            let (mut lo, mut hi) = (0u64, last + 1);
            if use_coarse {
                // First coarse row at or after t; the answer lies after the coarse row before it.
                let (mut clo, mut chi) = (0u64, last / COARSE_STRIDE + 1);
                while clo < chi {
                    let mid = clo + (chi - clo) / 2;
                    if coarse_at(mid)?.0 < t { clo = mid + 1 } else { chi = mid }
                }
                if clo == 0 {
                    return Ok(0);
                }
                lo = (clo - 1) * COARSE_STRIDE + 1;
                hi = hi.min(clo * COARSE_STRIDE);
                for row in table.range(lo..hi)? {
                    let (ordinal, row) = row?;
                    if row.value().0 >= t {
                        return Ok(ordinal.value());
                    }
                }
                return Ok(hi);
            }
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if row_at(mid)?.0 < t { lo = mid + 1 } else { hi = mid }
            }
            Ok(lo)
        };
        let first = lower_bound(from.timestamp_millis())?;
        let end = lower_bound(to.timestamp_millis().saturating_add(1))?; // exclusive
        if first >= end {
            return Ok(empty);
        }
        let total = end - first;
        let wanted = max_points.map_or(total, |m| (m as u64).min(total));
        let mut points = Vec::with_capacity(wanted as usize);
        if wanted == total {
            for row in table.range(first..end)? {
                points.extend(point(row?.1.value()));
            }
        } else if wanted == 1 {
            points.extend(point(row_at(first)?));
        } else {
            // Even steps from first to the last ordinal in range, both ends included.
            let step_at = |i: u64| first + (u128::from(i) * u128::from(total - 1) / u128::from(wanted - 1)) as u64;
            // Steps at least COARSE_STRIDE apart round to distinct coarse rows strictly inside
            // the range (the ends are exact); COARSE_MIN_STEP keeps them even.
            let from_coarse = use_coarse && (total - 1) / (wanted - 1) >= COARSE_MIN_STEP;
            for i in 0..wanted {
                let ordinal = step_at(i);
                let row = if from_coarse && i > 0 && i < wanted - 1 {
                    coarse_at((ordinal + COARSE_STRIDE / 2) / COARSE_STRIDE)?
                } else {
                    row_at(ordinal)?
                };
                points.extend(point(row));
            }
        }
        Ok(Track { points, total })
    }

    /// The newest version of each region's warning valid on `date`. An assessed version always
    /// wins over a "not assessed" placeholder; otherwise the latest publish time wins.
    pub fn avalanche_for_date(&self, date: NaiveDate) -> anyhow::Result<Vec<AvalancheWarning>> {
        let d = date_key(date);
        Ok(self
            .shown_warnings((d, 0, i64::MIN, 0)..=(d, u32::MAX, i64::MAX, u64::MAX), |_| true)?
            .into_values()
            .collect())
    }

    /// The warning shown for `region` on each stored date in `from..=to` (the version
    /// `avalanche_for_date` picks), oldest first: a region's season at a glance.
    pub fn region_warnings(
        &self,
        region: u32,
        from: NaiveDate,
        to: NaiveDate,
    ) -> anyhow::Result<Vec<AvalancheWarning>> {
        let range = (date_key(from), region, i64::MIN, 0)..=(date_key(to), region, i64::MAX, u64::MAX);
        Ok(self.shown_warnings(range, |r| r == region)?.into_values().collect())
    }

    /// Picks, per (date, region) in `range` accepted by `keep`, the version to show, and decodes it.
    fn shown_warnings(
        &self,
        range: std::ops::RangeInclusive<(i32, u32, i64, u64)>,
        keep: impl Fn(u32) -> bool,
    ) -> anyhow::Result<BTreeMap<(i32, u32), AvalancheWarning>> {
        let txn = self.db.begin_read()?;
        let index = txn.open_table(WARNINGS)?;
        // (date, region) -> (assessed, publish_ms, reg_id, seq): the max tuple is the version to show.
        let mut best: BTreeMap<(i32, u32), (bool, i64, u64, u64)> = BTreeMap::new();
        for row in index.range(range)? {
            let (key, seq) = row?;
            let (date, region, publish, reg_id) = key.value();
            if !keep(region) {
                continue;
            }
            let candidate = (reg_id != 0, publish, reg_id, seq.value());
            let slot = best.entry((date, region)).or_insert(candidate);
            if candidate > *slot {
                *slot = candidate;
            }
        }
        let log = txn.open_table(LOG)?;
        let mut out = BTreeMap::new();
        for (key, (_, _, _, seq)) in best {
            if let Record::AvalancheWarning(w) = self.decode_seq(&log, seq)?.record {
                out.insert(key, w);
            }
        }
        Ok(out)
    }

    /// For each region, the newest valid date stored on or after `since`.
    pub fn newest_warning_dates(&self, since: NaiveDate) -> anyhow::Result<BTreeMap<u32, NaiveDate>> {
        let txn = self.db.begin_read()?;
        let index = txn.open_table(WARNINGS)?;
        let mut out = BTreeMap::new();
        for row in index.range((date_key(since), 0, i64::MIN, 0)..)? {
            let (key, _) = row?;
            let (d, region, _, _) = key.value();
            if let Some(date) = key_date(d) {
                out.entry(region).and_modify(|v: &mut NaiveDate| *v = (*v).max(date)).or_insert(date);
            }
        }
        Ok(out)
    }

    /// Up to `limit` records with seq > `after`, in log order (what a sink reads next).
    pub fn read_after(&self, after: u64, limit: usize) -> anyhow::Result<Vec<StoredRecord>> {
        let txn = self.db.begin_read()?;
        let log = txn.open_table(LOG)?;
        let mut out = Vec::new();
        for row in log.range(after.saturating_add(1)..)?.take(limit) {
            let (seq, bytes) = row?;
            let (station, record) =
                codec::decode(bytes.value()).with_context(|| format!("log entry {}", seq.value()))?;
            out.push(StoredRecord { seq: seq.value(), station: self.station_name(station), record });
        }
        Ok(out)
    }

    /// The recorded email for a pass, if one was sent or given up.
    pub fn alert_email(&self, alert: AlertKind, pass_rise: DateTime<Utc>) -> anyhow::Result<Option<AlertEmail>> {
        let txn = self.db.begin_read()?;
        let Some(seq) = txn.open_table(ALERTS)?.get((alert.tag(), pass_rise.timestamp_millis()))?.map(|v| v.value())
        else {
            return Ok(None);
        };
        let log = txn.open_table(LOG)?;
        match self.decode_seq(&log, seq)?.record {
            Record::AlertEmail(a) => Ok(Some(a)),
            other => anyhow::bail!("alert index points at a {} record", other.kind()),
        }
    }

    /// Recorded emails for passes rising at or after `since`, oldest first.
    pub fn alert_emails_since(&self, since: DateTime<Utc>) -> anyhow::Result<Vec<AlertEmail>> {
        let txn = self.db.begin_read()?;
        let index = txn.open_table(ALERTS)?;
        let log = txn.open_table(LOG)?;
        let mut out = Vec::new();
        let tags = [AlertKind::Pass, AlertKind::Overhead].into_iter().flat_map(|alert| {
            [AlertChannel::Email, AlertChannel::Push].map(|channel| AlertEmail::index_tag(alert, channel))
        });
        for tag in tags {
            for row in index.range((tag, since.timestamp_millis())..=(tag, i64::MAX))? {
                if let Record::AlertEmail(a) = self.decode_seq(&log, row?.1.value())?.record {
                    out.push(a);
                }
            }
        }
        out.sort_by_key(|a| a.pass_rise);
        Ok(out)
    }

    /// Recorded danger alerts for valid dates on or after `since`, by date, region, level and channel.
    pub fn danger_alerts_since(&self, since: NaiveDate) -> anyhow::Result<Vec<DangerAlert>> {
        let txn = self.db.begin_read()?;
        let index = txn.open_table(DANGER_ALERTS)?;
        let log = txn.open_table(LOG)?;
        let mut out = Vec::new();
        for row in index.range((date_key(since), 0, 0, 0)..)? {
            if let Record::DangerAlert(a) = self.decode_seq(&log, row?.1.value())?.record {
                out.push(a);
            }
        }
        Ok(out)
    }

    /// The records `sink` set aside (every sink's when `None`), in the order they were refused.
    pub fn dead_letters(&self, sink: Option<&str>) -> anyhow::Result<Vec<DeadLetter>> {
        let txn = self.db.begin_read()?;
        let index = txn.open_table(DEAD_LETTERS)?;
        let log = txn.open_table(LOG)?;
        let mut out = Vec::new();
        for row in index.iter()? {
            let (key, seq) = row?;
            if sink.is_some_and(|s| s != key.value().0) {
                continue;
            }
            if let Record::DeadLetter(d) = self.decode_seq(&log, seq.value())?.record {
                out.push(d);
            }
        }
        out.sort_by_key(|d| (d.at, d.seq));
        Ok(out)
    }

    /// The dead letters of `sink` (every sink's when `None`) that were not re-sent and
    /// acknowledged since (their `dead_letter_resent_mark` is unset).
    pub fn pending_dead_letters(&self, sink: Option<&str>) -> anyhow::Result<Vec<DeadLetter>> {
        let txn = self.db.begin_read()?;
        let marks = txn.open_table(CURSORS)?;
        let mut out = Vec::new();
        for d in self.dead_letters(sink)? {
            let mark = super::dead_letter_resent_mark(&d.sink, d.seq);
            if marks.get(mark.as_str())?.is_none_or(|v| v.value() == 0) {
                out.push(d);
            }
        }
        Ok(out)
    }

    pub fn cursor(&self, name: &str) -> anyhow::Result<u64> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(CURSORS)?.get(name)?.map_or(0, |v| v.value()))
    }

    pub fn counter(&self, name: &str) -> anyhow::Result<u64> {
        counter(&self.db.begin_read()?, name)
    }

    /// Totals per kind, cursors, counters and size on disk.
    pub fn summary(&self) -> anyhow::Result<StoreSummary> {
        let txn = self.db.begin_read()?;
        let log = txn.open_table(LOG)?;
        let track = txn.open_table(ISS_TRACK)?;
        let tle = txn.open_table(TLE_BY_EPOCH)?;
        let warnings = txn.open_table(WARNINGS)?;
        let alerts = txn.open_table(ALERTS)?;
        let dead_letters = txn.open_table(DEAD_LETTERS)?;
        let weather = txn.open_table(WEATHER)?;
        let danger_alerts = txn.open_table(DANGER_ALERTS)?;
        let ms = |v: i64| DateTime::<Utc>::from_timestamp_millis(v);
        let warning_time = |seq: Option<u64>| -> anyhow::Result<Option<DateTime<Utc>>> {
            Ok(match seq {
                Some(s) => Some(self.decode_seq(&log, s)?.record.source_time()),
                None => None,
            })
        };
        // Every kind, by its own index: a new kind fails to compile here until it has a summary.
        let kinds = Kind::ALL
            .into_iter()
            .map(|kind| {
                Ok(match kind {
                    Kind::IssPosition => KindSummary {
                        kind,
                        count: track.len()?,
                        first: track.first()?.and_then(|(_, v)| ms(v.value().0)),
                        last: track.last()?.and_then(|(_, v)| ms(v.value().0)),
                    },
                    Kind::Tle => KindSummary {
                        kind,
                        count: tle.len()?,
                        first: tle.first()?.and_then(|(k, _)| ms(k.value())),
                        last: tle.last()?.and_then(|(k, _)| ms(k.value())),
                    },
                    Kind::AvalancheWarning => KindSummary {
                        kind,
                        count: warnings.len()?,
                        first: warning_time(warnings.first()?.map(|(_, v)| v.value()))?,
                        last: warning_time(warnings.last()?.map(|(_, v)| v.value()))?,
                    },
                    Kind::AlertEmail => KindSummary { kind, count: alerts.len()?, first: None, last: None },
                    Kind::DeadLetter => KindSummary { kind, count: dead_letters.len()?, first: None, last: None },
                    Kind::WeatherDaily => KindSummary { kind, count: weather.len()?, first: None, last: None },
                    Kind::DangerAlert => KindSummary { kind, count: danger_alerts.len()?, first: None, last: None },
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut cursors = BTreeMap::new();
        for row in txn.open_table(CURSORS)?.iter()? {
            let (k, v) = row?;
            cursors.insert(k.value().to_owned(), v.value());
        }
        let mut counters = BTreeMap::new();
        for row in txn.open_table(COUNTERS)?.iter()? {
            let (k, v) = row?;
            counters.insert(k.value().to_owned(), v.value());
        }
        let size_bytes = [super::DB_FILE, super::JOURNAL_FILE, super::HEADER_FILE]
            .iter()
            .filter_map(|f| std::fs::metadata(self.dir.join(f)).ok())
            .map(|m| m.len())
            .sum();
        Ok(StoreSummary {
            path: self.dir.display().to_string(),
            last_seq: log.last()?.map_or(0, |(k, _)| k.value()),
            kinds,
            size_bytes,
            cursors,
            counters,
        })
    }
}

impl Store {
    /// For each region, the valid dates stored from `since` on (a region's missing days show as
    /// holes: the avalanche back-fill asks for them again).
    pub fn warning_days(
        &self,
        since: NaiveDate,
    ) -> anyhow::Result<BTreeMap<u32, std::collections::BTreeSet<NaiveDate>>> {
        let txn = self.db.begin_read()?;
        let index = txn.open_table(WARNINGS)?;
        let mut out: BTreeMap<u32, std::collections::BTreeSet<NaiveDate>> = BTreeMap::new();
        for row in index.range((date_key(since), 0, i64::MIN, 0)..)? {
            let (key, _) = row?;
            let (d, region, _, _) = key.value();
            if let Some(date) = key_date(d) {
                out.entry(region).or_default().insert(date);
            }
        }
        Ok(out)
    }
}

impl Store {
    /// The newest version of each region's weather for the Norwegian day `date` (only `region`'s
    /// if given), in region order.
    pub fn weather_for_date(&self, date: NaiveDate, region: Option<u32>) -> anyhow::Result<Vec<WeatherDaily>> {
        let d = date_key(date);
        let (low, high) = region.map_or((0, u32::MAX), |r| (r, r));
        let txn = self.db.begin_read()?;
        let index = txn.open_table(WEATHER)?;
        // region -> seq of the newest fetch (the last row of its key range).
        let mut newest: BTreeMap<u32, u64> = BTreeMap::new();
        for row in index.range((d, low, i64::MIN, 0)..=(d, high, i64::MAX, u64::MAX))? {
            let (key, seq) = row?;
            newest.insert(key.value().1, seq.value());
        }
        let log = txn.open_table(LOG)?;
        let mut out = Vec::with_capacity(newest.len());
        for seq in newest.into_values() {
            match self.decode_seq(&log, seq)?.record {
                Record::WeatherDaily(w) => out.push(w),
                other => anyhow::bail!("weather index points at a {} record", other.kind()),
            }
        }
        Ok(out)
    }
}

impl Store {
    /// The first Norwegian day on or after `from` with a warning or a weather version stored: the
    /// feature export walks the stored days with it, a day at a time.
    pub fn next_warning_or_weather_day(&self, from: NaiveDate) -> anyhow::Result<Option<NaiveDate>> {
        let d = date_key(from);
        let txn = self.db.begin_read()?;
        let mut first = None::<i32>;
        for table in [WARNINGS, WEATHER] {
            if let Some(row) = txn.open_table(table)?.range((d, 0, i64::MIN, 0)..)?.next() {
                let day = row?.0.value().0;
                first = Some(first.map_or(day, |f| f.min(day)));
            }
        }
        Ok(first.and_then(key_date))
    }
}
