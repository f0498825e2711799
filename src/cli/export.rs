//! `outpost export` on the command line: opens the store directly, or, while `outpost run` holds
//! it, streams the same export from the running appliance's /api/export. Writes to a temporary
//! file renamed into place at the end, so a half-written export never looks complete.

use crate::app::Config;
use crate::export::{ExportRequest, export};
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Write;
use std::path::{Path, PathBuf};

pub async fn run(config: &Config, req: ExportRequest, out: Option<PathBuf>) -> anyhow::Result<()> {
    let (mut sink, tmp): (Box<dyn Write + Send>, Option<PathBuf>) = match &out {
        Some(path) => {
            let tmp = path.with_extension("partial");
            let file = std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
            (Box::new(std::io::BufWriter::with_capacity(256 * 1024, file)), Some(tmp))
        }
        None => (Box::new(std::io::BufWriter::new(std::io::stdout())), None),
    };
    let direct = {
        let req = req.clone();
        let config = config.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<Option<u64>> {
            let Some(store) = crate::app::open_store_if_free(&config)? else { return Ok(None) };
            let bar = match req.kind.kind() {
                Some(kind) => {
                    progress_bar(Some(store.summary()?.kinds.iter().find(|k| k.kind == kind).map_or(0, |k| k.count)))
                }
                // Feature rows are counted as they are built.
                None => ProgressBar::new_spinner().with_style(
                    ProgressStyle::with_template("{spinner} {pos} rows  {elapsed_precise}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                ),
            };
            let n = export(&store, &req, &mut sink, &mut |n| bar.set_position(n))?;
            bar.finish_and_clear();
            Ok(Some(n))
        })
        .await??
    };
    let done = match direct {
        Some(n) if req.kind.kind().is_none() => format!("{n} rows"),
        Some(n) => format!("{n} records"),
        None => format!("{} bytes from the running appliance", from_daemon(config, &req, out.as_deref()).await?),
    };
    if let (Some(tmp), Some(path)) = (tmp, &out) {
        std::fs::rename(&tmp, path)
            .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
        eprintln!("outpost: exported {done} to {}", path.display());
        if let Some(hint) = crate::export::csv_load_hint(&req, &path.display().to_string())
            .filter(|_| req.format == crate::export::Format::Csv)
        {
            eprintln!("outpost: load it with: cqlsh -e \"{}\"", hint.replace('"', "\\\""));
        }
        if req.kind == crate::export::KindArg::Features && req.format == crate::export::Format::Csv {
            eprintln!(
                "outpost: load it with: pandas.read_csv({:?}, parse_dates=[\"date\"])",
                path.display().to_string()
            );
        }
    }
    Ok(())
}

fn progress_bar(total: Option<u64>) -> ProgressBar {
    // indicatif draws nothing when stderr is not a terminal.
    match total {
        Some(t) => ProgressBar::new(t).with_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} records  {elapsed_precise}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {bytes} {elapsed_precise}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    }
}

/// Streams /api/export of the appliance listening on `web.listen`. Returns the bytes written.
async fn from_daemon(config: &Config, req: &ExportRequest, out: Option<&Path>) -> anyhow::Result<u64> {
    let name = |v: &dyn std::fmt::Debug| format!("{v:?}").to_ascii_lowercase();
    let mut path = format!("/api/export?kind={}&format={}", name(&req.kind), name(&req.format));
    if let Some(f) = req.from {
        path.push_str(&format!("&from={f}"));
    }
    if let Some(t) = req.to {
        path.push_str(&format!("&to={t}"));
    }
    let url = super::daemon::url(config, &path)?;
    let response = super::daemon::get(config, url, None)?
        .send()
        .await
        .context("the store is in use, and the running appliance did not answer on web.listen")?;
    super::daemon::refused_without_password(&response)?;
    if !response.status().is_success() {
        // The appliance's own words, e.g. "2 exports are running; try again later" (503).
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        anyhow::bail!("the running appliance refused the export ({status}): {}", body.trim());
    }
    let mut response = response;
    let mut sink: Box<dyn Write> = match out {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::OpenOptions::new().append(true).open(p.with_extension("partial"))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    };
    let bar = progress_bar(None);
    let mut bytes = 0u64;
    while let Some(chunk) = response.chunk().await.context("the export stream broke off")? {
        sink.write_all(&chunk)?;
        bytes += chunk.len() as u64;
        bar.set_position(bytes);
    }
    sink.flush()?;
    bar.finish_and_clear();
    Ok(bytes)
}
