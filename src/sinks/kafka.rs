//! Kafka sink (rskafka, pure Rust). Topics `<prefix>.iss.position`, `<prefix>.iss.tle`,
//! `<prefix>.avalanche.warning`, created if missing. Key = the record id; value = the message
//! JSON (`message.rs`); headers `outpost-replay` ("true" for records sent from backlog, "false"
//! for live ones), `outpost-schema` and `outpost-kind`; timestamp = when Outpost produced it (the
//! record's own times are in the value). A source-time timestamp would let a topic's time-based
//! retention delete a back-fill of old warnings or TLEs as soon as the broker wrote it.
//!
//! Records are sent in log order, runs of consecutive records of one topic, each partition's
//! share of a run in produce requests of at most `max_request_bytes` (estimated conservatively,
//! before compression), so a failure part-way acknowledges the runs before it and nothing after.
//! A produce whose ack is lost is sent again (at-least-once; the key lets consumers and
//! Cassandra deduplicate). A record that can never be sent (larger than `max_request_bytes`, or
//! refused by the broker as too large or invalid on its own) is `Refused`: the forwarder sets it
//! aside and goes on. When the broker refuses a request of several records as too large (its
//! `message.max.bytes` is below `max_request_bytes`), the request is halved until the one record
//! it cannot take is found, and later requests keep to the size that worked.
//! Offsets come from produce acks; ListOffsets "latest" is never used.
//!
//! Only forwarded kinds (`Kind::is_forwarded`, docs/messages.md) have a topic and are sent.
//!
//! Errors never name the configured brokers (nor carry secrets): `classify` replaces them.

use super::{Partial, Sink, SinkError};
use crate::config::{HostPort, Invalid, KeyType, Secret, Section, range};
use crate::domain::{Kind, StoredRecord};
use crate::message::{SCHEMA_VERSION, message};
use rskafka::BackoffConfig;
use rskafka::client::partition::{PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder, Credentials, SaslConfig};
use rskafka::record::Record;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};
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
    /// Upper bound of one produce request's encoded size (estimated before compression).
    #[serde(default = "d_max_request_bytes")]
    pub max_request_bytes: usize,
    /// Create missing topics on connect (CreateTopics); when false, only check they exist.
    #[serde(default = "d_true")]
    pub create_topics: bool,
    /// A PEM file of CA certificates trusted in addition to the system roots (with `tls`).
    #[serde(default)]
    pub ca_file: Option<String>,
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
/// Below the broker's default `message.max.bytes` (1,048,588) with room for the estimate's slack.
fn d_max_request_bytes() -> usize {
    900_000
}
fn d_true() -> bool {
    true
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
        ("max_request_bytes", KeyType::Int),
        ("create_topics", KeyType::Bool),
        ("ca_file", KeyType::Str),
    ];

    fn validate(&self) -> Result<(), Invalid> {
        let p = &self.topic_prefix;
        if p.is_empty() || !p.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
            return Err(Invalid::new("topic_prefix", "must be letters, digits, '.', '_' or '-'"));
        }
        range("partitions", f64::from(self.partitions), 1.0, 1000.0)?;
        range("replication_factor", f64::from(self.replication_factor), 1.0, 16.0)?;
        range("batch_size", self.batch_size as f64, 1.0, 100_000.0)?;
        // Kafka's socket.request.max.bytes defaults to 100 MiB; below 16 KiB one warning
        // would not fit.
        range("max_request_bytes", self.max_request_bytes as f64, 16_384.0, 104_857_600.0)?;
        if self.ca_file.as_deref().is_some_and(str::is_empty) {
            return Err(Invalid::new("ca_file", "must name a PEM file"));
        }
        Ok(())
    }
}

/// Bounds rskafka's internal retries. It counts only back-off sleeps and nests a connect loop
/// inside each request retry, so wall time can exceed it: the forwarder's send time-out is the
/// real bound.
const REQUEST_DEADLINE: Duration = Duration::from_secs(5);

/// A produce request's fixed part (request and record-batch headers, client id, topic,
/// partition), over-estimated.
const REQUEST_OVERHEAD: usize = 256;
/// One record's framing in a v2 record batch: length, attributes, timestamp and offset deltas,
/// key and value lengths and the header count, each a varint at its widest.
const RECORD_OVERHEAD: usize = 5 + 1 + 10 + 5 + 5 + 5 + 5;
/// One header's framing: its key and value lengths.
const HEADER_OVERHEAD: usize = 10;

/// One record ready to produce, with its log seq and its encoded size (an upper bound).
struct Pending {
    seq: u64,
    size: usize,
    record: Record,
}

