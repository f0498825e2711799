//! The `outpost` command line: the clap definitions and one function per command. Each command
//! loads the configuration, sets up logging and runs; `main.rs` only calls `cli::main`.
//! Exit codes: 0 ok, 1 runtime error, 2 configuration error.

mod daemon;
mod email;
mod export;
mod passes;
mod resend;
mod status;

use crate::app::Config;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "outpost", version, about = "ISS and avalanche-warning collector with a durable local log and map")]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// `--config` of the commands that work on an installed appliance (all but `run`).
#[derive(clap::Args)]
struct InstalledConfig {
    /// Configuration file (default: $OUTPOST_CONFIG, else /etc/outpost/outpost.toml if it
    /// exists, else the embedded configuration).
    #[arg(long, env = "OUTPOST_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the appliance: collectors, store and web server.
    Run {
        /// Configuration file (default: $OUTPOST_CONFIG, else the embedded configuration).
        #[arg(long, env = "OUTPOST_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Validate a configuration and print it as it will be used (secrets masked).
    CheckConfig {
        #[command(flatten)]
        config: InstalledConfig,
    },
    /// Export one kind of record: CQL INSERTs (cqlsh -f), CSV (cqlsh COPY FROM) or the Kafka
    /// message JSON lines; or `--kind features`, a region-day table of danger and weather for
    /// modelling (csv or jsonl). Streams in constant memory; works while `outpost run` is running.
    Export {
        #[command(flatten)]
        config: InstalledConfig,
        #[arg(long, value_enum)]
        format: crate::export::Format,
        #[arg(long, value_enum)]
        kind: crate::export::KindArg,
        /// First day to include (YYYY-MM-DD, UTC; for warnings the day they are valid for).
        #[arg(long, value_parser = crate::dates::date_arg)]
        from: Option<chrono::NaiveDate>,
        /// Last day to include.
        #[arg(long, value_parser = crate::dates::date_arg)]
        to: Option<chrono::NaiveDate>,
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Upcoming ISS passes for a place: a table in local time, or JSON.
    Passes {
        #[command(flatten)]
        config: InstalledConfig,
        /// A TLE file (CelesTrak text or wheretheiss.at JSON); default: the newest stored TLE.
        #[arg(long)]
        tle: Option<PathBuf>,
        /// Observer latitude in degrees (default: the configured location).
        #[arg(long, allow_hyphen_values = true)]
        lat: Option<f64>,
        /// Observer longitude in degrees.
        #[arg(long, allow_hyphen_values = true)]
        lon: Option<f64>,
        /// Observer altitude in metres.
        #[arg(long, allow_hyphen_values = true)]
        alt_m: Option<f64>,
        /// Start of the window (RFC 3339, or YYYY-MM-DD for the start of that UTC day; default: now).
        #[arg(long, value_parser = crate::dates::time_arg)]
        from: Option<chrono::DateTime<chrono::Utc>>,
        /// Length of the window in hours.
        #[arg(long, default_value_t = 72.0)]
        hours: f64,
        /// Lowest culmination that counts, degrees (default: [alerts] min_elevation_deg).
        #[arg(long, allow_hyphen_values = true)]
        min_elevation: Option<f64>,
        /// Sun altitude below which the sky counts as dark (default: [alerts] sun_limit_deg).
        #[arg(long, allow_hyphen_values = true)]
        sun_limit: Option<f64>,
        /// Include passes that are not visible.
        #[arg(long)]
        all: bool,
        /// Only passes at least this bright: magnitude at most this (e.g. -2; lower is brighter).
        #[arg(long, allow_hyphen_values = true)]
        max_magnitude: Option<f64>,
        /// Order of the passes: `time` or `brightness` (brightest first).
        #[arg(long, value_enum, default_value_t = PassOrder::Time)]
        sort: PassOrder,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Predict even from a TLE too old for the window (more than 14 days before its start)
        /// or from a clock before its epoch: a warning on stderr, and each JSON pass carries
        /// `old_tle`, `tle_epoch` and `tle_age_days`.
        #[arg(long)]
        allow_old_tle: bool,
    },
    /// Check the [email] settings: send one test email to email.to.
    SendTestEmail {
        #[command(flatten)]
        config: InstalledConfig,
    },
    /// Send a sink's dead letters (records its upstream refused) again, through the running
    /// appliance; those acknowledged leave the list (`outpost status` shows it).
    Resend {
        #[command(flatten)]
        config: InstalledConfig,
        /// The sink: kafka, cassandra or mqtt.
        #[arg(long)]
        sink: String,
    },
    /// Show what the store holds and how the collectors are doing.
    Status {
        #[command(flatten)]
        config: InstalledConfig,
        /// Print JSON instead of a summary.
        #[arg(long)]
        json: bool,
    },
    /// Write the man pages or the shell completions into DIR (scripts/build-deb.sh packages them).
    #[command(hide = true)]
    Generate {
        #[arg(value_enum)]
        what: Generated,
        dir: PathBuf,
    },
}

/// What `outpost generate` writes.
#[derive(Clone, Copy, ValueEnum)]
enum Generated {
    /// outpost.1 and one page per command (outpost-run.1, ...).
    Man,
    /// outpost.bash, _outpost (zsh) and outpost.fish.
    Completions,
}

/// The man pages or completions, made from the same clap definitions that parse the arguments.
fn generate(what: Generated, dir: &std::path::Path) -> anyhow::Result<()> {
    use clap::CommandFactory;
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    let mut command = Cli::command();
    match what {
        Generated::Man => clap_mangen::generate_to(command, dir)?,
        Generated::Completions => {
            for shell in [clap_complete::Shell::Bash, clap_complete::Shell::Zsh, clap_complete::Shell::Fish] {
                clap_complete::generate_to(shell, &mut command, "outpost", dir)?;
            }
        }
    }
    Ok(())
}

/// The installed appliance's secrets (`OUTPOST_*` lines, root-only; the service's EnvironmentFile).
const INSTALLED_ENV: &str = "/etc/outpost/outpost.env";

fn load(path: Option<&PathBuf>) -> Result<Config, ExitCode> {
    let mut vars: Vec<(String, String)> = std::env::vars().collect();
    // With the installed configuration, a user who may read its env file (root) gets what the
    // service gets, so `sudo outpost status` needs no password typed; the environment wins.
    let installed = path.is_some_and(|p| p.as_path() == std::path::Path::new(INSTALLED_CONFIG));
    if let Some(text) = installed.then(|| std::fs::read_to_string(INSTALLED_ENV).ok()).flatten() {
        for (key, value) in environment_file(&text) {
            if !vars.iter().any(|(k, _)| *k == key) {
                vars.push((key, value));
            }
        }
    }
    Config::load(path.map(PathBuf::as_path), vars).map_err(|e| {
        eprintln!("outpost: configuration error: {e}");
        ExitCode::from(2)
    })
}

/// The `OUTPOST_*` assignments of a systemd EnvironmentFile: `KEY=value` lines, `#` comments,
/// a value optionally in matching single or double quotes.
fn environment_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let (key, value) = line.trim_start().split_once('=')?;
            let key = key.trim();
            if !key.starts_with("OUTPOST_") || key.contains(char::is_whitespace) {
                return None;
            }
            let value = value.trim();
            let quoted = value.len() >= 2
                && (value.starts_with('"') && value.ends_with('"') || value.starts_with('\'') && value.ends_with('\''));
            let value = if quoted { &value[1..value.len() - 1] } else { value };
            Some((key.to_owned(), value.to_owned()))
        })
        .collect()
}

