//! The read API: thin handlers that parse parameters, run a store query off the async threads,
//! and shape the answer. Field names are a stable interface (see README).

use super::error::WebError;
use super::{AppState, blocking};
use crate::domain::{AvalancheWarning, IssPosition};
use crate::store::Track;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Deserialize;
use std::collections::HashMap;

/// Without `max_points`, a track is still capped at this many points (downsampled beyond it), so
/// no request can make the appliance build a year of points in memory.
pub const DEFAULT_MAX_POINTS: usize = 50_000;
const TRACK_DEFAULT_SPAN_MIN: i64 = 90;

pub async fn healthz(State(app): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    match app.probes.health() {
        Ok(()) => (StatusCode::OK, Json(serde_json::json!({ "status": "ok" }))),
        Err((status, e)) => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({ "status": status, "error": e })))
        }
    }
}

/// `POST /api/sinks/{name}/resend`: asks the sink to re-send its dead letters and answers with
/// what happened. The one path that changes anything; it needs a JSON request (a cross-site form
/// cannot send one without the browser asking first), and basic auth like every path.
pub async fn resend(
    State(app): State<AppState>,
    axum::extract::Path(name): axum::extract::Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<Json<crate::sinks::forwarder::ResendReport>, WebError> {
    let json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return Err(WebError::BadRequest("send Content-Type: application/json".into()));
    }
    let entry = app.probes.sinks.iter().find(|e| e.name == name);
    let Some(entry) = entry else { return Err(WebError::NotFound(format!("no sink named {name:?}"))) };
    let Some(requests) = &entry.resend else {
        return Err(WebError::Unavailable(format!("the {name} sink is not configured")));
    };
    let (reply, report) = tokio::sync::oneshot::channel();
    requests.send(reply).await.map_err(|_| WebError::Unavailable(format!("the {name} sink has stopped")))?;
    // Each dead letter waits at most the forwarder's send time-out; a long list is rare.
    match tokio::time::timeout(std::time::Duration::from_secs(600), report).await {
        Ok(Ok(r)) => Ok(Json(r)),
        _ => Err(WebError::Unavailable(format!("the {name} sink did not finish re-sending"))),
    }
}

pub async fn iss_latest(State(app): State<AppState>) -> Result<Json<IssPosition>, WebError> {
    let store = app.store.clone();
    blocking(move || store.latest_position())
        .await?
        .map(Json)
        .ok_or_else(|| WebError::NotFound("no ISS position has been collected yet".into()))
}

/// `from`/`to` as RFC 3339 or YYYY-MM-DD (a whole UTC day: `from` its start, `to` its end), in
/// `crate::dates::YEARS`.
pub(super) fn parse_time(name: &str, v: &str, end_of_day: bool) -> Result<DateTime<Utc>, WebError> {
    crate::dates::parse_time(v, end_of_day).map_err(|e| WebError::BadRequest(format!("{name}={v:?} {e}")))
}

/// A `YYYY-MM-DD` parameter, in `crate::dates::YEARS`.
pub(super) fn parse_date(name: &str, v: &str) -> Result<NaiveDate, WebError> {
    crate::dates::parse_date(v).map_err(|e| WebError::BadRequest(format!("{name}={v:?} {e}")))
}

/// Query parameters arrive as strings so that a bad value gets our message, not serde's.
pub async fn iss_track(
    State(app): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Track>, WebError> {
    if let Some(unknown) = q.keys().find(|k| !matches!(k.as_str(), "from" | "to" | "max_points")) {
        return Err(WebError::BadRequest(format!("unknown parameter {unknown:?}; use from, to, max_points")));
    }
    let to = q.get("to").map(|v| parse_time("to", v, true)).transpose()?.unwrap_or_else(Utc::now);
    let from = match q.get("from") {
        Some(v) => parse_time("from", v, false)?,
        None => crate::dates::add(to, -Duration::minutes(TRACK_DEFAULT_SPAN_MIN)).map_err(WebError::BadRequest)?,
    };
    if from > to {
        return Err(WebError::BadRequest(format!("from ({from}) is after to ({to})")));
    }
    let max_points = match q.get("max_points") {
        None => DEFAULT_MAX_POINTS,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=DEFAULT_MAX_POINTS).contains(&n) => n,
            _ => {
                return Err(WebError::BadRequest(format!(
                    "max_points={v:?} must be a whole number from 1 to {DEFAULT_MAX_POINTS}"
                )));
            }
        },
    };
    let store = app.store.clone();
    Ok(Json(blocking(move || store.track(from, to, Some(max_points))).await?))
}

