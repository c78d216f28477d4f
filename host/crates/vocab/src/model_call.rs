//! One model call as the run record keeps it, and sums over calls.

use std::time::Duration;

/// Where a call's answer came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallSource {
    #[default]
    Provider,
    /// The response cache: no request was sent, nothing was paid.
    Cache,
    /// A recording of an earlier run.
    Replay,
    /// Nothing: the host refused the call before sending it.
    Refused,
}

/// One model call as the run record keeps it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ModelCall {
    pub alias: String,
    pub model: String,
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub cost_usd: f64,
    #[serde(with = "crate::time::millis", rename = "latency_ms")]
    pub latency: Duration,
    pub retries: u32,
    /// `None` on success, else the error the plugin was given.
    pub error: Option<String>,
    #[serde(default)]
    pub source: CallSource,
    #[serde(default)]
    pub session: Option<String>,
}

/// Tokens in and out of `calls`, summed.
pub fn total_tokens(calls: &[ModelCall]) -> u64 {
    calls
        .iter()
        .map(|c| u64::from(c.input_tokens) + u64::from(c.output_tokens))
        .sum()
}

/// Cost of `calls` in US dollars (a fold: an empty float sum would be -0.0).
pub fn total_cost_usd(calls: &[ModelCall]) -> f64 {
    calls.iter().fold(0.0, |acc, c| acc + c.cost_usd)
}
