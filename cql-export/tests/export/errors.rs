//! Bad input is an error, never a panic; awkward text is escaped, never mangled.

use crate::messages::{self, with, without};
use cql_export::{CqlValue, MappingError, Row, Table, csv_line, insert_literal, row, schema_cql, validate_keyspace};
use serde_json::{Value, json};

fn invalid_field(result: Result<Row, MappingError>) -> &'static str {
    match result {
        Err(MappingError::InvalidField { field, .. }) => field,
        other => panic!("expected an invalid field, got {other:?}"),
    }
}

#[test]
fn schema_and_kind() {
    assert_eq!(row(&with(messages::position(), "schema", json!(2))), Err(MappingError::UnsupportedSchema(2)));
    assert_eq!(row(&with(messages::tle(), "schema", json!(0))), Err(MappingError::UnsupportedSchema(0)));
    assert_eq!(invalid_field(row(&with(messages::tle(), "schema", json!("1")))), "schema");
    assert_eq!(invalid_field(row(&with(messages::tle(), "schema", json!(1.5)))), "schema");
    assert_eq!(row(&without(messages::tle(), "schema")), Err(MappingError::MissingField("schema")));
    // The schema is checked before anything else: a schema 2 message with an unknown kind is "schema 2".
    let future = with(with(messages::tle(), "schema", json!(2)), "kind", json!("iss.crew"));
    assert_eq!(row(&future), Err(MappingError::UnsupportedSchema(2)));
    assert_eq!(
        row(&with(messages::tle(), "kind", json!("iss.crew"))),
        Err(MappingError::UnknownKind("iss.crew".into()))
    );
    assert_eq!(row(&without(messages::tle(), "kind")), Err(MappingError::MissingField("kind")));
    for not_an_object in [json!(null), json!([1]), json!("iss.position"), json!(42)] {
        assert!(matches!(row(&not_an_object), Err(MappingError::NotAnObject(_))));
    }
    let message = MappingError::UnsupportedSchema(2).to_string();
    assert_eq!(message, "message schema 2 is not supported (this build maps schema 1)");
}

