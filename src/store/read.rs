//! Read queries over the log and its indexes. All blocking: call them from `spawn_blocking`.

use super::{
    ALERTS, COUNTERS, CURSORS, DEAD_LETTERS, ISS_TRACK, LOG, Store, TLE_BY_EPOCH, WARNINGS, codec, counter, date_key,
    from_e6, key_date,
};
use crate::domain::{
    AlertEmail, AlertKind, AvalancheWarning, DeadLetter, IssPosition, Kind, Record, StoredRecord, Tle,
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
    /// shape. Cost: two binary searches plus one lookup per returned point, whatever the range.
    pub fn track(&self, from: DateTime<Utc>, to: DateTime<Utc>, max_points: Option<usize>) -> anyhow::Result<Track> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ISS_TRACK)?;
        let empty = Track { points: Vec::new(), total: 0 };
        let Some((last_key, _)) = table.last()? else { return Ok(empty) };
        let last = last_key.value();
        let time_of = |ordinal: u64| -> anyhow::Result<i64> {
            Ok(table.get(ordinal)?.context("the track index has a hole")?.value().0)
        };
        // First ordinal whose time is >= t (or last + 1 if none).
        let lower_bound = |t: i64| -> anyhow::Result<u64> {
            let (mut lo, mut hi) = (0u64, last + 1);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if time_of(mid)? < t { lo = mid + 1 } else { hi = mid }
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
            points.extend(point(table.get(first)?.context("track hole")?.value()));
        } else {
            for i in 0..wanted {
                // Even steps from first to the last ordinal in range, both ends included.
                let ordinal = first + (u128::from(i) * u128::from(total - 1) / u128::from(wanted - 1)) as u64;
                points.extend(point(table.get(ordinal)?.context("track hole")?.value()));
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
        for tag in [AlertKind::Pass.tag(), AlertKind::Overhead.tag()] {
            for row in index.range((tag, since.timestamp_millis())..=(tag, i64::MAX))? {
                if let Record::AlertEmail(a) = self.decode_seq(&log, row?.1.value())?.record {
                    out.push(a);
                }
            }
        }
        out.sort_by_key(|a| a.pass_rise);
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
