//! How handler errors become HTTP answers: a 400 says what was wrong with the request; a 500 is
//! logged in full and answered with no internals (paths, secrets, upstream URLs stay private).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug)]
pub enum WebError {
    BadRequest(String),
    NotFound(String),
    /// The request is fine but the appliance cannot answer yet (no TLE, no location).
    Unavailable(String),
    /// The newest TLE does not fit the window asked for (too old, or the clock before its
    /// epoch): a 503 that also carries `tle_epoch` and `tle_age_days`.
    UnusableTle(crate::passes::UnusableTle),
    Internal(anyhow::Error),
}

impl From<anyhow::Error> for WebError {
    fn from(e: anyhow::Error) -> Self {
        WebError::Internal(e)
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let error = |status: StatusCode, message: String| (status, serde_json::json!({ "error": message }));
        let (status, body) = match self {
            WebError::BadRequest(m) => error(StatusCode::BAD_REQUEST, m),
            WebError::NotFound(m) => error(StatusCode::NOT_FOUND, m),
            WebError::Unavailable(m) => error(StatusCode::SERVICE_UNAVAILABLE, m),
            WebError::UnusableTle(u) => (
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({ "error": u.to_string(), "tle_epoch": u.epoch, "tle_age_days": u.age_days }),
            ),
            WebError::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "request failed");
                error(StatusCode::INTERNAL_SERVER_ERROR, "internal error; see the Outpost log".to_owned())
            }
        };
        (status, Json(body)).into_response()
    }
}
