//! Published messages built from the recorded upstream answers in /work/main/tests/fixtures, in
//! the shape `outpost`'s `sinks::message` gives them (schema 1).

use serde_json::{Value, json};

/// open-notify_iss-now.json: timestamp 1593398373, latitude "10.0909", longitude "143.8120".
pub fn position() -> Value {
    json!({
        "schema": 1, "kind": "iss.position", "id": "pi/iss.position/1593398373000", "station": "pi", "seq": 42,
        "time": "2020-06-29T02:39:33Z", "latitude": 10.0909, "longitude": 143.812
    })
}

/// wheretheiss_satellites_25544.json, rounded as `IssPosition::rounded` does.
pub fn position_full() -> Value {
    json!({
        "schema": 1, "kind": "iss.position", "id": "pi/iss.position/1669950667000", "station": "pi", "seq": 43,
        "time": "2022-12-02T03:11:07Z", "latitude": -21.950942, "longitude": 87.37566,
        "altitude_km": 425.782, "velocity_kmh": 27556.981, "visibility": "daylight"
    })
}

pub const LINE1: &str = "1 25544U 98067A   23261.44473810  .00015356  00000+0  28244-3 0  9997";
pub const LINE2: &str = "2 25544  51.6419 226.5842 0005864  32.1953 116.9329 15.49383676416254";

/// celestrak_gp_CATNR25544_FORMAT_TLE.txt: epoch 23261.44473810 = 2023-09-18T10:40:25.371840Z.
pub fn tle() -> Value {
    json!({
        "schema": 1, "kind": "iss.tle", "id": "pi/iss.tle/1695033625371", "station": "pi", "seq": 7,
        "epoch": "2023-09-18T10:40:25.371840Z", "norad_id": 25544, "name": "ISS (ZARYA)",
        "line1": LINE1, "line2": LINE2
    })
}

pub const MAIN_TEXT: &str =
    "Be careful in sun-exposed steep slopes and in high north facing areas with dry wind slabs. Avoid cornices.";

pub const AVALANCHE_DANGER: &str = "I lavlandet og særlig der sola får tak i bratte fjellsider kan det være lett å \
    løse ut små våte løssnøskred. \n\nI høyfjellet kan vinden føre til at det dannes ferske fokksnøflak i \
    leområder, særlig mot sør og øst. \n\nVær obs på at det enkelte steder fortsatt kan være mulig å løse ut skred \
    i et kantkornlag over et skarelag nede i snødekket. Det er usikkert hvor utbredt problemet er og om det er \
    helt nøytralisert av mildværet. Det er antakeligvis størst sjanse for å støte på dette problemet rundt \
    Oppdal og Dovre.\n\nVær obs på at skavler vil svekkes i varmen og lett kan knekke.";

pub const ADVICE: [&str; 3] = [
    "Wet surface: Move gradually away from the fall line when skiing on large slopes to avoid to be caught by \
     small sluffs you or someone else in your group release while skiing.",
    "Dry surface: Aviod terrain steeper than 30 degrees with fresh wind slabs.",
    "Avoid terrain traps.",
];

/// The two problems of the Trollheimen warning as `AvalancheProblem` serializes them.
pub const PROBLEMS_JSON: &str = r#"[{"problem_type":{"id":10,"name":"Wind drifted snow (slab avalanches)"},"cause":{"id":10,"name":"Buried weak layer of new snow"},"size":{"id":2,"name":"2 - Medium"},"probability":{"id":3,"name":"Possible"},"sensitivity":{"id":30,"name":"Easy to trigger"},"propagation":{"id":1,"name":"Few steep slopes"},"expositions":["E","SE","S"],"elevation":{"band":"above","m":1000},"danger_level":2},{"problem_type":{"id":5,"name":"Wet snow (loose snow avalanches)"},"cause":{"id":24,"name":"Loose snow"},"size":{"id":1,"name":"1 - Small"},"probability":{"id":3,"name":"Possible"},"sensitivity":{"id":45,"name":"Spontaneous"},"propagation":{"id":1,"name":"Few steep slopes"},"expositions":["N","NE","E","SE","S","SW","W","NW"],"elevation":{"band":"below","m":800},"danger_level":1}]"#;

/// The first (Trollheimen) warning of nve_AvalancheWarningByRegion_Detail.json, Oslo times in UTC.
pub fn warning() -> Value {
    let problems: Value = serde_json::from_str(PROBLEMS_JSON).unwrap();
    json!({
        "schema": 1, "kind": "avalanche.warning",
        "id": "pi/avalanche.warning/3022/2023-03-01/332137/1677594749677", "station": "pi", "seq": 3,
        "reg_id": 332137, "region_id": 3022, "region_name": "Trollheimen", "region_type": "A", "lang": 2,
        "danger_level": 2, "valid_date": "2023-03-01",
        "valid_from": "2023-02-28T23:00:00Z", "valid_to": "2023-03-01T22:59:59Z",
        "publish_time": "2023-02-28T14:32:29.677Z", "next_warning_time": "2023-03-02T15:00:00Z",
        "main_text": MAIN_TEXT, "avalanche_danger": AVALANCHE_DANGER, "advice": ADVICE, "problems": problems
    })
}

/// A `weather.daily` message: a region's day at two points (values from Open-Meteo's Warsaw
/// archive answer, tests/fixtures/open-meteo), one value null.
pub fn weather() -> Value {
    json!({
        "schema": 1, "kind": "weather.daily",
        "id": "pi/weather.daily/3022/2023-03-09/0123456789abcdef", "station": "pi", "seq": 4,
        "region_id": 3022, "date": "2023-03-09", "fetched_at": "2023-03-09T06:00:00.123456Z",
        "summary": {
            "snowfall_max_cm": 3.92, "wind_speed_max_kmh": 22.4, "wind_direction_deg": 234.0,
            "wind_gusts_max_kmh": 55.1, "temperature_min_c": -0.8, "temperature_max_c": 0.6, "rain_max_mm": 0.0
        },
        "points": [
            {"latitude": 62.7, "longitude": 9.3, "elevation_m": 113.0, "weather_code": null, "snowfall_cm": 3.92},
            {"latitude": 62.8, "longitude": 9.3, "elevation_m": null, "weather_code": 71, "snowfall_cm": 3.71}
        ]
    })
}

/// `message` with `field` set to `value` (added if absent).
pub fn with(mut message: Value, field: &str, value: Value) -> Value {
    message.as_object_mut().unwrap().insert(field.to_owned(), value);
    message
}

/// `message` without `field`.
pub fn without(mut message: Value, field: &str) -> Value {
    assert!(message.as_object_mut().unwrap().shift_remove(field).is_some(), "no {field} to remove");
    message
}
