//! `GET /api/passes.ics`: the visible passes of the next 10 days for the device's location, from
//! the newest stored TLE, as an iCalendar feed that a phone subscribes to (`webcal://`; see
//! `passes::calendar` for the format and the stable UIDs). Behind basic auth like every `/api/`
//! path (calendar apps take the user and password in the URL).
//!
//! Without a location or a usable TLE it answers 503 with a plain-text reason and `Retry-After`,
//! not an empty calendar: a calendar app keeps the events it has after a failed refresh, whereas
//! an empty feed would wipe the passes off the phone for as long as the appliance cannot predict.

use super::{AppState, blocking};
use crate::passes::calendar::{Feed, events, render};
use crate::passes::{PassQuery, PredictError};
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use std::collections::HashMap;

/// The window the feed covers, from now (within `passes::MAX_HOURS`).
pub const DAYS: i64 = 10;
/// When a calendar app should try again after a 503: TLEs and fixes do not arrive by the minute.
const RETRY_AFTER_S: u32 = 3600;

/// A refusal as calendar apps and people read it: plain text.
fn plain(status: StatusCode, message: String) -> Response {
    let mut r = (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{message}\n")).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut().insert(header::RETRY_AFTER, RETRY_AFTER_S.into());
    }
    r
}

/// `?from=` (RFC 3339 or a date) moves the window's start, for tests and for looking ahead; a
/// calendar app sends nothing.
pub async fn passes_ics(State(app): State<AppState>, Query(q): Query<HashMap<String, String>>) -> Response {
    if let Some(unknown) = q.keys().find(|k| k.as_str() != "from") {
        return plain(StatusCode::BAD_REQUEST, format!("unknown parameter {unknown:?}; use from"));
    }
    let from = match q.get("from").map(|v| crate::dates::parse_time(v, false).map_err(|e| format!("from={v:?} {e}"))) {
        None => Utc::now(),
        Some(Ok(t)) => t,
        Some(Err(e)) => return plain(StatusCode::BAD_REQUEST, e),
    };
    let Some(located) = *app.location.borrow() else {
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "no passes: the location is unknown (set [location] latitude/longitude, or attach a GPS)".into(),
        );
    };
    let observer = located.observer;
    let store = app.store.clone();
    let tle = match blocking(move || store.latest_tle()).await {
        Ok(Some(tle)) => tle,
        Ok(None) => return plain(StatusCode::SERVICE_UNAVAILABLE, "no passes: no TLE has been collected yet".into()),
        Err(e) => return e.into_response(),
    };
    // The TLE rule of every surface: a window starting more than 14 days past the TLE (or
    // before it, by a wrong clock) would put fiction in the phone's calendar.
    if let Err(why) = crate::passes::freshness::check(tle.epoch, from) {
        return plain(StatusCode::SERVICE_UNAVAILABLE, format!("no passes: {why}"));
    }
    let query = PassQuery {
        observer,
        from,
        hours: (DAYS * 24) as f64,
        options: app.pass_options,
        all: false,
        max_magnitude: None,
        brightest_first: false,
    };
    let name = format!("ISS passes · {}", app.station);
    let description = format!(
        "Visible ISS passes over {:.4}, {:.4} for {DAYS} days from {}, predicted by Outpost from the TLE of {}",
        observer.latitude,
        observer.longitude,
        from.format("%Y-%m-%d %H:%M UTC"),
        tle.epoch.format("%Y-%m-%d %H:%M UTC"),
    );
    let made = tokio::task::spawn_blocking(move || -> Result<String, PredictError> {
        let passes = query.run(&tle)?;
        let events = events(&tle, observer, &passes)?;
        let feed = Feed { name: &name, description: &description, generated: Utc::now() };
        Ok(render(&feed, &events, &chrono::Local))
    })
    .await;
    match made {
        Ok(Ok(text)) => (
            [
                (header::CONTENT_TYPE, "text/calendar; charset=utf-8"),
                (header::CONTENT_DISPOSITION, "inline; filename=\"outpost-passes.ics\""),
            ],
            text,
        )
            .into_response(),
        Ok(Err(e)) => plain(StatusCode::SERVICE_UNAVAILABLE, format!("no passes: {e}")),
        Err(e) => super::error::WebError::Internal(e.into()).into_response(),
    }
}
