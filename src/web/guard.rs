//! The front door's first check, before routing and before auth: the Host header must name this
//! appliance. A web page the owner visits can rebind its own DNS name to 127.0.0.1 or the Pi's
//! LAN address; the browser then sends `Host: evil.example` and treats the answer as
//! evil.example's to read. Refusing unknown names (421) takes that read away.
//!
//! Known: `localhost` and loopback addresses, the `web.listen` address (as configured, 0.0.0.0
//! too), the machine's host name and `<name>.local`, `web.allowed_hosts`, and an IP address when
//! it is the address the connection arrived at (how a LAN user reaches a Pi listening on
//! 0.0.0.0). An IP literal cannot be rebound, but a NAT or port-forward address is not one the
//! appliance knows itself: it goes in `allowed_hosts`. Any port, any case, with or without a
//! trailing dot. A request without a Host (HTTP/1.0) is refused too.

use super::config::normalize_host_entry;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::serve::IncomingStream;
use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Both ends of an accepted connection: the client (auth back-off is per client) and the local
/// address it reached (the IP a LAN user typed, for the Host check).
#[derive(Clone, Copy, Debug)]
pub struct Connection {
    pub peer: SocketAddr,
    pub local: Option<SocketAddr>,
}

impl Connected<IncomingStream<'_, super::slow::GuardedListener>> for Connection {
    fn connect_info(stream: IncomingStream<'_, super::slow::GuardedListener>) -> Self {
        Connection { peer: *stream.remote_addr(), local: stream.io().get_ref().local_addr().ok() }
    }
}

/// The connection a request came over, when the server was started with connect info.
pub fn connection(request: &Request) -> Option<Connection> {
    request.extensions().get::<ConnectInfo<Connection>>().map(|c| c.0)
}

/// The front door's refusals since start, for `/metrics`. One web server per process, so one
/// set of counters: process-wide, and every router built in the process counts into it.
pub struct DoorCounts {
    pub refused_host: AtomicU64,
    pub unauthorized: AtomicU64,
    pub throttled: AtomicU64,
    pub auth_failures: AtomicU64,
}

pub static DOOR: DoorCounts = DoorCounts {
    refused_host: AtomicU64::new(0),
    unauthorized: AtomicU64::new(0),
    throttled: AtomicU64::new(0),
    auth_failures: AtomicU64::new(0),
};

impl DoorCounts {
    pub fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// `(refused: [(reason, n)], auth failures)`.
    pub fn snapshot(&self) -> ([(&'static str, u64); 3], u64) {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        (
            [
                ("host", n(&self.refused_host)),
                ("unauthorized", n(&self.unauthorized)),
                ("throttled", n(&self.throttled)),
            ],
            n(&self.auth_failures),
        )
    }
}

/// The names and addresses this appliance answers to.
#[derive(Debug)]
pub struct KnownHosts {
    names: HashSet<String>,
    addresses: HashSet<IpAddr>,
}

impl KnownHosts {
    /// From `web.listen`, `web.allowed_hosts` (validated by the config) and the machine's name.
    pub fn new(listen: &str, allowed: &[String], hostname: &str) -> KnownHosts {
        let mut known = KnownHosts { names: HashSet::from(["localhost".to_owned()]), addresses: HashSet::new() };
        // As given, 0.0.0.0 too: Linux reaches this machine by it, and an address cannot be rebound.
        if let Ok(addr) = listen.parse::<SocketAddr>() {
            known.addresses.insert(addr.ip().to_canonical());
        }
        if let Some(full) = normalize_host_entry(hostname).filter(|h| h.parse::<IpAddr>().is_err()) {
            // `pi.home.arpa` is also reached as `pi` and, over mDNS, `pi.local`.
            let short = full.split('.').next().unwrap_or(&full).to_owned();
            known.names.extend([format!("{short}.local"), format!("{full}.local"), short, full]);
        }
        for entry in allowed.iter().filter_map(|h| normalize_host_entry(h)) {
            match entry.parse::<IpAddr>() {
                Ok(ip) => known.addresses.insert(ip),
                Err(_) => known.names.insert(entry),
            };
        }
        known
    }

