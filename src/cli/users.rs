//! `finhook users …`: the users registry from the command line. Credentials are read from a
//! file or stdin, never from the command line (where `ps` and shell history would keep them),
//! and never printed.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Subcommand;

use crate::config::{Config, UserCredentials};
use crate::keyring::{self as crypto, Keyring};
use crate::registry::admin::RegistryKafka;
use crate::registry::record::{self, PlainCredentials, RegisteredUser, RegistryEntry};

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Print a new random registry key (32 bytes, base64) for `registry.key_file`.
    Keygen,
    /// Add or replace a user.
    Put {
        #[command(flatten)]
        user: UserArgs,
    },
    /// Remove a user (a tombstone): whoever polls it stops within seconds.
    Remove {
        /// The Oxlin user id.
        id: String,
    },
    /// List the registry's users: id, poller, enabled, partition and whether its credentials
    /// decrypt. Never a secret.
    List,
    /// Copy a users file (`[[users]]` tables, as for `users_file`) into the registry.
    Import {
        /// The users file.
        file: PathBuf,
        /// The poller that polls them.
        #[arg(long)]
        poller: String,
    },
    /// Print the record value for a user without writing it, for services that produce to the
    /// registry topic themselves (key: the user id).
    Encrypt {
        #[command(flatten)]
        user: UserArgs,
    },
}

#[derive(Debug, clap::Args)]
pub struct UserArgs {
    /// The Oxlin user id (the record key).
    id: String,
    /// The `[pollers.NAME]` that polls this user.
    #[arg(long)]
    poller: String,
    /// A JSON file (`-`: stdin) with `{"access_token": …}` or `{"username": …, "password": …}`.
    #[arg(long)]
    credentials: String,
    /// A queue the provider already gave this user (id, `/queues/{id}` or URL).
    #[arg(long)]
    queue: Option<String>,
    /// Queue subscription topics, comma-separated (default: the poller's).
    #[arg(long, value_delimiter = ',')]
    topics: Vec<String>,
    /// Keep the user registered but do not poll it.
    #[arg(long)]
    disabled: bool,
}

impl UserArgs {
    fn read(&self) -> anyhow::Result<RegisteredUser> {
        let mut text = Vec::new();
        if self.credentials == "-" {
            std::io::stdin().read_to_end(&mut text)?;
        } else {
            text = std::fs::read(&self.credentials)
                .with_context(|| format!("reading {}", self.credentials))?;
        }
        let plain: PlainCredentials = serde_json::from_slice(&text).map_err(|_| {
            anyhow::anyhow!(
                "the credentials are not a JSON object with access_token, or username and password"
            )
        })?;
        let credentials: UserCredentials = plain.into_credentials()?;
        check_id(&self.id)?;
        Ok(RegisteredUser {
            id: self.id.clone(),
            poller: self.poller.clone(),
            enabled: !self.disabled,
            topics: (!self.topics.is_empty()).then(|| self.topics.clone()),
            queue: self.queue.clone(),
            credentials,
        })
    }
}

/// Runs one `users` command against the configured (or `--brokers`) Kafka.
pub fn run(config: &Config, brokers: Option<String>, command: UsersCommand) -> anyhow::Result<()> {
    if let UsersCommand::Keygen = command {
        out!("{}", crypto::generate_key())?;
        return Ok(());
    }
    let keyring = config.registry.keyring()?;
    if let UsersCommand::Encrypt { user } = &command {
        let user = user.read()?;
        check_poller(config, &user.poller)?;
        out!("{}", String::from_utf8(record::encode(&user, &keyring))?)?;
        return Ok(());
    }
    let brokers = crate::kafka::command_brokers(config, brokers)?;
    let kafka = RegistryKafka {
        bootstrap: brokers,
        properties: config.resolve_kafka_properties()?,
        config: config.registry.clone(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // Only writes create the topics: `list` against the wrong cluster or a misspelt topic
        // name must fail, not report an empty registry it just made.
        if !matches!(command, UsersCommand::List) {
            kafka.ensure_topics().await?;
        }
        let topic = kafka.config.users_topic.clone();
        match command {
            UsersCommand::Put { user } => {
                let user = user.read()?;
                check_poller(config, &user.poller)?;
                let producer = kafka.producer()?;
                let value = record::encode(&user, &keyring);
                let (partition, _) =
                    RegistryKafka::put(&producer, &topic, &user.id, Some(&value)).await?;
                out!("put user {} (partition {partition})", user.id)?;
            }
            UsersCommand::Remove { id } => {
                let producer = kafka.producer()?;
                RegistryKafka::put(&producer, &topic, &id, None).await?;
                out!("removed user {id}")?;
            }
            UsersCommand::Import { file, poller } => {
                import(config, &kafka, &keyring, &file, &poller).await?;
            }
            UsersCommand::List => list(&kafka, &keyring).await?,
            UsersCommand::Keygen | UsersCommand::Encrypt { .. } => unreachable!("handled above"),
        }
        Ok(())
    })
}

