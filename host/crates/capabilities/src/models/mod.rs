//! The `models` interface: completions by alias, only for granted aliases
//! and sessions, within the run's and the stage's budgets, answered by the
//! provider, the response cache or a recording.

mod budget;
mod caller;
mod exchanges;
mod older_lines;
mod streaming;
mod streams;

use caller::Caller;

pub use budget::{Ask, Ledger, Left, Usage};
pub use exchanges::{ExchangeMode, Exchanges, request_hash};

use crate::providers::{
    AnthropicProvider, ChatMessage, ChatRequest, ChatResponse, OpenAiProvider, Provider,
    ProviderError, Role,
};
use host_manifest::{Budget, ModelSpec, Pipeline, ProviderKind};
use host_runtime::bindings::orchestrator::stage::models::{self as wit, Host};
use host_runtime::{AttemptScope, Capability, Grant, HasGrant, grant_of};
use host_store::Store;
use host_vocab::{Activity, Bound, LimitReached};
pub use host_vocab::{CallKey, CallSource, ModelCall, SentCall, total_cost_usd, total_tokens};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{HasSelf, Linker};

/// A model alias with its provider and prices.
struct Endpoint {
    provider: Arc<dyn Provider>,
    spec: ModelSpec,
    /// Permits for requests in flight to this endpoint's server, when its
    /// models set `max_concurrent`.
    in_flight: Option<Arc<tokio::sync::Semaphore>>,
}

impl Endpoint {
    fn cost(&self, input_tokens: u64, output_tokens: u64) -> f64 {
        input_tokens as f64 / 1000.0 * self.spec.price_in_per_1k
            + output_tokens as f64 / 1000.0 * self.spec.price_out_per_1k
    }

    /// The response-cache key: the endpoint and the full request.
    fn cache_key(&self, request: &ChatRequest) -> String {
        let material = serde_json::json!({
            "provider": self.spec.provider,
            "base_url": self.spec.base_url,
            "model": self.spec.model,
            "request": request,
        });
        blake3::hash(material.to_string().as_bytes())
            .to_hex()
            .to_string()
    }
}

/// What `calls` used, as budgets count it (calls the host answered or
/// refused without the provider cost nothing).
pub fn usage_of(calls: &[ModelCall]) -> Usage {
    calls
        .iter()
        .filter(|c| c.is_paid())
        .fold(Usage::default(), |mut u, c| {
            u.tokens += u64::from(c.input_tokens) + u64::from(c.output_tokens);
            u.cost_usd += c.cost_usd;
            u.calls += 1;
            u
        })
}

pub use host_vocab::limits::MAX_CALLS_PER_ATTEMPT;

/// Every model the pipeline declares, built once per run.
pub struct ModelsCapability {
    endpoints: BTreeMap<String, Arc<Endpoint>>,
    run_budget: Budget,
    ledger: Arc<Ledger>,
    exchanges: Arc<Exchanges>,
    store: Arc<Store>,
}

pub fn provider_for(spec: &ModelSpec, client: &reqwest::Client) -> Arc<dyn Provider> {
    match spec.provider {
        ProviderKind::OpenAi => Arc::new(OpenAiProvider::new(client.clone(), spec)),
        ProviderKind::Anthropic => Arc::new(AnthropicProvider::new(client.clone(), spec)),
    }
}

