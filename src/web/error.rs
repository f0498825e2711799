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
    Internal(anyhow::Error),
}

impl From<anyhow::Error> for WebError {
    fn from(e: anyhow::Error) -> Self {
        WebError::Internal(e)
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            WebError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            WebError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            WebError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, m),
            WebError::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error; see the Outpost log".to_owned())
            }
        };
        (status, Json(serde_json::json!({ "error": message }))).into_response()
    }
}
