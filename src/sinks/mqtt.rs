//! MQTT sink (rumqttc): a *state* sink. It publishes current values, retained and QoS 1, never
//! every record:
//! - `{prefix}/{station}/iss/position`: the newest position (the read API's field names);
//! - `{prefix}/{station}/avalanche/{region}`: today's (Norwegian date) newest warning per
//!   configured region: region_id, region_name, danger_level (null = not assessed), valid_date,
//!   publish_time, main_text;
//! - `{prefix}/{station}/iss/next_pass`: the next visible pass for the device's location (the
//!   `/api/passes` object), `{}` when there is none yet; refreshed on every batch and idle tick;
//! - `{prefix}/{station}/status`: "online" after each connect, "offline" as the last will and on
//!   a graceful close;
//! - with `ha_discovery`, Home Assistant configs under `homeassistant/…/config` (ISS latitude and
//!   longitude sensors, an ISS device tracker, one danger sensor per region).
//!
//! Coalescing is the point: a batch yields at most one position publish and one per region, and
//! a value already published on this connection is not sent again, so a week's backlog costs a
//! handful of messages. Every (re)connect republishes the whole state, so a broker that lost its
//! retained messages is refilled; today's warnings are also republished when the date changes.
//! TLE records publish nothing.
//!
//! Acknowledgements: rumqttc's `publish` returns no packet id, so a driver task polls the event
//! loop and forwards, in order, each outgoing publish's packet id and each PubAck. A publish group
//! is Ok only once every publish it queued went out and was acked. The connection is taken out of
//! the sink while a group is in flight: if the group fails or its future is dropped, the
//! connection (and any late acks) goes with it, so acks can never be matched to a later group.
//! rumqttc's own reconnect is not used: the driver stops at the first error and the forwarder
//! decides when to connect again, with a fresh session.
//!
//! Never: logs or returns the password or the URL; puts credentials in the URL (refused).

mod config;

pub use config::MqttConfig;

use super::{Partial, Sink, SinkError};
use crate::domain::norwegian_today;
use crate::domain::{AvalancheWarning, IssPosition, Record, StoredRecord};
use crate::store::Store;
use chrono::{DateTime, NaiveDate, Utc};
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet, QoS,
    TlsConfiguration, Transport,
};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Records per batch: a state sink coalesces a batch into a handful of messages.
pub const BATCH_SIZE: usize = 1000;

const KEEP_ALIVE: Duration = Duration::from_secs(30);
/// How long connect() waits for the broker's ConnAck.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a publish group may wait for its PubAcks (below the forwarder's 30 s send timeout).
const ACK_TIMEOUT: Duration = Duration::from_secs(20);
/// Warnings' main texts can be long; rumqttc's default limit is 10 KiB.
const MAX_PACKET: usize = 256 * 1024;

type Msg = (String, Vec<u8>);

/// What the driver task saw, in event-loop order.
enum Ev {
    Connected,
    Sent(u16),
    Acked(u16),
    Failed(ConnectionError),
}

/// One broker connection: the client, the driver's reports, and the driver itself.
struct Conn {
    client: AsyncClient,
    events: mpsc::UnboundedReceiver<Ev>,
    driver: Option<JoinHandle<()>>,
}

impl Conn {
    /// Queues "offline" and a DISCONNECT and leaves the driver running to flush them; it ends
    /// when the broker closes the socket. If the process exits first, the last will says the same.
    fn close_gracefully(mut self, status_topic: &str) {
        let _ = self.client.try_publish(status_topic, QoS::AtLeastOnce, true, "offline");
        let _ = self.client.try_disconnect();
        self.driver = None;
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(driver) = self.driver.take() {
            driver.abort();
        }
    }
}