#[test]
fn missing_and_mistyped_required_fields() {
    assert_eq!(row(&without(messages::position(), "time")), Err(MappingError::MissingField("time")));
    assert_eq!(row(&with(messages::position(), "time", Value::Null)), Err(MappingError::MissingField("time")));
    let err = row(&with(messages::position(), "latitude", json!("10.0909"))).unwrap_err();
    assert_eq!(err.to_string(), r#"field `latitude`: expected a finite number, found the string "10.0909""#);
    assert_eq!(row(&without(messages::position(), "station")), Err(MappingError::MissingField("station")));
    assert_eq!(invalid_field(row(&with(messages::position(), "station", json!("")))), "station");
    assert_eq!(invalid_field(row(&with(messages::position(), "id", json!(17)))), "id");
    assert_eq!(invalid_field(row(&with(messages::position(), "seq", json!(-1)))), "seq");
    assert_eq!(invalid_field(row(&with(messages::position(), "seq", json!(u64::MAX)))), "seq");
    assert_eq!(invalid_field(row(&with(messages::position(), "time", json!("yesterday")))), "time");
    assert_eq!(invalid_field(row(&with(messages::position(), "time", json!(1593398373)))), "time");
    assert_eq!(invalid_field(row(&with(messages::position(), "visibility", json!(true)))), "visibility");
    assert_eq!(invalid_field(row(&with(messages::tle(), "norad_id", json!(1u64 << 31)))), "norad_id");
    assert_eq!(invalid_field(row(&with(messages::tle(), "norad_id", json!(25544.0)))), "norad_id");
    assert_eq!(row(&without(messages::tle(), "line2")), Err(MappingError::MissingField("line2")));
    assert_eq!(invalid_field(row(&with(messages::tle(), "epoch", json!("2023-09-18 10:40")))), "epoch");
    assert_eq!(invalid_field(row(&with(messages::warning(), "valid_date", json!("2023-3-1")))), "valid_date");
    assert_eq!(invalid_field(row(&with(messages::warning(), "valid_date", json!("2023-02-30")))), "valid_date");
    assert_eq!(invalid_field(row(&with(messages::warning(), "danger_level", json!(6)))), "danger_level");
    assert_eq!(invalid_field(row(&with(messages::warning(), "danger_level", json!("2")))), "danger_level");
    assert_eq!(row(&without(messages::warning(), "danger_level")), Err(MappingError::MissingField("danger_level")));
    assert_eq!(invalid_field(row(&with(messages::warning(), "advice", json!(["ok", 3])))), "advice");
    assert_eq!(invalid_field(row(&with(messages::warning(), "advice", json!("Avoid")))), "advice");
    assert_eq!(invalid_field(row(&with(messages::warning(), "problems", json!("[]")))), "problems");
    assert_eq!(invalid_field(row(&with(messages::warning(), "problems", json!([1])))), "problems");
    assert_eq!(row(&without(messages::warning(), "problems")), Err(MappingError::MissingField("problems")));
    assert_eq!(invalid_field(row(&with(messages::warning(), "next_warning_time", json!("soon")))), "next_warning_time");
}

#[test]
fn nan_ish_and_out_of_range_numbers() {
    // serde_json turns NaN and infinities into null, and a string "NaN" is not a number.
    for bad in [json!(f64::NAN), json!(f64::INFINITY), json!("NaN"), json!("inf"), json!([])] {
        assert!(row(&with(messages::position(), "latitude", bad.clone())).is_err(), "{bad}");
        assert!(row(&with(messages::position(), "altitude_km", bad.clone())).is_err() || bad.is_null(), "{bad}");
    }
    assert_eq!(
        row(&with(messages::position(), "latitude", json!(f64::NAN))),
        Err(MappingError::MissingField("latitude"))
    );
    assert_eq!(invalid_field(row(&with(messages::position(), "latitude", json!(90.5)))), "latitude");
    assert_eq!(invalid_field(row(&with(messages::position(), "longitude", json!(-180.000001)))), "longitude");
    assert_eq!(invalid_field(row(&with(messages::position(), "velocity_kmh", json!("27556")))), "velocity_kmh");
    // A huge but finite number is a number.
    let big = row(&with(messages::position(), "altitude_km", json!(1e300))).unwrap();
    assert_eq!(big.get("altitude_km"), Some(&CqlValue::Double(1e300)));
    assert!(insert_literal(&big, "ks").contains(&format!(", {}.0, null,", "1".to_owned() + &"0".repeat(300))));
}

#[test]
fn out_of_range_times() {
    for bad in ["0000-01-01T00:00:00Z", "9999-12-31T23:00:00-02:00", "2020-13-01T00:00:00Z", "2020-06-29T02:39:33"] {
        assert_eq!(invalid_field(row(&with(messages::position(), "time", json!(bad)))), "time", "{bad}");
    }
    // RFC 3339 allows a leap second; in milliseconds it is the start of the next minute.
    let leap = row(&with(messages::position(), "time", json!("2016-12-31T23:59:60.500Z"))).unwrap();
    assert_eq!(leap.values[2], CqlValue::Timestamp(1_483_228_800_500));
    assert_eq!(leap.values[1], CqlValue::Date(chrono::NaiveDate::from_ymd_opt(2017, 1, 1).unwrap()));
    let last = with(messages::position(), "time", json!("9999-12-31T23:59:60Z"));
    assert_eq!(invalid_field(row(&last)), "time");
}

#[test]
fn unknown_fields_are_ignored_and_optional_fields_may_be_null_or_absent() {
    let extra = with(messages::tle(), "tle_source", json!({"url": "x"}));
    let extra = with(extra, "mean_motion", json!(15.49));
    assert_eq!(row(&extra), row(&messages::tle()));
    let null_name = row(&with(messages::tle(), "name", Value::Null)).unwrap();
    let no_name = row(&without(messages::tle(), "name")).unwrap();
    assert_eq!(null_name, no_name);
    assert_eq!(no_name.get("name"), Some(&CqlValue::Null));
    let nulls =
        ["altitude_km", "velocity_kmh", "visibility"].iter().fold(messages::position(), |m, f| with(m, f, Value::Null));
    assert_eq!(row(&nulls), row(&messages::position()));
}

#[test]
fn bad_keyspace_names() {
    for bad in ["drop table;", "1abc", "", "a b", "ks;DROP", "keyspace"] {
        assert_eq!(validate_keyspace(bad), Err(MappingError::BadKeyspace(bad.into())), "{bad:?}");
        assert!(schema_cql(bad, cql_export::DEFAULT_REPLICATION).is_err());
        assert!(Table::IssPosition.create_cql(bad).is_err());
    }
    assert!(schema_cql("outpost", "{'class': 'SimpleStrategy'}; DROP KEYSPACE x").is_err());
}

#[test]
fn text_with_quotes_and_newlines_is_escaped_for_cql_and_csv() {
    let tricky = "Don't go \"there\",\nsaid the guide; C:\\snow";
    let message = with(messages::warning(), "main_text", json!(tricky));
    let message = with(message, "advice", json!(["it's, steep", "ok"]));
    let row = row(&message).unwrap();
    assert_eq!(row.get("main_text"), Some(&CqlValue::Text(tricky.into())));

    let literal = insert_literal(&row, "ks");
    assert!(literal.contains(", 'Don''t go \"there\",\nsaid the guide; C:\\snow', "), "{literal}");
    assert!(literal.contains(", ['it''s, steep', 'ok'], "));
    assert!(literal.ends_with(", 3);"));

    let line = csv_line(&row);
    assert!(line.contains(",\"Don't go \\\"there\\\",\nsaid the guide; C:\\\\snow\","), "{line}");
    assert!(line.contains(",\"['it''s, steep','ok']\","));
}

#[test]
fn empty_text_is_null_and_carriage_returns_become_newlines() {
    let message = with(messages::warning(), "main_text", json!(""));
    let message = with(message, "avalanche_danger", json!("one\r\ntwo\rthree\n"));
    let message = with(message, "advice", json!(["a\r\nb", ""]));
    let row = row(&message).unwrap();
    assert_eq!(row.get("main_text"), Some(&CqlValue::Null));
    assert_eq!(row.get("avalanche_danger"), Some(&CqlValue::Text("one\ntwo\nthree\n".into())));
    assert_eq!(row.get("advice"), Some(&CqlValue::TextList(vec!["a\nb".into(), String::new()])));
    assert!(insert_literal(&row, "ks").contains(", null, 'one\ntwo\nthree\n', ['a\nb', ''], "));
    assert!(csv_line(&row).contains(",,\"one\ntwo\nthree\n\",\"['a\nb','']\","));
}

#[test]
fn arbitrary_json_never_panics() {
    let shapes = [
        json!({}),
        json!({"schema": 1}),
        json!({"schema": 1, "kind": null}),
        json!({"schema": 1, "kind": "iss.position", "id": "x", "station": "s", "seq": 0}),
        json!({"schema": 1, "kind": "avalanche.warning", "id": "x", "station": "s", "seq": 0, "problems": {}}),
        json!({"schema": -1, "kind": "iss.tle"}),
        json!({"schema": 1e300}),
    ];
    for shape in shapes {
        assert!(row(&shape).is_err(), "{shape}");
    }
    // Every field of every message replaced by every kind of wrong value: an error or a row.
    let wrongs =
        [json!(null), json!(true), json!(-1), json!(1.5), json!("x"), json!([]), json!({}), json!("é".repeat(100))];
    for message in [messages::position_full(), messages::tle(), messages::warning()] {
        let fields: Vec<String> = message.as_object().unwrap().keys().cloned().collect();
        for field in &fields {
            for wrong in &wrongs {
                if let Ok(row) = row(&with(message.clone(), field, wrong.clone())) {
                    let _ = (insert_literal(&row, "ks"), csv_line(&row));
                }
            }
        }
    }
}
