//! The on-disk encoding of one log record, versioned so a newer binary reads an older store.
//!
//! Layout: `[format version: u8][kind tag: u8][station index: varint][payload]`.
//! - Positions (ninety-odd percent of the log) use a compact binary payload (postcard):
//!   time in unix milliseconds, latitude/longitude as fixed-point micro-degrees (1e-6 deg is about
//!   11 cm, far below the sources' precision), altitude in metres and velocity in m/h. About 20
//!   bytes instead of ~150 as JSON.
//! - TLEs, avalanche warnings, alert emails, dead letters daily weather and danger alerts are rare and mostly text: they are stored as JSON of the domain
//!   type, which lets later versions add optional fields without a new format version.
//!
//! Stations are interned (see `Stations`): a record stores a small index, not the string.
//! Never change what an existing version byte means; add a new version and keep decoding the old.

use crate::domain::{IssPosition, Record, Visibility};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub const FORMAT_VERSION: u8 = 1;

const TAG_POSITION: u8 = 0;
const TAG_TLE: u8 = 1;
const TAG_WARNING: u8 = 2;
const TAG_ALERT: u8 = 3;
const TAG_DEAD_LETTER: u8 = 4;
const TAG_WEATHER: u8 = 5;
const TAG_DANGER_ALERT: u8 = 6;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("record written by a newer Outpost (format {0}); this binary reads up to {FORMAT_VERSION}")]
    NewerFormat(u8),
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

/// Micro-degrees: the fixed-point form positions are stored and indexed in.
pub fn to_e6(deg: f64) -> i32 {
    // Validated |deg| <= 180 upstream, so this fits in i32 (max 180_000_000).
    (deg * 1e6).round() as i32
}

pub fn from_e6(v: i32) -> f64 {
    f64::from(v) / 1e6
}

#[derive(Serialize, Deserialize)]
struct PositionV1 {
    time_ms: i64,
    lat_e6: i32,
    lon_e6: i32,
    altitude_m: Option<u32>,
    velocity_mh: Option<u32>,
    /// 0 = unknown, 1 = daylight, 2 = eclipsed
    visibility: u8,
}

pub fn encode(station: u16, record: &Record) -> Vec<u8> {
    let mut out = vec![FORMAT_VERSION];
    let push_station = |out: &mut Vec<u8>| {
        // postcard's varint: 1 byte for the usual single station.
        out.extend(postcard::to_stdvec(&station).expect("u16 always encodes"));
    };
    match record {
        Record::IssPosition(p) => {
            out.push(TAG_POSITION);
            push_station(&mut out);
            let v = PositionV1 {
                time_ms: p.time.timestamp_millis(),
                lat_e6: to_e6(p.latitude),
                lon_e6: to_e6(p.longitude),
                altitude_m: p.altitude_km.map(|a| (a * 1000.0).round().max(0.0) as u32),
                velocity_mh: p.velocity_kmh.map(|v| (v * 1000.0).round().max(0.0) as u32),
                visibility: match p.visibility {
                    None => 0,
                    Some(Visibility::Daylight) => 1,
                    Some(Visibility::Eclipsed) => 2,
                },
            };
            out.extend(postcard::to_stdvec(&v).expect("plain struct always encodes"));
        }
        Record::Tle(t) => {
            out.push(TAG_TLE);
            push_station(&mut out);
            out.extend(serde_json::to_vec(t).expect("domain types always serialize"));
        }
        Record::AvalancheWarning(w) => {
            out.push(TAG_WARNING);
            push_station(&mut out);
            out.extend(serde_json::to_vec(w).expect("domain types always serialize"));
        }
        Record::AlertEmail(a) => {
            out.push(TAG_ALERT);
            push_station(&mut out);
            out.extend(serde_json::to_vec(a).expect("domain types always serialize"));
        }
        Record::DeadLetter(d) => {
            out.push(TAG_DEAD_LETTER);
            push_station(&mut out);
            out.extend(serde_json::to_vec(d).expect("domain types always serialize"));
        }
        Record::WeatherDaily(w) => {
            out.push(TAG_WEATHER);
            push_station(&mut out);
            out.extend(serde_json::to_vec(w).expect("domain types always serialize"));
        }
        Record::DangerAlert(a) => {
            out.push(TAG_DANGER_ALERT);
            push_station(&mut out);
            out.extend(serde_json::to_vec(a).expect("domain types always serialize"));
        }
    }
    out
}

