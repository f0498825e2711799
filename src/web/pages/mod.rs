//! The three pages, as maud views. Handlers gather data off the async threads; views are pure
//! functions of it (tested without a server). The pages work on a phone and with no internet:
//! every script, style and the basemap come from /static/ (see `assets`).

mod avalanche;
mod map;
pub use crate::regions;
mod status;

use super::assets;
use super::error::WebError;
use super::{AppState, blocking};
use axum::extract::{Query, State};
use maud::{DOCTYPE, Markup, html};
use std::collections::HashMap;

/// NVE's terms ask every use of the warnings to carry this.
pub const NVE_ATTRIBUTION: &str = "Varsler fra Snøskredvarslingen i Norge og www.varsom.no";

#[derive(Clone, Copy, PartialEq)]
enum Page {
    Map,
    Avalanche,
    Status,
}

/// The frame every page shares: head, navigation, and the page's own scripts.
fn layout(page: Page, title: &str, station: &str, head: Markup, body: Markup) -> Markup {
    let nav =
        [(Page::Map, "/", "Map"), (Page::Avalanche, "/avalanche", "Avalanche"), (Page::Status, "/status", "Status")];
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1, viewport-fit=cover";
                meta name="theme-color" content="#0b1d33";
                title { (title) " · Outpost" }
                link rel="icon" href=(assets::url("icon.svg")) type="image/svg+xml";
                link rel="stylesheet" href=(assets::url("style.css"));
                (head)
            }
            body class={ "page-" (match page { Page::Map => "map", Page::Avalanche => "avalanche", Page::Status => "status" }) } {
                header.topbar {
                    a.brand href="/" { img src=(assets::url("icon.svg")) alt="" width="22" height="22"; span { "Outpost" } }
                    nav {
                        @for (p, href, label) in nav {
                            a href=(href) aria-current=[(p == page).then_some("page")] { (label) }
                        }
                    }
                    span.station title="station id" { (station) }
                }
                (body)
            }
        }
    }
}

fn leaflet_head() -> Markup {
    html! {
        link rel="stylesheet" href=(assets::url("vendor/leaflet/leaflet.css"));
        script src=(assets::url("vendor/leaflet/leaflet.js")) {}
        script src=(assets::url("common.js")) {}
    }
}

/// Data handed to a page's script, as JSON in the page (no extra request, no inline code).
fn page_data(value: &serde_json::Value) -> Markup {
    // `</` cannot end the script element early once escaped.
    let json = value.to_string().replace("</", "<\\/");
    html! { script #page-data type="application/json" { (maud::PreEscaped(json)) } }
}

pub async fn map(State(app): State<AppState>) -> Markup {
    let located = *app.location.borrow();
    map::page(&app.station, &app.tile_url, located.as_ref())
}

pub async fn avalanche(
    State(app): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Markup, WebError> {
    let request = avalanche::Request::parse(&q)?;
    let store = app.store.clone();
    let data = blocking(move || avalanche::Data::load(&store, request)).await?;
    Ok(avalanche::page(&app.station, &app.tile_url, &data))
}

pub async fn status(State(app): State<AppState>) -> Result<Markup, WebError> {
    let status = blocking(move || crate::status::Status::collect(&app.probes)).await?;
    Ok(status::page(&status, chrono::Utc::now()))
}
