//! The local web server: the map pages (maud views in `pages/`), the read API (`api`), live
//! events (`events`), Prometheus metrics (`metrics`) and the embedded static files (`assets`).
//! Everything is read-only, but for one path: `POST /api/sinks/{name}/resend` asks a sink to
//! re-send its dead letters. The store is written by the writer alone.
//!
//! Every request passes the front door first, in this order: the browser-hardening headers go
//! on whatever is answered (`headers`), an unknown Host is refused before routing (`guard`: DNS
//! rebinding), then basic auth with its per-client back-off (`auth`) guards all but `/healthz`.

mod api;
mod assets;
mod auth;
mod calendar;
mod config;
mod error;
mod events;
mod export;
mod guard;
mod headers;
mod metrics;
mod pages;
mod predicted;
mod slow;

pub use api::DEFAULT_MAX_POINTS;
pub use config::WebConfig;
pub use slow::SlowClients;

use crate::store::{Store, WriterHandle};
use axum::Router;
use axum::routing::get;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Runs a blocking store query (every handler's) on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> Result<T, error::WebError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| error::WebError::Internal(e.into()))?
        .map_err(error::WebError::Internal)
}

/// Everything a handler may read.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub writer: WriterHandle,
    pub station: String,
    /// Every part's live status, for `/api/status`, `/status` and `/metrics`.
    pub probes: crate::status::Probes,
    /// The observer's current location (gpsd, last fix or config), for passes.
    pub location: tokio::sync::watch::Receiver<Option<crate::location::Located>>,
    /// `[alerts]` min elevation and sun limit.
    pub pass_options: crate::passes::PassOptions,
    /// The Cassandra keyspace and replication that exports name.
    pub keyspace: String,
    pub replication: String,
    /// `[web] tile_url`: the online layer over the bundled basemap ("" = none).
    pub tile_url: String,
    /// Ends the event streams when the appliance shuts down (they would hold the drain).
    pub shutdown: CancellationToken,
    /// The export bound and the stall time-outs of clients that stop reading (`slow`).
    pub slow: Arc<SlowClients>,
}

/// What stands between a request and the routes, from `[web]`.
pub struct FrontDoor {
    known_hosts: Arc<guard::KnownHosts>,
    hardening: Arc<headers::Hardening>,
    auth: Option<Arc<auth::BasicAuth>>,
}

impl FrontDoor {
    pub fn new(web: &WebConfig) -> FrontDoor {
        let hostname = gethostname::gethostname().to_string_lossy().trim().to_owned();
        FrontDoor {
            known_hosts: Arc::new(guard::KnownHosts::new(&web.listen, &web.allowed_hosts, &hostname)),
            hardening: Arc::new(headers::Hardening::new(&web.tile_url)),
            auth: web.credentials().map(|(user, password)| Arc::new(auth::BasicAuth::new(user, password))),
        }
    }

    pub fn basic_auth(&self) -> bool {
        self.auth.is_some()
    }
}

/// Every path behind the front door; basic auth (when configured) guards all of them but
/// `/healthz`, which says only "ok" or which part failed, so that install scripts and
/// supervisors need no password.
pub fn router(state: AppState, door: FrontDoor) -> Router {
    let health = Router::new().route("/healthz", get(api::healthz)).with_state(state.clone());
    let router = Router::new()
        .route("/", get(pages::map))
        .route("/avalanche", get(pages::avalanche))
        .route("/status", get(pages::status))
        .route("/static/{*path}", get(assets::serve))
        .route("/metrics", get(metrics::metrics))
        .route("/api/iss/latest", get(api::iss_latest))
        .route("/api/iss/track", get(api::iss_track))
        .route("/api/iss/predicted", get(predicted::predicted))
        .route("/api/avalanche", get(api::avalanche))
        .route("/api/weather", get(api::weather))
        .route("/api/status", get(api::status))
        .route("/api/export", get(api::export))
        .route("/api/passes", get(api::passes))
        .route("/api/passes.ics", get(calendar::passes_ics))
        .route("/api/events", get(events::events))
        .route("/api/sinks/{name}/resend", axum::routing::post(api::resend))
        .fallback(|| async { error::WebError::NotFound("no such page".into()) })
        .with_state(state)
        // Tracks are big JSON and the basemap is 1 MB: gzip pays on Wi-Fi. The default predicate
        // leaves event streams and images alone.
        .layer(tower_http::compression::CompressionLayer::new());
    let router = match door.auth {
        Some(auth) => router.layer(axum::middleware::from_fn_with_state(auth, auth::require)),
        None => router,
    };
    // The routes as the one service of an outer router, so that the Host check runs before
    // routing (no route, method or auth answer reaches an unknown Host); the last layer is the
    // outermost.
    Router::new()
        .fallback_service(health.merge(router))
        .layer(axum::middleware::from_fn_with_state(door.known_hosts, guard::check_host))
        .layer(axum::middleware::from_fn_with_state(door.hardening, headers::harden))
}

/// Serves until `state.shutdown`, then finishes in-flight requests. A connection whose client
/// stops reading is closed (`slow::StallGuard`).
pub async fn serve(listener: tokio::net::TcpListener, state: AppState, door: FrontDoor) -> std::io::Result<()> {
    let cancel = state.shutdown.clone();
    let listener = slow::GuardedListener::new(listener, state.slow.clone());
    let app = router(state, door).into_make_service_with_connect_info::<guard::Connection>();
    axum::serve(listener, app).with_graceful_shutdown(async move { cancel.cancelled().await }).await
}
