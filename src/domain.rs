//! The cleaned, typed records Outpost keeps, and the small value types they are made of.
//!
//! Everything here is already validated: parsers in `sources/` are the only way raw upstream
//! answers become these types, and nothing raw reaches the store. Serde derives give the JSON
//! shape the read API (and later the Kafka messages) use, so field names here are a stable
//! interface.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Declares `Kind` from one list, so `Kind::ALL`, `Kind::COUNT`, `index` and `as_str` can never
/// miss a kind: per-kind arrays and summaries elsewhere are sized and filled from them.
macro_rules! kinds {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// The kinds of record in the log. The string forms name Kafka topics and record ids.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
        pub enum Kind {
            $($(#[$doc])* #[serde(rename = $name)] $variant,)*
        }

        impl Kind {
            pub const ALL: [Kind; 0 $(+ { let _ = Kind::$variant; 1 })*] = [$(Kind::$variant),*];
            pub const COUNT: usize = Kind::ALL.len();

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Kind::$variant => $name,)*
                }
            }

            /// Position in `ALL`: an index into per-kind arrays.
            pub fn index(self) -> usize {
                self as usize
            }
        }
    };
}

kinds! {
    IssPosition = "iss.position",
    Tle = "iss.tle",
    AvalancheWarning = "avalanche.warning",
    /// Local bookkeeping of sent alert emails (never forwarded upstream as data).
    AlertEmail = "alert.email",
    /// Local bookkeeping: a record an upstream refused, set aside (never forwarded).
    DeadLetter = "sink.dead_letter",
    /// One version of a region's daily weather (Open-Meteo): per sample point and summed up.
    WeatherDaily = "weather.daily",
    /// Local bookkeeping of avalanche danger alerts (never forwarded upstream as data).
    DangerAlert = "alert.danger",
}

impl Kind {
    /// Whether records of this kind go upstream. Alert emails and dead letters are the
    /// appliance's own bookkeeping: they stay in the local log (docs/messages.md).
    pub fn is_forwarded(self) -> bool {
        !matches!(self, Kind::AlertEmail | Kind::DeadLetter | Kind::DangerAlert)
    }
}

/// The Norwegian calendar date at `t`: NVE's warnings are for Norwegian days, so "today" for
/// avalanche warnings is this, wherever the appliance runs.
pub fn norwegian_date(t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&chrono_tz::Europe::Oslo).date_naive()
}

/// `norwegian_date` of the system clock, for readers that show "today" (pages, the API).
pub fn norwegian_today() -> NaiveDate {
    norwegian_date(Utc::now())
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One record as collected. The store adds the sequence number and station.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum Record {
    #[serde(rename = "iss.position")]
    IssPosition(IssPosition),
    #[serde(rename = "iss.tle")]
    Tle(Tle),
    #[serde(rename = "avalanche.warning")]
    AvalancheWarning(AvalancheWarning),
    #[serde(rename = "alert.email")]
    AlertEmail(AlertEmail),
    #[serde(rename = "sink.dead_letter")]
    DeadLetter(DeadLetter),
    #[serde(rename = "weather.daily")]
    WeatherDaily(WeatherDaily),
    #[serde(rename = "alert.danger")]
    DangerAlert(DangerAlert),
}

impl Record {
    pub fn kind(&self) -> Kind {
        match self {
            Record::IssPosition(_) => Kind::IssPosition,
            Record::Tle(_) => Kind::Tle,
            Record::AvalancheWarning(_) => Kind::AvalancheWarning,
            Record::AlertEmail(_) => Kind::AlertEmail,
            Record::DeadLetter(_) => Kind::DeadLetter,
            Record::WeatherDaily(_) => Kind::WeatherDaily,
            Record::DangerAlert(_) => Kind::DangerAlert,
        }
    }

    /// The stable record id: the same upstream fact always gets the same id, however often it is
    /// fetched or replayed, so sinks can use it as an idempotency key.
    pub fn id(&self, station: &str) -> String {
        match self {
            Record::IssPosition(p) => {
                format!("{station}/iss.position/{}", p.time.timestamp_millis())
            }
            Record::Tle(t) => format!("{station}/iss.tle/{}", t.epoch.timestamp_millis()),
            Record::AvalancheWarning(w) => format!(
                "{station}/avalanche.warning/{}/{}/{}/{}",
                w.region_id,
                w.valid_date,
                w.reg_id,
                w.publish_time.timestamp_millis()
            ),
            Record::AlertEmail(a) => match a.channel {
                AlertChannel::Email => {
                    format!("{station}/alert.email/{}/{}", a.alert.as_str(), a.pass_rise.timestamp_millis())
                }
                AlertChannel::Push => {
                    format!("{station}/alert.email/{}/push/{}", a.alert.as_str(), a.pass_rise.timestamp_millis())
                }
            },
            Record::DeadLetter(d) => format!("{station}/sink.dead_letter/{}/{}", d.sink, d.seq),
            Record::WeatherDaily(w) => {
                format!("{station}/weather.daily/{}/{}/{:016x}", w.region_id, w.date, w.content_hash())
            }
            Record::DangerAlert(a) => {
                format!("{station}/alert.danger/{}/{}/{}/{}", a.region_id, a.valid_date, a.level, a.channel.as_str())
            }
        }
    }

    /// The time the upstream gives for this fact (position time, TLE epoch, publish time).
    pub fn source_time(&self) -> DateTime<Utc> {
        match self {
            Record::IssPosition(p) => p.time,
            Record::Tle(t) => t.epoch,
            Record::AvalancheWarning(w) => w.publish_time,
            Record::AlertEmail(a) => a.at,
            Record::DeadLetter(d) => d.at,
            Record::WeatherDaily(w) => w.fetched_at,
            Record::DangerAlert(a) => a.at,
        }
    }
}

/// A record as the log holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    pub seq: u64,
    pub station: String,
    pub record: Record,
}

