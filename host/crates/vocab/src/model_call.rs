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

/// Where a call sits in its run: the stage's loop pass, the attempt, and
/// the call's place in that attempt (refused calls included). Unique within
/// a stage of a run, so a call recorded twice is one record.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct CallKey {
    pub iteration: u32,
    pub attempt: u32,
    pub n: u32,
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
    /// Identical refusals are one record with a count (a plugin asking in
    /// a loop for what it was not granted costs one row, not millions).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub count: u32,
    /// The request was sent (or about to be) and no answer was recorded:
    /// the host stopped first. Its tokens and cost are the worst case
    /// reserved before sending, and budgets count it as spent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unsettled: bool,
}

fn one() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

impl Default for ModelCall {
    fn default() -> Self {
        ModelCall {
            alias: String::new(),
            model: String::new(),
            input_tokens: 0,
            output_tokens: 0,
            cost_usd: 0.0,
            latency: Duration::ZERO,
            retries: 0,
            error: None,
            source: CallSource::Provider,
            session: None,
            count: 1,
            unsettled: false,
        }
    }
}

impl ModelCall {
    /// Whether the provider was (or may have been) paid for it.
    pub fn is_paid(&self) -> bool {
        self.source == CallSource::Provider && (self.error.is_none() || self.unsettled)
    }
}

/// A request about to be sent to a provider, recorded durably before it is:
/// if the host dies before the answer is recorded, this is what the call is
/// counted as (fail-closed budgets).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct SentCall {
    pub alias: String,
    pub model: String,
    #[serde(default)]
    pub session: Option<String>,
    /// The reserved worst case: the prompt's estimated tokens and every
    /// token the call may generate.
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub cost_usd: f64,
    pub sent_ms: u64,
}

impl SentCall {
    /// The call as the record keeps it when its answer never came.
    pub fn unsettled(&self, now_ms: u64) -> ModelCall {
        ModelCall {
            alias: self.alias.clone(),
            model: self.model.clone(),
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cost_usd: self.cost_usd,
            latency: Duration::from_millis(now_ms.saturating_sub(self.sent_ms)),
            error: Some(
                "no answer was recorded (the host stopped while the call was in flight); \
                 counted at its reserved worst case"
                    .into(),
            ),
            session: self.session.clone(),
            unsettled: true,
            ..ModelCall::default()
        }
    }
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
