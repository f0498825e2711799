//! Cassandra sink (scylla driver, rustls). It owns the session and nothing about CQL: the
//! schema, the INSERT statements and every row come from `cql-export`, which `outpost export`
//! uses too, so a row written live and a row exported are identical.
//!
//! Writes are grouped by partition into unlogged batches (one round trip per partition, applied
//! atomically within it) in log order. Primary keys are natural (station + day + time; region +
//! valid date + publish time; ...), so resending after a crash or a lost ack upserts the same rows
//! instead of duplicating them, and a failed batch can simply be sent again whole.

use super::{Partial, Sink, SinkError};
use crate::config::{HostPort, Invalid, KeyType, Secret, Section, range};
use crate::domain::StoredRecord;
use crate::message::message;
use cql_export::{CqlValue as Cql, Row, Table};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{CqlDate, CqlTimestamp, CqlValue};
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
        ("batch_size", KeyType::Int),
    ];

    fn validate(&self) -> Result<(), Invalid> {
        cql_export::validate_keyspace(&self.keyspace).map_err(|e| Invalid::new("keyspace", e.to_string()))?;
        cql_export::keyspace_cql(&self.keyspace, &self.replication)
            .map_err(|e| Invalid::new("replication", e.to_string()))?;
        range("batch_size", self.batch_size as f64, 1.0, 10_000.0)
    }
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Keeps each batch well under Cassandra's default 50 KB batch failure threshold.
const MAX_BATCH_BYTES: usize = 20 * 1024;

pub struct CassandraSink {
    cfg: CassandraConfig,
    session: Option<Arc<Session>>,
    inserts: HashMap<Table, PreparedStatement>,
}

impl CassandraSink {
    pub fn new(cfg: CassandraConfig) -> Self {
        CassandraSink { cfg, session: None, inserts: HashMap::new() }
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
            builder = builder.tls_context(Some(Arc::new(super::upstream_tls_config())));
        }
        match tokio::time::timeout(CONNECT_TIMEOUT + Duration::from_secs(5), builder.build()).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => Err(classify(&e.to_string())),
            Err(_) => Err(SinkError::Transient("no answer from the Cassandra nodes".into())),
        }
    }
}

/// Driver errors never contain the password; authentication problems need an operator.
fn classify(text: &str) -> SinkError {
    let lower = text.to_ascii_lowercase();
    if lower.contains("authentica") || lower.contains("unauthorized") || lower.contains("credentials") {
        SinkError::Permanent(format!("Cassandra refused the credentials: {text}"))
    } else if lower.contains("syntax") || lower.contains("invalid") || lower.contains("unconfigured table") {
        SinkError::Permanent(format!("Cassandra rejected Outpost's schema or statement: {text}"))
    } else {
        SinkError::Transient(format!("Cassandra: {text}"))
    }
}

/// cql-export's value as the driver's. Null binds as null (not unset), so a newer version of a
/// row clears fields that disappeared.
pub fn to_driver(v: &Cql) -> Option<CqlValue> {
    Some(match v {
        Cql::Null => return None,
        Cql::Text(s) => CqlValue::Text(s.clone()),
        Cql::Int(i) => CqlValue::Int(*i),
        Cql::BigInt(i) => CqlValue::BigInt(*i),
        Cql::Double(d) => CqlValue::Double(*d),
        Cql::Timestamp(ms) => CqlValue::Timestamp(CqlTimestamp(*ms)),
        // CQL dates count days from 2^31 days before the unix epoch.
        Cql::Date(d) => {
            let days = (*d - chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?).num_days();
            CqlValue::Date(CqlDate((days + (1i64 << 31)) as u32))
        }
        Cql::TextList(items) => CqlValue::List(items.iter().cloned().map(CqlValue::Text).collect()),
    })
}

fn approx_bytes(row: &Row) -> usize {
    row.values
        .iter()
        .map(|v| match v {
            Cql::Text(s) => s.len() + 4,
            Cql::TextList(l) => l.iter().map(|s| s.len() + 4).sum::<usize>() + 4,
            _ => 8,
        })
        .sum()
}

