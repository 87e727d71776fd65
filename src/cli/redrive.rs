//! `finhook redrive`: dead letters read again with today's configuration. After a mapping fix
//! (a provider's reader, a source's settings), the records of a range of the dead-letter topic
//! are run through the same readers and envelope as live traffic; what now passes is published
//! to its route, what still fails is counted by reason. Nothing is removed from the dead-letter
//! topic, and nothing is written there.
//!
//! Event ids are deterministic (the provider's, or derived from the event's bytes and its
//! provider), so redriving the same range twice publishes records a consumer sees as the same
//! events again: harmless for a deduplicating consumer.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::auth::Verified;
use crate::config::Config;
use crate::envelope::{BatchPart, Origin};
use crate::ingest;
use crate::ingest::Unsplittable;
use crate::metrics::Metrics;
use crate::providers;
use crate::publish::dead_letter;
use crate::publish::Publisher;
use crate::sources::Sources;
use crate::vocabulary::Ingress;

/// Where in each partition of the dead-letter topic reading starts.
#[derive(Debug, Clone, Copy)]
pub enum Start {
    Beginning,
    Offset(i64),
    Time(OffsetDateTime),
}

#[derive(Debug, Clone)]
pub struct Range {
    pub start: Start,
    /// Records written after this are left alone (default: everything there when it starts).
    pub until: Option<OffsetDateTime>,
}

/// What a redrive did, printed at the end (`--json` for this as one JSON object).
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub read: u64,
    /// Published (or, in a dry run, that would be), by canonical type.
    pub redriven: BTreeMap<String, u64>,
    /// Still not readable, by reason.
    pub still_failing: BTreeMap<String, u64>,
    /// Readable now, but Kafka did not take the event, by the publish failure's reason
    /// (`timeout`, `not_ready`, `refused`, ...): the command then exits non-zero.
    pub not_published: BTreeMap<String, u64>,
    /// Not tried, by why: `body_not_kept` (only its digest was stored), `source_not_configured`
    /// (no source of that name and provider in this configuration), `poller_not_configured`
    /// (the same for a queue letter's poller), `not_a_dead_letter`.
    pub skipped: BTreeMap<String, u64>,
    pub dry_run: bool,
}

