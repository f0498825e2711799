//! Configuration: one TOML file (or the embedded default), overridden by `OUTPOST_<SECTION>_<KEY>`
//! environment variables, validated into a `Config` before anything starts.
//!
//! `KEYS` is the single list of every key with its type: it drives environment overrides,
//! secret masking and the README's reference, so a new key is added there first.
//! Errors name the key, and the line where the file has one; the CLI exits with code 2.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The configuration used when `--config` is not given: works offline, no upstream needed.
pub const DEFAULT_TOML: &str = include_str!("../outpost.example.toml");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Str,
    Int,
    Float,
    Bool,
    IntList,
    StrList,
    /// Never printed; may also be given as `<key>_file` naming a file that holds it.
    Secret,
}

/// Every configuration key, `(section, key, type)`.
pub const KEYS: &[(&str, &str, KeyType)] = &[
    ("station", "id", KeyType::Str),
    ("store", "path", KeyType::Str),
    ("store", "commit_interval_s", KeyType::Int),
    ("store", "fold_interval_s", KeyType::Int),
    ("store", "verify_on_start", KeyType::Bool),
    ("iss", "position_url", KeyType::Str),
    ("iss", "poll_interval_s", KeyType::Int),
    ("iss", "tle_url", KeyType::Str),
    ("iss", "tle_refresh_h", KeyType::Float),
    ("varsom", "base_url", KeyType::Str),
    ("varsom", "regions", KeyType::IntList),
    ("varsom", "lang", KeyType::Int),
    ("varsom", "backfill_days", KeyType::Int),
    ("varsom", "recheck_interval_h", KeyType::Float),
    ("location", "latitude", KeyType::Float),
    ("location", "longitude", KeyType::Float),
    ("location", "altitude_m", KeyType::Float),
    ("location", "gpsd", KeyType::Str),
    ("http", "timeout_s", KeyType::Float),
    ("web", "listen", KeyType::Str),
    ("web", "username", KeyType::Str),
    ("web", "password", KeyType::Secret),
    ("web", "tile_url", KeyType::Str),
    ("kafka", "brokers", KeyType::StrList),
    ("kafka", "topic_prefix", KeyType::Str),
    ("kafka", "partitions", KeyType::Int),
    ("kafka", "replication_factor", KeyType::Int),
    ("kafka", "compression", KeyType::Str),
    ("kafka", "tls", KeyType::Bool),
    ("kafka", "sasl_mechanism", KeyType::Str),
    ("kafka", "sasl_username", KeyType::Str),
    ("kafka", "sasl_password", KeyType::Secret),
    ("kafka", "batch_size", KeyType::Int),
    ("email", "smtp_host", KeyType::Str),
    ("email", "smtp_port", KeyType::Int),
    ("email", "security", KeyType::Str),
    ("email", "username", KeyType::Str),
    ("email", "password", KeyType::Secret),
    ("email", "from", KeyType::Str),
    ("email", "to", KeyType::StrList),
    ("email", "lead_minutes", KeyType::Int),
    ("email", "map_url", KeyType::Str),
    ("email", "ca_file", KeyType::Str),
    ("email", "overhead_alert", KeyType::Bool),
    ("email", "overhead_elevation_deg", KeyType::Float),
    ("alerts", "min_elevation_deg", KeyType::Float),
    ("alerts", "sun_limit_deg", KeyType::Float),
    ("cassandra", "nodes", KeyType::StrList),
    ("cassandra", "keyspace", KeyType::Str),
    ("cassandra", "replication", KeyType::Str),
    ("cassandra", "username", KeyType::Str),
    ("cassandra", "password", KeyType::Secret),
    ("cassandra", "consistency", KeyType::Str),
    ("cassandra", "create_schema", KeyType::Bool),
    ("cassandra", "tls", KeyType::Bool),
    ("cassandra", "batch_size", KeyType::Int),
    ("mqtt", "url", KeyType::Str),
    ("mqtt", "topic_prefix", KeyType::Str),
    ("mqtt", "username", KeyType::Str),
    ("mqtt", "password", KeyType::Secret),
    ("mqtt", "ha_discovery", KeyType::Bool),
];

