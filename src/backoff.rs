//! Exponential back-off with full jitter, shared by the collectors, the sink forwarder and the
//! gpsd client: many appliances that lost the same upstream must not come back in lock-step.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff { base, max, failures: 0 }
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// The wait after one more failure: base * 2^n capped at max, then jittered into [half, all].
    pub fn next_delay(&mut self) -> Duration {
        let exp = self.base.saturating_mul(1u32 << self.failures.min(16));
        self.failures = self.failures.saturating_add(1);
        let capped = exp.min(self.max);
        capped.mul_f64(0.5 + fastrand::f64() * 0.5)
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_with_jitter_and_caps() {
        let mut b = Backoff::new(Duration::from_secs(10), Duration::from_secs(300));
        let delays: Vec<Duration> = (0..10).map(|_| b.next_delay()).collect();
        for (i, d) in delays.iter().enumerate() {
            let full = Duration::from_secs(10 * (1 << i)).min(Duration::from_secs(300));
            assert!(*d >= full / 2 && *d <= full, "attempt {i}: {d:?} not in [{:?}, {full:?}]", full / 2);
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_secs(10));
    }
}
