//! `Redactor`: configured addresses taken out of text that leaves the process's log. Errors from
//! the network name what they tried to reach ("smtp.corp.example:587: connection refused", a
//! broker list, a URL with a token in its query); the status (`/api/status`, `/status`,
//! `/metrics`, `outpost status`) and stored records (an alert's detail) show them to whoever can
//! read those, so each configured host, address and URL is replaced by its role ("<smtp server>"),
//! a URL's password by `***` and its query by `…`. Other secrets are not searched for: a password
//! echoed by a server is rare, and `***` in place of a plain word would tell what the password
//! is. The journal (root-readable) keeps the host names: they are what an operator looks for there,
//! but not the secrets a URL carries: `url_secrets` builds the log's redactor (`Config::log_redactor`,
//! applied to every line the daemon writes), which replaces only passwords and queries.

use super::HostPort;

/// Shorter strings are left alone: replacing "db" or "a" would garble the text.
const MIN_LEN: usize = 3;

/// A query value at least this long is taken for a token and replaced wherever it appears
/// (`CATNR=25544&FORMAT=TLE` keeps its values; `key=3f9a…` does not).
const MIN_SECRET_VALUE_LEN: usize = 8;

/// `%XX` decoded (invalid sequences and bytes kept as they are).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).filter(|h| h.iter().all(u8::is_ascii_hexdigit));
        let value = hex.and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (bytes[i], value) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// `(needle, what to say instead)`, longest needle first.
    needles: Vec<(String, String)>,
}

impl Redactor {
    pub fn new() -> Redactor {
        Redactor::default()
    }

    /// `host` (a name or an address, also in its `[v6]` form) as `role`.
    pub fn host(mut self, host: &str, role: &str) -> Redactor {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.contains(':') {
            self.push(format!("[{host}]"), role);
        }
        self.push(host.to_owned(), role);
        self
    }

    /// `host:port` and its host as `role`.
    pub fn host_port(self, hp: &HostPort, role: &str) -> Redactor {
        let mut r = self.host(&hp.host, role);
        r.push(hp.to_string(), role);
        r
    }

    /// A URL as `role`: the whole of it, without its query, its userinfo and its host.
    pub fn url(mut self, url: &str, role: &str) -> Redactor {
        self.push(url.to_owned(), role);
        let Ok(parsed) = reqwest::Url::parse(url) else { return self };
        let mut bare = parsed.clone();
        bare.set_query(None);
        bare.set_fragment(None);
        self.push(bare.to_string(), role);
        self.push(bare.as_str().trim_end_matches('/').to_owned(), role);
        self.push_url_secrets(&parsed);
        match parsed.host_str() {
            Some(host) => {
                if let Some(port) = parsed.port_or_known_default() {
                    self.push(format!("{host}:{port}"), role);
                }
                self.host(host, role)
            }
            None => self,
        }
    }

    /// Only what is secret in a URL: its password as `***`, its query (and each longer value in
    /// it, which an upstream may echo alone) as `…`; its host stays. For the log, which keeps
    /// host names but never a secret. Not a URL: nothing.
    pub fn url_secrets(mut self, url: &str) -> Redactor {
        if let Ok(parsed) = reqwest::Url::parse(url) {
            self.push_url_secrets(&parsed);
        }
        self
    }

    fn push_url_secrets(&mut self, url: &reqwest::Url) {
        let mut secrets = Vec::new();
        if let Some(password) = url.password() {
            secrets.push((password.to_owned(), "***"));
        }
        if let Some(query) = url.query() {
            secrets.push((query.to_owned(), "…"));
            for (_, value) in url.query_pairs().filter(|(_, v)| v.chars().count() >= MIN_SECRET_VALUE_LEN) {
                secrets.push((value.into_owned(), "…"));
            }
        }
        for (secret, with) in secrets {
            // Also as an upstream may quote it (percent-decoded) and as a log line escapes it
            // (JSON, or Rust's `?` formatting).
            let decoded = percent_decode(&secret);
            for form in [&secret, &decoded] {
                let json = serde_json::to_string(form).unwrap_or_default();
                self.push(json.trim_matches('"').to_owned(), with);
                self.push(form.escape_debug().to_string(), with);
                self.push(form.clone(), with);
            }
        }
    }