/// Drives the event loop until the first error. Reports are best effort: after a graceful close
/// nobody listens, but the loop must still run to send the queued packets.
async fn drive(mut eventloop: EventLoop, events: mpsc::UnboundedSender<Ev>) {
    loop {
        let ev = match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => Ev::Connected,
            Ok(Event::Incoming(Packet::PubAck(ack))) => Ev::Acked(ack.pkid),
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => Ev::Sent(pkid),
            Ok(_) => continue,
            Err(e) => {
                let _ = events.send(Ev::Failed(e));
                return;
            }
        };
        let _ = events.send(ev);
    }
}

/// Sorts rumqttc errors into "retry soon" and "an operator must act". None of rumqttc's messages
/// carry the password or the URL.
fn classify(e: &ConnectionError) -> SinkError {
    use ConnectReturnCode as C;
    match e {
        ConnectionError::ConnectionRefused(C::BadUserNamePassword) => SinkError::Permanent(
            "the MQTT broker rejected the username or password (check mqtt.username and mqtt.password)".into(),
        ),
        ConnectionError::ConnectionRefused(C::NotAuthorized) => SinkError::Permanent(
            "the MQTT broker refused the login: not authorized (check mqtt.username and mqtt.password)".into(),
        ),
        ConnectionError::ConnectionRefused(C::ServiceUnavailable) => {
            SinkError::Transient("the MQTT broker is unavailable".into())
        }
        ConnectionError::ConnectionRefused(code) => {
            SinkError::Permanent(format!("the MQTT broker refused the connection: {code:?}"))
        }
        ConnectionError::Io(io) => SinkError::Transient(format!("cannot reach the MQTT broker: {io}")),
        ConnectionError::NetworkTimeout => SinkError::Transient("the MQTT broker did not answer in time".into()),
        other => SinkError::Transient(format!("MQTT: {other}")),
    }
}

/// The batch's newest position: the only one worth publishing.
fn newest_position(batch: &[StoredRecord]) -> Option<&IssPosition> {
    let positions = batch.iter().filter_map(|r| match &r.record {
        Record::IssPosition(p) => Some(p),
        _ => None,
    });
    positions.max_by_key(|p| p.time)
}

fn warning_payload(w: &AvalancheWarning) -> Vec<u8> {
    json!({
        "region_id": w.region_id,
        "region_name": w.region_name,
        "danger_level": w.danger_level,
        "valid_date": w.valid_date,
        "publish_time": w.publish_time,
        "main_text": w.main_text,
    })
    .to_string()
    .into_bytes()
}

/// What the current connection has published; reset on connect, which republishes everything.
#[derive(Default)]
struct Published {
    position_time: Option<DateTime<Utc>>,
    warnings: HashMap<u32, Vec<u8>>,
    warnings_date: Option<NaiveDate>,
    next_pass: Option<Vec<u8>>,
}

pub struct MqttSink {
    cfg: MqttConfig,
    station: String,
    store: Store,
    regions: Vec<u32>,
    /// `{prefix}/{station}`, wildcards replaced (they are not allowed in topic names).
    base: String,
    /// `outpost_{station}` limited to [a-zA-Z0-9_-]: HA node id, device id, unique-id prefix.
    node: String,
    conn: Option<Conn>,
    published: Published,
    /// Region names the discovery configs announce (learned from warnings; the id until then).
    names: HashMap<u32, String>,
    /// Where passes are seen from, and which count; set with `with_passes`.
    passes: Option<(tokio::sync::watch::Receiver<Option<crate::location::Located>>, crate::passes::PassOptions)>,
}

impl MqttSink {
    pub fn new(cfg: MqttConfig, station: String, store: Store, regions: Vec<u32>) -> Self {
        let base = format!("{}/{}", cfg.topic_prefix, station.replace(['+', '#'], "_"));
        let safe: String =
            station.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
        MqttSink {
            cfg,
            station,
            store,
            regions,
            base,
            node: format!("outpost_{safe}"),
            conn: None,
            published: Published::default(),
            names: HashMap::new(),
            passes: None,
        }
    }

