//! Published message (JSON, schema 1) → row. The rules are in the crate documentation.

use crate::{CqlValue, MappingError, Row, SCHEMA_VERSION, Table};
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde_json::{Map, Value};

/// Maps one published message to its table's row. The same message always gives the same row.
pub fn row(message: &Value) -> Result<Row, MappingError> {
    let m = Fields(message.as_object().ok_or(MappingError::NotAnObject(json_type(message)))?);
    let schema = m.required("schema")?;
    let schema = schema.as_u64().ok_or_else(|| invalid("schema", expected("a non-negative integer", schema)))?;
    if schema != SCHEMA_VERSION {
        return Err(MappingError::UnsupportedSchema(schema));
    }
    let kind = m.string("kind")?;
    let table = Table::for_kind(kind).ok_or_else(|| MappingError::UnknownKind(kind.to_owned()))?;
    let station = m.key_text("station")?;
    let id = m.key_text("id")?;
    let seq = m.bigint("seq")?;
    let values = match table {
        Table::IssPosition => {
            // The day is taken from the stored milliseconds, so it is always the date of `time`.
            let time = m.timestamp("time")?;
            vec![
                station,
                CqlValue::Date(time.date_naive()),
                CqlValue::Timestamp(time.timestamp_millis()),
                m.double_in("latitude", -90.0, 90.0)?,
                m.double_in("longitude", -180.0, 180.0)?,
                m.opt_double("altitude_km")?,
                m.opt_double("velocity_kmh")?,
                m.opt_text("visibility")?,
                id,
                seq,
            ]
        }
        Table::IssTle => vec![
            station,
            m.int("norad_id")?,
            CqlValue::Timestamp(m.timestamp("epoch")?.timestamp_millis()),
            m.opt_text("name")?,
            m.text("line1")?,
            m.text("line2")?,
            id,
            seq,
        ],
        Table::AvalancheWarning => vec![
            m.int("region_id")?,
            m.date("valid_date")?,
            CqlValue::Timestamp(m.timestamp("publish_time")?.timestamp_millis()),
            m.bigint("reg_id")?,
            m.text("region_name")?,
            m.opt_text("region_type")?,
            m.int("lang")?,
            m.danger_level()?,
            CqlValue::Timestamp(m.timestamp("valid_from")?.timestamp_millis()),
            CqlValue::Timestamp(m.timestamp("valid_to")?.timestamp_millis()),
            m.opt_timestamp("next_warning_time")?,
            m.text("main_text")?,
            m.opt_text("avalanche_danger")?,
            m.text_list("advice")?,
            m.json_array("problems")?,
            station,
            id,
            seq,
        ],
        Table::WeatherDaily => {
            let summary = m.required("summary")?;
            let s = Fields(summary.as_object().ok_or_else(|| invalid("summary", expected("an object", summary)))?);
            vec![
                m.int("region_id")?,
                m.date("date")?,
                CqlValue::Timestamp(m.timestamp("fetched_at")?.timestamp_millis()),
                s.opt_double("snowfall_max_cm")?,
                s.opt_double("wind_speed_max_kmh")?,
                s.opt_double("wind_direction_deg")?,
                s.opt_double("wind_gusts_max_kmh")?,
                s.opt_double("temperature_min_c")?,
                s.opt_double("temperature_max_c")?,
                s.opt_double("rain_max_mm")?,
                m.json_array("points")?,
                station,
                id,
                seq,
            ]
        }
    };
    Ok(Row { table, values })
}

/// The message's fields, read by name. Absent and null are the same ("not given").
struct Fields<'a>(&'a Map<String, Value>);