fn encoded_size(r: &Record) -> usize {
    RECORD_OVERHEAD
        + r.key.as_ref().map_or(0, Vec::len)
        + r.value.as_ref().map_or(0, Vec::len)
        + r.headers.iter().map(|(k, v)| HEADER_OVERHEAD + k.len() + v.len()).sum::<usize>()
}

/// Why producing a partition's records stopped.
enum Stop {
    /// Retry later: the records from the one that failed on were not acknowledged.
    Error(SinkError),
    /// This record can never be produced (it was taken off the queue).
    Refused { seq: u64, reason: String },
}

/// The broker's answer "this request is too large (true) or invalid (false) for what it holds":
/// a refusal of its records, not of the connection.
fn refusal(e: &rskafka::client::error::Error) -> Option<(&'static str, bool)> {
    use rskafka::client::error::{Error, ProtocolError as P};
    match e {
        Error::ServerError { protocol_error: P::MessageTooLarge, .. } => Some(("MESSAGE_TOO_LARGE", true)),
        Error::ServerError { protocol_error: P::RecordListTooLarge, .. } => Some(("RECORD_LIST_TOO_LARGE", true)),
        Error::ServerError { protocol_error: P::InvalidRecord, .. } => Some(("INVALID_RECORD", false)),
        _ => None,
    }
}

pub struct KafkaSink {
    cfg: KafkaConfig,
    station: String,
    client: Option<Client>,
    partitions: HashMap<(Kind, i32), Arc<PartitionClient>>,
    /// The request size the broker was seen to accept, once it refused a larger one as too
    /// large (its `message.max.bytes` is below `max_request_bytes`).
    learned_limit: Option<usize>,
}

impl KafkaSink {
    pub fn new(cfg: KafkaConfig, station: String) -> Self {
        KafkaSink { cfg, station, client: None, partitions: HashMap::new(), learned_limit: None }
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

    fn classify(&self, e: &rskafka::client::error::Error) -> SinkError {
        classify(e, &self.cfg.brokers)
    }

    fn tls_config(&self) -> Result<rustls::ClientConfig, SinkError> {
        let Some(path) = &self.cfg.ca_file else { return Ok(super::upstream_tls_config()) };
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        crate::install_tls_provider();
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        let bad = |why: String| SinkError::Permanent(format!("kafka.ca_file {path}: {why}"));
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(format!("cannot read it: {e}")))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(format!("not a PEM certificate: {e}")))?;
        if certs.is_empty() {
            return Err(bad("holds no PEM certificate".into()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| bad(format!("not a usable CA certificate: {e}")))?;
        }
        Ok(rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth())
    }

    async fn build_client(&self) -> Result<Client, SinkError> {
        let mut builder = ClientBuilder::new(self.cfg.brokers.iter().map(HostPort::to_string).collect())
            .client_id(format!("outpost-{}", self.station))
            .backoff_config(BackoffConfig { deadline: Some(REQUEST_DEADLINE), ..BackoffConfig::default() });
        if self.cfg.tls {
            builder = builder.tls_config(Arc::new(self.tls_config()?));
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
            Ok(Err(e)) => Err(self.classify(&e)),
            Err(_) => Err(SinkError::Transient("no answer from the Kafka brokers".into())),
        }
    }

