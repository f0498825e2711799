//! `outpost status`: asks the running appliance (over its own web API) or, when none is running,
//! reads the store directly. Both give the same `Status` model.

use crate::app::Config;
use crate::status::{Part, Status};
use std::fmt::Write as _;

pub async fn print(config: &Config, json: bool) -> anyhow::Result<()> {
    let status = match from_daemon(config).await {
        Daemon::Answered(s) => *s,
        Daemon::NeedsPassword => match from_store_if_free(config).await {
            Ok(Some(s)) => s,
            // Running, and it would not tell without the web password; its store is in use or
            // not this user's to read (the package's is the service user's): say what anyone
            // may know.
            Ok(None) | Err(_) => return print_locked(config, json).await,
        },
        Daemon::NotRunning => from_store(config).await?,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", render(&status));
    }
    Ok(())
}

enum Daemon {
    Answered(Box<Status>),
    /// It answered 401: basic auth is on and this command has no (or a wrong) password.
    NeedsPassword,
    NotRunning,
}

/// The running daemon's /api/status, if one answers on `web.listen`.
async fn from_daemon(config: &Config) -> Daemon {
    let ask = async {
        let url = super::daemon::url(config, "/api/status").ok()?;
        let request = super::daemon::get(config, url, Some(std::time::Duration::from_secs(5))).ok()?;
        request.send().await.ok()
    };
    let Some(response) = ask.await else { return Daemon::NotRunning };
    if response.status() == reqwest::StatusCode::UNAUTHORIZED {
        return Daemon::NeedsPassword;
    }
    let Some(mut status) = async { response.error_for_status().ok()?.json::<Status>().await.ok() }.await else {
        return Daemon::NotRunning;
    };
    status.source = Some("running appliance".into());
    Daemon::Answered(Box::new(status))
}

/// What a command without the web password may learn from a running appliance: that it runs,
/// and `/healthz` (served without auth, so it reveals nothing else). Not an error: the status
/// is there, behind the password, as it is for anyone else on the LAN.
async fn print_locked(config: &Config, json: bool) -> anyhow::Result<()> {
    let health = async {
        let url = super::daemon::url(config, "/healthz").ok()?;
        let response =
            super::daemon::get(config, url, Some(std::time::Duration::from_secs(5))).ok()?.send().await.ok()?;
        response.json::<serde_json::Value>().await.ok()
    };
    let health = health.await.unwrap_or_else(|| serde_json::json!({ "status": "no answer" }));
    let how = format!("the details need the web password: {}", super::daemon::GIVE_PASSWORD);
    if json {
        let out =
            serde_json::json!({ "source": "running appliance (no web password)", "health": health, "details": how });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("Outpost status (running appliance)");
        println!("health: {}", health["status"].as_str().unwrap_or("unknown"));
        println!("{how}");
    }
    Ok(())
}

async fn from_store_if_free(config: &Config) -> anyhow::Result<Option<Status>> {
    let config = config.clone();
    tokio::task::spawn_blocking(move || {
        let redact = config.redactor();
        let status = |store| Ok(Status::from_store(&store, &config.station.id)?.redacted(&redact));
        crate::app::open_store_if_free(&config)?.map(status).transpose()
    })
    .await?
}

async fn from_store(config: &Config) -> anyhow::Result<Status> {
    let config = config.clone();
    tokio::task::spawn_blocking(move || {
        let store = crate::app::open_store_if_free(&config)?
            .ok_or_else(|| crate::store::StoreInUse(config.store.path.clone()))?;
        Ok(Status::from_store(&store, &config.station.id)?.redacted(&config.redactor()))
    })
    .await?
}

fn or_never<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "null".to_owned(), T::to_string)
}

