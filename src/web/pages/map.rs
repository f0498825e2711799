//! `/`: the live map. The view is a frame; static/map.js fills it from the read API and keeps
//! it live over `/api/events`.

use super::{Page, layout, leaflet_head, page_data};
use crate::location::Located;
use crate::web::assets;
use maud::{Markup, html};

pub fn page(station: &str, tile_url: &str, located: Option<&Located>) -> Markup {
    let observer = located.map(|l| {
        serde_json::json!({
            "latitude": l.observer.latitude,
            "longitude": l.observer.longitude,
            "source": l.source,
        })
    });
    let data = serde_json::json!({ "tile_url": tile_url, "observer": observer });
    let head = html! {
        (leaflet_head())
        script src=(assets::url("vendor/leaflet.terminator/L.Terminator.js")) {}
        script src=(assets::url("map.js")) defer {}
    };
    let body = html! {
        (page_data(&data))
        main.map-layout {
            div #map role="region" aria-label="Map of the ISS" {}
            aside.panel #panel {
                section.now {
                    h2 { "ISS now " span #live .live-off title="live updates" { "offline" } }
                    dl.facts {
                        dt { "Position" } dd #iss-position { "—" }
                        dt { "Altitude" } dd #iss-altitude { "—" }
                        dt { "Speed" } dd #iss-speed { "—" }
                        dt { "Seen" } dd #iss-time { "waiting for the first position" }
                    }
                }
                section.track {
                    h2 { "Ground track" }
                    form #track-form {
                        div.range {
                            label { "From " input #track-from type="datetime-local" step="60" required; }
                            label { "To " input #track-to type="datetime-local" step="60" required; }
                        }
                        div.buttons {
                            button type="button" data-minutes="90" { "90 min" }
                            button type="button" data-minutes="1440" { "24 h" }
                            button type="button" data-minutes="10080" { "7 days" }
                            button type="submit" .primary { "Show" }
                        }
                    }
                    p #track-info .muted {}
                }
                section.passes {
                    h2 { "Passes" }
                    @if located.is_none() {
                        p.muted { "The location is unknown: set [location] latitude and longitude, or attach a GPS." }
                    }
                    p #next-pass .countdown {}
                    label.check { input #passes-all type="checkbox"; " also passes in daylight or shadow" }
                    ol #pass-list .pass-list {}
                    div #sky .sky hidden {}
                    @if located.is_some() {
                        (calendar_links())
                    }
                }
                footer.attribution {
                    "Basemap: Natural Earth. "
                    a href="/avalanche" { "Avalanche warnings" }
                    " · "
                    a href="/status" { "Status" }
                }
            }
        }
    };
    layout(Page::Map, "ISS map", station, head, body)
}

/// "Add to calendar": a `webcal://` subscription (map.js puts the page's host in it; until then it
/// is the plain URL) and a one-off download of `/api/passes.ics`.
fn calendar_links() -> Markup {
    html! {
        p.calendar {
            a #calendar-subscribe href="/api/passes.ics" { "Add to calendar" }
            " (the next 10 days, kept up to date) · "
            a #calendar-download href="/api/passes.ics" download="outpost-passes.ics" { "download .ics" }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::location::LocationSource;
    use crate::passes::Observer;

    #[test]
    fn the_page_hands_the_observer_and_tile_layer_to_its_script() {
        let located = Located {
            observer: Observer { latitude: 59.91, longitude: 10.75, altitude_m: 0.0 },
            source: LocationSource::Config,
            fix_time: None,
        };
        let html = page("pi", "https://tiles.example/{z}/{x}/{y}.png", Some(&located)).into_string();
        let data = html.split(r#"id="page-data" type="application/json">"#).nth(1).unwrap();
        let data: serde_json::Value = serde_json::from_str(data.split("</script>").next().unwrap()).unwrap();
        assert_eq!(data["observer"]["latitude"], 59.91);
        assert_eq!(data["tile_url"], "https://tiles.example/{z}/{x}/{y}.png");
        assert!(html.contains(r#"<div id="map""#));
        assert!(!html.contains("location is unknown"));
        assert!(html.contains(r#"id="calendar-download" href="/api/passes.ics""#));
        let unknown = page("pi", "", None).into_string();
        assert!(unknown.contains("location is unknown"));
        assert!(!unknown.contains("calendar-subscribe"), "no calendar without a location");
    }
}