impl ModelsCapability {
    pub fn new(
        pipeline: &Pipeline,
        client: reqwest::Client,
        store: Arc<Store>,
        mode: ExchangeMode,
    ) -> Self {
        // A concurrency limit belongs to a server, not to an alias: every
        // alias on the same base URL shares the smallest limit set for it.
        let mut limits: BTreeMap<&str, u32> = BTreeMap::new();
        for spec in pipeline.models.values() {
            if let Some(n) = spec.max_concurrent {
                let limit = limits.entry(spec.base_url.as_str()).or_insert(n);
                *limit = (*limit).min(n);
            }
        }
        let semaphores: BTreeMap<&str, Arc<tokio::sync::Semaphore>> = limits
            .into_iter()
            .map(|(url, n)| (url, Arc::new(tokio::sync::Semaphore::new(n as usize))))
            .collect();
        let endpoints = pipeline
            .models
            .values()
            .map(|spec| {
                let endpoint = Endpoint {
                    provider: provider_for(spec, &client),
                    spec: spec.clone(),
                    in_flight: semaphores.get(spec.base_url.as_str()).cloned(),
                };
                (spec.alias.clone(), Arc::new(endpoint))
            })
            .collect();
        ModelsCapability {
            endpoints,
            run_budget: pipeline.budget,
            ledger: Arc::new(Ledger::default()),
            exchanges: Arc::new(Exchanges::new(store.clone(), mode)),
            store,
        }
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The grant of one stage attempt: only the aliases and sessions the
    /// stage lists, within its budget.
    pub fn grant(&self, scope: &AttemptScope<'_>) -> ModelsGrant {
        let stage = scope.stage;
        ModelsGrant {
            stage_id: stage.id.clone(),
            run_id: scope.run_id.to_string(),
            iteration: scope.iteration,
            attempt: scope.attempt,
            granted: stage
                .models
                .iter()
                .filter_map(|alias| Some((alias.clone(), self.endpoints.get(alias)?.clone())))
                .collect(),
            sessions: stage.sessions.clone(),
            run_budget: self.run_budget,
            stage_budget: stage.budget,
            ledger: Some(self.ledger.clone()),
            exchanges: Some(self.exchanges.clone()),
            store: Some(self.store.clone()),
            max_calls: stage.max_model_calls,
            live: Some(scope.live.clone()),
            deadline: Some(scope.deadline),
            ..ModelsGrant::empty(&stage.id)
        }
    }
}

impl Capability for ModelsCapability {
    type Grant = ModelsGrant;
    const INTERFACES: &'static [&'static str] = &["models"];
    const GOVERNED_BY: &'static str = "a stage's `models` (and `sessions`) grant";

    fn link<T: HasGrant<ModelsGrant>>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        wit::add_to_linker::<T, HasSelf<ModelsGrant>>(linker, grant_of)?;
        older_lines::link(linker)
    }

    fn grant(&self, scope: &AttemptScope<'_>) -> ModelsGrant {
        ModelsCapability::grant(self, scope)
    }

    fn deny() -> ModelsGrant {
        ModelsGrant::empty("(info)")
    }
}

impl Grant for ModelsGrant {
    async fn finish(&mut self, activity: &mut Activity) {
        self.settle_open_streams().await;
        activity.unsaved_calls = std::mem::take(&mut self.unsaved)
            .into_iter()
            .map(|i| (self.keys[i], self.calls[i].clone()))
            .collect();
        activity.model_calls = self.take_calls();
        activity.session_appends = self.take_session_appends();
    }
}

pub struct ModelsGrant {
    stage_id: String,
    run_id: String,
    iteration: u32,
    attempt: u32,
    granted: BTreeMap<String, Arc<Endpoint>>,
    sessions: Vec<String>,
    run_budget: Budget,
    stage_budget: Budget,
    ledger: Option<Arc<Ledger>>,
    exchanges: Option<Arc<Exchanges>>,
    store: Option<Arc<Store>>,
    /// When the attempt's timeout ends it (`None` outside an attempt).
    deadline: Option<Instant>,
    /// The attempt's calls, identical refusals folded into one.
    calls: Vec<ModelCall>,
    /// Where each of `calls` is recorded.
    keys: Vec<CallKey>,
    /// Which of `calls` the store lacks, or has with an older count.
    unsaved: BTreeSet<usize>,
    /// Where each distinct refusal is in `calls`.
    refusals: HashMap<RefusalKind, usize>,
    /// Calls asked for so far, refused ones included (`max_calls` counts
    /// these).
    asked: usize,
    next_n: u32,
    /// Most calls (answered or refused) this attempt may make.
    max_calls: usize,
    /// Messages this attempt added to each session, not yet committed.
    session_appends: BTreeMap<String, Vec<ChatMessage>>,
    /// Where each call is reported as it finishes.
    live: Option<Arc<host_runtime::live::AttemptLive>>,
    /// Streams the plugin opened (`complete-streamed`), by handle.
    streams: HashMap<u32, streams::OpenStream>,
    next_stream: u32,
}

