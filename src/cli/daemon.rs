//! How CLI commands reach a running `outpost run`: at `web.listen` (an all-interfaces address
//! becomes localhost), signed in with `[web]`'s basic-auth credentials when they are set.

use crate::app::Config;
use anyhow::Context;

/// `http://<web.listen>/<path>`.
pub fn url(config: &Config, path: &str) -> anyhow::Result<reqwest::Url> {
    let addr = config.local_web_addr().context("web.listen is not an address")?;
    Ok(reqwest::Url::parse(&format!("http://{addr}{path}"))?)
}

/// A GET of `url` on the appliance, with credentials when `[web]` has them.
pub fn get(
    config: &Config,
    url: reqwest::Url,
    timeout: Option<std::time::Duration>,
) -> anyhow::Result<reqwest::RequestBuilder> {
    request(config, reqwest::Method::GET, url, timeout)
}

/// A request of `method` to `url` on the appliance, with credentials when `[web]` has them.
pub fn request(
    config: &Config,
    method: reqwest::Method,
    url: reqwest::Url,
    timeout: Option<std::time::Duration>,
) -> anyhow::Result<reqwest::RequestBuilder> {
    crate::install_tls_provider();
    let mut client = reqwest::Client::builder();
    if let Some(t) = timeout {
        client = client.timeout(t);
    }
    let request = client.build()?.request(method, url);
    Ok(match config.web.credentials() {
        Some((user, password)) => request.basic_auth(user, Some(password)),
        None => request,
    })
}

/// How to give a command the web password, which is usually only in the service's root-only env
/// file (the appliance answers 401 without it).
pub const GIVE_PASSWORD: &str =
    "give it as OUTPOST_WEB_PASSWORD (on the Pi: sudo outpost ..., which reads /etc/outpost/outpost.env)";

/// An error saying how to give the password, for a 401.
pub fn refused_without_password(response: &reqwest::Response) -> anyhow::Result<()> {
    let refused = response.status() == reqwest::StatusCode::UNAUTHORIZED;
    anyhow::ensure!(!refused, "the running appliance asks for the web password: {GIVE_PASSWORD}");
    Ok(())
}
