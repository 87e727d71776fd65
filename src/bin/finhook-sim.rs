//! `finhook-sim`: plays the providers for demos and benchmarks (see `finhook::simulator`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use finhook::secret::Secret;
use finhook::simulator::oxlin::{self, OxlinSimulation};
use finhook::simulator::webhooks::{self, WebhookSimulation};

#[derive(Parser)]
#[command(
    name = "finhook-sim",
    about = "Simulated Oxlin queues and provider webhooks, for finhook demos and benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a simulated Oxlin (token endpoint and event queues).
    Oxlin {
        #[arg(long, default_value = "127.0.0.1:7070")]
        listen: SocketAddr,
        /// Events per user per minute.
        #[arg(long, default_value_t = 1.0)]
        events_per_minute: f64,
        /// Lifetime of issued tokens, in seconds.
        #[arg(long, default_value_t = 3600)]
        token_lifetime: u64,
        /// Print counters every this many seconds (0: never).
        #[arg(long, default_value_t = 10)]
        report_every: u64,
    },
    /// Run a Kafka-protocol broker (librdkafka's mock cluster) as its own process; prints its
    /// bootstrap address on the first line of stdout. Nothing is persisted.
    Kafka {
        #[arg(long, default_value_t = 1)]
        brokers: i32,
        /// Topics to create up front (repeatable).
        #[arg(long = "topic")]
        topics: Vec<String>,
        /// Partitions of the topics created up front.
        #[arg(long, default_value_t = 4)]
        partitions: i32,
    },
    /// Write a finhook users file for N simulated users.
    UsersFile {
        #[arg(long)]
        users: usize,
        /// Static access tokens instead of password grants.
        #[arg(long)]
        static_tokens: bool,
        #[arg(long)]
        out: PathBuf,
    },
    /// Send simulated webhooks to a finhook.
    Webhooks {
        /// finhook's webhook base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        target: String,
        #[arg(long, default_value = "bridge")]
        bridge_source: String,
        /// The Bridge source's secret; omit to send no Bridge webhooks.
        #[arg(long)]
        bridge_secret: Option<String>,
        #[arg(long, default_value = "linxo")]
        linxo_source: String,
        /// `user:password` of the Linxo source; omit to send no Linxo webhooks.
        #[arg(long)]
        linxo_basic: Option<String>,
        /// Webhooks per second.
        #[arg(long, default_value_t = 5.0)]
        rate: f64,
        /// Stop after this many.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Send bodies to one source of a finhook configuration, signed as its provider signs
    /// (any provider with a shared secret: bridge, linxo, standard, hmac, tink, powens).
    Send {
        /// finhook's webhook base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        target: String,
        /// The finhook configuration holding the source (its secret is read from it).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The source to send to.
        #[arg(long)]
        source: String,
        /// The URL's event segment (`/webhooks/<source>/<event>`), for Powens and Salt Edge.
        #[arg(long)]
        event: Option<String>,
        /// A query string to add, e.g. `token=…` for a source with `auth = "query"`.
        #[arg(long)]
        query: Option<String>,
        /// Bodies to send, in turn (files).
        #[arg(required = true)]
        bodies: Vec<PathBuf>,
        /// Requests per second.
        #[arg(long, default_value_t = 5.0)]
        rate: f64,
        /// Stop after this many (default: each body once).
        #[arg(long)]
        count: Option<u64>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse().command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("finhook-sim: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Oxlin {
            listen,
            events_per_minute,
            token_lifetime,
            report_every,
        } => {
            let simulation = OxlinSimulation {
                events_per_minute,
                token_lifetime: Duration::from_secs(token_lifetime),
                record_served: false,
            };
            let (address, counters) = oxlin::spawn(listen, simulation).await?;
            eprintln!("finhook-sim: simulated Oxlin at http://{address}/v2.1 (token endpoint http://{address}/token)");
            loop {
                if report_every == 0 {
                    std::future::pending::<()>().await;
                }
                tokio::time::sleep(Duration::from_secs(report_every)).await;
                use std::sync::atomic::Ordering::Relaxed;
                eprintln!(
                    "finhook-sim: tokens {} subscriptions {} polls {} events {}",
                    counters.tokens.load(Relaxed),
                    counters.subscriptions.load(Relaxed),
                    counters.polls.load(Relaxed),
                    counters.events.load(Relaxed),
                );
            }
        }
        Command::Kafka {
            brokers,
            topics,
            partitions,
        } => {
            let kafka = finhook::publish::embedded::EmbeddedKafka::start(brokers)?;
            for topic in &topics {
                kafka.create_topic(topic, partitions)?;
            }
            println!("{}", kafka.bootstrap_servers());
            eprintln!(
                "finhook-sim: mock Kafka cluster at {}",
                kafka.bootstrap_servers()
            );
            finhook::shutdown::signal().await;
            drop(kafka);
            Ok(())
        }
        Command::UsersFile {
            users,
            static_tokens,
            out,
        } => {
            std::fs::write(&out, finhook::simulator::users_file(users, static_tokens))?;
            eprintln!("finhook-sim: wrote {users} users to {}", out.display());
            Ok(())
        }
        Command::Webhooks {
            target,
            bridge_source,
            bridge_secret,
            linxo_source,
            linxo_basic,
            rate,
            count,
        } => {
            let linxo = match linxo_basic {
                Some(pair) => {
                    let (user, password) = pair
                        .split_once(':')
                        .ok_or_else(|| anyhow::anyhow!("--linxo-basic takes user:password"))?;
                    Some((linxo_source, user.to_owned(), Secret::new(password)))
                }
                None => None,
            };
            let simulation = WebhookSimulation {
                target,
                bridge: bridge_secret.map(|secret| (bridge_source, Secret::new(secret))),
                linxo,
                rate,
                count,
            };
            let statuses: webhooks::Statuses = Arc::default();
            let reporter = Arc::clone(&statuses);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    eprintln!(
                        "finhook-sim: answers by status {:?}",
                        reporter.lock().expect("never poisoned")
                    );
                }
            });
            webhooks::run(simulation, Arc::clone(&statuses)).await;
            tokio::time::sleep(Duration::from_secs(2)).await;
            eprintln!(
                "finhook-sim: answers by status {:?}",
                statuses.lock().expect("never poisoned")
            );
            Ok(())
        }
        Command::Send {
            target,
            config,
            source,
            event,
            query,
            bodies,
            rate,
            count,
        } => {
            let config = finhook::config::Config::load(config.as_deref())?;
            let sources = finhook::sources::Sources::from_config(&config)?;
            let source = sources
                .get(&source)
                .ok_or_else(|| anyhow::anyhow!("no source `{source}` in the configuration"))?;
            let bodies = bodies
                .iter()
                .map(|path| {
                    std::fs::read(path)
                        .map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let count = count.unwrap_or(bodies.len() as u64);
            let statuses = webhooks::send_signed(
                &webhooks::SignedSend {
                    target,
                    path_event: event,
                    query,
                    rate,
                    count,
                },
                source,
                &bodies,
            )
            .await?;
            println!("{}", serde_json::to_string(&statuses)?);
            Ok(())
        }
    }
}
