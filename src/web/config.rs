//! `[web]`: where the map listens, the names it answers to, its optional basic auth, and the
//! online tile layer.

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
    /// Host names (or IP addresses) the appliance answers to besides the ones it knows itself
    /// (`listen`, localhost, the machine's name and `<name>.local`, the address a request
    /// arrived at): a reverse proxy's name, a DNS name on the LAN. Any port.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
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
        ("allowed_hosts", KeyType::StrList),
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
        for host in &self.allowed_hosts {
            if normalize_host_entry(host).is_none() {
                return Err(Invalid::new(
                    "allowed_hosts",
                    format!(
                        "{host:?} is not a host name or IP address like outpost.lan or 192.168.1.20 (no port: any port is answered)"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// An `allowed_hosts` entry as the Host check compares it (lower case, no trailing dot, IPv6
/// without brackets), or `None` when it is neither a DNS name nor an IP address.
pub fn normalize_host_entry(entry: &str) -> Option<String> {
    let entry = entry.trim();
    let bare = entry.strip_prefix('[').and_then(|e| e.strip_suffix(']')).unwrap_or(entry);
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        return Some(ip.to_canonical().to_string());
    }
    let name = entry.strip_suffix('.').unwrap_or(entry).to_ascii_lowercase();
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    (name.len() <= 253 && name.split('.').all(label_ok)).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_hosts_are_names_or_addresses_without_a_port() {
        assert_eq!(normalize_host_entry("Outpost.LAN.").as_deref(), Some("outpost.lan"));
        assert_eq!(normalize_host_entry("pi").as_deref(), Some("pi"));
        assert_eq!(normalize_host_entry("192.168.1.20").as_deref(), Some("192.168.1.20"));
        assert_eq!(normalize_host_entry("[FD00::2]").as_deref(), Some("fd00::2"));
        assert_eq!(normalize_host_entry("::ffff:10.0.0.1").as_deref(), Some("10.0.0.1"));
        for bad in ["", "pi.lan:8080", "http://pi.lan", "*.lan", "pi..lan", "-pi.lan", "pi lan", "pi/x", "a@b"] {
            assert_eq!(normalize_host_entry(bad), None, "{bad:?}");
        }
    }
}
