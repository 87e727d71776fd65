//! Registry mode in process: users put on the registry topic are polled, changed, disabled
//! and removed within seconds; unreadable records are skipped and counted; queue state is saved.

use std::time::{Duration, Instant};

use finhook::config::UserCredentials;
use finhook::keyring::Keyring;
use finhook::registry::admin::RegistryKafka;
use finhook::registry::record::{self, RegisteredUser};
use finhook::registry::state::QueueState;
use finhook::secret::Secret;

use crate::fake_oxlin::{FakeOxlin, Step};
use crate::helpers::{read_topic, spawn_app, TestApp};

pub const REGISTRY_KEY: &str = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=";

fn registry_toml(oxlin: &FakeOxlin) -> String {
    format!(
        r#"
        [registry]
        enabled = true
        partitions = 4
        session_timeout = "3s"
        state_interval = "500ms"
        key_id = "k1"
        key = "{REGISTRY_KEY}"
        {}
        "#,
        oxlin.poller_toml("oxlin", "t")
    )
}

fn keyring() -> Keyring {
    Keyring::new("k1", &Secret::new(REGISTRY_KEY)).unwrap()
}

/// A user of the fake Oxlin (password `pw-{id}`).
fn user(id: &str) -> RegisteredUser {
    RegisteredUser {
        id: id.to_owned(),
        poller: "oxlin".to_owned(),
        enabled: true,
        topics: None,
        queue: None,
        credentials: UserCredentials::Password {
            username: Secret::new(id),
            password: Secret::new(format!("pw-{id}")),
        },
    }
}

fn kafka(app: &TestApp) -> RegistryKafka {
    RegistryKafka {
        bootstrap: app.bootstrap.clone(),
        properties: Vec::new(),
        config: app.config.registry.clone(),
    }
}

/// Writes a registry record; returns its partition.
async fn put(app: &TestApp, id: &str, value: Option<Vec<u8>>) -> i32 {
    let kafka = kafka(app);
    let producer = kafka.producer().unwrap();
    RegistryKafka::put(&producer, &kafka.config.users_topic, id, value.as_deref())
        .await
        .unwrap()
        .0
}

