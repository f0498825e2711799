//! `outpost send-test-email`: checks the `[email]` settings by sending one short email to
//! `email.to`. One line on success; on failure a clear reason (authentication, STARTTLS, TLS,
//! refused or timed out), never the password.

use crate::alerts::smtp::Mailer;
use crate::app::Config;

pub async fn run(config: &Config) -> anyhow::Result<()> {
    let e = &config.email;
    anyhow::ensure!(e.enabled(), "email is not configured (set email.smtp_host, email.from and email.to)");
    let mailer = Mailer::new(e)?;
    mailer.send_test().await?;
    println!(
        "test email sent to {} via {}:{} ({})",
        e.to.join(", "),
        e.smtp_host.as_deref().unwrap_or_default(),
        e.smtp_port,
        e.security
    );
    Ok(())
}
