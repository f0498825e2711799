//! Home Assistant MQTT discovery: the retained configs under `homeassistant/…/config` that
//! announce the ISS latitude and longitude sensors, an ISS device tracker, the next-pass sensor
//! (magnitude and maximum elevation among its attributes), the "ISS visible now" and "ISS
//! overhead" binary sensors and per configured region a danger sensor, a "danger at or above min_level" binary sensor and
//! today's new snow and max wind sensors. Pure: builds messages, never publishes them.

use super::{Msg, Topics};
use serde_json::{Value, json};
use std::collections::HashMap;

/// One discovery config, with what every entity shares.
fn entity(topics: &Topics, component: &str, object_id: &str, mut config: Value) -> Msg {
    let shared = json!({
        "unique_id": format!("{}_{object_id}", topics.node),
        "availability_topic": topics.status(),
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": {
            "identifiers": [topics.node],
            "name": format!("Outpost {}", topics.station),
            "manufacturer": "Outpost",
            "sw_version": env!("CARGO_PKG_VERSION"),
        },
    });
    if let (Value::Object(c), Value::Object(s)) = (&mut config, shared) {
        c.extend(s);
    }
    (format!("homeassistant/{component}/{}/{object_id}/config", topics.node), config.to_string().into_bytes())
}

/// A region's danger sensor, named after the region (its id until a warning told the name).
pub(super) fn region(topics: &Topics, region: u32, name: Option<&str>) -> Msg {
    let name = name.map_or_else(|| region.to_string(), str::to_owned);
    let topic = topics.region(region);
    entity(
        topics,
        "sensor",
        &format!("avalanche_{region}"),
        json!({
            "name": format!("Avalanche danger {name}"),
            "state_topic": topic,
            "value_template": "{{ value_json.danger_level }}",
            "json_attributes_topic": topic,
            "icon": "mdi:alert",
        }),
    )
}

/// A region's "danger at or above `min_level`" binary sensor (on = unsafe), read from the same
/// state topic as its danger sensor.
pub(super) fn region_at_least(topics: &Topics, region: u32, name: Option<&str>, min_level: u8) -> Msg {
    let name = name.map_or_else(|| region.to_string(), str::to_owned);
    entity(
        topics,
        "binary_sensor",
        &format!("avalanche_{region}_at_least"),
        json!({
            "name": format!("Avalanche danger {name} at or above {min_level}"),
            "state_topic": topics.region(region),
            "value_template": format!("{{{{ 'ON' if (value_json.danger_level or 0) >= {min_level} else 'OFF' }}}}"),
            "device_class": "safety",
            "json_attributes_topic": topics.region(region),
            "icon": "mdi:alert-octagon",
        }),
    )
}

/// A region's weather sensors (new snow in cm, max wind in km/h), from its weather state topic;
/// a null value renders `None`, which Home Assistant shows as unknown.
pub(super) fn region_weather(topics: &Topics, region: u32, name: Option<&str>) -> [Msg; 2] {
    let name = name.map_or_else(|| region.to_string(), str::to_owned);
    let topic = topics.weather(region);
    let sensor = |object_id: String, label: &str, field: &str, unit: &str, class: &str, icon: &str| {
        entity(
            topics,
            "sensor",
            &object_id,
            json!({
                "name": format!("{label} {name}"),
                "state_topic": topic,
                "value_template": format!("{{{{ value_json.{field} }}}}"),
                "unit_of_measurement": unit,
                "device_class": class,
                "state_class": "measurement",
                "json_attributes_topic": topic,
                "icon": icon,
            }),
        )
    };
    [
        sensor(
            format!("weather_{region}_new_snow"),
            "New snow",
            "snowfall_max_cm",
            "cm",
            "precipitation",
            "mdi:snowflake",
        ),
        sensor(
            format!("weather_{region}_max_wind"),
            "Max wind",
            "wind_speed_max_kmh",
            "km/h",
            "wind_speed",
            "mdi:weather-windy",
        ),
    ]
}

/// The next pass's attributes: every field of the payload (rise, culmination and set, the
/// visible window, `magnitude`, and whatever else it carries), plus the culmination's elevation
/// as `max_elevation_deg` to a tenth (`null` with no pass).
const NEXT_PASS_ATTRIBUTES: &str = "{% set top = value_json.get('culmination') %}\
{{ dict(value_json, max_elevation_deg=(top.elevation_deg | round(1)) if top else none) | tojson }}";

/// The two sky binary sensors, from plain "ON"/"OFF" state topics (Home Assistant's defaults).
fn sky(topics: &Topics) -> [Msg; 2] {
    [
        entity(
            topics,
            "binary_sensor",
            "iss_visible_now",
            json!({"name": "ISS visible now", "state_topic": topics.visible_now(), "icon": "mdi:eye"}),
        ),
        entity(
            topics,
            "binary_sensor",
            "iss_overhead",
            json!({"name": "ISS overhead", "state_topic": topics.overhead(), "icon": "mdi:space-station"}),
        ),
    ]
}

/// Every config, for a fresh connection.
pub(super) fn all(topics: &Topics, regions: &[u32], names: &HashMap<u32, String>, min_level: u8) -> Vec<Msg> {
    let pos = topics.position();
    let sensor = |name: &str, field: &str| {
        json!({
            "name": name,
            "state_topic": pos,
            "value_template": format!("{{{{ value_json.{field} }}}}"),
            "unit_of_measurement": "°",
            "state_class": "measurement",
            "icon": "mdi:space-station",
        })
    };
    let next_pass = topics.next_pass();
    let mut out = vec![
        entity(topics, "sensor", "iss_latitude", sensor("ISS latitude", "latitude")),
        entity(topics, "sensor", "iss_longitude", sensor("ISS longitude", "longitude")),
        // The tracker reads latitude/longitude from the position JSON: the ISS on HA's map.
        entity(
            topics,
            "device_tracker",
            "iss",
            json!({"name": "ISS", "json_attributes_topic": pos, "source_type": "gps", "icon": "mdi:space-station"}),
        ),
        entity(
            topics,
            "sensor",
            "iss_next_pass",
            json!({
                "name": "ISS next visible pass",
                "state_topic": next_pass,
                "value_template": "{{ value_json.visible_from | default(None) }}",
                "device_class": "timestamp",
                "json_attributes_topic": next_pass,
                "json_attributes_template": NEXT_PASS_ATTRIBUTES,
                "icon": "mdi:telescope",
            }),
        ),
    ];
    out.extend(sky(topics));
    for r in regions {
        let name = names.get(r).map(String::as_str);
        out.push(region(topics, *r, name));
        out.push(region_at_least(topics, *r, name, min_level));
        out.extend(region_weather(topics, *r, name));
    }
    out
}
