//! The body of `GET /api/export`: `export::export` on a blocking-pool thread, handed to the
//! connection through a small channel. At most `slow::EXPORT_LIMIT` run at once; one whose
//! client takes nothing for the stall time stops and frees its thread (`slow`).

use super::AppState;
use super::error::WebError;
use super::slow::{EXPORT_LIMIT, EXPORT_RETRY_AFTER_S, ExportOutcome};
use crate::export::{ChannelWriter, ExportRequest, Unread};
use axum::body::Bytes;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

/// Chunks of 64 KB waiting between the store and the socket: with `EXPORT_LIMIT`, all the
/// memory exports hold.
const CHANNEL_CHUNKS: usize = 8;

/// Starts the export, or answers 503 with `Retry-After` while `EXPORT_LIMIT` run.
pub fn stream(app: &AppState, req: ExportRequest) -> Response {
    let Some(permit) = app.slow.start_export() else {
        let busy = WebError::Unavailable(format!("{EXPORT_LIMIT} exports are running; try again later"));
        return ([(header::RETRY_AFTER, EXPORT_RETRY_AFTER_S.to_string())], busy).into_response();
    };
    let (tx, rx) = tokio::sync::mpsc::channel(CHANNEL_CHUNKS);
    let completed = Arc::new(AtomicBool::new(false));
    let (store, slow, done) = (app.store.clone(), app.slow.clone(), completed.clone());
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let mut out = ChannelWriter::new(tx, slow.export_stall(), runtime);
        let outcome = match (crate::export::export(&store, &req, &mut out, &mut |_| {}), out.unread()) {
            (Ok(_), _) => {
                done.store(true, Ordering::Release);
                ExportOutcome::Completed
            }
            (Err(_), Some(Unread::Stalled)) => {
                tracing::info!("export cut off: its client took nothing for {:?}", slow.export_stall());
                ExportOutcome::Stalled
            }
            (Err(_), Some(Unread::Gone)) => ExportOutcome::Disconnected,
            (Err(e), None) => {
                tracing::warn!(error = format!("{e:#}"), "export stopped");
                ExportOutcome::Failed
            }
        };
        slow.count(outcome);
    });
    let body = axum::body::Body::from_stream(ExportBody { rx, completed, ended: false });
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

/// The export's chunks, then an error unless the export completed: the server then closes the
/// connection without HTTP's end-of-body mark, so a stopped export never looks complete.
struct ExportBody {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    completed: Arc<AtomicBool>,
    ended: bool,
}

impl tokio_stream::Stream for ExportBody {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(chunk)) => Poll::Ready(Some(Ok(chunk))),
            // Every sender is gone: `completed` was set before, if it was going to be.
            Poll::Ready(None) if self.ended || self.completed.load(Ordering::Acquire) => Poll::Ready(None),
            Poll::Ready(None) => {
                self.ended = true;
                Poll::Ready(Some(Err(std::io::Error::other("the export stopped before its end; see the Outpost log"))))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