/// What makes two refusals the same: alias, session and reason.
type RefusalKind = (String, Option<String>, &'static str);

fn reason_of(error: &wit::ModelError) -> &'static str {
    match error {
        wit::ModelError::NotGranted(_) => "not-granted",
        wit::ModelError::BudgetExceeded(_) => "budget-exceeded",
        wit::ModelError::Unavailable(_) => "unavailable",
        wit::ModelError::Rejected(_) => "rejected",
        wit::ModelError::BadResponse(_) => "bad-response",
    }
}

/// A model error as a person reads it in a record: "not-granted: stage
/// 'a' is not granted model alias 'large'".
fn error_text(error: &wit::ModelError) -> String {
    let (wit::ModelError::NotGranted(why)
    | wit::ModelError::BudgetExceeded(why)
    | wit::ModelError::Unavailable(why)
    | wit::ModelError::Rejected(why)
    | wit::ModelError::BadResponse(why)) = error;
    format!("{}: {why}", reason_of(error))
}

/// How a call was answered, before it is recorded.
struct Answer {
    response: Result<ChatResponse, wit::ModelError>,
    source: CallSource,
    retries: u32,
    /// Given up on after it was sent (its `timeout-ms`): what it may have
    /// cost, counted as spent.
    abandoned: Option<Estimate>,
}

impl ModelsGrant {
    /// A grant of nothing (used where no stage is running, e.g. `info()`).
    pub fn empty(stage_id: &str) -> Self {
        ModelsGrant {
            stage_id: stage_id.to_string(),
            run_id: String::new(),
            iteration: 0,
            attempt: 0,
            granted: BTreeMap::new(),
            sessions: Vec::new(),
            run_budget: Budget::default(),
            stage_budget: Budget::default(),
            ledger: None,
            exchanges: None,
            store: None,
            calls: Vec::new(),
            keys: Vec::new(),
            unsaved: BTreeSet::new(),
            refusals: HashMap::new(),
            asked: 0,
            next_n: 0,
            // Every call is refused as not granted, which says more than a bound.
            max_calls: MAX_CALLS_PER_ATTEMPT,
            session_appends: BTreeMap::new(),
            live: None,
            deadline: None,
            streams: HashMap::new(),
            next_stream: 0,
        }
    }

    /// Reports each call to the attempt's live view as it finishes.
    pub fn with_live(mut self, live: Arc<host_runtime::live::AttemptLive>) -> Self {
        self.live = Some(live);
        self
    }

    /// The next place in the attempt's record of calls.
    fn next_key(&mut self) -> CallKey {
        let n = self.next_n;
        self.next_n = self.next_n.saturating_add(1);
        CallKey {
            iteration: self.iteration,
            attempt: self.attempt,
            n,
        }
    }

    /// Keeps a finished call for the attempt's report; `committed` says
    /// whether the store has it already (else the attempt's end commits it).
    fn keep(&mut self, key: CallKey, call: ModelCall, committed: bool) {
        if let Some(live) = &self.live {
            live.model_called(&call);
        }
        if !committed {
            self.unsaved.insert(self.calls.len());
        }
        self.calls.push(call);
        self.keys.push(key);
    }

    pub fn calls(&self) -> &[ModelCall] {
        &self.calls
    }

    pub fn take_calls(&mut self) -> Vec<ModelCall> {
        self.keys.clear();
        self.unsaved.clear();
        self.refusals.clear();
        std::mem::take(&mut self.calls)
    }

    /// What this attempt added to sessions, to commit with its success.
    pub fn take_session_appends(&mut self) -> Vec<(String, Vec<ChatMessage>)> {
        std::mem::take(&mut self.session_appends)
            .into_iter()
            .collect()
    }

