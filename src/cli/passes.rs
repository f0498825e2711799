//! `outpost passes`: upcoming ISS passes as a table in local time, or JSON.
//!
//! The TLE comes from --tle, else from the store; the place from --lat/--lon, else the
//! configured location. While `outpost run` holds the store, the running appliance answers
//! (its /api/passes, which also knows the GPS location).
//!
//! A TLE that does not fit the window (`passes::freshness`: too old, or the clock before its
//! epoch) is an error naming its epoch and age, from the store, a file or the appliance alike;
//! `--allow-old-tle` predicts anyway, with a warning on stderr and each JSON pass marked.

use crate::app::Config;
use crate::passes::{Observer, OldTleMark, Pass, PassQuery, UnusableTle, table_line};
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
    /// Predict even from a TLE the freshness rule refuses.
    pub allow_old_tle: bool,
}

/// The error for a TLE the rule refuses.
fn refused(u: &UnusableTle) -> anyhow::Error {
    anyhow::anyhow!("{u}; --allow-old-tle predicts anyway")
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
    let (passes, old_tle) = match tle {
        Some(tle) => {
            let Some(observer) = observer else {
                bail!("no location: pass --lat and --lon, or set [location] latitude and longitude");
            };
            let old_tle = match crate::passes::freshness::check(tle.epoch, from) {
                Ok(()) => None,
                Err(u) if a.allow_old_tle => Some(u),
                Err(u) => return Err(refused(&u)),
            };
            let passes = PassQuery {
                observer,
                from,
                hours: a.hours,
                options,
                all: a.all,
                max_magnitude: a.max_magnitude,
                brightest_first: a.brightest_first,
            }
            .run(&tle)?;
            (passes, old_tle)
        }
        // The store is held by the running appliance: ask it.
        None => from_daemon(config, observer, from, &a).await?,
    };
    if let Some(u) = &old_tle {
        eprintln!("outpost: warning: predicted anyway (--allow-old-tle), the times may be far off: {u}");
    }
    if a.json {
        let mut json = serde_json::to_value(&passes)?;
        if let (Some(u), Some(list)) = (&old_tle, json.as_array_mut()) {
            list.iter_mut().for_each(|p| OldTleMark::from(u).apply(p));
        }
        println!("{}", serde_json::to_string_pretty(&json)?);
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

/// The appliance's passes, and the TLE the rule refused when `--allow-old-tle` had it predict
/// anyway. Its 503 for such a TLE becomes the same error as without the appliance; with
/// `--allow-old-tle` the question is asked again with `allow_old_tle=true`, so that the warning
/// is exact even when no pass comes back.
async fn from_daemon(
    config: &Config,
    observer: Option<Observer>,
    from: DateTime<Utc>,
    a: &PassesArgs,
) -> anyhow::Result<(Vec<Pass>, Option<UnusableTle>)> {
    match ask_daemon(config, observer, from, a, false).await? {
        Ok(passes) => Ok((passes, None)),
        Err(u) if a.allow_old_tle => match ask_daemon(config, observer, from, a, true).await? {
            Ok(passes) => Ok((passes, Some(u))),
            Err(u) => Err(refused(&u)),
        },
        Err(u) => Err(refused(&u)),
    }
}

/// One `/api/passes` request; `Ok(Err(_))` is the 503 for a TLE that does not fit.
async fn ask_daemon(
    config: &Config,
    observer: Option<Observer>,
    from: DateTime<Utc>,
    a: &PassesArgs,
    allow_old_tle: bool,
) -> anyhow::Result<Result<Vec<Pass>, UnusableTle>> {
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
        if allow_old_tle {
            q.append_pair("allow_old_tle", "true");
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
        let epoch = body["tle_epoch"].as_str().and_then(|e| e.parse::<DateTime<Utc>>().ok());
        if let (Some(epoch), Some(age_days)) = (epoch, body["tle_age_days"].as_f64()) {
            return Ok(Err(UnusableTle { epoch, start: from, age_days }));
        }
        bail!("the appliance answered {status}: {}", body["error"].as_str().unwrap_or("no detail"));
    }
    Ok(Ok(response.json().await?))
}
