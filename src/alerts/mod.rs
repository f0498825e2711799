//! Night-pass email alerts: one email `lead_minutes` before each visible pass (and optionally
//! one while the ISS is high overhead at night), exactly once per pass, also across restarts.
//! With `email.push` a second task sends the same alerts by push (`push`), with its own records
//! (`AlertEmail::channel`), retries and status. Avalanche danger alerts are `danger`.
//!
//! - `plan` decides what is due (pure: passes, clock, what the log records, what is failing).
//! - `message` writes the email (pure).
//! - `smtp` sends it (lettre with rustls/ring) and explains failures.
//! - this file runs the loop: every 30 s (sooner when something is due, and on a location
//!   change) it predicts the next day's visible passes from the newest TLE for the current
//!   location, sends what is due, and records each email in the log (`AlertEmail`, identity
//!   (alert, pass rise)) with a flush before moving on, so a restart never sends it again.
//!   A pass counts as emailed when the log or this run records the same alert for a rise within
//!   `plan::SAME_PASS` (5 min) of its prediction: a new TLE, the switch from the configured
//!   location to the GPS fix, or GPS wander move the predicted rise by seconds, and it is still
//!   the pass that was emailed. A failing email follows its pass's newest prediction.
//!   A failed send is retried with back-off (30 s doubling to 5 min) until the pass begins
//!   to be visible (the overhead alert: until it stops being visible); then it is recorded as
//!   `Missed` with the last error.
//!
//! The only window for a duplicate is a crash between the server accepting the email and the
//! flush (milliseconds); the alternative (record first) would lose emails instead.
//!
//! Directions in the email are the look angles at the start and end of visibility
//! (`passes::look_angles`) and the culmination when it lies inside the visible window (else the
//! higher end of it).

mod config;
pub mod danger;
pub mod danger_plan;
pub mod message;
pub mod plan;
pub mod push;
pub mod smtp;

pub use config::{AlertsConfig, EmailConfig, Security};
pub use danger::{AvalancheAlertsConfig, DangerAlerts, DangerSnapshot, DangerStatus};
pub use push::PushConfig;

use crate::cell::StatusCell;
use crate::clock::SharedClock;
use crate::domain::{AlertChannel, AlertEmail, AlertKind, AlertOutcome, Record};
use crate::location::Located;
use crate::passes::{Pass, PassQuery, look_angles};
use crate::store::{Store, WriterHandle};
use chrono::{DateTime, Duration as Span, Utc};
use plan::{Action, Key, Recorded, Rules};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The longest pause between two checks.
const CHECK_EVERY: Duration = Duration::from_secs(30);
/// The pause while there is no TLE or no location yet.
const WAITING_EVERY: Duration = Duration::from_secs(2);
const RETRY_FIRST: Span = Span::seconds(30);
const RETRY_MAX: Span = Span::minutes(5);

/// The link in emails: `email.map_url`, else `http://<hostname>.local:<web port>/` (from
/// `web.listen`).
pub fn map_url(email: &EmailConfig, web_listen: &str) -> String {
    if let Some(u) = &email.map_url {
        return u.clone();
    }
    let port = web_listen.rsplit(':').next().filter(|p| p.parse::<u16>().is_ok()).unwrap_or("8080");
    let host = gethostname::gethostname().to_string_lossy().trim().to_owned();
    format!("http://{host}.local:{port}/")
}

/// A pass email that will go out later, as /api/status shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingEmail {
    pub send_at: DateTime<Utc>,
    pub visible_from: Option<DateTime<Utc>>,
    pub pass_rise: DateTime<Utc>,
    pub max_elevation_deg: f64,
}

/// The "email" section of /api/status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmailSnapshot {
    pub enabled: bool,
    /// Completed checks that had a TLE and a location (each one predicts and decides).
    pub checks: u64,
    /// Emails sent by this process.
    pub sent: u64,
    /// Emails recorded as missed by this process.
    pub missed: u64,
    /// Failed send attempts in this process.
    pub failures: u64,
    /// Emails currently failing (retried until their deadline).
    pub retrying: u64,
    /// Pass emails still to be sent (next 24 h), soonest first.
    pub pending: Vec<PendingEmail>,
    /// What the log records for recent passes (also from before a restart).
    pub recorded: Vec<AlertEmail>,
    pub last_sent: Option<DateTime<Utc>>,
    /// The last SMTP error (never a password), kept after a later success.
    pub last_error: Option<String>,
    pub last_error_time: Option<DateTime<Utc>>,
    /// Why no check could run (no TLE yet, no location, bad settings).
    pub waiting: Option<String>,
}

