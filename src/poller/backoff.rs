//! Exponential back-off with jitter, capped: `initial`, then doubling up to `max`; each wait is
//! drawn from the upper half of its step, so retries from many users spread out.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        debug_assert!(initial <= max);
        Self {
            initial,
            max,
            attempt: 0,
        }
    }

    /// The step before jitter of the next wait.
    pub fn current_step(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The next wait, in `[step / 2, step]`.
    pub fn next_delay(&mut self) -> Duration {
        let step = self.current_step();
        self.attempt = self.attempt.saturating_add(1);
        let half = step / 2;
        half + jitter(step - half)
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// A uniformly random duration in `[0, up_to]`.
pub fn jitter(up_to: Duration) -> Duration {
    let nanos = u64::try_from(up_to.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(fastrand::u64(0..=nanos))
}

/// `interval` ± 10 %: keeps polls of many users from falling into step.
pub fn around(interval: Duration) -> Duration {
    let tenth = interval / 10;
    interval - tenth + jitter(tenth * 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_within_jitter_bounds_up_to_the_cap_and_reset() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(10));
        let steps = [1, 2, 4, 8, 10, 10];
        for step in steps {
            let step = Duration::from_secs(step);
            let delay = backoff.next_delay();
            assert!(
                delay >= step / 2 && delay <= step,
                "{delay:?} outside [{:?}, {step:?}]",
                step / 2
            );
        }
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_secs(1));
    }

    #[test]
    fn huge_attempt_counts_do_not_overflow() {
        let mut backoff = Backoff::new(Duration::from_millis(1), Duration::from_secs(60));
        for _ in 0..200 {
            assert!(backoff.next_delay() <= Duration::from_secs(60));
        }
    }
}
