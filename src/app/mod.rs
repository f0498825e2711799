//! Wires the appliance together: opens the store, starts the writer, every collector, sink and
//! alert task and the web server under one `CancellationToken`, and shuts them down in order
//! (collectors and web first, the store's final commit last). Owns the whole configuration
//! (`config`), which lists every part's section.

mod config;
mod store_io;

pub use config::{Config, DEFAULT_TOML, StationConfig};

use crate::domain::AlertChannel;
use crate::status::Probes;
use crate::status::tasks::Tasks;
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

/// Resolves when the task feeding `rx` has ended (its sender is gone).
async fn closed<T: Send + Sync>(mut rx: tokio::sync::watch::Receiver<T>) -> String {
    while rx.changed().await.is_ok() {}
    "its task has ended (a panic is logged above it)".to_owned()
}

/// Runs until `shutdown` is cancelled, or until the store writer dies (an error: exit 1).
/// `listener` is already bound (tests bind port 0).
pub async fn run(config: Config, listener: tokio::net::TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let started = Instant::now();
    let clock = crate::clock::system();
    let dir = config.store.path.clone();
    let station = config.station.id.clone();
    let mut opts = config.store.options();
    let io_hook = store_io::DaemonHook::from_env()?;
    if let Some(hook) = &io_hook {
        opts.io_hook = hook.hook();
    }
    let (store, writer, report) = tokio::task::spawn_blocking(move || Store::open(&dir, &station, opts)).await??;
    tracing::info!(
        path = %config.store.path.display(),
        replayed = report.replayed,
        open_ms = report.open_ms as u64,
        "store open"
    );
    let handle = writer.handle();
    if let Some(hook) = &io_hook {
        hook.arm();
    }
    let writer_thread = writer.spawn().context("cannot start the store writer")?;

    let tracker = TaskTracker::new();
    let tasks = Tasks::new(tracker.clone(), shutdown.clone());
    let stats = handle.clone();
    tasks.watch("store writer", async move { stats.stats().wait_stopped().await });
    let sources = crate::sources::spawn_all(
        &config.sources,
        &crate::sources::Spawn { tasks: &tasks, store: &store, writer: &handle, cancel: &shutdown, clock: &clock },
    )
    .await?;

    let (location, location_status) = crate::location::spawn(&config.location, shutdown.clone());
    tasks.watch("location", closed(location.clone()));

    // Only state sinks (MQTT) read the current state, so its feed runs only with them.
    let current = if config.sinks.mqtt.enabled() {
        let feed = crate::current::CurrentFeed {
            store: store.clone(),
            writer: handle.clone(),
            location: location.clone(),
            regions: config.sources.varsom.regions.clone(),
            pass_options: config.alerts.pass_options(),
            // One "overhead" for the appliance: the MQTT sensor and the overhead email agree.
            overhead_elevation_deg: config.email.overhead_elevation_deg,
            clock: clock.clone(),
        };
        let current = feed.spawn(&tracker, shutdown.clone()).await?;
        tasks.watch("current state feed", closed(current.clone()));
        Some(current)
    } else {
        None
    };
    let sinks = crate::sinks::spawn_all(
        &config.sinks,
        &crate::sinks::Spawn {
            tasks: &tasks,
            store: &store,
            writer: &handle,
            cancel: &shutdown,
            station: &config.station.id,
            regions: &config.sources.varsom.regions,
            danger_min_level: config.avalanche_alerts.min_level,
            current,
        },
    )
    .await?;

    let mut email = None;
    let mut pass_push = None;
    let channels = [
        (AlertChannel::Email, config.email.enabled(), "email alerts"),
        (AlertChannel::Push, config.email.push && config.push.enabled(), "pass push alerts"),
    ];
    for (channel, on, name) in channels {
        if !on {
            continue;
        }
        let status = Arc::new(crate::alerts::EmailStatus::default());
        match channel {
            AlertChannel::Email => email = Some(status.clone()),
            AlertChannel::Push => pass_push = Some(status.clone()),
        }
        let alerts = crate::alerts::EmailAlerts {
            email: config.email.clone(),
            channel,
            push: config.push.clone(),
            pass_options: config.alerts.pass_options(),
            map_url: crate::alerts::map_url(&config.email, &config.web.listen),
            clock: clock.clone(),
            store: store.clone(),
            writer: handle.clone(),
            location: location.clone(),
            status,
        };
        let cancel = shutdown.clone();
        tasks.spawn(name, async move {
            use tracing::Instrument;
            alerts.run(cancel).instrument(tracing::info_span!("alerts")).await
        });
    }

    let mut danger = None;
    if config.avalanche_alerts.enabled() {
        let status = Arc::new(crate::alerts::DangerStatus::default());
        danger = Some(status.clone());
        let couriers = crate::alerts::danger::Couriers::build(&config.avalanche_alerts, &config.email, &config.push)
            .map_err(|e| format!("{e:#}"));
        let alerts = crate::alerts::DangerAlerts {
            config: config.avalanche_alerts.clone(),
            regions: config.avalanche_alerts.regions_or(&config.sources.varsom.regions),
            couriers,
            map_url: crate::alerts::map_url(&config.email, &config.web.listen),
            clock: clock.clone(),
            store: store.clone(),
            writer: handle.clone(),
            status,
            redact: config.redactor(),
        };
        let cancel = shutdown.clone();
        tasks.spawn("danger alerts", async move {
            use tracing::Instrument;
            alerts.run(cancel).instrument(tracing::info_span!("danger_alerts")).await
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
        pass_push,
        danger,
        tasks: tasks.clone(),
        redact: Arc::new(config.redactor()),
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
        slow: Arc::new(web::SlowClients::from_env()?),
    };
    let door = web::FrontDoor::new(&config.web);
    tracing::info!(address = %listener.local_addr()?, basic_auth = door.basic_auth(), "serving the map and API");
    tasks.spawn_fallible("web server", async move {
        web::serve(listener, state, door).await.map_err(|e| anyhow::anyhow!("web server error: {e}"))
    });
    tracker.close();

    // A dead writer stores nothing more: every record collected from now on would be lost. End
    // the process (exit 1) so that the service manager starts it again; the journal holds every
    // commit, and the restart replays it.
    let writer_died = tokio::select! {
        _ = shutdown.cancelled() => None,
        why = handle.stats().wait_stopped() => Some(why),
    };
    match &writer_died {
        None => tracing::info!("shutting down"),
        Some(why) => {
            tracing::error!(error = %why, "the store writer has died; stopping so that the service is restarted");
            shutdown.cancel();
        }
    }
    if tokio::time::timeout(DRAIN, tracker.wait()).await.is_err() {
        tracing::warn!("some tasks did not stop within {DRAIN:?}; committing the store anyway");
    }
    if let Some(why) = writer_died {
        anyhow::bail!("{why}; nothing more could be stored, so Outpost stops (the journal keeps every commit)");
    }
    let last = handle.shutdown().await;
    tokio::task::spawn_blocking(move || writer_thread.join()).await?.ok();
    let last =
        last.context("final store commit failed (records remain in the journal and are replayed at the next start)")?;
    tracing::info!(last_seq = last, "store closed cleanly");
    Ok(())
}
