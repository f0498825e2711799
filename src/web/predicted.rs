//! `GET /api/iss/predicted?from=&to=&step_s=`: where the newest stored TLE puts the ISS (the
//! map's orbit ahead and the fill of gaps in the stored track). Computed per request, never stored
//! as observations.
//!
//! A TLE is only trusted within `TLE_USEFUL_DAYS` of its epoch (the planner's rule). A window
//! outside that is the request's fault (`400`) while the clock itself is within it; when the clock
//! is not (no TLE arrived for two weeks, or the clock is wrong) there is no usable TLE at all and
//! the answer is `503`, naming the TLE's epoch and age.

use super::api::parse_time;
use super::error::WebError;
use super::{AppState, blocking};
use crate::passes::freshness::{self, TLE_USEFUL_DAYS};
use crate::passes::{MAX_STEP_S, PredictError, PredictedPoint};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use std::collections::HashMap;

const DEFAULT_STEP_S: u32 = 30;

#[derive(Serialize)]
pub struct Predicted {
    /// The epoch of the TLE the points were computed from.
    tle_epoch: DateTime<Utc>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    step_s: u32,
    points: Vec<PredictedPoint>,
}

/// A refusal that names the TLE, so that a client can say which elements were too old.
struct UnusableTle {
    status: StatusCode,
    error: String,
    tle_epoch: DateTime<Utc>,
    /// Days from the epoch to the clock, to a tenth (as `/api/passes` says it).
    tle_age_days: f64,
}

impl IntoResponse for UnusableTle {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": self.error,
            "tle_epoch": self.tle_epoch,
            "tle_age_days": self.tle_age_days,
        });
        (self.status, Json(body)).into_response()
    }
}

pub async fn predicted(
    State(app): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, WebError> {
    if let Some(unknown) = q.keys().find(|k| !matches!(k.as_str(), "from" | "to" | "step_s")) {
        return Err(WebError::BadRequest(format!("unknown parameter {unknown:?}; use from, to, step_s")));
    }
    let now = Utc::now();
    let from = q.get("from").map(|v| parse_time("from", v, false)).transpose()?.unwrap_or(now);
    let to = q.get("to").map(|v| parse_time("to", v, true)).transpose()?;
    let step_s = match q.get("step_s") {
        None => DEFAULT_STEP_S,
        Some(v) => v.parse::<u32>().ok().filter(|s| (1..=MAX_STEP_S).contains(s)).ok_or_else(|| {
            WebError::BadRequest(format!("step_s={v:?} must be a whole number of seconds from 1 to {MAX_STEP_S}"))
        })?,
    };
    let store = app.store.clone();
    let tle = blocking(move || store.latest_tle())
        .await?
        .ok_or_else(|| WebError::Unavailable("no TLE has been collected yet: no orbit can be predicted".into()))?;
    let to = match to {
        Some(to) => to,
        None => {
            let period = crate::passes::orbital_period(&tle).map_err(|e| WebError::Unavailable(e.to_string()))?;
            crate::dates::add(from, period).map_err(WebError::BadRequest)?
        }
    };
    if let Err(refusal) = usable(tle.epoch, from, to, now) {
        return Ok(refusal.into_response());
    }
    let tle_epoch = tle.epoch;
    let points = tokio::task::spawn_blocking(move || crate::passes::predicted_track(&tle, from, to, step_s))
        .await
        .map_err(|e| WebError::Internal(e.into()))?
        .map_err(|e| match e {
            // The bounds' own words ("step_s must be ..."), not the pass search's heading.
            PredictError::InvalidOptions(why) => WebError::BadRequest(why),
            _ => WebError::Unavailable(e.to_string()),
        })?;
    Ok(Json(Predicted { tle_epoch, from, to, step_s, points }).into_response())
}

/// Whether a TLE with `epoch` may answer for `from..to` when the clock says `now`.
fn usable(epoch: DateTime<Utc>, from: DateTime<Utc>, to: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), UnusableTle> {
    let reach = Duration::days(TLE_USEFUL_DAYS);
    let within = |t: DateTime<Utc>| t.signed_duration_since(epoch).abs() <= reach;
    if within(from) && within(to) {
        return Ok(());
    }
    let tle_age_days = freshness::age_days(epoch, now);
    // The one rule of every surface: is the TLE usable at all, now?
    let clock_fits = freshness::check(epoch, now).is_ok();
    let (status, error) = if clock_fits {
        (
            StatusCode::BAD_REQUEST,
            format!(
                "the newest TLE's epoch is {epoch}; positions are predicted only within {TLE_USEFUL_DAYS} days of it: \
                 ask for a time near it"
            ),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "no usable TLE: the newest one's epoch ({epoch}) is {tle_age_days} days from the clock ({now}); \
                 positions are predicted only within {TLE_USEFUL_DAYS} days of a TLE's epoch"
            ),
        )
    };
    Err(UnusableTle { status, error, tle_epoch: epoch, tle_age_days })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_window_far_from_the_epoch_is_the_requests_fault_unless_the_clock_is_too() {
        let epoch = t("2023-09-18T10:40:25Z");
        let now = t("2023-09-20T00:00:00Z");
        assert!(usable(epoch, t("2023-09-18T12:00:00Z"), t("2023-09-18T13:33:00Z"), now).is_ok());
        assert!(usable(epoch, t("2023-09-05T00:00:00Z"), t("2023-10-02T10:00:00Z"), now).is_ok(), "14 days each way");
        let far = usable(epoch, t("2023-10-03T00:00:00Z"), t("2023-10-03T01:00:00Z"), now).unwrap_err();
        assert_eq!(far.status, StatusCode::BAD_REQUEST);
        assert!(far.error.contains("ask for a time near it"), "{}", far.error);
        assert_eq!(far.tle_age_days, 1.6);
        // A TLE 1,170 days old at the clock: nothing near the clock can be predicted.
        let now = t("2026-12-01T12:00:00Z");
        let stale = usable(epoch, now, now + Duration::minutes(93), now).unwrap_err();
        assert_eq!((stale.status, stale.tle_age_days), (StatusCode::SERVICE_UNAVAILABLE, 1170.1));
        assert!(stale.error.starts_with("no usable TLE"), "{}", stale.error);
        // Its own epoch can still be asked about explicitly.
        assert!(usable(epoch, epoch, epoch + Duration::hours(1), now).is_ok());
        // A clock in 1970 is wrong: 503 too.
        let booted = t("1970-01-01T00:00:10Z");
        assert_eq!(usable(epoch, booted, booted, booted).unwrap_err().status, StatusCode::SERVICE_UNAVAILABLE);
    }
}