    /// Refuses a call. The first refusal of its kind is recorded and
    /// committed at once; identical ones after it only count.
    fn refuse(
        &mut self,
        alias: &str,
        session: Option<&str>,
        error: wit::ModelError,
    ) -> wit::ModelError {
        let reason = reason_of(&error);
        let mut kind: RefusalKind = (alias.to_string(), session.map(str::to_string), reason);
        if !self.refusals.contains_key(&kind)
            && self.refusals.len() >= host_vocab::limits::MAX_DISTINCT_REFUSALS
        {
            kind = ("*".into(), None, reason);
        }
        if let Some(&i) = self.refusals.get(&kind) {
            self.calls[i].count = self.calls[i].count.saturating_add(1);
            self.unsaved.insert(i);
            return error;
        }
        tracing::warn!(stage = %self.stage_id, alias, "model call refused: {}", error_text(&error));
        let call = ModelCall {
            alias: kind.0.clone(),
            error: Some(error_text(&error)),
            source: CallSource::Refused,
            session: kind.1.clone(),
            ..ModelCall::default()
        };
        let key = self.next_key();
        let committed = match &self.store {
            Some(store) => {
                let (run, stage) = (&self.run_id, &self.stage_id);
                tokio::task::block_in_place(|| store.model_call_done(run, stage, key, &call))
                    .is_ok()
            }
            None => false,
        };
        self.refusals.insert(kind, self.calls.len());
        self.keep(key, call, committed);
        error
    }

    /// The session's messages so far: committed ones, then this attempt's.
    fn history(&self, session: &str) -> Result<Vec<ChatMessage>, String> {
        let mut messages = match &self.store {
            Some(store) => tokio::task::block_in_place(|| store.session(&self.run_id, session))
                .map_err(|e| format!("cannot read session '{session}': {e}"))?,
            None => Vec::new(),
        };
        if let Some(pending) = self.session_appends.get(session) {
            messages.extend(pending.iter().cloned());
        }
        Ok(messages)
    }

    /// What a call needs of the grant, owned: a call may outlive the
    /// host function that started it (a stream the plugin reads later).
    fn caller(&self) -> Caller {
        Caller {
            stage_id: self.stage_id.clone(),
            run_id: self.run_id.clone(),
            run_budget: self.run_budget,
            stage_budget: self.stage_budget,
            ledger: self.ledger.clone(),
            exchanges: self.exchanges.clone(),
            store: self.store.clone(),
            deadline: self.deadline,
            live: self.live.clone(),
        }
    }

    async fn complete_one(&self, call: &Prepared) -> (Answer, ModelCall, bool) {
        self.caller().complete_one(call, None).await
    }

    /// Checks a call against the grant and builds its request (with the
    /// session's history first); a refusal is recorded here.
    fn prepare(
        &mut self,
        alias: &str,
        session: Option<&str>,
        messages: Vec<wit::Message>,
        params: wit::Params,
    ) -> Result<Prepared, wit::ModelError> {
        self.asked += 1;
        let Some(endpoint) = self.granted.get(alias).cloned() else {
            let reason = format!(
                "stage '{}' is not granted model alias '{alias}' (granted: {})",
                self.stage_id,
                listing(self.granted.keys())
            );
            return Err(self.refuse(alias, session, wit::ModelError::NotGranted(reason)));
        };
        if let Some(name) = session
            && !self.sessions.iter().any(|s| s == name)
        {
            let reason = format!(
                "stage '{}' is not granted session '{name}' (granted: {})",
                self.stage_id,
                listing(self.sessions.iter())
            );
            return Err(self.refuse(alias, session, wit::ModelError::NotGranted(reason)));
        }
        let new_messages = to_messages(messages);
        let timeout = params
            .timeout_ms
            .map(|ms| Duration::from_millis(u64::from(ms)));
        let mut request = to_request(new_messages.clone(), params);
        if let Some(name) = session {
            let mut all = match self.history(name) {
                Ok(h) => h,
                Err(e) => {
                    return Err(self.refuse(alias, session, wit::ModelError::Unavailable(e)));
                }
            };
            all.extend(request.messages);
            request.messages = all;
        }
        // Its place now: calls of a batch are recorded in the order they
        // were asked for, whenever they finish.
        let key = self.next_key();
        Ok(Prepared {
            alias: alias.to_string(),
            session: session.map(str::to_string),
            endpoint,
            request,
            new_messages,
            key,
            timeout,
        })
    }

