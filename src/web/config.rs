//! `[web]`: where the map listens, its optional basic auth, and the online tile layer.

use crate::config::{Invalid, KeyType, Secret, Section};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    #[serde(default = "d_listen")]
    pub listen: String,
    /// HTTP basic auth for every page and API path, when both are set.
    pub username: Option<String>,
    #[serde(default)]
    pub password: Secret,
    /// The online tile layer drawn over the bundled basemap when the browser reaches it
    /// ("" = bundled basemap only).
    #[serde(default = "d_tile_url")]
    pub tile_url: String,
}

fn d_listen() -> String {
    "127.0.0.1:8080".into()
}

fn d_tile_url() -> String {
    "https://tile.openstreetmap.org/{z}/{x}/{y}.png".into()
}

impl WebConfig {
    /// The basic-auth credentials, when `username` and `password` are both set.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        let user = self.username.as_deref().filter(|u| !u.is_empty())?;
        Some((user, self.password.expose())).filter(|(_, p)| !p.is_empty())
    }

    /// Where a command on this machine reaches the appliance: `listen`, with an
    /// all-interfaces address replaced by localhost.
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        let mut addr: std::net::SocketAddr = self.listen.parse().ok()?;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        Some(addr)
    }
}

impl Section for WebConfig {
    const KEYS: &'static [(&'static str, KeyType)] = &[
        ("listen", KeyType::Str),
        ("username", KeyType::Str),
        ("password", KeyType::Secret),
        ("tile_url", KeyType::Str),
    ];

    fn validate(&self) -> Result<(), Invalid> {
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(Invalid::new(
                "listen",
                format!("{:?} is not an address:port like 127.0.0.1:8080", self.listen),
            ));
        }
        if self.username.as_deref().is_some_and(|u| u.is_empty() || u.contains(':')) {
            return Err(Invalid::new("username", "must be non-empty and without ':' (HTTP basic auth)"));
        }
        // Whether username and password are both set is checked by `outpost run` only
        // (`app::Config::web_auth_problem`): the password is often only in the service's env file.
        let t = &self.tile_url;
        let tile_url_ok = (t.starts_with("https://") || t.starts_with("http://"))
            && ["{z}", "{x}", "{y}"].iter().all(|p| t.contains(p));
        if !t.is_empty() && !tile_url_ok {
            return Err(Invalid::new(
                "tile_url",
                format!("{t:?} is not a tile URL like https://tile.openstreetmap.org/{{z}}/{{x}}/{{y}}.png"),
            ));
        }
        Ok(())
    }
}
