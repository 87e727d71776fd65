//! The queue poller end to end: a scripted Oxlin over HTTP, the real app, the mock cluster.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{fixture, EnvelopeSchema};
use crate::fake_oxlin::{users_file, users_toml, FakeOxlin, Step};
use crate::helpers::{read_topic, spawn_app, TestApp};

const WAIT: Duration = Duration::from_secs(15);

fn page(name: &str) -> Step {
    Step::Page(fixture(&format!("oxlin-queue/{name}")))
}

async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn events(app: &TestApp, expected: usize) -> Vec<Value> {
    let records = read_topic(&app.bootstrap, app.default_topic(), expected, WAIT).await;
    for record in &records {
        assert_eq!(
            record.key.as_deref(),
            Some(record.header("ce_partitionkey"))
        );
    }
    records.iter().map(|record| record.json()).collect()
}

fn ids(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|event| event["id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn fixture_pages_after_empty_polls_are_published_in_order_keyed_by_connection() {
    let oxlin = FakeOxlin::start().await;
    oxlin.script(
        "321",
        vec![
            Step::Empty,
            Step::Empty,
            page("poll-page-1.json"),
            page("poll-page-2-wrapped.json"),
            page("poll-page-action-required.json"),
        ],
    );
    let app =
        spawn_app(&(oxlin.poller_toml("oxlin", "finhook-test") + &users_toml("oxlin", &["321"])))
            .await;
    let published = events(&app, 9).await;
    assert_eq!(
        ids(&published),
        [
            "q-0001", "q-0002", "q-0003", "q-0004", "q-0100", "q-0101", "q-0102", "q-0103",
            "q-0104"
        ]
    );
    let schema = EnvelopeSchema::load();
    for event in &published {
        schema.assert_valid(event, event["id"].as_str().unwrap());
        assert_eq!(event["ingress"], "queue");
        assert_eq!(event["provider"], "linxo");
        assert_eq!(event["source"], "finhook://linxo/oxlin");
        assert_eq!(event["userid"], "321");
        assert_eq!(event["partitionkey"], "linxo:123");
    }
    let types: Vec<&str> = published
        .iter()
        .map(|event| event["type"].as_str().unwrap())
        .collect();
    assert_eq!(types[2], "io.finhook.connection.action_required");
    assert_eq!(types[3], "io.finhook.connection.sync.succeeded");
    assert_eq!(published[0]["providertype"], "SYNC_STARTED");
    assert_eq!(
        published[0]["type"], "io.finhook.unmapped",
        "unmapped events still publish"
    );
    let reasons: Vec<&str> = published[4..]
        .iter()
        .map(|event| event["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "AUTH_FAILED",
            "TOKEN_EXPIRED",
            "PASSWORD_CHANGE_REQUIRED",
            "USER_ACTION_REQUIRED",
            "CHALLENGE_REQUIRED"
        ]
    );
    oxlin.with(|state| {
        assert_eq!(state.token_requests.len(), 1, "the token is cached");
        assert_eq!(state.token_requests[0]["client_id"], "finhook-test");
        assert_eq!(state.subscriptions.len(), 1);
    });
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"finhook_poll_users{poller="oxlin"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"finhook_polls_total{outcome="events",poller="oxlin"} 3"#),
        "{metrics}"
    );
    assert!(metrics.contains(
        r#"finhook_events_published_total{ingress="queue",provider="linxo",type="io.finhook.connection.action_required"} 6"#
    ));
}

