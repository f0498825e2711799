//! Wires the appliance together: opens the store, starts the writer, every collector and the web
//! server under one `CancellationToken`, and shuts them down in order (collectors and web first,
//! the store's final commit last).

use crate::config::Config;
use crate::sinks::cassandra::CassandraSink;
use crate::sinks::forwarder::{Forwarder, cursor_name};
use crate::sinks::kafka::KafkaSink;
use crate::sinks::mqtt::MqttSink;
use crate::sinks::{Sink, SinkStatus};
use crate::sources::iss_position::IssPositionSource;
use crate::sources::tle::{LAST_ATTEMPT_MARK, TleSource};
use crate::sources::varsom::VarsomSource;
use crate::sources::{SourceCtx, SourceStatus, http_client};
use crate::store::{Store, StoreOptions};
use crate::web::{self, AppState};
use anyhow::Context;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Longest we wait for collectors and in-flight requests once shutdown starts.
const DRAIN: Duration = Duration::from_secs(10);

pub fn store_options(config: &Config) -> StoreOptions {
    StoreOptions {
        commit_interval: config.commit_interval(),
        fold_interval: Duration::from_secs(config.store.fold_interval_s),
        verify_on_open: config.store.verify_on_start,
        ..StoreOptions::default()
    }
}

/// Opens the configured store for a command that only reads it; `None` while a running
/// `outpost run` holds it (ask the daemon instead). Blocking: it may replay the journal.
pub fn open_store_if_free(config: &Config) -> anyhow::Result<Option<Store>> {
    match Store::open(&config.store.path, &config.station.id, store_options(config)) {
        // The writer is not started: the store is only read.
        Ok((store, _writer, _)) => Ok(Some(store)),
        Err(e) if e.downcast_ref::<crate::store::StoreInUse>().is_some() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Runs until `shutdown` is cancelled. `listener` is already bound (tests bind port 0).
pub async fn run(config: Config, listener: tokio::net::TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let started = Instant::now();
    let dir = config.store.path.clone();
    let station = config.station.id.clone();
    let opts = store_options(&config);
    let (store, writer, report) = tokio::task::spawn_blocking(move || Store::open(&dir, &station, opts)).await??;
    tracing::info!(
        path = %config.store.path.display(),
        replayed = report.replayed,
        open_ms = report.open_ms as u64,
        "store open"
    );
    let handle = writer.handle();
    let writer_thread = writer.spawn().context("cannot start the store writer")?;

    let client = http_client(config.http_timeout())?;
    let (last_position, last_tle_attempt) = {
        let s = store.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            Ok((s.latest_position()?.map(|p| p.time), s.cursor(LAST_ATTEMPT_MARK)?))
        })
        .await??
    };

    let tracker = TaskTracker::new();
    let mut statuses = Vec::new();
    let mut ctx = |name: &'static str| {
        let status = Arc::new(SourceStatus::new(name, handle.clone()));
        statuses.push(status.clone());
        SourceCtx { client: client.clone(), writer: handle.clone(), status, cancel: shutdown.clone() }
    };
    let iss = IssPositionSource {
        url: config.iss.position_url.clone(),
        interval: Duration::from_secs(config.iss.poll_interval_s),
        last_stored: last_position,
    };
    let c = ctx("iss_position");
    tracker.spawn(tracing_task("iss_position", iss.run(c)));
    let tle =
        TleSource { url: config.iss.tle_url.clone(), refresh: config.tle_refresh(), last_attempt_s: last_tle_attempt };
    let c = ctx("iss_tle");
    tracker.spawn(tracing_task("iss_tle", tle.run(c)));
    let varsom = VarsomSource {
        base_url: config.varsom.base_url.clone(),
        regions: config.varsom.regions.clone(),
        lang: config.varsom.lang,
        backfill_days: config.varsom.backfill_days,
        recheck: Duration::from_secs_f64(config.varsom.recheck_interval_h * 3600.0),
        store: store.clone(),
    };
    let c = ctx("varsom");
    tracker.spawn(tracing_task("varsom", varsom.run(c)));

    let (location, location_status) = crate::location::spawn(&config.location, shutdown.clone());

    let mut sinks = Vec::new();
    if config.kafka.enabled() {
        let sink = KafkaSink::new(config.kafka.clone(), config.station.id.clone());
        sinks.push(spawn_sink(&tracker, sink, &store, &handle, config.kafka.batch_size, &shutdown).await?);
    }
    if config.cassandra.enabled() {
        let sink = CassandraSink::new(config.cassandra.clone());
        sinks.push(spawn_sink(&tracker, sink, &store, &handle, config.cassandra.batch_size, &shutdown).await?);
    }
    if config.mqtt.enabled() {
        // Only the MQTT sink reads the current state, so its feed runs only with it.
        let feed = crate::current::CurrentFeed {
            store: store.clone(),
            writer: handle.clone(),
            location: location.clone(),
            regions: config.varsom.regions.clone(),
            pass_options: config.alerts.pass_options(),
            now: chrono::Utc::now,
        };
        let current = feed.spawn(&tracker, shutdown.clone()).await?;
        let sink =
            MqttSink::new(config.mqtt.clone(), config.station.id.clone(), config.varsom.regions.clone(), current);
        sinks.push(spawn_sink(&tracker, sink, &store, &handle, 1000, &shutdown).await?);
    }

    let mut email = None;
    if config.email.enabled() {
        let status = Arc::new(crate::alerts::EmailStatus::default());
        email = Some(status.clone());
        let alerts = crate::alerts::EmailAlerts {
            config: config.clone(),
            store: store.clone(),
            writer: handle.clone(),
            location: location.clone(),
            status,
        };
        let cancel = shutdown.clone();
        tracker.spawn(async move {
            use tracing::Instrument;
            alerts.run(cancel).instrument(tracing::info_span!("alerts")).await
        });
    }

    let state = AppState {
        store: store.clone(),
        writer: handle.clone(),
        sources: Arc::new(statuses),
        sinks: Arc::new(sinks),
        station: config.station.id.clone(),
        started,
        location,
        location_status,
        pass_options: config.alerts.pass_options(),
        keyspace: config.cassandra.keyspace.clone(),
        replication: config.cassandra.replication.clone(),
        email,
        tile_url: config.web.tile_url.clone(),
        shutdown: shutdown.clone(),
    };
    let credentials = config.web.credentials().map(|(u, p)| (u.to_owned(), crate::config::Secret::new(p)));
    tracing::info!(address = %listener.local_addr()?, basic_auth = credentials.is_some(), "serving the map and API");
    let web_task = tracker.spawn(web::serve(listener, state, credentials));
    tracker.close();

    shutdown.cancelled().await;
    tracing::info!("shutting down");
    if tokio::time::timeout(DRAIN, tracker.wait()).await.is_err() {
        tracing::warn!("some tasks did not stop within {DRAIN:?}; committing the store anyway");
    }
    if web_task.is_finished() {
        if let Ok(Err(e)) = web_task.await {
            tracing::error!(error = %e, "web server error");
        }
    } else {
        web_task.abort();
    }
    let last = handle.shutdown().await;
    tokio::task::spawn_blocking(move || writer_thread.join()).await?.ok();
    let last =
        last.context("final store commit failed (records remain in the journal and are replayed at the next start)")?;
    tracing::info!(last_seq = last, "store closed cleanly");
    Ok(())
}

/// Starts a sink's forwarder from its persisted cursor; returns its status handle.
async fn spawn_sink<S: Sink + 'static>(
    tracker: &TaskTracker,
    sink: S,
    store: &Store,
    writer: &crate::store::WriterHandle,
    batch_size: usize,
    cancel: &CancellationToken,
) -> anyhow::Result<Arc<SinkStatus>> {
    let name = sink.name();
    let s = store.clone();
    let cursor = tokio::task::spawn_blocking(move || s.cursor(&cursor_name(name))).await??;
    let status = Arc::new(SinkStatus::new(name, cursor));
    let forwarder = Forwarder::new(sink, store.clone(), writer.clone(), status.clone(), batch_size);
    let cancel = cancel.clone();
    tracker.spawn(async move {
        use tracing::Instrument;
        forwarder.run(cancel).instrument(tracing::info_span!("sink", name)).await
    });
    Ok(status)
}

async fn tracing_task(name: &'static str, f: impl std::future::Future<Output = ()>) {
    use tracing::Instrument;
    f.instrument(tracing::info_span!("source", name)).await
}
