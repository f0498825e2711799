//! Outpost's Cassandra schema and the mapping from published messages to CQL rows.
//!
//! This crate is the one place that knows CQL. It does no I/O and holds no session; its two users
//! are the live Cassandra sink (prepared statements from [`insert_prepared`] with the values of
//! [`row`] bound in order) and `outpost export --format cql|csv` ([`insert_literal`] for
//! `cqlsh -f`, [`csv_line`] for cqlsh `COPY ... FROM`). Both go through [`row`], so a row written
//! live and a row exported are the same row.
//!
//! # Schema
//! `schema/*.cql` (embedded) declares a keyspace and one table per message kind, each with a
//! natural primary key, so replaying a message upserts the same row instead of adding one:
//!
//! | kind | table | primary key |
//! |---|---|---|
//! | `iss.position` | `iss_position` | `((station, day), time)`, day = UTC date of time |
//! | `iss.tle` | `iss_tle` | `((station, norad_id), epoch)` |
//! | `avalanche.warning` | `avalanche_warning` | `((region_id), valid_date, publish_time, reg_id)` |
//! | `weather.daily` | `weather_daily` | `((region_id), date, fetched_at)`: one row per changed version |
//!
//! # Mapping rules
//! - Input is a published message of schema [`SCHEMA_VERSION`]: the envelope (`schema`, `kind`,
//!   `id`, `station`, `seq`) and the record's fields. Unknown extra fields are ignored; a newer
//!   schema, an unknown kind, or a missing or wrongly typed required field is a [`MappingError`].
//!   Mapping never panics.
//! - Timestamps are RFC 3339 strings (any offset, converted to UTC) and become Unix
//!   milliseconds: Cassandra timestamps have millisecond precision, so finer parts are truncated
//!   (rounded down, as in Outpost's record ids). Years must be within 1..=9999.
//! - Doubles must be finite; latitude is checked to -90..=90 and longitude to -180..=180.
//! - Text: CR LF and lone CR become LF, and an empty string becomes null. cqlsh `COPY FROM`
//!   cannot tell an empty field from null and reads CR as LF, so this keeps the CSV path
//!   lossless and identical to the live path. `station` and `id` must not be empty.
//! - `advice` is a `frozen<list<text>>`: written as one cell, so an insert adds no range
//!   tombstone (a non-frozen list is deleted before it is written); an empty list stays `[]`;
//!   `problems` (and `weather.daily`'s `points`) is stored as the compact JSON text of the
//!   message's array, in its field order; `weather.daily`'s `summary` fields become columns.
//!
//! # Rendering
//! - CQL literals ([`insert_literal`]): `'text'` with `''` for a quote (newlines stay as they
//!   are, which CQL and cqlsh accept), `'2020-06-29'` dates, `'2020-06-29T02:39:33.000Z'`
//!   timestamps, `['a', 'b']` lists, `null`, and doubles that always carry a `.` (`10.0`).
//! - CSV ([`csv_line`]) follows cqlsh's default dialect so that
//!   `COPY ks.table (columns) FROM 'file' WITH HEADER = true` loads it as written (see
//!   [`csv_line`] for the details and [`copy_from_cql`] for the statement).

mod mapping;
mod render;
mod table;
mod value;

pub use mapping::row;
pub use render::{copy_from_cql, csv_header, csv_line, insert_literal, insert_prepared};
pub use table::{DEFAULT_REPLICATION, Table, keyspace_cql, schema_cql, validate_keyspace};
pub use value::{CqlValue, Row};

/// The message schema this crate maps (the `schema` field of a published message).
pub const SCHEMA_VERSION: u64 = 1;

/// Why a message could not become a row, or a name could not be used in CQL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("the message is {0}, not a JSON object")]
    NotAnObject(&'static str),
    #[error("message schema {0} is not supported (this build maps schema {SCHEMA_VERSION})")]
    UnsupportedSchema(u64),
    #[error("unknown message kind {0:?}")]
    UnknownKind(String),
    #[error("required field `{0}` is missing or null")]
    MissingField(&'static str),
    #[error("field `{field}`: {problem}")]
    InvalidField { field: &'static str, problem: String },
    #[error(
        "invalid keyspace name {0:?}: expected a letter, then up to 47 letters, digits or '_', not a reserved word"
    )]
    BadKeyspace(String),
    #[error("invalid replication {0:?}: expected one CQL map such as {DEFAULT_REPLICATION}")]
    BadReplication(String),
}
