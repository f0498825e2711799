//! Outpost's integration tests: one binary, real processes, real sockets.
//!
//! Each test starts a local fixture server that replays recorded upstream answers
//! (tests/fixtures) and the real `outpost` binary against it, on ports the OS picks.

mod helpers;
mod servers;
mod upstreams;

mod api;
mod backfill;
mod bad_answers;
mod brightness;
mod browser;
mod calendar;
mod cassandra;
mod cassandra_cluster;
mod cassandra_connector;
mod cli;
mod crash;
mod danger_alerts;
mod drills;
mod drills_clock;
mod drills_disk;
mod drills_flap;
mod drills_kill;
mod drills_store;
mod email;
mod export;
mod features;
mod fuzz;
mod gpsd;
mod kafka;
mod kafka_connector;
mod metrics;
mod mqtt;
mod passes;
mod pi;
mod predicted;
mod secrets;
mod stale_tle;
mod store_upgrade;
mod weather;
mod web;
