//! Collectors: fetch upstream answers, clean them into domain records, hand them to the store.
//!
//! Each source is one file with a `run(self, ctx)` loop; the `*_parse` files beside them are
//! pure (bytes in, records or a `Rejection` out) and tested on recorded answers. `poll` holds
//! what they share. A collector never blocks on the store (appends are queued) and never stops
//! another: each runs in its own task and treats every failure as data.

pub mod iss_position;
pub mod iss_position_parse;
mod poll;
mod rejection;
pub mod tle;
pub mod tle_parse;
pub mod varsom;
pub mod varsom_parse;

pub use poll::{Backoff, SourceSnapshot, SourceStatus, USER_AGENT, fetch, http_client};
pub use rejection::Rejection;

use crate::store::WriterHandle;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What a running collector is given.
#[derive(Clone)]
pub struct SourceCtx {
    pub client: reqwest::Client,
    pub writer: WriterHandle,
    pub status: Arc<SourceStatus>,
    pub cancel: CancellationToken,
}
