//! The local web server: the read API now, the map pages later. Handlers only read: the store is
//! written by the collectors' writer alone.

mod api;
mod error;

pub use api::DEFAULT_MAX_POINTS;

use crate::sources::SourceStatus;
use crate::store::{Store, WriterHandle};
use axum::Router;
use axum::routing::get;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// Everything a handler may read.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub writer: WriterHandle,
    pub sources: Arc<Vec<Arc<SourceStatus>>>,
    pub sinks: Arc<Vec<Arc<crate::sinks::SinkStatus>>>,
    pub station: String,
    pub started: Instant,
    /// The Cassandra keyspace and replication that exports name.
    /// The observer's current location (gpsd, last fix or config), for passes.
    pub location: tokio::sync::watch::Receiver<Option<crate::location::Located>>,
    pub location_status: Arc<crate::location::LocationStatus>,
    /// `[alerts]` min elevation and sun limit.
    pub pass_options: crate::passes::PassOptions,
    pub keyspace: String,
    pub replication: String,
    /// The email alerts' status, when `[email]` is configured.
    pub email: Option<Arc<crate::alerts::EmailStatus>>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/healthz", get(api::healthz))
        .route("/api/iss/latest", get(api::iss_latest))
        .route("/api/iss/track", get(api::iss_track))
        .route("/api/avalanche", get(api::avalanche))
        .route("/api/status", get(api::status))
        .route("/api/export", get(api::export))
        .route("/api/passes", get(api::passes))
        .with_state(state)
}

/// A plain start page listing the API (the map page replaces it).
async fn index() -> axum::response::Html<&'static str> {
    axum::response::Html(concat!(
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        "<meta name=viewport content='width=device-width,initial-scale=1'><title>Outpost</title></head>",
        "<body style='font-family:system-ui,sans-serif;max-width:40em;margin:2em auto;padding:0 1em'>",
        "<h1>Outpost</h1><p>Version ",
        env!("CARGO_PKG_VERSION"),
        ". Read API:</p><ul>",
        "<li><a href='/api/iss/latest'>/api/iss/latest</a>: the newest ISS position</li>",
        "<li><a href='/api/iss/track'>/api/iss/track</a>: the ground track (from, to, max_points)</li>",
        "<li><a href='/api/avalanche'>/api/avalanche</a>: today's avalanche warnings (date)</li>",
        "<li><a href='/api/status'>/api/status</a>: collectors and store</li>",
        "<li><a href='/healthz'>/healthz</a></li></ul>",
        "<p><small>Avalanche warnings: Varsler fra Snøskredvarslingen i Norge og www.varsom.no</small></p>",
        "</body></html>"
    ))
}

/// Serves until `cancel`, then finishes in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(async move { cancel.cancelled().await }).await
}
