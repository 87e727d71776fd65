//! `finhook-bench`: the benchmark tools behind `benches/run.sh`: a load generator for signed
//! Bridge webhooks (closed loop; latency, statuses, send → readable-in-Kafka time, and
//! a check that every 2xx'd event is in Kafka), a light open-loop generator for tails
//! ([`pace`]), and the two ceilings finhook is compared with (an HTTP handler that only answers
//! 200, and one that produces the raw body to Kafka and answers after the acknowledgement).

mod pace;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use clap::{Parser, Subcommand};
use finhook::envelope::{derived_id, AttributeHeaders, Envelope, Origin};
use finhook::providers::{bridge, linxo, Provider};
use finhook::secret::Secret;
use finhook::vocabulary::Ingress;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

#[derive(Parser)]
#[command(
    name = "finhook-bench",
    about = "Load generator and ceilings for finhook's benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Ceiling (a): answers every POST 200 after reading the body, nothing else.
    CeilingHttp {
        #[arg(long)]
        listen: SocketAddr,
    },
    /// Ceiling (b): produces the raw body to Kafka (idempotent, acks=all) and answers 200 after
    /// the acknowledgement: no verification, no envelope.
    CeilingKafka {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long)]
        brokers: String,
        #[arg(long, default_value = "bench.ceiling")]
        topic: String,
        /// Ceiling (b+): give each record what finhook's envelope contract adds to it: the
        /// key, the 20 headers and the attributes of a real Linxo envelope around the body.
        /// Still no verification and no reading of the body: the gap between (b) and (b+) is
        /// what the record costs, the gap between (b+) and finhook what finhook's code costs.
        #[arg(long)]
        envelope_shaped: bool,
        /// With `--envelope-shaped`: keep only the first N of the envelope's headers (the
        /// rest of the record unchanged), to measure what each header costs.
        #[arg(long)]
        envelope_headers: Option<usize>,
        /// Key the raw-body records with N keys in turn (0: no key). finhook keys each record
        /// by its connection, so a burst of webhooks about many connections spreads over the
        /// topic's partitions, in batches of one or two records each; an unkeyed producer fills
        /// one partition's batch at a time. `run.sh`'s unique Bridge events name 5,000 items.
        #[arg(long, default_value_t = 0)]
        keys: u64,
    },
    /// Open loop, light: one fixed body at a fixed rate over kept-alive connections, one
    /// thread (see `pace.rs`); prints one JSON line of figures.
    Pace {
        /// e.g. http://127.0.0.1:8080/webhooks/linxo
        #[arg(long)]
        url: http::Uri,
        #[arg(long)]
        body_file: std::path::PathBuf,
        /// An extra request header, `Name: value` (repeatable).
        #[arg(long = "header")]
        headers: Vec<String>,
        /// Requests per second.
        #[arg(long)]
        rate: f64,
        /// Kept-alive connections the requests are spread over.
        #[arg(long, default_value_t = 128)]
        connections: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Label for the printed line.
        #[arg(long, default_value = "finhook")]
        target: String,
    },
    /// Posts signed, unique Bridge webhooks and prints one JSON line of figures.
    Load {
        /// e.g. http://127.0.0.1:8080/webhooks/bridge
        #[arg(long)]
        url: String,
        #[arg(long, default_value = "bench-secret")]
        secret: String,
        /// Connections, each sending its next request when the last is answered.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// After the run, read the events back from this broker: every 2xx'd id must be there.
        #[arg(long)]
        brokers: Option<String>,
        /// Also tail the topic during the run to time send → readable (adds consumer load).
        #[arg(long)]
        tail: bool,
        #[arg(long, default_value = "finhook.events")]
        topic: String,
        /// Label for the printed line.
        #[arg(long, default_value = "finhook")]
        target: String,
    },
}

