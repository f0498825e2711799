//! MQTT sink (rumqttc): a *state* sink. It publishes current values, retained and QoS 1, never
//! every record:
//! - `{prefix}/{station}/iss/position`: the newest position (the read API's field names);
//! - `{prefix}/{station}/avalanche/{region}`: today's (Norwegian date) newest warning per
//!   configured region: region_id, region_name, danger_level (null = not assessed), valid_date,
//!   publish_time, main_text;
//! - `{prefix}/{station}/weather/{region}`: today's (Norwegian date) newest `weather.daily`
//!   version per configured region seen by this process: region_id, date, fetched_at,
//!   snowfall_max_cm, wind_speed_max_kmh, wind_direction_deg, wind_gusts_max_kmh,
//!   temperature_min_c, temperature_max_c (null = no value);
//! - `{prefix}/{station}/iss/next_pass`: the next visible pass for the device's location (the
//!   `/api/passes` object, `magnitude` included); when there is none, `{"reason": "..."}` (no TLE,
//!   no location, a TLE that does not fit the clock, with its epoch and age); refreshed on every
//!   batch and idle tick, and when the pass ends;
//! - `{prefix}/{station}/iss/visible_now`: "ON" while a visible pass is in progress over the
//!   device's location (from its `visible_from` to its `visible_to`), else "OFF";
//! - `{prefix}/{station}/iss/overhead`: "ON" while the ISS is above `email.overhead_elevation_deg`
//!   there (visible or not), else "OFF". Both flip within a second or so of the predicted time:
//!   the feed wakes at the edges, and the sink asks its forwarder for a step when they change;
//! - `{prefix}/{station}/status`: "online" after each connect, "offline" as the last will and on
//!   a graceful close;
//! - `{prefix}/{station}/alerts`: one event (not retained) per avalanche danger alert recorded
//!   by this process's alerts (region_id, region_name, valid_date, danger_level, at), once per
//!   (region, valid date, level) whatever the channels, within a minute of the alert;
//! - with `ha_discovery`, Home Assistant configs under `homeassistant/…/config` (ISS latitude and
//!   longitude sensors, an ISS device tracker, the next pass with its magnitude and maximum
//!   elevation as attributes, the binary sensors "ISS visible now" and "ISS overhead", per region
//!   a danger sensor and a
//!   binary sensor "danger at or above `avalanche_alerts.min_level`", a new-snow and a max-wind
//!   sensor).
//!
//! Coalescing is the point (`state`): a batch yields at most one position publish and one per
//! region, and a value already published on this connection is not sent again, so a week's
//! backlog costs a handful of messages. Every (re)connect republishes the whole state, so a
//! broker that lost its retained messages is refilled; today's warnings are also republished
//! when the date changes. TLE records publish nothing.
//!
//! The values come from the current-state feed (`crate::current`), not the store: this sink
//! never reads the store and never predicts passes. Before a batch is coalesced, the feed must
//! have caught up with the batch's last record, so a warning in the batch is in the feed too.
//!
//! Acknowledgements (`connection`): a publish group is Ok only once every publish it queued went
//! out and was acked. The connection is taken out of the sink while a group is in flight: if the
//! group fails or its future is dropped, the connection (and any late acks) goes with it, so
//! acks can never be matched to a later group.
//!
//! Never: logs or returns the password or the URL; puts credentials in the URL (refused).

mod config;
mod connection;
mod discovery;
mod state;

pub use config::MqttConfig;

use super::{Partial, Sink, SinkError};
use crate::current::Current;
use crate::domain::StoredRecord;
use connection::Conn;
use state::State;
use std::time::Duration;
use tokio::sync::watch;

/// How long a batch waits for the current state to reflect it (with the ack time-out, below
/// the forwarder's 30 s send time-out). The feed reads right after each commit, so this is
/// reached only when the store cannot be read.
/// Records per batch: a state sink coalesces a batch into a handful of messages.
pub const BATCH_SIZE: usize = 1000;