pub fn run(
    config: &Config,
    brokers: Option<String>,
    range: Range,
    dry_run: bool,
    json: bool,
) -> anyhow::Result<()> {
    let brokers = crate::kafka::command_brokers(config, brokers)?;
    let properties = config.resolve_kafka_properties()?;
    let sources = Sources::from_config(config)?;
    let routing = crate::publish::Routing::new(&config.kafka.routes, &config.kafka.topics.default);
    // Every poller's protection policy by poller name (queue dead letters name their poller).
    let poller_policies: BTreeMap<String, Option<String>> = config
        .pollers
        .iter()
        .map(|(name, poller)| (name.clone(), poller.protect.clone()))
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let publisher = if dry_run {
        None
    } else {
        let metrics = Metrics::new(prometheus::Registry::new())?;
        let publisher = runtime
            .block_on(async { Publisher::new(&config.kafka, &brokers, &properties, metrics) })?;
        // The publisher sends only while its health probe says Kafka is reachable, as in the
        // daemon: run the probe, and wait for the first answer.
        runtime.spawn(
            Arc::clone(&publisher)
                .watch_health(config.kafka.health_interval, std::future::pending()),
        );
        runtime.block_on(async {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while !publisher.health().is_ready() {
                if tokio::time::Instant::now() >= deadline {
                    bail!("kafka at {brokers} did not answer within 30 s");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(())
        })?;
        // A command holds no connection open: it waits for librdkafka's verdict on each event,
        // so that "not published" is true and a second run sends no second copy.
        Some(publisher.until_verdict())
    };
    let mut summary = Summary {
        dry_run,
        ..Summary::default()
    };
    let progress = Progress::new();
    // Each letter is redriven as it is read: a range can hold more letters than memory.
    let read = read_range(
        &brokers,
        &properties,
        &config.kafka.topics.dead_letter,
        &range,
        |in_range| progress.set_length(in_range),
        |record| {
            summary.read += 1;
            let outcomes = redrive_one(
                &record,
                &sources,
                &poller_policies,
                &routing,
                publisher.as_ref(),
                &runtime,
            );
            for outcome in outcomes {
                let (counts, name) = match outcome {
                    Outcome::Redriven(event_type) => (&mut summary.redriven, event_type),
                    Outcome::StillFailing(reason) => (&mut summary.still_failing, reason.into()),
                    Outcome::NotPublished { reason, error } => {
                        // On stderr: a command has no log subscriber, and the summary counts.
                        progress.say(&format!("finhook redrive: {error}"));
                        (&mut summary.not_published, reason.into())
                    }
                    Outcome::Skipped(why) => (&mut summary.skipped, why.into()),
                };
                *counts.entry(name).or_default() += 1;
            }
            progress.advance();
        },
    );
    progress.finish();
    let flushed = publisher
        .as_ref()
        .map_or(Ok(()), |publisher| publisher.flush(Duration::from_secs(30)));
    // The summary first, whatever failed: it says what was done before.
    if json {
        out!("{}", serde_json::to_string(&summary)?)?;
    } else {
        print_summary(&summary)?;
    }
    read.map_err(|error| {
        anyhow::anyhow!(
            "{error:#} (the summary covers the {} letters read before; a redrive run again repeats them under the same ids)",
            summary.read
        )
    })?;
    flushed.context("flushing the redriven events")?;
    let not_published: u64 = summary.not_published.values().sum();
    if not_published > 0 {
        bail!("{not_published} readable events were not published (see not_published); run the redrive again once Kafka takes them");
    }
    Ok(())
}

enum Outcome {
    Redriven(String),
    StillFailing(&'static str),
    /// Read, but Kafka did not take it: the publish failure's reason, and what to tell.
    NotPublished {
        reason: &'static str,
        error: String,
    },
    Skipped(&'static str),
}

/// One dead-letter record as read: its value and headers.
struct DeadRecord {
    value: Vec<u8>,
    headers: BTreeMap<String, Vec<u8>>,
}

impl DeadRecord {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .and_then(|value| std::str::from_utf8(value).ok())
    }
}

fn redrive_one(
    record: &DeadRecord,
    sources: &Sources,
    poller_policies: &BTreeMap<String, Option<String>>,
    routing: &crate::publish::Routing,
    publisher: Option<&Arc<Publisher>>,
    runtime: &tokio::runtime::Runtime,
) -> Vec<Outcome> {
    if record.header("ce_type") != Some(crate::publish::dead_letter::DEAD_LETTER_TYPE) {
        return vec![Outcome::Skipped("not_a_dead_letter")];
    }
    if record.header("ce_bodysize").is_some() {
        return vec![Outcome::Skipped("body_not_kept")];
    }
    let Some(entry) = record.header("ce_provider").and_then(providers::entry) else {
        return vec![Outcome::Skipped("unknown_provider")];
    };
    let kind = entry.kind();
    let source_name = record
        .header("ce_source")
        .and_then(|source| source.strip_prefix(&format!("finhook://{kind}/")))
        .unwrap_or_default()
        .to_owned();
    let received_at = record
        .header("ce_time")
        .and_then(|time| OffsetDateTime::parse(time, &Rfc3339).ok())
        .unwrap_or_else(OffsetDateTime::now_utc);
    let ingress = match record.header("ce_ingress") {
        Some("queue") => Ingress::Queue,
        _ => Ingress::Webhook,
    };
    let origin = Origin {
        user_id: record.header("ce_userid"),
        path_event: record.header("ce_pathevent"),
        batch: dead_letter::batch_part(record.header("ce_batch"), record.header("ce_batchindex")),
        ..Origin::new(kind, &source_name, ingress, received_at)
    };
    // The request's headers, as the dead letter kept them (credentials were never kept).
    let mut request_headers = http::HeaderMap::new();
    for (name, value) in &record.headers {
        let Some(original) = name.strip_prefix("http_") else {
            continue;
        };
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(original.as_bytes()),
            http::HeaderValue::from_bytes(value),
        ) {
            request_headers.append(name, value);
        }
    }
    let raw = record.value.as_slice();
    // The letter is read as live traffic would read it: a webhook body split into its events
    // when its source takes batches, a queue letter (one event, or a whole page that could not
    // be read) as a page.
    let page;
    let (items, fallback) = match ingress {
        Ingress::Webhook => {
            let Some(source) = sources
                .get(&source_name)
                .filter(|source| source.kind == kind)
            else {
                return vec![Outcome::Skipped("source_not_configured")];
            };
            let verified = match origin.path_event {
                Some(event) => Verified::assume_at(raw, &request_headers, event),
                // Authenticated when it was received; it is read, not verified, again.
                None => Verified::assume(raw, &request_headers),
            };
            let read_as = |unsplittable| {
                ingest::read_body(source, &verified, &origin, unsplittable).into_items()
            };
            let items = match origin.batch {
                // One event of a batch, dead-lettered alone, is read alone.
                Some(BatchPart::Event(_)) => vec![ingest::item(
                    &origin,
                    source.read(&verified),
                    raw,
                    &request_headers,
                )],
                // A whole batch that could not be split is split again, and fails again if it
                // still cannot be: while its source takes batches, it is never read as one event.
                Some(BatchPart::Whole) => read_as(Unsplittable::DeadLetter),
                None => read_as(Unsplittable::OneEvent),
            };
            (items, source.protection.as_deref())
        }
        Ingress::Queue => {
            page = queue_page(raw);
            // A provider without queues cannot have written this letter: nothing reads it.
            let Some(items) = crate::poller::page::items(&origin, &page, |item| item) else {
                return vec![Outcome::Skipped("no_queues")];
            };
            // A queue event's poller is named like a source in ce_source. Without it, its
            // protection is unknown: publishing the event unprotected could put in clear what the
            // poller's policy hides.
            let Some(protect) = poller_policies.get(&source_name) else {
                return vec![Outcome::Skipped("poller_not_configured")];
            };
            let policy = protect
                .as_deref()
                .and_then(|name| sources.policy(name))
                .map(|policy| policy.as_ref());
            (items, policy)
        }
    };
    items
        .into_iter()
        .map(|item| {
            // A route that names a policy wins over the source's or poller's, as for live
            // traffic (dry runs included).
            let policy = ingest::choose_policy(
                routing,
                |name| sources.policy(name).map(|policy| policy.as_ref()),
                fallback,
                &item,
            );
            let envelope = match ingest::protect(item, policy, &request_headers) {
                ingest::Item::Event { envelope, .. } => envelope,
                ingest::Item::DeadLetter(letter) => return Outcome::StillFailing(letter.reason),
            };
            let event_type = envelope.event_type.to_owned();
            if let Some(publisher) = publisher {
                if let Err(error) = runtime.block_on(publisher.publish_event(&envelope)) {
                    return Outcome::NotPublished {
                        reason: error.reason(),
                        error: format!("event {} not published: {error}", envelope.id),
                    };
                }
            }
            Outcome::Redriven(event_type)
        })
        .collect()
}

/// A queue dead letter holds one event, or a whole page the poller could not read: either way
/// it is read as a page (an array), as the poller would have.
fn queue_page(raw: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let is_array = raw
        .iter()
        .find(|byte| !byte.is_ascii_whitespace())
        .is_some_and(|byte| *byte == b'[');
    if is_array {
        std::borrow::Cow::Borrowed(raw)
    } else {
        std::borrow::Cow::Owned([b"[".as_slice(), raw, b"]"].concat())
    }
}

/// How long reading waits on partitions that stopped giving records before the end of the
/// range: `IDLE_POLLS` empty polls of `IDLE_POLL`.
const IDLE_POLL: Duration = Duration::from_millis(500);
const IDLE_POLLS: u32 = 60;

/// Hands every record of `topic` in `range` to `visit` as it is read, each partition in offset
/// order, after telling `in_range` how many records the range holds at most.
fn read_range(
    brokers: &str,
    properties: &[(String, String)],
    topic: &str,
    range: &Range,
    in_range: impl FnOnce(u64),
    mut visit: impl FnMut(DeadRecord),
) -> anyhow::Result<()> {
    let consumer: BaseConsumer = crate::kafka::shared_client_config(brokers, properties)
        .set("group.id", "finhook-redrive")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()?;
    let partitions = crate::kafka::partition_count(&consumer, topic, brokers)
        .context("reading the dead-letter topic")?;
    let mut ends = BTreeMap::new();
    let mut at_most = 0i64;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        let (low, high) = consumer.fetch_watermarks(topic, partition, Duration::from_secs(10))?;
        let start = match range.start {
            Start::Beginning => low,
            Start::Offset(offset) => offset.clamp(low, high),
            Start::Time(time) => {
                let mut query = TopicPartitionList::new();
                query.add_partition_offset(
                    topic,
                    partition,
                    Offset::Offset((time.unix_timestamp_nanos() / 1_000_000) as i64),
                )?;
                let found = consumer.offsets_for_times(query, Duration::from_secs(10))?;
                // A broker that cannot look offsets up by time (librdkafka's mock cluster
                // answers "end") is read from the beginning; records written before `since`
                // are skipped as they come.
                match found
                    .find_partition(topic, partition)
                    .map(|element| element.offset())
                {
                    Some(Offset::Offset(offset)) => offset.clamp(low, high),
                    _ => low,
                }
            }
        };
        if start < high {
            ends.insert(partition, high);
            at_most += high - start;
            assignment.add_partition_offset(topic, partition, Offset::Offset(start))?;
        }
    }
    in_range(u64::try_from(at_most).unwrap_or(0));
    if ends.is_empty() {
        return Ok(());
    }
    consumer.assign(&assignment)?;
    let millis = |time: OffsetDateTime| (time.unix_timestamp_nanos() / 1_000_000) as i64;
    let until_millis = range.until.map(millis);
    let since_millis = match range.start {
        Start::Time(time) => Some(millis(time)),
        _ => None,
    };
    let mut idle = 0;
    while !ends.is_empty() && idle < IDLE_POLLS {
        let Some(message) = consumer.poll(IDLE_POLL) else {
            idle += 1;
            continue;
        };
        idle = 0;
        let message = match message {
            Ok(message) => message,
            Err(rdkafka::error::KafkaError::PartitionEOF(partition)) => {
                ends.remove(&partition);
                continue;
            }
            Err(error) => return Err(error.into()),
        };
        let partition = message.partition();
        let Some(&end) = ends.get(&partition) else {
            continue;
        };
        if message.offset() >= end {
            ends.remove(&partition);
            continue;
        }
        let written = message.timestamp().to_millis();
        if until_millis.is_some_and(|until| written.is_some_and(|written| written > until)) {
            ends.remove(&partition);
            continue;
        }
        let last = message.offset() + 1 >= end;
        if since_millis.is_some_and(|since| written.is_some_and(|written| written < since)) {
            if last {
                ends.remove(&partition);
            }
            continue;
        }
        let headers = message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|header| {
                        (
                            header.key.to_owned(),
                            header.value.unwrap_or_default().to_vec(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        visit(DeadRecord {
            value: message.payload().unwrap_or_default().to_vec(),
            headers,
        });
        if last {
            ends.remove(&partition);
        }
    }
    if !ends.is_empty() {
        // Redriving part of a range and calling it done would leave letters behind unnoticed.
        let unfinished: Vec<_> = ends.keys().collect();
        bail!(
            "{topic}: partitions {unfinished:?} gave nothing for {:?} before reaching the end of the range", IDLE_POLL * IDLE_POLLS
        );
    }
    Ok(())
}

/// A progress bar on a terminal, nothing otherwise (pipes and CI logs stay clean).
struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    /// A bar whose length [`Progress::set_length`] gives once the range is known.
    fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "redriving {bar:40} {pos}/{len} dead letters ({eta})",
                )
                .expect("the template is valid"),
            );
            bar
        });
        Self(bar)
    }

    fn set_length(&self, total: u64) {
        if let Some(bar) = &self.0 {
            bar.set_length(total);
        }
    }

    fn advance(&self) {
        if let Some(bar) = &self.0 {
            bar.inc(1);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }

    /// Writes `line` on stderr without garbling the bar.
    fn say(&self, line: &str) {
        match &self.0 {
            Some(bar) => bar.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }
}

fn print_summary(summary: &Summary) -> std::io::Result<()> {
    let list = |counts: &BTreeMap<String, u64>| {
        counts
            .iter()
            .map(|(name, count)| format!("{name} {count}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let total = |counts: &BTreeMap<String, u64>| counts.values().sum::<u64>();
    out!("dead letters read: {}", summary.read)?;
    out!(
        "{}: {} ({})",
        if summary.dry_run {
            "would be redriven (dry run)"
        } else {
            "redriven"
        },
        total(&summary.redriven),
        list(&summary.redriven)
    )?;
    out!(
        "still failing: {} ({})",
        total(&summary.still_failing),
        list(&summary.still_failing)
    )?;
    out!(
        "not published: {} ({})",
        total(&summary.not_published),
        list(&summary.not_published)
    )?;
    out!(
        "skipped: {} ({})",
        total(&summary.skipped),
        list(&summary.skipped)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::dead_letter::DEAD_LETTER_TYPE;

    /// A dead letter of the poller `oxlin`'s queue for user `u1`, holding `value`.
    fn queue_letter(value: &[u8]) -> DeadRecord {
        let headers = [
            ("ce_type", DEAD_LETTER_TYPE),
            ("ce_provider", "linxo"),
            ("ce_source", "finhook://linxo/oxlin"),
            ("ce_ingress", "queue"),
            ("ce_userid", "u1"),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.as_bytes().to_vec()))
        .collect();
        DeadRecord {
            value: value.to_vec(),
            headers,
        }
    }

    /// A letter with these headers (name, value) holding `value`.
    fn letter(headers: &[(&str, &str)], value: &[u8]) -> DeadRecord {
        DeadRecord {
            value: value.to_vec(),
            headers: headers
                .iter()
                .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
                .collect(),
        }
    }

    /// A poller `oxlin` (whose queue letters [`queue_letter`] makes), unprotected.
    use crate::config::tests::POLLER as OXLIN_POLLER;

    /// Dry runs (no publisher) of one letter, with the poller `oxlin` configured: what each of
    /// its events became.
    fn dry_run(letter: &DeadRecord) -> Vec<Outcome> {
        dry_run_with(OXLIN_POLLER, letter)
    }

    /// The same, with `toml` over the embedded defaults.
    fn dry_run_with(toml: &str, letter: &DeadRecord) -> Vec<Outcome> {
        let config = Config::over_defaults(toml).unwrap();
        let sources = Sources::from_config(&config).unwrap();
        let routing =
            crate::publish::Routing::new(&config.kafka.routes, &config.kafka.topics.default);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let pollers = config
            .pollers
            .iter()
            .map(|(name, poller)| (name.clone(), poller.protect.clone()))
            .collect();
        redrive_one(letter, &sources, &pollers, &routing, None, &runtime)
    }

    #[test]
    fn a_queue_letter_is_read_as_a_page_whether_it_holds_one_event_or_all_of_them() {
        let page: &[u8] = include_bytes!("../../tests/fixtures/oxlin-queue/poll-page-1.json");
        let events: Vec<serde_json::Value> = serde_json::from_slice(page).unwrap();
        assert!(events.len() > 1);

        let whole_page = dry_run(&queue_letter(page));
        assert_eq!(whole_page.len(), events.len());
        assert!(whole_page
            .iter()
            .all(|outcome| matches!(outcome, Outcome::Redriven(_))));

        let one_event = dry_run(&queue_letter(events[0].to_string().as_bytes()));
        assert!(matches!(one_event.as_slice(), [Outcome::Redriven(_)]));
    }

    #[test]
    fn a_queue_letter_of_a_poller_missing_from_the_configuration_is_skipped() {
        // Its poller's protection is unknown: published as read, it could put in clear what
        // the poller's policy hides.
        let page: &[u8] = include_bytes!("../../tests/fixtures/oxlin-queue/poll-page-1.json");
        let outcomes = dry_run_with("", &queue_letter(page));
        assert_eq!(names(&outcomes), ["skipped poller_not_configured"]);
    }

    /// Outcomes as text, to compare whole lists.
    fn names(outcomes: &[Outcome]) -> Vec<String> {
        outcomes
            .iter()
            .map(|outcome| match outcome {
                Outcome::Redriven(event_type) => format!("redriven {event_type}"),
                Outcome::StillFailing(reason) => format!("still_failing {reason}"),
                Outcome::NotPublished { reason, .. } => format!("not_published {reason}"),
                Outcome::Skipped(why) => format!("skipped {why}"),
            })
            .collect()
    }

    #[test]
    fn letters_that_cannot_be_redriven_are_skipped_with_their_reason() {
        fn webhook<'a>(provider: &'a str, source: &'a str) -> Vec<(&'a str, &'a str)> {
            vec![
                ("ce_type", DEAD_LETTER_TYPE),
                ("ce_provider", provider),
                ("ce_source", source),
                ("ce_ingress", "webhook"),
            ]
        }
        let not_a_letter = letter(&[("ce_type", "io.finhook.connection.updated")], b"{}");
        let mut digest_only = webhook("bridge", "finhook://bridge/main");
        digest_only.push(("ce_bodysize", "2000000"));
        let cases = [
            (not_a_letter, "skipped not_a_dead_letter"),
            (letter(&digest_only, b""), "skipped body_not_kept"),
            (
                letter(&webhook("nope", "finhook://nope/x"), b"{}"),
                "skipped unknown_provider",
            ),
            // A queue letter naming a provider without queues.
            (
                letter(
                    &[
                        ("ce_type", DEAD_LETTER_TYPE),
                        ("ce_provider", "bridge"),
                        ("ce_source", "finhook://bridge/main"),
                        ("ce_ingress", "queue"),
                    ],
                    b"[{}]",
                ),
                "skipped no_queues",
            ),
            // The default configuration has no `main` Bridge source.
            (
                letter(&webhook("bridge", "finhook://bridge/main"), b"{}"),
                "skipped source_not_configured",
            ),
        ];
        for (letter, expected) in cases {
            assert_eq!(names(&dry_run(&letter)), vec![expected.to_owned()]);
        }
    }

    #[test]
    fn a_webhook_batch_letter_is_split_and_each_event_read_again() {
        let relay = "[sources.relay]\nkind = \"hmac\"\nsecret = \"s\"\nheader = \"X-Relay-Signature\"\nevents_path = \"events\"\n";
        let relay_letter = |batch: Option<&str>, value: &[u8]| {
            let mut headers = vec![
                ("ce_type", DEAD_LETTER_TYPE),
                ("ce_provider", "hmac"),
                ("ce_source", "finhook://hmac/relay"),
                ("ce_ingress", "webhook"),
            ];
            headers.extend(batch.map(|batch| ("ce_batch", batch)));
            letter(&headers, value)
        };
        let batch: &[u8] = br#"{"events": [{"type": "a"}, {"kind": "no type"}, {"type": "b"}]}"#;
        let split = [
            "redriven io.finhook.unmapped",
            "still_failing missing_field",
            "redriven io.finhook.unmapped",
        ];
        assert_eq!(
            names(&dry_run_with(relay, &relay_letter(None, batch))),
            split
        );
        assert_eq!(
            names(&dry_run_with(relay, &relay_letter(Some("whole"), batch))),
            split
        );
        // One event of such a batch, dead-lettered alone, is read as that event, even when it
        // would split itself.
        let event: &[u8] = br#"{"type": "a", "events": [{"type": "b"}, {"type": "c"}]}"#;
        assert_eq!(
            names(&dry_run_with(relay, &relay_letter(Some("event"), event))),
            ["redriven io.finhook.unmapped"]
        );
        // A whole batch that could not be split is never read as one event, though this body
        // reads as one: it fails again as it did live.
        let unsplittable: &[u8] = br#"{"type": "a", "events": "not a list"}"#;
        assert_eq!(
            names(&dry_run_with(
                relay,
                &relay_letter(Some("whole"), unsplittable)
            )),
            ["still_failing missing_field"]
        );
        // A letter written before batch parts were marked: one event when it does not split.
        assert_eq!(
            names(&dry_run_with(
                relay,
                &relay_letter(None, br#"{"type": "a"}"#)
            )),
            ["redriven io.finhook.unmapped"]
        );
        // Without `events_path` the same batch is one event, which has no type; a letter of a
        // whole batch is then read as one event too: the source reads it as it is configured now.
        let single = relay.replace("events_path = \"events\"\n", "");
        assert_eq!(
            names(&dry_run_with(&single, &relay_letter(None, batch))),
            ["still_failing missing_field"]
        );
        assert_eq!(
            names(&dry_run_with(
                &single,
                &relay_letter(Some("whole"), unsplittable)
            )),
            ["redriven io.finhook.unmapped"]
        );
    }
}
