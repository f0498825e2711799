//! Browser hardening on every answer (pages, API, files, refusals): everything the pages use is
//! embedded and served by the appliance itself, so the Content-Security-Policy allows only
//! `'self'`, plus the tile server of `web.tile_url` for images. No inline script or style
//! attribute is needed (page data travels as `<script type="application/json">`, which CSP does
//! not run; Leaflet styles elements through the CSSOM, which CSP allows).

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;

/// The headers added to every answer that does not set them itself.
pub struct Hardening {
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Hardening {
    pub fn new(tile_url: &str) -> Hardening {
        let csp = HeaderValue::from_str(&content_security_policy(tile_url)).unwrap_or_else(|_| {
            // A tile URL with bytes a header cannot carry: its tiles are blocked, the basemap stays.
            tracing::warn!("web.tile_url cannot be named in the Content-Security-Policy; online tiles will not load");
            HeaderValue::from_str(&content_security_policy("")).expect("the fixed policy is ASCII")
        });
        Hardening {
            headers: vec![
                (header::CONTENT_SECURITY_POLICY, csp),
                (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
                (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
                // For browsers that predate frame-ancestors.
                (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            ],
        }
    }
}

pub fn content_security_policy(tile_url: &str) -> String {
    let tiles = tile_source(tile_url).map(|s| format!(" {s}")).unwrap_or_default();
    format!(
        "default-src 'self'; img-src 'self' data:{tiles}; connect-src 'self'; frame-ancestors 'none'; \
         base-uri 'none'; form-action 'self'; object-src 'none'"
    )
}

/// The CSP source that covers `tile_url`'s tiles: its origin, with Leaflet's `{s}` subdomain
/// placeholder as a wildcard label; only the scheme when a placeholder sits elsewhere in the host.
fn tile_source(tile_url: &str) -> Option<String> {
    let (scheme, rest) = tile_url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host.strip_prefix("{s}.") {
        Some(parent) => format!("*.{parent}"),
        None => host.to_owned(),
    };
    let plain = |c: char| c.is_ascii_alphanumeric() || "-.:[]*".contains(c);
    if !host.is_empty() && host.chars().all(plain) {
        Some(format!("{scheme}://{host}"))
    } else {
        Some(format!("{scheme}:"))
    }
}

pub async fn harden(State(hardening): State<Arc<Hardening>>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in &hardening.headers {
        if !headers.contains_key(name) {
            headers.insert(name.clone(), value.clone());
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_the_appliance_and_the_tile_servers_images_only() {
        let csp = content_security_policy("https://tile.openstreetmap.org/{z}/{x}/{y}.png");
        assert_eq!(
            csp,
            "default-src 'self'; img-src 'self' data: https://tile.openstreetmap.org; connect-src 'self'; \
             frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
        );
        assert!(content_security_policy("").contains("img-src 'self' data:;"));
        assert_eq!(
            tile_source("https://{s}.tile.example:8443/{z}/{x}/{y}.png?key=1").unwrap(),
            "https://*.tile.example:8443"
        );
        assert_eq!(tile_source("http://tiles-{s}.example/{z}/{x}/{y}.png").unwrap(), "http:");
        assert_eq!(tile_source("https://user@tiles.example/{z}/{x}/{y}.png").unwrap(), "https://tiles.example");
        assert_eq!(tile_source(""), None);
    }
}