    /// Whether `authority` (a Host header: `name[:port]`, `ip[:port]`, `[v6][:port]`) is known,
    /// for a connection that arrived at `local`.
    pub fn allows(&self, authority: &str, local: Option<IpAddr>) -> bool {
        let Some(host) = host_of(authority) else { return false };
        match host.parse::<IpAddr>() {
            Ok(ip) => {
                let ip = ip.to_canonical();
                ip.is_loopback() || self.addresses.contains(&ip) || local.is_some_and(|l| l.to_canonical() == ip)
            }
            Err(_) => self.names.contains(&host),
        }
    }
}

/// The host part of an authority, lower case, without port, brackets or trailing dot; `None`
/// for anything that is not one host (user info, a path, a bare IPv6 address, a bad port).
fn host_of(authority: &str) -> Option<String> {
    let (host, port) = match authority.strip_prefix('[') {
        Some(rest) => {
            let (v6, after) = rest.split_once(']')?;
            v6.parse::<std::net::Ipv6Addr>().ok()?;
            let port = if after.is_empty() { None } else { Some(after.strip_prefix(':')?) };
            (v6, port)
        }
        None => match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    if port.is_some_and(|p| p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let host = host.strip_suffix('.').unwrap_or(host);
    let valid = !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b));
    valid.then(|| host.to_ascii_lowercase())
}

/// Refuses, before routing, a request whose Host is not one of `known`'s. With an absolute
/// request target (`GET http://name/ HTTP/1.1`) its authority is checked as well.
pub async fn check_host(State(known): State<Arc<KnownHosts>>, request: Request, next: Next) -> Response {
    let local = connection(&request).and_then(|c| c.local).map(|a| a.ip());
    let mut hosts = request.headers().get_all(header::HOST).iter();
    let host = match (hosts.next(), hosts.next()) {
        (Some(h), None) => h.to_str().ok(),
        _ => None, // none, or two: ambiguous
    };
    let target_ok = request.uri().authority().is_none_or(|a| known.allows(a.as_str(), local));
    if host.is_some_and(|h| known.allows(h, local)) && target_ok {
        return next.run(request).await;
    }
    DoorCounts::count(&DOOR.refused_host);
    tracing::debug!(
        host = host.map(|h| h.chars().take(100).collect::<String>()),
        "refused a request for an unknown host"
    );
    (
        StatusCode::MISDIRECTED_REQUEST,
        "this Outpost answers only to the names it is known by; add this one to web.allowed_hosts\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> KnownHosts {
        KnownHosts::new("192.168.1.20:8080", &["Outpost.Example.com".into(), "10.8.0.1".into()], "Pi.home.arpa")
    }

    #[test]
    fn the_appliances_own_names_pass_in_any_case_and_with_any_port() {
        let k = known();
        for host in [
            "localhost",
            "LOCALHOST:8080",
            "localhost.",
            "127.0.0.1",
            "127.0.0.1:9999",
            "[::1]:8080",
            "[::1]",
            "192.168.1.20:8080",
            "192.168.1.20",
            "pi",
            "pi.local:8080",
            "PI.LOCAL.",
            "pi.home.arpa",
            "pi.home.arpa.local",
            "outpost.example.com",
            "outpost.example.com.:443",
            "10.8.0.1:8443",
        ] {
            assert!(k.allows(host, None), "{host}");
        }
    }

    #[test]
    fn other_names_and_addresses_are_refused() {
        let k = known();
        for host in [
            "",
            "evil.example",
            "evil.example:8080",
            "pi.evil.example",
            "outpost.example.com.evil",
            "localhost.evil.example",
            "192.168.1.21:8080",
            "0.0.0.0:8080",
            "[fd00::2]:8080",
            "pi:",
            "pi:80a",
            "pi:123456",
            "user@pi",
            "pi/x",
            "::1",
            "[::1",
            "[::1]x",
            "pi local",
        ] {
            assert!(!k.allows(host, None), "{host:?}");
        }
    }

    #[test]
    fn an_ip_address_passes_only_when_the_connection_arrived_at_it() {
        let k = KnownHosts::new("0.0.0.0:8080", &[], "pi");
        let lan: IpAddr = "192.168.1.20".parse().unwrap();
        assert!(k.allows("192.168.1.20:8080", Some(lan)));
        // A dual-stack socket sees an IPv4 client's local address as ::ffff:192.168.1.20.
        assert!(k.allows("192.168.1.20:8080", Some("::ffff:192.168.1.20".parse().unwrap())));
        assert!(k.allows("[fd00::2]:8080", Some("fd00::2".parse().unwrap())));
        assert!(!k.allows("192.168.1.20:8080", None));
        assert!(!k.allows("192.168.1.99:8080", Some(lan)));
        assert!(k.allows("0.0.0.0:8080", Some(lan)), "the listen address as configured");
        assert!(!KnownHosts::new("127.0.0.1:8080", &[], "pi").allows("0.0.0.0:8080", None));
    }
}