fn render(s: &Status) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Outpost status ({})", s.source.as_deref().unwrap_or("running appliance"));
    let _ = writeln!(out, "station: {}", s.station);
    if let Some(up) = s.uptime_s {
        let _ = writeln!(out, "version {}, up {}h{:02}m", s.version, up / 3600, up / 60 % 60);
    }
    let store = &s.store.summary;
    let _ = writeln!(
        out,
        "store: {} ({:.1} MB on disk, last seq {})",
        store.path,
        store.size_bytes as f64 / 1e6,
        store.last_seq
    );
    for k in &store.kinds {
        let _ = writeln!(
            out,
            "  {:<18} {:>9} records  first {}  last {}",
            k.kind.as_str(),
            k.count,
            or_never(&k.first.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))),
            or_never(&k.last.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)))
        );
    }
    if let Some(t) = &s.tle {
        let level = match t.level {
            crate::status::AgeLevel::Ok => "",
            crate::status::AgeLevel::Warn => "WARNING: ",
            crate::status::AgeLevel::Error => "ERROR: ",
        };
        let epoch = t.epoch.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let _ = writeln!(out, "tle: epoch {epoch}, {:.1} days old: {level}{}", t.age_days, t.message);
    }
    if let Some(e) = s.writer.as_ref().and_then(|w| w.error.as_ref()) {
        let _ = writeln!(out, "  STORE ERROR: {e}");
    }
    if let Some(w) = s.writer.as_ref().filter(|w| w.dropped > 0) {
        let _ = writeln!(out, "  DROPPED: {} records (storing failed while store.max_pending waited)", w.dropped);
    }
    if let Some(why) = s.writer.as_ref().and_then(|w| w.stopped.as_ref()) {
        let _ = writeln!(out, "  STORE WRITER DIED: {why}");
    }
    for dead in &s.tasks_died {
        let _ = writeln!(
            out,
            "TASK DIED: {} at {}: {}",
            dead.task,
            dead.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            dead.why
        );
    }
    let rejected: Vec<_> = store.counters.iter().filter(|(k, _)| k.starts_with("rejected.")).collect();
    if !rejected.is_empty() {
        let _ = writeln!(out, "rejections (all time):");
        for (k, n) in rejected {
            let _ = writeln!(out, "  {:<50} {n}", k.trim_start_matches("rejected."));
        }
    }
    let time = |t: &Option<chrono::DateTime<chrono::Utc>>| {
        or_never(&t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)))
    };
    for (name, src) in &s.sources {
        let _ = writeln!(
            out,
            "source {name}: {} polls, {} ok, {} failed, last success {}, last error {}",
            src.polls,
            src.successes,
            src.failures,
            time(&src.last_success),
            or_never(&src.last_error)
        );
    }
    if let Some(location) = &s.location {
        match &location.current {
            Some(cur) => {
                let source = serde_json::to_value(cur.source).ok().and_then(|v| v.as_str().map(str::to_owned));
                let _ = writeln!(
                    out,
                    "location: {}, {} ({})",
                    cur.observer.latitude,
                    cur.observer.longitude,
                    source.unwrap_or_default()
                );
            }
            None => {
                let _ = writeln!(out, "location: unknown (set [location] or gpsd)");
            }
        }
    }
    if let Some(Part::On(email)) = &s.email {
        let _ = writeln!(
            out,
            "email: {} sent, {} missed, {} pending, last error {}",
            email.sent,
            email.missed,
            email.pending.len(),
            or_never(&email.last_error)
        );
    }
    if let Some(Part::On(push)) = &s.pass_push {
        let _ = writeln!(
            out,
            "pass push: {} sent, {} missed, last error {}",
            push.sent,
            push.missed,
            or_never(&push.last_error)
        );
    }
    if let Some(Part::On(d)) = &s.danger_alerts {
        let _ = writeln!(
            out,
            "danger alerts (level {}+): {} sent, {} missed, {} retrying, last error {}",
            d.min_level,
            d.sent,
            d.missed,
            d.retrying,
            or_never(&d.last_error)
        );
    }
    for (name, sink) in &s.sinks {
        let Part::On(sink) = sink else {
            let _ = writeln!(out, "sink {name}: off");
            continue;
        };
        let _ = writeln!(
            out,
            "sink {name}: {}, backlog {}, last delivered {}, last error {}, dead letters {}",
            if sink.connected { "connected" } else { "not connected" },
            sink.backlog,
            time(&sink.last_delivered),
            or_never(&sink.last_error),
            sink.dead_letters
        );
    }
    if !s.dead_letters.is_empty() {
        let _ = writeln!(out, "dead letters (records an upstream refused; `outpost resend --sink NAME` retries them):");
        for d in &s.dead_letters {
            let _ = writeln!(
                out,
                "  {} seq {} ({}) at {}: {}",
                d.sink,
                d.seq,
                d.record_kind,
                d.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                d.reason
            );
        }
    }
    out
}
