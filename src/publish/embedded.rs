//! The embedded broker: librdkafka's mock cluster, in process, for running finhook without Kafka
//! (`kafka.embedded = true`) and for the in-process test tier.
//!
//! The mock cluster handle is not `Send`, so it lives on a thread of its own; this handle is
//! `Send` and can take brokers down and up, which tests use to play an outage.

use std::sync::mpsc;
use std::thread::JoinHandle;

use rdkafka::error::KafkaError;
use rdkafka::mocking::MockCluster;

enum Command {
    BrokerDown(i32),
    BrokerUp(i32),
    RoundTripTime(i32, std::time::Duration),
    CreateTopic(String, i32),
    TopicError(String, rdkafka::types::RDKafkaRespErr),
    ProduceErrors(Vec<rdkafka::types::RDKafkaRespErr>),
    Stop,
}

pub struct EmbeddedKafka {
    bootstrap_servers: String,
    commands: mpsc::Sender<(Command, mpsc::Sender<Result<(), KafkaError>>)>,
    thread: Option<JoinHandle<()>>,
}

impl EmbeddedKafka {
    /// Starts a mock cluster of `brokers` brokers (ids 1..=brokers).
    pub fn start(brokers: i32) -> Result<Self, KafkaError> {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (commands_tx, commands_rx) =
            mpsc::channel::<(Command, mpsc::Sender<Result<(), KafkaError>>)>();
        let thread = std::thread::Builder::new()
            .name("finhook-embedded-kafka".to_owned())
            .spawn(move || {
                let cluster = match MockCluster::new(brokers) {
                    Ok(cluster) => cluster,
                    Err(error) => {
                        let _ = ready_tx.send(Err(error));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(cluster.bootstrap_servers()));
                while let Ok((command, reply)) = commands_rx.recv() {
                    let result = match command {
                        Command::BrokerDown(id) => cluster.broker_down(id),
                        Command::BrokerUp(id) => cluster.broker_up(id),
                        Command::RoundTripTime(id, delay) => {
                            cluster.broker_round_trip_time(id, delay)
                        }
                        Command::CreateTopic(topic, partitions) => {
                            cluster.create_topic(&topic, partitions, 1)
                        }
                        Command::TopicError(topic, error) => cluster.topic_error(&topic, error),
                        Command::ProduceErrors(errors) => {
                            cluster.request_errors(rdkafka::types::RDKafkaApiKey::Produce, &errors);
                            Ok(())
                        }
                        Command::Stop => break,
                    };
                    let _ = reply.send(result);
                }
            })
            .map_err(|_| KafkaError::MockCluster(rdkafka::types::RDKafkaErrorCode::Fail))?;
        let bootstrap_servers = ready_rx
            .recv()
            .map_err(|_| KafkaError::MockCluster(rdkafka::types::RDKafkaErrorCode::Fail))??;
        Ok(Self {
            bootstrap_servers,
            commands: commands_tx,
            thread: Some(thread),
        })
    }

    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap_servers
    }

    /// Makes broker `id` refuse connections (an outage).
    pub fn broker_down(&self, id: i32) -> Result<(), KafkaError> {
        self.command(Command::BrokerDown(id))
    }

    pub fn broker_up(&self, id: i32) -> Result<(), KafkaError> {
        self.command(Command::BrokerUp(id))
    }

    /// Delays every answer of broker `id` (a slow broker: acknowledgements take `delay`).
    pub fn set_round_trip_time(
        &self,
        id: i32,
        delay: std::time::Duration,
    ) -> Result<(), KafkaError> {
        self.command(Command::RoundTripTime(id, delay))
    }

    /// Creates `topic` with `partitions` partitions (auto-created topics get the mock's default
    /// of 4; each mock partition keeps only its latest few MB, so volume needs more of them).
    pub fn create_topic(&self, topic: &str, partitions: i32) -> Result<(), KafkaError> {
        self.command(Command::CreateTopic(topic.to_owned(), partitions))
    }

    /// Makes the cluster answer `error` for `topic` in metadata requests (e.g. not authorized),
    /// as a broker does for a topic the client may not write to.
    pub fn set_topic_error(
        &self,
        topic: &str,
        error: rdkafka::types::RDKafkaRespErr,
    ) -> Result<(), KafkaError> {
        self.command(Command::TopicError(topic.to_owned(), error))
    }

    /// Makes the next produce requests fail with `errors`, one each, as a broker refusing
    /// records does (e.g. a topic whose `max.message.bytes` is below the producer's).
    pub fn fail_next_produce_requests(
        &self,
        errors: Vec<rdkafka::types::RDKafkaRespErr>,
    ) -> Result<(), KafkaError> {
        self.command(Command::ProduceErrors(errors))
    }

    fn command(&self, command: Command) -> Result<(), KafkaError> {
        let (reply_tx, reply_rx) = mpsc::channel();
        let stopped = || KafkaError::MockCluster(rdkafka::types::RDKafkaErrorCode::Fail);
        self.commands
            .send((command, reply_tx))
            .map_err(|_| stopped())?;
        reply_rx.recv().map_err(|_| stopped())?
    }
}

impl Drop for EmbeddedKafka {
    fn drop(&mut self) {
        let (reply_tx, _reply_rx) = mpsc::channel();
        let _ = self.commands.send((Command::Stop, reply_tx));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