    /// Creates the topics that are missing (when `create_topics`), then checks with metadata
    /// that every topic exists. A CreateTopics refusal (exists, not authorized) is not an
    /// error when the topic is there: a producer allowed only Write and Describe is normal.
    async fn ensure_topics(&self, client: &Client) -> Result<(), SinkError> {
        use rskafka::client::error::{Error, ProtocolError as P};
        let topics: Vec<String> = Kind::ALL.into_iter().filter(|k| k.is_forwarded()).map(|k| self.topic(k)).collect();
        let mut refused: Vec<(&str, &'static str)> = Vec::new();
        if self.cfg.create_topics {
            let controller = client.controller_client().map_err(|e| self.classify(&e))?;
            for topic in &topics {
                match controller.create_topic(topic, self.cfg.partitions, self.cfg.replication_factor, 5_000).await {
                    Ok(()) => tracing::info!(topic, "created Kafka topic"),
                    Err(Error::ServerError { protocol_error: P::TopicAlreadyExists, .. }) => {}
                    Err(Error::ServerError { protocol_error: P::TopicAuthorizationFailed, .. }) => {
                        refused.push((topic, "TOPIC_AUTHORIZATION_FAILED"));
                    }
                    Err(Error::ServerError { protocol_error: P::ClusterAuthorizationFailed, .. }) => {
                        refused.push((topic, "CLUSTER_AUTHORIZATION_FAILED"));
                    }
                    Err(e) => return Err(self.classify(&e)),
                }
            }
            if refused.is_empty() {
                // Created or already there; a new topic's metadata may lag, and partition
                // clients wait for it.
                return Ok(());
            }
        }
        let existing = client.list_topics().await.map_err(|e| self.classify(&e))?;
        for topic in &topics {
            if existing.iter().any(|t| &t.name == topic) {
                continue;
            }
            return Err(SinkError::Permanent(match refused.iter().find(|(t, _)| t == topic) {
                Some((_, code)) => format!(
                    "Kafka topic {topic} does not exist (or this user may not Describe it) and creating it \
                     was refused ({code}): create it on the cluster, or grant this user Create"
                ),
                None => format!(
                    "Kafka topic {topic} does not exist (or this user may not Describe it) and \
                     kafka.create_topics = false: create it on the cluster, or set kafka.create_topics = true"
                ),
            }));
        }
        Ok(())
    }

    /// Produces the front of `queue` (all of it, or the records before seq `before`) in log
    /// order, in requests of at most the size limit, taking each acknowledged record off.
    async fn produce_queue(
        &mut self,
        pc: &PartitionClient,
        queue: &mut VecDeque<Pending>,
        before: Option<u64>,
    ) -> Result<(), Stop> {
        let compression = self.cfg.compression.into();
        let due = |p: &Pending| before.is_none_or(|b| p.seq < b);
        // Halving to find the one invalid record among many: for this call only.
        let mut bisect: Option<usize> = None;
        while queue.front().is_some_and(due) {
            let limit = [self.learned_limit, bisect].into_iter().flatten().fold(self.cfg.max_request_bytes, usize::min);
            // As many due records as fit (always at least one).
            let (mut n, mut bytes) = (0, REQUEST_OVERHEAD);
            for p in queue.iter().take_while(|p| due(p)) {
                if n > 0 && bytes + p.size > limit {
                    break;
                }
                n += 1;
                bytes += p.size;
            }
            if n == 1 && bytes > self.cfg.max_request_bytes {
                let p = queue.pop_front().expect("one due record");
                return Err(Stop::Refused {
                    seq: p.seq,
                    reason: format!(
                        "its Kafka request would be about {bytes} bytes, over kafka.max_request_bytes = {}",
                        self.cfg.max_request_bytes
                    ),
                });
            }
            let records: Vec<Record> = queue.iter().take(n).map(|p| p.record.clone()).collect();
            match pc.produce(records, compression).await {
                Ok(_) => {
                    queue.drain(..n);
                }
                Err(e) => match refusal(&e) {
                    Some((code, _)) if n == 1 => {
                        let p = queue.pop_front().expect("one due record");
                        return Err(Stop::Refused {
                            seq: p.seq,
                            reason: format!("the Kafka broker refused it ({code}; about {bytes} bytes)"),
                        });
                    }
                    Some((code, size)) => {
                        let half = (bytes / 2).max(REQUEST_OVERHEAD + 1);
                        if size {
                            // The broker's limit is below ours: halve until it takes them, and
                            // keep to that size.
                            tracing::warn!(
                                bytes,
                                code,
                                "the Kafka broker refused a produce request as too large; sending at most {half} bytes per request"
                            );
                            self.learned_limit = Some(half);
                        } else {
                            bisect = Some(half);
                        }
                    }
                    None => return Err(Stop::Error(self.classify(&e))),
                },
            }
        }
        Ok(())
    }
}

/// Sorts rskafka errors into "retry soon" and "an operator must act", without secrets and
/// without the configured broker addresses (rskafka's texts name them).
fn classify(e: &rskafka::client::error::Error, brokers: &[HostPort]) -> SinkError {
    let text = sanitize(&e.to_string(), brokers);
    let lower = text.to_ascii_lowercase();
    if lower.contains("sasl") || lower.contains("authentication") || lower.contains("authoriz") {
        SinkError::Permanent(format!("Kafka refused the credentials: {text}"))
    } else if lower.contains("certificate") || lower.contains("invalid hostname") {
        SinkError::Permanent(format!("Kafka TLS: {text}"))
    } else {
        SinkError::Transient(format!("Kafka: {text}"))
    }
}

/// `text` with every configured broker (as `host:port`, then the bare host) replaced by
/// `<broker>`. Hosts shorter than 3 characters are left alone (they would mangle the text).
fn sanitize(text: &str, brokers: &[HostPort]) -> String {
    let mut out = text.to_owned();
    let mut needles: Vec<String> = brokers.iter().flat_map(|b| [b.to_string(), b.host.clone()]).collect();
    // Longest first, so a host:port is replaced whole before its host.
    needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
    for n in needles.iter().filter(|n| n.len() >= 3) {
        out = out.replace(n.as_str(), "<broker>");
    }
    out
}

impl Sink for KafkaSink {
    const NAME: &'static str = "kafka";

