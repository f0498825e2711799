//! Collectors: fetch upstream answers, clean them into domain records, hand them to the store.
//!
//! Each source is one file implementing `Poller` (what a round fetches, how an answer parses);
//! the `*_parse` files beside them are pure (bytes in, records or a `Rejection` out) and tested on
//! recorded answers. `poll` owns the loop they share. A collector never blocks on the store
//! (appends are queued) and never stops another: each runs in its own task and treats every
//! failure as data.
//!
//! Adding a source: one file, its section in `Sections`, one line in `spawn_all`.

pub mod iss_position;
pub mod iss_position_parse;
mod poll;
mod rejection;
pub mod tle;
pub mod tle_parse;
pub mod varsom;
pub mod varsom_parse;
pub mod weather;
pub mod weather_parse;

pub use poll::{
    Answer, HttpConfig, Poller, Request, Schedule, SourceSnapshot, SourceStatus, USER_AGENT, fetch, http_client,
    poll_round,
};
pub use rejection::Rejection;

use crate::clock::SharedClock;
use crate::config::sections;
use crate::store::{Store, WriterHandle};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

sections! {
    /// The collectors' sections.
    pub struct Sections {
        iss: iss_position::IssConfig,
        varsom: varsom::VarsomConfig,
        weather: weather::WeatherConfig,
        http: HttpConfig,
    }
}

/// What a running collector is given.
#[derive(Clone)]
pub struct SourceCtx {
    pub client: reqwest::Client,
    pub writer: WriterHandle,
    pub status: Arc<SourceStatus>,
    pub cancel: CancellationToken,
    pub clock: SharedClock,
}

/// What starting the collectors needs.
pub struct Spawn<'a> {
    /// Collectors run as the daemon's tasks: one that ends early is reported as dead.
    pub tasks: &'a crate::status::tasks::Tasks,
    pub store: &'a Store,
    pub writer: &'a WriterHandle,
    pub cancel: &'a CancellationToken,
    pub clock: &'a SharedClock,
}

/// Starts every collector, one line each; returns their statuses in that order.
pub async fn spawn_all(cfg: &Sections, at: &Spawn<'_>) -> anyhow::Result<Vec<Arc<SourceStatus>>> {
    let client = http_client(cfg.http.timeout())?;
    // The newest TLE, from the store and then from the TLE source: positions are checked against it.
    let stored_tle = read_store(at.store, |s| s.latest_tle()).await?;
    let (newest_tle, tle_rx) = tokio::sync::watch::channel(stored_tle);
    let mut statuses = vec![
        spawn(at, &client, iss_position::IssPositionSource::new(&cfg.iss, at.store, tle_rx).await?),
        spawn(at, &client, tle::TleSource::new(&cfg.iss, at.store, newest_tle).await?),
        spawn(at, &client, varsom::VarsomSource::new(&cfg.varsom, at.store)),
    ];
    // Optional sources: `enabled = false` starts nothing.
    if cfg.weather.enabled {
        statuses.push(spawn(
            at,
            &client,
            weather::WeatherSource::from_store(&cfg.weather, &cfg.varsom.regions, at.store).await?,
        ));
    }
    Ok(statuses)
}

fn spawn(at: &Spawn<'_>, client: &reqwest::Client, source: impl Poller) -> Arc<SourceStatus> {
    use tracing::Instrument;
    fn name_of<P: Poller>(_: &P) -> &'static str {
        P::NAME
    }
    let name = name_of(&source);
    let status = Arc::new(SourceStatus::new(name, at.writer.clone()));
    let ctx = SourceCtx {
        client: client.clone(),
        writer: at.writer.clone(),
        status: status.clone(),
        cancel: at.cancel.clone(),
        clock: at.clock.clone(),
    };
    at.tasks.spawn(
        format!("collector {name}"),
        poll::run_polling(source, ctx).instrument(tracing::info_span!("source", name)),
    );
    status
}

/// Runs a blocking store read on the blocking pool (collectors read their starting state).
async fn read_store<T: Send + 'static>(
    store: &Store,
    f: impl FnOnce(&Store) -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(&store)).await?
}