/// Serves a ceiling until SIGTERM or Ctrl-C, then returns, so the process exits normally: an
/// instrumented build (benches/pgo.sh) writes its profile only then.
async fn serve_until_signal(listen: SocketAddr, router: Router) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tokio::select! {
        served = axum::serve(listener, router) => served?,
        () = finhook::shutdown::signal() => {}
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::CeilingHttp { listen } => {
            let router = Router::new().route(
                "/webhooks/{source}",
                post(|_body: Bytes| async { (StatusCode::OK, "{\"status\":\"accepted\"}") }),
            );
            serve_until_signal(listen, router).await?;
        }
        Command::CeilingKafka {
            listen,
            brokers,
            topic,
            envelope_shaped,
            envelope_headers,
            keys,
        } => {
            let producer: FutureProducer = ClientConfig::new()
                .set("bootstrap.servers", &brokers)
                .set("enable.idempotence", "true")
                .set("acks", "all")
                .set("linger.ms", "1")
                .set("compression.type", "lz4")
                .create()?;
            let shape = envelope_shaped.then(|| {
                let mut shape = RecordShape::of_linxo_fixture();
                if let Some(kept) = envelope_headers {
                    shape.headers.truncate(kept);
                }
                shape
            });
            let shared = Arc::new(CeilingKafka {
                producer,
                topic,
                shape,
                keys,
                next_key: AtomicU64::new(0),
            });
            let router = Router::new()
                .route(
                    "/webhooks/{source}",
                    post(
                        |State(ceiling): State<Arc<CeilingKafka>>, body: Bytes| async move {
                            match ceiling.produce(&body).await {
                                Ok(()) => (StatusCode::OK, "{\"status\":\"accepted\"}"),
                                Err(()) => (StatusCode::SERVICE_UNAVAILABLE, "{}"),
                            }
                        },
                    ),
                )
                .with_state(shared);
            serve_until_signal(listen, router).await?;
        }
        Command::Pace {
            url,
            body_file,
            headers,
            rate,
            connections,
            seconds,
            target,
        } => {
            let plan = pace::PacePlan {
                url,
                body: std::fs::read(&body_file)?,
                headers,
                rate,
                connections,
                duration: Duration::from_secs(seconds),
            };
            let figures = tokio::task::spawn_blocking(move || pace::run(plan)).await??;
            println!(
                "{}",
                serde_json::json!({ "target": target, "figures": figures })
            );
        }
        Command::Load {
            url,
            secret,
            concurrency,
            seconds,
            brokers,
            tail,
            topic,
            target,
        } => {
            let figures = load(LoadPlan {
                url,
                secret: Secret::new(secret),
                concurrency,
                duration: Duration::from_secs(seconds),
                brokers,
                tail,
                topic,
            })
            .await?;
            println!(
                "{}",
                serde_json::json!({ "target": target, "figures": figures })
            );
        }
    }
    Ok(())
}

/// Ceiling (b) and (b+): a producer and what each record is made of.
struct CeilingKafka {
    producer: FutureProducer,
    topic: String,
    /// (b+) only.
    shape: Option<RecordShape>,
    /// How many keys the raw-body records take in turn (`--keys`); 0 for none.
    keys: u64,
    next_key: AtomicU64,
}

impl CeilingKafka {
    /// Produces one record for `body` and waits for its acknowledgement.
    async fn produce(&self, body: &[u8]) -> Result<(), ()> {
        let delivery = match &self.shape {
            None => {
                let mut record = FutureRecord::<[u8], [u8]>::to(&self.topic).payload(body);
                let mut key = itoa::Buffer::new();
                if let Some(next) = self.next_key() {
                    record = record.key(key.format(next).as_bytes());
                }
                self.producer.send_result(record).map_err(drop)
            }
            Some(shape) => {
                // The same allocations finhook makes per record: the value, and the headers.
                let value = shape.value_around(body);
                let mut headers = OwnedHeaders::new_with_capacity(20);
                for (key, header) in &shape.headers {
                    headers = headers.insert(Header {
                        key,
                        value: Some(header.as_bytes()),
                    });
                }
                let record = FutureRecord::<[u8], [u8]>::to(&self.topic)
                    .key(shape.key.as_bytes())
                    .payload(&value)
                    .headers(headers);
                self.producer.send_result(record).map_err(drop)
            }
        };
        match delivery?.await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(()),
        }
    }
}

