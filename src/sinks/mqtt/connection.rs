//! One broker connection: rumqttc options from the config, the driver task, and the matching of
//! PubAcks to the publishes of one group.
//!
//! rumqttc's `publish` returns no packet id, so the driver polls the event loop and forwards, in
//! order, each outgoing publish's packet id and each PubAck. rumqttc's own reconnect is not
//! used: the driver stops at the first error and the forwarder decides when to connect again,
//! with a fresh session. Never logs or returns the password or the URL; refuses credentials in
//! the URL. Knows nothing of what the messages mean.

use super::MqttConfig;
use super::Msg;
use crate::sinks::SinkError;
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet, QoS,
    TlsConfiguration, Transport,
};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const KEEP_ALIVE: Duration = Duration::from_secs(30);
/// How long connect() waits for the broker's ConnAck.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a publish group may wait for its PubAcks (with the sink's wait for the current
/// state, below the forwarder's 30 s send timeout).
const ACK_TIMEOUT: Duration = Duration::from_secs(20);
/// Warnings' main texts can be long; rumqttc's default limit is 10 KiB.
const MAX_PACKET: usize = 256 * 1024;

/// What the driver task saw, in event-loop order.
enum Ev {
    Connected,
    Sent(u16),
    Acked(u16),
    Failed(ConnectionError),
}

/// The client options: `client_id` is also the HA node id; the last will says "offline" on
/// `status_topic`.
pub(super) fn options(cfg: &MqttConfig, client_id: &str, status_topic: &str) -> Result<MqttOptions, SinkError> {
    let bad = |why: &str| SinkError::Permanent(format!("mqtt.url {why}"));
    let url = reqwest::Url::parse(cfg.url.as_deref().unwrap_or_default())
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
    let mut opts = MqttOptions::new(client_id, host, url.port().unwrap_or(default_port));
    opts.set_keep_alive(KEEP_ALIVE)
        .set_clean_session(true)
        .set_max_packet_size(MAX_PACKET, MAX_PACKET)
        .set_last_will(LastWill::new(status_topic, "offline", QoS::AtLeastOnce, true));
    if let Some(user) = &cfg.username {
        opts.set_credentials(user, cfg.password.expose());
    }
    if tls {
        opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(Arc::new(
            crate::sinks::upstream_tls_config(),
        ))));
    }
    Ok(opts)
}

/// One broker connection: the client, the driver's reports, and the driver itself.
pub(super) struct Conn {
    client: AsyncClient,
    events: mpsc::UnboundedReceiver<Ev>,
    driver: Option<JoinHandle<()>>,
}

impl Conn {
    /// Starts the driver and waits for the broker's ConnAck.
    pub(super) async fn open(opts: MqttOptions) -> Result<Conn, SinkError> {
        let (client, eventloop) = AsyncClient::new(opts, 64);
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

    /// False once the driver stopped (broker gone, keep-alive failed): connect afresh.
    pub(super) fn is_alive(&self) -> bool {
        self.driver.as_ref().is_some_and(|d| !d.is_finished())
    }

    /// Publishes `msgs` (QoS 1, retained if `retain`) and waits until the broker acked every
    /// one. After an error the connection must be dropped: its late acks belong to this group.
    pub(super) async fn publish_acked(&mut self, msgs: Vec<Msg>, retain: bool) -> Result<(), SinkError> {
        let n = msgs.len();
        if n == 0 {
            return Ok(());
        }
        for (topic, payload) in msgs {
            if self.client.publish(topic, QoS::AtLeastOnce, retain, payload).await.is_err() {
                // The driver has stopped; its report says why.
                while let Ok(ev) = self.events.try_recv() {
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
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
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
        Ok(())
    }

    /// Queues "offline" and a DISCONNECT and leaves the driver running to flush them; it ends
    /// when the broker closes the socket. If the process exits first, the last will says the same.
    pub(super) fn close_gracefully(mut self, status_topic: &str) {
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