/// The email alerts' live status.
pub type EmailStatus = StatusCell<EmailSnapshot>;

impl Default for EmailSnapshot {
    fn default() -> Self {
        EmailSnapshot {
            enabled: true,
            checks: 0,
            sent: 0,
            missed: 0,
            failures: 0,
            retrying: 0,
            pending: Vec::new(),
            recorded: Vec::new(),
            last_sent: None,
            last_error: None,
            last_error_time: None,
            waiting: Some("starting".into()),
        }
    }
}

/// How a pass alert leaves: by email or by push. One alert task runs per channel, each with its
/// own records (`AlertEmail::channel`), retries and status.
pub enum Courier {
    Mail(smtp::Mailer),
    Push(push::Pusher),
}

impl Courier {
    fn recipients(&self) -> u32 {
        match self {
            Courier::Mail(m) => m.recipients(),
            Courier::Push(_) => 1,
        }
    }

    async fn send(&self, kind: AlertKind, content: &message::Content, map_url: &str) -> anyhow::Result<()> {
        match self {
            Courier::Mail(m) => m.send(content).await,
            Courier::Push(p) => {
                p.send(&push::Notice::for_pass(kind, content, map_url)).await.map_err(anyhow::Error::new)
            }
        }
    }
}

/// Everything the alert task needs.
pub struct EmailAlerts {
    pub email: EmailConfig,
    /// This task's channel: `Email` through `[email]`, `Push` through `[push]` (`email.push`).
    pub channel: AlertChannel,
    pub push: PushConfig,
    pub pass_options: crate::passes::PassOptions,
    /// The map link in the emails (`map_url`).
    pub map_url: String,
    pub clock: SharedClock,
    pub store: Store,
    pub writer: WriterHandle,
    pub location: watch::Receiver<Option<Located>>,
    pub status: Arc<EmailStatus>,
}

/// Per-email retry state in this process.
struct Failing {
    pass: Pass,
    next_try: DateTime<Utc>,
    backoff: Span,
    error: String,
}

impl EmailAlerts {
    /// The SMTP server as its role (the mailer already takes the password out).
    fn redactor(&self) -> crate::config::Redactor {
        let mut r = crate::config::Redactor::new();
        if let Some(url) = &self.push.url {
            r = r.url(url, "<push url>");
        }
        match &self.email.smtp_host {
            Some(host) => {
                let at = crate::config::HostPort { host: host.clone(), port: self.email.smtp_port };
                r.host_port(&at, "<smtp server>")
            }
            None => r,
        }
    }

