//! `[store]`: where the log lives and how often it reaches the card.

use super::StoreOptions;
use crate::config::{Invalid, KeyType, Section, range};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    #[serde(default = "d_path")]
    pub path: PathBuf,
    #[serde(default = "d_commit")]
    pub commit_interval_s: u64,
    #[serde(default = "d_fold")]
    pub fold_interval_s: u64,
    /// Check every page's checksum when opening an existing store (reads the whole file).
    #[serde(default = "d_true")]
    pub verify_on_start: bool,
    /// Records kept in memory while storing fails (a full disk); newer ones are dropped, counted.
    #[serde(default = "d_max_pending")]
    pub max_pending: u64,
}

fn d_path() -> PathBuf {
    PathBuf::from("./data")
}
fn d_commit() -> u64 {
    10
}
fn d_fold() -> u64 {
    900
}
fn d_max_pending() -> u64 {
    StoreOptions::default().max_pending as u64
}
fn d_true() -> bool {
    true
}

impl StoreConfig {
    pub fn commit_interval(&self) -> Duration {
        Duration::from_secs(self.commit_interval_s)
    }

    pub fn options(&self) -> StoreOptions {
        StoreOptions {
            commit_interval: self.commit_interval(),
            fold_interval: Duration::from_secs(self.fold_interval_s),
            verify_on_open: self.verify_on_start,
            max_pending: self.max_pending as usize,
            ..StoreOptions::default()
        }
    }
}

impl Section for StoreConfig {
    const KEYS: &'static [(&'static str, KeyType)] = &[
        ("path", KeyType::Str),
        ("commit_interval_s", KeyType::Int),
        ("fold_interval_s", KeyType::Int),
        ("verify_on_start", KeyType::Bool),
        ("max_pending", KeyType::Int),
    ];

    fn validate(&self) -> Result<(), Invalid> {
        range("commit_interval_s", self.commit_interval_s as f64, 1.0, 3600.0)?;
        if self.fold_interval_s < self.commit_interval_s || self.fold_interval_s > 86_400 {
            return Err(Invalid::new("fold_interval_s", "must be at least commit_interval_s and at most 86400"));
        }
        // At least one batch, or a burst would be dropped while storing works; the queue lives in
        // memory, so the upper bound keeps a typo from letting it take a Pi's RAM.
        let batch = StoreOptions::default().max_batch as f64;
        range("max_pending", self.max_pending as f64, batch, 10_000_000.0)?;
        Ok(())
    }
}
