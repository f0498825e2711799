//! Slow and stalled clients. A response waits for its client to read it; one that never reads
//! must not hold anything for ever:
//!
//! - `/api/export` runs its store read on a blocking-pool thread, which every other store read
//!   (pages, sinks, alerts) also needs. At most `EXPORT_LIMIT` exports run at once (more are
//!   refused with 503 and `Retry-After`, not queued: a queue would hold connections just the same),
//!   and an export whose client takes nothing for `CLIENT_STALL` stops, freeing its thread.
//! - Every connection (`StallGuard`): a write that waits `2 × CLIENT_STALL` for the client's
//!   socket to take a byte closes the connection, so a stalled client cannot pin the buffered
//!   answer and its socket buffers (tracks, the basemap, event streams, a cut-off export). So
//!   does a connection on which no byte went either way for as long (a half-sent request, an
//!   idle keep-alive): event streams send a comment every 15 s, so only dead ones are cut.
//! - At most `CONNECTIONS_PER_CLIENT` connections per client address and `CONNECTIONS` in all;
//!   beyond that a new connection is closed at once, so one LAN host cannot use up the
//!   process's file descriptors (which the store, the sinks and the collectors need too).
//!
//! `OUTPOST_TEST_CLIENT_STALL_S` (tests only, read once at start) replaces `CLIENT_STALL`.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Exports running at once: the CLI runs one; a second lets a retry overlap a dying one.
pub const EXPORT_LIMIT: usize = 2;
/// How long an export waits for its client to take the next 64 KB before it stops.
pub const CLIENT_STALL: Duration = Duration::from_secs(30);
/// What a refused export is told to wait, seconds (an export of a year of positions takes seconds).
pub const EXPORT_RETRY_AFTER_S: u64 = 10;
pub const STALL_ENV: &str = "OUTPOST_TEST_CLIENT_STALL_S";
/// Open connections one client address may hold: a browser opens 6, an event stream 1 per tab.
/// Behind a reverse proxy every client shares the proxy's address.
pub const CONNECTIONS_PER_CLIENT: usize = 64;
/// Open connections in all, well under systemd's default limit of 1,024 file descriptors.
pub const CONNECTIONS: usize = 512;

/// How an export ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportOutcome {
    Completed,
    /// `EXPORT_LIMIT` exports were running.
    Refused,
    /// The client took nothing for the stall time.
    Stalled,
    /// The client closed the connection before the end.
    Disconnected,
    /// The store or the row mapping failed (logged).
    Failed,
}

impl ExportOutcome {
    pub const ALL: [ExportOutcome; 5] = [
        ExportOutcome::Completed,
        ExportOutcome::Refused,
        ExportOutcome::Stalled,
        ExportOutcome::Disconnected,
        ExportOutcome::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ExportOutcome::Completed => "completed",
            ExportOutcome::Refused => "refused",
            ExportOutcome::Stalled => "stalled",
            ExportOutcome::Disconnected => "disconnected",
            ExportOutcome::Failed => "failed",
        }
    }
}

/// The export bound, the stall times and their counters (for `/metrics`).
pub struct SlowClients {
    exports: Arc<Semaphore>,
    outcomes: [AtomicU64; ExportOutcome::ALL.len()],
    stalled_connections: AtomicU64,
    idle_connections: AtomicU64,
    refused_connections: AtomicU64,
    /// Open connections per client address (the sum is the total).
    open: Mutex<HashMap<IpAddr, usize>>,
    client_stall: Duration,
}

impl Default for SlowClients {
    fn default() -> Self {
        SlowClients::with_stall(CLIENT_STALL)
    }
}

impl SlowClients {
    pub fn with_stall(client_stall: Duration) -> Self {
        SlowClients {
            exports: Arc::new(Semaphore::new(EXPORT_LIMIT)),
            outcomes: Default::default(),
            stalled_connections: AtomicU64::new(0),
            idle_connections: AtomicU64::new(0),
            refused_connections: AtomicU64::new(0),
            open: Mutex::default(),
            client_stall,
        }
    }

    /// `CLIENT_STALL`, or the test's `OUTPOST_TEST_CLIENT_STALL_S`.
    pub fn from_env() -> anyhow::Result<Self> {
        let Ok(v) = std::env::var(STALL_ENV) else { return Ok(SlowClients::default()) };
        let secs = v.trim().parse::<f64>().ok().filter(|s| s.is_finite() && *s > 0.0 && *s < 3600.0);
        let secs = secs.ok_or_else(|| anyhow::anyhow!("{STALL_ENV}={v:?} is not a number of seconds"))?;
        tracing::warn!("{STALL_ENV} is set: stalled clients are cut off after {secs} s (a test)");
        Ok(SlowClients::with_stall(Duration::from_secs_f64(secs)))
    }

