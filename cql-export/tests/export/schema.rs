//! The .cql files, `Table`'s column lists and the rows `row()` makes all agree.

use crate::messages;
use cql_export::{DEFAULT_REPLICATION, Table, insert_prepared, row, schema_cql};

const FILES: [(Table, &str); 4] = [
    (Table::IssPosition, include_str!("../../schema/iss_position.cql")),
    (Table::IssTle, include_str!("../../schema/iss_tle.cql")),
    (Table::AvalancheWarning, include_str!("../../schema/avalanche_warning.cql")),
    (Table::WeatherDaily, include_str!("../../schema/weather_daily.cql")),
];

/// What a CREATE TABLE statement declares.
#[derive(Debug)]
struct Declared {
    table: String,
    columns: Vec<(String, String)>,
    partition_key: Vec<String>,
    clustering: Vec<String>,
    clustering_order: Vec<(String, String)>,
}

/// Splits at commas outside (), <> pairs, trimming the parts.
fn split_top_level(s: &str) -> Vec<String> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' | '<' => depth += 1,
            ')' | '>' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(s[start..i].trim().to_owned());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(s[start..].trim().to_owned());
    parts.retain(|p| !p.is_empty());
    parts
}

/// The text inside the parentheses that open at `open` (which must be a `(`), and the rest.
fn parenthesized(s: &str, open: usize) -> (&str, &str) {
    assert_eq!(&s[open..open + 1], "(");
    let mut depth = 0;
    for (i, c) in s[open..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return (&s[open + 1..open + i], &s[open + i + 1..]);
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced parentheses in {s}")
}

fn parse_create_table(file: &str) -> Declared {
    let text: String =
        file.lines().filter(|l| !l.trim_start().starts_with("--")).collect::<Vec<_>>().join(" ").trim().to_owned();
    let rest = text.strip_prefix("CREATE TABLE IF NOT EXISTS {keyspace}.").expect("CREATE TABLE prefix");
    let open = rest.find('(').unwrap();
    let table = rest[..open].trim().to_owned();
    let (body, tail) = parenthesized(rest, open);

    let (mut columns, mut partition_key, mut clustering) = (Vec::new(), Vec::new(), Vec::new());
    for entry in split_top_level(body) {
        if let Some(key) = entry.strip_prefix("PRIMARY KEY") {
            let key = key.trim();
            let (inner, after) = parenthesized(key, 0);
            assert!(after.trim().is_empty(), "{entry}");
            let parts = split_top_level(inner);
            let partition = parts[0].strip_prefix('(').and_then(|p| p.strip_suffix(')')).unwrap_or(&parts[0]);
            partition_key = split_top_level(partition);
            clustering = parts[1..].to_vec();
        } else {
            let (name, ty) = entry.split_once(' ').expect("column name and type");
            columns.push((name.to_owned(), ty.trim().to_owned()));
        }
    }

    let tail = tail.trim().strip_suffix(';').expect("statement ends with ;").trim();
    let clustering_order = match tail.strip_prefix("WITH CLUSTERING ORDER BY") {
        None => {
            assert_eq!(tail, "", "unexpected table options");
            Vec::new()
        }
        Some(order) => {
            let (inner, after) = parenthesized(order.trim(), 0);
            assert_eq!(after.trim(), "");
            split_top_level(inner)
                .iter()
                .map(|o| {
                    let (c, dir) = o.split_once(' ').unwrap();
                    (c.to_owned(), dir.trim().to_owned())
                })
                .collect()
        }
    };
    Declared { table, columns, partition_key, clustering, clustering_order }
}

#[test]
fn each_file_declares_exactly_the_tables_columns_types_and_keys() {
    for (table, file) in FILES {
        assert_eq!(table.schema_file(), file, "the embedded file is the file on disk");
        let declared = parse_create_table(file);
        assert_eq!(declared.table, table.name());
        let names: Vec<&str> = declared.columns.iter().map(|(n, _)| n.as_str()).collect();
        let types: Vec<&str> = declared.columns.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(names, table.columns(), "{}", table.name());
        assert_eq!(types, table.column_types(), "{}", table.name());
        assert_eq!(declared.partition_key, table.partition_key(), "{}", table.name());
        assert_eq!(declared.clustering, table.clustering_key(), "{}", table.name());
        // The key comes first in columns(), which Row::partition and Row::primary_key rely on.
        let key: Vec<&str> = table.partition_key().iter().chain(table.clustering_key()).copied().collect();
        assert_eq!(&table.columns()[..key.len()], key.as_slice());
        assert_eq!(table.primary_key_len(), key.len());
        if !declared.clustering_order.is_empty() {
            let order: Vec<&str> = declared.clustering_order.iter().map(|(c, _)| c.as_str()).collect();
            assert_eq!(order, table.clustering_key());
        }
    }
}

#[test]
fn clustering_orders() {
    let order = |t: Table| {
        let file = FILES.iter().find(|(table, _)| *table == t).unwrap().1;
        parse_create_table(file).clustering_order.into_iter().map(|(c, d)| format!("{c} {d}")).collect::<Vec<_>>()
    };
    assert_eq!(order(Table::IssPosition), ["time ASC"]);
    assert_eq!(order(Table::IssTle), Vec::<String>::new());
    assert_eq!(order(Table::AvalancheWarning), ["valid_date DESC", "publish_time DESC", "reg_id ASC"]);
    assert_eq!(order(Table::WeatherDaily), ["date DESC", "fetched_at DESC"]);
}

#[test]
fn rows_carry_the_declared_types_for_every_column() {
    let messages =
        [messages::position(), messages::position_full(), messages::tle(), messages::warning(), messages::weather()]
            .map(|m| row(&m).unwrap());
    for table in Table::ALL {
        let rows: Vec<_> = messages.iter().filter(|r| r.table == table).collect();
        let mut seen = vec![false; table.columns().len()];
        for row in rows {
            assert_eq!(row.values.len(), table.columns().len());
            for (i, value) in row.values.iter().enumerate() {
                if let Some(ty) = value.cql_type() {
                    assert_eq!(ty, table.column_types()[i], "{}.{}", table.name(), table.columns()[i]);
                    seen[i] = true;
                }
            }
        }
        assert!(seen.iter().all(|s| *s), "{}: some column never had a value to check", table.name());
    }
}

#[test]
fn prepared_inserts_bind_every_column_in_order() {
    for table in Table::ALL {
        let cql = insert_prepared(table, "ks");
        assert_eq!(cql.matches('?').count(), table.columns().len());
        let rest = cql.strip_prefix(&format!("INSERT INTO ks.{} ", table.name())).unwrap();
        let (columns, values) = parenthesized(rest, 0);
        assert_eq!(split_top_level(columns), table.columns());
        let values = values.trim().strip_prefix("VALUES ").unwrap();
        let (markers, after) = parenthesized(values, 0);
        assert_eq!(after, "");
        assert!(split_top_level(markers).iter().all(|m| m == "?"));
    }
}

#[test]
fn kinds_and_tables() {
    assert_eq!(Table::for_kind("iss.position"), Some(Table::IssPosition));
    assert_eq!(Table::for_kind("iss.tle"), Some(Table::IssTle));
    assert_eq!(Table::for_kind("avalanche.warning"), Some(Table::AvalancheWarning));
    assert_eq!(Table::for_kind("weather.daily"), Some(Table::WeatherDaily));
    assert_eq!(Table::for_kind("iss_position"), None);
    for table in Table::ALL {
        assert_eq!(Table::for_kind(table.kind()), Some(table));
    }
}

#[test]
fn the_keyspace_file_and_the_full_schema() {
    let file = include_str!("../../schema/keyspace.cql");
    assert!(file.contains("\nCREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {replication};\n"));
    let schema = schema_cql("outpost", DEFAULT_REPLICATION).unwrap();
    let statements: Vec<&str> = schema.split(';').map(str::trim).filter(|s| !s.is_empty()).collect();
    assert_eq!(statements.len(), 1 + Table::ALL.len());
    assert!(statements[0].ends_with(
        "CREATE KEYSPACE IF NOT EXISTS outpost WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}"
    ));
    for (statement, table) in statements[1..].iter().zip(Table::ALL) {
        assert!(statement.starts_with(&format!("CREATE TABLE IF NOT EXISTS outpost.{} (", table.name())));
    }
}

#[test]
fn a_weather_message_maps_its_summary_to_columns_and_keeps_its_points_as_json() {
    use cql_export::CqlValue;
    let m = messages::weather();
    let r = row(&m).unwrap();
    assert_eq!(r.table, Table::WeatherDaily);
    let col = |name: &str| &r.values[Table::WeatherDaily.columns().iter().position(|c| *c == name).unwrap()];
    assert_eq!(col("region_id"), &CqlValue::Int(3022));
    assert_eq!(col("fetched_at"), &CqlValue::Timestamp(1_678_341_600_123), "truncated to the millisecond");
    assert_eq!(col("snowfall_max_cm"), &CqlValue::Double(3.92));
    assert_eq!(col("temperature_min_c"), &CqlValue::Double(-0.8));
    assert_eq!(col("points"), &CqlValue::Text(m["points"].to_string()));
    // A null summary value is a null column, never a zero.
    let mut no_rain = m.clone();
    no_rain["summary"]["rain_max_mm"] = serde_json::Value::Null;
    let r = row(&no_rain).unwrap();
    assert_eq!(
        r.values[Table::WeatherDaily.columns().iter().position(|c| *c == "rain_max_mm").unwrap()],
        CqlValue::Null
    );
    assert!(row(&messages::without(m.clone(), "summary")).is_err());
    assert!(row(&messages::with(m, "points", serde_json::json!([1, 2]))).is_err());
}
