//! `outpost export`: one kind of record in log order, as CQL INSERT statements (cqlsh SOURCE),
//! CSV for cqlsh `COPY ... FROM`, or JSON lines identical to the Kafka message values.
//!
//! Streams in constant memory: the log is read a chunk at a time and written as it goes. CQL and
//! CSV rows come from `cql-export`, the same mapping the live Cassandra sink uses.

use crate::domain::{Kind, Record, StoredRecord};
use crate::message::message;
use crate::store::Store;
use anyhow::Context;
use chrono::NaiveDate;
use std::io::Write;

pub mod features;

const CHUNK: usize = 2000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Cql,
    Csv,
    Jsonl,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KindArg {
    Iss,
    Tle,
    Avalanche,
    Weather,
    /// Not a kind of record: the feature table built from warnings and weather (`features`).
    Features,
}

impl KindArg {
    /// The kind of record exported as it is; `None` for the feature table.
    pub fn kind(self) -> Option<Kind> {
        match self {
            KindArg::Iss => Some(Kind::IssPosition),
            KindArg::Tle => Some(Kind::Tle),
            KindArg::Avalanche => Some(Kind::AvalancheWarning),
            KindArg::Weather => Some(Kind::WeatherDaily),
            KindArg::Features => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ExportRequest {
    pub kind: KindArg,
    pub format: Format,
    /// Inclusive UTC days (for warnings and weather: the Norwegian day they are for).
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub keyspace: String,
    pub replication: String,
}

/// The day a record counts for when filtering by --from/--to.
fn day_of(record: &Record) -> NaiveDate {
    match record {
        Record::AvalancheWarning(w) => w.valid_date,
        Record::WeatherDaily(w) => w.date,
        other => other.source_time().date_naive(),
    }
}

impl ExportRequest {
    fn wants(&self, rec: &StoredRecord) -> bool {
        if Some(rec.record.kind()) != self.kind.kind() {
            return false;
        }
        let day = day_of(&rec.record);
        self.from.is_none_or(|f| day >= f) && self.to.is_none_or(|t| day <= t)
    }
}

/// Writes the export to `out`; calls `progress(records_written)` now and then (rows, for
/// features). Returns the count.
pub fn export(
    store: &Store,
    req: &ExportRequest,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(u64),
) -> anyhow::Result<u64> {
    let Some(kind) = req.kind.kind() else { return features::export(store, req, out, progress) };
    let table = cql_export::Table::for_kind(kind.as_str()).context("no CQL table for this kind")?;
    match req.format {
        Format::Cql => {
            writeln!(out, "-- Outpost export: {kind} records; load with: cqlsh -f FILE")?;
            writeln!(out, "{}\n", cql_export::schema_cql(&req.keyspace, &req.replication)?.trim_end())?;
        }
        Format::Csv => writeln!(out, "{}", cql_export::csv_header(table))?,
        Format::Jsonl => {}
    }
    let mut cursor = 0;
    let mut written = 0u64;
    loop {
        let chunk = store.read_after(cursor, CHUNK)?;
        let Some(last) = chunk.last() else { break };
        cursor = last.seq;
        for rec in chunk.iter().filter(|r| req.wants(r)) {
            let msg = message(rec);
            match req.format {
                Format::Jsonl => writeln!(out, "{}", serde_json::to_string(&msg)?)?,
                Format::Cql | Format::Csv => {
                    let row =
                        cql_export::row(&msg).with_context(|| format!("record {} does not map to CQL", rec.seq))?;
                    if req.format == Format::Cql {
                        writeln!(out, "{}", cql_export::insert_literal(&row, &req.keyspace))?;
                    } else {
                        writeln!(out, "{}", cql_export::csv_line(&row))?;
                    }
                }
            }
            written += 1;
        }
        progress(written);
    }
    out.flush()?;
    Ok(written)
}

/// How to load a CSV export (printed on stderr after writing one).
pub fn csv_load_hint(req: &ExportRequest, file: &str) -> Option<String> {
    let table = cql_export::Table::for_kind(req.kind.kind()?.as_str())?;
    Some(cql_export::copy_from_cql(table, &req.keyspace, file))
}

/// Why a `ChannelWriter` stopped taking data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unread {
    /// The consumer took nothing for the stall time.
    Stalled,
    /// The consumer is gone (the client closed the connection, or the server dropped it).
    Gone,
}

/// A `Write` that hands 64 KB chunks to an async consumer (the HTTP export stream), from a
/// blocking-pool thread. A full channel is the back-pressure; a consumer that takes nothing for
/// `stall` ends the export, so a client that stops reading cannot hold the thread.
pub struct ChannelWriter {
    buf: Vec<u8>,
    tx: tokio::sync::mpsc::Sender<axum::body::Bytes>,
    stall: std::time::Duration,
    runtime: tokio::runtime::Handle,
    unread: Option<Unread>,
}

impl ChannelWriter {
    pub fn new(
        tx: tokio::sync::mpsc::Sender<axum::body::Bytes>,
        stall: std::time::Duration,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        ChannelWriter { buf: Vec::with_capacity(64 * 1024), tx, stall, runtime, unread: None }
    }

    /// Why it stopped, when its consumer stopped taking data.
    pub fn unread(&self) -> Option<Unread> {
        self.unread
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 64 * 1024 {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = axum::body::Bytes::from(std::mem::take(&mut self.buf));
        // A blocking-pool thread (not an async one), so it may wait on the runtime here.
        let sent = self.runtime.block_on(tokio::time::timeout(self.stall, self.tx.send(chunk)));
        let (unread, kind) = match sent {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(_)) => (Unread::Gone, std::io::ErrorKind::BrokenPipe),
            Err(_) => (Unread::Stalled, std::io::ErrorKind::TimedOut),
        };
        self.unread = Some(unread);
        Err(std::io::Error::new(kind, "the client stopped taking the export"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// Writes up to three chunks into a channel of one from a blocking-pool thread; returns the error
    /// and why the writer stopped.
    async fn write_three_chunks(rx_kept: bool, stall: Duration) -> (std::io::Error, Option<Unread>) {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let rx = rx_kept.then_some(rx);
        let runtime = tokio::runtime::Handle::current();
        let (err, unread) = tokio::task::spawn_blocking(move || {
            let mut out = ChannelWriter::new(tx, stall, runtime);
            // Each 64 KB write is one chunk: the first fills the channel, the second waits.
            let chunk = [b'x'; 64 * 1024];
            let err = (0..3).find_map(|_| out.write_all(&chunk).err()).expect("a chunk is refused");
            (err, out.unread())
        })
        .await
        .unwrap();
        drop(rx);
        (err, unread)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_consumer_that_takes_nothing_stops_the_writer_after_the_stall_time() {
        let started = Instant::now();
        let (err, unread) = write_three_chunks(true, Duration::from_millis(300)).await;
        assert_eq!((err.kind(), unread), (std::io::ErrorKind::TimedOut, Some(Unread::Stalled)));
        assert!(started.elapsed() >= Duration::from_millis(300));
        let (err, unread) = write_three_chunks(false, Duration::from_secs(600)).await;
        assert_eq!(
            (err.kind(), unread),
            (std::io::ErrorKind::BrokenPipe, Some(Unread::Gone)),
            "at once, not after the stall"
        );
    }
}