    /// Keeps an answered call (and, in a session, what it added); a
    /// refusal joins the identical ones.
    fn settle(
        &mut self,
        call: Prepared,
        answer: Answer,
        record: ModelCall,
        committed: bool,
    ) -> Result<wit::Completion, wit::ModelError> {
        let Prepared {
            alias,
            session,
            new_messages,
            key,
            ..
        } = call;
        match answer.response {
            Err(e) if answer.source == CallSource::Refused => {
                Err(self.refuse(&alias, session.as_deref(), e))
            }
            Err(e) => {
                tracing::warn!(stage = %self.stage_id, alias = %alias, "model call failed: {}", error_text(&e));
                self.keep(key, record, committed);
                Err(e)
            }
            Ok(r) => {
                let completion = wit::Completion {
                    text: r.text.clone(),
                    model: record.model.clone(),
                    input_tokens: r.input_tokens,
                    output_tokens: r.output_tokens,
                    finish_reason: r.finish_reason.clone(),
                };
                self.keep(key, record, committed);
                if let Some(name) = &session {
                    let pending = self.session_appends.entry(name.clone()).or_default();
                    pending.extend(new_messages);
                    pending.push(ChatMessage {
                        role: Role::Assistant,
                        content: r.text,
                    });
                }
                Ok(completion)
            }
        }
    }

    async fn call(
        &mut self,
        alias: String,
        session: Option<String>,
        messages: Vec<wit::Message>,
        params: wit::Params,
    ) -> Result<wit::Completion, wit::ModelError> {
        let call = self.prepare(&alias, session.as_deref(), messages, params)?;
        let (answer, record, committed) = self.complete_one(&call).await;
        self.settle(call, answer, record, committed)
    }

    /// Every request of a batch: checked in order, answered concurrently
    /// (a bounded number in flight), recorded in order.
    async fn call_all(
        &mut self,
        requests: Vec<wit::Request>,
    ) -> Vec<Result<wit::Completion, wit::ModelError>> {
        use futures_util::StreamExt;
        let prepared: Vec<Result<Prepared, wit::ModelError>> = requests
            .into_iter()
            .map(|r| self.prepare(&r.alias, None, r.messages, r.params))
            .collect();
        let started = Instant::now();
        let this = &*self;
        let pending: Vec<_> = prepared
            .iter()
            .map(|p| async move {
                match p {
                    Ok(call) => Some(this.complete_one(call).await),
                    Err(_) => None,
                }
            })
            .collect();
        let answers: Vec<_> = futures_util::stream::iter(pending)
            .buffered(host_vocab::limits::MAX_BATCH_IN_FLIGHT)
            .collect()
            .await;
        tracing::debug!(stage = %self.stage_id, n = answers.len(), elapsed = ?started.elapsed(), "batch answered");
        prepared
            .into_iter()
            .zip(answers)
            .map(|(p, a)| match (p, a) {
                (Ok(call), Some((answer, record, committed))) => {
                    self.settle(call, answer, record, committed)
                }
                (Err(e), _) => Err(e),
                (Ok(_), None) => Err(wit::ModelError::Unavailable("no answer".into())),
            })
            .collect()
    }
}

/// A call that passed the grant's checks, ready to send.
struct Prepared {
    alias: String,
    session: Option<String>,
    endpoint: Arc<Endpoint>,
    request: ChatRequest,
    new_messages: Vec<ChatMessage>,
    key: CallKey,
    /// The call's own `timeout-ms`, within the attempt's.
    timeout: Option<Duration>,
}

impl Prepared {
    /// The call as the record keeps it, once answered.
    fn record(&self, answer: &Answer, latency: Duration) -> ModelCall {
        let r = answer.response.as_ref().ok();
        let model = match r {
            Some(r) if !r.model.is_empty() => r.model.clone(),
            _ => self.endpoint.provider.model().to_string(),
        };
        let abandoned = answer.abandoned.as_ref();
        let tokens = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        ModelCall {
            alias: self.alias.clone(),
            model,
            input_tokens: r.map_or(abandoned.map_or(0, |e| tokens(e.input)), |r| r.input_tokens),
            output_tokens: r.map_or(abandoned.map_or(0, |e| tokens(e.output)), |r| {
                r.output_tokens
            }),
            cost_usd: match (answer.source, r) {
                (CallSource::Provider, Some(r)) => self
                    .endpoint
                    .cost(r.input_tokens.into(), r.output_tokens.into()),
                _ => abandoned.map_or(0.0, |e| e.cost_usd),
            },
            unsettled: abandoned.is_some(),
            latency,
            retries: answer.retries,
            error: answer.response.as_ref().err().map(error_text),
            source: answer.source,
            session: self.session.clone(),
            ..ModelCall::default()
        }
    }
}

