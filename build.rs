//! Turns the vendored Natural Earth TopoJSON (npm world-atlas, static/vendor/world-atlas/) into the
//! GeoJSON basemap the map page draws when no tile server is reachable. Done at build time so the
//! browser needs no TopoJSON decoder and the Pi never converts anything.
//!
//! Coordinates are rounded to 0.01° (about 1 km): finer than the 1:50 million source, and it
//! makes the embedded file about a third of its full-precision size.

use serde_json::Value;
use std::path::Path;

const SOURCE: &str = "static/vendor/world-atlas/countries-50m.json";

fn main() {
    println!("cargo::rerun-if-changed={SOURCE}");
    let text = std::fs::read_to_string(SOURCE).unwrap_or_else(|e| panic!("{SOURCE}: {e}"));
    let topology = match text.parse::<topojson::TopoJson>() {
        Ok(topojson::TopoJson::Topology(t)) => t,
        other => panic!("{SOURCE} is not a TopoJSON topology: {other:?}"),
    };
    let countries = topojson::to_geojson(&topology, "countries").expect("world-atlas has a countries object");
    let mut geojson = serde_json::to_value(&countries).expect("GeoJSON serializes");
    if let Some(features) = geojson["features"].as_array_mut() {
        for feature in features {
            let name = feature["properties"]["name"].clone();
            feature["properties"] = serde_json::json!({ "name": name });
            feature.as_object_mut().map(|f| f.remove("id"));
            if let Some(coords) = feature.pointer_mut("/geometry/coordinates") {
                simplify(coords);
            }
        }
    }
    let out = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("countries.geojson");
    std::fs::write(&out, serde_json::to_vec(&geojson).expect("serializes")).expect("OUT_DIR is writable");
}

/// Rounds every position and drops the ones that became equal to their predecessor.
fn simplify(v: &mut Value) {
    let Some(items) = v.as_array_mut() else { return };
    if items.first().is_some_and(Value::is_number) {
        for n in items.iter_mut() {
            let x = n.as_f64().unwrap_or(0.0);
            *n = serde_json::json!((x * 100.0).round() / 100.0);
        }
        return;
    }
    if items.first().is_some_and(|p| p.as_array().is_some_and(|c| c.first().is_some_and(Value::is_number))) {
        // A ring or line of positions.
        for p in items.iter_mut() {
            simplify(p);
        }
        items.dedup();
        return;
    }
    for item in items.iter_mut() {
        simplify(item);
    }
}
