//! The tables, their columns and keys, and the schema statements from `schema/*.cql`.

use crate::MappingError;

const KEYSPACE_CQL: &str = include_str!("../schema/keyspace.cql");
const ISS_POSITION_CQL: &str = include_str!("../schema/iss_position.cql");
const ISS_TLE_CQL: &str = include_str!("../schema/iss_tle.cql");
const AVALANCHE_WARNING_CQL: &str = include_str!("../schema/avalanche_warning.cql");
const WEATHER_DAILY_CQL: &str = include_str!("../schema/weather_daily.cql");

/// The replication map `schema_cql` callers use unless configured otherwise (one node).
pub const DEFAULT_REPLICATION: &str = "{'class': 'SimpleStrategy', 'replication_factor': 1}";

/// One Cassandra table; each message kind maps to exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    IssPosition,
    IssTle,
    AvalancheWarning,
    WeatherDaily,
}

impl Table {
    pub const ALL: [Table; 4] = [Table::IssPosition, Table::IssTle, Table::AvalancheWarning, Table::WeatherDaily];

    pub fn name(self) -> &'static str {
        match self {
            Table::IssPosition => "iss_position",
            Table::IssTle => "iss_tle",
            Table::AvalancheWarning => "avalanche_warning",
            Table::WeatherDaily => "weather_daily",
        }
    }

    /// The message kind whose rows this table holds.
    pub fn kind(self) -> &'static str {
        match self {
            Table::IssPosition => "iss.position",
            Table::IssTle => "iss.tle",
            Table::AvalancheWarning => "avalanche.warning",
            Table::WeatherDaily => "weather.daily",
        }
    }

    pub fn for_kind(kind: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.kind() == kind)
    }

    /// Every column in declaration order: the partition key first, then the clustering columns,
    /// then the rest. `Row::values` follows this order.
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            Table::IssPosition => &[
                "station",
                "day",
                "time",
                "latitude",
                "longitude",
                "altitude_km",
                "velocity_kmh",
                "visibility",
                "record_id",
                "seq",
            ],
            Table::IssTle => &["station", "norad_id", "epoch", "name", "line1", "line2", "record_id", "seq"],
            Table::AvalancheWarning => &[
                "region_id",
                "valid_date",
                "publish_time",
                "reg_id",
                "region_name",
                "region_type",
                "lang",
                "danger_level",
                "valid_from",
                "valid_to",
                "next_warning_time",
                "main_text",
                "avalanche_danger",
                "advice",
                "problems",
                "station",
                "record_id",
                "seq",
            ],
            Table::WeatherDaily => &[
                "region_id",
                "date",
                "fetched_at",
                "snowfall_max_cm",
                "wind_speed_max_kmh",
                "wind_direction_deg",
                "wind_gusts_max_kmh",
                "temperature_min_c",
                "temperature_max_c",
                "rain_max_mm",
                "points",
                "station",
                "record_id",
                "seq",
            ],
        }
    }

    /// The CQL type of each column, parallel to `columns()`.
    pub fn column_types(self) -> &'static [&'static str] {
        match self {
            Table::IssPosition => {
                &["text", "date", "timestamp", "double", "double", "double", "double", "text", "text", "bigint"]
            }
            Table::IssTle => &["text", "int", "timestamp", "text", "text", "text", "text", "bigint"],
            Table::AvalancheWarning => &[
                "int",
                "date",
                "timestamp",
                "bigint",
                "text",
                "text",
                "int",
                "int",
                "timestamp",
                "timestamp",
                "timestamp",
                "text",
                "text",
                "frozen<list<text>>",
                "text",
                "text",
                "text",
                "bigint",
            ],
            Table::WeatherDaily => &[
                "int",
                "date",
                "timestamp",
                "double",
                "double",
                "double",
                "double",
                "double",
                "double",
                "double",
                "text",
                "text",
                "text",
                "bigint",
            ],
        }
    }

    /// The partition key columns (a prefix of `columns()`).
    pub fn partition_key(self) -> &'static [&'static str] {
        match self {
            Table::IssPosition => &["station", "day"],
            Table::IssTle => &["station", "norad_id"],
            Table::AvalancheWarning => &["region_id"],
            Table::WeatherDaily => &["region_id"],
        }
    }

    /// The clustering columns, in clustering order (they follow the partition key in `columns()`).
    pub fn clustering_key(self) -> &'static [&'static str] {
        match self {
            Table::IssPosition => &["time"],
            Table::IssTle => &["epoch"],
            Table::AvalancheWarning => &["valid_date", "publish_time", "reg_id"],
            Table::WeatherDaily => &["date", "fetched_at"],
        }
    }

    /// The number of primary key columns (partition key + clustering columns).
    pub fn primary_key_len(self) -> usize {
        self.partition_key().len() + self.clustering_key().len()
    }

    /// This table's `schema/<name>.cql` as shipped, with its comments and `{keyspace}` placeholder.
    pub fn schema_file(self) -> &'static str {
        match self {
            Table::IssPosition => ISS_POSITION_CQL,
            Table::IssTle => ISS_TLE_CQL,
            Table::AvalancheWarning => AVALANCHE_WARNING_CQL,
            Table::WeatherDaily => WEATHER_DAILY_CQL,
        }
    }

    /// The `CREATE TABLE IF NOT EXISTS` statement for `keyspace`, one statement without comments,
    /// ready for a driver's `query`.
    pub fn create_cql(self, keyspace: &str) -> Result<String, MappingError> {
        validate_keyspace(keyspace)?;
        Ok(statement(self.schema_file()).replace("{keyspace}", keyspace))
    }
}

