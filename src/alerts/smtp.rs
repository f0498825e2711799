//! The SMTP side: one transport built from `[email]` (rustls with the process's ring provider;
//! the system roots plus `email.ca_file`), and errors a person can act on. Errors never contain
//! the password.

use super::config::{EmailConfig, Security};
use super::message::Content;
use anyhow::Context;
use lettre::message::{Mailbox, MultiPart, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

/// How long one SMTP conversation may take.
const TIMEOUT: Duration = Duration::from_secs(20);

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    /// "host:port", for errors.
    server: String,
    password: String,
}

impl Mailer {
    /// Checks the addresses and the CA file and builds the transport (does not connect).
    pub fn new(cfg: &EmailConfig) -> anyhow::Result<Mailer> {
        let host = cfg.smtp_host.clone().context("email.smtp_host is not set")?;
        let from: Mailbox = cfg
            .from
            .as_deref()
            .context("email.from is not set")?
            .parse()
            .map_err(|e| anyhow::anyhow!("email.from is not a valid address: {e}"))?;
        let to = cfg
            .to
            .iter()
            .map(|a| a.parse::<Mailbox>().map_err(|e| anyhow::anyhow!("email.to: {a:?} is not a valid address: {e}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        anyhow::ensure!(!to.is_empty(), "email.to is empty");
        let tls = || -> anyhow::Result<TlsParameters> {
            let mut b = TlsParameters::builder(host.clone());
            if let Some(path) = &cfg.ca_file {
                let pem = std::fs::read(path).with_context(|| format!("cannot read email.ca_file {path}"))?;
                let cert = Certificate::from_pem(&pem)
                    .map_err(|e| anyhow::anyhow!("email.ca_file {path} is not a PEM certificate: {e}"))?;
                b = b.add_root_certificate(cert);
            }
            b.build_rustls().map_err(|e| anyhow::anyhow!("TLS setup failed: {e}"))
        };
        let builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host);
        let builder = match cfg.security {
            Security::Tls => builder.tls(Tls::Wrapper(tls()?)),
            Security::None => builder.tls(Tls::None),
            Security::Starttls => builder.tls(Tls::Required(tls()?)),
        };
        let mut builder = builder.port(cfg.smtp_port).timeout(Some(TIMEOUT));
        if let Some(user) = &cfg.username {
            builder = builder.credentials(Credentials::new(user.clone(), cfg.password.expose().to_owned()));
        }
        Ok(Mailer {
            transport: builder.build(),
            from,
            to,
            server: format!("{host}:{}", cfg.smtp_port),
            password: cfg.password.expose().to_owned(),
        })
    }

    pub fn recipients(&self) -> u32 {
        self.to.len() as u32
    }

    /// Sends one multipart/alternative (text + HTML) email to every recipient.
    pub async fn send(&self, content: &Content) -> anyhow::Result<()> {
        let mut b = Message::builder().from(self.from.clone()).subject(content.subject.clone());
        for to in &self.to {
            b = b.to(to.clone());
        }
        let message = b
            .multipart(MultiPart::alternative_plain_html(content.text.clone(), content.html.clone()))
            .context("cannot build the email")?;
        self.transport.send(message).await.map(|_| ()).map_err(|e| anyhow::anyhow!(self.explain(&e)))
    }

    /// A short test email (plain text only).
    pub async fn send_test(&self) -> anyhow::Result<()> {
        let mut b = Message::builder().from(self.from.clone()).subject("Outpost test email");
        for to in &self.to {
            b = b.to(to.clone());
        }
        let message = b
            .header(ContentType::TEXT_PLAIN)
            .body("This is a test email from Outpost: the [email] settings work.\n".to_owned())
            .context("cannot build the email")?;
        self.transport.send(message).await.map(|_| ()).map_err(|e| anyhow::anyhow!(self.explain(&e)))
    }

    fn explain(&self, e: &lettre::transport::smtp::Error) -> String {
        let s = classify(e, &self.server);
        if self.password.is_empty() { s } else { s.replace(&self.password, "***") }
    }
}

/// Turns a lettre error into one line saying what is wrong and what to check.
pub fn classify(e: &lettre::transport::smtp::Error, server: &str) -> String {
    use std::error::Error as _;
    let mut io_kind = None;
    let mut chain = Vec::new();
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            io_kind.get_or_insert(io.kind());
        }
        chain.push(s.to_string());
        source = s.source();
    }
    let detail = chain.last().cloned().unwrap_or_else(|| e.to_string());
    let text = format!("{e} {}", chain.join(" ")).to_lowercase();
    if let Some(code) = e.status() {
        let code = code.to_string();
        if code == "535" || code == "534" || (code == "530" && text.contains("auth")) {
            return format!("authentication failed (check email.username/password): the server said {code}");
        }
        return format!("the SMTP server {server} refused: {e}");
    }
    if text.contains("starttls is not supported") {
        return format!("the server {server} does not offer STARTTLS (check email.security and email.smtp_port)");
    }
    if text.contains("no compatible authentication mechanism") {
        return format!(
            "authentication failed (check email.username/password): {server} offers no usable AUTH mechanism \
             (AUTH is often only offered after STARTTLS)"
        );
    }
    if e.is_timeout() || io_kind == Some(std::io::ErrorKind::TimedOut) {
        return format!("connection to {server} timed out");
    }
    if io_kind == Some(std::io::ErrorKind::ConnectionRefused) {
        return format!("connection refused to {server}");
    }
    if text.contains("corrupt message") || text.contains("wrong version number") {
        return format!(
            "TLS handshake with {server} failed: the server does not speak TLS there (check email.security)"
        );
    }
    if e.is_tls() || text.contains("certificate") || text.contains("handshake") || text.contains("tls") {
        return format!("TLS handshake with {server} failed: {detail}");
    }
    if e.is_transport_shutdown() {
        return format!("the connection to {server} was closed: {detail}");
    }
    format!("cannot send through {server}: {e}{}", if chain.is_empty() { String::new() } else { format!(": {detail}") })
}
