//! Kafka sink (rskafka, pure Rust). Topics `<prefix>.iss.position`, `<prefix>.iss.tle`,
//! `<prefix>.avalanche.warning`, created if missing. Key = the record id; value = the message
//! JSON (`message.rs`); headers `outpost-replay` ("true" for records sent from backlog, "false"
//! for live ones), `outpost-schema` and `outpost-kind`; timestamp = the record's source time.
//!
//! Records are sent in log order, one produce per run of consecutive records of one topic, so a
//! failure part-way acknowledges the runs before it and nothing after. A produce whose ack is
//! lost is sent again (at-least-once; the key lets consumers and Cassandra deduplicate).
//! Offsets come from produce acks; ListOffsets "latest" is never used (tansu answers it wrongly).

use super::{Partial, Sink, SinkError};
use crate::config::{HostPort, Invalid, KeyType, Secret, Section, range};
use crate::domain::{Kind, StoredRecord};
use crate::message::{SCHEMA_VERSION, message};
use rskafka::BackoffConfig;
use rskafka::client::partition::{PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder, Credentials, SaslConfig};
use rskafka::record::Record;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// `[kafka]`: the Kafka sink; enabled when `brokers` is not empty.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    #[serde(default)]
    pub brokers: Vec<HostPort>,
    #[serde(default = "d_topic_prefix")]
    pub topic_prefix: String,
    #[serde(default = "d_one")]
    pub partitions: i32,
    #[serde(default = "d_one_i16")]
    pub replication_factor: i16,
    #[serde(default)]
    pub compression: Compression,
    #[serde(default)]
    pub tls: bool,
    #[serde(default)]
    pub sasl_mechanism: SaslMechanism,
    pub sasl_username: Option<String>,
    #[serde(default)]
    pub sasl_password: Secret,
    #[serde(default = "d_batch")]
    pub batch_size: usize,
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
fn d_batch() -> usize {
    1000
}

/// The codec of produced record batches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Lz4,
    Snappy,
    Zstd,
}

impl From<Compression> for rskafka::client::partition::Compression {
    fn from(c: Compression) -> Self {
        use rskafka::client::partition::Compression as R;
        match c {
            Compression::None => R::NoCompression,
            Compression::Gzip => R::Gzip,
            Compression::Lz4 => R::Lz4,
            Compression::Snappy => R::Snappy,
            Compression::Zstd => R::Zstd,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SaslMechanism {
    #[default]
    Plain,
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    #[serde(rename = "scram-sha-512")]
    ScramSha512,
}

impl KafkaConfig {
    pub fn enabled(&self) -> bool {
        !self.brokers.is_empty()
    }
}

impl Section for KafkaConfig {
    const KEYS: &'static [(&'static str, KeyType)] = &[
        ("brokers", KeyType::StrList),
        ("topic_prefix", KeyType::Str),
        ("partitions", KeyType::Int),
        ("replication_factor", KeyType::Int),
        ("compression", KeyType::Str),
        ("tls", KeyType::Bool),
        ("sasl_mechanism", KeyType::Str),
        ("sasl_username", KeyType::Str),
        ("sasl_password", KeyType::Secret),
        ("batch_size", KeyType::Int),
    ];

    fn validate(&self) -> Result<(), Invalid> {
        let p = &self.topic_prefix;
        if p.is_empty() || !p.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
            return Err(Invalid::new("topic_prefix", "must be letters, digits, '.', '_' or '-'"));
        }
        range("partitions", f64::from(self.partitions), 1.0, 1000.0)?;
        range("replication_factor", f64::from(self.replication_factor), 1.0, 16.0)?;
        range("batch_size", self.batch_size as f64, 1.0, 100_000.0)
    }
}

/// Bounds rskafka's internal retries. It counts only back-off sleeps and nests a connect loop
/// inside each request retry, so wall time can exceed it: the forwarder's send time-out is the
/// real bound.
const REQUEST_DEADLINE: Duration = Duration::from_secs(5);

pub struct KafkaSink {
    cfg: KafkaConfig,
    station: String,
    client: Option<Client>,
    partitions: HashMap<(Kind, i32), Arc<PartitionClient>>,
}

impl KafkaSink {
    pub fn new(cfg: KafkaConfig, station: String) -> Self {
        KafkaSink { cfg, station, client: None, partitions: HashMap::new() }
    }

    pub fn topic(&self, kind: Kind) -> String {
        format!("{}.{}", self.cfg.topic_prefix, kind.as_str())
    }

    /// Which partition a key goes to: stable across restarts (FNV-1a), so one id always lands
    /// on one partition.
    fn partition_of(&self, key: &str) -> i32 {
        let n = self.cfg.partitions.max(1) as u64;
        let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        (hash % n) as i32
    }