const FEED_WAIT: Duration = Duration::from_secs(5);

/// A topic and its payload.
type Msg = (String, Vec<u8>);

/// The names everything is published under.
struct Topics {
    /// `{prefix}/{station}`, wildcards replaced (they are not allowed in topic names).
    base: String,
    /// `outpost_{station}` limited to [a-zA-Z0-9_-]: client id, HA node id, unique-id prefix.
    node: String,
    station: String,
}

impl Topics {
    fn new(prefix: &str, station: &str) -> Self {
        let safe: String =
            station.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
        Topics {
            base: format!("{prefix}/{}", station.replace(['+', '#'], "_")),
            node: format!("outpost_{safe}"),
            station: station.to_owned(),
        }
    }

    fn status(&self) -> String {
        format!("{}/status", self.base)
    }

    fn position(&self) -> String {
        format!("{}/iss/position", self.base)
    }

    fn region(&self, region: u32) -> String {
        format!("{}/avalanche/{region}", self.base)
    }

    fn weather(&self, region: u32) -> String {
        format!("{}/weather/{region}", self.base)
    }

    fn next_pass(&self) -> String {
        format!("{}/iss/next_pass", self.base)
    }

    /// "ON" while a visible pass is in progress.
    fn visible_now(&self) -> String {
        format!("{}/iss/visible_now", self.base)
    }

    /// "ON" while the ISS is above the overhead elevation.
    fn overhead(&self) -> String {
        format!("{}/iss/overhead", self.base)
    }

    /// Alert events (not retained).
    fn alerts(&self) -> String {
        format!("{}/alerts", self.base)
    }
}

pub struct MqttSink {
    cfg: MqttConfig,
    state: State,
    current: watch::Receiver<Current>,
    conn: Option<Conn>,
}

impl MqttSink {
    /// `regions` are the configured ones (one danger sensor each); `current` is the feed the
    /// published values come from.
    pub fn new(
        cfg: MqttConfig,
        station: String,
        regions: Vec<u32>,
        danger_min_level: u8,
        current: watch::Receiver<Current>,
    ) -> Self {
        let topics = Topics::new(&cfg.topic_prefix, &station);
        let state = State::new(topics, regions, cfg.ha_discovery, danger_min_level, chrono::Utc::now());
        MqttSink { cfg, state, current, conn: None }
    }

    /// Publishes `msgs` and waits for every ack.
    async fn publish(&mut self, msgs: Vec<Msg>) -> Result<(), SinkError> {
        if msgs.is_empty() {
            return Ok(());
        }
        // Taken, not borrowed: a failed or abandoned group drops the connection with its late acks.
        let mut conn = self.conn.take().ok_or_else(|| SinkError::Transient("not connected".into()))?;
        let events = self.state.topics().alerts();
        let (events, state): (Vec<Msg>, Vec<Msg>) = msgs.into_iter().partition(|(t, _)| *t == events);
        conn.publish_acked(state, true).await?;
        conn.publish_acked(events, false).await?;
        self.conn = Some(conn);
        Ok(())
    }

    /// Waits until the current state reflects every record up to `seq`.
    async fn feed_reached(&mut self, seq: u64) -> Result<(), SinkError> {
        let reached = tokio::time::timeout(FEED_WAIT, self.current.wait_for(|c| c.seq >= seq)).await;
        match reached.map(|r| r.map(drop)) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(SinkError::Transient("the current state is no longer updated (shutting down?)".into())),
            Err(_) => Err(SinkError::Transient(format!(
                "the current state did not reach record {seq} within {FEED_WAIT:?} (cannot read the store?)"
            ))),
        }
    }
}

impl Sink for MqttSink {
    const NAME: &'static str = "mqtt";