/// Decodes a record and the index of its station.
pub fn decode(bytes: &[u8]) -> Result<(u16, Record), CodecError> {
    let corrupt = |e: &dyn std::fmt::Display| CodecError::Corrupt(e.to_string());
    let (&version, rest) = bytes.split_first().ok_or_else(|| corrupt(&"empty"))?;
    if version > FORMAT_VERSION {
        return Err(CodecError::NewerFormat(version));
    }
    if version == 0 {
        return Err(corrupt(&"format version 0"));
    }
    let (&tag, rest) = rest.split_first().ok_or_else(|| corrupt(&"no kind tag"))?;
    let (station, rest): (u16, &[u8]) = postcard::take_from_bytes(rest).map_err(|e| corrupt(&e))?;
    let record = match tag {
        TAG_POSITION => {
            let v: PositionV1 = postcard::from_bytes(rest).map_err(|e| corrupt(&e))?;
            let time = DateTime::<Utc>::from_timestamp_millis(v.time_ms)
                .ok_or_else(|| corrupt(&"position time out of range"))?;
            Record::IssPosition(IssPosition {
                time,
                latitude: from_e6(v.lat_e6),
                longitude: from_e6(v.lon_e6),
                altitude_km: v.altitude_m.map(|m| f64::from(m) / 1000.0),
                velocity_kmh: v.velocity_mh.map(|m| f64::from(m) / 1000.0),
                visibility: match v.visibility {
                    1 => Some(Visibility::Daylight),
                    2 => Some(Visibility::Eclipsed),
                    _ => None,
                },
            })
        }
        TAG_TLE => Record::Tle(serde_json::from_slice(rest).map_err(|e| corrupt(&e))?),
        TAG_WARNING => Record::AvalancheWarning(serde_json::from_slice(rest).map_err(|e| corrupt(&e))?),
        TAG_ALERT => Record::AlertEmail(serde_json::from_slice(rest).map_err(|e| corrupt(&e))?),
        TAG_DEAD_LETTER => Record::DeadLetter(serde_json::from_slice(rest).map_err(|e| corrupt(&e))?),
        TAG_WEATHER => Record::WeatherDaily(serde_json::from_slice(rest).map_err(|e| corrupt(&e))?),
        TAG_DANGER_ALERT => Record::DangerAlert(serde_json::from_slice(rest).map_err(|e| corrupt(&e))?),
        other => return Err(corrupt(&format!("unknown kind tag {other}"))),
    };
    Ok((station, record))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Tle;

    fn position() -> IssPosition {
        IssPosition {
            time: DateTime::from_timestamp(1_669_950_667, 0).unwrap(),
            latitude: -21.950941583641,
            longitude: 87.375660097541,
            altitude_km: Some(425.78196100125),
            velocity_kmh: Some(27556.981335915),
            visibility: Some(Visibility::Daylight),
        }
    }

    #[test]
    fn position_round_trips_at_stored_precision_and_is_compact() {
        let bytes = encode(3, &Record::IssPosition(position()));
        assert!(bytes.len() <= 28, "position encodes to {} bytes", bytes.len());
        let (station, rec) = decode(&bytes).unwrap();
        assert_eq!(station, 3);
        let Record::IssPosition(p) = rec else { panic!("wrong kind") };
        assert_eq!(p.time, position().time);
        assert_eq!(p.latitude, -21.950942);
        assert_eq!(p.longitude, 87.37566);
        assert_eq!(p.altitude_km, Some(425.782));
        assert_eq!(p.velocity_kmh, Some(27556.981));
        assert_eq!(p.visibility, Some(Visibility::Daylight));
        // Decoding and re-encoding is stable: replays produce identical bytes.
        assert_eq!(encode(3, &Record::IssPosition(p.clone())), bytes);
        assert_eq!(p, position().rounded(), "rounded() is the stored precision");
    }

    #[test]
    fn four_decimal_sources_keep_their_exact_decimal_form() {
        let mut p = position();
        p.latitude = 10.0909;
        p.longitude = -143.812;
        let (_, Record::IssPosition(back)) = decode(&encode(0, &Record::IssPosition(p))).unwrap() else {
            panic!("wrong kind")
        };
        assert_eq!(back.latitude.to_string(), "10.0909");
        assert_eq!(back.longitude.to_string(), "-143.812");
    }

    #[test]
    fn tle_round_trips_exactly() {
        let tle = Tle {
            epoch: DateTime::from_timestamp_micros(1_695_033_625_371_840).unwrap(),
            norad_id: 25544,
            name: Some("ISS (ZARYA)".into()),
            line1: "1 25544U 98067A   23261.44473810  .00015356  00000+0  28244-3 0  9997".into(),
            line2: "2 25544  51.6419 226.5842 0005864  32.1953 116.9329 15.49383676416254".into(),
        };
        let rec = Record::Tle(tle);
        assert_eq!(decode(&encode(0, &rec)).unwrap().1, rec);
    }

    #[test]
    fn newer_and_corrupt_records_are_errors_not_panics() {
        let mut bytes = encode(0, &Record::IssPosition(position()));
        bytes[0] = FORMAT_VERSION + 1;
        assert!(matches!(decode(&bytes), Err(CodecError::NewerFormat(_))));
        for cut in 0..bytes.len() {
            let mut b = encode(0, &Record::IssPosition(position()));
            b.truncate(cut);
            assert!(decode(&b).is_err(), "truncated at {cut} must not decode");
        }
        assert!(decode(&[FORMAT_VERSION, 9, 0]).is_err());
    }
}