    async fn build_client(&self) -> Result<Client, SinkError> {
        let mut builder = ClientBuilder::new(self.cfg.brokers.iter().map(HostPort::to_string).collect())
            .client_id(format!("outpost-{}", self.station))
            .backoff_config(BackoffConfig { deadline: Some(REQUEST_DEADLINE), ..BackoffConfig::default() });
        if self.cfg.tls {
            builder = builder.tls_config(Arc::new(super::upstream_tls_config()));
        }
        if let Some(user) = &self.cfg.sasl_username {
            let creds = Credentials::new(user.clone(), self.cfg.sasl_password.expose().to_owned());
            builder = builder.sasl_config(match self.cfg.sasl_mechanism {
                SaslMechanism::ScramSha256 => SaslConfig::ScramSha256(creds),
                SaslMechanism::ScramSha512 => SaslConfig::ScramSha512(creds),
                SaslMechanism::Plain => SaslConfig::Plain(creds),
            });
        }
        match tokio::time::timeout(REQUEST_DEADLINE + Duration::from_secs(5), builder.build()).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(classify(&e)),
            Err(_) => Err(SinkError::Transient("no answer from the Kafka brokers".into())),
        }
    }
}

/// Sorts rskafka errors into "retry soon" and "an operator must act", without secrets.
fn classify(e: &rskafka::client::error::Error) -> SinkError {
    let text = e.to_string();
    let lower = text.to_ascii_lowercase();
    if lower.contains("sasl") || lower.contains("authentication") || lower.contains("authoriz") {
        SinkError::Permanent(format!("Kafka refused the credentials: {text}"))
    } else {
        SinkError::Transient(format!("Kafka: {text}"))
    }
}

impl Sink for KafkaSink {
    const NAME: &'static str = "kafka";

    async fn connect(&mut self) -> Result<(), SinkError> {
        if self.client.is_some() {
            return Ok(());
        }
        let client = self.build_client().await?;
        let controller = client.controller_client().map_err(|e| classify(&e))?;
        for kind in Kind::ALL {
            let topic = self.topic(kind);
            match controller.create_topic(&topic, self.cfg.partitions, self.cfg.replication_factor, 5_000).await {
                Ok(()) => tracing::info!(topic, "created Kafka topic"),
                Err(rskafka::client::error::Error::ServerError {
                    protocol_error: rskafka::client::error::ProtocolError::TopicAlreadyExists,
                    ..
                }) => {}
                Err(e) => return Err(classify(&e)),
            }
        }
        for kind in Kind::ALL {
            for p in 0..self.cfg.partitions {
                let pc = client
                    .partition_client(self.topic(kind), p, UnknownTopicHandling::Retry)
                    .await
                    .map_err(|e| classify(&e))?;
                self.partitions.insert((kind, p), Arc::new(pc));
            }
        }
        self.client = Some(client);
        Ok(())
    }

    async fn send(&mut self, batch: &[StoredRecord], live_from: u64) -> Result<(), Partial> {
        let compression = self.cfg.compression.into();
        let mut acked: Option<u64> = None;
        // Runs of consecutive records of one kind keep log order per topic and partition.
        for run in batch.chunk_by(|a, b| a.record.kind() == b.record.kind()) {
            let kind = run[0].record.kind();
            let mut per_partition: BTreeMap<i32, Vec<Record>> = BTreeMap::new();
            for rec in run {
                let id = rec.id();
                let value = serde_json::to_vec(&message(rec)).map_err(|e| Partial {
                    acked,
                    error: SinkError::Permanent(format!("cannot encode record {}: {e}", rec.seq)),
                })?;
                let headers = BTreeMap::from([
                    ("outpost-replay".to_owned(), (rec.seq < live_from).to_string().into_bytes()),
                    ("outpost-schema".to_owned(), SCHEMA_VERSION.to_string().into_bytes()),
                    ("outpost-kind".to_owned(), kind.as_str().as_bytes().to_vec()),
                ]);
                per_partition.entry(self.partition_of(&id)).or_default().push(Record {
                    key: Some(id.into_bytes()),
                    value: Some(value),
                    headers,
                    timestamp: rec.record.source_time(),
                });
            }
            for (p, records) in per_partition {
                let Some(pc) = self.partitions.get(&(kind, p)).cloned() else {
                    return Err(Partial { acked, error: SinkError::Transient("not connected".into()) });
                };
                if let Err(e) = pc.produce(records, compression).await {
                    return Err(Partial { acked, error: classify(&e) });
                }
            }
            acked = run.last().map(|r| r.seq);
        }
        Ok(())
    }

    fn disconnect(&mut self) {
        self.client = None;
        self.partitions.clear();
    }
}