impl StoredRecord {
    pub fn id(&self) -> String {
        self.record.id(&self.station)
    }
}

/// Whether the ISS was in sunlight, as wheretheiss.at reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    Daylight,
    Eclipsed,
}

/// One ISS ground position. Latitude and longitude are degrees (WGS84), validated to range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IssPosition {
    pub time: DateTime<Utc>,
    pub latitude: f64,
    pub longitude: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub altitude_km: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub velocity_kmh: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visibility: Option<Visibility>,
}

impl IssPosition {
    /// Rounds to the precision the store keeps (1e-6 degree, 1 m, 1 m/h), so the value a
    /// collector hands on is exactly the value every reader and sink will see.
    pub fn rounded(mut self) -> Self {
        let r = |v: f64, scale: f64| (v * scale).round() / scale;
        self.latitude = r(self.latitude, 1e6);
        self.longitude = r(self.longitude, 1e6);
        self.altitude_km = self.altitude_km.map(|a| r(a, 1e3));
        self.velocity_kmh = self.velocity_kmh.map(|v| r(v, 1e3));
        self
    }
}

/// A two-line element set whose checksums and layout were verified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tle {
    pub epoch: DateTime<Utc>,
    pub norad_id: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub line1: String,
    pub line2: String,
}

/// The danger on the European avalanche danger scale, or "not assessed" (which is not danger 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Danger {
    NotAssessed,
    /// 0..=5 (NVE uses 0 for "no rating" on assessed regions).
    Level(u8),
}

impl Danger {
    pub fn level(self) -> Option<u8> {
        match self {
            Danger::NotAssessed => None,
            Danger::Level(l) => Some(l),
        }
    }
}

// The API shows danger as an integer or null.
impl Serialize for Danger {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.level().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Danger {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Option::<u8>::deserialize(d)? {
            None => Ok(Danger::NotAssessed),
            Some(l) if l <= 5 => Ok(Danger::Level(l)),
            Some(l) => Err(serde::de::Error::custom(format!("danger level {l} is outside 0..=5"))),
        }
    }
}

/// A compass direction of a slope aspect, in NVE's mask order (N, NE, E, SE, S, SW, W, NW).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    N,
    NE,
    E,
    SE,
    S,
    SW,
    W,
    NW,
}

impl Direction {
    pub const MASK_ORDER: [Direction; 8] = [
        Direction::N,
        Direction::NE,
        Direction::E,
        Direction::SE,
        Direction::S,
        Direction::SW,
        Direction::W,
        Direction::NW,
    ];
}

/// Where on the mountain a problem applies (NVE's ExposedHeightFill with its two heights).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "band", rename_all = "snake_case")]
pub enum ElevationBand {
    /// Fill 1: above `m` metres.
    Above { m: i32 },
    /// Fill 2: below `m` metres.
    Below { m: i32 },
    /// Fill 3: above `above_m` and below `below_m` (the middle band is spared).
    AboveAndBelow { above_m: i32, below_m: i32 },
    /// Fill 4: between `low_m` and `high_m`.
    Between { low_m: i32, high_m: i32 },
    /// Fill 0 or absent.
    Unspecified,
}

/// An id with NVE's human name for it (ids are stable; names follow the warning's language).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Named {
    pub id: i32,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AvalancheProblem {
    pub problem_type: Named,
    pub cause: Option<Named>,
    pub size: Option<Named>,
    pub probability: Option<Named>,
    pub sensitivity: Option<Named>,
    pub propagation: Option<Named>,
    pub expositions: Vec<Direction>,
    pub elevation: ElevationBand,
    pub danger_level: Option<u8>,
}