/// A call's worst case, reserved against budgets before it is sent (and
/// what it counts as if no answer is ever recorded).
struct Estimate {
    input: u64,
    output: u64,
    cost_usd: f64,
}

impl Estimate {
    /// The call at its worst case.
    fn usage(&self) -> Usage {
        Usage {
            tokens: self.input + self.output,
            cost_usd: self.cost_usd,
            calls: 1,
        }
    }

    fn ask(&self, endpoint: &Endpoint) -> Ask {
        Ask {
            input_tokens: self.input,
            max_output: (self.output > 0).then_some(self.output),
            price_in_per_token: endpoint.spec.price_in_per_1k / 1000.0,
            price_out_per_token: endpoint.spec.price_out_per_1k / 1000.0,
        }
    }

    /// The worst case once the answer is capped to `output` tokens.
    fn capped(&mut self, endpoint: &Endpoint, output: u64) {
        self.output = output;
        self.cost_usd = endpoint.cost(self.input, output);
    }
}

/// The prompt at a token per three bytes and a few tokens of framing per
/// message (on the high side: under a token budget, what the prompt may
/// cost decides how long the answer may be), plus every token the call may
/// generate (`max_tokens`; without it and without a budget, only the prompt
/// can be counted).
fn estimate(endpoint: &Endpoint, request: &ChatRequest) -> Estimate {
    let bytes: usize = request.messages.iter().map(|m| m.content.len()).sum();
    let input = (bytes / 3 + 4 * request.messages.len()) as u64;
    let output = u64::from(request.max_tokens.unwrap_or(0));
    Estimate {
        input,
        output,
        cost_usd: endpoint.cost(input, output),
    }
}

/// The live sink as a provider takes it.
fn sink_of(sink: Option<&streaming::LiveSink>) -> Option<&dyn crate::providers::TokenSink> {
    sink.map(|s| s as &dyn crate::providers::TokenSink)
}

fn listing<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

fn to_messages(messages: Vec<wit::Message>) -> Vec<ChatMessage> {
    messages
        .into_iter()
        .map(|m| ChatMessage {
            role: match m.role {
                wit::Role::System => Role::System,
                wit::Role::User => Role::User,
                wit::Role::Assistant => Role::Assistant,
            },
            content: m.content,
        })
        .collect()
}

fn to_request(messages: Vec<ChatMessage>, params: wit::Params) -> ChatRequest {
    // `timeout-ms` is how long the host waits, not part of the request
    // (nor of its cache key).
    ChatRequest {
        messages,
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
        | ProviderError::RateLimitedFor { .. }
        | ProviderError::Server { .. } => wit::ModelError::Unavailable(reason),
        ProviderError::Auth { .. }
        | ProviderError::Rejected { .. }
        | ProviderError::MissingKey(_) => wit::ModelError::Rejected(reason),
        ProviderError::Malformed(_) => wit::ModelError::BadResponse(reason),
    }
}

impl ModelsGrant {
    /// Ends the attempt if `more` calls would take it past `max_model_calls`
    /// (refused ones count: a loop asking for an alias it lacks is a runaway
    /// too). A batch is checked whole, before any of it is sent.
    fn within_calls(&self, more: usize) -> wasmtime::Result<()> {
        if self.asked.saturating_add(more) <= self.max_calls {
            return Ok(());
        }
        Err(wasmtime::Error::new(LimitReached::new(
            Bound::ModelCalls,
            self.max_calls,
            format!(
                "stage '{}' asked for {more} more model call(s) after {}",
                self.stage_id, self.asked
            ),
        )))
    }
}

impl Host for ModelsGrant {
    async fn complete(
        &mut self,
        alias: String,
        messages: Vec<wit::Message>,
        params: wit::Params,
    ) -> wasmtime::Result<Result<wit::Completion, wit::ModelError>> {
        self.within_calls(1)?;
        Ok(self.call(alias, None, messages, params).await)
    }