/// NVE's class-A regions (assessed daily in season): the default `varsom.regions`.
pub const CLASS_A_REGIONS: &[u32] = &[
    3003, 3006, 3007, 3009, 3010, 3011, 3012, 3013, 3014, 3015, 3016, 3017, 3022, 3023, 3024, 3027, 3028, 3029, 3031,
    3032, 3034, 3035, 3037,
];

/// A secret value: its `Debug` and `Display` never show it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"********\"")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("********")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("********")
    }
}

/// A configuration error: what is wrong, with which key, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: Option<String>,
    pub line: Option<usize>,
    pub source_name: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.source_name)?;
        if let Some(line) = self.line {
            write!(f, ", line {line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": key `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub station: StationConfig,
    pub store: StoreConfig,
    pub iss: IssConfig,
    pub varsom: VarsomConfig,
    pub location: LocationConfig,
    pub http: HttpConfig,
    pub web: WebConfig,
    pub kafka: KafkaConfig,
    pub mqtt: MqttConfig,
    pub cassandra: CassandraConfig,
    pub alerts: AlertsConfig,
    pub email: EmailConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StationConfig {
    #[serde(default = "hostname")]
    pub id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    #[serde(default = "d_store_path")]
    pub path: PathBuf,
    #[serde(default = "d_commit")]
    pub commit_interval_s: u64,
    #[serde(default = "d_fold")]
    pub fold_interval_s: u64,
    /// Check every page's checksum when opening an existing store (reads the whole file).
    #[serde(default = "d_true")]
    pub verify_on_start: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssConfig {
    #[serde(default = "d_position_url")]
    pub position_url: String,
    #[serde(default = "d_poll")]
    pub poll_interval_s: u64,
    #[serde(default = "d_tle_url")]
    pub tle_url: String,
    #[serde(default = "d_tle_refresh")]
    pub tle_refresh_h: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VarsomConfig {
    #[serde(default = "d_varsom_url")]
    pub base_url: String,
    #[serde(default = "d_regions")]
    pub regions: Vec<u32>,
    #[serde(default = "d_lang")]
    pub lang: u8,
    #[serde(default = "d_backfill")]
    pub backfill_days: u32,
    #[serde(default = "d_recheck")]
    pub recheck_interval_h: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocationConfig {
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    #[serde(default)]
    pub altitude_m: f64,
    pub gpsd: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    #[serde(default = "d_timeout")]
    pub timeout_s: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    #[serde(default = "d_listen")]
    pub listen: String,
    /// HTTP basic auth for every page and API path, when both are set.
    pub username: Option<String>,
    #[serde(default)]
    pub password: Secret,
    /// The online tile layer drawn over the bundled basemap when the browser reaches it
    /// ("" = bundled basemap only).
    #[serde(default = "d_tile_url")]
    pub tile_url: String,
}

impl WebConfig {
    /// The basic-auth credentials, when `username` and `password` are both set.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        let user = self.username.as_deref().filter(|u| !u.is_empty())?;
        Some((user, self.password.expose())).filter(|(_, p)| !p.is_empty())
    }
}

/// The Kafka sink; enabled when `brokers` is not empty.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    #[serde(default)]
    pub brokers: Vec<String>,
    #[serde(default = "d_topic_prefix")]
    pub topic_prefix: String,
    #[serde(default = "d_one")]
    pub partitions: i32,
    #[serde(default = "d_one_i16")]
    pub replication_factor: i16,
    #[serde(default = "d_compression")]
    pub compression: String,
    #[serde(default)]
    pub tls: bool,
    #[serde(default = "d_sasl_mechanism")]
    pub sasl_mechanism: String,
    pub sasl_username: Option<String>,
    #[serde(default)]
    pub sasl_password: Secret,
    #[serde(default = "d_batch")]
    pub batch_size: usize,
}

impl KafkaConfig {
    pub fn enabled(&self) -> bool {
        !self.brokers.is_empty()
    }
}

/// Night-pass email alerts; enabled when `smtp_host` is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    pub smtp_host: Option<String>,
    #[serde(default = "d_smtp_port")]
    pub smtp_port: u16,
    /// "starttls", "tls" (implicit TLS, usually port 465) or "none".
    #[serde(default = "d_security")]
    pub security: String,
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
}

impl EmailConfig {
    pub fn enabled(&self) -> bool {
        self.smtp_host.is_some()
    }
}

fn d_smtp_port() -> u16 {
    587
}
fn d_security() -> String {
    "starttls".into()
}
fn d_lead() -> u32 {
    15
}
fn d_overhead() -> f64 {
    60.0
}

/// Which passes count: the highest point at least `min_elevation_deg`, visible when the sun is
/// below `sun_limit_deg` at the observer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    #[serde(default = "d_min_elevation")]
    pub min_elevation_deg: f64,
    #[serde(default = "d_sun_limit")]
    pub sun_limit_deg: f64,
}

impl AlertsConfig {
    pub fn pass_options(&self) -> crate::passes::PassOptions {
        crate::passes::PassOptions { min_elevation_deg: self.min_elevation_deg, sun_limit_deg: self.sun_limit_deg }
    }
}

fn d_min_elevation() -> f64 {
    10.0
}
fn d_sun_limit() -> f64 {
    -6.0
}

/// The Cassandra sink; enabled when `nodes` is not empty. The schema lives in cql-export.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CassandraConfig {
    #[serde(default)]
    pub nodes: Vec<String>,
    #[serde(default = "d_topic_prefix")]
    pub keyspace: String,
    /// The keyspace's replication map, used when Outpost creates it.
    #[serde(default = "d_replication")]
    pub replication: String,
    pub username: Option<String>,
    #[serde(default)]
    pub password: Secret,
    #[serde(default = "d_consistency")]
    pub consistency: String,
    #[serde(default = "d_true")]
    pub create_schema: bool,
    #[serde(default)]
    pub tls: bool,
    #[serde(default = "d_cassandra_batch")]
    pub batch_size: usize,
}

impl CassandraConfig {
    pub fn enabled(&self) -> bool {
        !self.nodes.is_empty()
    }
}

fn d_replication() -> String {
    "{'class': 'SimpleStrategy', 'replication_factor': 1}".into()
}
fn d_consistency() -> String {
    "local_quorum".into()
}
fn d_true() -> bool {
    true
}
fn d_cassandra_batch() -> usize {
    500
}

/// The MQTT sink (e.g. a Home Assistant broker); enabled when `url` is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// mqtt://host:1883 or mqtts://host:8883
    pub url: Option<String>,
    #[serde(default = "d_topic_prefix")]
    pub topic_prefix: String,
    pub username: Option<String>,
    #[serde(default)]
    pub password: Secret,
    #[serde(default)]
    pub ha_discovery: bool,
}

impl MqttConfig {
    pub fn enabled(&self) -> bool {
        self.url.is_some()
    }
}

fn d_topic_prefix() -> String {
    "outpost".into()
}
fn d_one() -> i32 {
    1
}
fn d_one_i16() -> i16 {
    1
}
fn d_compression() -> String {
    "none".into()
}
fn d_sasl_mechanism() -> String {
    "plain".into()
}
fn d_batch() -> usize {
    1000
}

fn hostname() -> String {
    gethostname::gethostname().to_string_lossy().trim().to_owned()
}
fn d_store_path() -> PathBuf {
    PathBuf::from("./data")
}
fn d_commit() -> u64 {
    10
}
fn d_fold() -> u64 {
    900
}
fn d_position_url() -> String {
    "http://api.open-notify.org/iss-now.json".into()
}
fn d_poll() -> u64 {
    10
}
fn d_tle_url() -> String {
    "https://celestrak.org/NORAD/elements/gp.php?CATNR=25544&FORMAT=TLE".into()
}
fn d_tle_refresh() -> f64 {
    12.0
}
fn d_varsom_url() -> String {
    "https://api01.nve.no/hydrology/forecast/avalanche/v6.3.0/api".into()
}
fn d_regions() -> Vec<u32> {
    CLASS_A_REGIONS.to_vec()
}
fn d_lang() -> u8 {
    2
}
fn d_backfill() -> u32 {
    7
}
fn d_recheck() -> f64 {
    3.0
}
fn d_timeout() -> f64 {
    15.0
}
fn d_listen() -> String {
    "127.0.0.1:8080".into()
}

fn d_tile_url() -> String {
    "https://tile.openstreetmap.org/{z}/{x}/{y}.png".into()
}

/// The file as written: every section optional, every key defaulted.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default = "default_section")]
    station: StationConfig,
    #[serde(default = "default_section")]
    store: StoreConfig,
    #[serde(default = "default_section")]
    iss: IssConfig,
    #[serde(default = "default_section")]
    varsom: VarsomConfig,
    #[serde(default)]
    location: LocationConfig,
    #[serde(default = "default_section")]
    http: HttpConfig,
    #[serde(default = "default_section")]
    web: WebConfig,
    #[serde(default = "default_section")]
    kafka: KafkaConfig,
    #[serde(default = "default_section")]
    mqtt: MqttConfig,
    #[serde(default = "default_section")]
    cassandra: CassandraConfig,
    #[serde(default = "default_section")]
    alerts: AlertsConfig,
    #[serde(default = "default_section")]
    email: EmailConfig,
}

/// A section with every key at its default (serde fills them from an empty table).
fn default_section<T: serde::de::DeserializeOwned>() -> T {
    toml::Table::new().try_into().expect("every key of a section has a default")
}

impl Config {
    /// Loads `path` (or the embedded default) and applies `OUTPOST_*` overrides from `env`.
    pub fn load(path: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Config, ConfigError> {
        let (text, source_name) = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| ConfigError {
                    key: None,
                    line: None,
                    source_name: p.display().to_string(),
                    message: format!("cannot read the file: {e}"),
                })?;
                (text, p.display().to_string())
            }
            None => (DEFAULT_TOML.to_owned(), "embedded default config".to_owned()),
        };
        Self::parse(&text, &source_name, env)
    }

    pub fn parse(
        text: &str,
        source_name: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let err = |key: Option<String>, message: String| {
            let line = key.as_deref().and_then(|k| line_of(text, k));
            ConfigError { key, line, source_name: source_name.to_owned(), message }
        };
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| ConfigError {
            key: None,
            line: e.span().map(|s| text[..s.start.min(text.len())].lines().count().max(1)),
            source_name: source_name.to_owned(),
            message: e.message().trim().to_owned(),
        })?;
        let mut from_env = Vec::new();
        for (name, value) in env {
            if let Some(key) = apply_env(&mut table, &name, &value).map_err(|m| err(None, format!("{name}: {m}")))? {
                from_env.push((key, name));
            }
        }
        resolve_secret_files(&mut table).map_err(|(k, m)| err(Some(k), m))?;
        let raw: RawConfig = serde_path_to_error::deserialize(table).map_err(|e| {
            let path = e.path().to_string();
            let key = (path != ".").then_some(path);
            let mut message = e.inner().message().trim().to_owned();
            if let Some((_, var)) = from_env.iter().find(|(k, _)| Some(k) == key.as_ref()) {
                message = format!("{message} (value from {var})");
            }
            err(key, message)
        })?;
        let config = Config {
            station: raw.station,
            store: raw.store,
            iss: raw.iss,
            varsom: raw.varsom,
            location: raw.location,
            http: raw.http,
            web: raw.web,
            kafka: raw.kafka,
            mqtt: raw.mqtt,
            cassandra: raw.cassandra,
            alerts: raw.alerts,
            email: raw.email,
        };
        config.validate().map_err(|(k, m)| err(Some(k.to_owned()), m))?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        let range = |key, v: f64, lo: f64, hi: f64| {
            if v.is_finite() && (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err((key, format!("{v} is outside {lo}..={hi}")))
            }
        };
        if self.station.id.is_empty() || self.station.id.contains(['/', ' ', '+', '#']) {
            return Err(("station.id", "must be non-empty, without '/', '+', '#' or spaces".into()));
        }
        range("store.commit_interval_s", self.store.commit_interval_s as f64, 1.0, 3600.0)?;
        if self.store.fold_interval_s < self.store.commit_interval_s || self.store.fold_interval_s > 86_400 {
            return Err(("store.fold_interval_s", "must be at least commit_interval_s and at most 86400".into()));
        }
        range("iss.poll_interval_s", self.iss.poll_interval_s as f64, 1.0, 86_400.0)?;
        range("iss.tle_refresh_h", self.iss.tle_refresh_h, 0.1, 24.0 * 30.0)?;
        for (key, url) in [
            ("iss.position_url", &self.iss.position_url),
            ("iss.tle_url", &self.iss.tle_url),
            ("varsom.base_url", &self.varsom.base_url),
        ] {
            match reqwest::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                _ => return Err((key, format!("{url:?} is not an http(s) URL"))),
            }
        }
        if let Some(bad) = self.varsom.regions.iter().find(|r| !(3000..=3999).contains(*r)) {
            return Err(("varsom.regions", format!("{bad} is not an NVE region id (3001-3046)")));
        }
        if !matches!(self.varsom.lang, 1 | 2) {
            return Err(("varsom.lang", "must be 1 (Norwegian) or 2 (English)".into()));
        }
        range("varsom.backfill_days", f64::from(self.varsom.backfill_days), 0.0, 60.0)?;
        range("varsom.recheck_interval_h", self.varsom.recheck_interval_h, 0.25, 24.0)?;
        match (self.location.latitude, self.location.longitude) {
            (Some(lat), Some(lon)) => {
                range("location.latitude", lat, -90.0, 90.0)?;
                range("location.longitude", lon, -180.0, 180.0)?;
            }
            (None, None) => {}
            (Some(_), None) => return Err(("location.longitude", "latitude is set but longitude is not".into())),
            (None, Some(_)) => return Err(("location.latitude", "longitude is set but latitude is not".into())),
        }
        range("location.altitude_m", self.location.altitude_m, -500.0, 9000.0)?;
        if let Some(g) = &self.location.gpsd
            && g.rsplit_once(':').is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
        {
            return Err(("location.gpsd", format!("{g:?} is not host:port")));
        }
        range("http.timeout_s", self.http.timeout_s, 0.1, 300.0)?;
        range("alerts.min_elevation_deg", self.alerts.min_elevation_deg, 0.0, 89.0)?;
        range("alerts.sun_limit_deg", self.alerts.sun_limit_deg, -18.0, 0.0)?;
        let e = &self.email;
        if !matches!(e.security.as_str(), "starttls" | "tls" | "none") {
            return Err(("email.security", "must be starttls, tls or none".into()));
        }
        range("email.lead_minutes", f64::from(e.lead_minutes), 1.0, 7.0 * 24.0 * 60.0)?;
        range("email.overhead_elevation_deg", e.overhead_elevation_deg, 10.0, 90.0)?;
        if e.enabled() {
            if e.smtp_port == 0 {
                return Err(("email.smtp_port", "must be 1-65535".into()));
            }
            if !e.from.as_deref().is_some_and(|f| f.contains('@')) {
                return Err((
                    "email.from",
                    "an address like outpost@example.org is needed when smtp_host is set".into(),
                ));
            }
            if e.to.is_empty() || e.to.iter().any(|t| !t.contains('@')) {
                return Err(("email.to", "a list of addresses is needed when smtp_host is set".into()));
            }
        }
        let k = &self.kafka;
        if let Some(b) =
            k.brokers.iter().find(|b| b.rsplit_once(':').is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err()))
        {
            return Err(("kafka.brokers", format!("{b:?} is not host:port")));
        }
        if k.topic_prefix.is_empty() || !k.topic_prefix.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(("kafka.topic_prefix", "must be letters, digits, '.', '_' or '-'".into()));
        }
        range("kafka.partitions", f64::from(k.partitions), 1.0, 1000.0)?;
        range("kafka.replication_factor", f64::from(k.replication_factor), 1.0, 16.0)?;
        if !matches!(k.compression.as_str(), "none" | "gzip" | "lz4" | "snappy" | "zstd") {
            return Err(("kafka.compression", "must be none, gzip, lz4, snappy or zstd".into()));
        }
        if !matches!(k.sasl_mechanism.as_str(), "plain" | "scram-sha-256" | "scram-sha-512") {
            return Err(("kafka.sasl_mechanism", "must be plain, scram-sha-256 or scram-sha-512".into()));
        }
        range("kafka.batch_size", k.batch_size as f64, 1.0, 100_000.0)?;
        let c = &self.cassandra;
        if let Some(n) =
            c.nodes.iter().find(|n| n.rsplit_once(':').is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err()))
        {
            return Err(("cassandra.nodes", format!("{n:?} is not host:port")));
        }
        let ident = |v: &str| {
            v.len() <= 48
                && v.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        if !ident(&c.keyspace) {
            return Err((
                "cassandra.keyspace",
                format!("{:?} is not a CQL identifier (letters, digits, _)", c.keyspace),
            ));
        }
        if !c.replication.trim_start().starts_with('{') || c.replication.contains(';') {
            return Err((
                "cassandra.replication",
                "must be a CQL map like {'class': 'SimpleStrategy', 'replication_factor': 1}".into(),
            ));
        }
        const CONSISTENCY: [&str; 8] =
            ["one", "two", "three", "quorum", "all", "local_quorum", "each_quorum", "local_one"];
        if !CONSISTENCY.contains(&c.consistency.as_str()) {
            return Err(("cassandra.consistency", format!("must be one of {}", CONSISTENCY.join(", "))));
        }
        range("cassandra.batch_size", c.batch_size as f64, 1.0, 10_000.0)?;
        if let Some(url) = &self.mqtt.url {
            match reqwest::Url::parse(url) {
                Ok(u) if !u.username().is_empty() || u.password().is_some() => {
                    return Err(("mqtt.url", "must not carry credentials; use mqtt.username and mqtt.password".into()));
                }
                Ok(u) if matches!(u.scheme(), "mqtt" | "mqtts") && u.host_str().is_some() => {}
                _ => return Err(("mqtt.url", format!("{url:?} is not like mqtt://host:1883 or mqtts://host:8883"))),
            }
        }
        if self.mqtt.topic_prefix.is_empty() || self.mqtt.topic_prefix.contains(['#', '+']) {
            return Err(("mqtt.topic_prefix", "must be non-empty, without '#' or '+'".into()));
        }
        if self.web.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(("web.listen", format!("{:?} is not an address:port like 127.0.0.1:8080", self.web.listen)));
        }
        let w = &self.web;
        if w.username.as_deref().is_some_and(|u| u.is_empty() || u.contains(':')) {
            return Err(("web.username", "must be non-empty and without ':' (HTTP basic auth)".into()));
        }
        let has_password = !w.password.expose().is_empty();
        if w.username.is_some() != has_password {
            return Err(("web.password", "web.username and web.password go together (set both or neither)".into()));
        }
        let tile_url_ok = (w.tile_url.starts_with("https://") || w.tile_url.starts_with("http://"))
            && ["{z}", "{x}", "{y}"].iter().all(|p| w.tile_url.contains(p));
        if !w.tile_url.is_empty() && !tile_url_ok {
            return Err((
                "web.tile_url",
                format!("{:?} is not a tile URL like https://tile.openstreetmap.org/{{z}}/{{x}}/{{y}}.png", w.tile_url),
            ));
        }
        Ok(())
    }

    /// Where a command on this machine reaches the running appliance (`web.listen`, with an
    /// all-interfaces address replaced by localhost).
    pub fn local_web_addr(&self) -> Option<std::net::SocketAddr> {
        let mut addr: std::net::SocketAddr = self.web.listen.parse().ok()?;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        Some(addr)
    }

    pub fn commit_interval(&self) -> Duration {
        Duration::from_secs(self.store.commit_interval_s)
    }

    pub fn http_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.http.timeout_s)
    }

    /// The effective TLE refresh: CelesTrak asks clients not to re-download within 2 hours.
    pub fn tle_refresh(&self) -> Duration {
        let hours = if self.iss.tle_url.contains("celestrak") {
            self.iss.tle_refresh_h.max(2.0)
        } else {
            self.iss.tle_refresh_h
        };
        Duration::from_secs_f64(hours * 3600.0)
    }

    /// The effective configuration as TOML, secrets masked.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot render the configuration: {e}\n"))
    }

    /// Warnings about values that are allowed but probably not meant.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.iss.tle_url.contains("celestrak") && self.iss.tle_refresh_h < 2.0 {
            out.push(format!(
                "iss.tle_refresh_h = {} is below CelesTrak's 2 h update cycle; 2 h is used",
                self.iss.tle_refresh_h
            ));
        }
        if self.iss.position_url.contains("open-notify") && self.iss.poll_interval_s < 5 {
            out.push("iss.poll_interval_s below 5 s exceeds open-notify's request limit".into());
        }
        out
    }
}

/// Applies one `OUTPOST_<SECTION>_<KEY>` variable; returns the dotted key it set, if any.
fn apply_env(table: &mut toml::Table, name: &str, raw: &str) -> Result<Option<String>, String> {
    let Some(rest) = name.strip_prefix("OUTPOST_") else { return Ok(None) };
    let rest = rest.to_ascii_lowercase();
    let file_key = |k: &str| k.strip_suffix("_file").map(str::to_owned);
    for &(section, key, ty) in KEYS {
        let Some(k) = rest.strip_prefix(section).and_then(|r| r.strip_prefix('_')) else { continue };
        let (target, ty) = if k == key {
            (key.to_owned(), ty)
        } else if ty == KeyType::Secret && file_key(k).as_deref() == Some(key) {
            (k.to_owned(), KeyType::Str)
        } else {
            continue;
        };
        let value = typed_value(raw, ty)?;
        let entry = table.entry(section).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let toml::Value::Table(sec) = entry else { return Err(format!("[{section}] in the file is not a table")) };
        sec.insert(target.clone(), value);
        return Ok(Some(format!("{section}.{target}")));
    }
    // Unknown OUTPOST_ variables are ignored on purpose: the environment has other users
    // (e.g. OUTPOST_TEST_CASSANDRA for the test suite).
    Ok(None)
}

fn typed_value(raw: &str, ty: KeyType) -> Result<toml::Value, String> {
    let raw = raw.trim();
    Ok(match ty {
        KeyType::Str | KeyType::Secret => toml::Value::String(raw.to_owned()),
        KeyType::Int => toml::Value::Integer(raw.parse().map_err(|_| format!("{raw:?} is not an integer"))?),
        KeyType::Float => toml::Value::Float(raw.parse().map_err(|_| format!("{raw:?} is not a number"))?),
        KeyType::Bool => toml::Value::Boolean(raw.parse().map_err(|_| format!("{raw:?} is not true or false"))?),
        KeyType::StrList => toml::Value::Array(
            raw.trim_start_matches('[')
                .trim_end_matches(']')
                .split(',')
                .map(|s| s.trim().trim_matches('"'))
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_owned()))
                .collect(),
        ),
        KeyType::IntList => toml::Value::Array(
            raw.trim_start_matches('[')
                .trim_end_matches(']')
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().map(toml::Value::Integer).map_err(|_| format!("{s:?} is not an integer")))
                .collect::<Result<_, _>>()?,
        ),
    })
}

/// Replaces `<secret>_file = "PATH"` with the file's (trimmed) contents under `<secret>`.
fn resolve_secret_files(table: &mut toml::Table) -> Result<(), (String, String)> {
    for &(section, key, ty) in KEYS {
        if ty != KeyType::Secret {
            continue;
        }
        let Some(toml::Value::Table(sec)) = table.get_mut(section) else { continue };
        let file_key = format!("{key}_file");
        let Some(v) = sec.remove(&file_key) else { continue };
        let path = v.as_str().ok_or((format!("{section}.{file_key}"), "must be a path".to_owned()))?;
        let secret = std::fs::read_to_string(path)
            .map_err(|e| (format!("{section}.{file_key}"), format!("cannot read {path}: {}", e.kind())))?;
        sec.insert(key.to_owned(), toml::Value::String(secret.trim_end_matches(['\n', '\r']).to_owned()));
    }
    Ok(())
}

/// The 1-based line where `dotted` ("section.key" or "section") is set in `text`, if it is.
fn line_of(text: &str, dotted: &str) -> Option<usize> {
    let (section, key) = match dotted.split_once('.') {
        Some((s, k)) => (s, Some(k.split(['.', '[']).next().unwrap_or(k))),
        None => (dotted, None),
    };
    // A top-level key (before any [section]) is reported at its own line.
    if key.is_none() {
        let top = text.lines().take_while(|l| !l.trim_start().starts_with('['));
        if let Some(i) = top.into_iter().position(|l| l.split('=').next().map(str::trim) == Some(section)) {
            return Some(i + 1);
        }
    }
    let mut current = "";
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if let Some(h) = t.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            current = h.trim();
            if key.is_none() && current == section {
                return Some(i + 1);
            }
            continue;
        }
        if let (Some(k), true) = (key, current == section)
            && t.split('=').next().map(str::trim) == Some(k)
        {
            return Some(i + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests;