/// Splits rows (in log order) into per-partition groups small enough for one batch each.
/// Groups keep the order of their first row; rows keep their order within a group.
pub fn partition_batches(rows: Vec<Row>) -> Vec<Vec<Row>> {
    let mut groups: Vec<Vec<Row>> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for row in rows {
        let key = format!("{}:{:?}", row.table.name(), row.partition());
        let open = index.get(&key).copied().filter(|&i| {
            let g = &groups[i];
            g.iter().map(approx_bytes).sum::<usize>() + approx_bytes(&row) <= MAX_BATCH_BYTES
        });
        match open {
            Some(i) => groups[i].push(row),
            None => {
                index.insert(key, groups.len());
                groups.push(vec![row]);
            }
        }
    }
    groups
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
                session.query_unpaged(cql, &[]).await.map_err(|e| classify(&e.to_string()))?;
            }
            session.await_schema_agreement().await.map_err(|e| classify(&e.to_string()))?;
        }
        let mut inserts = HashMap::new();
        for table in Table::ALL {
            let mut prepared =
                session.prepare(cql_export::insert_prepared(table, ks)).await.map_err(|e| classify(&e.to_string()))?;
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
        let mut rows = Vec::with_capacity(batch.len());
        // Kinds with no table (alert emails) are local bookkeeping, not Cassandra data.
        for rec in batch.iter().filter(|r| Table::for_kind(r.record.kind().as_str()).is_some()) {
            let row = cql_export::row(&message(rec))
                .map_err(|e| SinkError::Permanent(format!("record {} does not map to a CQL row: {e}", rec.seq)))?;
            rows.push(row);
        }
        for group in partition_batches(rows) {
            let table = group[0].table;
            let prepared =
                self.inserts.get(&table).cloned().ok_or_else(|| SinkError::Transient("not prepared".into()))?;
            let mut statement = Batch::new(BatchType::Unlogged);
            statement.set_consistency(self.consistency());
            let mut values = Vec::with_capacity(group.len());
            for row in &group {
                statement.append_statement(prepared.clone());
                values.push(row.values.iter().map(to_driver).collect::<Vec<_>>());
            }
            session.batch(&statement, values).await.map_err(|e| classify(&e.to_string()))?;
        }
        Ok(())
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

    #[test]
    fn dates_use_cql_day_numbering() {
        let d = |s: &str| to_driver(&Cql::Date(s.parse::<NaiveDate>().unwrap()));
        assert_eq!(d("1970-01-01"), Some(CqlValue::Date(CqlDate(1 << 31))));
        assert_eq!(d("1970-01-02"), Some(CqlValue::Date(CqlDate((1 << 31) + 1))));
        assert_eq!(d("1969-12-31"), Some(CqlValue::Date(CqlDate((1 << 31) - 1))));
        assert_eq!(to_driver(&Cql::Null), None);
        assert_eq!(
            to_driver(&Cql::Timestamp(1_593_398_373_000)),
            Some(CqlValue::Timestamp(CqlTimestamp(1_593_398_373_000)))
        );
    }

    fn position_row(station: &str, secs: i64) -> Row {
        let msg = serde_json::json!({
            "schema": 1, "kind": "iss.position", "id": format!("{station}/iss.position/{secs}"),
            "station": station, "seq": secs,
            "time": chrono::DateTime::from_timestamp(secs, 0).unwrap().to_rfc3339(),
            "latitude": 1.5, "longitude": 2.5,
        });
        cql_export::row(&msg).unwrap()
    }

    #[test]
    fn rows_are_grouped_by_partition_in_log_order_and_batches_stay_small() {
        let day = 86_400;
        let rows =
            vec![position_row("a", 10), position_row("a", day + 10), position_row("a", 20), position_row("b", 30)];
        let groups = partition_batches(rows);
        let keys: Vec<Vec<i64>> = groups
            .iter()
            .map(|g| {
                g.iter()
                    .map(|r| match r.get("seq") {
                        Some(Cql::BigInt(s)) => *s,
                        _ => -1,
                    })
                    .collect()
            })
            .collect();
        assert_eq!(keys, vec![vec![10, 20], vec![day + 10], vec![30]]);
        let many: Vec<Row> = (0..2000).map(|i| position_row("a", i)).collect();
        let groups = partition_batches(many);
        assert!(groups.len() > 1, "a large partition is split");
        assert!(groups.iter().all(|g| g.iter().map(approx_bytes).sum::<usize>() <= MAX_BATCH_BYTES));
        assert_eq!(groups.iter().map(Vec::len).sum::<usize>(), 2000);
    }
}