    /// A place for one export, or `None` (counted as refused) while `EXPORT_LIMIT` run.
    pub fn start_export(&self) -> Option<OwnedSemaphorePermit> {
        let permit = self.exports.clone().try_acquire_owned().ok();
        if permit.is_none() {
            self.count(ExportOutcome::Refused);
        }
        permit
    }

    pub fn count(&self, outcome: ExportOutcome) {
        self.outcomes[outcome as usize].fetch_add(1, Relaxed);
    }

    pub fn outcomes(&self) -> impl Iterator<Item = (ExportOutcome, u64)> + '_ {
        ExportOutcome::ALL.into_iter().map(|o| (o, self.outcomes[o as usize].load(Relaxed)))
    }

    pub fn exports_running(&self) -> usize {
        EXPORT_LIMIT - self.exports.available_permits()
    }

    pub fn stalled_connections(&self) -> u64 {
        self.stalled_connections.load(Relaxed)
    }

    /// Connections closed because no byte went either way for the write stall time.
    pub fn idle_connections(&self) -> u64 {
        self.idle_connections.load(Relaxed)
    }

    /// Connections closed at once because their client (or everyone) held too many.
    pub fn refused_connections(&self) -> u64 {
        self.refused_connections.load(Relaxed)
    }

    /// A place for one more connection from `client`, or `None` (counted) beyond the bounds.
    fn open_connection(self: &Arc<Self>, client: IpAddr) -> Option<ConnectionSlot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let total: usize = open.values().sum();
        let mine = open.get(&client).copied().unwrap_or(0);
        if total >= CONNECTIONS || mine >= CONNECTIONS_PER_CLIENT {
            self.refused_connections.fetch_add(1, Relaxed);
            return None;
        }
        open.insert(client, mine + 1);
        Some(ConnectionSlot { slow: self.clone(), client })
    }

    /// How long an export waits for its client.
    pub fn export_stall(&self) -> Duration {
        self.client_stall
    }

    /// How long any write waits for the client's socket: longer than an export's, so that an
    /// export stops (and is counted) first.
    pub fn write_stall(&self) -> Duration {
        2 * self.client_stall
    }
}

/// The web server's listener: each accepted connection behind a `StallGuard`.
pub struct GuardedListener {
    inner: tokio::net::TcpListener,
    slow: Arc<SlowClients>,
}

impl GuardedListener {
    pub fn new(inner: tokio::net::TcpListener, slow: Arc<SlowClients>) -> Self {
        GuardedListener { inner, slow }
    }
}

impl axum::serve::Listener for GuardedListener {
    type Io = StallGuard<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (io, addr) = axum::serve::Listener::accept(&mut self.inner).await;
            // Beyond the bounds the connection is dropped (closed) unread.
            if let Some(slot) = self.slow.open_connection(addr.ip()) {
                return (StallGuard::new(io, self.slow.clone()).holding(slot), addr);
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// One open connection of a client, given back when the connection is dropped.
struct ConnectionSlot {
    slow: Arc<SlowClients>,
    client: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.slow.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.client);
            }
        }
    }
}

/// A connection whose writes fail once the client's socket has taken nothing for the write
/// stall time, and whose reads fail once no byte went either way for as long; the server then
/// drops the connection and whatever answer it was sending.
pub struct StallGuard<Io> {
    io: Io,
    slow: Arc<SlowClients>,
    /// Running while a write waits for the socket; reset by every write that gets through.
    waiting: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Reset by every byte read or written; a read that waits past it ends the connection.
    idle: Pin<Box<tokio::time::Sleep>>,
    cut: bool,
    _slot: Option<ConnectionSlot>,
}

impl<Io> StallGuard<Io> {
    /// The connection itself (for its addresses).
    pub fn get_ref(&self) -> &Io {
        &self.io
    }

    pub fn new(io: Io, slow: Arc<SlowClients>) -> Self {
        let idle = Box::pin(tokio::time::sleep(slow.write_stall()));
        StallGuard { io, slow, waiting: None, idle, cut: false, _slot: None }
    }

    fn holding(mut self, slot: ConnectionSlot) -> Self {
        self._slot = Some(slot);
        self
    }

    fn active(&mut self) {
        let until = tokio::time::Instant::now() + self.slow.write_stall();
        self.idle.as_mut().reset(until);
    }

