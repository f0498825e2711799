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
    ];

    fn validate(&self) -> Result<(), Invalid> {
        range("commit_interval_s", self.commit_interval_s as f64, 1.0, 3600.0)?;
        if self.fold_interval_s < self.commit_interval_s || self.fold_interval_s > 86_400 {
            return Err(Invalid::new("fold_interval_s", "must be at least commit_interval_s and at most 86400"));
        }
        Ok(())
    }
}