    async fn complete_all(
        &mut self,
        requests: Vec<wit::Request>,
    ) -> wasmtime::Result<Vec<Result<wit::Completion, wit::ModelError>>> {
        self.within_calls(requests.len())?;
        Ok(self.call_all(requests).await)
    }

    async fn converse(
        &mut self,
        alias: String,
        session: String,
        messages: Vec<wit::Message>,
        params: wit::Params,
    ) -> wasmtime::Result<Result<wit::Completion, wit::ModelError>> {
        self.within_calls(1)?;
        Ok(self.call(alias, Some(session), messages, params).await)
    }

    async fn complete_streamed(
        &mut self,
        alias: String,
        messages: Vec<wit::Message>,
        params: wit::Params,
    ) -> wasmtime::Result<
        Result<wasmtime::component::Resource<wit::CompletionStream>, wit::ModelError>,
    > {
        self.within_calls(1)?;
        Ok(self.open_stream(alias, messages, params).await)
    }

    async fn remaining(&mut self) -> wasmtime::Result<wit::BudgetLeft> {
        let left = self.ledger.as_ref().map_or(
            Left {
                tokens: None,
                cost_usd: None,
                calls: None,
            },
            |l| l.left(&self.stage_id, &self.run_budget, &self.stage_budget),
        );
        Ok(wit::BudgetLeft {
            tokens: left.tokens,
            cost_usd: left.cost_usd,
            calls: left.calls,
            attempt_calls: self.max_calls.saturating_sub(self.asked) as u64,
        })
    }
}

