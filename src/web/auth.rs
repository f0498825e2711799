//! Optional HTTP basic auth in front of every path but `/healthz` (`[web] username` and
//! `password`). The appliance is read-only either way; this keeps a household's data off a
//! shared network. Plain HTTP sends the password in clear: put a TLS proxy in front when leaving
//! the home LAN.
//!
//! The supplied and the expected `user:password` are compared as SHA-256 digests in constant
//! time, so neither the timing nor an early return says how long or how right a guess was. The
//! scheme is case-insensitive and spaces around the token are allowed (RFC 7235, 7617).
//!
//! Guessing is slowed per client: after `FREE_FAILURES` wrong credentials in a row, the client is
//! answered 429 with `Retry-After` for `FIRST_WAIT`, doubling with each further wrong guess up to
//! `MAX_WAIT`. While it waits, nothing it sends is checked, the right password included:
//! otherwise the answer to a guess during the wait would still tell right from wrong. The right
//! password forgives a client, and so does `FORGET_AFTER` without failures. Clients are IP
//! addresses; IPv6 ones by /64, since one host may use any address of its prefix. At most
//! `MAX_CLIENTS` are remembered (the stalest is forgotten first), so a hostile LAN cannot grow
//! the table.

use super::guard::{DOOR, DoorCounts, connection};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

pub const FREE_FAILURES: u32 = 5;
pub const FIRST_WAIT: Duration = Duration::from_secs(2);
pub const MAX_WAIT: Duration = Duration::from_secs(60);
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
const MAX_CLIENTS: usize = 1024;

/// Standard base64, with or without padding (clients differ).
const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

pub struct BasicAuth {
    /// SHA-256 of the accepted `user:password`.
    expected: [u8; 32],
    backoff: Backoff,
}

#[derive(Debug, PartialEq)]
enum Verdict {
    Pass,
    /// No `Authorization` header: a browser's first request, before it asks for the password.
    Missing,
    Wrong,
}

impl BasicAuth {
    pub fn new(user: &str, password: &str) -> BasicAuth {
        BasicAuth { expected: Sha256::digest(format!("{user}:{password}")).into(), backoff: Backoff::default() }
    }

    fn verdict(&self, header: Option<&HeaderValue>) -> Verdict {
        let Some(header) = header else { return Verdict::Missing };
        // Any header that is not well-formed Basic still counts as a guess: all of it is the
        // client's own input, so parsing it leaks nothing, and the digest below is compared anyway.
        let supplied = basic_credentials(header.as_bytes()).unwrap_or_default();
        let digest: [u8; 32] = Sha256::digest(&supplied).into();
        if bool::from(digest.ct_eq(&self.expected)) { Verdict::Pass } else { Verdict::Wrong }
    }
}

/// The decoded `user:password` of a `Basic` header value.
fn basic_credentials(value: &[u8]) -> Option<Vec<u8>> {
    let value = value.trim_ascii();
    let space = value.iter().position(|b| *b == b' ' || *b == b'\t')?;
    let (scheme, token) = value.split_at(space);
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return None;
    }
    BASE64.decode(token.trim_ascii()).ok()
}

pub async fn require(State(auth): State<Arc<BasicAuth>>, request: Request, next: Next) -> Response {
    let client = connection(&request).map_or(IpAddr::from([0, 0, 0, 0]), |c| c.peer.ip());
    let now = Instant::now();
    if let Some(wait) = auth.backoff.waiting(client, now) {
        DoorCounts::count(&DOOR.throttled);
        // Whole seconds, rounded up: a client that waits this long is answered.
        let secs = wait.as_millis().div_ceil(1000).max(1);
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, secs.to_string())],
            format!("too many wrong passwords from this address; try again in {secs} s\n"),
        )
            .into_response();
    }
    match auth.verdict(request.headers().get(header::AUTHORIZATION)) {
        Verdict::Pass => {
            auth.backoff.forgive(client);
            return next.run(request).await;
        }
        Verdict::Wrong => {
            DoorCounts::count(&DOOR.auth_failures);
            auth.backoff.failed(client, now);
        }
        Verdict::Missing => {}
    }
    DoorCounts::count(&DOOR.unauthorized);
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, r#"Basic realm="Outpost", charset="UTF-8""#)],
        "sign in to see this Outpost\n",
    )
        .into_response()
}

/// Wrong guesses per client, and until when each must wait.
#[derive(Default)]
struct Backoff {
    clients: Mutex<HashMap<IpAddr, Failures>>,
}

#[derive(Clone, Copy, Debug)]
struct Failures {
    count: u32,
    last: Instant,
    wait_until: Option<Instant>,
}

/// What a back-off is kept for: an IPv4 address, or the /64 an IPv6 address belongs to.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(v6.to_bits() & !((1u128 << 64) - 1))),
        v4 => v4,
    }
}

/// How long a client waits after its `count`-th wrong guess in a row.
fn wait_after(count: u32) -> Option<Duration> {
    let doublings = count.checked_sub(FREE_FAILURES)?;
    Some(FIRST_WAIT.saturating_mul(1u32.checked_shl(doublings).unwrap_or(u32::MAX)).min(MAX_WAIT))
}

impl Backoff {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Failures>> {
        // The table holds only counts and instants: a panic elsewhere cannot leave it half-made.
        self.clients.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How much longer `ip` must wait, if it must.
    fn waiting(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let until = self.lock().get(&client_key(ip))?.wait_until?;
        until.checked_duration_since(now).filter(|d| !d.is_zero())
    }

