//! Replaying a message upserts the same row; different facts get different keys.

use crate::messages::{self, with};
use chrono::NaiveDate;
use cql_export::{CqlValue, Table, csv_line, insert_literal, row};
use serde_json::Value;

#[test]
fn the_same_message_twice_is_the_same_row_and_key() {
    for message in [messages::position(), messages::position_full(), messages::tle(), messages::warning()] {
        let (first, second) = (row(&message).unwrap(), row(&message.clone()).unwrap());
        assert_eq!(first, second);
        assert_eq!(first.primary_key(), second.primary_key());
        assert_eq!(insert_literal(&first, "ks"), insert_literal(&second, "ks"));
        assert_eq!(csv_line(&first), csv_line(&second));
    }
}

#[test]
fn a_replay_with_another_seq_or_field_order_still_hits_the_same_key() {
    let original = row(&messages::warning()).unwrap();
    let replayed = row(&with(messages::warning(), "seq", Value::from(9000))).unwrap();
    assert_eq!(original.primary_key(), replayed.primary_key());
    assert_ne!(original, replayed);

    let mut reordered = serde_json::Map::new();
    let Value::Object(fields) = messages::position_full() else { unreachable!() };
    for (k, v) in fields.into_iter().rev() {
        reordered.insert(k, v);
    }
    assert_eq!(row(&Value::Object(reordered)).unwrap(), row(&messages::position_full()).unwrap());
}

#[test]
fn two_stations_write_the_same_warning_row_key() {
    let pi = row(&messages::warning()).unwrap();
    let other = with(messages::warning(), "station", Value::from("hut"));
    let other =
        row(&with(other, "id", Value::from("hut/avalanche.warning/3022/2023-03-01/332137/1677594749677"))).unwrap();
    assert_eq!(pi.primary_key(), other.primary_key());
    // Positions and TLEs are per station.
    let position = row(&with(messages::position(), "station", Value::from("hut"))).unwrap();
    assert_ne!(position.partition(), row(&messages::position()).unwrap().partition());
}

#[test]
fn two_versions_of_a_warning_have_different_keys_in_one_partition() {
    let first = row(&messages::warning()).unwrap();
    let update = with(messages::warning(), "publish_time", Value::from("2023-03-01T06:10:00.5Z"));
    let second = row(&with(update, "reg_id", Value::from(332200))).unwrap();
    assert_ne!(first.primary_key(), second.primary_key());
    assert_eq!(first.partition(), second.partition());
    assert_eq!(first.partition(), [&CqlValue::Int(3022)]);
    assert_eq!(second.get("publish_time"), Some(&CqlValue::Timestamp(1_677_651_000_500)));

    // Even a republication under the same reg_id is a new version (publish_time is in the key).
    let same_reg = row(&with(messages::warning(), "publish_time", Value::from("2023-02-28T16:00:00Z"))).unwrap();
    assert_ne!(first.primary_key(), same_reg.primary_key());
}

#[test]
fn a_positions_day_bucket_is_its_utc_date() {
    let day = |time: &str| {
        let row = row(&with(messages::position(), "time", Value::from(time))).unwrap();
        assert_eq!(row.table, Table::IssPosition);
        (row.partition()[1].clone(), row.values[2].clone())
    };
    let date = |y, m, d| CqlValue::Date(NaiveDate::from_ymd_opt(y, m, d).unwrap());
    assert_eq!(day("2020-06-29T23:59:59.999Z"), (date(2020, 6, 29), CqlValue::Timestamp(1_593_475_199_999)));
    assert_eq!(day("2020-06-30T00:00:00Z"), (date(2020, 6, 30), CqlValue::Timestamp(1_593_475_200_000)));
    // Sub-millisecond parts are truncated, never rounded into the next day.
    assert_eq!(day("2020-06-29T23:59:59.999999Z"), (date(2020, 6, 29), CqlValue::Timestamp(1_593_475_199_999)));
    // An offset is converted to UTC first: 01:30+02:00 is 23:30 UTC the day before.
    assert_eq!(day("2020-06-30T01:30:00+02:00"), (date(2020, 6, 29), CqlValue::Timestamp(1_593_473_400_000)));
    // Before 1970, truncation still goes down (to the earlier millisecond).
    assert_eq!(day("1969-12-31T23:59:59.9995Z"), (date(1969, 12, 31), CqlValue::Timestamp(-1)));
}

#[test]
fn the_partition_is_the_leading_key_columns() {
    let position = row(&messages::position()).unwrap();
    let date = CqlValue::Date(NaiveDate::from_ymd_opt(2020, 6, 29).unwrap());
    assert_eq!(position.partition(), [&CqlValue::Text("pi".into()), &date]);
    assert_eq!(position.primary_key().len(), 3);
    let tle = row(&messages::tle()).unwrap();
    assert_eq!(tle.partition(), [&CqlValue::Text("pi".into()), &CqlValue::Int(25544)]);
    assert_eq!(tle.primary_key()[2], &CqlValue::Timestamp(1_695_033_625_371));
}
