//! `HostPort`: an upstream's `host:port` (a broker, a Cassandra node, gpsd), checked once when the
//! configuration is read instead of by each part that connects.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl std::str::FromStr for HostPort {
    type Err = String;

    /// `host:port`, `1.2.3.4:port` or `[::1]:port`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not host:port");
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        if host.is_empty() || host.contains(['/', ' ']) {
            return Err(bad());
        }
        let port = port.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad)?;
        Ok(HostPort { host: host.to_owned(), port })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl<'de> Deserialize<'de> for HostPort {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for HostPort {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_is_parsed_once_and_printed_back() {
        let hp: HostPort = "kafka-1.lan:9092".parse().unwrap();
        assert_eq!((hp.host.as_str(), hp.port), ("kafka-1.lan", 9092));
        assert_eq!("[::1]:9042".parse::<HostPort>().unwrap().to_string(), "[::1]:9042");
        for bad in ["nohost", ":9092", "h:", "h:0", "h:70000", "h:x", "a b:1"] {
            assert!(bad.parse::<HostPort>().is_err(), "{bad}");
        }
    }
}
