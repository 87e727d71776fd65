//! Tier 2: the real app on port 0, a real Kafka wire protocol (librdkafka's mock cluster in
//! process), requests over HTTP.

#[path = "../common/mod.rs"]
mod common;

mod cli;
mod failures;
mod fake_oxlin;
mod helpers;
mod hostile;
mod limits;
mod poller;
mod process;
mod protection;
mod providers;
mod refusals;
mod registry;
mod secrets;
mod simulator;
mod tls;
mod webhooks;