    /// Also publishes the next visible pass for the device's location.
    pub fn with_passes(
        mut self,
        location: tokio::sync::watch::Receiver<Option<crate::location::Located>>,
        options: crate::passes::PassOptions,
    ) -> Self {
        self.passes = Some((location, options));
        self
    }

    fn next_pass_topic(&self) -> String {
        format!("{}/iss/next_pass", self.base)
    }

    /// The next visible pass (within 3 days) as JSON, `{}` when there is none or no TLE or
    /// location yet; `None` when unchanged since this connection published it.
    async fn next_pass_msg(&mut self) -> Result<Option<Msg>, SinkError> {
        let Some((location, options)) = &self.passes else { return Ok(None) };
        let observer = location.borrow().map(|l| l.observer);
        let options = *options;
        let tle = self.read_store(|s| s.latest_tle()).await?;
        let payload = match (tle, observer) {
            (Some(tle), Some(observer)) => {
                let query = crate::passes::PassQuery { observer, from: Utc::now(), hours: 72.0, options, all: false };
                let next = tokio::task::spawn_blocking(move || query.run(&tle))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .and_then(|passes| passes.into_iter().find(|p| p.visible_to.is_some_and(|t| t > Utc::now())));
                next.and_then(|p| serde_json::to_vec(&p).ok()).unwrap_or_else(|| b"{}".to_vec())
            }
            _ => b"{}".to_vec(),
        };
        if self.published.next_pass.as_ref() == Some(&payload) {
            return Ok(None);
        }
        self.published.next_pass = Some(payload.clone());
        Ok(Some((self.next_pass_topic(), payload)))
    }

    fn status_topic(&self) -> String {
        format!("{}/status", self.base)
    }

    fn position_topic(&self) -> String {
        format!("{}/iss/position", self.base)
    }

    fn region_topic(&self, region: u32) -> String {
        format!("{}/avalanche/{region}", self.base)
    }

