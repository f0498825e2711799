//! Avalanche danger alerts (`[avalanche_alerts]`): when the warning shown for a followed region
//! today or tomorrow reaches `min_level`, or a newer version raises it, one email (through
//! `[email]`) and/or one push (through `[push]`) per (region, valid date, level), exactly once,
//! also across restarts: each delivery, or its giving up, is an `alert.danger` record in the
//! log, made durable before anything else happens (as the pass emails' records are).
//!
//! - `danger_plan` decides what is due (pure).
//! - `compose` writes the alert (pure); `smtp` and `push` deliver it.
//! - this file runs the loop: a check on every store commit (new warnings), at least every
//!   30 s, sooner for a retry. A failed delivery is retried with back-off (30 s doubling to
//!   10 min) until the valid date is over in Norway, then recorded as missed with the last error;
//!   a push the server refuses for good (4xx) is recorded as missed at once.

use super::danger_plan::{self, Action, DangerKey, Recorded};
use super::message::Content;
use super::push::{Notice, Pusher};
use super::smtp::Mailer;
use crate::cell::StatusCell;
use crate::clock::SharedClock;
use crate::config::{Invalid, KeyType, Section};
use crate::domain::{
    AlertChannel, AlertOutcome, AvalancheWarning, DangerAlert, Direction, ElevationBand, Record, norwegian_date,
};
use crate::store::{Store, WriterHandle};
use chrono::{DateTime, Duration as Span, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const CHECK_EVERY: Duration = Duration::from_secs(30);
const RETRY_FIRST: Span = Span::seconds(30);
const RETRY_MAX: Span = Span::minutes(10);

/// `[avalanche_alerts]`; on when `email` or `push` is.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AvalancheAlertsConfig {
    /// The regions alerted about; empty = every region of `varsom.regions`.
    #[serde(default)]
    pub regions: Vec<u32>,
    #[serde(default = "d_min_level")]
    pub min_level: u8,
    /// Alert by email, through `[email]`.
    #[serde(default)]
    pub email: bool,
    /// Alert by push, through `[push]`.
    #[serde(default)]
    pub push: bool,
}

impl Default for AvalancheAlertsConfig {
    fn default() -> Self {
        AvalancheAlertsConfig { regions: Vec::new(), min_level: d_min_level(), email: false, push: false }
    }
}

fn d_min_level() -> u8 {
    3
}

impl AvalancheAlertsConfig {
    pub fn enabled(&self) -> bool {
        self.email || self.push
    }

    pub fn channels(&self) -> Vec<AlertChannel> {
        let mut out = Vec::new();
        if self.email {
            out.push(AlertChannel::Email);
        }
        if self.push {
            out.push(AlertChannel::Push);
        }
        out
    }

    /// The regions alerted about, given the followed ones.
    pub fn regions_or(&self, followed: &[u32]) -> Vec<u32> {
        if self.regions.is_empty() { followed.to_vec() } else { self.regions.clone() }
    }
}

impl Section for AvalancheAlertsConfig {
    const KEYS: &'static [(&'static str, KeyType)] = &[
        ("regions", KeyType::IntList),
        ("min_level", KeyType::Int),
        ("email", KeyType::Bool),
        ("push", KeyType::Bool),
    ];

    fn validate(&self) -> Result<(), Invalid> {
        if !(1..=5).contains(&self.min_level) {
            return Err(Invalid::new("min_level", format!("{} is outside 1..=5 (the danger scale)", self.min_level)));
        }
        Ok(())
    }
}

/// The danger scale's names (EAWS, English).
pub fn level_name(level: u8) -> &'static str {
    match level {
        1 => "low",
        2 => "moderate",
        3 => "considerable",
        4 => "high",
        5 => "very high",
        _ => "no rating",
    }
}

fn band(b: &ElevationBand) -> Option<String> {
    Some(match *b {
        ElevationBand::Above { m } => format!("above {m} m"),
        ElevationBand::Below { m } => format!("below {m} m"),
        ElevationBand::AboveAndBelow { above_m, below_m } => format!("above {above_m} m and below {below_m} m"),
        ElevationBand::Between { low_m, high_m } => format!("between {low_m} and {high_m} m"),
        ElevationBand::Unspecified => return None,
    })
}

