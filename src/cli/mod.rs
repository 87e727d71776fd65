//! The command line: `serve`, `check-config`, `sign`, `providers`, `tail`, `users`, `redrive`,
//! `asyncapi`.

/// `println!` that returns the error instead of panicking, so a command piped into `head` ends
/// quietly when its reader goes away (the broken pipe is then not reported; see [`main`]).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*)
    }};
}

pub mod asyncapi;
mod redrive;
mod users;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};

use crate::config::Config;
use crate::providers::bridge;
use crate::secret::Secret;
use crate::sources::Sources;

#[derive(Debug, Parser)]
#[command(
    name = "finhook",
    version,
    about = "Open-banking webhooks and event queues to CloudEvents on Kafka"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon.
    Serve {
        /// A TOML file merged over the embedded defaults.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Validate the configuration and print it, every secret redacted.
    CheckConfig {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Do not read secret, users and TLS files (validate a configuration where they are not
        /// mounted, e.g. in a CI pipeline).
        #[arg(long)]
        skip_files: bool,
    },
    /// Exit 0 when URL answers 2xx within 2 s (a container health check without curl).
    Probe { url: String },
    /// Print the BridgeApi-Signature header value for a body (a file, or `-` for stdin).
    Sign {
        /// Print the headers a sender would add for this configured source (any provider with
        /// a shared secret: bridge, linxo, standard, hmac, tink, powens), one `Name: value` a line.
        #[arg(long, required_unless_present = "secret")]
        source: Option<String>,
        #[arg(long, short, requires = "source")]
        config: Option<PathBuf>,
        /// Shorthand without a configuration: print the BridgeApi-Signature value under this
        /// Bridge secret.
        #[arg(long, conflicts_with = "source")]
        secret: Option<String>,
        #[arg(default_value = "-")]
        file: String,
    },
    /// The users registry (registry mode): put, remove, list, import, encrypt, keygen.
    Users {
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        /// Kafka bootstrap servers (default: kafka.brokers of the configuration).
        #[arg(long, global = true)]
        brokers: Option<String>,
        #[command(subcommand)]
        command: users::UsersCommand,
    },
    /// Read a range of the dead-letter topic again with this configuration's readers, publish
    /// what now passes to its route, and report what still fails.
    Redrive {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Kafka bootstrap servers (default: kafka.brokers of the configuration).
        #[arg(long)]
        brokers: Option<String>,
        /// Start at this offset in every partition (default: the beginning).
        #[arg(long, conflicts_with = "since")]
        from_offset: Option<i64>,
        /// Start at the first record written at or after this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Leave records written after this time (RFC 3339).
        #[arg(long)]
        until: Option<String>,
        /// Read and report; publish nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the summary as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Open the encrypted fields of envelopes (one JSON object a line, as `finhook tail` prints
    /// them) with the configuration's `[protection]` keys, and print them.
    Decrypt {
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[arg(default_value = "-")]
        file: String,
    },
    /// Print the AsyncAPI 3.0 document describing the topics finhook writes, for this
    /// configuration (JSON).
    Asyncapi {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// List the providers finhook verifies and reads (`kind` in a source), with how each is
    /// verified.
    Providers,
    /// Print the envelopes on a topic, one JSON object per line.
    Tail {
        /// The configuration whose `[kafka]` brokers and security properties (TLS, SASL) to
        /// use.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Kafka bootstrap servers (default: kafka.brokers of the configuration).
        #[arg(long)]
        brokers: Option<String>,
        #[arg(long)]
        topic: String,
        /// Start from the oldest record or only show new ones.
        #[arg(long, value_enum, default_value_t = From::Earliest)]
        from: From,
        /// Stop after this many records.
        #[arg(long)]
        limit: Option<usize>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum From {
    Earliest,
    Latest,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config } => serve(config),
        Command::CheckConfig { config, skip_files } => check_config(config, skip_files),
        Command::Redrive {
            config,
            brokers,
            from_offset,
            since,
            until,
            dry_run,
            json,
        } => load(config).and_then(|config| {
            let time = |text: Option<String>, flag: &str| {
                text.map(|text| {
                    time::OffsetDateTime::parse(
                        &text,
                        &time::format_description::well_known::Rfc3339,
                    )
                    .map_err(|_| anyhow::anyhow!("--{flag}: not an RFC 3339 time: {text}"))
                })
                .transpose()
            };
            let start = match (from_offset, time(since, "since")?) {
                (Some(offset), _) => redrive::Start::Offset(offset),
                (None, Some(time)) => redrive::Start::Time(time),
                (None, None) => redrive::Start::Beginning,
            };
            let range = redrive::Range {
                start,
                until: time(until, "until")?,
            };
            redrive::run(&config, brokers, range, dry_run, json)
        }),
        Command::Decrypt { config, file } => {
            load(config).and_then(|config| decrypt(&config, &file))
        }
        Command::Asyncapi { config } => load(config).and_then(|config| {
            std::io::stdout()
                .lock()
                .write_all(asyncapi::document(&config).as_bytes())
                .map_err(anyhow::Error::from)
        }),
        Command::Providers => {
            let mut stdout = std::io::stdout().lock();
            crate::providers::CATALOGUE
                .iter()
                .try_for_each(|entry| {
                    writeln!(stdout, "{:<10} {}", entry.kind(), entry.verification())
                })
                .map_err(anyhow::Error::from)
        }
        Command::Probe { url } => probe(&url),
        Command::Sign {
            source,
            config,
            secret,
            file,
        } => sign(source, config, secret, &file),
        Command::Users {
            config,
            brokers,
            command,
        } => load(config).and_then(|config| users::run(&config, brokers, command)),
        Command::Tail {
            config,
            brokers,
            topic,
            from,
            limit,
        } => load(config).and_then(|config| {
            crate::tail::run(
                &config,
                brokers,
                &topic,
                matches!(from, From::Latest),
                limit,
            )
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`finhook tail | head`): that is how such a pipe ends, not an
        // error to report.
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("finhook: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn decrypt(config: &Config, file: &str) -> anyhow::Result<()> {
    let keyring = config
        .protection
        .keyring()?
        .ok_or_else(|| anyhow::anyhow!("no [protection] encryption key in the configuration"))?;
    let input: Box<dyn std::io::BufRead> = if file == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(file)
                .map_err(|error| anyhow::anyhow!("reading {file}: {error}"))?,
        ))
    };
    let mut stdout = std::io::stdout().lock();
    for (number, line) in std::io::BufRead::lines(input).enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let mut envelope: serde_json::Value = serde_json::from_str(&line)
            .map_err(|error| anyhow::anyhow!("line {}: not JSON: {error}", number + 1))?;
        if let Some(data) = envelope.get_mut("data") {
            crate::protection::open_sealed_fields(&keyring, data)
                .map_err(|error| anyhow::anyhow!("line {}: {error}", number + 1))?;
        }
        writeln!(stdout, "{envelope}")?;
    }
    Ok(())
}

fn load(path: Option<PathBuf>) -> anyhow::Result<Config> {
    Ok(Config::load(path.as_deref())?)
}

fn serve(path: Option<PathBuf>) -> anyhow::Result<()> {
    let config = load(path)?;
    crate::telemetry::init(&config.log);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("finhook")
        .build()?;
    runtime.block_on(crate::app::run(
        &config,
        crate::shutdown::signal_with_deadline(crate::app::shutdown_deadline(&config)),
    ))?;
    // The runtime may hold blocking probes of an unreachable broker; do not wait for them.
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

fn check_config(path: Option<PathBuf>, skip_files: bool) -> anyhow::Result<()> {
    let config = load(path)?;
    if !skip_files {
        // Secret and users files must be readable too, or `serve` would fail where this passed.
        Sources::from_config(&config)?;
        config.resolve_kafka_properties()?;
        for (name, poller) in &config.pollers {
            poller.resolve_client_secret(name)?;
            poller.load_users(name)?;
        }
        if config.registry.enabled {
            config.registry.keyring()?;
        }
        if let Some(tls) = &config.server.tls {
            crate::http::tls::ReloadingTls::load(tls).context("loading server.tls")?;
        }
    }
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "# finhook: configuration is valid; secrets are shown as [redacted]"
    )?;
    stdout.write_all(config.to_redacted_toml().as_bytes())?;
    Ok(())
}

fn probe(url: &str) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let status = runtime.block_on(async {
        reqwest::Client::new()
            .get(url)
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .map(|response| response.status())
    })?;
    anyhow::ensure!(status.is_success(), "{url} answered {status}");
    Ok(())
}

fn sign(
    source: Option<String>,
    config: Option<PathBuf>,
    secret: Option<String>,
    file: &str,
) -> anyhow::Result<()> {
    let mut body = Vec::new();
    if file == "-" {
        std::io::stdin().read_to_end(&mut body)?;
    } else {
        body = std::fs::read(file).map_err(|error| anyhow::anyhow!("reading {file}: {error}"))?;
    }
    if let Some(secret) = secret {
        out!("{}", bridge::sign(&Secret::new(secret), &body))?;
        return Ok(());
    }
    let name = source.expect("clap requires --source without --secret");
    let config = load(config)?;
    let sources = Sources::from_config(&config)?;
    let source = sources
        .get(&name)
        .ok_or_else(|| anyhow::anyhow!("no source `{name}` in the configuration"))?;
    let headers = source
        .verifier()
        .sign(&body, time::OffsetDateTime::now_utc())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "finhook cannot sign for source `{name}` ({}): its provider signs with a private key, or its signature covers headers finhook does not make",
                source.kind
            )
        })?;
    for (header, value) in headers {
        out!("{header}: {value}")?;
    }
    Ok(())
}