impl CeilingKafka {
    /// The key of the next raw-body record, `--keys` of them in turn; `None` without `--keys`.
    fn next_key(&self) -> Option<u64> {
        (self.keys > 0).then(|| self.next_key.fetch_add(1, Ordering::Relaxed) % self.keys)
    }
}

/// The key, headers and attributes (the envelope's JSON up to `"data":`) of a real envelope.
struct RecordShape {
    key: String,
    headers: Vec<(&'static str, String)>,
    attributes: Vec<u8>,
}

impl RecordShape {
    /// The record's value: the envelope's attributes with `body` as its `data`.
    fn value_around(&self, body: &[u8]) -> Vec<u8> {
        let mut value = Vec::with_capacity(self.attributes.len() + body.len() + 1);
        value.extend_from_slice(&self.attributes);
        value.extend_from_slice(body);
        value.push(b'}');
        value
    }

    /// From the envelope of the Linxo fixture, the richest of the benchmarked bodies.
    fn of_linxo_fixture() -> Self {
        let body =
            include_bytes!("../../../tests/fixtures/linxo/connection-updated-2-accounts.json");
        let facts = linxo::normalize(body).expect("the Linxo fixture reads");
        let origin = Origin::new(
            linxo::Linxo::KIND,
            "linxo",
            Ingress::Webhook,
            time::OffsetDateTime::now_utc(),
        );
        let envelope = Envelope::new(&origin, facts, body, "{}");
        let mut headers = Vec::new();
        envelope.each_kafka_header(AttributeHeaders::All, |key, value| {
            headers.push((key, value.to_owned()))
        });
        let mut attributes = envelope.to_json();
        let closing = b"{}}";
        assert!(attributes.ends_with(closing), "data is spliced in last");
        attributes.truncate(attributes.len() - closing.len());
        Self {
            key: envelope.partitionkey,
            headers,
            attributes,
        }
    }
}

struct LoadPlan {
    url: String,
    secret: Secret,
    concurrency: usize,
    duration: Duration,
    brokers: Option<String>,
    tail: bool,
    topic: String,
}

#[derive(Default)]
struct Results {
    latencies: Vec<Duration>,
    statuses: BTreeMap<u16, u64>,
    accepted_ids: Vec<String>,
}

/// A unique, realistic Bridge event (about 300 bytes).
fn body(sequence: u64) -> Vec<u8> {
    format!(
        r#"{{"type":"item.refreshed","timestamp":{},"content":{{"item_id":{},"user_uuid":"3d2c1b0a-9f8e-4d7c-8b6a-{:012}","status_code":0,"status_code_info":"ok","full_refresh":false,"refresh_trigger":"scheduler","account_types":"payment","authentication_expires_at":"2021-05-08T10:09:50.112Z"}}}}"#,
        1_612_782_590_112u64 + sequence,
        7_000_000 + sequence % 5000,
        sequence % 1000
    )
    .into_bytes()
}

async fn load(plan: LoadPlan) -> anyhow::Result<serde_json::Value> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(plan.concurrency.max(1))
        .timeout(Duration::from_secs(30))
        .build()?;
    let results = Arc::new(Mutex::new(Results::default()));
    let sent_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let sequence = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start_offsets = match &plan.brokers {
        Some(brokers) => Some(high_watermarks(brokers, &plan.topic)?),
        None => None,
    };
    let watcher = match (&plan.brokers, plan.tail) {
        (Some(brokers), true) => Some(spawn_tail(
            brokers.clone(),
            plan.topic.clone(),
            Arc::clone(&sent_at),
            Arc::clone(&stop),
        )),
        _ => None,
    };
    let cpu_before = process_cpu_seconds();
    let started = Instant::now();