    fn failed(&self, ip: IpAddr, now: Instant) {
        let key = client_key(ip);
        let mut clients = self.lock();
        if !clients.contains_key(&key) && clients.len() >= MAX_CLIENTS {
            clients.retain(|_, f| now.saturating_duration_since(f.last) < FORGET_AFTER);
            if clients.len() >= MAX_CLIENTS
                && let Some(stalest) = clients.iter().min_by_key(|(_, f)| f.last).map(|(k, _)| *k)
            {
                clients.remove(&stalest);
            }
        }
        let entry = clients.entry(key).or_insert(Failures { count: 0, last: now, wait_until: None });
        if now.saturating_duration_since(entry.last) >= FORGET_AFTER {
            entry.count = 0;
        }
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
        entry.wait_until = wait_after(entry.count).map(|w| now + w);
    }

    fn forgive(&self, ip: IpAddr) {
        self.lock().remove(&client_key(ip));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_credentials_pass_in_any_spelling_of_the_scheme() {
        let auth = BasicAuth::new("ada", "s3cret");
        let v = |h: &'static str| auth.verdict(Some(&HeaderValue::from_static(h)));
        for ok in [
            "Basic YWRhOnMzY3JldA==",
            "basic YWRhOnMzY3JldA==",
            "BASIC YWRhOnMzY3JldA==",
            "  Basic    YWRhOnMzY3JldA==  ",
            "Basic\tYWRhOnMzY3JldA==",
            "Basic YWRhOnMzY3JldA",
        ] {
            assert_eq!(v(ok), Verdict::Pass, "{ok:?}");
        }
        assert_eq!(auth.verdict(None), Verdict::Missing);
        for wrong in [
            "Basic YWRhOnMzY3JldQ==",
            "Basic YWRhOnMzY3JldA==YQ",
            "Basic YWRhOnMzY3Jl",
            "Bearer YWRhOnMzY3JldA==",
            "BasicYWRhOnMzY3JldA==",
            "Basic",
            "Basic !!!",
            "",
        ] {
            assert_eq!(v(wrong), Verdict::Wrong, "{wrong:?}");
        }
    }

    #[test]
    fn the_wait_doubles_from_the_sixth_wrong_guess_up_to_a_minute() {
        let waits: Vec<Option<u64>> = (1..=13).map(|n| wait_after(n).map(|d| d.as_secs())).collect();
        assert_eq!(
            waits,
            [
                None,
                None,
                None,
                None,
                Some(2),
                Some(4),
                Some(8),
                Some(16),
                Some(32),
                Some(60),
                Some(60),
                Some(60),
                Some(60)
            ]
        );
        assert_eq!(wait_after(u32::MAX), Some(MAX_WAIT));
    }

    #[test]
    fn a_client_waits_after_its_failures_and_is_forgiven_by_success_or_time() {
        let b = Backoff::default();
        let (ada, eve): (IpAddr, IpAddr) = ("192.168.1.10".parse().unwrap(), "192.168.1.66".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..FREE_FAILURES - 1 {
            b.failed(eve, t0);
            assert_eq!(b.waiting(eve, t0), None);
        }
        b.failed(eve, t0);
        assert_eq!(b.waiting(eve, t0), Some(FIRST_WAIT));
        assert_eq!(b.waiting(eve, t0 + Duration::from_millis(500)), Some(FIRST_WAIT - Duration::from_millis(500)));
        assert_eq!(b.waiting(eve, t0 + FIRST_WAIT), None, "the wait ends");
        assert_eq!(b.waiting(ada, t0), None, "another client is not affected");
        b.failed(eve, t0 + FIRST_WAIT);
        assert_eq!(b.waiting(eve, t0 + FIRST_WAIT), Some(FIRST_WAIT * 2), "the next wrong guess doubles it");
        b.forgive(eve);
        assert_eq!(b.waiting(eve, t0 + FIRST_WAIT), None, "the right password forgives");

        for _ in 0..FREE_FAILURES - 1 {
            b.failed(ada, t0);
        }
        let later = t0 + FORGET_AFTER;
        b.failed(ada, later);
        assert_eq!(b.waiting(ada, later), None, "old failures are forgotten");
    }

    #[test]
    fn an_ipv6_host_cannot_escape_by_changing_its_address_within_its_prefix() {
        let b = Backoff::default();
        let t0 = Instant::now();
        for i in 0..FREE_FAILURES {
            b.failed(format!("2001:db8:1:2::{i:x}").parse().unwrap(), t0);
        }
        assert!(b.waiting("2001:db8:1:2:ffff::1".parse().unwrap(), t0).is_some());
        assert!(b.waiting("2001:db8:1:3::1".parse().unwrap(), t0).is_none());
        // An IPv4 client over a dual-stack socket is the same client as over IPv4.
        for _ in 0..FREE_FAILURES {
            b.failed("::ffff:10.0.0.5".parse().unwrap(), t0);
        }
        assert!(b.waiting("10.0.0.5".parse().unwrap(), t0).is_some());
    }

    #[test]
    fn the_table_stays_bounded_and_forgets_the_stalest_client_first() {
        let b = Backoff::default();
        let t0 = Instant::now();
        let stalest: IpAddr = "10.255.255.255".parse().unwrap();
        for _ in 0..FREE_FAILURES {
            b.failed(stalest, t0);
        }
        for i in 0..(MAX_CLIENTS as u32 * 3) {
            b.failed(IpAddr::from((0x0a00_0000 + i).to_be_bytes()), t0 + Duration::from_millis(1 + u64::from(i)));
        }
        assert_eq!(b.lock().len(), MAX_CLIENTS);
        assert_eq!(b.waiting(stalest, t0), None, "the oldest entry made room");
        let newest = IpAddr::from((0x0a00_0000 + MAX_CLIENTS as u32 * 3 - 1).to_be_bytes());
        assert!(b.lock().contains_key(&newest));
    }
}