    async fn connect(&mut self) -> Result<(), SinkError> {
        if self.client.is_some() {
            return Ok(());
        }
        let client = self.build_client().await?;
        self.ensure_topics(&client).await?;
        for kind in Kind::ALL.into_iter().filter(|k| k.is_forwarded()) {
            for p in 0..self.cfg.partitions {
                let pc = client
                    .partition_client(self.topic(kind), p, UnknownTopicHandling::Retry)
                    .await
                    .map_err(|e| self.classify(&e))?;
                self.partitions.insert((kind, p), Arc::new(pc));
            }
        }
        self.client = Some(client);
        Ok(())
    }

    async fn send(&mut self, batch: &[StoredRecord], live_from: u64) -> Result<(), Partial> {
        let mut acked: Option<u64> = None;
        let produced_at = chrono::Utc::now();
        // Runs of consecutive records of one kind keep log order per topic and partition.
        for run in batch.chunk_by(|a, b| a.record.kind() == b.record.kind()) {
            let kind = run[0].record.kind();
            if !kind.is_forwarded() {
                acked = run.last().map(|r| r.seq);
                continue;
            }
            let mut per_partition: BTreeMap<i32, VecDeque<Pending>> = BTreeMap::new();
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
                let partition = self.partition_of(&id);
                let record = Record { key: Some(id.into_bytes()), value: Some(value), headers, timestamp: produced_at };
                let size = encoded_size(&record);
                per_partition.entry(partition).or_default().push_back(Pending { seq: rec.seq, size, record });
            }
            let mut refused: Option<(u64, String)> = None;
            for (p, queue) in per_partition.iter_mut() {
                let Some(pc) = self.partitions.get(&(kind, *p)).cloned() else {
                    return Err(Partial { acked, error: SinkError::Transient("not connected".into()) });
                };
                match self.produce_queue(&pc, queue, None).await {
                    Ok(()) => {}
                    Err(Stop::Error(error)) => return Err(Partial { acked, error }),
                    Err(Stop::Refused { seq, reason }) => {
                        refused = Some((seq, reason));
                        break;
                    }
                }
            }
            if let Some((mut seq, mut reason)) = refused {
                // Every record before the refused one must be acknowledged: the other
                // partitions' earlier records (a refusal among those wins: it is earlier).
                for (p, queue) in per_partition.iter_mut() {
                    let Some(pc) = self.partitions.get(&(kind, *p)).cloned() else {
                        return Err(Partial { acked, error: SinkError::Transient("not connected".into()) });
                    };
                    match self.produce_queue(&pc, queue, Some(seq)).await {
                        Ok(()) => {}
                        Err(Stop::Error(error)) => return Err(Partial { acked, error }),
                        Err(Stop::Refused { seq: s, reason: r }) => (seq, reason) = (s, r),
                    }
                }
                let before = batch.iter().take_while(|r| r.seq < seq).last().map(|r| r.seq);
                return Err(Partial { acked: before, error: SinkError::Refused { seq, reason } });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_do_not_name_the_brokers() {
        let brokers: Vec<HostPort> =
            vec!["kafka-1.example.net:9093".parse().unwrap(), "10.1.2.3:9092".parse().unwrap()];
        let text = "error connecting to broker \"kafka-1.example.net:9093\": IO Error: refused (10.1.2.3:9092, \
                    resolved from kafka-1.example.net)";
        let clean = sanitize(text, &brokers);
        assert!(!clean.contains("kafka-1.example.net") && !clean.contains("10.1.2.3"), "{clean}");
        assert!(clean.contains("<broker>"));
    }

    #[test]
    fn a_record_size_estimate_is_an_upper_bound_of_its_encoding() {
        let r = Record {
            key: Some(b"it/iss.position/1".to_vec()),
            value: Some(vec![b'x'; 300]),
            headers: BTreeMap::from([("outpost-kind".to_owned(), b"iss.position".to_vec())]),
            timestamp: chrono::Utc::now(),
        };
        // A v2 record: 300-byte value, 17-byte key, one header of 12 + 12 bytes.
        assert!(encoded_size(&r) >= 300 + 17 + 24 + 1 + 2 + 1 + 1 + 2 + 1 + 1 + 2);
    }
}
