//! finhook: open-banking provider events into Kafka, as CloudEvents.
//!
//! # Flow
//!
//! ```text
//! provider POST /webhooks/{source} ─► http ─► sources (authenticate: address, credentials,
//!                                             Bridge signature on the raw bytes)
//!                                          ─► providers (read the event: EventFacts)
//!                                          ─► envelope (CloudEvents 1.0, structured JSON)
//!                                          ─► publish (Kafka, idempotent, acks=all)
//!                                          ─► 200 only after the broker's acknowledgement
//! ```
//!
//! Authenticated input that cannot be read goes to the dead-letter topic with its raw bytes.
//!
//! # Layout
//!
//! - [`config`]: embedded defaults → file → `FINHOOK_` environment; validation; secrets.
//! - [`providers`]: one file per aggregator (Bridge, Linxo): signature checks and normalizers.
//! - [`envelope`]: the CloudEvents envelope, canonical types and Kafka headers.
//! - [`sources`]: configured webhook sources resolved for request authentication.
//! - [`ingest`]: the pipeline after HTTP extraction, testable without axum.
//! - [`http`]: routers, the webhook handler, the one place errors become statuses.
//! - [`registry`]: the users registry on Kafka (registry mode): encrypted user records, queue
//!   state, the Kafka access behind `finhook users`.
//! - [`publish`]: the Kafka producer, routing, dead letters, health, the embedded broker.
//! - [`poller`]: Oxlin queue polling: client, per-user loop, supervisor.
//! - [`simulator`]: finhook-sim's provider simulator.
//! - [`metrics`], [`telemetry`], [`shutdown`]: operations.
//! - [`app`]: wiring; [`cli`] and [`tail`]: the command line.

pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod envelope;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod poller;
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
