//! The browser files, embedded in the binary so the one file is the whole appliance and the map
//! works with no internet: vendored Leaflet and its terminator plugin (static/vendor/, from npm,
//! licences included), the Natural Earth basemap (GeoJSON made by build.rs), and the pages' own
//! scripts and styles.

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::OnceLock;

/// `(path under /static/, content type, bytes)`.
const FILES: &[(&str, &str, &[u8])] = &[
    ("style.css", "text/css; charset=utf-8", include_bytes!("../../static/style.css")),
    ("map.js", "text/javascript; charset=utf-8", include_bytes!("../../static/map.js")),
    ("avalanche.js", "text/javascript; charset=utf-8", include_bytes!("../../static/avalanche.js")),
    ("common.js", "text/javascript; charset=utf-8", include_bytes!("../../static/common.js")),
    ("icon.svg", "image/svg+xml", include_bytes!("../../static/icon.svg")),
    (
        "basemap/countries.geojson",
        "application/geo+json",
        include_bytes!(concat!(env!("OUT_DIR"), "/countries.geojson")),
    ),
    (
        "vendor/leaflet/leaflet.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/vendor/leaflet/leaflet.js"),
    ),
    (
        "vendor/leaflet/leaflet.css",
        "text/css; charset=utf-8",
        include_bytes!("../../static/vendor/leaflet/leaflet.css"),
    ),
    ("vendor/leaflet/LICENSE", "text/plain; charset=utf-8", include_bytes!("../../static/vendor/leaflet/LICENSE")),
    ("vendor/leaflet/images/layers.png", "image/png", include_bytes!("../../static/vendor/leaflet/images/layers.png")),
    (
        "vendor/leaflet/images/layers-2x.png",
        "image/png",
        include_bytes!("../../static/vendor/leaflet/images/layers-2x.png"),
    ),
    (
        "vendor/leaflet/images/marker-icon.png",
        "image/png",
        include_bytes!("../../static/vendor/leaflet/images/marker-icon.png"),
    ),
    (
        "vendor/leaflet/images/marker-icon-2x.png",
        "image/png",
        include_bytes!("../../static/vendor/leaflet/images/marker-icon-2x.png"),
    ),
    (
        "vendor/leaflet/images/marker-shadow.png",
        "image/png",
        include_bytes!("../../static/vendor/leaflet/images/marker-shadow.png"),
    ),
    (
        "vendor/leaflet.terminator/L.Terminator.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/vendor/leaflet.terminator/L.Terminator.js"),
    ),
    (
        "vendor/leaflet.terminator/LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("../../static/vendor/leaflet.terminator/LICENSE"),
    ),
    (
        "vendor/world-atlas/LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("../../static/vendor/world-atlas/LICENSE"),
    ),
    ("vendor/README.md", "text/plain; charset=utf-8", include_bytes!("../../static/vendor/README.md")),
];

/// One validator for every file: they change only with the binary.
fn etag() -> &'static HeaderValue {
    static ETAG: OnceLock<HeaderValue> = OnceLock::new();
    ETAG.get_or_init(|| {
        let mut h = crc32fast::Hasher::new();
        for (_, _, bytes) in FILES {
            h.update(bytes);
        }
        HeaderValue::from_str(&format!("\"{}-{:08x}\"", env!("CARGO_PKG_VERSION"), h.finalize()))
            .expect("an ASCII etag")
    })
}

/// A file's URL with the validator as a query string, so an upgrade is never served stale.
pub fn url(path: &str) -> String {
    let tag = etag().to_str().unwrap_or_default().trim_matches('"');
    format!("/static/{path}?v={tag}")
}

pub async fn serve(Path(path): Path<String>, headers: HeaderMap) -> Response {
    let Some((_, content_type, bytes)) = FILES.iter().find(|(p, _, _)| *p == path) else {
        return (StatusCode::NOT_FOUND, "no such file\n").into_response();
    };
    let tag = etag();
    let cache =
        [(header::ETAG, tag.clone()), (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400"))];
    if headers.get(header::IF_NONE_MATCH) == Some(tag) {
        return (StatusCode::NOT_MODIFIED, cache).into_response();
    }
    (cache, [(header::CONTENT_TYPE, *content_type)], *bytes).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_basemap_is_geojson_with_the_countries() {
        let (_, _, bytes) = FILES.iter().find(|(p, _, _)| *p == "basemap/countries.geojson").unwrap();
        let v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        assert_eq!(v["type"], "FeatureCollection");
        let features = v["features"].as_array().unwrap();
        assert!(features.len() > 200, "{} countries", features.len());
        assert!(features.iter().any(|f| f["properties"]["name"] == "Norway"));
    }

    #[test]
    fn every_leaflet_image_the_stylesheet_names_is_embedded() {
        let (_, _, css) = FILES.iter().find(|(p, _, _)| *p == "vendor/leaflet/leaflet.css").unwrap();
        let css = std::str::from_utf8(css).unwrap();
        let urls = css.split("url(").skip(1).filter_map(|s| s.split(')').next());
        // `#default#VML` is an old-IE behaviour, not a file.
        for image in urls.filter(|u| !u.starts_with('#')) {
            let path = format!("vendor/leaflet/{}", image.trim_matches(['"', '\'']));
            assert!(FILES.iter().any(|(p, _, _)| *p == path), "{path} is named by leaflet.css but not embedded");
        }
    }
}