fn aspects(d: &[Direction]) -> Option<String> {
    if d.is_empty() {
        return None;
    }
    let names: Vec<String> = d.iter().map(|d| format!("{d:?}")).collect();
    Some(format!("aspects {}", names.join(" ")))
}

/// One line per avalanche problem: type, where, size and probability.
pub fn problem_lines(w: &AvalancheWarning) -> Vec<String> {
    w.problems
        .iter()
        .map(|p| {
            let mut parts = vec![p.problem_type.name.clone()];
            parts.extend(band(&p.elevation));
            parts.extend(aspects(&p.expositions));
            parts.extend(p.size.as_ref().map(|s| format!("size: {}", s.name)));
            parts.extend(p.probability.as_ref().map(|s| format!("probability: {}", s.name)));
            parts.join(", ")
        })
        .collect()
}

/// The page of that day: `<map_url base>/avalanche?date=YYYY-MM-DD`.
pub fn day_link(map_url: &str, date: NaiveDate) -> String {
    let base = map_url.split(['?', '#']).next().unwrap_or_default().trim_end_matches('/');
    format!("{base}/avalanche?date={date}")
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The alert for warning `w` at its level: the email and the push notice (pure).
pub fn compose(w: &AvalancheWarning, map_url: &str) -> (Content, Notice) {
    let level = w.danger_level.level().unwrap_or(0);
    let name = level_name(level);
    let day = w.valid_date.format("%a %d %b %Y");
    let subject = format!("Avalanche danger {level} ({name}) in {} on {day}", w.region_name);
    let link = day_link(map_url, w.valid_date);
    let problems = problem_lines(w);
    let mut body = w.main_text.trim().to_owned();
    if !problems.is_empty() {
        body.push_str("\n\nAvalanche problems:\n");
        for p in &problems {
            body.push_str(&format!("- {p}\n"));
        }
    }
    let text = format!(
        "{}: avalanche danger {level} ({name}) on {day}.\n\n{}\n\nDetails: {link}\n\n-- \nOutpost (warnings from NVE, varsom.no)\n",
        w.region_name,
        body.trim_end()
    );
    let mut html = format!(
        "<!DOCTYPE html>\n<html><body>\n<p><b>{}: avalanche danger {level} ({name})</b> on {day}.</p>\n<p>{}</p>\n",
        escape(&w.region_name),
        escape(w.main_text.trim())
    );
    if !problems.is_empty() {
        html.push_str("<p>Avalanche problems:</p>\n<ul>\n");
        for p in &problems {
            html.push_str(&format!("<li>{}</li>\n", escape(p)));
        }
        html.push_str("</ul>\n");
    }
    html.push_str(&format!(
        "<p><a href=\"{u}\">{u}</a></p>\n<p>Warnings from NVE, varsom.no</p>\n</body></html>\n",
        u = escape(&link)
    ));
    let notice = Notice {
        title: subject.clone(),
        message: body.trim_end().to_owned(),
        priority: if level >= 4 { 5 } else { 4 },
        tags: vec!["warning".into(), format!("danger-{level}")],
        click: Some(link),
    };
    (Content { subject, text, html }, notice)
}

/// The "danger_alerts" section of /api/status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DangerSnapshot {
    pub enabled: bool,
    pub channels: Vec<AlertChannel>,
    pub regions: Vec<u32>,
    pub min_level: u8,
    pub checks: u64,
    /// Alerts delivered by this process (each channel counts).
    pub sent: u64,
    pub missed: u64,
    pub failures: u64,
    pub retrying: u64,
    /// What the log records for today and later.
    pub recorded: Vec<DangerAlert>,
    pub last_sent: Option<DateTime<Utc>>,
    /// The last delivery error (never a password, token or URL), kept after a later success.
    pub last_error: Option<String>,
    pub last_error_time: Option<DateTime<Utc>>,
    /// Why no check can run (bad settings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
}

