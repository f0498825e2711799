//! Cassandra sink (scylla driver, rustls). It owns the session and nothing about CQL: the
//! schema, the INSERT statements and every row come from `cql-export`, which `outpost export`
//! uses too, so a row written live and a row exported are identical.
//!
//! Each row is one prepared single-partition INSERT; up to `IN_FLIGHT` of them run at once (no
//! batches: nothing for the coordinator to split, no `batch_size_warn_threshold`). Absent values
//! are bound as *unset*, never null, so an insert writes no tombstone. Primary keys are natural
//! (station + day + time; region + valid date + publish time; ...), so resending after a crash or
//! a lost ack upserts the same rows instead of duplicating them. A failed send reports the longest
//! prefix of the batch that was written; a record cql-export cannot map is `Refused` after the
//! records before it were written.

use super::{Partial, Sink, SinkError};
use crate::config::{HostPort, Invalid, KeyType, Redactor, Secret, Section, range};
use crate::domain::StoredRecord;
use crate::message::message;
use cql_export::{CqlValue as Cql, Row, Table};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::errors::{DbError, ExecutionError, NewSessionError, RequestAttemptError};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{CqlDate, CqlTimestamp, CqlValue, MaybeUnset};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// `[cassandra]`: the Cassandra sink; enabled when `nodes` is not empty. The schema lives in
/// cql-export, which also checks the keyspace and replication.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CassandraConfig {
    #[serde(default)]
    pub nodes: Vec<HostPort>,
    #[serde(default = "d_keyspace")]
    pub keyspace: String,
    /// The keyspace's replication map, used when Outpost creates it.
    #[serde(default = "d_replication")]
    pub replication: String,
    pub username: Option<String>,
    #[serde(default)]
    pub password: Secret,
    #[serde(default)]
    pub consistency: Consistency,
    #[serde(default = "d_true")]
    pub create_schema: bool,
    #[serde(default)]
    pub tls: bool,
    /// A PEM file of CA certificates trusted for TLS in addition to the system's roots.
    #[serde(default)]
    pub ca_file: Option<String>,
    #[serde(default = "d_batch")]
    pub batch_size: usize,
}

fn d_keyspace() -> String {
    "outpost".into()
}
fn d_replication() -> String {
    cql_export::DEFAULT_REPLICATION.into()
}
fn d_true() -> bool {
    true
}
fn d_batch() -> usize {
    500
}

/// The consistency level of every write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Consistency {
    One,
    Two,
    Three,
    Quorum,
    All,
    #[default]
    LocalQuorum,
    EachQuorum,
    LocalOne,
}

impl From<Consistency> for scylla::statement::Consistency {
    fn from(c: Consistency) -> Self {
        use scylla::statement::Consistency as S;
        match c {
            Consistency::One => S::One,
            Consistency::Two => S::Two,
            Consistency::Three => S::Three,
            Consistency::Quorum => S::Quorum,
            Consistency::All => S::All,
            Consistency::LocalQuorum => S::LocalQuorum,
            Consistency::EachQuorum => S::EachQuorum,
            Consistency::LocalOne => S::LocalOne,
        }
    }
}

impl CassandraConfig {
    pub fn enabled(&self) -> bool {
        !self.nodes.is_empty()
    }
}

impl Section for CassandraConfig {
    const KEYS: &'static [(&'static str, KeyType)] = &[
        ("nodes", KeyType::StrList),
        ("keyspace", KeyType::Str),
        ("replication", KeyType::Str),
        ("username", KeyType::Str),
        ("password", KeyType::Secret),
        ("consistency", KeyType::Str),
        ("create_schema", KeyType::Bool),
        ("tls", KeyType::Bool),
        ("ca_file", KeyType::Str),
        ("batch_size", KeyType::Int),
    ];

    fn validate(&self) -> Result<(), Invalid> {
        cql_export::validate_keyspace(&self.keyspace).map_err(|e| Invalid::new("keyspace", e.to_string()))?;
        cql_export::keyspace_cql(&self.keyspace, &self.replication)
            .map_err(|e| Invalid::new("replication", e.to_string()))?;
        if self.ca_file.is_some() && !self.tls {
            return Err(Invalid::new("ca_file", "is only used with tls = true".to_owned()));
        }
        range("batch_size", self.batch_size as f64, 1.0, 10_000.0)
    }
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Single-partition INSERTs in flight at once during one send.
pub const IN_FLIGHT: usize = 64;

