//! CQL values and rows, and how one value is written as a CQL literal or a cqlsh CSV field.

use crate::Table;
use chrono::{DateTime, Datelike, NaiveDate, Utc};

/// One column value, as bound to a prepared statement or written as a literal.
#[derive(Debug, Clone, PartialEq)]
pub enum CqlValue {
    Null,
    Text(String),
    Int(i32),
    BigInt(i64),
    Double(f64),
    /// Unix milliseconds (CQL `timestamp`).
    Timestamp(i64),
    Date(NaiveDate),
    TextList(Vec<String>),
}

impl CqlValue {
    /// The CQL type this value is written as, `None` for `Null` (which fits any column).
    pub fn cql_type(&self) -> Option<&'static str> {
        Some(match self {
            CqlValue::Null => return None,
            CqlValue::Text(_) => "text",
            CqlValue::Int(_) => "int",
            CqlValue::BigInt(_) => "bigint",
            CqlValue::Double(_) => "double",
            CqlValue::Timestamp(_) => "timestamp",
            CqlValue::Date(_) => "date",
            CqlValue::TextList(_) => "frozen<list<text>>",
        })
    }

    /// The value as a CQL literal, e.g. `'it''s'`, `10.0`, `'2020-06-29T02:39:33.000Z'`, `null`.
    pub fn to_cql_literal(&self) -> String {
        match self {
            CqlValue::Null => "null".to_owned(),
            CqlValue::Text(s) => cql_string(s),
            CqlValue::Int(i) => i.to_string(),
            CqlValue::BigInt(i) => i.to_string(),
            CqlValue::Double(d) => double(*d),
            CqlValue::Timestamp(ms) => match utc(*ms) {
                Some(t) => format!("'{}'", t.format("%Y-%m-%dT%H:%M:%S%.3fZ")),
                None => ms.to_string(),
            },
            CqlValue::Date(d) => format!("'{}'", d.format("%Y-%m-%d")),
            CqlValue::TextList(items) => {
                format!("[{}]", items.iter().map(|s| cql_string(s)).collect::<Vec<_>>().join(", "))
            }
        }
    }

    /// The value as one field of a cqlsh CSV line, quoted and escaped when needed (see
    /// `csv_line`). Null is the empty field.
    pub fn to_csv_field(&self) -> String {
        let raw = match self {
            CqlValue::Null => return String::new(),
            CqlValue::Text(s) => s.clone(),
            CqlValue::Int(i) => i.to_string(),
            CqlValue::BigInt(i) => i.to_string(),
            CqlValue::Double(d) => double(*d),
            // cqlsh's own COPY TO format; COPY FROM parses it with any cqlsh version and setting.
            CqlValue::Timestamp(ms) => match utc(*ms) {
                Some(t) => t.format("%Y-%m-%d %H:%M:%S%.3f+0000").to_string(),
                None => ms.to_string(),
            },
            CqlValue::Date(d) => d.format("%Y-%m-%d").to_string(),
            // cqlsh COPY's collection form: no space after the comma, elements as CQL strings.
            CqlValue::TextList(items) => {
                format!("[{}]", items.iter().map(|s| cql_string(s)).collect::<Vec<_>>().join(","))
            }
        };
        csv_quote(raw)
    }
}

/// One row of a table: `values` in `table.columns()` order.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub table: Table,
    pub values: Vec<CqlValue>,
}

impl Row {
    /// The partition key values, for grouping writes by partition.
    pub fn partition(&self) -> Vec<&CqlValue> {
        self.values.iter().take(self.table.partition_key().len()).collect()
    }

    /// The primary key values (partition key, then clustering columns): equal keys mean the same
    /// Cassandra row.
    pub fn primary_key(&self) -> Vec<&CqlValue> {
        self.values.iter().take(self.table.primary_key_len()).collect()
    }

    /// The value of the named column.
    pub fn get(&self, column: &str) -> Option<&CqlValue> {
        self.table.columns().iter().position(|c| *c == column).and_then(|i| self.values.get(i))
    }
}

/// A timestamp that can be written as a date-time string (years 1..=9999), else `None` and the
/// caller writes the milliseconds (both CQL and cqlsh COPY accept an integer timestamp).
fn utc(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms).filter(|t| (1..=9999).contains(&t.year()))
}

