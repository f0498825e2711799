//! `outpost passes`: upcoming ISS passes as a table in local time, or JSON.
//!
//! The TLE comes from --tle, else from the store; the place from --lat/--lon, else the
//! configured location. While `outpost run` holds the store, the running appliance answers
//! (its /api/passes, which also knows the GPS location).

use crate::app::Config;
use crate::passes::{Observer, Pass, PassQuery, table_line};
use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use std::path::PathBuf;

pub struct PassesArgs {
    pub tle: Option<PathBuf>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub alt_m: Option<f64>,
    pub from: Option<DateTime<Utc>>,
    pub hours: f64,
    pub min_elevation: Option<f64>,
    pub sun_limit: Option<f64>,
    pub all: bool,
    pub max_magnitude: Option<f64>,
    pub brightest_first: bool,
    pub json: bool,
}

pub async fn run(config: &Config, a: PassesArgs) -> anyhow::Result<()> {
    if a.max_magnitude.is_some_and(|m| !(-10.0..=10.0).contains(&m)) {
        bail!("--max-magnitude must be a magnitude from -10 to 10 (the ISS is about -1 to -4)");
    }
    if !(a.hours > 0.0 && a.hours <= crate::passes::MAX_HOURS) {
        bail!("--hours must be more than 0 and at most {}", crate::passes::MAX_HOURS);
    }
    let observer = match (a.lat, a.lon) {
        (Some(latitude), Some(longitude)) => {
            if !(-90.0..=90.0).contains(&latitude) || !(-180.0..=180.0).contains(&longitude) {
                bail!("--lat must be within ±90 and --lon within ±180");
            }
            Some(Observer { latitude, longitude, altitude_m: a.alt_m.unwrap_or(0.0) })
        }
        (None, None) => crate::location::configured(&config.location).map(|l| l.observer),
        _ => bail!("--lat and --lon go together"),
    };
    let mut options = config.alerts.pass_options();
    if let Some(e) = a.min_elevation {
        options.min_elevation_deg = e;
    }
    if let Some(s) = a.sun_limit {
        options.sun_limit_deg = s;
    }
    let from = a.from.unwrap_or_else(Utc::now);

    let tle = match &a.tle {
        Some(path) => {
            let body = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            Some(crate::sources::tle_parse::parse_tle(&body).map_err(|r| anyhow::anyhow!("{}: {r}", path.display()))?)
        }
        None => latest_stored_tle(config).await?,
    };
    let passes = match tle {
        Some(tle) => {
            let Some(observer) = observer else {
                bail!("no location: pass --lat and --lon, or set [location] latitude and longitude");
            };
            PassQuery {
                observer,
                from,
                hours: a.hours,
                options,
                all: a.all,
                max_magnitude: a.max_magnitude,
                brightest_first: a.brightest_first,
            }
            .run(&tle)?
        }
        // The store is held by the running appliance: ask it.
        None => from_daemon(config, observer, from, &a).await?,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&passes)?);
    } else if passes.is_empty() {
        println!("No {}passes in the next {} hours.", if a.all { "" } else { "visible " }, a.hours);
    } else {
        for p in &passes {
            println!("{}", table_line(p, &chrono::Local));
        }
    }
    Ok(())
}

/// The newest TLE in the store; `None` when the store is held by a running appliance.
async fn latest_stored_tle(config: &Config) -> anyhow::Result<Option<crate::domain::Tle>> {
    let config = config.clone();
    tokio::task::spawn_blocking(move || {
        let Some(store) = crate::app::open_store_if_free(&config)? else { return Ok(None) };
        match store.latest_tle()? {
            Some(t) => Ok(Some(t)),
            None => bail!("the store has no TLE yet; pass --tle FILE or let `outpost run` collect one"),
        }
    })
    .await?
}

async fn from_daemon(
    config: &Config,
    observer: Option<Observer>,
    from: DateTime<Utc>,
    a: &PassesArgs,
) -> anyhow::Result<Vec<Pass>> {
    let mut url = super::daemon::url(config, "/api/passes")?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("from", &from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        q.append_pair("hours", &a.hours.to_string());
        q.append_pair("all", &a.all.to_string());
        if let Some(m) = a.max_magnitude {
            q.append_pair("max_magnitude", &m.to_string());
        }
        if a.brightest_first {
            q.append_pair("sort", "brightness");
        }
        if let Some(e) = a.min_elevation {
            q.append_pair("min_elevation", &e.to_string());
        }
        if let Some(s) = a.sun_limit {
            q.append_pair("sun_limit", &s.to_string());
        }
        // Only an explicit --lat/--lon overrides the appliance's own (possibly GPS) location.
        if let (Some(o), Some(_)) = (observer, a.lat) {
            q.append_pair("lat", &o.latitude.to_string());
            q.append_pair("lon", &o.longitude.to_string());
            q.append_pair("alt_m", &o.altitude_m.to_string());
        }
    }
    let response = super::daemon::get(config, url, None)?
        .send()
        .await
        .context("the store is in use, and the running appliance did not answer")?;
    super::daemon::refused_without_password(&response)?;
    let status = response.status();
    if !status.is_success() {
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        bail!("the appliance answered {status}: {}", body["error"].as_str().unwrap_or("no detail"));
    }
    Ok(response.json().await?)
}