#[derive(Deserialize)]
pub struct AvalancheQuery {
    date: Option<String>,
}

pub async fn avalanche(
    State(app): State<AppState>,
    Query(q): Query<AvalancheQuery>,
) -> Result<Json<Vec<AvalancheWarning>>, WebError> {
    let date = match q.date.as_deref() {
        None => crate::domain::norwegian_today(),
        Some(v) => parse_date("date", v)?,
    };
    let store = app.store.clone();
    Ok(Json(blocking(move || store.avalanche_for_date(date)).await?))
}

#[derive(Deserialize)]
pub struct WeatherQuery {
    date: Option<String>,
    region: Option<String>,
}

/// Every followed region's newest weather version for a Norwegian day (today by default), or one
/// region's with `region=ID`.
pub async fn weather(
    State(app): State<AppState>,
    Query(q): Query<WeatherQuery>,
) -> Result<Json<Vec<crate::domain::WeatherDaily>>, WebError> {
    let date = match q.date.as_deref() {
        None => crate::domain::norwegian_today(),
        Some(v) => parse_date("date", v)?,
    };
    let region = match q.region.as_deref() {
        None => None,
        Some(v) => Some(
            v.parse::<u32>()
                .ok()
                .filter(|r| (3000..=3999).contains(r))
                .ok_or_else(|| WebError::BadRequest(format!("region={v:?} is not an NVE region id (3001-3046)")))?,
        ),
    };
    let store = app.store.clone();
    Ok(Json(blocking(move || store.weather_for_date(date, region)).await?))
}

pub async fn status(State(app): State<AppState>) -> Result<Json<crate::status::Status>, WebError> {
    Ok(Json(blocking(move || crate::status::Status::collect(&app.probes)).await?))
}

#[derive(Deserialize)]
pub struct ExportQuery {
    kind: crate::export::KindArg,
    format: crate::export::Format,
    #[serde(default, deserialize_with = "crate::dates::optional_date")]
    from: Option<NaiveDate>,
    #[serde(default, deserialize_with = "crate::dates::optional_date")]
    to: Option<NaiveDate>,
}

/// Streams `outpost export` from the running appliance (the store is locked while it runs), at
/// most `slow::EXPORT_LIMIT` at once (`web::export`).
pub async fn export(
    State(app): State<AppState>,
    q: Result<Query<ExportQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::response::Response, WebError> {
    let Query(q) = q.map_err(|e| {
        WebError::BadRequest(format!(
            "{e}; use kind=iss|tle|avalanche|weather|features&format=cql|csv|jsonl[&from=YYYY-MM-DD][&to=YYYY-MM-DD]"
        ))
    })?;
    if (q.kind, q.format) == (crate::export::KindArg::Features, crate::export::Format::Cql) {
        return Err(WebError::BadRequest(crate::export::features::CQL_REFUSED.replace("--", "")));
    }
    let req = crate::export::ExportRequest {
        kind: q.kind,
        format: q.format,
        from: q.from,
        to: q.to,
        keyspace: app.keyspace.clone(),
        replication: app.replication.clone(),
    };
    Ok(super::export::stream(&app, req))
}

/// Spacing of the points of `path=true`, seconds.
const PASS_PATH_STEP_S: u32 = 10;

fn flag(q: &HashMap<String, String>, name: &str) -> Result<bool, WebError> {
    match q.get(name).map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") | Some("") => Ok(true),
        Some(v) => Err(WebError::BadRequest(format!("{name}={v:?} must be true or false"))),
    }
}