/// Every log line on its way to stderr, with `redact` applied: the fmt layer hands each event
/// over whole in one `write`, so a secret is never split between two calls.
struct RedactedStderr(std::sync::Arc<crate::config::Redactor>);

impl std::io::Write for RedactedStderr {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let clean = self.0.apply(&String::from_utf8_lossy(line));
        std::io::stderr().lock().write_all(clean.as_bytes())?;
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Logs go to stderr with `log_redactor` applied: host names stay (an operator needs them), no
/// URL's password or query does, whichever library or upstream text quotes it.
fn init_tracing(format: LogFormat, redact: crate::config::Redactor) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("OUTPOST_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: journald and log files get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let redact = std::sync::Arc::new(redact);
    let writer = move || RedactedStderr(redact.clone());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// Parses the arguments and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Generate { what, dir } = &cli.command {
        return report(generate(*what, dir));
    }
    if let Command::Export { kind: crate::export::KindArg::Features, format: crate::export::Format::Cql, .. } =
        cli.command
    {
        eprintln!("outpost: {}", crate::export::features::CQL_REFUSED);
        return ExitCode::from(2);
    }
    crate::install_tls_provider();
    let config = match load(cli.command.config().as_ref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Command::CheckConfig { .. } = cli.command {
        if let Some(problem) = config.web_auth_problem() {
            eprintln!("outpost: warning: {problem}; `outpost run` refuses to start without it");
        }
        for w in config.warnings() {
            eprintln!("outpost: warning: {w}");
        }
        print!("{}", config.to_toml());
        return ExitCode::SUCCESS;
    }
    if let (Command::Run { .. }, Some(problem)) = (&cli.command, config.web_auth_problem()) {
        eprintln!("outpost: configuration error: {problem}");
        return ExitCode::from(2);
    }
    init_tracing(cli.log_format, config.log_redactor());
    report(runtime().and_then(|rt| rt.block_on(execute(cli.command, config))))
}

/// The installed appliance's configuration (the Debian package's conffile, the image's).
const INSTALLED_CONFIG: &str = "/etc/outpost/outpost.toml";

impl Command {
    /// The configuration file: `--config` or `$OUTPOST_CONFIG`; else, for every command but
    /// `run`, the installed appliance's when there is one, so `outpost status` on a Pi shows its
    /// appliance (the service passes `--config`); else none, the embedded configuration.
    fn config(&self) -> Option<PathBuf> {
        let installed = match self {
            Command::Run { config } => return config.clone(),
            Command::CheckConfig { config }
            | Command::Export { config, .. }
            | Command::Passes { config, .. }
            | Command::SendTestEmail { config }
            | Command::Resend { config, .. }
            | Command::Status { config, .. } => config,
            Command::Generate { .. } => return None,
        };
        installed.config.clone().or_else(|| Some(PathBuf::from(INSTALLED_CONFIG)).filter(|p| p.exists()))
    }
}

async fn execute(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::CheckConfig { .. } => Ok(()),
        Command::Run { .. } => {
            for w in config.warnings() {
                tracing::warn!("{w}");
            }
            run(config).await
        }
        Command::Export { format, kind, from, to, out, .. } => {
            let cassandra = &config.sinks.cassandra;
            let req = crate::export::ExportRequest {
                kind,
                format,
                from,
                to,
                keyspace: cassandra.keyspace.clone(),
                replication: cassandra.replication.clone(),
            };
            export::run(&config, req, out).await
        }
        Command::Passes {
            tle,
            lat,
            lon,
            alt_m,
            from,
            hours,
            min_elevation,
            sun_limit,
            all,
            max_magnitude,
            sort,
            json,
            allow_old_tle,
            ..
        } => {
            let brightest_first = sort == PassOrder::Brightness;
            let args = passes::PassesArgs {
                tle,
                lat,
                lon,
                alt_m,
                from,
                hours,
                min_elevation,
                sun_limit,
                all,
                max_magnitude,
                brightest_first,
                json,
                allow_old_tle,
            };
            passes::run(&config, args).await
        }
        Command::SendTestEmail { .. } => email::run(&config).await,
        Command::Resend { sink, .. } => resend::run(&config, &sink).await,
        Command::Status { json, .. } => status::print(&config, json).await,
        // Needs no configuration: done in `main` before it is loaded.
        Command::Generate { .. } => Ok(()),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("outpost: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&config.web.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {} (web.listen): {e}", config.web.listen))?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        signal.cancel();
    });
    crate::app::run(config, listener, shutdown).await
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// `outpost passes --sort`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PassOrder {
    Time,
    Brightness,
}

#[cfg(test)]
mod tests {
    use super::environment_file;

    #[test]
    fn the_env_file_gives_its_outpost_assignments_unquoted() {
        let text = "# made on install\nOUTPOST_WEB_USERNAME=outpost\n  OUTPOST_WEB_PASSWORD=\"a b=c\"\n\
                    OUTPOST_SMTP_PASSWORD='x'\nPATH=/evil\nOUTPOST_EMPTY=\nnot an assignment\n";
        let got = environment_file(text);
        let want = [
            ("OUTPOST_WEB_USERNAME", "outpost"),
            ("OUTPOST_WEB_PASSWORD", "a b=c"),
            ("OUTPOST_SMTP_PASSWORD", "x"),
            ("OUTPOST_EMPTY", ""),
        ];
        assert_eq!(got, want.map(|(k, v)| (k.to_owned(), v.to_owned())));
    }
}
