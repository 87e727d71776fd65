//! Structured logs through `tracing`: JSON lines for collectors, or text for a terminal.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber. `RUST_LOG`, when set, overrides `log.level`.
pub fn init(config: &LogConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let installed = match config.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
    // A second init (tests) keeps the first subscriber.
    drop(installed);
}

/// At most one log line per `interval` for a kind of event a client can repeat at will (a
/// refused webhook, a 503 during an outage): one line a second says as much as ten thousand,
/// and ten thousand a second fill a disk. The lines left out are counted; the next one written
/// says how many (`suppressed`). The metrics count every event.
pub struct LogThrottle {
    interval_millis: u64,
    next_millis: AtomicU64,
    suppressed: AtomicU64,
}

impl LogThrottle {
    pub const fn new(interval: Duration) -> Self {
        Self {
            interval_millis: interval.as_millis() as u64,
            next_millis: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(lines left out since the last one)` when a line may be written now.
    pub fn admit(&self) -> Option<u64> {
        let now = millis_since_start();
        let next = self.next_millis.load(Ordering::Relaxed);
        let due = now >= next
            && self
                .next_millis
                .compare_exchange(
                    next,
                    now + self.interval_millis,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok();
        if due {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

fn millis_since_start() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttle_writes_one_line_per_interval_and_counts_the_rest() {
        let throttle = LogThrottle::new(Duration::from_millis(50));
        assert_eq!(throttle.admit(), Some(0), "the first line is written");
        assert_eq!(throttle.admit(), None);
        assert_eq!(throttle.admit(), None);
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(
            throttle.admit(),
            Some(2),
            "the next says how many were left out"
        );
        assert_eq!(throttle.admit(), None);
    }
}
