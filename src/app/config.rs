//! The appliance's whole configuration: its own sections (station, store, location, web,
//! alerts, email) plus the `sources` and `sinks` groups, each section owned by its part. The
//! loader (`crate::config`) reads all of them from one file; this file only lists them.

use crate::alerts::{AlertsConfig, AvalancheAlertsConfig, EmailConfig, PushConfig};
use crate::config::HostPort;
use crate::config::{ConfigError, Group, Invalid, Key, KeyType, Loaded, Section, sections};
use crate::location::LocationConfig;
use crate::store::StoreConfig;
use crate::web::WebConfig;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The configuration used when `--config` is not given: works offline, no upstream needed.
pub const DEFAULT_TOML: &str = include_str!("../../outpost.example.toml");

/// `[station]`: who this appliance is in every record id, topic and row.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StationConfig {
    #[serde(default = "hostname")]
    pub id: String,
}

fn hostname() -> String {
    gethostname::gethostname().to_string_lossy().trim().to_owned()
}

impl Section for StationConfig {
    const KEYS: &'static [(&'static str, KeyType)] = &[("id", KeyType::Str)];

    fn validate(&self) -> Result<(), Invalid> {
        if self.id.is_empty() || self.id.contains(['/', ' ', '+', '#']) {
            return Err(Invalid::new("id", "must be non-empty, without '/', '+', '#' or spaces"));
        }
        Ok(())
    }
}