    fn options(&self) -> Result<MqttOptions, SinkError> {
        let bad = |why: &str| SinkError::Permanent(format!("mqtt.url {why}"));
        let url = reqwest::Url::parse(self.cfg.url.as_deref().unwrap_or_default())
            .map_err(|_| bad("is not like mqtt://host:1883 or mqtts://host:8883"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("must not contain credentials: set mqtt.username and mqtt.password instead"));
        }
        let (tls, default_port) = match url.scheme() {
            "mqtt" => (false, 1883),
            "mqtts" => (true, 8883),
            _ => return Err(bad("must start with mqtt:// or mqtts://")),
        };
        let host = url.host_str().ok_or_else(|| bad("has no host"))?;
        let mut opts = MqttOptions::new(self.node.clone(), host, url.port().unwrap_or(default_port));
        opts.set_keep_alive(KEEP_ALIVE)
            .set_clean_session(true)
            .set_max_packet_size(MAX_PACKET, MAX_PACKET)
            .set_last_will(LastWill::new(self.status_topic(), "offline", QoS::AtLeastOnce, true));
        if let Some(user) = &self.cfg.username {
            opts.set_credentials(user, self.cfg.password.expose());
        }
        if tls {
            opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(Arc::new(
                super::upstream_tls_config(),
            ))));
        }
        Ok(opts)
    }

    /// Starts the driver and waits for the broker's ConnAck.
    async fn open(&self) -> Result<Conn, SinkError> {
        let (client, eventloop) = AsyncClient::new(self.options()?, 64);
        let (tx, mut events) = mpsc::unbounded_channel();
        let driver = Some(tokio::spawn(drive(eventloop, tx)));
        let conn_ack = tokio::time::timeout(CONNECT_TIMEOUT, events.recv()).await;
        let conn = Conn { client, events, driver };
        match conn_ack {
            Ok(Some(Ev::Connected)) => Ok(conn),
            Ok(Some(Ev::Failed(e))) => Err(classify(&e)),
            Ok(_) => Err(SinkError::Transient("the MQTT connection closed before the broker answered".into())),
            Err(_) => Err(SinkError::Transient(format!("no answer from the MQTT broker within {CONNECT_TIMEOUT:?}"))),
        }
    }

    /// Publishes `msgs` (retained, QoS 1) and waits until the broker acked every one.
    async fn publish(&mut self, msgs: Vec<Msg>) -> Result<(), SinkError> {
        if msgs.is_empty() {
            return Ok(());
        }
        // Taken, not borrowed: a failed or abandoned group drops the connection with its late acks.
        let mut conn = self.conn.take().ok_or_else(|| SinkError::Transient("not connected".into()))?;
        let n = msgs.len();
        for (topic, payload) in msgs {
            if conn.client.publish(topic, QoS::AtLeastOnce, true, payload).await.is_err() {
                // The driver has stopped; its report says why.
                while let Ok(ev) = conn.events.try_recv() {
                    if let Ev::Failed(e) = ev {
                        return Err(classify(&e));
                    }
                }
                return Err(SinkError::Transient("the MQTT connection closed".into()));
            }
        }
        let deadline = tokio::time::Instant::now() + ACK_TIMEOUT;
        let (mut sent, mut unacked) = (0, HashSet::new());
        while sent < n || !unacked.is_empty() {
            match tokio::time::timeout_at(deadline, conn.events.recv()).await {
                Ok(Some(Ev::Sent(pkid))) => {
                    sent += 1;
                    unacked.insert(pkid);
                }
                Ok(Some(Ev::Acked(pkid))) => {
                    unacked.remove(&pkid);
                }
                Ok(Some(Ev::Connected)) => {}
                Ok(Some(Ev::Failed(e))) => return Err(classify(&e)),
                Ok(None) => return Err(SinkError::Transient("the MQTT connection closed".into())),
                Err(_) => {
                    let acked = sent - unacked.len();
                    return Err(SinkError::Transient(format!(
                        "the MQTT broker acknowledged {acked} of {n} messages within {ACK_TIMEOUT:?}"
                    )));
                }
            }
        }
        self.conn = Some(conn);
        Ok(())
    }

    async fn read_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> anyhow::Result<T> + Send + 'static,
    ) -> Result<T, SinkError> {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || f(&store)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(SinkError::Transient(format!("cannot read the store: {e:#}"))),
            Err(e) => Err(SinkError::Transient(format!("store read task failed: {e}"))),
        }
    }

    /// The position message, unless this connection already published one at least as new
    /// (a replayed backlog must not move the retained value back in time).
    fn position_msg(&mut self, p: &IssPosition) -> Option<Msg> {
        if self.published.position_time.is_some_and(|t| t >= p.time) {
            return None;
        }
        self.published.position_time = Some(p.time);
        Some((self.position_topic(), serde_json::to_vec(p).ok()?))
    }

    /// Today's warnings of the configured regions that changed since this connection published
    /// them, with a renamed region's discovery config first.
    fn warning_msgs(&mut self, warnings: Vec<AvalancheWarning>, today: NaiveDate) -> Vec<Msg> {
        self.published.warnings_date = Some(today);
        let mut out = Vec::new();
        for w in warnings.into_iter().filter(|w| self.regions.contains(&w.region_id)) {
            if self.names.get(&w.region_id) != Some(&w.region_name) {
                self.names.insert(w.region_id, w.region_name.clone());
                if self.cfg.ha_discovery {
                    out.push(self.region_entity(w.region_id));
                }
            }
            let payload = warning_payload(&w);
            if self.published.warnings.get(&w.region_id) != Some(&payload) {
                self.published.warnings.insert(w.region_id, payload.clone());
                out.push((self.region_topic(w.region_id), payload));
            }
        }
        out
    }

    async fn todays_warnings(&self) -> Result<(Vec<AvalancheWarning>, NaiveDate), SinkError> {
        let today = norwegian_today();
        Ok((self.read_store(move |s| s.avalanche_for_date(today)).await?, today))
    }

    /// One Home Assistant discovery config, with what every entity shares.
    fn entity(&self, component: &str, object_id: &str, mut config: Value) -> Msg {
        let shared = json!({
            "unique_id": format!("{}_{object_id}", self.node),
            "availability_topic": self.status_topic(),
            "payload_available": "online",
            "payload_not_available": "offline",
            "device": {
                "identifiers": [self.node],
                "name": format!("Outpost {}", self.station),
                "manufacturer": "Outpost",
                "sw_version": env!("CARGO_PKG_VERSION"),
            },
        });
        if let (Value::Object(c), Value::Object(s)) = (&mut config, shared) {
            c.extend(s);
        }
        (format!("homeassistant/{component}/{}/{object_id}/config", self.node), config.to_string().into_bytes())
    }

    fn region_entity(&self, region: u32) -> Msg {
        let name = self.names.get(&region).cloned().unwrap_or_else(|| region.to_string());
        let topic = self.region_topic(region);
        self.entity(
            "sensor",
            &format!("avalanche_{region}"),
            json!({
                "name": format!("Avalanche danger {name}"),
                "state_topic": topic,
                "value_template": "{{ value_json.danger_level }}",
                "json_attributes_topic": topic,
                "icon": "mdi:alert",
            }),
        )
    }

    fn discovery(&self) -> Vec<Msg> {
        let pos = self.position_topic();
        let sensor = |name: &str, field: &str| {
            json!({
                "name": name,
                "state_topic": pos,
                "value_template": format!("{{{{ value_json.{field} }}}}"),
                "unit_of_measurement": "°",
                "state_class": "measurement",
                "icon": "mdi:space-station",
            })
        };
        let mut out = vec![
            self.entity("sensor", "iss_latitude", sensor("ISS latitude", "latitude")),
            self.entity("sensor", "iss_longitude", sensor("ISS longitude", "longitude")),
            // The tracker reads latitude/longitude from the position JSON: the ISS on HA's map.
            self.entity(
                "device_tracker",
                "iss",
                json!({"name": "ISS", "json_attributes_topic": pos, "source_type": "gps", "icon": "mdi:space-station"}),
            ),
        ];
        if self.passes.is_some() {
            let topic = self.next_pass_topic();
            out.push(self.entity(
                "sensor",
                "iss_next_pass",
                json!({
                    "name": "ISS next visible pass",
                    "state_topic": topic,
                    "value_template": "{{ value_json.visible_from | default(None) }}",
                    "device_class": "timestamp",
                    "json_attributes_topic": topic,
                    "icon": "mdi:telescope",
                }),
            ));
        }
        out.extend(self.regions.iter().map(|r| self.region_entity(*r)));
        out
    }
}