/// The `CREATE KEYSPACE IF NOT EXISTS` statement (one statement, no comments).
///
/// `replication` is the CQL map literal, e.g. [`DEFAULT_REPLICATION`]; it must be one `{...}` map
/// and may not contain `;`.
pub fn keyspace_cql(keyspace: &str, replication: &str) -> Result<String, MappingError> {
    validate_keyspace(keyspace)?;
    let replication = replication.trim();
    if !(replication.starts_with('{') && replication.ends_with('}')) || replication.contains(';') {
        return Err(MappingError::BadReplication(replication.to_owned()));
    }
    Ok(statement(KEYSPACE_CQL).replace("{keyspace}", keyspace).replace("{replication}", replication))
}

/// The whole schema for `cqlsh -f`: the keyspace, then every table.
pub fn schema_cql(keyspace: &str, replication: &str) -> Result<String, MappingError> {
    let mut out =
        format!("-- Outpost Cassandra schema for message schema {}, written by cql-export.\n\n", crate::SCHEMA_VERSION);
    out.push_str(&keyspace_cql(keyspace, replication)?);
    for table in Table::ALL {
        out.push_str("\n\n");
        out.push_str(&table.create_cql(keyspace)?);
    }
    out.push('\n');
    Ok(out)
}

/// Checks that `keyspace` is a plain CQL identifier that needs no quoting: a letter, then up to
/// 47 letters, digits or underscores, and not a reserved word. Unquoted names are
/// case-insensitive in CQL (Cassandra folds them to lower case).
///
/// `insert_prepared`, `insert_literal` and `copy_from_cql` return a `String` and do not check
/// the keyspace again: validate it once (or call `schema_cql`) before using them.
pub fn validate_keyspace(keyspace: &str) -> Result<(), MappingError> {
    let bytes = keyspace.as_bytes();
    let well_formed = matches!(bytes.first(), Some(b) if b.is_ascii_alphabetic())
        && bytes.len() <= 48
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_');
    if !well_formed || RESERVED.iter().any(|r| r.eq_ignore_ascii_case(keyspace)) {
        return Err(MappingError::BadKeyspace(keyspace.to_owned()));
    }
    Ok(())
}

/// CQL's reserved keywords (cannot be used as an unquoted name).
const RESERVED: &[&str] = &[
    "add",
    "allow",
    "alter",
    "and",
    "apply",
    "asc",
    "authorize",
    "batch",
    "begin",
    "by",
    "columnfamily",
    "create",
    "delete",
    "desc",
    "describe",
    "drop",
    "entries",
    "execute",
    "from",
    "full",
    "grant",
    "if",
    "in",
    "index",
    "infinity",
    "insert",
    "into",
    "is",
    "keyspace",
    "limit",
    "materialized",
    "mbean",
    "mbeans",
    "modify",
    "nan",
    "norecursive",
    "not",
    "null",
    "of",
    "on",
    "or",
    "order",
    "primary",
    "rename",
    "replace",
    "revoke",
    "schema",
    "select",
    "set",
    "table",
    "to",
    "token",
    "truncate",
    "unlogged",
    "unset",
    "update",
    "use",
    "using",
    "view",
    "where",
    "with",
];

/// The statement of a schema file: its lines without `--` comment lines, trimmed.
fn statement(file: &str) -> String {
    let lines: Vec<&str> = file.lines().filter(|l| !l.trim_start().starts_with("--")).collect();
    lines.join("\n").trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyspace_names() {
        for good in ["outpost", "Outpost_2", "a", &"k".repeat(48)] {
            assert_eq!(validate_keyspace(good), Ok(()), "{good}");
        }
        for bad in ["", "1abc", "_x", "drop table;", "a-b", "ks.t", "\"q\"", "ø", &"k".repeat(49), "TABLE", "select"] {
            assert_eq!(validate_keyspace(bad), Err(MappingError::BadKeyspace(bad.to_owned())), "{bad:?}");
        }
    }

    #[test]
    fn keyspace_statement_and_replication() {
        assert_eq!(
            keyspace_cql("outpost", DEFAULT_REPLICATION).unwrap(),
            "CREATE KEYSPACE IF NOT EXISTS outpost WITH replication = \
             {'class': 'SimpleStrategy', 'replication_factor': 1};"
        );
        let nts = "{'class': 'NetworkTopologyStrategy', 'dc1': 3}";
        assert!(keyspace_cql("outpost", nts).unwrap().ends_with(&format!("= {nts};")));
        for bad in ["", "SimpleStrategy", "{}; DROP KEYSPACE x; {}"] {
            assert!(matches!(keyspace_cql("outpost", bad), Err(MappingError::BadReplication(_))), "{bad:?}");
        }
    }

    #[test]
    fn statements_have_no_comments_or_placeholders() {
        let all = schema_cql("ks", DEFAULT_REPLICATION).unwrap();
        assert!(all.starts_with("-- Outpost Cassandra schema for message schema 1"));
        assert!(!all.contains("{keyspace}") && !all.contains("{replication}"));
        // The keyspace and one table per kind.
        assert_eq!(all.matches("CREATE ").count(), 1 + Table::ALL.len());
        assert_eq!(all.matches(';').count(), 1 + Table::ALL.len());
        for table in Table::ALL {
            let create = table.create_cql("ks").unwrap();
            assert!(create.starts_with(&format!("CREATE TABLE IF NOT EXISTS ks.{} (\n", table.name())));
            assert!(create.ends_with(';') && !create.contains("--") && !create.contains('{'));
            assert!(all.contains(&create));
        }
        assert!(Table::IssTle.create_cql("1abc").is_err());
    }
}
