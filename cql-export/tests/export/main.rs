//! One integration-test binary for cql-export: golden rows, schema consistency, replay
//! idempotence and error handling, on messages built from Outpost's recorded fixtures.

mod errors;
mod golden;
mod messages;
mod replay;
mod schema;
