//! Optional HTTP basic auth in front of every path (`[web] username` and `password`). The
//! appliance is read-only either way; this keeps a household's data off a shared network.
//! Plain HTTP sends the password in clear: put a TLS proxy in front when leaving the home LAN.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use std::sync::Arc;
use subtle::ConstantTimeEq;

pub struct BasicAuth {
    /// The `Authorization` header value that is accepted.
    expected: Vec<u8>,
}

impl BasicAuth {
    pub fn new(user: &str, password: &str) -> BasicAuth {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        BasicAuth { expected: format!("Basic {token}").into_bytes() }
    }

    fn allows(&self, header: Option<&HeaderValue>) -> bool {
        // Constant time, so the answer's timing says nothing about how much of a guess was right.
        header.is_some_and(|h| bool::from(h.as_bytes().ct_eq(&self.expected)))
    }
}

pub async fn require(State(auth): State<Arc<BasicAuth>>, request: Request, next: Next) -> Response {
    if auth.allows(request.headers().get(header::AUTHORIZATION)) {
        return next.run(request).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, r#"Basic realm="Outpost", charset="UTF-8""#)],
        "sign in to see this Outpost\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_credentials_pass() {
        let auth = BasicAuth::new("ada", "s3cret");
        let ok = HeaderValue::from_static("Basic YWRhOnMzY3JldA==");
        assert!(auth.allows(Some(&ok)));
        assert!(!auth.allows(None));
        assert!(!auth.allows(Some(&HeaderValue::from_static("Basic YWRhOnMzY3JldQ=="))));
        assert!(!auth.allows(Some(&HeaderValue::from_static("Bearer YWRhOnMzY3JldA=="))));
    }
}