    fn guard<T>(
        &mut self,
        cx: &mut Context<'_>,
        op: impl FnOnce(&mut Io, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if self.cut {
            return Poll::Ready(Err(stalled()));
        }
        match op(&mut self.io, cx) {
            Poll::Pending => {
                let stall = self.slow.write_stall();
                let timer = self.waiting.get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
                if timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.waiting = None;
                self.cut = true;
                self.slow.stalled_connections.fetch_add(1, Relaxed);
                Poll::Ready(Err(stalled()))
            }
            ready => {
                self.waiting = None;
                self.active();
                ready
            }
        }
    }
}

fn stalled() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "the client stopped reading")
}

impl<Io: AsyncRead + Unpin> AsyncRead for StallGuard<Io> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.cut {
            return Poll::Ready(Err(stalled()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            // A write that waits for the client is the write stall's to judge.
            Poll::Pending if this.waiting.is_none() && this.idle.as_mut().poll(cx).is_ready() => {
                this.cut = true;
                this.slow.idle_connections.fetch_add(1, Relaxed);
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "the connection was idle")))
            }
            Poll::Pending => Poll::Pending,
            ready => {
                if buf.filled().len() > before {
                    this.active();
                }
                ready
            }
        }
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for StallGuard<Io> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.get_mut().guard(cx, |io, cx| Pin::new(io).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().guard(cx, |io, cx| Pin::new(io).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().guard(cx, |io, cx| Pin::new(io).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().guard(cx, |io, cx| Pin::new(io).poll_shutdown(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test(start_paused = true)]
    async fn a_write_the_peer_never_takes_fails_after_the_write_stall() {
        let slow = Arc::new(SlowClients::with_stall(Duration::from_secs(30)));
        let (client, server) = tokio::io::duplex(1024);
        let mut guarded = StallGuard::new(server, slow.clone());
        // The duplex buffer takes 1 KB; the rest waits for a reader that never comes.
        let started = tokio::time::Instant::now();
        let err = guarded.write_all(&[0u8; 64 * 1024]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(60));
        assert_eq!(slow.stalled_connections(), 1);
        assert!(guarded.write(b"x").await.is_err(), "a cut connection stays cut");
        assert_eq!(slow.stalled_connections(), 1, "counted once");
        drop(client);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_that_keeps_taking_bytes_is_never_cut() {
        let slow = Arc::new(SlowClients::with_stall(Duration::from_secs(30)));
        let (mut client, server) = tokio::io::duplex(1024);
        let reader = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut buf = [0u8; 512];
            let mut total = 0;
            loop {
                // 512 bytes every 50 s: each wait is shorter than the 60 s write stall, all
                // together far longer.
                tokio::time::sleep(Duration::from_secs(50)).await;
                match client.read(&mut buf).await.unwrap() {
                    0 => return total,
                    n => total += n,
                }
            }
        });
        let mut guarded = StallGuard::new(server, slow.clone());
        guarded.write_all(&[1u8; 8 * 1024]).await.unwrap();
        guarded.shutdown().await.unwrap();
        drop(guarded);
        assert_eq!(reader.await.unwrap(), 8 * 1024);
        assert_eq!(slow.stalled_connections(), 0);
    }

    #[test]
    fn connections_are_bounded_per_client_and_in_all_and_given_back_on_drop() {
        let slow = Arc::new(SlowClients::default());
        let client = |i: u32| IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
        let mine: Vec<_> = (0..CONNECTIONS_PER_CLIENT).map(|_| slow.open_connection(client(0)).unwrap()).collect();
        assert!(slow.open_connection(client(0)).is_none(), "one client beyond its bound");
        let others: Vec<_> = (1..)
            .map(client)
            .flat_map(|c| (0..CONNECTIONS_PER_CLIENT).map(move |_| c))
            .take(CONNECTIONS - CONNECTIONS_PER_CLIENT)
            .map(|c| slow.open_connection(c).unwrap())
            .collect();
        assert!(slow.open_connection(client(999)).is_none(), "a new client beyond the total");
        assert_eq!(slow.refused_connections(), 2);
        drop(mine);
        assert!(slow.open_connection(client(0)).is_some(), "dropped connections give their places back");
        drop(others);
        assert!(slow.open.lock().unwrap().is_empty(), "no entry outlives its connections");
    }

    #[test]
    fn the_export_bound_refuses_and_counts_beyond_the_limit() {
        let slow = SlowClients::default();
        let permits: Vec<_> = (0..EXPORT_LIMIT).map(|_| slow.start_export().expect("within the bound")).collect();
        assert_eq!(slow.exports_running(), EXPORT_LIMIT);
        assert!(slow.start_export().is_none());
        drop(permits);
        assert_eq!(slow.exports_running(), 0);
        assert!(slow.start_export().is_some());
        let refused = slow.outcomes().find(|(o, _)| *o == ExportOutcome::Refused).unwrap().1;
        assert_eq!(refused, 1);
    }
}