pub struct CassandraSink {
    cfg: CassandraConfig,
    session: Option<Arc<Session>>,
    inserts: HashMap<Table, PreparedStatement>,
    /// The node names out of an error's text before it is classified (see `classify`).
    nodes: Redactor,
}

impl CassandraSink {
    pub fn new(cfg: CassandraConfig) -> Self {
        let nodes = cfg.nodes.iter().fold(Redactor::new(), |r, n| r.host_port(n, "<cassandra node>"));
        CassandraSink { cfg, session: None, inserts: HashMap::new(), nodes }
    }

    fn consistency(&self) -> scylla::statement::Consistency {
        self.cfg.consistency.into()
    }

    async fn open_session(&self) -> Result<Session, SinkError> {
        let mut builder = SessionBuilder::new()
            .known_nodes(self.cfg.nodes.iter().map(HostPort::to_string))
            .connection_timeout(CONNECT_TIMEOUT);
        if let Some(user) = &self.cfg.username {
            builder = builder.user(user, self.cfg.password.expose());
        }
        if self.cfg.tls {
            builder = builder.tls_context(Some(Arc::new(tls_config(&self.cfg)?)));
        }
        match tokio::time::timeout(CONNECT_TIMEOUT + Duration::from_secs(5), builder.build()).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => Err(classify_session(&e, &self.nodes)),
            Err(_) => Err(SinkError::Transient("no answer from the Cassandra nodes".into())),
        }
    }
}

/// TLS to the nodes: the system's CA roots plus `ca_file`, and every node's certificate checked
/// against the host names of `nodes`. The driver connects to each node by its IP address (and
/// tells rustls that address), so without this a certificate issued for a host name could
/// never be accepted.
pub fn tls_config(cfg: &CassandraConfig) -> Result<rustls::ClientConfig, SinkError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    crate::install_tls_provider();
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = &cfg.ca_file {
        let bad = |what: String| SinkError::Permanent(format!("cassandra.ca_file {path}: {what}"));
        let pem = std::fs::read(path).map_err(|e| bad(format!("cannot be read: {e}")))?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(format!("is not a PEM file: {e}")))?;
        if certs.is_empty() {
            return Err(bad("holds no PEM certificate".into()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| bad(format!("holds a certificate that cannot be a CA: {e}")))?;
        }
    }
    let setup = |e: String| SinkError::Permanent(format!("TLS setup: {e}"));
    let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| setup(e.to_string()))?;
    let mut names: Vec<ServerName<'static>> = Vec::new();
    for node in &cfg.nodes {
        let name = ServerName::try_from(node.host.clone())
            .map_err(|_| setup("a host of cassandra.nodes is not a valid TLS server name".into()))?;
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| setup(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(NodeNames { inner, names }))
        .with_no_client_auth())
}

/// WebPKI verification (chain, validity, key usage) against the configured host names instead
/// of the address the driver dialled: a certificate is accepted when it is valid for one of them.
#[derive(Debug)]
struct NodeNames {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    names: Vec<rustls::pki_types::ServerName<'static>>,
}