/// One published version of a region's daily avalanche warning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AvalancheWarning {
    /// NVE's id of this version; 0 for regions that were not assessed.
    pub reg_id: u64,
    pub region_id: u32,
    pub region_name: String,
    /// "A" (assessed daily in season) or "B".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region_type: Option<String>,
    pub lang: u8,
    pub danger_level: Danger,
    /// The Norwegian calendar day the warning is for.
    pub valid_date: NaiveDate,
    pub valid_from: DateTime<Utc>,
    pub valid_to: DateTime<Utc>,
    pub publish_time: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_warning_time: Option<DateTime<Utc>>,
    pub main_text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avalanche_danger: Option<String>,
    pub advice: Vec<String>,
    pub problems: Vec<AvalancheProblem>,
}

impl AvalancheWarning {
    pub fn is_assessed(&self) -> bool {
        self.danger_level != Danger::NotAssessed
    }
}

/// Which alert an email was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// Sent `lead_minutes` before a visible pass.
    Pass,
    /// The ISS is overhead right now, at night.
    Overhead,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Pass => "pass",
            AlertKind::Overhead => "overhead",
        }
    }
    pub fn tag(self) -> u8 {
        match self {
            AlertKind::Pass => 0,
            AlertKind::Overhead => 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertOutcome {
    Sent,
    /// Delivery failed until the alert stopped being useful (or was refused for good).
    Missed,
}

/// How an alert reached people: by email (`[email]`) or by push (`[push]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertChannel {
    #[default]
    Email,
    Push,
}

impl AlertChannel {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertChannel::Email => "email",
            AlertChannel::Push => "push",
        }
    }
    pub fn tag(self) -> u8 {
        match self {
            AlertChannel::Email => 0,
            AlertChannel::Push => 1,
        }
    }
    pub fn is_email(&self) -> bool {
        *self == AlertChannel::Email
    }
}

/// What happened to the one email Outpost owes for a pass. Recorded in the log, so a restart
/// never sends it twice: (alert, pass_rise) is its identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEmail {
    pub alert: AlertKind,
    /// The rise time of the pass (identifies it).
    pub pass_rise: DateTime<Utc>,
    pub outcome: AlertOutcome,
    /// When it was sent, or given up.
    pub at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visible_from: Option<DateTime<Utc>>,
    pub recipients: u32,
    /// For a missed email: the last SMTP error (never a password).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Email, or push (`[email] push = true`); absent in records written before push existed.
    #[serde(default, skip_serializing_if = "AlertChannel::is_email")]
    pub channel: AlertChannel,
}

impl AlertEmail {
    /// The first part of its key in the alerts index: the alert's tag, plus 2 for push, so an
    /// email and a push for one pass are two records.
    pub fn index_tag(alert: AlertKind, channel: AlertChannel) -> u8 {
        alert.tag() + 2 * channel.tag()
    }
}

/// A record that an upstream refused for what it is (it cannot be mapped, it is too large, the
/// server rejects it), set aside so that the sink goes on. Its identity is (sink, seq): a record
/// is set aside once per sink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The sink that refused it (`kafka`, `cassandra`, `mqtt`).
    pub sink: String,
    /// The refused record's seq in the log.
    pub seq: u64,
    /// The refused record's kind.
    pub record_kind: Kind,
    /// Why, as the upstream or the mapping said it (never a secret or an address).
    pub reason: String,
    /// When it was set aside.
    pub at: DateTime<Utc>,
}

/// One day's weather at one point, as Open-Meteo aggregates it over the Norwegian day. `None` is
/// a value Open-Meteo did not give (`null`, or a variable it left out), never a zero.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WeatherValues {
    /// WMO weather code (0-99).
    pub weather_code: Option<u8>,
    pub temperature_max_c: Option<f64>,
    pub temperature_min_c: Option<f64>,
    pub temperature_mean_c: Option<f64>,
    pub rain_mm: Option<f64>,
    /// New snow, centimetres (Open-Meteo's `snowfall_sum`).
    pub snowfall_cm: Option<f64>,
    pub precipitation_hours: Option<f64>,
    /// Strongest wind at 10 m, km/h.
    pub wind_speed_max_kmh: Option<f64>,
    pub wind_gusts_max_kmh: Option<f64>,
    /// Dominant wind direction, degrees (where the wind comes from).
    pub wind_direction_deg: Option<f64>,
}

impl WeatherValues {
    pub fn is_empty(&self) -> bool {
        *self == WeatherValues::default()
    }
}

