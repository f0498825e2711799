//! Outpost's Cassandra schema and the mapping from log records to CQL rows.
//!
//! This crate is the one place that knows CQL: the live Cassandra sink and `outpost export`
//! both use it, so a row written live and a row exported are identical. It does no I/O and holds
//! no session. It starts empty on purpose: the sync work (keyspace and table .cql files, natural
//! primary keys, row mapping with golden tests) lands here.