impl rustls::client::danger::ServerCertVerifier for NodeNames {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _dialled: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use rustls::CertificateError::{NotValidForName, NotValidForNameContext};
        let mut last = rustls::Error::InvalidCertificate(NotValidForName);
        for name in &self.names {
            match self.inner.verify_server_cert(end_entity, intermediates, name, ocsp_response, now) {
                Ok(verified) => return Ok(verified),
                Err(e @ rustls::Error::InvalidCertificate(NotValidForName | NotValidForNameContext { .. })) => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A failed session: no node name resolved is a connection error like any other (DNS may come
/// back; retried with back-off), the rest is told from its text.
fn classify_session(e: &NewSessionError, nodes: &Redactor) -> SinkError {
    match e {
        NewSessionError::FailedToResolveAnyHostname(_) => SinkError::Transient(format!("Cassandra: {e}")),
        _ => classify(&e.to_string(), nodes),
    }
}

/// A connect or schema error from its text. Driver errors never contain the password;
/// authentication, certificate and schema problems need an operator. Certificate errors are
/// replaced by a fixed text (rustls names the host names involved). The words are looked for
/// with the `nodes` taken out: a node named `cassandra.invalid` or `syntax.lan` is no refusal.
fn classify(text: &str, nodes: &Redactor) -> SinkError {
    let lower = nodes.apply(text).to_ascii_lowercase();
    if lower.contains("unknownissuer") || lower.contains("unknown issuer") {
        SinkError::Permanent(
            "TLS: the node's certificate is not signed by a trusted CA (cassandra.ca_file names a private CA)".into(),
        )
    } else if lower.contains("notvalidforname") || lower.contains("not valid for name") {
        SinkError::Permanent("TLS: the node's certificate is not valid for the host names of cassandra.nodes".into())
    } else if lower.contains("invalid peer certificate") {
        SinkError::Permanent("TLS: the node's certificate was refused (expired, or not for a server)".into())
    } else if lower.contains("authentica") || lower.contains("unauthorized") || lower.contains("credentials") {
        SinkError::Permanent(format!("Cassandra refused the credentials: {text}"))
    } else if lower.contains("keyspace") && (lower.contains("does not exist") || lower.contains("not exist")) {
        SinkError::Permanent(format!("the keyspace does not exist (create it, or set create_schema = true): {text}"))
    } else if lower.contains("syntax") || lower.contains("invalid") || lower.contains("unconfigured table") {
        SinkError::Permanent(format!("Cassandra rejected Outpost's schema or statement: {text}"))
    } else {
        SinkError::Transient(format!("Cassandra: {text}"))
    }
}

/// A failed INSERT of the record `seq`. The server's `Invalid` is about that record's values
/// (e.g. an oversized mutation), unless it names the schema; overload, time-outs and broken
/// connections are transient.
fn classify_write(seq: u64, e: &ExecutionError) -> SinkError {
    if let ExecutionError::LastAttemptError(RequestAttemptError::DbError(db, msg)) = e {
        let lower = msg.to_ascii_lowercase();
        let schema = ["unconfigured table", "keyspace", "undefined column", "unknown identifier"];
        return match db {
            DbError::Invalid if !schema.iter().any(|s| lower.contains(s)) => {
                SinkError::Refused { seq, reason: format!("Cassandra rejected the row: {msg}") }
            }
            DbError::Invalid | DbError::SyntaxError | DbError::ConfigError => {
                SinkError::Permanent(format!("Cassandra rejected Outpost's statement: {msg}"))
            }
            DbError::Unauthorized | DbError::AuthenticationError => {
                SinkError::Permanent(format!("Cassandra refused the write: {msg}"))
            }
            _ => SinkError::Transient(format!("Cassandra: {e}")),
        };
    }
    SinkError::Transient(format!("Cassandra: {e}"))
}

/// cql-export's value as the driver's. Null binds as *unset*: the column is not written at all,
/// where a null would write a tombstone cell. Rows are keyed by their record's identity, so an
/// upsert always carries the same values and never needs to clear a column.
pub fn to_driver(v: &Cql) -> MaybeUnset<CqlValue> {
    MaybeUnset::Set(match v {
        Cql::Null => return MaybeUnset::Unset,
        Cql::Text(s) => CqlValue::Text(s.clone()),
        Cql::Int(i) => CqlValue::Int(*i),
        Cql::BigInt(i) => CqlValue::BigInt(*i),
        Cql::Double(d) => CqlValue::Double(*d),
        Cql::Timestamp(ms) => CqlValue::Timestamp(CqlTimestamp(*ms)),
        // CQL dates count days from 2^31 days before the unix epoch (1970-01-01, chrono's default).
        Cql::Date(d) => {
            let days = d.signed_duration_since(chrono::NaiveDate::default()).num_days();
            CqlValue::Date(CqlDate((days + (1i64 << 31)) as u32))
        }
        Cql::TextList(items) => CqlValue::List(items.iter().cloned().map(CqlValue::Text).collect()),
    })
}

/// Writes `rows` (batch index, row; in log order) with up to `IN_FLIGHT` INSERTs at once. On
/// failure, returns the lowest batch index that was not written: every row before it was, since
/// rows start in order and every started write is awaited before returning.
async fn write_rows(
    session: &Arc<Session>,
    inserts: &HashMap<Table, PreparedStatement>,
    batch: &[StoredRecord],
    rows: Vec<(usize, Row)>,
) -> Result<(), (usize, SinkError)> {
    let mut tasks = tokio::task::JoinSet::new();
    let mut index_of = HashMap::new();
    let mut failed: Option<(usize, SinkError)> = None;
    let fail = |i: usize, e: SinkError, failed: &mut Option<(usize, SinkError)>| {
        if failed.as_ref().is_none_or(|(j, _)| i < *j) {
            *failed = Some((i, e));
        }
    };
    let mut rows = rows.into_iter();
    loop {
        while failed.is_none() && tasks.len() < IN_FLIGHT {
            let Some((i, row)) = rows.next() else { break };
            let Some(prepared) = inserts.get(&row.table).cloned() else {
                fail(i, SinkError::Transient("not prepared".into()), &mut failed);
                break;
            };
            let session = session.clone();
            let values: Vec<MaybeUnset<CqlValue>> = row.values.iter().map(to_driver).collect();
            let handle = tasks.spawn(async move { session.execute_unpaged(&prepared, values).await.map(drop) });
            index_of.insert(handle.id(), i);
        }
        let Some(done) = tasks.join_next_with_id().await else { break };
        match done {
            Ok((_, Ok(()))) => {}
            Ok((id, Err(e))) => {
                let i = index_of[&id];
                fail(i, classify_write(batch[i].seq, &e), &mut failed);
            }
            Err(e) => {
                let i = index_of[&e.id()];
                fail(i, SinkError::Transient(format!("a Cassandra write task failed: {e}")), &mut failed);
            }
        }
    }
    failed.map_or(Ok(()), Err)
}

/// The `Partial` of a send that stopped at batch index `i`: everything before it was written.
fn stopped_at(batch: &[StoredRecord], i: usize, error: SinkError) -> Partial {
    Partial { acked: i.checked_sub(1).map(|j| batch[j].seq), error }
}

impl Sink for CassandraSink {
    const NAME: &'static str = "cassandra";

    async fn connect(&mut self) -> Result<(), SinkError> {
        if self.session.is_some() {
            return Ok(());
        }
        let session = self.open_session().await?;
        let ks = &self.cfg.keyspace;
        if self.cfg.create_schema {
            let bad = |e: cql_export::MappingError| SinkError::Permanent(format!("schema: {e}"));
            let mut statements = vec![cql_export::keyspace_cql(ks, &self.cfg.replication).map_err(bad)?];
            for table in Table::ALL {
                statements.push(table.create_cql(ks).map_err(bad)?);
            }
            for cql in statements {
                session.query_unpaged(cql, &[]).await.map_err(|e| classify(&e.to_string(), &self.nodes))?;
            }
            session.await_schema_agreement().await.map_err(|e| classify(&e.to_string(), &self.nodes))?;
        }
        let mut inserts = HashMap::new();
        for table in Table::ALL {
            let mut prepared = session
                .prepare(cql_export::insert_prepared(table, ks))
                .await
                .map_err(|e| classify(&e.to_string(), &self.nodes))?;
            prepared.set_consistency(self.consistency());
            inserts.insert(table, prepared);
        }
        self.inserts = inserts;
        self.session = Some(Arc::new(session));
        Ok(())
    }

    async fn send(&mut self, batch: &[StoredRecord], _live_from: u64) -> Result<(), Partial> {
        let Some(session) = self.session.clone() else {
            return Err(SinkError::Transient("not connected".into()).into());
        };
        // The rows in log order, up to the first record that does not map (refused once the
        // rows before it are written). Kinds with no table (alert emails) are local bookkeeping.
        let mut rows = Vec::with_capacity(batch.len());
        let mut refused = None;
        for (i, rec) in batch.iter().enumerate() {
            if Table::for_kind(rec.record.kind().as_str()).is_none() {
                continue;
            }
            match cql_export::row(&message(rec)) {
                Ok(row) => rows.push((i, row)),
                Err(e) => {
                    let reason = format!("it does not map to a CQL row: {e}");
                    refused = Some((i, SinkError::Refused { seq: rec.seq, reason }));
                    break;
                }
            }
        }
        if let Err((i, error)) = write_rows(&session, &self.inserts, batch, rows).await {
            return Err(stopped_at(batch, i, error));
        }
        match refused {
            Some((i, error)) => Err(stopped_at(batch, i, error)),
            None => Ok(()),
        }
    }

    fn disconnect(&mut self) {
        self.session = None;
        self.inserts.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn set(v: MaybeUnset<CqlValue>) -> Option<CqlValue> {
        match v {
            MaybeUnset::Set(v) => Some(v),
            MaybeUnset::Unset => None,
        }
    }

    #[test]
    fn dates_use_cql_day_numbering_and_null_is_unset() {
        let d = |s: &str| set(to_driver(&Cql::Date(s.parse::<NaiveDate>().unwrap())));
        assert_eq!(d("1970-01-01"), Some(CqlValue::Date(CqlDate(1 << 31))));
        assert_eq!(d("1970-01-02"), Some(CqlValue::Date(CqlDate((1 << 31) + 1))));
        assert_eq!(d("1969-12-31"), Some(CqlValue::Date(CqlDate((1 << 31) - 1))));
        assert!(matches!(to_driver(&Cql::Null), MaybeUnset::Unset), "absent values are unset, not null");
        assert_eq!(
            set(to_driver(&Cql::Timestamp(1_593_398_373_000))),
            Some(CqlValue::Timestamp(CqlTimestamp(1_593_398_373_000)))
        );
        assert_eq!(
            set(to_driver(&Cql::TextList(vec![]))),
            Some(CqlValue::List(vec![])),
            "an empty frozen list is a value, not a deletion"
        );
    }

    #[test]
    fn certificate_errors_are_permanent_and_name_no_host() {
        let none = Redactor::new();
        let unknown = classify("Control connection pool error: invalid peer certificate: UnknownIssuer", &none);
        assert!(matches!(&unknown, SinkError::Permanent(t) if t.contains("ca_file")), "{unknown:?}");
        let name = classify(
            "invalid peer certificate: certificate not valid for name \"vm\"; certificate is only valid for DnsName(\"localhost\")",
            &none,
        );
        assert!(matches!(&name, SinkError::Permanent(t) if !t.contains("vm") && !t.contains("localhost")), "{name:?}");
    }

    #[test]
    fn an_unresolvable_or_unreachable_node_is_a_connection_error_not_a_refusal() {
        let sink =
            CassandraSink::new(toml::from_str("nodes = [\"cassandra.invalid:9042\", \"syntax.lan:9042\"]").unwrap());
        let unresolved = NewSessionError::FailedToResolveAnyHostname(vec!["cassandra.invalid:9042".into()]);
        let e = classify_session(&unresolved, &sink.nodes);
        assert!(matches!(&e, SinkError::Transient(t) if t.contains("resolve")), "{e:?}");
        // The same words in a text the driver builds from the node names.
        let e = classify(&unresolved.to_string(), &sink.nodes);
        assert!(matches!(e, SinkError::Transient(_)), "{e:?}");
        let refused = "Control connection pool error: syntax.lan:9042: Connection refused (os error 111)";
        assert!(matches!(classify(refused, &sink.nodes), SinkError::Transient(_)));
        // What the server says is still told apart.
        let schema = "Database returned an error: The query is syntactically correct but invalid, Error message: \
                      unconfigured table iss_track";
        assert!(matches!(classify(schema, &sink.nodes), SinkError::Permanent(t) if t.contains("schema")));
        let auth = "Authentication failed: Provided username outpost and/or password are incorrect";
        assert!(matches!(classify(auth, &sink.nodes), SinkError::Permanent(t) if t.contains("credentials")));
    }

    #[test]
    fn a_ca_file_needs_tls_and_must_hold_a_certificate() {
        let mut cfg: CassandraConfig =
            toml::from_str("nodes = [\"localhost:9142\"]\nca_file = \"/nonexistent.pem\"").unwrap();
        assert!(cfg.validate().is_err(), "ca_file without tls");
        cfg.tls = true;
        assert!(cfg.validate().is_ok());
        let err = tls_config(&cfg).unwrap_err();
        assert!(matches!(&err, SinkError::Permanent(t) if t.contains("cannot be read")), "{err:?}");
        let empty = tempfile::NamedTempFile::new().unwrap();
        cfg.ca_file = Some(empty.path().display().to_string());
        assert!(matches!(tls_config(&cfg), Err(SinkError::Permanent(t)) if t.contains("no PEM certificate")));
    }
}