    let send_one = {
        let client = client.clone();
        let url = plan.url.clone();
        let secret = plan.secret.clone();
        let results = Arc::clone(&results);
        let sent_at = Arc::clone(&sent_at);
        let sequence = Arc::clone(&sequence);
        move || {
            let client = client.clone();
            let url = url.clone();
            let secret = secret.clone();
            let results = Arc::clone(&results);
            let sent_at = Arc::clone(&sent_at);
            let number = sequence.fetch_add(1, Ordering::Relaxed);
            async move {
                let body = Bytes::from(body(number));
                let signature = bridge::sign(&secret, &body);
                let id = derived_id(bridge::Bridge::KIND, &body);
                let sent = Instant::now();
                sent_at
                    .lock()
                    .expect("never poisoned")
                    .insert(id.clone(), sent);
                let request = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("BridgeApi-Signature", signature);
                let status = match request.body(body).send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let _ = response.bytes().await;
                        status
                    }
                    Err(_) => 0,
                };
                let elapsed = sent.elapsed();
                let mut results = results.lock().expect("never poisoned");
                results.latencies.push(elapsed);
                *results.statuses.entry(status).or_default() += 1;
                if (200..300).contains(&status) {
                    results.accepted_ids.push(id);
                }
            }
        }
    };

    let mut workers = Vec::new();
    for _ in 0..plan.concurrency {
        let send_one = send_one.clone();
        let duration = plan.duration;
        workers.push(tokio::spawn(async move {
            while started.elapsed() < duration {
                send_one().await;
            }
        }));
    }
    for worker in workers {
        worker.await?;
    }
    let elapsed = started.elapsed();
    let generator_cpu = process_cpu_seconds() - cpu_before;

    let accepted: HashSet<String> = results
        .lock()
        .expect("never poisoned")
        .accepted_ids
        .iter()
        .cloned()
        .collect();
    let end_to_end = watcher.map(|watcher| {
        // Let the tail catch up with the last answers before reading its figures.
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, Ordering::Relaxed);
        let mut lags: Vec<Duration> = watcher
            .seen
            .lock()
            .expect("never poisoned")
            .values()
            .copied()
            .collect();
        lags.sort();
        serde_json::json!({
            "p50_ms": millis(percentile(&lags, 0.5)),
            "p99_ms": millis(percentile(&lags, 0.99)),
        })
    });
    let verified = match (&plan.brokers, start_offsets) {
        (Some(brokers), Some(offsets)) => {
            let brokers = brokers.clone();
            let topic = plan.topic.clone();
            let expected = accepted.clone();
            let (found, trimmed) = tokio::task::spawn_blocking(move || {
                read_ids_from(&brokers, &topic, &offsets, &expected)
            })
            .await?;
            let missing = accepted.iter().filter(|id| !found.contains(*id)).count();
            Some(serde_json::json!({
                "accepted": accepted.len(),
                "found": accepted.len() - missing,
                "missing": missing,
                "trimmed_by_broker": trimmed,
            }))
        }
        _ => None,
    };

    let mut results = results.lock().expect("never poisoned");
    results.latencies.sort();
    let answered = results.latencies.len();
    Ok(serde_json::json!({
        "mode": "closed",
        "concurrency": plan.concurrency,
        "seconds": elapsed.as_secs_f64(),
        "answered": answered,
        "answered_per_second": answered as f64 / elapsed.as_secs_f64(),
        "latency_ms": {
            "p50": millis(percentile(&results.latencies, 0.5)),
            "p90": millis(percentile(&results.latencies, 0.9)),
            "p99": millis(percentile(&results.latencies, 0.99)),
            "p999": millis(percentile(&results.latencies, 0.999)),
            "max": millis(results.latencies.last().copied().unwrap_or_default()),
        },
        "statuses": results.statuses,
        "send_to_kafka_ms": end_to_end,
        "verified": verified,
        "generator_cpu_seconds": generator_cpu,
    }))
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * fraction).round() as usize]
}

fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e5).round() / 100.0
}

struct Tail {
    /// Envelope id → send → readable latency.
    seen: Arc<Mutex<HashMap<String, Duration>>>,
}

/// Tails `topic` from its end on a thread; records when each sent id becomes readable.
fn spawn_tail(
    brokers: String,
    topic: String,
    sent_at: Arc<Mutex<HashMap<String, Instant>>>,
    stop: Arc<AtomicBool>,
) -> Tail {
    let seen: Arc<Mutex<HashMap<String, Duration>>> = Arc::default();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let recorded = Arc::clone(&seen);
    std::thread::spawn(move || {
        let consumer = consumer(&brokers, &[("fetch.wait.max.ms", "5")]);
        let mut assignment = TopicPartitionList::new();
        for partition in 0..partition_count(&consumer, &topic, &brokers) {
            let _ = assignment.add_partition_offset(&topic, partition, Offset::End);
        }
        let _ = consumer.assign(&assignment);
        // Let the assignment settle before the load starts.
        let _ = consumer.poll(Duration::from_millis(500));
        let _ = ready_tx.send(());
        while !stop.load(Ordering::Relaxed) {
            let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) else {
                continue;
            };
            let now = Instant::now();
            let id = message
                .headers()
                .and_then(|headers| {
                    use rdkafka::message::Headers;
                    headers
                        .iter()
                        .find(|header| header.key == "ce_id")
                        .and_then(|header| header.value)
                })
                .map(|value| String::from_utf8_lossy(value).into_owned());
            if let Some(id) = id {
                if let Some(sent) = sent_at.lock().expect("never poisoned").get(&id) {
                    recorded
                        .lock()
                        .expect("never poisoned")
                        .insert(id, now - *sent);
                }
            }
        }
    });
    let _ = ready_rx.recv_timeout(Duration::from_secs(15));
    Tail { seen }
}

/// A consumer that reads by explicit assignment, taking whole producer batches (up to 1 MB
/// each) in one fetch: the mock broker does not split a batch larger than the fetch size.
fn consumer(brokers: &str, extra: &[(&str, &str)]) -> BaseConsumer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("group.id", "finhook-bench")
        .set("enable.auto.commit", "false")
        .set("max.partition.fetch.bytes", "52428800")
        .set("fetch.max.bytes", "104857600");
    for (name, value) in extra {
        config.set(*name, *value);
    }
    config.create().expect("a consumer of valid configuration")
}

/// How many partitions `topic` has now (0 when it has none or its metadata cannot be read).
fn partition_count(consumer: &BaseConsumer, topic: &str, brokers: &str) -> i32 {
    finhook::kafka::partition_count(consumer, topic, brokers).unwrap_or(0)
}

/// Each partition's end offset now: where this run's records will start.
fn high_watermarks(brokers: &str, topic: &str) -> anyhow::Result<Vec<(i32, i64)>> {
    let consumer = consumer(brokers, &[]);
    let mut offsets = Vec::new();
    for partition in 0..partition_count(&consumer, topic, brokers) {
        let (_, high) = consumer.fetch_watermarks(topic, partition, Duration::from_secs(10))?;
        offsets.push((partition, high));
    }
    Ok(offsets)
}

