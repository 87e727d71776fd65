//! Kafka access for the registry, outside the consumer group: creating the two compacted topics,
//! reading a topic (or some of its partitions) up to its end, and writing user records. Used by
//! the `finhook users` commands, and by the daemon to restore queue state. Blocking calls: the
//! daemon runs them on blocking threads.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;
use rdkafka::{Offset, TopicPartitionList};

use crate::config::RegistryConfig;

/// How long a read to the end of a topic may take before it is reported as failed.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The Java client's default partitioner: a user's records land in the same partition whoever
/// writes them (an onboarding service in Java, `finhook users put`), so a tombstone always
/// meets the record it removes.
pub const PARTITIONER: &str = "murmur2_random";

/// librdkafka reports reaching a partition's end as an error of the client; readers ask for it
/// (`enable.partition.eof`), so it is no error here.
pub struct QuietEofContext;

impl ClientContext for QuietEofContext {
    fn error(&self, error: KafkaError, reason: &str) {
        report_client_error(error, reason);
    }
}

impl ConsumerContext for QuietEofContext {}

/// Logs a librdkafka client error, except the end-of-partition notices readers ask for.
/// Lost connections are retried by librdkafka and show in readiness: debug only.
pub fn report_client_error(error: KafkaError, reason: &str) {
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::PartitionEOF) => {}
        Some(
            RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::AllBrokersDown
            | RDKafkaErrorCode::Resolve,
        ) => tracing::debug!(%error, reason, "registry client lost a connection"),
        _ => tracing::warn!(%error, reason, "registry client error"),
    }
}

/// One record read back.
#[derive(Debug, Clone)]
pub struct StoredRecord {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

/// The registry's Kafka: brokers, pass-through properties (TLS, SASL) and topic names.
#[derive(Debug, Clone)]
pub struct RegistryKafka {
    pub bootstrap: String,
    pub properties: Vec<(String, String)>,
    pub config: RegistryConfig,
}

impl RegistryKafka {
    /// A client configuration with the brokers and the pass-through properties that make sense
    /// for every client (security, addresses); producer tuning is left out.
    pub fn client_config(&self) -> ClientConfig {
        crate::kafka::shared_client_config(&self.bootstrap, &self.properties)
    }

    /// Creates the users and state topics, compacted, when they are missing. A broker that
    /// cannot create topics (or a principal not allowed to) is reported, not fatal: the topics
    /// may have been created by the platform.
    pub async fn ensure_topics(&self) -> anyhow::Result<()> {
        let probe = self.clone();
        let existing = tokio::task::spawn_blocking(move || {
            [&probe.config.users_topic, &probe.config.state_topic]
                .iter()
                .all(|topic| probe.partition_count(topic).is_ok())
        })
        .await?;
        if existing {
            return Ok(());
        }
        let admin: AdminClient<DefaultClientContext> = self
            .client_config()
            .create()
            .context("creating a Kafka admin client")?;
        let compact = [("cleanup.policy", "compact")];
        let topics: Vec<NewTopic<'_>> = [&self.config.users_topic, &self.config.state_topic]
            .into_iter()
            .map(|name| {
                let mut topic = NewTopic::new(
                    name,
                    self.config.partitions,
                    TopicReplication::Fixed(self.config.replication_factor),
                );
                for (key, value) in compact {
                    topic = topic.set(key, value);
                }
                topic
            })
            .collect();
        let options = AdminOptions::new()
            .operation_timeout(Some(Duration::from_secs(10)))
            .request_timeout(Some(Duration::from_secs(10)));
        let results = admin
            .create_topics(&topics, &options)
            .await
            .context("creating the registry topics")?;
        for result in results {
            match result {
                Ok(topic) => tracing::info!(%topic, "registry topic created"),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    tracing::warn!(%topic, error = %code, "registry topic not created; create it (compacted) if it is missing")
                }
            }
        }
        Ok(())
    }

    /// The number of partitions of `topic`.
    pub fn partition_count(&self, topic: &str) -> anyhow::Result<i32> {
        let consumer: BaseConsumer<QuietEofContext> =
            self.reader_config().create_with_context(QuietEofContext)?;
        crate::kafka::partition_count(&consumer, topic, &self.bootstrap)
    }

    fn reader_config(&self) -> ClientConfig {
        let mut config = self.client_config();
        config
            .set("group.id", format!("{}-reader", self.config.group_id))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set("allow.auto.create.topics", "false")
            .set("topic.metadata.refresh.interval.ms", "1000");
        config
    }

    /// Reads `partitions` of `topic` (all when `None`) from the beginning to their current end.
    pub fn read_to_end(
        &self,
        topic: &str,
        partitions: Option<&[i32]>,
    ) -> anyhow::Result<Vec<StoredRecord>> {
        let wanted: Vec<i32> = match partitions {
            Some(partitions) => partitions.to_vec(),
            None => (0..self.partition_count(topic)?).collect(),
        };
        let consumer: BaseConsumer<QuietEofContext> =
            self.reader_config().create_with_context(QuietEofContext)?;
        let mut assignment = TopicPartitionList::new();
        for partition in &wanted {
            assignment.add_partition_offset(topic, *partition, Offset::Beginning)?;
        }
        consumer.assign(&assignment)?;
        let mut pending: HashSet<i32> = wanted.iter().copied().collect();
        let mut records = Vec::new();
        let deadline = Instant::now() + READ_TIMEOUT;
        while !pending.is_empty() {
            if Instant::now() > deadline {
                bail!("reading {topic} to its end took over {READ_TIMEOUT:?}");
            }
            match consumer.poll(Duration::from_millis(200)) {
                None => {}
                Some(Err(KafkaError::PartitionEOF(partition))) => {
                    pending.remove(&partition);
                }
                // librdkafka retries what it can (a lost connection, a leader moving): keep
                // reading until the deadline.
                Some(Err(error)) => {
                    tracing::debug!(%topic, %error, "reading on after a consumer error");
                }
                Some(Ok(message)) => records.push(StoredRecord {
                    partition: message.partition(),
                    offset: message.offset(),
                    key: message.key().map(<[u8]>::to_vec),
                    value: message.payload().map(<[u8]>::to_vec),
                }),
            }
        }
        Ok(records)
    }

    /// The latest record of each key (what compaction keeps), tombstones included.
    pub fn latest_by_key(records: Vec<StoredRecord>) -> BTreeMap<Vec<u8>, StoredRecord> {
        let mut latest = BTreeMap::new();
        for record in records {
            if let Some(key) = record.key.clone() {
                latest.insert(key, record);
            }
        }
        latest
    }

    /// A producer for registry records: idempotent, acks=all, Java-compatible partitioning.
    pub fn producer(&self) -> anyhow::Result<FutureProducer> {
        let mut config = self.client_config();
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("partitioner", PARTITIONER);
        Ok(config.create()?)
    }

    /// Writes one user record (or a tombstone) and waits for the acknowledgement.
    pub async fn put(
        producer: &FutureProducer,
        topic: &str,
        user_id: &str,
        value: Option<&[u8]>,
    ) -> anyhow::Result<(i32, i64)> {
        let mut record = FutureRecord::<str, [u8]>::to(topic).key(user_id);
        if let Some(value) = value {
            record = record.payload(value);
        }
        let delivered = producer
            .send(record, Duration::from_secs(30))
            .await
            .map_err(|(error, _)| error)
            .with_context(|| format!("writing user {user_id} to {topic}"))?;
        Ok((delivered.partition, delivered.offset))
    }
}