/// Refuses what the daemon would skip as an invalid key, before anything is written.
fn check_id(id: &str) -> anyhow::Result<()> {
    record::user_id(Some(id.as_bytes())).map_err(|_| {
        anyhow::anyhow!("a user id is 1 to 256 bytes of text without control characters")
    })?;
    Ok(())
}

fn check_poller(config: &Config, poller: &str) -> anyhow::Result<()> {
    if !config.pollers.contains_key(poller) {
        bail!(
            "no [pollers.{}] in the configuration (configured: {})",
            poller,
            config
                .pollers
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

async fn import(
    config: &Config,
    kafka: &RegistryKafka,
    keyring: &Keyring,
    file: &std::path::Path,
    poller: &str,
) -> anyhow::Result<()> {
    let users = crate::config::poller::read_users_file(file)?;
    check_poller(config, poller)?;
    // Every id checked before the first is written (the file's reader checked the
    // credentials).
    for (id, _) in &users {
        check_id(id)?;
    }
    let producer = kafka.producer()?;
    let mut written = 0usize;
    let sends = users.into_iter().map(|(id, credentials)| {
        let user = RegisteredUser {
            id,
            poller: poller.to_owned(),
            enabled: true,
            topics: None,
            queue: None,
            credentials,
        };
        let producer = &producer;
        let topic = &kafka.config.users_topic;
        async move {
            let value = record::encode(&user, keyring);
            RegistryKafka::put(producer, topic, &user.id, Some(&value)).await
        }
    });
    let mut failure = None;
    for result in futures::future::join_all(sends).await {
        match result {
            Ok(_) => written += 1,
            Err(error) => failure = failure.or(Some(error)),
        }
    }
    if let Some(error) = failure {
        // Putting a user again is harmless: the whole file can be imported again.
        return Err(error.context(format!(
            "{written} users were imported before the failure; import the file again"
        )));
    }
    out!("imported {written} users into {}", kafka.config.users_topic)?;
    Ok(())
}

async fn list(kafka: &RegistryKafka, keyring: &Keyring) -> anyhow::Result<()> {
    let reader = kafka.clone();
    let records = tokio::task::spawn_blocking(move || {
        reader.read_to_end(&reader.config.users_topic.clone(), None)
    })
    .await??;
    out!(
        "{:<24} {:<16} {:<8} {:>9}  credentials",
        "user",
        "poller",
        "enabled",
        "partition"
    )?;
    let mut count = 0usize;
    for (_, stored) in RegistryKafka::latest_by_key(records) {
        let shown = match record::decode(stored.key.as_deref(), stored.value.as_deref(), keyring) {
            Ok(RegistryEntry::Removed(_)) => continue,
            Ok(RegistryEntry::User(user)) => format!(
                "{:<24} {:<16} {:<8} {:>9}  ok",
                user.id, user.poller, user.enabled, stored.partition
            ),
            Err(error) => format!(
                "{:<24} {:<16} {:<8} {:>9}  {}",
                record::user_id(stored.key.as_deref()).unwrap_or_else(|_| "?".to_owned()),
                "?",
                "?",
                stored.partition,
                error.reason()
            ),
        };
        out!("{shown}")?;
        count += 1;
    }
    out!("{count} users")?;
    Ok(())
}