/// `GET /api/passes?from=&hours=&all=&min_elevation=&sun_limit=&lat=&lon=&alt_m=&path=&max_magnitude=&sort=&allow_old_tle=`:
/// passes for the device's location (or the one given) from the newest stored TLE; visible ones
/// unless all; at most `max_magnitude` bright; `sort=brightness` puts the brightest first. With `path=true` each pass carries `path`: the ISS every 10 s from rise to set, over the
/// ground and in the sky (what the map draws). A TLE that does not fit the window
/// (`passes::freshness`) is a 503 naming its epoch and age, unless `allow_old_tle=true`, which
/// predicts anyway and marks every pass (`OldTleMark`).
pub async fn passes(
    State(app): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Vec<serde_json::Value>>, WebError> {
    const KNOWN: [&str; 12] = [
        "from",
        "hours",
        "all",
        "min_elevation",
        "sun_limit",
        "lat",
        "lon",
        "alt_m",
        "path",
        "max_magnitude",
        "sort",
        "allow_old_tle",
    ];
    if let Some(unknown) = q.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(WebError::BadRequest(format!("unknown parameter {unknown:?}; use {}", KNOWN.join(", "))));
    }
    let num = |name: &str, lo: f64, hi: f64| -> Result<Option<f64>, WebError> {
        match q.get(name) {
            None => Ok(None),
            Some(v) => match v.parse::<f64>() {
                Ok(x) if x.is_finite() && (lo..=hi).contains(&x) => Ok(Some(x)),
                _ => Err(WebError::BadRequest(format!("{name}={v:?} must be a number from {lo} to {hi}"))),
            },
        }
    };
    let asked_from = q.get("from").map(|v| parse_time("from", v, false)).transpose()?;
    let from = asked_from.unwrap_or_else(Utc::now);
    let hours = num("hours", 0.0, crate::passes::MAX_HOURS)?.unwrap_or(72.0);
    let all = flag(&q, "all")?;
    let with_path = flag(&q, "path")?;
    let allow_old_tle = flag(&q, "allow_old_tle")?;
    let max_magnitude = num("max_magnitude", -10.0, 10.0)?;
    let brightest_first = match q.get("sort").map(String::as_str) {
        None | Some("time") => false,
        Some("brightness") => true,
        Some(v) => return Err(WebError::BadRequest(format!("sort={v:?} must be time or brightness"))),
    };
    let mut options = app.pass_options;
    if let Some(e) = num("min_elevation", 0.0, 89.0)? {
        options.min_elevation_deg = e;
    }
    if let Some(s) = num("sun_limit", -18.0, 0.0)? {
        options.sun_limit_deg = s;
    }
    let observer = match (num("lat", -90.0, 90.0)?, num("lon", -180.0, 180.0)?) {
        (Some(latitude), Some(longitude)) => {
            crate::passes::Observer { latitude, longitude, altitude_m: num("alt_m", -500.0, 9000.0)?.unwrap_or(0.0) }
        }
        (None, None) => match *app.location.borrow() {
            Some(located) => located.observer,
            None => {
                return Err(WebError::Unavailable(
                    "the location is unknown: set [location] latitude/longitude or gpsd, or pass lat and lon".into(),
                ));
            }
        },
        _ => return Err(WebError::BadRequest("lat and lon go together".into())),
    };
    let store = app.store.clone();
    let tle = blocking(move || store.latest_tle())
        .await?
        .ok_or_else(|| WebError::Unavailable("no TLE has been collected yet".into()))?;
    let tle_epoch = tle.epoch;
    let old_tle = match crate::passes::freshness::check(tle.epoch, from) {
        Ok(()) => None,
        Err(unusable) if allow_old_tle => Some(crate::passes::OldTleMark::from(&unusable)),
        Err(unusable) => return Err(WebError::UnusableTle(unusable)),
    };
    let query = crate::passes::PassQuery { observer, from, hours, options, all, max_magnitude, brightest_first };
    let passes = tokio::task::spawn_blocking(move || {
        query
            .run(&tle)?
            .into_iter()
            .map(|pass| {
                let mut json = serde_json::to_value(&pass).unwrap_or_default();
                if let Some(mark) = &old_tle {
                    mark.apply(&mut json);
                }
                if with_path {
                    json["path"] =
                        serde_json::to_value(crate::passes::pass_path(&tle, observer, &pass, PASS_PATH_STEP_S)?)
                            .unwrap_or_default();
                }
                Ok(json)
            })
            .collect::<Result<Vec<_>, crate::passes::PredictError>>()
    })
    .await
    .map_err(|e| WebError::Internal(e.into()))?
    .map_err(|e| {
        use crate::passes::PredictError as E;
        match e {
            // A TLE is good for days around its epoch: a `from` decades away is the request's fault.
            E::Propagation(_) if asked_from.is_some() => {
                WebError::BadRequest(format!("{e}; the newest TLE's epoch is {tle_epoch}: ask for a time near it"))
            }
            E::InvalidObserver(_) | E::InvalidOptions(_) | E::EndlessPass(_) => WebError::BadRequest(e.to_string()),
            E::BadTle(_) | E::UnsupportedOrbit(_) | E::Propagation(_) => WebError::Unavailable(e.to_string()),
        }
    })?;
    Ok(Json(passes))
}