    /// Connects and publishes online, discovery and the whole current state; when already
    /// connected, publishes what changed with time (next pass, a new date's warnings).
    async fn connect(&mut self) -> Result<(), SinkError> {
        // A driver that stopped while idle (broker gone, keep-alive failed): start afresh now.
        if self.conn.as_ref().is_some_and(|c| !c.is_alive()) {
            self.conn = None;
        }
        if self.conn.is_some() {
            // The forwarder calls this at least every minute.
            let msgs = self.state.on_idle(&self.current.borrow());
            return self.publish(msgs).await;
        }
        let topics = self.state.topics();
        let conn = Conn::open(connection::options(&self.cfg, &topics.node, &topics.status())?).await?;
        self.conn = Some(conn);
        let msgs = self.state.on_connect(&self.current.borrow());
        self.publish(msgs).await?;
        tracing::info!(topic = %self.state.topics().status(), "connected to the MQTT broker");
        Ok(())
    }

    async fn send(&mut self, batch: &[StoredRecord], _live_from: u64) -> Result<(), Partial> {
        if let Some(last) = batch.last() {
            self.feed_reached(last.seq).await?;
        }
        let msgs = self.state.on_batch(batch, &self.current.borrow());
        Ok(self.publish(msgs).await?)
    }

    fn disconnect(&mut self) {
        // Dropping the connection aborts its driver; the broker then sends the last will.
        self.conn = None;
    }

    /// The sky state (visible now, overhead) changes on time, without a record: step then.
    async fn wake(&mut self) {
        let published = self.state.published_sky();
        // A clone: the batch path's receiver keeps its own notion of what it has seen.
        let mut current = self.current.clone();
        if current.wait_for(|c| Some(c.sky) != published).await.is_err() {
            // The feed stopped (shutting down): nothing will change any more.
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for MqttSink {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            conn.close_gracefully(&self.state.topics().status());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_and_home_assistant_ids_are_sanitised() {
        let topics = Topics::new("outpost", "pi.1+x");
        assert_eq!(topics.node, "outpost_pi_1_x");
        assert_eq!(topics.status(), "outpost/pi.1_x/status");
        let all = discovery::all(&topics, &[3022], &Default::default(), 3);
        assert_eq!(
            all.len(),
            10,
            "latitude, longitude, tracker, next pass, visible now, overhead, one region's danger, binary, snow, wind"
        );
        for (topic, _) in all {
            let ok = |seg: &str| seg.chars().all(|c| c.is_ascii_alphanumeric() || "_-".contains(c));
            assert!(topic.split('/').all(ok), "{topic}");
        }
    }

    #[tokio::test]
    async fn a_batch_waits_for_the_current_state_to_reflect_it() {
        let cfg: MqttConfig = toml::from_str("url = \"mqtt://localhost\"").unwrap();
        let (tx, rx) = watch::channel(Current { seq: 3, ..Current::default() });
        let mut sink = MqttSink::new(cfg, "pi".into(), vec![3022], 3, rx);
        assert!(sink.feed_reached(3).await.is_ok());
        {
            let waiting = sink.feed_reached(4);
            tokio::pin!(waiting);
            assert!(poll_once(waiting.as_mut()).await.is_none(), "seq 4 is not in the state yet");
            tx.send_modify(|c| c.seq = 4);
            assert!(waiting.await.is_ok());
        }
        // A feed that cannot read the store: the step fails after FEED_WAIT (virtual time).
        tokio::time::pause();
        let err = sink.feed_reached(5).await.unwrap_err();
        assert!(err.to_string().contains("did not reach record 5"), "{err}");
        drop(tx);
        let err = sink.feed_reached(5).await.unwrap_err();
        assert!(err.to_string().contains("no longer updated"), "{err}");
    }

    /// Polls `f` once: `Some` if it is ready.
    async fn poll_once<F: Future + Unpin>(mut f: F) -> Option<F::Output> {
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut f).poll(cx) {
                std::task::Poll::Ready(v) => Some(v),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }
}
