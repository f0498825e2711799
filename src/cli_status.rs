//! `outpost status`: asks the running appliance (over its own web API) or, when none is running,
//! opens the store directly.

use crate::config::Config;
use crate::status::Status;
use std::fmt::Write as _;

pub async fn print(config: &Config, json: bool) -> anyhow::Result<()> {
    let value = match from_daemon(config).await {
        Some(v) => v,
        None => from_store(config).await?,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", render(&value));
    }
    Ok(())
}

/// The running daemon's /api/status, if one answers on `web.listen`.
async fn from_daemon(config: &Config) -> Option<serde_json::Value> {
    let url = crate::daemon_client::url(config, "/api/status").ok()?;
    let request = crate::daemon_client::get(config, url, Some(std::time::Duration::from_secs(5))).ok()?;
    let response = request.send().await.ok()?;
    let status: Status = response.error_for_status().ok()?.json().await.ok()?;
    let mut v = serde_json::to_value(status).ok()?;
    v["source"] = "running appliance".into();
    Some(v)
}

async fn from_store(config: &Config) -> anyhow::Result<serde_json::Value> {
    let dir = config.store.path.clone();
    let station = config.station.id.clone();
    let config = config.clone();
    tokio::task::spawn_blocking(move || {
        let store = crate::app::open_store_if_free(&config)?
            .ok_or_else(|| crate::store::StoreInUse(dir.clone()))?;
        let summary = store.summary()?;
        // Without the daemon, a sink's backlog is what its persisted cursor has not reached.
        let sinks: serde_json::Map<String, serde_json::Value> = summary
            .cursors
            .iter()
            .filter_map(|(name, cursor)| {
                let sink = name.strip_prefix("sink.")?;
                let backlog = summary.last_seq.saturating_sub(*cursor);
                Some((sink.to_owned(), serde_json::json!({ "enabled": true, "connected": false, "backlog": backlog, "cursor": cursor })))
            })
            .collect();
        Ok(serde_json::json!({ "source": "store (appliance not running)", "station": station, "store": summary, "sinks": sinks }))
    })
    .await?
}

fn render(v: &serde_json::Value) -> String {
    let mut out = String::new();
    let s = |v: &serde_json::Value| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string());
    let _ = writeln!(out, "Outpost status ({})", s(&v["source"]));
    let _ = writeln!(out, "station: {}", s(&v["station"]));
    if let Some(up) = v["uptime_s"].as_u64() {
        let _ = writeln!(out, "version {}, up {}h{:02}m", s(&v["version"]), up / 3600, up / 60 % 60);
    }
    let store = &v["store"];
    let _ = writeln!(
        out,
        "store: {} ({:.1} MB on disk, last seq {})",
        s(&store["path"]),
        store["size_bytes"].as_f64().unwrap_or(0.0) / 1e6,
        store["last_seq"]
    );
    for k in store["kinds"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  {:<18} {:>9} records  first {}  last {}",
            s(&k["kind"]),
            k["count"],
            s(&k["first"]),
            s(&k["last"])
        );
    }
    if let Some(e) = v["writer"]["error"].as_str() {
        let _ = writeln!(out, "  STORE ERROR: {e}");
    }
    let rejected: Vec<_> =
        store["counters"].as_object().into_iter().flatten().filter(|(k, _)| k.starts_with("rejected.")).collect();
    if !rejected.is_empty() {
        let _ = writeln!(out, "rejections (all time):");
        for (k, n) in rejected {
            let _ = writeln!(out, "  {:<50} {n}", k.trim_start_matches("rejected."));
        }
    }
    for (name, src) in v["sources"].as_object().into_iter().flatten() {
        let _ = writeln!(
            out,
            "source {name}: {} polls, {} ok, {} failed, last success {}, last error {}",
            src["polls"],
            src["successes"],
            src["failures"],
            s(&src["last_success"]),
            s(&src["last_error"])
        );
    }
    if let Some(cur) = v["location"]["current"].as_object() {
        let o = &cur["observer"];
        let _ = writeln!(out, "location: {}, {} ({})", o["latitude"], o["longitude"], s(&cur["source"]));
    } else if v["location"].is_object() {
        let _ = writeln!(out, "location: unknown (set [location] or gpsd)");
    }
    let email = &v["email"];
    if email["enabled"] == true {
        let _ = writeln!(
            out,
            "email: {} sent, {} missed, {} pending, last error {}",
            email["sent"],
            email["missed"],
            email["pending"].as_array().map_or(0, Vec::len),
            s(&email["last_error"])
        );
    }
    for (name, sink) in v["sinks"].as_object().into_iter().flatten() {
        if sink["enabled"] != true {
            let _ = writeln!(out, "sink {name}: off");
            continue;
        }
        let _ = writeln!(
            out,
            "sink {name}: {}, backlog {}, last delivered {}, last error {}",
            if sink["connected"] == true { "connected" } else { "not connected" },
            sink["backlog"],
            s(&sink["last_delivered"]),
            s(&sink["last_error"])
        );
    }
    out
}
