//! `[alerts]` (which passes count) and `[email]` (how alerts are sent).

use crate::config::{Invalid, KeyType, Secret, Section, range};
use crate::passes::PassOptions;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Which passes count: the highest point at least `min_elevation_deg`, visible when the sun is
/// below `sun_limit_deg` at the observer. Shared by alerts, `/api/passes` and `outpost passes`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    #[serde(default = "d_min_elevation")]
    pub min_elevation_deg: f64,
    #[serde(default = "d_sun_limit")]
    pub sun_limit_deg: f64,
}

fn d_min_elevation() -> f64 {
    10.0
}
fn d_sun_limit() -> f64 {
    -6.0
}

impl AlertsConfig {
    pub fn pass_options(&self) -> PassOptions {
        PassOptions { min_elevation_deg: self.min_elevation_deg, sun_limit_deg: self.sun_limit_deg }
    }
}

impl Section for AlertsConfig {
    const KEYS: &'static [(&'static str, KeyType)] =
        &[("min_elevation_deg", KeyType::Float), ("sun_limit_deg", KeyType::Float)];

    fn validate(&self) -> Result<(), Invalid> {
        range("min_elevation_deg", self.min_elevation_deg, 0.0, 89.0)?;
        range("sun_limit_deg", self.sun_limit_deg, -18.0, 0.0)
    }
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Plain connection upgraded with STARTTLS (port 587); refused if the server does not offer it.
    Starttls,
    /// Implicit TLS from the first byte (port 465).
    Tls,
    /// No TLS: only for a trusted relay on the local network.
    None,
}

impl fmt::Display for Security {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Security::Starttls => "starttls",
            Security::Tls => "tls",
            Security::None => "none",
        })
    }
}

/// Night-pass email alerts; enabled when `smtp_host` is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    pub smtp_host: Option<String>,
    #[serde(default = "d_smtp_port")]
    pub smtp_port: u16,
    #[serde(default = "d_security")]
    pub security: Security,
    pub username: Option<String>,
    #[serde(default)]
    pub password: Secret,
    pub from: Option<String>,
    #[serde(default)]
    pub to: Vec<String>,
    /// The email goes out this long before the pass becomes visible.
    #[serde(default = "d_lead")]
    pub lead_minutes: u32,
    /// Link to the local map in emails (default: http://<hostname>.local:<web port>/).
    pub map_url: Option<String>,
    /// An extra CA certificate (PEM) to trust for the SMTP server, e.g. a home server's own CA.
    pub ca_file: Option<String>,
    /// Also email when the ISS is overhead right now, at night (once per pass).
    #[serde(default)]
    pub overhead_alert: bool,
    #[serde(default = "d_overhead")]
    pub overhead_elevation_deg: f64,
    /// Also send the pass alerts (and the overhead alert) by push, through `[push]`; works
    /// without `smtp_host` too (push only).
    #[serde(default)]
    pub push: bool,
}

fn d_smtp_port() -> u16 {
    587
}
fn d_security() -> Security {
    Security::Starttls
}
fn d_lead() -> u32 {
    15
}
fn d_overhead() -> f64 {
    60.0
}

impl EmailConfig {
    pub fn enabled(&self) -> bool {
        self.smtp_host.is_some()
    }
}

impl Section for EmailConfig {
    const KEYS: &'static [(&'static str, KeyType)] = &[
        ("smtp_host", KeyType::Str),
        ("smtp_port", KeyType::Int),
        ("security", KeyType::Str),
        ("username", KeyType::Str),
        ("password", KeyType::Secret),
        ("from", KeyType::Str),
        ("to", KeyType::StrList),
        ("lead_minutes", KeyType::Int),
        ("map_url", KeyType::Str),
        ("ca_file", KeyType::Str),
        ("overhead_alert", KeyType::Bool),
        ("overhead_elevation_deg", KeyType::Float),
        ("push", KeyType::Bool),
    ];

    fn validate(&self) -> Result<(), Invalid> {
        range("lead_minutes", f64::from(self.lead_minutes), 1.0, 7.0 * 24.0 * 60.0)?;
        range("overhead_elevation_deg", self.overhead_elevation_deg, 10.0, 90.0)?;
        if !self.enabled() {
            return Ok(());
        }
        if self.smtp_port == 0 {
            return Err(Invalid::new("smtp_port", "must be 1-65535"));
        }
        if !self.from.as_deref().is_some_and(|f| f.contains('@')) {
            return Err(Invalid::new("from", "an address like outpost@example.org is needed when smtp_host is set"));
        }
        if self.to.is_empty() || self.to.iter().any(|t| !t.contains('@')) {
            return Err(Invalid::new("to", "a list of addresses is needed when smtp_host is set"));
        }
        Ok(())
    }
}