/// A CQL string literal: single quotes, a quote doubled. Newlines are kept as they are.
fn cql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The shortest text that reads back as exactly `d` and that CQL reads as a floating-point
/// literal: Rust's `Display` (never an exponent), with `.0` added to whole numbers. Mapping
/// rejects non-finite values; for hand-built rows they are written as CQL's `NaN`/`Infinity`.
pub(crate) fn double(d: f64) -> String {
    if d.is_nan() {
        return "NaN".to_owned();
    }
    if d.is_infinite() {
        return if d > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    let mut s = d.to_string();
    if !s.contains('.') {
        s.push_str(".0");
    }
    s
}

/// Quotes a CSV field when it holds a delimiter, quote, backslash, line break, or leading or
/// trailing white space; inside quotes, `"` and `\` are escaped with a backslash (cqlsh's
/// default `ESCAPE`; cqlsh does not read doubled quotes).
fn csv_quote(raw: String) -> String {
    let needs_quotes = raw.contains([',', '"', '\\', '\n', '\r'])
        || raw.starts_with(char::is_whitespace)
        || raw.ends_with(char::is_whitespace);
    if !needs_quotes {
        return raw;
    }
    let mut out = String::with_capacity(raw.len() + 2);
    out.push('"');
    for c in raw.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_round_trip_and_always_read_as_floating_point() {
        let cases = [
            (10.0, "10.0"),
            (-0.0, "-0.0"),
            (0.1, "0.1"),
            (143.812, "143.812"),
            (-21.950942, "-21.950942"),
            (1e21, "1000000000000000000000.0"),
            (1e-7, "0.0000001"),
            (f64::MAX, &format!("{}.0", f64::MAX)),
            (f64::MIN_POSITIVE, &f64::MIN_POSITIVE.to_string()),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Infinity"),
        ];
        for (d, text) in cases {
            assert_eq!(double(d), text);
            if d.is_finite() {
                assert_eq!(text.parse::<f64>().unwrap().to_bits(), d.to_bits(), "{text}");
            }
        }
    }

    #[test]
    fn literals() {
        let date = NaiveDate::from_ymd_opt(2020, 6, 29).unwrap();
        let cases = [
            (CqlValue::Null, "null"),
            (CqlValue::Text("it's\na test".into()), "'it''s\na test'"),
            (CqlValue::Int(-3), "-3"),
            (CqlValue::BigInt(i64::MAX), "9223372036854775807"),
            (CqlValue::Double(2.0), "2.0"),
            (CqlValue::Timestamp(1_593_398_373_250), "'2020-06-29T02:39:33.250Z'"),
            (CqlValue::Timestamp(-1), "'1969-12-31T23:59:59.999Z'"),
            (CqlValue::Timestamp(i64::MAX), "9223372036854775807"),
            (CqlValue::Date(date), "'2020-06-29'"),
            (CqlValue::TextList(vec![]), "[]"),
            (CqlValue::TextList(vec!["a".into(), "b'c".into()]), "['a', 'b''c']"),
        ];
        for (value, literal) in cases {
            assert_eq!(value.to_cql_literal(), literal);
        }
    }

    #[test]
    fn csv_fields() {
        let cases = [
            (CqlValue::Null, ""),
            (CqlValue::Text("plain text".into()), "plain text"),
            (CqlValue::Text("a,b".into()), "\"a,b\""),
            (CqlValue::Text("say \"hi\"".into()), "\"say \\\"hi\\\"\""),
            (CqlValue::Text("C:\\dir".into()), "\"C:\\\\dir\""),
            (CqlValue::Text("two\nlines".into()), "\"two\nlines\""),
            (CqlValue::Text(" padded".into()), "\" padded\""),
            (CqlValue::Text("it's".into()), "it's"),
            (CqlValue::Double(10.0), "10.0"),
            (CqlValue::Timestamp(1_593_398_373_000), "2020-06-29 02:39:33.000+0000"),
            (CqlValue::TextList(vec![]), "[]"),
            (CqlValue::TextList(vec!["it's".into()]), "['it''s']"),
            (CqlValue::TextList(vec!["a".into(), "b".into()]), "\"['a','b']\""),
            (CqlValue::TextList(vec!["a, b".into()]), "\"['a, b']\""),
        ];
        for (value, field) in cases {
            assert_eq!(value.to_csv_field(), field, "{value:?}");
        }
    }
}
