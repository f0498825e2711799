//! `outpost resend --sink NAME`: asks the running appliance to send a sink's dead letters again
//! (after the operator fixed what the upstream refused: a size limit, a schema, an ACL). The
//! running appliance does it, because only it holds the store and the connection.

use crate::app::Config;
use crate::sinks::forwarder::ResendReport;
use anyhow::Context;

pub async fn run(config: &Config, sink: &str) -> anyhow::Result<()> {
    let url = super::daemon::url(config, &format!("/api/sinks/{sink}/resend"))?;
    let request = super::daemon::request(config, reqwest::Method::POST, url, None)?
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body("{}");
    let response = request.send().await.map_err(|e| e.without_url()).context(
        "the running appliance re-sends dead letters, and none answers at web.listen (start it: outpost run, or systemctl start outpost)",
    )?;
    super::daemon::refused_without_password(&response)?;
    let status = response.status();
    if !status.is_success() {
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        anyhow::bail!("the appliance answered {status}: {}", body["error"].as_str().unwrap_or("no reason given"));
    }
    let report: ResendReport = response.json().await.context("the appliance sent an unreadable report")?;
    println!("{sink}: {} dead letters re-sent, {} refused again", report.resent, report.refused_again);
    if let Some(e) = report.error {
        anyhow::bail!("stopped early, the rest wait for a later try: {e}");
    }
    Ok(())
}