    pub async fn run(mut self, cancel: CancellationToken) {
        let courier = match self.channel {
            AlertChannel::Email => smtp::Mailer::new(&self.email).map(Courier::Mail),
            AlertChannel::Push => push::Pusher::new(&self.push).map(Courier::Push),
        };
        let mailer = match courier {
            Ok(m) => m,
            Err(e) => {
                let msg = format!("{e:#}");
                tracing::error!(channel = self.channel.as_str(), error = %msg, "pass alerts are off: bad [email] or [push] settings");
                let msg = self.redactor().apply(&msg);
                self.status.update(|s| {
                    s.waiting = Some(msg.clone());
                    s.last_error = Some(msg);
                    s.last_error_time = Some(self.clock.now());
                });
                cancel.cancelled().await;
                return;
            }
        };
        let rules = Rules {
            lead: Span::minutes(i64::from(self.email.lead_minutes)),
            overhead_elevation_deg: self.email.overhead_alert.then_some(self.email.overhead_elevation_deg),
        };
        let map_url = self.map_url.clone();
        let mut failing: HashMap<Key, Failing> = HashMap::new();
        let mut done_here: HashSet<Key> = HashSet::new();
        let mut location_open = true;
        loop {
            let pause = match self.check(&mailer, &rules, &map_url, &mut failing, &mut done_here).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "email alert check failed");
                    CHECK_EVERY
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(pause) => {}
                r = self.location.changed(), if location_open => {
                    if r.is_err() {
                        location_open = false;
                    }
                }
            }
        }
    }

    /// One round; returns how long to wait before the next.
    async fn check(
        &mut self,
        mailer: &Courier,
        rules: &Rules,
        map_url: &str,
        failing: &mut HashMap<Key, Failing>,
        done_here: &mut HashSet<Key>,
    ) -> anyhow::Result<Duration> {
        let now = self.clock.now();
        let store = self.store.clone();
        let (tle, recent) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            Ok((store.latest_tle()?, store.alert_emails_since(now - Span::days(2))?))
        })
        .await??;
        let observer = self.location.borrow().map(|l| l.observer);
        let (Some(tle), Some(observer)) = (tle, observer) else {
            let why = if observer.is_none() { "no location yet" } else { "no TLE yet" };
            self.status.update(|s| s.waiting = Some(why.into()));
            return Ok(WAITING_EVERY);
        };
        if let Err(why) = plan::clock_fits_tle(now, tle.epoch) {
            // Logged when it starts (the message carries the time, so compare its start).
            let kind = |w: &str| w.chars().take(16).collect::<String>();
            if self.status.snapshot().waiting.as_deref().map(kind) != Some(kind(&why)) {
                tracing::warn!(reason = %why, "email alerts wait");
            }
            self.status.update(|s| s.waiting = Some(why));
            return Ok(WAITING_EVERY);
        }
        // What the log records (read back 2 days: every pass predicted below rises after
        // now - 1 h, so any record within SAME_PASS of one is in range) and what this run did.
        let mut recorded: Recorded = recent
            .iter()
            .filter(|a| a.channel == self.channel)
            .map(|a| (a.alert, a.pass_rise.timestamp_millis()))
            .collect();
        recorded.extend(done_here.iter().copied());
        let query = PassQuery {
            observer,
            from: now - Span::hours(1),
            hours: 25.0,
            options: self.pass_options,
            all: false,
            max_magnitude: None,
            brightest_first: false,
        };
        let passes = query.run(&tle)?;
        follow_new_predictions(failing, &passes);
        let sky_now = if rules.overhead_elevation_deg.is_some() { look_angles(&tle, observer, now).ok() } else { None };
        let failing_passes: HashMap<Key, Pass> = failing.iter().map(|(k, f)| (*k, f.pass.clone())).collect();
        let actions = plan::decide(&passes, now, sky_now, &recorded, &failing_passes, rules);

        for action in actions {
            match action {
                Action::Send(kind, pass) => {
                    let k = plan::key(kind, &pass);
                    if recorded.contains(k) || failing.get(&k).is_some_and(|f| f.next_try > self.clock.now()) {
                        continue;
                    }
                    let content = {
                        let from = pass.visible_from.unwrap_or(pass.rise.time);
                        let to = pass.visible_to.unwrap_or(pass.set.time);
                        let start = look_angles(&tle, observer, from)?;
                        let end = look_angles(&tle, observer, to)?;
                        message::compose(kind, &message::Sky::new(&pass, start, end), map_url, &chrono::Local)
                    };
                    match mailer.send(kind, &content, map_url).await {
                        Ok(()) => {
                            let at = self.clock.now();
                            tracing::info!(alert = kind.as_str(), channel = self.channel.as_str(), subject = %content.subject, "pass alert sent");
                            self.record(kind, &pass, AlertOutcome::Sent, at, mailer.recipients(), None).await;
                            failing.remove(&k);
                            done_here.insert(k);
                            recorded.insert(k);
                            self.status.update(|s| {
                                s.sent += 1;
                                s.last_sent = Some(at);
                            });
                        }
                        Err(e) => {
                            let msg = format!("{e:#}");
                            tracing::warn!(alert = kind.as_str(), channel = self.channel.as_str(), error = %msg, "pass alert failed; will retry");
                            // The status and the stored record (its detail, if the pass is missed)
                            // do not name the server; the log above does.
                            let msg = self.redactor().apply(&msg);
                            let t = self.clock.now();
                            let f = failing.entry(k).or_insert_with(|| Failing {
                                pass: pass.clone(),
                                next_try: t,
                                backoff: RETRY_FIRST,
                                error: String::new(),
                            });
                            f.next_try = t + f.backoff;
                            f.backoff = (f.backoff * 2).min(RETRY_MAX);
                            f.error = msg.clone();
                            self.status.update(|s| {
                                s.failures += 1;
                                s.last_error = Some(msg);
                                s.last_error_time = Some(t);
                            });
                        }
                    }
                }
                Action::Missed(kind, pass) => {
                    let k = plan::key(kind, &pass);
                    if recorded.contains(k) {
                        continue;
                    }
                    let detail = failing.remove(&k).map(|f| f.error);
                    tracing::warn!(alert = kind.as_str(), channel = self.channel.as_str(), error = ?detail, "pass alert missed: delivery failed until the pass");
                    self.record(kind, &pass, AlertOutcome::Missed, self.clock.now(), mailer.recipients(), detail).await;
                    done_here.insert(k);
                    recorded.insert(k);
                    self.status.update(|s| s.missed += 1);
                }
            }
        }

        let now = self.clock.now();
        let pending = plan::pending(&passes, now, &recorded, rules);
        let store = self.store.clone();
        let channel = self.channel;
        let recent = tokio::task::spawn_blocking(move || store.alert_emails_since(now - Span::days(2))).await??;
        let recent: Vec<AlertEmail> = recent.into_iter().filter(|a| a.channel == channel).collect();
        // Wake for the next send time, retry or deadline, at the latest after CHECK_EVERY.
        let mut next = now + Span::from_std(CHECK_EVERY)?;
        for t in pending.iter().map(|p| p.send_at).chain(failing.values().map(|f| f.next_try)) {
            if t > now {
                next = next.min(t);
            }
        }
        for (k, f) in failing.iter() {
            if let Some(d) = plan::deadline(k.0, &f.pass).filter(|d| *d > now) {
                next = next.min(d);
            }
        }
        let retrying = failing.len() as u64;
        self.status.update(|s| {
            s.checks += 1;
            s.waiting = None;
            s.retrying = retrying;
            s.recorded = recent;
            s.pending = pending
                .iter()
                .map(|p| PendingEmail {
                    send_at: p.send_at,
                    visible_from: p.pass.visible_from,
                    pass_rise: p.pass.rise.time,
                    max_elevation_deg: p.pass.culmination.elevation_deg,
                })
                .collect();
        });
        Ok((next - now).to_std().unwrap_or_default().max(Duration::from_millis(500)))
    }

    /// Appends the email's record and makes it durable before anything else happens.
    async fn record(
        &self,
        kind: AlertKind,
        pass: &Pass,
        outcome: AlertOutcome,
        at: DateTime<Utc>,
        recipients: u32,
        detail: Option<String>,
    ) {
        self.writer.append(Record::AlertEmail(AlertEmail {
            alert: kind,
            pass_rise: pass.rise.time,
            outcome,
            at,
            visible_from: pass.visible_from,
            recipients,
            detail,
            channel: self.channel,
        }));
        if let Err(e) = self.writer.flush().await {
            tracing::error!(error = %format!("{e:#}"), "cannot make the alert email record durable");
        }
    }
}