impl Default for DangerSnapshot {
    fn default() -> Self {
        DangerSnapshot {
            enabled: true,
            channels: Vec::new(),
            regions: Vec::new(),
            min_level: d_min_level(),
            checks: 0,
            sent: 0,
            missed: 0,
            failures: 0,
            retrying: 0,
            recorded: Vec::new(),
            last_sent: None,
            last_error: None,
            last_error_time: None,
            waiting: None,
        }
    }
}

pub type DangerStatus = StatusCell<DangerSnapshot>;

/// How alerts leave: the mailer (`[email]`) and the pusher (`[push]`), as configured.
pub struct Couriers {
    pub mailer: Option<Mailer>,
    pub pusher: Option<Pusher>,
}

impl Couriers {
    /// The couriers of the channels `config` switches on.
    pub fn build(
        config: &AvalancheAlertsConfig,
        email: &super::EmailConfig,
        push: &super::PushConfig,
    ) -> anyhow::Result<Couriers> {
        use anyhow::Context;
        let mailer = if config.email { Some(Mailer::new(email).context("bad [email] settings")?) } else { None };
        let pusher = if config.push { Some(Pusher::new(push).context("bad [push] settings")?) } else { None };
        Ok(Couriers { mailer, pusher })
    }
}

/// Everything the danger alert task needs.
pub struct DangerAlerts {
    pub config: AvalancheAlertsConfig,
    /// The regions alerted about (resolved against `varsom.regions`).
    pub regions: Vec<u32>,
    /// `Couriers::build`'s result: with an error (an unreadable `email.ca_file`) the task waits,
    /// showing why, and records nothing (a missed record would be final).
    pub couriers: Result<Couriers, String>,
    pub map_url: String,
    pub clock: SharedClock,
    pub store: Store,
    pub writer: WriterHandle,
    pub status: Arc<DangerStatus>,
    /// Takes configured hosts and URLs out of errors that are shown or stored.
    pub redact: crate::config::Redactor,
}

struct Failing {
    warning: AvalancheWarning,
    next_try: DateTime<Utc>,
    backoff: Span,
    error: String,
}

/// Per-process state of the loop.
#[derive(Default)]
pub struct Round {
    failing: HashMap<DangerKey, Failing>,
    done_here: Vec<DangerKey>,
}

