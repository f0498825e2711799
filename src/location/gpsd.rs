//! The gpsd client task: connects over TCP, asks for JSON reports (`?WATCH`), feeds fixes to the
//! `Follower` and publishes its changes on the watch channel and in the status.
//!
//! Owns the connection: time-outs (connect, greeting, silence), reconnecting with back-off, line
//! framing with a length limit, logging bad lines once. Never decides which location wins (the
//! follower does), never blocks anything but itself, and never puts the gpsd address in errors
//! or the status (configured addresses stay out of both).

use super::gpsd_parse::{self, Report};
use super::{Located, LocationStatus, follower::Follower};
use crate::backoff::Backoff;
use crate::sources::Rejection;
use chrono::Utc;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// gpsd greets every client with VERSION at once; a listener that stays quiet is not gpsd.
const GREETING_TIMEOUT: Duration = Duration::from_secs(5);
/// A gpsd without devices is legitimately silent; after this long we ask for a VERSION to tell
/// a quiet gpsd from a dead connection (a vanished host never closes the socket).
const PROBE_AFTER: Duration = Duration::from_secs(30);
const PROBE_ANSWER: Duration = Duration::from_secs(10);
/// How often the grace and silence time-outs are checked.
const TICK: Duration = Duration::from_secs(1);
/// Longer lines are dropped: gpsd's longest reports (SKY) are a few kilobytes.
const MAX_LINE: usize = 64 * 1024;
const RETRY_MIN: Duration = Duration::from_secs(2);
const RETRY_MAX: Duration = Duration::from_secs(60);

const WATCH: &[u8] = b"?WATCH={\"enable\":true,\"json\":true};\n";
const PROBE: &[u8] = b"?VERSION;\n";

pub(super) struct Gpsd {
    addr: String,
    follower: Follower,
    tx: watch::Sender<Option<Located>>,
    status: Arc<LocationStatus>,
    /// Bad-line reasons already logged at warn level.
    logged: HashSet<&'static str>,
    last_logged_error: Option<String>,
}

impl Gpsd {
    pub(super) fn new(
        addr: String,
        follower: Follower,
        tx: watch::Sender<Option<Located>>,
        status: Arc<LocationStatus>,
    ) -> Self {
        Gpsd { addr, follower, tx, status, logged: HashSet::new(), last_logged_error: None }
    }

    /// Follows gpsd until `cancel`, reconnecting with back-off.
    pub(super) async fn run(mut self, cancel: CancellationToken) {
        let mut backoff = Backoff::new(RETRY_MIN, RETRY_MAX);
        loop {
            let error = tokio::select! {
                e = self.session(&mut backoff) => e,
                _ = cancel.cancelled() => return,
            };
            if self.follower.lost() {
                self.publish();
            }
            let wait = backoff.next_delay();
            // One warning per distinct error: a gpsd that stays away must not flood the log.
            if self.last_logged_error.as_ref() != Some(&error) {
                tracing::warn!(error, retry_in_s = wait.as_secs_f64(), "gpsd unavailable");
                self.last_logged_error = Some(error.clone());
            } else {
                tracing::debug!(error, retry_in_s = wait.as_secs_f64(), "gpsd still unavailable");
            }
            self.status.update(|s| {
                s.gpsd_connected = false;
                s.last_error = Some(error);
                s.last_error_time = Some(Utc::now());
            });
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = cancel.cancelled() => return,
            }
        }
    }

    /// One connection, from connect to its end; returns why it ended.
    async fn session(&mut self, backoff: &mut Backoff) -> String {
        let stream = match timeout(CONNECT_TIMEOUT, TcpStream::connect(self.addr.as_str())).await {
            Err(_) => return format!("connect: no answer within {CONNECT_TIMEOUT:?}"),
            Ok(Err(e)) => return format!("connect: {e}"),
            Ok(Ok(s)) => s,
        };
        let (mut reader, mut writer) = stream.into_split();
        if let Err(e) = send(&mut writer, WATCH).await {
            return e;
        }
        self.status.update(|s| s.connects += 1);
        let mut lines = LineBuffer::default();
        let mut buf = vec![0u8; 8192];
        let mut ticks = tokio::time::interval(TICK);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut last_input, mut greeted, mut probed) = (Instant::now(), false, false);
        loop {
            tokio::select! {
                read = reader.read(&mut buf) => {
                    let n = match read {
                        Ok(0) => return "gpsd closed the connection".into(),
                        Ok(n) => n,
                        Err(e) => return format!("read: {e}"),
                    };
                    (last_input, probed) = (Instant::now(), false);
                    for line in lines.push(&buf[..n]) {
                        match line.and_then(|l| gpsd_parse::parse_line(&l)) {
                            Ok(report) => {
                                if let (false, Report::Version { release }) = (greeted, &report) {
                                    tracing::info!(release, "connected to gpsd");
                                    self.last_logged_error = None;
                                    self.status.update(|s| s.gpsd_connected = true);
                                    greeted = true;
                                    backoff.reset();
                                }
                                self.report(report);
                            }
                            Err(r) => self.bad_line(&r),
                        }
                    }
                }
                _ = ticks.tick() => {
                    let now = Instant::now();
                    if self.follower.tick(now) {
                        self.publish();
                    }
                    let silent = now.saturating_duration_since(last_input);
                    if !greeted && silent > GREETING_TIMEOUT {
                        return format!("gpsd sent no greeting within {GREETING_TIMEOUT:?}");
                    }
                    if probed && silent > PROBE_AFTER + PROBE_ANSWER {
                        return format!("gpsd did not answer for {:?}", PROBE_AFTER + PROBE_ANSWER);
                    }
                    if !probed && silent > PROBE_AFTER {
                        probed = true;
                        if let Err(e) = send(&mut writer, PROBE).await {
                            return e;
                        }
                    }
                }
            }
        }
    }

    fn report(&mut self, report: Report) {
        match report {
            Report::Fix(mut fix) => {
                // gpsd leaves the time out until it knows the date (a GGA before the first RMC);
                // the fix is live, so the time it arrived is the honest stand-in.
                fix.time = fix.time.or_else(|| Some(Utc::now()));
                let changed = self.follower.fix(&fix, Instant::now());
                let latest = self.follower.latest().map(|l| l.located);
                self.status.update(|s| {
                    s.fix_mode = Some(fix.mode);
                    s.last_fix = latest;
                    s.last_fix_received = Some(Utc::now());
                });
                if changed {
                    self.publish();
                }
            }
            Report::NoFix { mode } => self.status.update(|s| s.fix_mode = Some(mode)),
            // Also the answer to a silence probe: logged once per connection, in `session`.
            Report::Version { release } => self.status.update(|s| s.gpsd_release = Some(release)),
            Report::Error { message } => {
                tracing::warn!(message, "gpsd reported an error");
                self.status.update(|s| {
                    s.last_error = Some(format!("gpsd: {message}"));
                    s.last_error_time = Some(Utc::now());
                });
            }
            Report::Other => {}
        }
    }

    /// Counts a bad line; logs the first of each reason at warn, the rest at debug.
    fn bad_line(&mut self, r: &Rejection) {
        self.status.update(|s| s.bad_lines += 1);
        if self.logged.insert(r.reason) {
            tracing::warn!(reason = r.reason, detail = %r.detail, "ignored a bad line from gpsd");
        } else {
            tracing::debug!(reason = r.reason, detail = %r.detail, "ignored a bad line from gpsd");
        }
    }

    fn publish(&mut self) {
        let current = self.follower.current();
        if let Some(c) = &current {
            let source = c.source;
            let (lat, lon) = (c.observer.latitude, c.observer.longitude);
            tracing::info!(?source, lat, lon, alt_m = c.observer.altitude_m, "location changed");
        } else {
            tracing::info!("location unknown");
        }
        self.tx.send_replace(current);
        self.status.update(|s| {
            s.current = current;
            s.updates += 1;
        });
    }
}

