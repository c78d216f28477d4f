//! The HTTP half every provider shares: one POST with a deadline, status
//! codes sorted into retryable and final errors, and the retry loop with
//! backoff and Retry-After. A provider only builds its body, names its auth
//! headers and parses its answer.

use super::retry::{RetryPolicy, parse_retry_after};
use super::sse::SseDecoder;
use super::{ChatResponse, ProviderError, StreamParser, TokenSink, WaitLimit, excerpt};
use std::time::{Duration, Instant};

/// How the API key goes on the wire.
#[derive(Debug, Clone, Copy)]
pub enum AuthStyle {
    /// `Authorization: Bearer KEY` (OpenAI and compatibles).
    Bearer,
    /// `x-api-key: KEY` (Anthropic).
    XApiKey,
}

pub struct HttpEndpoint {
    pub client: reqwest::Client,
    pub url: String,
    pub key_env: Option<String>,
    pub auth: AuthStyle,
    /// Extra headers every request carries (e.g. an API version).
    pub headers: Vec<(&'static str, &'static str)>,
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

/// A call's result and how many retries it took to get it, failed or not.
pub struct Attempted {
    pub result: Result<ChatResponse, ProviderError>,
    pub retries: u32,
}

enum Attempt {
    Done(ChatResponse),
    Retry(ProviderError, Option<Duration>),
    Fail(ProviderError),
}

type Parser = fn(&str) -> Result<ChatResponse, ProviderError>;

/// A call asked for as a stream: how to read its events, and where its
/// text goes.
pub struct Streaming<'a> {
    pub parser: &'a (dyn Fn() -> Box<dyn StreamParser> + Sync),
    pub sink: &'a dyn TokenSink,
}

/// Most bytes of one response read: an answer is text, and a server that
/// sends more must not fill the host's memory.
pub const MAX_RESPONSE_BYTES: usize = 16 << 20;

enum Body {
    TooLarge,
    Read(reqwest::Error),
}

