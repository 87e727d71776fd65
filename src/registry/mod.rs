//! The users registry on Kafka: user records (encrypted credentials) on a compacted topic, queue
//! state on a second one, and the administration the `finhook users` commands need. Which
//! replica polls which users is decided by a consumer group: see `poller::assignment`.

pub mod admin;
pub mod record;
pub mod state;
