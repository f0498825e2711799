//! Where the appliance is: from gpsd when configured and it has a fix, else the last fix, else
//! the configured latitude/longitude. Publishes changes on a watch channel; a move of more than
//! about 1 km counts as a change (passes are recomputed), smaller wander does not.
//!
//! Owns the public face: the types, the status, and `spawn`. The rules live in `follower` (a
//! pure state machine), the gpsd protocol in `gpsd_parse` (a pure parser) and the connection in
//! `gpsd` (the only I/O). Never reads the configuration file itself or touches the store.

mod follower;
mod gpsd;
mod gpsd_parse;

pub use follower::{FIX_GRACE, MOVE_THRESHOLD_M, distance_m};

use crate::cell::StatusCell;
use crate::config::{HostPort, Invalid, KeyType, Section, range};
use crate::passes::Observer;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// `[location]`: the configured observer, and gpsd's address.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocationConfig {
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    #[serde(default)]
    pub altitude_m: f64,
    pub gpsd: Option<HostPort>,
}

impl Section for LocationConfig {
    const KEYS: &'static [(&'static str, KeyType)] = &[
        ("latitude", KeyType::Float),
        ("longitude", KeyType::Float),
        ("altitude_m", KeyType::Float),
        ("gpsd", KeyType::Str),
    ];

    fn validate(&self) -> Result<(), Invalid> {
        match (self.latitude, self.longitude) {
            (Some(lat), Some(lon)) => {
                range("latitude", lat, -90.0, 90.0)?;
                range("longitude", lon, -180.0, 180.0)?;
            }
            (None, None) => {}
            (Some(_), None) => return Err(Invalid::new("longitude", "latitude is set but longitude is not")),
            (None, Some(_)) => return Err(Invalid::new("latitude", "longitude is set but latitude is not")),
        }
        range("altitude_m", self.altitude_m, -500.0, 9000.0)
    }
}

/// Which source the current location came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LocationSource {
    Gps,
    LastFix,
    Config,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Located {
    pub observer: Observer,
    pub source: LocationSource,
    /// The time of the GPS fix (for `gps` and `last_fix`).
    pub fix_time: Option<DateTime<Utc>>,
}

/// What /api/status shows about the location.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LocationSnapshot {
    /// What passes are computed for (the watch channel's value).
    pub current: Option<Located>,
    pub gpsd_configured: bool,
    /// Connected, and gpsd greeted us (a listener that is not gpsd does not count).
    pub gpsd_connected: bool,
    /// Why gpsd was last unavailable (kept after it recovers; see `last_error_time`).
    pub last_error: Option<String>,
    pub last_error_time: Option<DateTime<Utc>>,
    /// The newest GPS fix, also when it moved too little to become `current`.
    pub last_fix: Option<Located>,
    /// When `last_fix` arrived (the appliance's clock; `last_fix.fix_time` is the GPS's).
    pub last_fix_received: Option<DateTime<Utc>>,
    /// The mode of the newest TPV report: 0 unknown, 1 no fix, 2 2D fix, 3 3D fix.
    pub fix_mode: Option<u8>,
    /// gpsd's version, from its greeting.
    pub gpsd_release: Option<String>,
    /// TCP connections made to the gpsd address since the start.
    pub connects: u64,
    /// Times `current` changed since the start (each recomputes the passes).
    pub updates: u64,
    /// Lines from gpsd that were not valid reports (ignored).
    pub bad_lines: u64,
}

/// The location's live status; the gpsd client writes it, status pages read it.
pub type LocationStatus = StatusCell<LocationSnapshot>;

/// The configured location, if both coordinates are set.
pub fn configured(cfg: &LocationConfig) -> Option<Located> {
    Some(Located {
        observer: Observer { latitude: cfg.latitude?, longitude: cfg.longitude?, altitude_m: cfg.altitude_m },
        source: LocationSource::Config,
        fix_time: None,
    })
}

/// Starts following the location; the receiver always holds the current best location.
///
/// Without `gpsd` the configured location is all there is. With it, a task (stopped by
/// `cancel`) follows gpsd; until it has a fix the configured location is used. Must be called
/// within a Tokio runtime; the sender lives until `cancel`, so `changed()` ends only then.
pub fn spawn(
    cfg: &LocationConfig,
    cancel: CancellationToken,
) -> (watch::Receiver<Option<Located>>, Arc<LocationStatus>) {
    let status = Arc::new(LocationStatus::default());
    let follower = follower::Follower::new(cfg);
    let current = follower.current();
    status.update(|s| {
        s.current = current;
        s.gpsd_configured = cfg.gpsd.is_some();
    });
    let (tx, rx) = watch::channel(current);
    match (tokio::runtime::Handle::try_current(), &cfg.gpsd) {
        (Ok(rt), Some(addr)) => {
            let task = gpsd::Gpsd::new(addr.to_string(), follower, tx, status.clone());
            rt.spawn(task.run(cancel).instrument(tracing::info_span!("location")));
        }
        (Ok(rt), None) => {
            rt.spawn(async move {
                cancel.cancelled().await;
                drop(tx);
            });
        }
        (Err(_), gpsd) => {
            if gpsd.is_some() {
                tracing::error!("no async runtime: gpsd is not followed; using the configured location");
            }
            // Keep the sender so receivers stay valid for the life of the process.
            std::mem::forget(tx);
        }
    }
    (rx, status)
}
