//! Why an upstream answer was not turned into records.
//!
//! A `Rejection` is data, not a crash: the poller logs it once, counts it under `reason`, and
//! carries on. `reason` is a short, stable snake_case label (it becomes a metrics label and a
//! status-page key, so keep the set small); `detail` is for humans and never holds secrets.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: &'static str,
    pub detail: String,
}

impl Rejection {
    pub fn new(reason: &'static str, detail: impl Into<String>) -> Self {
        Rejection { reason, detail: detail.into() }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

impl std::error::Error for Rejection {}
