//! The published form of a record: the JSON value of a Kafka message, a line of
//! `outpost export --format jsonl`, and the input of `cql-export`'s row mapping.
//!
//! `{"schema": 1, "kind", "id", "station", "seq", ...the record's fields}`, where the fields have
//! the same names as in the read API. `schema` changes only when a field changes meaning or
//! disappears; adding a field is compatible. docs/messages.md documents every kind.

use crate::domain::StoredRecord;
use serde_json::{Map, Value};

/// One schema version for what Outpost publishes and what cql-export maps.
pub use cql_export::SCHEMA_VERSION;

pub fn message(rec: &StoredRecord) -> Value {
    let mut out = Map::new();
    out.insert("schema".into(), SCHEMA_VERSION.into());
    // Record serializes as {"kind": ..., fields...}: keep its order after the envelope.
    let Ok(Value::Object(fields)) = serde_json::to_value(&rec.record) else {
        unreachable!("domain records always serialize to a JSON object")
    };
    out.insert("kind".into(), fields.get("kind").cloned().unwrap_or(Value::Null));
    out.insert("id".into(), rec.id().into());
    out.insert("station".into(), rec.station.clone().into());
    out.insert("seq".into(), rec.seq.into());
    for (k, v) in fields {
        if k != "kind" {
            out.insert(k, v);
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{IssPosition, Record};
    use chrono::DateTime;

    #[test]
    fn a_position_message_has_the_envelope_and_the_api_field_names() {
        let rec = StoredRecord {
            seq: 42,
            station: "pi".into(),
            record: Record::IssPosition(IssPosition {
                time: DateTime::from_timestamp(1_593_398_373, 0).unwrap(),
                latitude: 10.0909,
                longitude: 143.812,
                altitude_km: None,
                velocity_kmh: None,
                visibility: None,
            }),
        };
        let text = serde_json::to_string(&message(&rec)).unwrap();
        assert_eq!(
            text,
            r#"{"schema":1,"kind":"iss.position","id":"pi/iss.position/1593398373000","station":"pi","seq":42,"time":"2020-06-29T02:39:33Z","latitude":10.0909,"longitude":143.812}"#
        );
    }
}
