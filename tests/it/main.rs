//! Outpost's integration tests: one binary, real processes, real sockets.
//!
//! Each test starts a local fixture server that replays recorded upstream answers
//! (tests/fixtures) and the real `outpost` binary against it, on ports the OS picks.

mod helpers;
mod upstreams;

mod api;
mod backfill;
mod bad_answers;
mod cassandra;
mod cli;
mod crash;
mod email;
mod export;
mod gpsd;
mod kafka;
mod mqtt;
mod passes;
