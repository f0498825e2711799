//! Collectors: fetch upstream answers, clean them into domain records, hand them to the store.
mod rejection;
pub use rejection::Rejection;
