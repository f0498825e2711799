#![doc = include_str!("../README.md")]
#![deny(
    rustdoc::broken_intra_doc_links,
    rustdoc::bare_urls,
    rustdoc::invalid_codeblock_attributes,
    rustdoc::private_intra_doc_links,
    rust_2018_idioms,
    unsafe_code
)]
#![warn(
    missing_copy_implementations,
    missing_debug_implementations,
    clippy::explicit_iter_loop,
    clippy::future_not_send,
    clippy::use_self,
    clippy::clone_on_ref_ptr,
    clippy::disallowed_methods
)]

mod backoff;

pub use backoff::{BackoffConfig, BackoffError};

pub mod build_info;

pub mod client;

mod connection;

pub use connection::Error as ConnectionError;
pub use messenger::SaslError;

#[cfg(feature = "unstable-fuzzing")]
pub mod messenger;
#[cfg(not(feature = "unstable-fuzzing"))]
mod messenger;

#[cfg(feature = "unstable-fuzzing")]
pub mod protocol;
#[cfg(not(feature = "unstable-fuzzing"))]
mod protocol;

pub mod record;

mod throttle;

pub mod topic;

// re-exports
pub use chrono;

mod validation;

/// Outpost patch (OUTPOST-PATCH.md): `RSKAFKA_UPSTREAM_IO=1` restores upstream rskafka 0.6.0's
/// socket behaviour (Nagle on, each request written as a 4-byte length then the body), for
/// measuring the difference. Read once.
pub(crate) fn upstream_io() -> bool {
    static UPSTREAM: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *UPSTREAM.get_or_init(|| std::env::var_os("RSKAFKA_UPSTREAM_IO").is_some_and(|v| v == "1"))
}
