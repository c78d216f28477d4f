//! Summaries of repeated measurements: medians and tails, not means, because
//! a single fsync stall or scheduler hiccup should not move the headline.

use serde::Serialize;
use std::time::Duration;

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub samples: usize,
    #[serde(with = "micros")]
    pub median: Duration,
    #[serde(with = "micros")]
    pub p99: Duration,
    #[serde(with = "micros")]
    pub min: Duration,
    #[serde(with = "micros")]
    pub max: Duration,
}

impl Summary {
    /// `None` for no samples.
    pub fn of(samples: &[Duration]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort();
        Some(Summary {
            samples: sorted.len(),
            median: percentile(&sorted, 50.0),
            p99: percentile(&sorted, 99.0),
            min: sorted[0],
            max: sorted[sorted.len() - 1],
        })
    }
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A duration for people: µs, ms or s with three significant-ish digits.
pub fn human(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.1} µs")
    } else if us < 1e6 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

mod micros {
    use serde::Serializer;
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64() * 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn median_and_tail_of_unsorted_samples() {
        let s = Summary::of(&ms(&[5, 1, 3, 2, 4])).unwrap();
        assert_eq!(s.median, Duration::from_millis(3));
        assert_eq!(s.p99, Duration::from_millis(5));
        assert_eq!(s.min, Duration::from_millis(1));
        assert_eq!(s.max, Duration::from_millis(5));
    }

    #[test]
    fn p99_of_a_hundred_is_the_99th() {
        let samples: Vec<u64> = (1..=100).collect();
        let s = Summary::of(&ms(&samples)).unwrap();
        assert_eq!(s.p99, Duration::from_millis(99));
        assert_eq!(s.median, Duration::from_millis(50));
    }

    #[test]
    fn no_samples_no_summary() {
        assert!(Summary::of(&[]).is_none());
    }

    #[test]
    fn human_units() {
        assert_eq!(human(Duration::from_nanos(12_345)), "12.3 µs");
        assert_eq!(human(Duration::from_micros(1_500)), "1.50 ms");
        assert_eq!(human(Duration::from_millis(2_500)), "2.50 s");
    }
}
