//! Exponential backoff with jitter, honouring a server's Retry-After.

use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub base: Duration,
    pub max_delay: Duration,
}

impl RetryPolicy {
    pub fn new(max_retries: u32) -> Self {
        RetryPolicy {
            max_retries,
            base: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }

    /// Delay before retry number `retry` (1-based). A server's `Retry-After`
    /// wins when present (capped at `max_delay`); otherwise base * 2^(retry-1),
    /// with up to 50% random jitter so parallel stages do not retry in step.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(after) = retry_after {
            return after.min(self.max_delay);
        }
        let exp = self
            .base
            .saturating_mul(1u32 << (retry.saturating_sub(1)).min(16));
        let capped = exp.min(self.max_delay);
        let jitter = capped.mul_f64(jitter_fraction() * 0.5);
        capped + jitter
    }
}

/// A number in [0, 1) from the clock: enough to de-synchronise retries.
fn jitter_fraction() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mixed = blake3::hash(&nanos.to_le_bytes());
    let n = u32::from_le_bytes(mixed.as_bytes()[..4].try_into().unwrap_or([0; 4]));
    f64::from(n) / (f64::from(u32::MAX) + 1.0)
}

/// Parses an HTTP Retry-After header given in seconds.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_within_jitter() {
        let p = RetryPolicy::new(5);
        let d1 = p.delay(1, None);
        let d3 = p.delay(3, None);
        assert!(d1 >= Duration::from_millis(500) && d1 < Duration::from_millis(750));
        assert!(d3 >= Duration::from_millis(2000) && d3 < Duration::from_millis(3000));
    }

    #[test]
    fn retry_after_wins_but_is_capped() {
        let p = RetryPolicy::new(5);
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(3600))),
            Duration::from_secs(30)
        );
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("soon"), None);
    }
}