impl DangerAlerts {
    pub async fn run(self, cancel: CancellationToken) {
        let mut round = Round::default();
        let mut commits = self.writer.subscribe();
        let channels = self.config.channels();
        self.status.update(|s| {
            s.channels = channels.clone();
            s.regions = self.regions.clone();
            s.min_level = self.config.min_level;
        });
        if let Err(e) = &self.couriers {
            tracing::error!(error = %e, "danger alerts are off: bad settings");
            let shown = self.redact.apply(e);
            let at = self.clock.now();
            self.status.update(|s| {
                s.waiting = Some(shown.clone());
                s.last_error = Some(shown);
                s.last_error_time = Some(at);
            });
            cancel.cancelled().await;
            return;
        }
        loop {
            let pause = match self.check(&mut round).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "danger alert check failed");
                    CHECK_EVERY
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(pause) => {}
                r = commits.changed() => {
                    if r.is_err() {
                        // The writer stopped: the process is ending.
                        cancel.cancelled().await;
                        break;
                    }
                }
            }
        }
    }

    /// One round; returns how long to wait before the next.
    pub async fn check(&self, round: &mut Round) -> anyhow::Result<Duration> {
        let now = self.clock.now();
        let today = norwegian_date(now);
        let dates = danger_plan::alert_dates(now);
        let store = self.store.clone();
        let regions = self.regions.clone();
        let (shown, recorded_log) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let mut shown = Vec::new();
            for d in dates {
                shown.extend(store.avalanche_for_date(d)?.into_iter().filter(|w| regions.contains(&w.region_id)));
            }
            Ok((shown, store.danger_alerts_since(today)?))
        })
        .await??;
        // What this run did for days now past is in the log and no longer asked about.
        round.done_here.retain(|k| k.1 >= today);
        let mut recorded: Recorded = recorded_log.iter().collect();
        for k in &round.done_here {
            recorded.insert(*k);
        }
        let channels = self.config.channels();
        let failing: Vec<DangerKey> = round.failing.keys().copied().collect();
        let actions = danger_plan::decide(&shown, now, self.config.min_level, &channels, &recorded, &failing);
        for action in actions {
            match action {
                Action::Send(channel, w) => {
                    let level = w.danger_level.level().unwrap_or(0);
                    let k = danger_plan::key(&w, level, channel);
                    if round.failing.get(&k).is_some_and(|f| f.next_try > self.clock.now()) {
                        continue;
                    }
                    let (content, notice) = compose(&w, &self.map_url);
                    match self.deliver(channel, &content, &notice).await {
                        Ok(()) => {
                            let at = self.clock.now();
                            tracing::info!(channel = channel.as_str(), subject = %content.subject, "danger alert sent");
                            self.record(&w, level, channel, AlertOutcome::Sent, at, None).await;
                            round.failing.remove(&k);
                            round.done_here.push(k);
                            self.status.update(|s| {
                                s.sent += 1;
                                s.last_sent = Some(at);
                            });
                        }
                        Err((msg, permanent)) => {
                            tracing::warn!(channel = channel.as_str(), error = %msg, permanent, "danger alert failed");
                            let msg = self.redact.apply(&msg);
                            let t = self.clock.now();
                            self.status.update(|s| {
                                s.failures += 1;
                                s.last_error = Some(msg.clone());
                                s.last_error_time = Some(t);
                            });
                            if permanent {
                                round.failing.remove(&k);
                                self.record(&w, level, channel, AlertOutcome::Missed, t, Some(msg)).await;
                                round.done_here.push(k);
                                self.status.update(|s| s.missed += 1);
                                continue;
                            }
                            let f = round.failing.entry(k).or_insert_with(|| Failing {
                                warning: (*w).clone(),
                                next_try: t,
                                backoff: RETRY_FIRST,
                                error: String::new(),
                            });
                            f.next_try = t + f.backoff;
                            f.backoff = (f.backoff * 2).min(RETRY_MAX);
                            f.error = msg;
                            f.warning = *w;
                        }
                    }
                }
                Action::Missed(k) => {
                    let Some(f) = round.failing.remove(&k) else { continue };
                    tracing::warn!(channel = k.3.as_str(), error = %f.error, "danger alert missed: delivery failed until its day was over");
                    self.record(&f.warning, k.2, k.3, AlertOutcome::Missed, self.clock.now(), Some(f.error)).await;
                    round.done_here.push(k);
                    self.status.update(|s| s.missed += 1);
                }
                Action::Drop(k) => {
                    round.failing.remove(&k);
                }
            }
        }
        let now = self.clock.now();
        let store = self.store.clone();
        let recent = tokio::task::spawn_blocking(move || store.danger_alerts_since(today)).await??;
        let mut next = now + Span::from_std(CHECK_EVERY)?;
        for f in round.failing.values() {
            next = next.min(f.next_try.max(now));
            next = next.min(danger_plan::deadline(f.warning.valid_date).max(now));
        }
        let retrying = round.failing.len() as u64;
        self.status.update(|s| {
            s.checks += 1;
            s.retrying = retrying;
            s.recorded = recent;
        });
        Ok((next - now).to_std().unwrap_or_default().max(Duration::from_millis(500)))
    }

    /// Delivers on one channel; `Err((message, permanent))`.
    async fn deliver(&self, channel: AlertChannel, content: &Content, notice: &Notice) -> Result<(), (String, bool)> {
        let couriers = self.couriers.as_ref().map_err(|e| (e.clone(), false))?;
        match channel {
            AlertChannel::Email => match &couriers.mailer {
                Some(m) => m.send(content).await.map_err(|e| (format!("{e:#}"), false)),
                None => Err(("[email] is not set up".into(), true)),
            },
            AlertChannel::Push => match &couriers.pusher {
                Some(p) => p.send(notice).await.map_err(|e| (e.message, e.permanent)),
                None => Err(("[push] is not set up".into(), true)),
            },
        }
    }

    async fn record(
        &self,
        w: &AvalancheWarning,
        level: u8,
        channel: AlertChannel,
        outcome: AlertOutcome,
        at: DateTime<Utc>,
        detail: Option<String>,
    ) {
        self.writer.append(Record::DangerAlert(DangerAlert {
            region_id: w.region_id,
            region_name: w.region_name.clone(),
            valid_date: w.valid_date,
            level,
            channel,
            outcome,
            at,
            reg_id: w.reg_id,
            detail,
        }));
        if let Err(e) = self.writer.flush().await {
            tracing::error!(error = %format!("{e:#}"), "cannot make the danger alert record durable");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Trollheimen on 3 March 2023: level 3 with two problems (the recorded NVE answer).
    fn trollheimen() -> AvalancheWarning {
        let parsed = crate::sources::varsom_parse::parse_warnings(include_bytes!(
            "../../tests/fixtures/nve_AvalancheWarningByRegion_Detail.json"
        ))
        .unwrap();
        parsed.warnings.into_iter().find(|w| w.valid_date.to_string() == "2023-03-03").unwrap()
    }

    #[test]
    fn the_alert_names_region_level_text_problems_and_links_the_day() {
        let w = trollheimen();
        assert_eq!(w.danger_level.level(), Some(3));
        let (mail, push) = compose(&w, "http://pi.local:8080/?x=1");
        assert_eq!(mail.subject, "Avalanche danger 3 (considerable) in Trollheimen on Fri 03 Mar 2023");
        assert!(mail.text.contains(w.main_text.trim()), "{}", mail.text);
        assert!(mail.text.contains("Details: http://pi.local:8080/avalanche?date=2023-03-03"), "{}", mail.text);
        assert_eq!(w.problems.len(), 2);
        for p in &w.problems {
            assert!(mail.text.contains(&format!("- {}", p.problem_type.name)), "{}", mail.text);
            assert!(push.message.contains(&p.problem_type.name), "{}", push.message);
        }
        assert!(mail.html.contains("<a href=\"http://pi.local:8080/avalanche?date=2023-03-03\">"), "{}", mail.html);
        assert_eq!(push.title, mail.subject);
        assert_eq!(push.priority, 4);
        assert_eq!(push.tags, vec!["warning".to_owned(), "danger-3".to_owned()]);
        assert_eq!(push.click.as_deref(), Some("http://pi.local:8080/avalanche?date=2023-03-03"));
        assert!(push.message.starts_with(w.main_text.trim()));
    }

    #[test]
    fn min_level_is_on_the_danger_scale() {
        for (text, ok) in
            [("min_level = 3", true), ("min_level = 1", true), ("min_level = 0", false), ("min_level = 6", false)]
        {
            let c: AvalancheAlertsConfig = toml::from_str(text).unwrap();
            assert_eq!(c.validate().is_ok(), ok, "{text}");
        }
        let c: AvalancheAlertsConfig = toml::from_str("push = true").unwrap();
        assert_eq!(c.channels(), vec![AlertChannel::Push]);
        assert_eq!(c.regions_or(&[3022, 3003]), vec![3022, 3003]);
        assert!(!AvalancheAlertsConfig::default().enabled());
    }

    /// Trollheimen's warning for 3 March 2023 as a newer version with `level`.
    fn raised(level: u8) -> AvalancheWarning {
        let mut w = trollheimen();
        w.reg_id += 1000;
        w.publish_time += Span::hours(12);
        w.danger_level = crate::domain::Danger::Level(level);
        w
    }

    struct Bench {
        _dir: tempfile::TempDir,
        store: Store,
        writer: WriterHandle,
        clock: Arc<crate::clock::FakeClock>,
        url: String,
        seen: Arc<std::sync::Mutex<Vec<super::super::push::tests::Seen>>>,
    }

    impl Bench {
        async fn new(answers: Vec<u16>, now: &str) -> Bench {
            crate::install_tls_provider();
            let dir = tempfile::tempdir().unwrap();
            let (store, writer, _) = Store::open(dir.path(), "t", crate::store::StoreOptions::default()).unwrap();
            let handle = writer.handle();
            writer.spawn().unwrap();
            handle.append(Record::AvalancheWarning(trollheimen()));
            handle.flush().await.unwrap();
            let (url, seen) = super::super::push::tests::receiver(answers).await;
            let clock = crate::clock::FakeClock::at(now.parse().unwrap());
            Bench { _dir: dir, store, writer: handle, clock, url, seen }
        }

        /// A fresh alert task on the same store (what a restart makes).
        fn alerts(&self) -> DangerAlerts {
            let push: super::super::push::PushConfig =
                toml::from_str(&format!("url = \"{}\"\ntoken = \"tk_danger_123\"\n", self.url)).unwrap();
            DangerAlerts {
                config: toml::from_str("push = true").unwrap(),
                regions: vec![3022],
                couriers: Ok(Couriers { mailer: None, pusher: Some(Pusher::new(&push).unwrap()) }),
                map_url: "http://pi.local:8080/".into(),
                clock: self.clock.clone(),
                store: self.store.clone(),
                writer: self.writer.clone(),
                status: Arc::new(DangerStatus::default()),
                redact: crate::config::Redactor::new().url(&self.url, "<push url>"),
            }
        }

        fn requests(&self) -> usize {
            self.seen.lock().unwrap().len()
        }

        fn recorded(&self) -> Vec<(u8, AlertOutcome)> {
            let since = "2023-03-01".parse().unwrap();
            self.store.danger_alerts_since(since).unwrap().iter().map(|a| (a.level, a.outcome)).collect()
        }

        fn advance(&self, secs: i64) {
            use crate::clock::Clock;
            self.clock.set(self.clock.now() + Span::seconds(secs));
        }
    }

    #[tokio::test]
    async fn a_push_failing_once_is_retried_sent_once_and_a_raise_alerts_again() {
        let bench = Bench::new(vec![500, 200], "2023-03-03T07:00:00Z").await;
        let alerts = bench.alerts();
        let mut round = Round::default();
        alerts.check(&mut round).await.unwrap();
        let s = alerts.status.snapshot();
        assert_eq!((s.sent, s.failures, s.retrying), (0, 1, 1), "{s:?}");
        let err = s.last_error.unwrap();
        assert!(err.contains("HTTP 500") && !err.contains("127.0.0.1") && !err.contains("tk_danger"), "{err}");
        assert!(bench.recorded().is_empty());
        // Within the back-off: no new attempt.
        bench.advance(10);
        alerts.check(&mut round).await.unwrap();
        assert_eq!(bench.requests(), 1);
        bench.advance(25);
        alerts.check(&mut round).await.unwrap();
        assert_eq!(bench.requests(), 2);
        assert_eq!(bench.recorded(), vec![(3, AlertOutcome::Sent)]);
        let seen = bench.seen.lock().unwrap()[1].clone();
        assert_eq!(seen.header("authorization"), Some("Bearer tk_danger_123"));
        assert_eq!(seen.header("tags"), Some("warning,danger-3"));
        assert_eq!(seen.header("click"), Some("http://pi.local:8080/avalanche?date=2023-03-03"));
        assert!(seen.header("title").unwrap().starts_with("Avalanche danger 3 (considerable) in Trollheimen"));
        // Again, and after a restart: nothing more.
        alerts.check(&mut round).await.unwrap();
        let restarted = bench.alerts();
        restarted.check(&mut Round::default()).await.unwrap();
        assert_eq!(bench.requests(), 2);
        // A new version raises the level: one more alert, for level 4.
        bench.writer.append(Record::AvalancheWarning(raised(4)));
        bench.writer.flush().await.unwrap();
        let mut round = Round::default();
        restarted.check(&mut round).await.unwrap();
        restarted.check(&mut round).await.unwrap();
        assert_eq!(bench.requests(), 3);
        assert_eq!(bench.recorded(), vec![(3, AlertOutcome::Sent), (4, AlertOutcome::Sent)]);
        assert_eq!(bench.seen.lock().unwrap()[2].header("priority"), Some("5"));
        // A version lowered back to 3: nothing.
        let mut lowered = raised(3);
        lowered.reg_id += 1;
        lowered.publish_time += Span::hours(1);
        bench.writer.append(Record::AvalancheWarning(lowered));
        bench.writer.flush().await.unwrap();
        restarted.check(&mut round).await.unwrap();
        assert_eq!(bench.requests(), 3);
    }

    #[tokio::test]
    async fn a_push_failing_until_the_day_is_over_is_missed_once() {
        let bench = Bench::new(vec![503], "2023-03-03T21:00:00Z").await;
        let alerts = bench.alerts();
        let mut round = Round::default();
        alerts.check(&mut round).await.unwrap();
        assert_eq!(alerts.status.snapshot().retrying, 1);
        // 3 March ends at 23:00 UTC in Oslo (CET).
        bench.clock.set("2023-03-03T23:00:00Z".parse().unwrap());
        alerts.check(&mut round).await.unwrap();
        alerts.check(&mut round).await.unwrap();
        assert_eq!(bench.recorded(), vec![(3, AlertOutcome::Missed)]);
        let missed = &bench.store.danger_alerts_since("2023-03-03".parse().unwrap()).unwrap()[0];
        let detail = missed.detail.as_deref().unwrap();
        assert!(detail.contains("HTTP 503") && !detail.contains("127.0.0.1"), "{detail}");
        assert_eq!(alerts.status.snapshot().missed, 1);
        // The next day's restart owes nothing for 3 March.
        bench.alerts().check(&mut Round::default()).await.unwrap();
        assert_eq!(bench.recorded().len(), 1);
    }

    #[tokio::test]
    async fn a_push_refused_for_good_is_missed_at_once() {
        let bench = Bench::new(vec![401], "2023-03-03T07:00:00Z").await;
        let alerts = bench.alerts();
        alerts.check(&mut Round::default()).await.unwrap();
        assert_eq!(bench.recorded(), vec![(3, AlertOutcome::Missed)]);
        let s = alerts.status.snapshot();
        assert_eq!((s.missed, s.retrying), (1, 0));
        assert!(s.last_error.unwrap().contains("check push.token"));
        alerts.check(&mut Round::default()).await.unwrap();
        assert_eq!(bench.requests(), 1);
    }

    #[tokio::test]
    async fn bad_settings_make_the_task_wait_and_record_nothing() {
        let bench = Bench::new(vec![200], "2023-03-03T07:00:00Z").await;
        let email: crate::alerts::EmailConfig = toml::from_str(
            "smtp_host = \"127.0.0.1\"\nfrom = \"o@x.org\"\nto = [\"me@x.org\"]\nca_file = \"/nonexistent/ca.pem\"\n",
        )
        .unwrap();
        let config: AvalancheAlertsConfig = toml::from_str("email = true").unwrap();
        let mut alerts = bench.alerts();
        let refused = Couriers::build(&config, &email, &Default::default()).err().expect("an unreadable ca_file");
        alerts.couriers = Err(format!("{refused:#}"));
        alerts.config = config;
        let status = alerts.status.clone();
        let cancel = CancellationToken::new();
        let task = tokio::spawn(alerts.run(cancel.clone()));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while status.snapshot().waiting.is_none() {
            assert!(std::time::Instant::now() < deadline, "no waiting reason");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let why = status.snapshot().waiting.unwrap();
        assert!(why.contains("bad [email] settings") && why.contains("ca_file"), "{why}");
        cancel.cancel();
        task.await.unwrap();
        assert!(bench.recorded().is_empty());
        assert_eq!((status.snapshot().checks, bench.requests()), (0, 0));
    }
}
