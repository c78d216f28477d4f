//! The `models` interface: completions by alias, only for granted aliases.

use crate::bindings::orchestrator::stage::models::{self as wit, Host};
use crate::manifest::{Pipeline, ProviderKind, StageSpec};
use crate::providers::{ChatMessage, ChatRequest, OpenAiProvider, Provider, ProviderError, Role};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A model alias with its provider and prices.
struct Endpoint {
    provider: Arc<dyn Provider>,
    price_in_per_1k: f64,
    price_out_per_1k: f64,
}

/// Every model the pipeline declares, built once per run.
pub struct ModelsCapability {
    endpoints: BTreeMap<String, Arc<Endpoint>>,
}

/// One model call as the run record keeps it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ModelCall {
    pub alias: String,
    pub model: String,
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub cost_usd: f64,
    #[serde(with = "crate::events::millis", rename = "latency_ms")]
    pub latency: Duration,
    pub retries: u32,
    /// `None` on success, else the error the plugin was given.
    pub error: Option<String>,
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

/// Most model calls one attempt may make: a runaway loop in a plugin must not
/// run up an unbounded bill.
pub const MAX_CALLS_PER_ATTEMPT: usize = 1000;

impl ModelsCapability {
    pub fn new(pipeline: &Pipeline, client: reqwest::Client) -> Self {
        let endpoints = pipeline
            .models
            .values()
            .map(|spec| {
                let provider: Arc<dyn Provider> = match spec.provider {
                    ProviderKind::OpenAi => Arc::new(OpenAiProvider::new(client.clone(), spec)),
                };
                let endpoint = Endpoint {
                    provider,
                    price_in_per_1k: spec.price_in_per_1k,
                    price_out_per_1k: spec.price_out_per_1k,
                };
                (spec.alias.clone(), Arc::new(endpoint))
            })
            .collect();
        ModelsCapability { endpoints }
    }

    /// The grant of one stage attempt: only the aliases the stage lists.
    pub fn grant(&self, stage: &StageSpec) -> ModelsGrant {
        ModelsGrant {
            stage_id: stage.id.clone(),
            granted: stage
                .models
                .iter()
                .filter_map(|alias| Some((alias.clone(), self.endpoints.get(alias)?.clone())))
                .collect(),
            calls: Vec::new(),
        }
    }
}

pub struct ModelsGrant {
    stage_id: String,
    granted: BTreeMap<String, Arc<Endpoint>>,
    calls: Vec<ModelCall>,
}

impl ModelsGrant {
    /// A grant of nothing (used where no stage is running, e.g. `info()`).
    pub fn empty(stage_id: &str) -> Self {
        ModelsGrant {
            stage_id: stage_id.to_string(),
            granted: BTreeMap::new(),
            calls: Vec::new(),
        }
    }

    pub fn calls(&self) -> &[ModelCall] {
        &self.calls
    }

    pub fn take_calls(&mut self) -> Vec<ModelCall> {
        std::mem::take(&mut self.calls)
    }

    fn refuse(&mut self, alias: &str, error: wit::ModelError) -> wit::ModelError {
        tracing::warn!(stage = %self.stage_id, alias, "model call refused: {error:?}");
        self.calls.push(ModelCall {
            alias: alias.to_string(),
            model: String::new(),
            input_tokens: 0,
            output_tokens: 0,
            cost_usd: 0.0,
            latency: Duration::ZERO,
            retries: 0,
            error: Some(format!("{error:?}")),
        });
        error
    }
}

fn to_request(messages: Vec<wit::Message>, params: wit::Params) -> ChatRequest {
    ChatRequest {
        messages: messages
            .into_iter()
            .map(|m| ChatMessage {
                role: match m.role {
                    wit::Role::System => Role::System,
                    wit::Role::User => Role::User,
                    wit::Role::Assistant => Role::Assistant,
                },
                content: m.content,
            })
            .collect(),
        max_tokens: params.max_tokens,
        temperature: params.temperature,
        stop: params.stop,
    }
}

fn to_model_error(alias: &str, e: &ProviderError) -> wit::ModelError {
    let reason = format!("model '{alias}': {e}");
    match e {
        ProviderError::Unreachable { .. }
        | ProviderError::Timeout(_)
        | ProviderError::RateLimited { .. }
        | ProviderError::Server { .. } => wit::ModelError::Unavailable(reason),
        ProviderError::Auth { .. }
        | ProviderError::Rejected { .. }
        | ProviderError::MissingKey(_) => wit::ModelError::Rejected(reason),
        ProviderError::Malformed(_) => wit::ModelError::BadResponse(reason),
    }
}

impl Host for ModelsGrant {
    async fn complete(
        &mut self,
        alias: String,
        messages: Vec<wit::Message>,
        params: wit::Params,
    ) -> wasmtime::Result<Result<wit::Completion, wit::ModelError>> {
        let Some(endpoint) = self.granted.get(&alias).cloned() else {
            let granted: Vec<&str> = self.granted.keys().map(String::as_str).collect();
            let reason = format!(
                "stage '{}' is not granted model alias '{alias}' (granted: {})",
                self.stage_id,
                if granted.is_empty() {
                    "none".to_string()
                } else {
                    granted.join(", ")
                }
            );
            return Ok(Err(self.refuse(&alias, wit::ModelError::NotGranted(reason))));
        };
        if self.calls.len() >= MAX_CALLS_PER_ATTEMPT {
            let reason = format!(
                "stage '{}' made {MAX_CALLS_PER_ATTEMPT} model calls in one attempt",
                self.stage_id
            );
            return Ok(Err(
                self.refuse(&alias, wit::ModelError::BudgetExceeded(reason))
            ));
        }
        let request = to_request(messages, params);
        let started = Instant::now();
        let result = endpoint.provider.complete(&request).await;
        let latency = started.elapsed();
        let (record, answer) = match result {
            Ok(r) => {
                let cost = f64::from(r.input_tokens) / 1000.0 * endpoint.price_in_per_1k
                    + f64::from(r.output_tokens) / 1000.0 * endpoint.price_out_per_1k;
                let model = if r.model.is_empty() {
                    endpoint.provider.model().to_string()
                } else {
                    r.model.clone()
                };
                let record = ModelCall {
                    alias: alias.clone(),
                    model: model.clone(),
                    input_tokens: r.input_tokens,
                    output_tokens: r.output_tokens,
                    cost_usd: cost,
                    latency,
                    retries: r.retries,
                    error: None,
                };
                let completion = wit::Completion {
                    text: r.text,
                    model,
                    input_tokens: r.input_tokens,
                    output_tokens: r.output_tokens,
                    finish_reason: r.finish_reason,
                };
                (record, Ok(completion))
            }
            Err(e) => {
                tracing::warn!(stage = %self.stage_id, alias = %alias, "model call failed: {e}");
                let record = ModelCall {
                    alias: alias.clone(),
                    model: endpoint.provider.model().to_string(),
                    input_tokens: 0,
                    output_tokens: 0,
                    cost_usd: 0.0,
                    latency,
                    retries: 0,
                    error: Some(e.to_string()),
                };
                (record, Err(to_model_error(&alias, &e)))
            }
        };
        self.calls.push(record);
        Ok(answer)
    }
}
