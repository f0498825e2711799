//! Outpost: one binary that collects ISS positions, ISS TLEs and Norwegian avalanche warnings,
//! keeps their full history in a durable local log, and serves it on a local map.
//!
//! Data flows one way: `sources` (fetch + clean) -> `store` (the log) -> readers (`web`, and later
//! sinks, passes and alerts). See ARCHITECTURE.md for the map and the invariants.

pub mod app;
pub mod config;
pub mod domain;
pub mod sources;
pub mod store;
pub mod web;
