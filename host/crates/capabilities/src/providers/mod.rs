//! Model back ends behind one trait. The host owns every model call: plugins
//! name an alias, and the provider behind it holds the URL and credentials.

mod anthropic;
mod http;
mod openai;
mod retry;
mod sse;

pub use anthropic::AnthropicProvider;
pub use http::Attempted;
pub use openai::OpenAiProvider;
pub use retry::RetryPolicy;

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

pub use host_vocab::{ChatMessage, Role};

/// A provider-neutral chat request.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub stop: Vec<String>,
}

/// A provider-neutral answer.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChatResponse {
    pub text: String,
    pub model: String,
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub finish_reason: String,
}

/// Why a provider call failed, after its retries.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderError {
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("rate limited (HTTP 429) after {retries} retries")]
    RateLimited { retries: u32 },
    /// The server asked to wait longer than the call may wait.
    #[error(
        "rate limited (HTTP 429): the server asks to wait {}s, longer than {}",
        .wait.as_secs(),
        .limit
    )]
    RateLimitedFor { wait: Duration, limit: WaitLimit },
    #[error("server error HTTP {status}: {body}")]
    Server { status: u16, body: String },
    #[error("authentication failed (HTTP {status}): check the key in ${key_env}")]
    Auth { status: u16, key_env: String },
    #[error("request rejected (HTTP {status}): {body}")]
    Rejected { status: u16, body: String },
    #[error("malformed response: {0}")]
    Malformed(String),
    #[error("API key variable ${0} is not set")]
    MissingKey(String),
}

/// How long a call may wait before a retry, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitLimit {
    /// What is left of the attempt's timeout.
    StageTimeout(Duration),
    /// The host's own cap, when no deadline is known.
    HostCap(Duration),
}

impl std::fmt::Display for WaitLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WaitLimit::StageTimeout(left) => {
                write!(f, "the {}s left of the stage's timeout", left.as_secs())
            }
            WaitLimit::HostCap(most) => {
                write!(f, "the {}s the host waits before a retry", most.as_secs())
            }
        }
    }
}

impl ProviderError {
    /// Whether trying the same request again later might succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ProviderError::Unreachable { .. }
                | ProviderError::Timeout(_)
                | ProviderError::RateLimited { .. }
                | ProviderError::RateLimitedFor { .. }
                | ProviderError::Server { .. }
        )
    }
}

pub type ProviderFuture<'a> = Pin<Box<dyn Future<Output = Attempted> + Send + 'a>>;

/// Where the text of a streamed answer goes as it arrives (the terminal,
/// the dashboard). What is durable is only the whole answer, recorded when
/// the call ends: pieces are for watching.
pub trait TokenSink: Send + Sync {
    /// The next piece of the answer's text.
    fn text(&self, piece: &str);
    /// What came so far is not the answer: the call is sent again (a retry
    /// after the stream broke), or it failed.
    fn restart(&self, why: &str);
}

/// Builds an answer from a provider's stream of events.
pub(crate) trait StreamParser: Send {
    /// One event: the text it adds, if any, or the error it reports.
    fn event(&mut self, event: &sse::SseEvent) -> Result<Option<String>, ProviderError>;
    /// The answer, once the stream has ended; `Err` when it ended early.
    fn finish(self: Box<Self>) -> Result<ChatResponse, ProviderError>;
}

/// One model endpoint.
pub trait Provider: Send + Sync {
    /// The provider's name of the model, for records and errors.
    fn model(&self) -> &str;

    /// Answers `request`; waits for retries only while they can end before
    /// `deadline` (the attempt's timeout), if one is given. With `sink`,
    /// the answer is asked for as a stream and its text goes there as it
    /// comes (a server that answers whole is read whole).
    fn complete<'a>(
        &'a self,
        request: &'a ChatRequest,
        deadline: Option<Instant>,
        sink: Option<&'a dyn TokenSink>,
    ) -> ProviderFuture<'a>;
}

/// What a prompt is taken to cost when a stream does not say: a token per
/// three bytes and four per message (the budgets' estimate, on the high side).
pub(crate) fn prompt_estimate(request: &ChatRequest) -> u32 {
    let bytes: usize = request.messages.iter().map(|m| m.content.len()).sum();
    u32::try_from(bytes / 3 + 4 * request.messages.len()).unwrap_or(u32::MAX)
}

/// Keeps the head and the tail of a long error body.
pub(crate) fn excerpt(body: &str, max: usize) -> String {
    let body = body.trim();
    if body.len() <= max {
        return body.to_string();
    }
    let head = body
        .char_indices()
        .take_while(|(i, _)| *i < max / 2)
        .map(|(_, c)| c)
        .collect::<String>();
    let tail_start = body.len() - max / 2;
    let tail = body
        .char_indices()
        .filter(|(i, _)| *i >= tail_start)
        .map(|(_, c)| c)
        .collect::<String>();
    format!("{head} [...] {tail}")
}