impl Sink for MqttSink {
    const NAME: &'static str = "mqtt";

    /// Connects and publishes online, discovery and the whole current state; when already
    /// connected, only republishes the warnings if the Norwegian date moved on.
    async fn connect(&mut self) -> Result<(), SinkError> {
        // A driver that stopped while idle (broker gone, keep-alive failed): start afresh now.
        if self.conn.as_ref().is_some_and(|c| c.driver.as_ref().is_none_or(JoinHandle::is_finished)) {
            self.conn = None;
        }
        if self.conn.is_some() {
            // The forwarder calls this at least every minute: refresh what depends on time.
            let mut msgs: Vec<Msg> = self.next_pass_msg().await?.into_iter().collect();
            if self.published.warnings_date != Some(norwegian_today()) {
                let (warnings, today) = self.todays_warnings().await?;
                msgs.extend(self.warning_msgs(warnings, today));
            }
            return self.publish(msgs).await;
        }
        let conn = self.open().await?;
        self.conn = Some(conn);
        self.published = Published::default();
        let position = self.read_store(|s| s.latest_position()).await?;
        let (warnings, today) = self.todays_warnings().await?;
        // Names first, so the discovery configs carry them from the start.
        for w in warnings.iter().filter(|w| self.regions.contains(&w.region_id)) {
            self.names.insert(w.region_id, w.region_name.clone());
        }
        let mut msgs = vec![(self.status_topic(), b"online".to_vec())];
        if self.cfg.ha_discovery {
            msgs.extend(self.discovery());
        }
        msgs.extend(position.and_then(|p| self.position_msg(&p)));
        msgs.extend(self.warning_msgs(warnings, today));
        msgs.extend(self.next_pass_msg().await?);
        self.publish(msgs).await?;
        tracing::info!(topic = %self.status_topic(), "connected to the MQTT broker");
        Ok(())
    }

