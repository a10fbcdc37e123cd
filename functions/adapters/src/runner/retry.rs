//! Retry timing: the backoff between receives and the quick retries within one.

use std::time::Duration;

/// Retry timing. Seed 000 asks for 3 quick retries, then delayed ones, then people after 5
/// failures; the defaults give 2 s, 4 s, 8 s, 16 s (each with full jitter) and the DLQ on the
/// 5th receive, where an alarm fires.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub base: Duration,
    pub cap: Duration,
    /// How long a message waits while its handler is switched off.
    pub paused: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_secs(2),
            cap: Duration::from_secs(300),
            paused: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// From `RETRY_BASE_MS`, `RETRY_CAP_MS`, `RETRY_PAUSED_MS` where set.
    pub fn from_env() -> Self {
        let d = RetryPolicy::default();
        let ms = |k: &str, default: Duration| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.parse().ok())
                .map(Duration::from_millis)
                .unwrap_or(default)
        };
        RetryPolicy {
            base: ms("RETRY_BASE_MS", d.base),
            cap: ms("RETRY_CAP_MS", d.cap),
            paused: ms("RETRY_PAUSED_MS", d.paused),
        }
    }

    /// The longest delay after `receives` receives: base·2^(receives-1), capped.
    pub fn ceiling(&self, receives: u32) -> Duration {
        self.base
            .saturating_mul(1u32 << receives.saturating_sub(1).min(16))
            .min(self.cap)
    }

    /// Visibility before the next attempt, after `receives` receives: the [`Self::ceiling`]
    /// with full jitter (at least a quarter of it, so retries never stampede).
    pub fn delay(&self, receives: u32) -> Duration {
        let ceiling = self.ceiling(receives).as_millis() as u64;
        let jitter = uuid::Uuid::new_v4().as_u128() as u64 % (ceiling / 4 * 3 + 1);
        Duration::from_millis(ceiling / 4 + jitter)
    }
}

/// Attempts of one handler on one message within one invocation.
pub const QUICK_ATTEMPTS: u32 = 3;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_between_a_quarter_and_all_of_the_capped_exponential() {
        let policy = RetryPolicy {
            base: Duration::from_secs(2),
            cap: Duration::from_secs(10),
            paused: Duration::from_secs(30),
        };
        for (receives, ceiling) in [(1, 2_000), (2, 4_000), (3, 8_000), (4, 10_000), (9, 10_000)] {
            for _ in 0..200 {
                let d = policy.delay(receives).as_millis() as u64;
                assert!(
                    (ceiling / 4..=ceiling).contains(&d),
                    "receive {receives}: {d} ms"
                );
            }
        }
    }
}