/// Reads from `offsets` on until every expected id is seen (or nothing new came for 15 s: a
/// run's records can take longer than any fixed limit to read back); returns the ids, and
/// how many of the run's records the broker had already dropped (its retention: librdkafka's
/// mock cluster keeps about 5 MB per partition) before they could be read.
fn read_ids_from(
    brokers: &str,
    topic: &str,
    offsets: &[(i32, i64)],
    expected: &HashSet<String>,
) -> (HashSet<String>, i64) {
    let consumer = consumer(brokers, &[("auto.offset.reset", "earliest")]);
    // Partitions the topic has now; those it did not have before the run start at the beginning.
    let partitions = partition_count(&consumer, topic, brokers);
    let mut assignment = TopicPartitionList::new();
    let mut trimmed = 0;
    for partition in 0..partitions {
        let start = offsets
            .iter()
            .find(|(known, offset)| *known == partition && *offset >= 0)
            .map(|(_, offset)| *offset);
        if let (Some(start), Ok((low, _))) = (
            start,
            consumer.fetch_watermarks(topic, partition, Duration::from_secs(10)),
        ) {
            trimmed += (low - start).max(0);
        }
        let start = start.map_or(Offset::Beginning, Offset::Offset);
        let _ = assignment.add_partition_offset(topic, partition, start);
    }
    let _ = consumer.assign(&assignment);
    let mut seen = HashSet::new();
    let mut remaining = expected.len();
    let mut last_record = Instant::now();
    let mut read = 0u64;
    while remaining > 0 && last_record.elapsed() < Duration::from_secs(15) {
        let message = match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                last_record = Instant::now();
                message
            }
            Some(Err(error)) => {
                eprintln!("finhook-bench: reading back: {error}");
                continue;
            }
            None => continue,
        };
        read += 1;
        let id = message.headers().and_then(|headers| {
            use rdkafka::message::Headers;
            headers
                .iter()
                .find(|header| header.key == "ce_id")
                .and_then(|header| header.value)
                .map(|value| String::from_utf8_lossy(value).into_owned())
        });
        if let Some(id) = id {
            if expected.contains(&id) && seen.insert(id) {
                remaining -= 1;
            }
        }
    }
    if seen.len() < expected.len() {
        eprintln!("finhook-bench: read back {read} records from {partitions} partitions; {} of {} expected ids found; {trimmed} of the run's records dropped by the broker's retention before reading", seen.len(), expected.len());
    }
    (seen, trimmed)
}

/// CPU seconds (user + system) this process has used.
fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: f64 = fields
        .get(11)
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
    ticks / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ceiling (b+) writes what finhook writes for the Linxo fixture: its key, its headers and
    /// its attributes, with the posted body as `data`.
    #[test]
    fn the_shaped_record_is_the_linxo_envelope_around_the_body() {
        let shape = RecordShape::of_linxo_fixture();
        let value = shape.value_around(br#"{"a": [1, 2]}"#);
        let envelope: serde_json::Value = serde_json::from_slice(&value).unwrap();
        assert_eq!(envelope["data"], serde_json::json!({"a": [1, 2]}));
        assert_eq!(envelope["provider"], "linxo");
        assert_eq!(envelope["partitionkey"], shape.key.as_str());
        assert!(shape.key.starts_with("linxo:"), "{}", shape.key);
        let header = |name: &str| {
            shape
                .headers
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.as_str())
        };
        // Every attribute but `data` travels as a `ce_` header too, beside the content type.
        let attributes = envelope.as_object().unwrap();
        for (name, value) in attributes.iter().filter(|(name, _)| *name != "data") {
            let text = value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_owned);
            assert_eq!(header(&format!("ce_{name}")), Some(text.as_str()), "{name}");
        }
        assert!(header("content-type").is_some());
        // The content type stands where `data` does: one header per member.
        assert_eq!(shape.headers.len(), attributes.len());
    }

    /// `--keys N` names N keys in turn; without it records have no key.
    #[test]
    fn keys_are_taken_in_turn() {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:1")
            .create()
            .unwrap();
        let ceiling = |keys| CeilingKafka {
            producer: producer.clone(),
            topic: "t".to_owned(),
            shape: None,
            keys,
            next_key: AtomicU64::new(0),
        };
        let three = ceiling(3);
        let taken: Vec<_> = (0..5).map(|_| three.next_key()).collect();
        assert_eq!(taken, [Some(0), Some(1), Some(2), Some(0), Some(1)]);
        assert_eq!(ceiling(0).next_key(), None);
    }
}
