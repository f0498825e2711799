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
    pub station: String,
    pub started: Instant,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(api::healthz))
        .route("/api/iss/latest", get(api::iss_latest))
        .route("/api/iss/track", get(api::iss_track))
        .route("/api/avalanche", get(api::avalanche))
        .route("/api/status", get(api::status))
        .with_state(state)
}

/// Serves until `cancel`, then finishes in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(async move { cancel.cancelled().await }).await
}