/// The body as text, read piece by piece and refused once past `limit`
/// (a declared length past it is refused before a byte is read).
async fn read_capped(mut response: reqwest::Response, limit: usize) -> Result<String, Body> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(Body::TooLarge);
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(Body::Read)? {
        if bytes.len() + chunk.len() > limit {
            return Err(Body::TooLarge);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8(bytes)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

impl HttpEndpoint {
    /// Reads the key from its variable: never logged, never stored.
    fn key(&self) -> Result<Option<String>, ProviderError> {
        match &self.key_env {
            Some(var) => std::env::var(var)
                .map(Some)
                .map_err(|_| ProviderError::MissingKey(var.clone())),
            None => Ok(None),
        }
    }

    async fn attempt(
        &self,
        body: &serde_json::Value,
        key: Option<&str>,
        parse: Parser,
        stream: Option<&Streaming<'_>>,
    ) -> (Attempt, bool) {
        let mut shown = false;
        let attempt = self
            .attempt_inner(body, key, parse, stream, &mut shown)
            .await;
        (attempt, shown)
    }

    /// One request; `shown` is set once any of a streamed answer's text went
    /// to the sink.
    async fn attempt_inner(
        &self,
        body: &serde_json::Value,
        key: Option<&str>,
        parse: Parser,
        stream: Option<&Streaming<'_>>,
        shown: &mut bool,
    ) -> Attempt {
        let mut http = self.client.post(&self.url).timeout(self.timeout).json(body);
        for (name, value) in &self.headers {
            http = http.header(*name, *value);
        }
        if let Some(key) = key {
            http = match self.auth {
                AuthStyle::Bearer => http.bearer_auth(key),
                AuthStyle::XApiKey => http.header("x-api-key", key),
            };
        }
        let response = match http.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return Attempt::Retry(ProviderError::Timeout(self.timeout), None);
            }
            Err(e) => {
                let reason = root_cause(&e);
                let error = ProviderError::Unreachable {
                    url: self.url.clone(),
                    reason,
                };
                return Attempt::Retry(error, None);
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let event_stream = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if let (Some(stream), 200..=299, true) = (stream, status, event_stream) {
            return self.read_stream(response, stream, shown).await;
        }
        let text = match read_capped(response, MAX_RESPONSE_BYTES).await {
            Ok(t) => t,
            Err(Body::TooLarge) => {
                return Attempt::Fail(ProviderError::Malformed(format!(
                    "the response is larger than {} MiB: no model answer is",
                    MAX_RESPONSE_BYTES >> 20
                )));
            }
            Err(Body::Read(e)) if e.is_timeout() => {
                return Attempt::Retry(ProviderError::Timeout(self.timeout), None);
            }
            Err(Body::Read(e)) => {
                let reason = format!("cannot read body: {}", root_cause(&e));
                return Attempt::Retry(ProviderError::Malformed(reason), None);
            }
        };
        match status {
            200..=299 => match parse(&text) {
                Ok(r) => Attempt::Done(r),
                Err(e) => Attempt::Fail(e),
            },
            429 => Attempt::Retry(ProviderError::RateLimited { retries: 0 }, retry_after),
            401 | 403 => Attempt::Fail(ProviderError::Auth {
                status,
                key_env: self
                    .key_env
                    .clone()
                    .unwrap_or_else(|| "(no api_key_env set)".into()),
            }),
            // 5xx, including Anthropic's 529 "overloaded".
            500..=599 => {
                let body = excerpt(&text, 300);
                Attempt::Retry(ProviderError::Server { status, body }, retry_after)
            }
            _ => Attempt::Fail(ProviderError::Rejected {
                status,
                body: excerpt(&text, 300),
            }),
        }
    }

    /// Reads a streamed answer event by event, its text to the sink as it
    /// comes, within the same size cap as a whole one.
    async fn read_stream(
        &self,
        mut response: reqwest::Response,
        stream: &Streaming<'_>,
        shown: &mut bool,
    ) -> Attempt {
        let mut decoder = SseDecoder::default();
        let mut parser = (stream.parser)();
        let mut read = 0usize;
        loop {
            let chunk = match response.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) if e.is_timeout() => {
                    return Attempt::Retry(ProviderError::Timeout(self.timeout), None);
                }
                Err(e) => {
                    let reason = format!("the stream broke: {}", root_cause(&e));
                    return Attempt::Retry(ProviderError::Malformed(reason), None);
                }
            };
            read += chunk.len();
            if read > MAX_RESPONSE_BYTES {
                return Attempt::Fail(ProviderError::Malformed(format!(
                    "the streamed response is larger than {} MiB: no model answer is",
                    MAX_RESPONSE_BYTES >> 20
                )));
            }
            for event in decoder.feed(&chunk) {
                match parser.event(&event) {
                    Ok(Some(piece)) if !piece.is_empty() => {
                        *shown = true;
                        stream.sink.text(&piece);
                    }
                    Ok(_) => {}
                    Err(e) if e.is_transient() => return Attempt::Retry(e, None),
                    Err(e) => return Attempt::Fail(e),
                }
            }
        }
        if let Some(event) = decoder.finish()
            && let Err(e) = parser.event(&event)
        {
            return Attempt::Fail(e);
        }
        match parser.finish() {
            Ok(r) => Attempt::Done(r),
            // A stream that stopped before its end may go through whole
            // another time.
            Err(e) => Attempt::Retry(e, None),
        }
    }

    /// POSTs `body`, retrying transient failures per the policy.
    pub async fn post(
        &self,
        body: &serde_json::Value,
        parse: Parser,
        stream: Option<Streaming<'_>>,
        deadline: Option<Instant>,
    ) -> Attempted {
        let key = match self.key() {
            Ok(k) => k,
            Err(e) => {
                return Attempted {
                    result: Err(e),
                    retries: 0,
                };
            }
        };
        let mut retries = 0;
        loop {
            let (attempt, shown) = self
                .attempt(body, key.as_deref(), parse, stream.as_ref())
                .await;
            // Text already shown is not the answer of the call any more:
            // it is sent again, or it ends with an error.
            if shown && !matches!(attempt, Attempt::Done(_)) {
                let why = match &attempt {
                    Attempt::Retry(e, _) | Attempt::Fail(e) => e.to_string(),
                    Attempt::Done(_) => String::new(),
                };
                if let Some(s) = &stream {
                    s.sink.restart(&why);
                }
            }
            match attempt {
                Attempt::Done(r) => {
                    return Attempted {
                        result: Ok(r),
                        retries,
                    };
                }
                Attempt::Fail(e) => {
                    return Attempted {
                        result: Err(e),
                        retries,
                    };
                }
                // A wait that would outlast the attempt would only end in
                // its timeout, which would not say why: fail now, saying so.
                Attempt::Retry(ProviderError::RateLimited { .. }, Some(after))
                    if let Some(limit) = self.wait_limit(after, deadline) =>
                {
                    return Attempted {
                        result: Err(ProviderError::RateLimitedFor { wait: after, limit }),
                        retries,
                    };
                }
                Attempt::Retry(e, after) => {
                    if retries >= self.retry.max_retries {
                        let e = match e {
                            ProviderError::RateLimited { .. } => {
                                ProviderError::RateLimited { retries }
                            }
                            e => e,
                        };
                        return Attempted {
                            result: Err(e),
                            retries,
                        };
                    }
                    retries += 1;
                    let delay = match (after, deadline) {
                        // The server's wait, in full: it fits (checked above).
                        (Some(after), Some(_)) => after,
                        _ => self.retry.delay(retries, after),
                    };
                    if deadline.is_some_and(|d| Instant::now() + delay >= d) {
                        // The backoff would outlast the attempt: the error
                        // says more than the timeout would.
                        return Attempted {
                            result: Err(e),
                            retries: retries - 1,
                        };
                    }
                    tracing::debug!(url = %self.url, retry = retries, ?delay, "model call failed, retrying: {e}");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}

impl HttpEndpoint {
    /// `Some(limit)` when a server's `after` is longer than the call may
    /// wait: what is left before `deadline`, else the host's own cap.
    fn wait_limit(&self, after: Duration, deadline: Option<Instant>) -> Option<WaitLimit> {
        match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                (after >= left).then_some(WaitLimit::StageTimeout(left))
            }
            None => {
                (after > self.retry.max_delay).then_some(WaitLimit::HostCap(self.retry.max_delay))
            }
        }
    }
}

/// The innermost error message: reqwest's outer message alone says little.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