/// One sample point of a region: where Open-Meteo placed it (its grid cell) and that day's values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeatherPoint {
    pub latitude: f64,
    pub longitude: f64,
    /// The grid cell's elevation, metres.
    pub elevation_m: Option<f64>,
    #[serde(flatten)]
    pub values: WeatherValues,
}

/// A region's day over its points: the most new snow, the strongest wind and gust (with the
/// direction at the windiest point), the coldest and the warmest, the most rain. `None` when no
/// point had the value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WeatherSummary {
    pub snowfall_max_cm: Option<f64>,
    pub wind_speed_max_kmh: Option<f64>,
    pub wind_direction_deg: Option<f64>,
    pub wind_gusts_max_kmh: Option<f64>,
    pub temperature_min_c: Option<f64>,
    pub temperature_max_c: Option<f64>,
    pub rain_max_mm: Option<f64>,
}

impl WeatherSummary {
    pub fn of(points: &[WeatherPoint]) -> Self {
        let max = |f: fn(&WeatherValues) -> Option<f64>| points.iter().filter_map(|p| f(&p.values)).reduce(f64::max);
        let min = |f: fn(&WeatherValues) -> Option<f64>| points.iter().filter_map(|p| f(&p.values)).reduce(f64::min);
        let windiest = points.iter().filter(|p| p.values.wind_speed_max_kmh.is_some()).max_by(|a, b| {
            a.values.wind_speed_max_kmh.partial_cmp(&b.values.wind_speed_max_kmh).unwrap_or(std::cmp::Ordering::Equal)
        });
        WeatherSummary {
            snowfall_max_cm: max(|v| v.snowfall_cm),
            wind_speed_max_kmh: max(|v| v.wind_speed_max_kmh),
            wind_direction_deg: windiest.and_then(|p| p.values.wind_direction_deg),
            wind_gusts_max_kmh: max(|v| v.wind_gusts_max_kmh),
            temperature_min_c: min(|v| v.temperature_min_c),
            temperature_max_c: max(|v| v.temperature_max_c),
            rain_max_mm: max(|v| v.rain_mm),
        }
    }
}

/// One version of a region's weather for one Norwegian day. Forecast days change as they are
/// re-fetched; each changed version is kept (like warning versions), an unchanged one is a
/// duplicate. Identity: (region, date, content), where the content is the summary and points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeatherDaily {
    pub region_id: u32,
    /// The Norwegian calendar day (Open-Meteo asked with `timezone=Europe/Oslo`).
    pub date: NaiveDate,
    /// When this version was fetched.
    pub fetched_at: DateTime<Utc>,
    pub summary: WeatherSummary,
    pub points: Vec<WeatherPoint>,
}

impl WeatherDaily {
    /// A stable 64-bit hash (FNV-1a) of the values, not of the fetch time: equal values, equal hash.
    pub fn content_hash(&self) -> u64 {
        let bytes = serde_json::to_vec(&(&self.summary, &self.points)).expect("domain types always serialize");
        bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
    }
}

/// What happened to the one alert Outpost owes on one channel for a region's danger level on a
/// valid date. Recorded in the log, so a restart never sends it again: (valid_date, region_id,
/// level, channel) is its identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DangerAlert {
    pub region_id: u32,
    pub region_name: String,
    /// The Norwegian day the warning is for.
    pub valid_date: NaiveDate,
    /// The danger level alerted.
    pub level: u8,
    pub channel: AlertChannel,
    pub outcome: AlertOutcome,
    /// When it was sent, or given up.
    pub at: DateTime<Utc>,
    /// NVE's id of the warning version that was alerted.
    pub reg_id: u64,
    /// For a missed alert: the last delivery error (never a password, token or URL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A warning for tests: region `R{region}`, valid on `date`, published `publish_h` hours after its
/// midnight, danger `level` (`None` = not assessed).
#[cfg(test)]
pub(crate) fn test_warning(region: u32, date: &str, publish_h: i64, reg_id: u64, level: Option<u8>) -> Record {
    let d: NaiveDate = date.parse().unwrap();
    let midnight = chrono::TimeZone::from_utc_datetime(&Utc, &d.and_hms_opt(0, 0, 0).unwrap());
    Record::AvalancheWarning(AvalancheWarning {
        reg_id,
        region_id: region,
        region_name: format!("R{region}"),
        region_type: Some("A".into()),
        lang: 2,
        danger_level: level.map_or(Danger::NotAssessed, Danger::Level),
        valid_date: d,
        valid_from: midnight,
        valid_to: midnight + chrono::Duration::hours(24),
        publish_time: midnight + chrono::Duration::hours(publish_h),
        next_warning_time: None,
        main_text: format!("v{reg_id}"),
        avalanche_danger: None,
        advice: vec![],
        problems: vec![],
    })
}