async fn send(writer: &mut tokio::net::tcp::OwnedWriteHalf, what: &[u8]) -> Result<(), String> {
    match timeout(CONNECT_TIMEOUT, writer.write_all(what)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("write: {e}")),
        Err(_) => Err(format!("write: not accepted within {CONNECT_TIMEOUT:?}")),
    }
}

/// Splits a byte stream into lines of at most `MAX_LINE` bytes; an over-long line is reported
/// once and skipped up to its end, so a misbehaving peer cannot make us buffer without bound.
#[derive(Default)]
struct LineBuffer {
    partial: Vec<u8>,
    skipping: bool,
}

impl LineBuffer {
    fn push(&mut self, mut data: &[u8]) -> Vec<Result<String, Rejection>> {
        let mut out = Vec::new();
        let too_long = || Rejection::new("too_long", format!("a line longer than {MAX_LINE} bytes"));
        while let Some(end) = data.iter().position(|&b| b == b'\n') {
            if self.skipping {
                self.skipping = false;
            } else {
                self.partial.extend_from_slice(&data[..end]);
                out.push(if self.partial.len() > MAX_LINE {
                    Err(too_long())
                } else {
                    String::from_utf8(std::mem::take(&mut self.partial))
                        .map_err(|_| Rejection::new("not_utf8", "a line that is not UTF-8"))
                });
            }
            self.partial.clear();
            data = &data[end + 1..];
        }
        if !self.skipping {
            self.partial.extend_from_slice(data);
            if self.partial.len() > MAX_LINE {
                self.partial = Vec::new();
                self.skipping = true;
                out.push(Err(too_long()));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(b: &mut LineBuffer, data: &[u8]) -> Vec<Result<String, &'static str>> {
        b.push(data).into_iter().map(|r| r.map_err(|e| e.reason)).collect()
    }

    #[test]
    fn lines_are_reassembled_across_reads() {
        let mut b = LineBuffer::default();
        assert_eq!(push(&mut b, b"{\"class\":\"VER"), vec![]);
        assert_eq!(
            push(&mut b, b"SION\"}\r\n{\"a\":1}\n{\"b\""),
            vec![Ok("{\"class\":\"VERSION\"}\r".into()), Ok("{\"a\":1}".into())]
        );
        assert_eq!(push(&mut b, b":2}\n"), vec![Ok("{\"b\":2}".into())]);
        assert_eq!(push(&mut b, b"\xff\xfe\n"), vec![Err("not_utf8")]);
    }

    #[test]
    fn an_over_long_line_is_reported_once_and_skipped() {
        let mut b = LineBuffer::default();
        let chunk = vec![b'x'; 40 * 1024];
        assert_eq!(push(&mut b, &chunk), vec![]);
        assert_eq!(push(&mut b, &chunk), vec![Err("too_long")]);
        assert_eq!(push(&mut b, &chunk), vec![], "still skipping, not reported again");
        assert_eq!(push(&mut b, b"xx\nok\n"), vec![Ok("ok".into())]);
        // Over-long within one read, ending in it.
        let mut one = vec![b'y'; MAX_LINE + 1];
        one.extend_from_slice(b"\nfine\n");
        assert_eq!(push(&mut b, &one), vec![Err("too_long"), Ok("fine".into())]);
        assert!(b.partial.capacity() <= MAX_LINE * 2, "the buffer does not keep growing");
    }
}
