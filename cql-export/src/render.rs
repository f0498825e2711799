//! Statements and CSV lines for a row: what the live sink prepares and what the exporter writes.
//!
//! The keyspace is not checked here: validate it once with `validate_keyspace` (`schema_cql`
//! does too) before building statements from it.

use crate::{Row, Table};

/// `INSERT INTO ks.table (c1, c2, …) VALUES (?, ?, …)` with one marker per column, in
/// `table.columns()` order: bind `row.values` as they are. Every insert is an upsert on the
/// natural key; a `Null` value deletes that column's old value (bind it as null, not unset, so a
/// replayed newer version clears fields that disappeared).
pub fn insert_prepared(table: Table, keyspace: &str) -> String {
    let markers = vec!["?"; table.columns().len()].join(", ");
    format!("INSERT INTO {keyspace}.{} ({}) VALUES ({markers})", table.name(), table.columns().join(", "))
}

/// One complete `INSERT` statement with CQL literals, ending with `;`, for `cqlsh -f`. Text
/// literals may span lines (CQL strings have no escapes other than `''`).
pub fn insert_literal(row: &Row, keyspace: &str) -> String {
    let values: Vec<String> = row.values.iter().map(|v| v.to_cql_literal()).collect();
    format!(
        "INSERT INTO {keyspace}.{} ({}) VALUES ({});",
        row.table.name(),
        row.table.columns().join(", "),
        values.join(", ")
    )
}

/// The CSV header: the column names, comma-separated (no line terminator).
pub fn csv_header(table: Table) -> String {
    table.columns().join(",")
}

/// One CSV record for `row` (no line terminator: the caller writes `\n` after it), in the dialect
/// cqlsh `COPY ... FROM` reads with its default options:
/// - fields separated by `,`; a field is quoted with `"` when it holds `,`, `"`, `\`, a line
///   break, or leading or trailing white space;
/// - inside a quoted field, `"` and `\` are escaped with a backslash (`\"`, `\\`). This is the
///   one departure from RFC 4180, which doubles quotes: cqlsh's default `ESCAPE` is `\` and it
///   does not read `""` as a quote (it would corrupt every `problems` JSON text);
/// - null is the empty field (mapping stores empty text as null, so nothing is lost);
/// - timestamps as `2020-06-29 02:39:33.000+0000` (the format cqlsh `COPY TO` writes and
///   `COPY FROM` parses exactly; the `T…Z` form is misread by cqlsh's fallback parser);
/// - dates `2020-06-29`, doubles as in CQL (`10.0`), lists as `['a','b']` with `''` for a quote.
///
/// Text with line breaks makes a record span lines, which cqlsh reads correctly unless a record
/// straddles one of its input chunks: see [`copy_from_cql`].
pub fn csv_line(row: &Row) -> String {
    row.values.iter().map(|v| v.to_csv_field()).collect::<Vec<_>>().join(",")
}

/// The cqlsh statement that loads a file of `csv_header` + `csv_line`s into `table`:
/// `COPY ks.table (c1, c2, …) FROM 'file' WITH HEADER = true;`
///
/// cqlsh cuts its input into chunks of lines (`CHUNKSIZE`, default 5000, and at most
/// `INGESTRATE` lines per second) before parsing them as CSV, so a record with line breaks that
/// straddles a chunk boundary fails to load. Only `avalanche_warning` has multi-line text; for
/// it the statement raises both limits to a million lines, so files up to that size load as one
/// chunk.
pub fn copy_from_cql(table: Table, keyspace: &str, file: &str) -> String {
    let options = match table {
        Table::AvalancheWarning => " AND CHUNKSIZE = 1000000 AND INGESTRATE = 1000000",
        // Weather points are compact JSON on one line.
        Table::IssPosition | Table::IssTle | Table::WeatherDaily => "",
    };
    format!(
        "COPY {keyspace}.{} ({}) FROM '{}' WITH HEADER = true{options};",
        table.name(),
        table.columns().join(", "),
        file.replace('\'', "''")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_statements() {
        assert_eq!(
            copy_from_cql(Table::IssTle, "outpost", "/tmp/it's.csv"),
            "COPY outpost.iss_tle (station, norad_id, epoch, name, line1, line2, record_id, seq) \
             FROM '/tmp/it''s.csv' WITH HEADER = true;"
        );
        let warning = copy_from_cql(Table::AvalancheWarning, "ks", "w.csv");
        assert!(warning.starts_with("COPY ks.avalanche_warning (region_id, valid_date, "));
        assert!(warning.ends_with(" WITH HEADER = true AND CHUNKSIZE = 1000000 AND INGESTRATE = 1000000;"));
    }
}
