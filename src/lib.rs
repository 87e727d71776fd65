//! finhook: open-banking provider events into Kafka, as CloudEvents.
//!
//! # Flow
//!
//! ```text
//! provider POST /webhooks/{source} ─► http ─► sources (address, client certificate,
//!                                             credentials on the head)
//!                                          ─► auth (the provider's verifier on the raw
//!                                             bytes: HMAC, JWS, RSA…) ─► Verified
//!                                          ─► providers (read the event: EventFacts)
//!                                          ─► ingest ─► envelope (CloudEvents 1.0)
//!                                          ─► publish (Kafka, idempotent, acks=all)
//!                                          ─► 200 only after the broker's acknowledgement
//! ```
//!
//! Authenticated input that cannot be read goes to the dead-letter topic with its raw bytes.
//!
//! # Layout
//!
//! - [`vocabulary`]: the shared words at the bottom (provider kind, canonical event types,
//!   event facts, ingress); it imports nothing of finhook. [`secret`]: secrets never printed.
//! - [`config`]: embedded defaults → file → `FINHOOK_` environment; validation, per section.
//! - [`auth`]: verification schemes providers share (credentials, HMAC templates, Standard
//!   Webhooks, fetched key sets) and [`auth::Verified`], the only input of a normalizer.
//! - [`providers`]: one file per provider behind [`providers::Provider`], listed once in
//!   [`providers::CATALOGUE`].
//! - [`envelope`]: the CloudEvents envelope and its Kafka headers; [`protection`]: field
//!   policies (redact, pseudonymize, encrypt) applied to its `data` before Kafka.
//! - [`sources`]: configured webhook sources resolved (secrets read, verifiers built).
//! - [`ingest`]: the one ingest path for webhooks and polled queues, testable without axum.
//! - [`http`]: routers, the webhook handler, the one place errors become statuses.
//! - [`registry`]: the users registry on Kafka (registry mode): user records, queue state, the
//!   Kafka access behind `finhook users`; [`keyring`]: the AES-256-GCM sealing of their
//!   credentials.
//! - [`publish`]: the Kafka producer, routing, dead letters, health, the embedded broker.
//! - [`poller`]: Oxlin queue polling: client, per-user loop, supervisor.
//! - [`simulator`]: finhook-sim's provider simulator.
//! - [`metrics`], [`telemetry`], [`shutdown`]: operations.
//! - [`app`]: wiring; [`cli`] and [`tail`]: the command line; [`kafka`]: what the Kafka clients
//!   other than the producer share.

pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod envelope;
pub mod http;
pub mod ingest;
pub mod kafka;
pub mod keyring;
pub mod metrics;
pub mod poller;
pub mod protection;
pub mod providers;
pub mod publish;
pub mod registry;
pub mod secret;
pub mod shutdown;
pub mod simulator;
pub mod sources;
pub mod tail;
pub mod telemetry;
pub mod vocabulary;