    async fn send(&mut self, batch: &[StoredRecord], _live_from: u64) -> Result<(), Partial> {
        let mut msgs: Vec<Msg> = newest_position(batch).and_then(|p| self.position_msg(p)).into_iter().collect();
        let has_warnings = batch.iter().any(|r| matches!(r.record, Record::AvalancheWarning(_)));
        if has_warnings || self.published.warnings_date != Some(norwegian_today()) {
            let (warnings, today) = self.todays_warnings().await?;
            msgs.extend(self.warning_msgs(warnings, today));
        }
        msgs.extend(self.next_pass_msg().await?);
        Ok(self.publish(msgs).await?)
    }

    fn disconnect(&mut self) {
        // Dropping the connection aborts its driver; the broker then sends the last will.
        self.conn = None;
    }
}

impl Drop for MqttSink {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            conn.close_gracefully(&self.status_topic());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(station: &str, dir: &std::path::Path) -> MqttSink {
        let (store, _writer, _) = Store::open(dir, station, crate::store::StoreOptions::default()).unwrap();
        let cfg: MqttConfig = toml::from_str("url = \"mqtt://localhost\"\nha_discovery = true").unwrap();
        MqttSink::new(cfg, station.into(), store, vec![3022])
    }

    fn position(secs: i64) -> IssPosition {
        let time = DateTime::from_timestamp(secs, 0).unwrap();
        IssPosition { time, latitude: 0.5, longitude: 1.0, altitude_km: None, velocity_kmh: None, visibility: None }
    }

    #[test]
    fn a_batch_publishes_its_newest_position_and_never_an_older_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = sink("pi", dir.path());
        let batch: Vec<StoredRecord> = [30, 50, 40]
            .into_iter()
            .map(|s| StoredRecord { seq: s as u64, station: "pi".into(), record: Record::IssPosition(position(s)) })
            .collect();
        assert_eq!(newest_position(&batch).map(|p| p.time.timestamp()), Some(50));
        let (topic, payload) = sink.position_msg(&position(50)).unwrap();
        assert_eq!(topic, "outpost/pi/iss/position");
        assert_eq!(payload, br#"{"time":"1970-01-01T00:00:50Z","latitude":0.5,"longitude":1.0}"#);
        assert!(sink.position_msg(&position(50)).is_none(), "already published");
        assert!(sink.position_msg(&position(40)).is_none(), "a replayed older position");
        assert!(sink.position_msg(&position(60)).is_some());
    }

    #[test]
    fn topics_and_home_assistant_ids_are_sanitised() {
        let dir = tempfile::tempdir().unwrap();
        let sink = sink("pi.1+x", dir.path());
        assert_eq!(sink.node, "outpost_pi_1_x");
        assert_eq!(sink.status_topic(), "outpost/pi.1_x/status");
        for (topic, _) in sink.discovery() {
            let ok = |seg: &str| seg.chars().all(|c| c.is_ascii_alphanumeric() || "_-".contains(c));
            assert!(topic.split('/').all(ok), "{topic}");
        }
    }
}
