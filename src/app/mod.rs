//! Wires the appliance together: opens the store, starts the writer, every collector, sink and
//! alert task and the web server under one `CancellationToken`, and shuts them down in order
//! (collectors and web first, the store's final commit last). Owns the whole configuration
//! (`config`), which lists every part's section.

mod config;

pub use config::{Config, DEFAULT_TOML, StationConfig};

use crate::status::Probes;
use crate::store::Store;
use crate::web::{self, AppState};
use anyhow::Context;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Longest we wait for collectors and in-flight requests once shutdown starts.
const DRAIN: Duration = Duration::from_secs(10);

/// Opens the configured store for a command that only reads it; `None` while a running
/// `outpost run` holds it (ask the daemon instead). Blocking: it may replay the journal.
pub fn open_store_if_free(config: &Config) -> anyhow::Result<Option<Store>> {
    match Store::open(&config.store.path, &config.station.id, config.store.options()) {
        // The writer is not started: the store is only read.
        Ok((store, _writer, _)) => Ok(Some(store)),
        Err(e) if e.downcast_ref::<crate::store::StoreInUse>().is_some() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Runs until `shutdown` is cancelled. `listener` is already bound (tests bind port 0).
pub async fn run(config: Config, listener: tokio::net::TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let started = Instant::now();
    let clock = crate::clock::system();
    let dir = config.store.path.clone();
    let station = config.station.id.clone();
    let opts = config.store.options();
    let (store, writer, report) = tokio::task::spawn_blocking(move || Store::open(&dir, &station, opts)).await??;
    tracing::info!(
        path = %config.store.path.display(),
        replayed = report.replayed,
        open_ms = report.open_ms as u64,
        "store open"
    );
    let handle = writer.handle();
    let writer_thread = writer.spawn().context("cannot start the store writer")?;

    let tracker = TaskTracker::new();
    let sources = crate::sources::spawn_all(
        &config.sources,
        &crate::sources::Spawn { tracker: &tracker, store: &store, writer: &handle, cancel: &shutdown, clock: &clock },
    )
    .await?;

    let (location, location_status) = crate::location::spawn(&config.location, shutdown.clone());

    // Only state sinks (MQTT) read the current state, so its feed runs only with them.
    let current = if config.sinks.mqtt.enabled() {
        let feed = crate::current::CurrentFeed {
            store: store.clone(),
            writer: handle.clone(),
            location: location.clone(),
            regions: config.sources.varsom.regions.clone(),
            pass_options: config.alerts.pass_options(),
            clock: clock.clone(),
        };
        Some(feed.spawn(&tracker, shutdown.clone()).await?)
    } else {
        None
    };
    let sinks = crate::sinks::spawn_all(
        &config.sinks,
        &crate::sinks::Spawn {
            tracker: &tracker,
            store: &store,
            writer: &handle,
            cancel: &shutdown,
            station: &config.station.id,
            regions: &config.sources.varsom.regions,
            current,
        },
    )
    .await?;

    let mut email = None;
    if config.email.enabled() {
        let status = Arc::new(crate::alerts::EmailStatus::default());
        email = Some(status.clone());
        let alerts = crate::alerts::EmailAlerts {
            email: config.email.clone(),
            pass_options: config.alerts.pass_options(),
            map_url: crate::alerts::map_url(&config.email, &config.web.listen),
            clock: clock.clone(),
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

    let probes = Probes {
        store: store.clone(),
        writer: handle.clone(),
        station: config.station.id.clone(),
        started,
        sources: Arc::new(sources),
        sinks: Arc::new(sinks),
        location: location_status,
        email,
    };
    let state = AppState {
        store: store.clone(),
        writer: handle.clone(),
        station: config.station.id.clone(),
        probes,
        location,
        pass_options: config.alerts.pass_options(),
        keyspace: config.sinks.cassandra.keyspace.clone(),
        replication: config.sinks.cassandra.replication.clone(),
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