    fn push(&mut self, needle: String, with: &str) {
        if needle.chars().count() < MIN_LEN {
            return;
        }
        if let Some((_, said)) = self.needles.iter_mut().find(|(n, _)| *n == needle) {
            // One host in two roles (everything on one server): name neither.
            if said != with {
                *said = "<configured host>".to_owned();
            }
            return;
        }
        self.needles.push((needle, with.to_owned()));
        // Longest first: a URL is replaced whole before its host, host:port before its host.
        self.needles.sort_by_key(|(n, _)| std::cmp::Reverse(n.len()));
    }

    /// `text` with every needle replaced, in one pass: a role put in is not searched again (a
    /// host named `kafka` must not turn `<kafka broker>` into `<<kafka broker> broker>`).
    pub fn apply(&self, text: &str) -> String {
        if !self.needles.iter().any(|(n, _)| text.contains(n.as_str())) {
            return text.to_owned();
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            match self.needles.iter().find(|(n, _)| rest.starts_with(n.as_str())) {
                Some((needle, with)) => {
                    out.push_str(with);
                    rest = &rest[needle.len()..];
                }
                None => {
                    out.push(c);
                    rest = &rest[c.len_utf8()..];
                }
            }
        }
        out
    }

    /// `apply` on an optional text, in place.
    pub fn apply_opt(&self, text: &mut Option<String>) {
        if let Some(t) = text {
            *t = self.apply(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_urls_and_secrets_become_their_roles() {
        let r = Redactor::new()
            .host("smtp.secret-corp.example", "<smtp server>")
            .host_port(&"10.1.2.3:9092".parse().unwrap(), "<kafka broker>")
            .host_port(&"[fd00::7]:9042".parse().unwrap(), "<cassandra node>")
            .url("http://user:tok3n@feeds.secret-corp.example:8080/iss?key=abc123", "<iss position url>");
        let text = "smtp.secret-corp.example:587: refused; 10.1.2.3:9092 and 10.1.2.3 down; [fd00::7]:9042; \
                    GET http://user:tok3n@feeds.secret-corp.example:8080/iss?key=abc123 failed; \
                    http://feeds.secret-corp.example:8080/iss; key=abc123";
        let clean = r.apply(text);
        for leak in ["secret-corp", "10.1.2.3", "fd00", "tok3n", "abc123"] {
            assert!(!clean.contains(leak), "{leak} in {clean}");
        }
        assert!(clean.starts_with("<smtp server>:587: refused; <kafka broker> and <kafka broker> down"), "{clean}");
        assert!(clean.contains("GET <iss position url> failed"), "{clean}");
    }

    #[test]
    fn the_log_keeps_hosts_but_no_url_secret() {
        let r = Redactor::new()
            .url_secrets("https://ada:pa%40ss918@feeds.example.net/iss?key=querytoken918&format=tle")
            .url_secrets("https://celestrak.org/NORAD/elements/gp.php?CATNR=25544&FORMAT=TLE")
            .url_secrets("not a url");
        let text = "GET https://ada:pa%40ss918@feeds.example.net/iss?key=querytoken918&format=tle: 500 \
                    (echoed: user ada, password pa@ss918, key querytoken918, \"key=querytoken918&format=tle\")";
        let clean = r.apply(text);
        for leak in ["pa%40ss918", "pa@ss918", "querytoken918"] {
            assert!(!clean.contains(leak), "{leak} in {clean}");
        }
        assert!(clean.starts_with("GET https://ada:***@feeds.example.net/iss?…: 500"), "{clean}");
        assert!(clean.contains("password ***, key …"), "{clean}");
        // Short values are not taken for tokens: the TLE URL's words stay readable.
        assert_eq!(r.apply("TLE 25544 from celestrak.org"), "TLE 25544 from celestrak.org");
        assert_eq!(r.apply("gp.php?CATNR=25544&FORMAT=TLE"), "gp.php?…");
    }

    #[test]
    fn a_host_in_two_roles_is_named_by_neither() {
        let r = Redactor::new()
            .host("10.9.8.7", "<smtp server>")
            .host_port(&"10.9.8.7:9092".parse().unwrap(), "<kafka broker>");
        assert_eq!(r.apply("10.9.8.7:9092, 10.9.8.7:25"), "<kafka broker>, <configured host>:25");
    }

    #[test]
    fn short_needles_are_left_alone_and_roles_are_not_searched_again() {
        let r = Redactor::new().host("db", "<x>");
        assert_eq!(r.apply("db down"), "db down");
        let r = Redactor::new().host("kafka", "<kafka broker>").host("broker", "<mqtt broker>");
        assert_eq!(r.apply("kafka: broker gone"), "<kafka broker>: <mqtt broker> gone");
    }
}
