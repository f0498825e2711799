//! Outpost: one binary that collects ISS positions, ISS TLEs and Norwegian avalanche warnings,
//! keeps their full history in a durable local log, and serves it on a local map.
//!
//! Data flows one way: `sources` (fetch + clean) -> `store` (the log) -> readers: `sinks`
//! (upstreams), `web` (map, API), `alerts` (emails, with `passes` and `location`) and `export`.
//! `app` wires them and owns the whole configuration; `cli` is the command line. See
//! ARCHITECTURE.md for the map and the invariants.

pub mod alerts;
pub mod app;
pub mod backoff;
pub mod cell;
pub mod cli;
pub mod clock;
pub mod config;
pub mod current;
pub mod dates;
pub mod domain;
pub mod export;
pub mod location;
pub mod message;
pub mod passes;
pub mod regions;
pub mod sinks;
pub mod sources;
pub mod status;
pub mod store;
pub mod web;

/// Makes rustls (with ring) the TLS implementation of every client in the process. Idempotent;
/// called before any HTTP client is built, so no code path can reach OpenSSL or panic for lack
/// of a provider.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