impl<'a> Fields<'a> {
    fn get(&self, field: &'static str) -> Option<&'a Value> {
        self.0.get(field).filter(|v| !v.is_null())
    }

    fn required(&self, field: &'static str) -> Result<&'a Value, MappingError> {
        self.get(field).ok_or(MappingError::MissingField(field))
    }

    fn string(&self, field: &'static str) -> Result<&'a str, MappingError> {
        let v = self.required(field)?;
        v.as_str().ok_or_else(|| invalid(field, expected("a string", v)))
    }

    fn opt_string(&self, field: &'static str) -> Result<Option<&'a str>, MappingError> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => v.as_str().map(Some).ok_or_else(|| invalid(field, expected("a string", v))),
        }
    }

    /// A key or identity text (`station`, `id`): required and not empty, kept as it is.
    fn key_text(&self, field: &'static str) -> Result<CqlValue, MappingError> {
        match self.string(field)? {
            "" => Err(invalid(field, "is empty".to_owned())),
            s => Ok(CqlValue::Text(s.to_owned())),
        }
    }

    /// A required text field; empty text is stored as null.
    fn text(&self, field: &'static str) -> Result<CqlValue, MappingError> {
        Ok(text_value(self.string(field)?))
    }

    fn opt_text(&self, field: &'static str) -> Result<CqlValue, MappingError> {
        Ok(self.opt_string(field)?.map_or(CqlValue::Null, text_value))
    }

    /// A non-negative integer that fits a CQL `int`.
    fn int(&self, field: &'static str) -> Result<CqlValue, MappingError> {
        let v = self.required(field)?;
        let i = v.as_u64().and_then(|i| i32::try_from(i).ok());
        i.map(CqlValue::Int).ok_or_else(|| invalid(field, expected("an integer in 0..=2147483647", v)))
    }

    /// A non-negative integer that fits a CQL `bigint`.
    fn bigint(&self, field: &'static str) -> Result<CqlValue, MappingError> {
        let v = self.required(field)?;
        let i = v.as_u64().and_then(|i| i64::try_from(i).ok());
        i.map(CqlValue::BigInt).ok_or_else(|| invalid(field, expected("an integer in 0..=9223372036854775807", v)))
    }

    /// `danger_level`: must be present; null means "not assessed", else an integer 0..=5.
    fn danger_level(&self) -> Result<CqlValue, MappingError> {
        const FIELD: &str = "danger_level";
        match self.0.get(FIELD) {
            None => Err(MappingError::MissingField(FIELD)),
            Some(Value::Null) => Ok(CqlValue::Null),
            Some(v) => match v.as_u64() {
                Some(l @ 0..=5) => Ok(CqlValue::Int(l as i32)),
                _ => Err(invalid(FIELD, expected("null or an integer in 0..=5", v))),
            },
        }
    }

    fn double_in(&self, field: &'static str, min: f64, max: f64) -> Result<CqlValue, MappingError> {
        let d = finite(field, self.required(field)?)?;
        if !(min..=max).contains(&d) {
            return Err(invalid(field, format!("{d} is outside {min}..={max}")));
        }
        Ok(CqlValue::Double(d))
    }

    fn opt_double(&self, field: &'static str) -> Result<CqlValue, MappingError> {
        self.get(field).map_or(Ok(CqlValue::Null), |v| finite(field, v).map(CqlValue::Double))
    }

    fn timestamp(&self, field: &'static str) -> Result<DateTime<Utc>, MappingError> {
        parse_time(field, self.string(field)?)
    }

    fn opt_timestamp(&self, field: &'static str) -> Result<CqlValue, MappingError> {
        match self.opt_string(field)? {
            None => Ok(CqlValue::Null),
            Some(s) => Ok(CqlValue::Timestamp(parse_time(field, s)?.timestamp_millis())),
        }
    }

    /// A `YYYY-MM-DD` calendar date.
    fn date(&self, field: &'static str) -> Result<CqlValue, MappingError> {
        let s = self.string(field)?;
        let well_formed = s.len() == 10 && s.bytes().enumerate().all(|(i, b)| (b == b'-') == (i == 4 || i == 7));
        let date = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().filter(|d| well_formed && d.year() >= 1);
        date.map(CqlValue::Date).ok_or_else(|| invalid(field, format!("{s:?} is not a YYYY-MM-DD date")))
    }

    /// An array of strings (each normalized like text, but kept when empty).
    fn text_list(&self, field: &'static str) -> Result<CqlValue, MappingError> {
        let v = self.required(field)?;
        let items = v.as_array().ok_or_else(|| invalid(field, expected("an array of strings", v)))?;
        let texts = items.iter().enumerate().map(|(i, item)| {
            item.as_str().map(normalize_newlines).ok_or_else(|| invalid(field, expected_at(i, "a string", item)))
        });
        texts.collect::<Result<_, _>>().map(CqlValue::TextList)
    }

    /// An array of objects, kept as its compact JSON text.
    fn json_array(&self, field: &'static str) -> Result<CqlValue, MappingError> {
        let v = self.required(field)?;
        let items = v.as_array().ok_or_else(|| invalid(field, expected("an array of objects", v)))?;
        if let Some((i, item)) = items.iter().enumerate().find(|(_, item)| !item.is_object()) {
            return Err(invalid(field, expected_at(i, "an object", item)));
        }
        Ok(CqlValue::Text(v.to_string()))
    }
}

fn text_value(s: &str) -> CqlValue {
    match s {
        "" => CqlValue::Null,
        s => CqlValue::Text(normalize_newlines(s)),
    }
}

/// CR LF and lone CR become LF (what cqlsh reads them as).
fn normalize_newlines(s: &str) -> String {
    if s.contains('\r') { s.replace("\r\n", "\n").replace('\r', "\n") } else { s.to_owned() }
}

fn finite(field: &'static str, v: &Value) -> Result<f64, MappingError> {
    v.as_f64().filter(|d| d.is_finite()).ok_or_else(|| invalid(field, expected("a finite number", v)))
}

/// An RFC 3339 time in UTC, truncated to whole milliseconds (rounded down). A leap second
/// (`:60`) becomes the first millisecond(s) of the next minute, as Cassandra would store it.
fn parse_time(field: &'static str, s: &str) -> Result<DateTime<Utc>, MappingError> {
    let t =
        DateTime::parse_from_rfc3339(s).ok().map(|t| t.timestamp_millis()).and_then(DateTime::from_timestamp_millis);
    t.filter(|t| (1..=9999).contains(&t.year()))
        .ok_or_else(|| invalid(field, format!("{:?} is not an RFC 3339 time in years 1..=9999", clip(s))))
}

fn invalid(field: &'static str, problem: String) -> MappingError {
    MappingError::InvalidField { field, problem }
}

fn expected(what: &str, found: &Value) -> String {
    format!("expected {what}, found {}", describe(found))
}

fn expected_at(index: usize, what: &str, found: &Value) -> String {
    format!("element {index}: expected {what}, found {}", describe(found))
}

/// A short description of a value for errors: numbers in full, strings clipped, else the type.
fn describe(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("the string {:?}", clip(s)),
        other => json_type(other).to_owned(),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// At most 40 characters of `s`, so an error never carries a whole text.
fn clip(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.to_owned(),
    }
}