/// Moves each failing email to the newest prediction of its pass (same alert, rise within
/// `plan::SAME_PASS`), so its retry state and deadline stay one per physical pass.
fn follow_new_predictions(failing: &mut HashMap<Key, Failing>, passes: &[Pass]) {
    for p in passes {
        for kind in [AlertKind::Pass, AlertKind::Overhead] {
            let k = plan::key(kind, p);
            let Some(old) = failing.keys().copied().find(|f| plan::same_pass(*f, k)) else { continue };
            if let Some(mut f) = failing.remove(&old) {
                f.pass = p.clone();
                failing.insert(k, f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FakeClock;
    use crate::passes::Observer;
    use crate::store::StoreOptions;

    const OSLO: Observer = Observer { latitude: 59.9139, longitude: 10.7522, altitude_m: 20.0 };

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    /// Scheduling follows the clock it is given: with SMTP down, the email due before Oslo's
    /// 19:38 UTC pass (Skyfield reference, tests/fixtures/passes) is retried, and recorded as
    /// missed once the clock passes the start of visibility.
    #[tokio::test]
    async fn a_failing_email_is_retried_on_the_clock_and_recorded_missed_when_the_pass_begins() {
        crate::install_tls_provider();
        let dir = tempfile::tempdir().unwrap();
        let (store, writer, _) = Store::open(dir.path(), "t", StoreOptions::default()).unwrap();
        let handle = writer.handle();
        writer.spawn().unwrap();
        let tle =
            crate::sources::tle_parse::parse_tle(include_bytes!("../../tests/fixtures/passes/iss-2023-09-18.tle"))
                .unwrap();
        handle.append(Record::Tle(tle));
        handle.flush().await.unwrap();
        // A port nothing listens on: every send fails at once.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let email: EmailConfig = toml::from_str(&format!(
            "smtp_host = \"127.0.0.1\"\nsmtp_port = {closed}\nsecurity = \"none\"\nfrom = \"o@example.org\"\nto = [\"me@example.org\"]\n"
        ))
        .unwrap();
        let clock = FakeClock::at(t("2023-09-18T19:20:00Z"));
        let (_tx, location) = watch::channel(crate::location::configured(&crate::location::LocationConfig {
            latitude: Some(OSLO.latitude),
            longitude: Some(OSLO.longitude),
            altitude_m: OSLO.altitude_m,
            gpsd: None,
        }));
        let mut alerts = EmailAlerts {
            map_url: "http://outpost.local:8080/".into(),
            pass_options: crate::passes::PassOptions::default(),
            clock: clock.clone(),
            store: store.clone(),
            writer: handle.clone(),
            location,
            status: Arc::new(EmailStatus::default()),
            email,
            channel: AlertChannel::Email,
            push: PushConfig::default(),
        };
        let mailer = Courier::Mail(smtp::Mailer::new(&alerts.email).unwrap());
        let rules = Rules { lead: Span::minutes(15), overhead_elevation_deg: None };
        let (mut failing, mut done) = (HashMap::new(), HashSet::new());
        let check = async |alerts: &mut EmailAlerts, failing: &mut HashMap<Key, Failing>, done: &mut HashSet<Key>| {
            alerts.check(&mailer, &rules, "http://outpost.local:8080/", failing, done).await.unwrap()
        };

        // 19:20 is before the lead window (19:23:31): nothing is sent, the email is pending.
        check(&mut alerts, &mut failing, &mut done).await;
        let s = alerts.status.snapshot();
        assert_eq!((s.failures, s.sent), (0, 0));
        assert_eq!(s.pending.first().map(|p| p.send_at), Some(t("2023-09-18T19:23:31Z")));

        // In the window: the send fails and is retried later, nothing is recorded yet.
        clock.set(t("2023-09-18T19:25:00Z"));
        check(&mut alerts, &mut failing, &mut done).await;
        let s = alerts.status.snapshot();
        assert_eq!((s.failures, s.retrying, s.missed), (1, 1, 0), "{s:?}");
        assert!(s.last_error.is_some());
        assert!(store.alert_emails_since(t("2023-09-18T00:00:00Z")).unwrap().is_empty());

        // Once visibility began, it is too late: recorded as missed, once.
        clock.set(t("2023-09-18T19:39:00Z"));
        check(&mut alerts, &mut failing, &mut done).await;
        check(&mut alerts, &mut failing, &mut done).await;
        let recorded = store.alert_emails_since(t("2023-09-18T00:00:00Z")).unwrap();
        assert_eq!(recorded.len(), 1, "{recorded:?}");
        assert_eq!(recorded[0].outcome, AlertOutcome::Missed);
        assert_eq!(recorded[0].pass_rise, t("2023-09-18T19:38:31Z"));
        assert_eq!(alerts.status.snapshot().missed, 1);
    }

    /// A minimal SMTP server on loopback (no TLS, no AUTH) that accepts every message and counts
    /// them: the number of emails that really went out.
    async fn counting_smtp() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let count = Arc::new(AtomicUsize::new(0));
        let accepted = count.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let accepted = accepted.clone();
                tokio::spawn(async move {
                    let (read, mut write) = socket.into_split();
                    let mut lines = BufReader::new(read).lines();
                    write.write_all(b"220 test ESMTP\r\n").await.unwrap();
                    let mut in_data = false;
                    while let Ok(Some(line)) = lines.next_line().await {
                        let reply: &[u8] = if in_data {
                            if line != "." {
                                continue;
                            }
                            in_data = false;
                            accepted.fetch_add(1, Ordering::SeqCst);
                            b"250 queued\r\n"
                        } else {
                            match line.get(..4).map(str::to_ascii_uppercase).as_deref() {
                                Some("EHLO") => b"250-test\r\n250 8BITMIME\r\n",
                                Some("DATA") => {
                                    in_data = true;
                                    b"354 go ahead\r\n"
                                }
                                Some("QUIT") => b"221 bye\r\n",
                                _ => b"250 ok\r\n",
                            }
                        };
                        if write.write_all(reply).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        (port, count)
    }

    /// The recorded TLE with its epoch moved by `secs` (what a newer TLE does to predictions:
    /// they shift by seconds).
    fn tle_moved(secs: f64) -> crate::domain::Tle {
        let text = std::str::from_utf8(include_bytes!("../../tests/fixtures/passes/iss-2023-09-18.tle")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let l1 = lines[1].trim_end();
        let day: f64 = l1[20..32].parse::<f64>().unwrap() + secs / 86_400.0;
        let mut new = format!("{}{day:012.8}{}", &l1[..20], &l1[32..68]);
        let sum: u32 = new.chars().map(|c| if c == '-' { 1 } else { c.to_digit(10).unwrap_or(0) }).sum();
        new.push(char::from_digit(sum % 10, 10).unwrap());
        let moved = format!("{}\n{new}\n{}\n", lines[0], lines[2]);
        crate::sources::tle_parse::parse_tle(moved.as_bytes()).unwrap()
    }

    struct Bench {
        _dir: tempfile::TempDir,
        store: Store,
        writer: WriterHandle,
        clock: Arc<FakeClock>,
        place: watch::Sender<Option<crate::location::Located>>,
        sent: Arc<std::sync::atomic::AtomicUsize>,
        email: EmailConfig,
    }

    impl Bench {
        async fn new(at: &str, tle: crate::domain::Tle) -> Bench {
            crate::install_tls_provider();
            let dir = tempfile::tempdir().unwrap();
            let (store, writer, _) = Store::open(dir.path(), "t", StoreOptions::default()).unwrap();
            let handle = writer.handle();
            writer.spawn().unwrap();
            handle.append(Record::Tle(tle));
            handle.flush().await.unwrap();
            let (port, sent) = counting_smtp().await;
            let email: EmailConfig = toml::from_str(&format!(
                "smtp_host = \"127.0.0.1\"\nsmtp_port = {port}\nsecurity = \"none\"\nfrom = \"o@example.org\"\nto = [\"me@example.org\"]\nlead_minutes = 15\n"
            ))
            .unwrap();
            let (place, _) = watch::channel(Some(crate::location::Located {
                observer: OSLO,
                source: crate::location::LocationSource::Config,
                fix_time: None,
            }));
            Bench { _dir: dir, store, writer: handle, clock: FakeClock::at(t(at)), place, sent, email }
        }

        /// A fresh alert task on the same store (what a restart makes).
        fn alerts(&self) -> EmailAlerts {
            EmailAlerts {
                map_url: "http://outpost.local:8080/".into(),
                pass_options: crate::passes::PassOptions::default(),
                clock: self.clock.clone(),
                store: self.store.clone(),
                writer: self.writer.clone(),
                location: self.place.subscribe(),
                status: Arc::new(EmailStatus::default()),
                email: self.email.clone(),
                channel: AlertChannel::Email,
                push: PushConfig::default(),
            }
        }

        fn sent(&self) -> usize {
            self.sent.load(std::sync::atomic::Ordering::SeqCst)
        }

        fn recorded_rises(&self) -> Vec<DateTime<Utc>> {
            self.store.alert_emails_since(t("2023-09-18T00:00:00Z")).unwrap().iter().map(|a| a.pass_rise).collect()
        }

        /// The predicted rise of the visible pass nearest `near`, for what the store and the
        /// location hold now.
        fn predicted_rise(&self, near: DateTime<Utc>) -> DateTime<Utc> {
            let tle = self.store.latest_tle().unwrap().unwrap();
            let observer = self.place.borrow().unwrap().observer;
            let q = PassQuery {
                observer,
                from: near - Span::hours(2),
                hours: 4.0,
                options: Default::default(),
                all: false,
                max_magnitude: None,
                brightest_first: false,
            };
            q.run(&tle)
                .unwrap()
                .into_iter()
                .filter(|p| p.visible)
                .min_by_key(|p| (p.rise.time - near).abs())
                .unwrap()
                .rise
                .time
        }
    }

    /// One check of `alerts` with its own retry and done state.
    struct Run {
        alerts: EmailAlerts,
        mailer: Courier,
        failing: HashMap<Key, Failing>,
        done: HashSet<Key>,
    }

    impl Run {
        fn new(bench: &Bench) -> Run {
            let alerts = bench.alerts();
            let mailer = Courier::Mail(smtp::Mailer::new(&alerts.email).unwrap());
            Run { alerts, mailer, failing: HashMap::new(), done: HashSet::new() }
        }

        async fn check(&mut self) -> EmailSnapshot {
            let rules = Rules { lead: Span::minutes(15), overhead_elevation_deg: None };
            let Run { alerts, mailer, failing, done } = self;
            alerts.check(mailer, &rules, "http://outpost.local:8080/", failing, done).await.unwrap();
            alerts.status.snapshot()
        }
    }

    /// Oslo's 19:38:31 UTC pass on 2023-09-18 (the Skyfield reference), emailed from 19:23:31.
    const FIRST_RISE: &str = "2023-09-18T19:38:31Z";

    #[tokio::test]
    async fn a_new_tle_inside_the_lead_window_does_not_email_the_pass_again() {
        let bench = Bench::new("2023-09-18T19:25:00Z", tle_moved(0.0)).await;
        let mut run = Run::new(&bench);
        assert_eq!(run.check().await.sent, 1);
        assert_eq!(bench.sent(), 1);
        let first = bench.recorded_rises();
        assert_eq!(first.len(), 1);
        assert!((first[0] - t(FIRST_RISE)).abs() < Span::seconds(1), "{first:?}");
        // Newer TLEs (epoch 5 s, then 30 s later) arrive while the pass is still ahead.
        for (secs, minute) in [(5.0, "2023-09-18T19:27:00Z"), (30.0, "2023-09-18T19:29:00Z")] {
            bench.writer.append(Record::Tle(tle_moved(secs)));
            bench.writer.flush().await.unwrap();
            bench.clock.set(t(minute));
            let moved = bench.predicted_rise(first[0]);
            assert!((moved - first[0]).abs() >= Span::seconds(secs as i64 / 2), "the prediction moved: {moved}");
            let s = run.check().await;
            assert_eq!((s.sent, s.failures), (1, 0), "TLE moved by {secs} s: {s:?}");
            assert!(s.pending.iter().all(|p| (p.pass_rise - first[0]).abs() > plan::SAME_PASS), "{s:?}");
        }
        // And after a restart (nothing in memory, only the log): still one.
        let mut restarted = Run::new(&bench);
        assert_eq!(restarted.check().await.sent, 0);
        assert_eq!(bench.sent(), 1);
        assert_eq!(bench.recorded_rises(), first);
    }

    #[tokio::test]
    async fn the_switch_from_the_configured_location_to_the_gps_fix_does_not_email_the_pass_again() {
        let bench = Bench::new("2023-09-18T19:25:00Z", tle_moved(0.0)).await;
        let mut run = Run::new(&bench);
        assert_eq!(run.check().await.sent, 1);
        let first = bench.recorded_rises();
        // The GPS fix, 3 km north-east of the configured place, a moment later.
        bench.place.send_replace(Some(crate::location::Located {
            observer: Observer { latitude: OSLO.latitude + 0.02, longitude: OSLO.longitude + 0.03, altitude_m: 95.0 },
            source: crate::location::LocationSource::Gps,
            fix_time: Some(t("2023-09-18T19:25:10Z")),
        }));
        bench.clock.set(t("2023-09-18T19:25:15Z"));
        let moved = bench.predicted_rise(first[0]);
        assert_ne!(moved, first[0], "the pass's predicted rise moved with the location");
        let s = run.check().await;
        assert_eq!(s.sent, 1, "{s:?}");
        let mut restarted = Run::new(&bench);
        assert_eq!(restarted.check().await.sent, 0);
        assert_eq!(bench.sent(), 1);
        assert_eq!(bench.recorded_rises(), first);
    }

    #[tokio::test]
    async fn two_real_passes_96_minutes_apart_get_two_emails() {
        // Oslo, 2023-09-19: visible passes rising at 18:51:04 and 20:26:51 (Skyfield reference).
        let bench = Bench::new("2023-09-19T18:40:00Z", tle_moved(0.0)).await;
        let mut run = Run::new(&bench);
        assert_eq!(run.check().await.sent, 1);
        bench.clock.set(t("2023-09-19T18:45:00Z"));
        assert_eq!(run.check().await.sent, 1);
        bench.clock.set(t("2023-09-19T20:15:00Z"));
        assert_eq!(run.check().await.sent, 2);
        bench.clock.set(t("2023-09-19T20:20:00Z"));
        assert_eq!(run.check().await.sent, 2);
        assert_eq!(bench.sent(), 2);
        let rises = bench.recorded_rises();
        assert_eq!(rises.len(), 2, "{rises:?}");
        for (got, want) in rises.iter().zip(["2023-09-19T18:51:04Z", "2023-09-19T20:26:51Z"]) {
            assert!((*got - t(want)).abs() < Span::seconds(2), "{got} vs {want}");
        }
    }

    /// With SMTP down, a new TLE while the email is failing keeps one retry state and makes
    /// one "missed" record, not one per prediction.
    #[tokio::test]
    async fn a_failing_email_whose_prediction_moves_is_missed_once() {
        let bench = Bench::new("2023-09-18T19:25:00Z", tle_moved(0.0)).await;
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut run = Run::new(&bench);
        run.alerts.email.smtp_port = closed;
        run.mailer = Courier::Mail(smtp::Mailer::new(&run.alerts.email).unwrap());
        assert_eq!(run.check().await.failures, 1);
        bench.writer.append(Record::Tle(tle_moved(30.0)));
        bench.writer.flush().await.unwrap();
        // The back-off (30 s) still holds for the moved prediction: no new attempt at once.
        bench.clock.set(t("2023-09-18T19:25:10Z"));
        let s = run.check().await;
        assert_eq!((s.failures, s.retrying), (1, 1), "{s:?}");
        bench.clock.set(t("2023-09-18T19:40:00Z"));
        run.check().await;
        let s = run.check().await;
        assert_eq!(s.missed, 1, "{s:?}");
        assert_eq!(bench.recorded_rises().len(), 1);
        assert_eq!(bench.sent(), 0);
    }

    /// `email.push`: the pass alert goes out by push as well, once, with its own record; the
    /// email's record does not stand in for it (nor the other way round).
    #[tokio::test]
    async fn a_pass_alert_by_push_is_sent_once_on_its_own_record() {
        let bench = Bench::new("2023-09-18T19:25:00Z", tle_moved(0.0)).await;
        let (url, seen) = push::tests::receiver(vec![200]).await;
        let push: PushConfig = toml::from_str(&format!("url = \"{url}\"\n")).unwrap();
        let push_run = || {
            let mut alerts = bench.alerts();
            alerts.channel = AlertChannel::Push;
            alerts.push = push.clone();
            Run {
                mailer: Courier::Push(push::Pusher::new(&push).unwrap()),
                alerts,
                failing: HashMap::new(),
                done: HashSet::new(),
            }
        };
        assert_eq!(Run::new(&bench).check().await.sent, 1);
        assert_eq!(push_run().check().await.sent, 1);
        assert_eq!(push_run().check().await.sent, 0, "a restart: the push record holds");
        assert_eq!((bench.sent(), seen.lock().unwrap().len()), (1, 1));
        let got = seen.lock().unwrap()[0].clone();
        // The subject has an em dash: sent as an RFC 2047 encoded word.
        let title = got.header("title").unwrap();
        assert!(title.starts_with("=?UTF-8?B?SVNTIHZpc2libGUgYXQg"), "\"ISS visible at \": {got:?}");
        assert!(got.body.starts_with("The International Space Station will be visible"), "{}", got.body);
        assert_eq!(got.header("click"), Some("http://outpost.local:8080/"));
        assert!(got.body.contains("Appears:") && !got.body.contains("-- "), "{}", got.body);
        let recorded = bench.store.alert_emails_since(t("2023-09-18T00:00:00Z")).unwrap();
        let channels: Vec<_> = recorded.iter().map(|a| a.channel).collect();
        assert_eq!(channels, [AlertChannel::Email, AlertChannel::Push]);
    }
}