#[tokio::test]
async fn unreadable_events_go_to_the_dead_letter_topic_and_the_rest_publishes() {
    let oxlin = FakeOxlin::start().await;
    let mixed =
        br#"[{"id":"no-name"}, 42, {"id":"ok","name":"SYNC_ALL_SUCCESS","resource":{"id":"9"}}]"#;
    oxlin.script(
        "321",
        vec![
            Step::Page(mixed.to_vec()),
            Step::Page(b"{not json".to_vec()),
        ],
    );
    let app = spawn_app(&(oxlin.poller_toml("oxlin", "t") + &users_toml("oxlin", &["321"]))).await;
    let published = events(&app, 1).await;
    assert_eq!(ids(&published), ["ok"]);
    let letters = read_topic(&app.bootstrap, app.dead_letter_topic(), 3, WAIT).await;
    let raw: Vec<&[u8]> = letters
        .iter()
        .map(|letter| letter.value.as_slice())
        .collect();
    assert_eq!(letters.len(), 3, "{raw:?}");
    assert!(raw.contains(&&br#"{"id":"no-name"}"#[..]));
    assert!(raw.contains(&&b"42"[..]));
    assert!(
        raw.contains(&&b"{not json"[..]),
        "an unreadable page is kept whole"
    );
    assert!(letters
        .iter()
        .all(|letter| letter.header("ce_ingress") == "queue"));
    let schema = crate::common::DeadLetterSchema::load();
    for letter in &letters {
        schema.assert_valid(&letter.headers);
    }
}

#[tokio::test]
async fn gone_queue_is_subscribed_again_and_nothing_is_lost() {
    let oxlin = FakeOxlin::start().await;
    oxlin.script(
        "321",
        vec![
            page("poll-page-1.json"),
            Step::Status(404),
            page("poll-page-2-wrapped.json"),
        ],
    );
    let app = spawn_app(&(oxlin.poller_toml("oxlin", "t") + &users_toml("oxlin", &["321"]))).await;
    let published = events(&app, 4).await;
    assert_eq!(ids(&published), ["q-0001", "q-0002", "q-0003", "q-0004"]);
    oxlin.with(|state| {
        assert_eq!(state.subscriptions.len(), 2);
        let last = state.polls.last().unwrap();
        assert_eq!(last.queue, "q2", "polling goes on on the new queue");
    });
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"finhook_poll_resubscriptions_total{poller="oxlin"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_request_timeout_keeps_the_queue() {
    // 408 is a gateway's or the server's timeout, not a gone queue: the queue is polled again.
    let oxlin = FakeOxlin::start().await;
    oxlin.script("321", vec![Step::Status(408), page("poll-page-1.json")]);
    let app = spawn_app(&(oxlin.poller_toml("oxlin", "t") + &users_toml("oxlin", &["321"]))).await;
    let published = events(&app, 3).await;
    assert_eq!(ids(&published), ["q-0001", "q-0002", "q-0003"]);
    oxlin.with(|state| {
        assert_eq!(state.subscriptions.len(), 1, "the live queue was kept");
    });
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"finhook_polls_total{outcome="timeout",poller="oxlin"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn refused_token_is_renewed_once() {
    let oxlin = FakeOxlin::start().await;
    oxlin.script(
        "321",
        vec![Step::Status(401), page("poll-page-2-wrapped.json")],
    );
    let app = spawn_app(&(oxlin.poller_toml("oxlin", "t") + &users_toml("oxlin", &["321"]))).await;
    let published = events(&app, 1).await;
    assert_eq!(ids(&published), ["q-0004"]);
    oxlin.with(|state| {
        assert_eq!(state.token_requests.len(), 2);
        assert_eq!(state.subscriptions.len(), 1, "the queue outlives the token");
    });
    assert!(app
        .metrics()
        .await
        .contains(r#"finhook_poll_token_refreshes_total{outcome="ok",poller="oxlin"} 2"#));
}

/// While Kafka is down, the poller takes nothing off the queue (a page held in memory is lost
/// with a restart; on the queue, events wait safely until it nears expiry), then publishes
/// everything once, in order.
#[tokio::test]
async fn kafka_outage_leaves_the_events_on_the_queue_then_publishes_everything_once_in_order() {
    let oxlin = FakeOxlin::start().await;
    oxlin.script(
        "321",
        vec![
            Step::Gate,
            page("poll-page-1.json"),
            page("poll-page-2-wrapped.json"),
        ],
    );
    let app = spawn_app(&(oxlin.poller_toml("oxlin", "t") + &users_toml("oxlin", &["321"]))).await;
    let kafka = app.kafka.clone().unwrap();
    eventually("first polls", || oxlin.polls_of("321") > 0).await;
    kafka.broker_down(1).unwrap();
    app.wait_ready(false).await;
    // A poll under way when readiness turned may still finish (the gate answers it 204).
    tokio::time::sleep(Duration::from_millis(300)).await;
    oxlin.release();
    let polls_while_down = oxlin.polls_of("321");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        oxlin.polls_of("321"),
        polls_while_down,
        "no GET while Kafka is down (the interval is 100 ms)"
    );
    assert!(app
        .metrics()
        .await
        .contains(r#"finhook_poll_events_held{poller="oxlin"} 0"#));

    kafka.broker_up(1).unwrap();
    let published = events(&app, 4).await;
    assert_eq!(
        ids(&published),
        ["q-0001", "q-0002", "q-0003", "q-0004"],
        "exactly once, in order"
    );
    assert!(app
        .metrics()
        .await
        .contains(r#"finhook_poll_events_held{poller="oxlin"} 0"#));
}

/// A poller waits for librdkafka's verdict on each event, not for `kafka.ack_timeout`: while
/// Kafka keeps refusing for a while (a partition short of in-sync replicas, longer than the
/// ack timeout) it sends no second copy, so each event lands once. Before, each timed-out wait
/// was followed by another copy, and librdkafka delivered them all.
#[tokio::test]
async fn events_kafka_is_slow_to_take_are_published_once() {
    let oxlin = FakeOxlin::start().await;
    oxlin.script("321", vec![Step::Gate, page("poll-page-1.json")]);
    let toml = oxlin.poller_toml("oxlin", "t")
        + &users_toml("oxlin", &["321"])
        + "\n[kafka]\nack_timeout = \"1s\"\n";
    let app = spawn_app(&toml).await;
    eventually("first polls", || oxlin.polls_of("321") > 0).await;
    app.fail_next_produces(vec![
            rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS;
            8
        ]);
    oxlin.release();
    assert_eq!(events(&app, 3).await.len(), 3, "published");
    // A fourth record would be a second copy: whatever else was on its way lands meanwhile.
    let records = read_topic(
        &app.bootstrap,
        app.default_topic(),
        4,
        Duration::from_secs(6),
    )
    .await;
    let mut ids: Vec<String> = records
        .iter()
        .map(|record| record.header("ce_id").to_owned())
        .collect();
    ids.sort();
    assert_eq!(ids, ["q-0001", "q-0002", "q-0003"], "each event once");
}

/// Events taken off a provider's queue are held while the producer fails fatally, and the
/// replacement producer publishes them: a restart would have lost them.
#[tokio::test]
async fn events_held_when_the_producer_fails_fatally_are_published_by_its_replacement() {
    let oxlin = FakeOxlin::start().await;
    oxlin.script("321", vec![Step::Gate, page("poll-page-1.json")]);
    let toml = oxlin.poller_toml("oxlin", "t") + &users_toml("oxlin", &["321"]);
    let app = spawn_app(&toml).await;
    eventually("first polls", || oxlin.polls_of("321") > 0).await;
    app.fail_next_produces(vec![
        rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
    ]);
    oxlin.release();
    let published = events(&app, 3).await;
    let mut published = ids(&published);
    published.sort();
    published.dedup();
    assert_eq!(published, ["q-0001", "q-0002", "q-0003"]);
    assert!(app
        .metrics()
        .await
        .contains("finhook_kafka_producer_replacements_total 1"));
}

#[tokio::test]
async fn sighup_adds_and_removes_users() {
    let oxlin = FakeOxlin::start().await;
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("users.toml");
    std::fs::write(&path, users_file(&["alice".to_owned()])).unwrap();
    let toml = format!(
        "{}\nreload_interval = \"1h\"\nusers_file = {:?}\n",
        oxlin.poller_toml("oxlin", "t"),
        path
    );
    let app = spawn_app(&toml).await;
    eventually("alice polled", || oxlin.polls_of("alice") > 0).await;

    std::fs::write(&path, users_file(&["bob".to_owned()])).unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    eventually("bob polled", || oxlin.polls_of("bob") > 0).await;
    // Alice's loop stops; at most a poll already in flight completes.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let alice = oxlin.polls_of("alice");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(oxlin.polls_of("alice"), alice, "alice is no longer polled");
    assert!(app
        .metrics()
        .await
        .contains(r#"finhook_poll_users{poller="oxlin"} 1"#));
}

#[tokio::test]
async fn a_user_whose_password_changed_keeps_polling_its_queue() {
    let oxlin = FakeOxlin::start().await;
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("users.toml");
    std::fs::write(&path, users_file(&["alice".to_owned()])).unwrap();
    let toml = format!(
        "{}\nreload_interval = \"100ms\"\nusers_file = {:?}\n",
        oxlin.poller_toml("oxlin", "t"),
        path
    );
    let app = spawn_app(&toml).await;
    eventually("alice polled", || oxlin.polls_of("alice") > 0).await;
    let queue = oxlin.with(|state| state.polls[0].queue.clone());
    // What reaches her queue around the change must still be fetched.
    oxlin.script("alice", vec![page("poll-page-1.json")]);
    std::fs::write(
        &path,
        "[[users]]\nid = \"alice\"\nusername = \"alice\"\npassword = \"rotated-pw-alice\"\n",
    )
    .unwrap();
    eventually("a token under the new password", || {
        oxlin.with(|state| {
            state
                .token_requests
                .iter()
                .any(|request| request["password"] == "rotated-pw-alice")
        })
    })
    .await;
    let published = events(&app, 3).await;
    assert_eq!(published.len(), 3, "the page on her queue was published");
    let polls_before = oxlin.polls_of("alice");
    eventually("polled again", || {
        oxlin.polls_of("alice") > polls_before + 1
    })
    .await;
    assert_eq!(
        oxlin.subscriptions_of("alice"),
        1,
        "the new loop resumed her queue rather than subscribing a new one"
    );
    oxlin.with(|state| {
        for poll in &state.polls {
            assert_eq!(poll.queue, queue, "every poll on the one queue");
        }
    });
}

#[tokio::test]
async fn a_changed_users_file_is_picked_up_without_a_signal() {
    let oxlin = FakeOxlin::start().await;
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("users.toml");
    std::fs::write(&path, users_file(&["carol".to_owned()])).unwrap();
    let toml = format!(
        "{}\nreload_interval = \"100ms\"\nusers_file = {:?}\n",
        oxlin.poller_toml("oxlin", "t"),
        path
    );
    let app = spawn_app(&toml).await;
    eventually("carol polled", || oxlin.polls_of("carol") > 0).await;
    std::fs::write(&path, users_file(&["carol".to_owned(), "dave".to_owned()])).unwrap();
    eventually("dave polled", || oxlin.polls_of("dave") > 0).await;
    // A broken file keeps the current users.
    std::fs::write(&path, "[[users]]\nid = ").unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let carol = oxlin.polls_of("carol");
    eventually("carol still polled", || oxlin.polls_of("carol") > carol).await;
    assert!(app
        .metrics()
        .await
        .contains(r#"finhook_poll_users{poller="oxlin"} 2"#));
}

#[tokio::test]
async fn shutdown_stops_polling_and_exits() {
    let oxlin = FakeOxlin::start().await;
    let app = spawn_app(&(oxlin.poller_toml("oxlin", "t") + &users_toml("oxlin", &["321"]))).await;
    eventually("polled", || oxlin.polls_of("321") > 0).await;
    app.stop().await.expect("clean stop");
    let polls = oxlin.polls_of("321");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(oxlin.polls_of("321"), polls);
}

/// The longest run of polls that followed each other at once (less than half the 100 ms
/// interval apart).
fn longest_immediate_run(times: &[Instant]) -> usize {
    let mut longest = 0;
    let mut run = 0;
    for pair in times.windows(2) {
        if pair[1] - pair[0] < Duration::from_millis(50) {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    longest
}

#[tokio::test]
async fn empty_pages_wait_the_interval_like_an_empty_queue() {
    let oxlin = FakeOxlin::start().await;
    let empty_pages = (0..30)
        .map(|index| match index % 3 {
            0 => Step::Page(b"[]".to_vec()),
            1 => Step::Page(br#"{"events": []}"#.to_vec()),
            _ => Step::Page(b" \n".to_vec()),
        })
        .collect();
    oxlin.script("321", empty_pages);
    let app = spawn_app(&(oxlin.poller_toml("oxlin", "t") + &users_toml("oxlin", &["321"]))).await;
    eventually("polls", || oxlin.polls_of("321") >= 5).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let times = oxlin.poll_times("321");
    assert_eq!(
        longest_immediate_run(&times),
        0,
        "an empty page is followed by the interval, never an immediate poll"
    );
    // 100 ms ± 10 %: nowhere near the hundreds of polls a hot loop makes.
    let span = *times.last().unwrap() - times[0];
    assert!(
        times.len() as u128 <= span.as_millis() / 85 + 2,
        "{} polls in {span:?}",
        times.len()
    );
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"finhook_polls_total{outcome="events",poller="oxlin"} 0"#),
        "empty pages count as empty polls: {metrics}"
    );
    let empty = metrics
        .lines()
        .find(|line| line.starts_with(r#"finhook_polls_total{outcome="empty",poller="oxlin"}"#))
        .and_then(|line| line.rsplit(' ').next()?.parse::<usize>().ok())
        .unwrap();
    assert!(
        empty >= times.len() - 1,
        "{empty} empty polls of {}",
        times.len()
    );
}

#[tokio::test]
async fn a_full_queue_is_drained_with_a_bounded_run_of_immediate_polls() {
    let oxlin = FakeOxlin::start().await;
    let pages = (0..25)
        .map(|index| {
            Step::Page(
                serde_json::to_vec(&serde_json::json!([{
                    "id": format!("d-{index:02}"),
                    "name": "SYNC_STARTED",
                    "event_status": "RUNNING",
                    "resource_type": "CONNECTIONS",
                    "resource": { "id": "c1" }
                }]))
                .unwrap(),
            )
        })
        .collect();
    oxlin.script("321", pages);
    let app = spawn_app(&(oxlin.poller_toml("oxlin", "t") + &users_toml("oxlin", &["321"]))).await;
    let published = events(&app, 25).await;
    let expected: Vec<String> = (0..25).map(|index| format!("d-{index:02}")).collect();
    assert_eq!(ids(&published), expected, "all, once, in order");
    let run = longest_immediate_run(&oxlin.poll_times("321"));
    assert!(
        (5..=10).contains(&run),
        "pages are drained at once, but at most 10 polls in a row: {run}"
    );
}

#[tokio::test]
async fn a_user_added_while_running_is_subscribed_and_polled_at_once() {
    let oxlin = FakeOxlin::start().await;
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("users.toml");
    std::fs::write(&path, users_file(&["alice".to_owned()])).unwrap();
    // A long interval: a jittered first poll would come seconds, even a minute, later.
    let poller = oxlin
        .poller_toml("oxlin", "t")
        .replace(r#"interval = "100ms""#, r#"interval = "1m""#);
    let toml = format!("{poller}\nreload_interval = \"100ms\"\nusers_file = {path:?}\n");
    let _app = spawn_app(&toml).await;
    // Users present at start subscribe at once too; their first polls are spread.
    eventually("alice subscribed", || oxlin.subscriptions_of("alice") > 0).await;

    std::fs::write(&path, users_file(&["alice".to_owned(), "bob".to_owned()])).unwrap();
    let added = Instant::now();
    eventually("bob polled", || oxlin.polls_of("bob") > 0).await;
    assert_eq!(oxlin.subscriptions_of("bob"), 1);
    assert!(
        added.elapsed() < Duration::from_secs(3),
        "bob waited {:?} (reload interval 100 ms)",
        added.elapsed()
    );
}

#[tokio::test]
async fn a_location_naming_the_versioned_path_is_not_prefixed_twice() {
    let oxlin = FakeOxlin::start().await;
    oxlin.set_location_prefix("/v2.1");
    oxlin.script("321", vec![page("poll-page-2-wrapped.json")]);
    let app = spawn_app(&(oxlin.poller_toml("oxlin", "t") + &users_toml("oxlin", &["321"]))).await;
    let published = events(&app, 1).await;
    assert_eq!(ids(&published), ["q-0004"]);
    assert_eq!(
        oxlin.subscriptions_of("321"),
        1,
        "no 404, no resubscription"
    );
}

#[tokio::test]
async fn an_event_kafka_can_never_take_is_dead_lettered_and_the_queue_goes_on() {
    let oxlin = FakeOxlin::start().await;
    let event = |id: &str, code: &str| {
        serde_json::json!({
            "id": id, "type": code, "event_status": "RUNNING",
            "resource_type": "CONNECTIONS", "resource": { "id": "c1" }
        })
    };
    let huge = event("big", &"X".repeat(24_000));
    let huge_bytes = serde_json::to_vec(&huge).unwrap();
    oxlin.script(
        "321",
        vec![
            Step::Page(
                serde_json::to_vec(&serde_json::json!([
                    event("a", "SYNC_STARTED"),
                    huge,
                    event("b", "SYNC_STARTED")
                ]))
                .unwrap(),
            ),
            Step::Page(serde_json::to_vec(&serde_json::json!([event("c", "SYNC_ENDED")])).unwrap()),
        ],
    );
    let config = format!(
        "[server]\nbody_limit_bytes = 40000\n[kafka.properties]\n\"message.max.bytes\" = 60000\n{}{}",
        oxlin.poller_toml("oxlin", "t"),
        users_toml("oxlin", &["321"])
    );
    let app = spawn_app(&config).await;
    let published = events(&app, 3).await;
    assert_eq!(ids(&published), ["a", "b", "c"], "the queue is not jammed");
    let letters = read_topic(&app.bootstrap, app.dead_letter_topic(), 1, WAIT).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].header("ce_reason"), "record_too_large");
    assert_eq!(letters[0].header("ce_ingress"), "queue");
    // Diverted after it was read, the letter still says whose queue it came from: redrive
    // needs the user to read it again.
    assert_eq!(letters[0].header("ce_userid"), "321");
    crate::common::DeadLetterSchema::load().assert_valid(&letters[0].headers);
    assert_eq!(letters[0].value, huge_bytes, "the event's raw JSON");
}

/// A poller's `protect` policy applies to the events it polls, as a source's does.
#[tokio::test]
async fn a_pollers_policy_protects_its_queue_events() {
    let oxlin = FakeOxlin::start().await;
    oxlin.script(
        "321",
        vec![Step::Page(
            br#"[{"id":"q-9","name":"SYNC_ALL_SUCCESS","resource":{"id":"123","channels":[],
                "owner":{"name":"Jean Dupont"},"iban":"FR7612345678901234567890123"}}]"#
                .to_vec(),
        )],
    );
    let toml = oxlin.poller_toml("oxlin", "t")
        + "protect = \"banking\"\n"
        + &users_toml("oxlin", &["321"])
        + "\n[protection.policies.banking]\npresets = [\"iban\", \"owner_name\"]\npreset_action = \"redact\"\n";
    let app = spawn_app(&toml).await;
    let published = events(&app, 1).await;
    assert_eq!(published.len(), 1);
    assert_eq!(published[0]["dataprotection"], "banking");
    assert_eq!(published[0]["data"]["resource"]["iban"], "[redacted]");
    assert_eq!(
        published[0]["data"]["resource"]["owner"]["name"],
        "[redacted]"
    );
    assert_eq!(published[0]["type"], "io.finhook.connection.sync.succeeded");
}