async fn eventually(what: &str, within: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn registry_users_are_polled_and_a_tombstone_stops_them() {
    let oxlin = FakeOxlin::start().await;
    oxlin.script(
        "alice",
        vec![Step::Page(crate::common::fixture(
            "oxlin-queue/poll-page-2-wrapped.json",
        ))],
    );
    let app = spawn_app(&registry_toml(&oxlin)).await;
    let alice_partition = put(
        &app,
        "alice",
        Some(record::encode(&user("alice"), &keyring())),
    )
    .await;
    put(&app, "bob", Some(record::encode(&user("bob"), &keyring()))).await;
    eventually("alice and bob polled", Duration::from_secs(20), || {
        oxlin.polls_of("alice") > 0 && oxlin.polls_of("bob") > 0
    })
    .await;
    assert!(
        oxlin.with(|state| state.polls.iter().all(|poll| poll.client_id == "t")),
        "polled with the poller's client id"
    );
    let events = read_topic(
        &app.bootstrap,
        app.default_topic(),
        1,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(events[0].json()["userid"], "alice");

    put(&app, "bob", None).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let bob = oxlin.polls_of("bob");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(oxlin.polls_of("bob"), bob, "a tombstone stops the user");
    let alice = oxlin.polls_of("alice");
    eventually("alice still polled", Duration::from_secs(5), || {
        oxlin.polls_of("alice") > alice
    })
    .await;

    // The queue state is on the state topic, in the partition of the user's record.
    let kafka = kafka(&app);
    let states = tokio::task::spawn_blocking(move || {
        kafka
            .read_to_end(&kafka.config.state_topic.clone(), None)
            .unwrap()
    })
    .await
    .unwrap();
    let alice = states
        .iter()
        .rev()
        .find(|record| record.key.as_deref() == Some(b"alice"))
        .expect("alice's queue state");
    assert_eq!(
        alice.partition, alice_partition,
        "state sits with its user's partition"
    );
    let state = QueueState::decode(alice.value.as_deref().unwrap()).unwrap();
    assert!(state.queue.contains("/queues/"), "{state:?}");
    // Bob left the registry: his state was saved while he was polled, then deleted.
    let bob_states: Vec<_> = states
        .iter()
        .filter(|record| record.key.as_deref() == Some(b"bob"))
        .collect();
    assert!(
        bob_states.len() >= 2,
        "saved, then deleted: {}",
        bob_states.len()
    );
    assert!(
        bob_states.last().unwrap().value.is_none(),
        "a removed user's queue state ends in a tombstone"
    );
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("finhook_registry_partitions_owned 4"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"finhook_poll_users{poller="oxlin"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn unreadable_records_are_skipped_and_counted_and_the_rest_runs() {
    let oxlin = FakeOxlin::start().await;
    let app = spawn_app(&registry_toml(&oxlin)).await;
    let other_key = Keyring::new("k1", &Secret::new("ab".repeat(32))).unwrap();
    put(
        &app,
        "mallory",
        Some(record::encode(&user("mallory"), &other_key)),
    )
    .await;
    put(&app, "garbage", Some(b"{not json".to_vec())).await;
    let mut ghost = user("ghost");
    ghost.poller = "nope".to_owned();
    put(&app, "ghost", Some(record::encode(&ghost, &keyring()))).await;
    let mut idle = user("idle");
    idle.enabled = false;
    put(&app, "idle", Some(record::encode(&idle, &keyring()))).await;
    put(
        &app,
        "carol",
        Some(record::encode(&user("carol"), &keyring())),
    )
    .await;
    eventually("carol polled", Duration::from_secs(20), || {
        oxlin.polls_of("carol") > 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for skipped in ["mallory", "garbage", "ghost", "idle"] {
        assert_eq!(oxlin.polls_of(skipped), 0, "{skipped} is not polled");
    }
    let metrics = app.metrics().await;
    for reason in ["undecryptable", "invalid_record", "unknown_poller"] {
        let line = format!(r#"finhook_registry_records_rejected_total{{reason="{reason}"}} 1"#);
        assert!(metrics.contains(&line), "{line}\n{metrics}");
    }
}

#[tokio::test]
async fn a_queue_on_another_host_is_never_polled_with_the_users_token() {
    let oxlin = FakeOxlin::start().await;
    let app = spawn_app(&registry_toml(&oxlin)).await;
    let mut redirected = user("dave");
    // Anyone who can write to the topic could point a sealed record at their own host.
    redirected.queue = Some("http://127.0.0.1:9/queues/stolen".to_owned());
    put(&app, "dave", Some(record::encode(&redirected, &keyring()))).await;
    eventually("dave polled", Duration::from_secs(20), || {
        oxlin.polls_of("dave") > 0
    })
    .await;
    assert_eq!(
        oxlin.subscriptions_of("dave"),
        1,
        "subscribed on the provider instead"
    );
}

#[tokio::test]
async fn a_widget_queue_is_polled_and_a_changed_user_keeps_its_queue() {
    let oxlin = FakeOxlin::start().await;
    oxlin.create_queue("erin", "widget-erin");
    oxlin.script(
        "erin",
        vec![Step::Page(crate::common::fixture(
            "oxlin-queue/poll-page-2-wrapped.json",
        ))],
    );
    let app = spawn_app(&registry_toml(&oxlin)).await;
    let mut erin = user("erin");
    erin.queue = Some("widget-erin".to_owned());
    put(&app, "erin", Some(record::encode(&erin, &keyring()))).await;
    let events = read_topic(
        &app.bootstrap,
        app.default_topic(),
        1,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(events[0].json()["id"], "q-0004", "the widget queue's event");
    assert_eq!(
        oxlin.subscriptions_of("erin"),
        0,
        "no subscription of its own"
    );

    // A change that does not touch the queue: the new loop goes on with the live queue.
    erin.topics = Some(vec!["connections".to_owned(), "accounts".to_owned()]);
    put(&app, "erin", Some(record::encode(&erin, &keyring()))).await;
    let before = oxlin.polls_of("erin");
    eventually(
        "erin polled after the change",
        Duration::from_secs(10),
        || oxlin.polls_of("erin") > before + 1,
    )
    .await;
    assert_eq!(oxlin.subscriptions_of("erin"), 0, "the queue was kept");

    // Disabled: it stops.
    erin.enabled = false;
    put(&app, "erin", Some(record::encode(&erin, &keyring()))).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stopped = oxlin.polls_of("erin");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        oxlin.polls_of("erin"),
        stopped,
        "a disabled user is not polled"
    );
}

#[tokio::test]
async fn a_replica_cut_off_from_kafka_past_the_session_timeout_stops_polling_its_users() {
    let oxlin = FakeOxlin::start().await;
    let app = spawn_app(&registry_toml(&oxlin)).await;
    put(
        &app,
        "frank",
        Some(record::encode(&user("frank"), &keyring())),
    )
    .await;
    eventually("frank polled", Duration::from_secs(20), || {
        oxlin.polls_of("frank") > 0
    })
    .await;
    // The group gives frank to another replica after the session timeout (3 s): this one must
    // not go on polling him meanwhile.
    app.kafka.as_ref().unwrap().broker_down(1).unwrap();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let after_timeout = oxlin.polls_of("frank");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        oxlin.polls_of("frank"),
        after_timeout,
        "still polling a lost user"
    );
    assert!(app
        .metrics()
        .await
        .contains(r#"finhook_registry_rebalances_total{kind="lost"} 1"#));
    app.kafka.as_ref().unwrap().broker_up(1).unwrap();
}