sections! {
    /// The appliance's own sections, besides the sources' and the sinks'.
    struct Core {
        station: StationConfig,
        store: StoreConfig,
        location: LocationConfig,
        web: WebConfig,
        alerts: AlertsConfig,
        email: EmailConfig,
        push: PushConfig,
        avalanche_alerts: AvalancheAlertsConfig,
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub station: StationConfig,
    pub store: StoreConfig,
    pub location: LocationConfig,
    pub web: WebConfig,
    pub alerts: AlertsConfig,
    pub email: EmailConfig,
    /// `[push]`: ntfy or a webhook, for pass and danger alerts.
    pub push: PushConfig,
    /// `[avalanche_alerts]`: danger alerts by email and/or push.
    pub avalanche_alerts: AvalancheAlertsConfig,
    /// `[iss]`, `[varsom]`, `[weather]`, `[http]`: one section per source.
    pub sources: crate::sources::Sections,
    /// `[kafka]`, `[cassandra]`, `[mqtt]`: one section per sink.
    pub sinks: crate::sinks::Sections,
}

impl Config {
    /// Every key of every section, `(section, key, type)`.
    pub fn keys() -> Vec<Key> {
        let mut keys = Vec::new();
        Core::keys(&mut keys);
        crate::sources::Sections::keys(&mut keys);
        crate::sinks::Sections::keys(&mut keys);
        keys
    }

    /// Loads `path` (or the embedded default) and applies `OUTPOST_*` overrides from `env`.
    pub fn load(path: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Config, ConfigError> {
        let (text, source_name) = crate::config::read(path, DEFAULT_TOML)?;
        Self::parse(&text, &source_name, env)
    }

    pub fn parse(
        text: &str,
        source_name: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let loaded = Loaded::new(text, source_name, env, &Self::keys())?;
        let core: Core = loaded.group()?;
        let config = Config {
            station: core.station,
            store: core.store,
            location: core.location,
            web: core.web,
            alerts: core.alerts,
            email: core.email,
            push: core.push,
            avalanche_alerts: core.avalanche_alerts,
            sources: loaded.group()?,
            sinks: loaded.group()?,
        };
        if let Some((key, message)) = config.alert_channel_problem() {
            return Err(loaded.error(Some(key.to_owned()), message));
        }
        Ok(config)
    }

    /// An alert switched on for a channel that is not set up, or a danger alert region that no
    /// warnings are fetched for: `(dotted key, why)`.
    fn alert_channel_problem(&self) -> Option<(&'static str, String)> {
        if self.email.push && !self.push.enabled() {
            return Some(("email.push", "is true but push.url is not set".into()));
        }
        let a = &self.avalanche_alerts;
        if a.email && !self.email.enabled() {
            return Some(("avalanche_alerts.email", "is true but [email] is not set up (smtp_host, from, to)".into()));
        }
        if a.push && !self.push.enabled() {
            return Some(("avalanche_alerts.push", "is true but push.url is not set".into()));
        }
        let followed = &self.sources.varsom.regions;
        if let Some(r) = a.regions.iter().find(|r| !followed.contains(r)) {
            return Some((
                "avalanche_alerts.regions",
                format!("region {r} is not in varsom.regions (no warnings are fetched for it)"),
            ));
        }
        None
    }

    fn core(&self) -> Core {
        Core {
            station: self.station.clone(),
            store: self.store.clone(),
            location: self.location.clone(),
            web: self.web.clone(),
            alerts: self.alerts.clone(),
            email: self.email.clone(),
            push: self.push.clone(),
            avalanche_alerts: self.avalanche_alerts.clone(),
        }
    }

    /// Where a command on this machine reaches the running appliance (`web.listen`, with an
    /// all-interfaces address replaced by localhost).
    pub fn local_web_addr(&self) -> Option<std::net::SocketAddr> {
        self.web.local_addr()
    }

    /// Every configured upstream address and URL, for text shown outside the log (the
    /// status, metrics, stored records): each becomes its role, e.g. `<smtp server>`.
    pub fn redactor(&self) -> crate::config::Redactor {
        let mut r = crate::config::Redactor::new();
        if let Some(host) = &self.email.smtp_host {
            let at = HostPort { host: host.clone(), port: self.email.smtp_port };
            r = r.host_port(&at, "<smtp server>");
        }
        if let Some(url) = &self.push.url {
            r = r.url(url, "<push url>");
        }
        for b in &self.sinks.kafka.brokers {
            r = r.host_port(b, "<kafka broker>");
        }
        for n in &self.sinks.cassandra.nodes {
            r = r.host_port(n, "<cassandra node>");
        }
        if let Some(gpsd) = &self.location.gpsd {
            r = r.host_port(gpsd, "<gpsd>");
        }
        for (url, role) in self.upstream_urls() {
            r = r.url(url, role);
        }
        r
    }

    /// The log's redactor: the password and query of every configured URL (also `web.tile_url`,
    /// which the browser fetches), wherever a line quotes them; host names stay.
    pub fn log_redactor(&self) -> crate::config::Redactor {
        let urls = self.upstream_urls().into_iter().map(|(url, _)| url);
        std::iter::once(self.web.tile_url.as_str())
            .chain(urls)
            .fold(crate::config::Redactor::new(), |r, url| r.url_secrets(url))
    }

    /// Every configured upstream URL with its role.
    fn upstream_urls(&self) -> Vec<(&str, &'static str)> {
        let iss = &self.sources.iss;
        let mut urls = vec![
            (iss.position_url.as_str(), "<iss position url>"),
            (iss.tle_url.as_str(), "<tle url>"),
            (self.sources.varsom.base_url.as_str(), "<varsom url>"),
            (self.sources.weather.forecast_url.as_str(), "<weather forecast url>"),
            (self.sources.weather.archive_url.as_str(), "<weather archive url>"),
        ];
        urls.extend(self.sinks.mqtt.url.as_deref().map(|u| (u, "<mqtt broker>")));
        urls
    }

    /// Why `[web]`'s basic auth is half set, if it is: `outpost run` refuses to serve then
    /// (`check-config` warns). Only the commands that serve the web check it: the password is
    /// often only in the service's root-only environment file, which `outpost status` and the
    /// other commands are run without.
    pub fn web_auth_problem(&self) -> Option<String> {
        let has_user = self.web.username.is_some();
        (has_user == self.web.password.is_empty()).then(|| {
            let missing = if has_user { "web.password is not set" } else { "web.username is not set" };
            format!(
                "web.username and web.password go together (set both or neither): {missing} \
                 (the password: OUTPOST_WEB_PASSWORD in the environment, e.g. /etc/outpost/outpost.env, \
                 or web.password_file)"
            )
        })
    }

    /// The effective configuration as TOML, secrets masked.
    pub fn to_toml(&self) -> String {
        let table = || -> Result<toml::Table, toml::ser::Error> {
            let mut all = toml::Table::try_from(self.core())?;
            all.extend(toml::Table::try_from(&self.sources)?);
            all.extend(toml::Table::try_from(&self.sinks)?);
            Ok(all)
        };
        match table().and_then(|t| toml::to_string(&t)) {
            Ok(s) => s,
            Err(e) => format!("# cannot render the configuration: {e}\n"),
        }
    }

    /// Warnings about values that are allowed but probably not meant.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = self.core().warnings();
        out.extend(self.sources.warnings());
        out.extend(self.sinks.warnings());
        out
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