/// Usage per stage and for the whole run, from stage records: what a resumed
/// run had spent before this process.
pub fn usage_by_stage<'a>(
    stages: impl Iterator<Item = (&'a str, &'a [ModelCall])>,
) -> (Usage, HashMap<String, Usage>) {
    let mut run = Usage::default();
    let mut per_stage = HashMap::new();
    for (stage, calls) in stages {
        let u = usage_of(calls);
        run.tokens += u.tokens;
        run.cost_usd += u.cost_usd;
        run.calls += u.calls;
        per_stage.insert(stage.to_string(), u);
    }
    (run, per_stage)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{live, pipeline, scope, store};

    const TEXT: &str = r#"
[pipeline]
name = "p"
task = "t"

[models.small]
provider = "openai"
base_url = "http://127.0.0.1:9/v1"
model = "m"
max_retries = 0

[models.large]
provider = "openai"
base_url = "http://127.0.0.1:9/v1"
model = "m"

[[stage]]
id = "a"
plugin = "a.wasm"
models = ["small"]
sessions = ["chat"]
max_model_calls = 2
"#;

    fn say(text: &str) -> Vec<wit::Message> {
        vec![wit::Message {
            role: wit::Role::User,
            content: text.into(),
        }]
    }

    fn params() -> wit::Params {
        wit::Params {
            max_tokens: Some(4),
            temperature: None,
            stop: Vec::new(),
            timeout_ms: None,
        }
    }

    fn capability(p: &Pipeline) -> (ModelsCapability, tempfile::TempDir) {
        let (store, dir) = store();
        let _ = rustls::crypto::ring::default_provider().install_default();
        let cap = ModelsCapability::new(p, reqwest::Client::new(), store, ExchangeMode::default());
        (cap, dir)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn refuses_aliases_and_sessions_not_granted_and_records_the_refusal() {
        let (p, _dir) = pipeline(TEXT);
        let (cap, _state) = capability(&p);
        let live = live();
        let mut grant = Capability::grant(&cap, &scope(&p, "a", &live));
        match grant
            .complete("large".into(), say("hi"), params())
            .await
            .unwrap()
        {
            Err(wit::ModelError::NotGranted(why)) => {
                assert!(why.contains("'large'") && why.contains("small"), "{why}")
            }
            other => panic!("expected not-granted, got {other:?}"),
        }
        let r = grant
            .converse("small".into(), "other".into(), say("hi"), params())
            .await
            .unwrap();
        assert!(
            matches!(r, Err(wit::ModelError::NotGranted(why)) if why.contains("session 'other'"))
        );
        let mut activity = Activity::default();
        grant.finish(&mut activity).await;
        assert_eq!(activity.model_calls.len(), 2);
        assert!(
            activity
                .model_calls
                .iter()
                .all(|c| c.source == CallSource::Refused)
        );
        assert_eq!(activity.model_calls[0].alias, "large");
        assert_eq!(activity.model_calls[1].session.as_deref(), Some("other"));
        assert!(activity.session_appends.is_empty());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_attempt_makes_at_most_max_model_calls() {
        let (p, _dir) = pipeline(TEXT);
        let (cap, _state) = capability(&p);
        let live = live();
        let mut grant = Capability::grant(&cap, &scope(&p, "a", &live));
        for _ in 0..2 {
            let r = grant
                .complete("large".into(), say("hi"), params())
                .await
                .unwrap();
            assert!(matches!(r, Err(wit::ModelError::NotGranted(_))));
        }
        // The third ends the attempt with the bound, whatever it asks for.
        let trap = grant
            .complete("small".into(), say("hi"), params())
            .await
            .unwrap_err();
        let hit = trap.downcast_ref::<LimitReached>().unwrap();
        assert_eq!((hit.bound, hit.limit), (Bound::ModelCalls, 2));
        // A batch past the bound is refused whole, before any is sent.
        let batch = vec![
            wit::Request {
                alias: "small".into(),
                messages: say("hi"),
                params: params(),
            };
            3
        ];
        assert!(grant.complete_all(batch).await.is_err());
        // The two identical refusals are one record with a count.
        let counts: Vec<u32> = grant.calls().iter().map(|c| c.count).collect();
        assert_eq!(counts, [2]);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_unreachable_server_is_unavailable_and_costs_nothing() {
        let (p, _dir) = pipeline(TEXT);
        let (cap, _state) = capability(&p);
        let live = live();
        let mut grant = Capability::grant(&cap, &scope(&p, "a", &live));
        let r = grant
            .complete("small".into(), say("hi"), params())
            .await
            .unwrap();
        assert!(matches!(r, Err(wit::ModelError::Unavailable(_))), "{r:?}");
        let call = &grant.calls()[0];
        assert_eq!(call.source, CallSource::Provider);
        assert!(call.error.is_some());
        assert_eq!(
            usage_of(grant.calls()).calls,
            0,
            "a failed call is not paid"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_call_past_its_timeout_fails_and_counts_at_its_worst_case() {
        // A server that takes the request and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let text = TEXT
            .replace("http://127.0.0.1:9/v1", &url)
            .replace("task = \"t\"", "task = \"t\"\nbudget = { tokens = 10000 }");
        let (p, _dir) = pipeline(&text);
        let (cap, _state) = capability(&p);
        let live = live();
        let mut grant = Capability::grant(&cap, &scope(&p, "a", &live));
        let before = grant.remaining().await.unwrap();
        assert_eq!(before.tokens, Some(10_000));
        assert_eq!((before.cost_usd, before.calls), (None, None));
        assert_eq!(before.attempt_calls, 2);
        let mut timed = params();
        timed.timeout_ms = Some(300);
        let started = Instant::now();
        let r = grant
            .complete("small".into(), say("hi"), timed)
            .await
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        match r {
            Err(wit::ModelError::Unavailable(why)) => assert!(why.contains("300 ms"), "{why}"),
            other => panic!("expected unavailable, got {other:?}"),
        }
        // It may have been answered and charged after all: it counts.
        let call = &grant.calls()[0];
        assert!(call.unsettled && call.is_paid(), "{call:?}");
        assert_eq!(call.output_tokens, 4);
        let after = grant.remaining().await.unwrap();
        assert!(after.tokens.unwrap() < 10_000, "{after:?}");
        assert_eq!(after.attempt_calls, 1);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_grant_of_nothing_grants_no_alias() {
        let mut none = ModelsCapability::deny();
        let r = none
            .complete("small".into(), say("hi"), params())
            .await
            .unwrap();
        assert!(matches!(r, Err(wit::ModelError::NotGranted(_))));
    }
}
