//! OpenAI chat completions (`POST {base_url}/chat/completions`), the protocol
//! spoken by OpenAI, vLLM, Ollama, llama.cpp server, LM Studio and OpenRouter.

use super::retry::{RetryPolicy, parse_retry_after};
use super::{ChatRequest, ChatResponse, Provider, ProviderError, ProviderFuture, excerpt};
use crate::manifest::ModelSpec;
use serde::Deserialize;
use std::time::Duration;

pub struct OpenAiProvider {
    client: reqwest::Client,
    url: String,
    model: String,
    key_env: Option<String>,
    timeout: Duration,
    retry: RetryPolicy,
}

#[derive(Deserialize)]
struct WireResponse {
    #[serde(default)]
    model: Option<String>,
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChoice {
    message: WireMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u32,
    #[serde(default)]
    completion_tokens: u32,
}

enum Attempt {
    Done(ChatResponse),
    Retry(ProviderError, Option<Duration>),
    Fail(ProviderError),
}

impl OpenAiProvider {
    pub fn new(client: reqwest::Client, spec: &ModelSpec) -> Self {
        OpenAiProvider {
            client,
            url: format!("{}/chat/completions", spec.base_url),
            model: spec.model.clone(),
            key_env: spec.api_key_env.clone(),
            timeout: spec.timeout,
            retry: RetryPolicy::new(spec.max_retries),
        }
    }

    fn body(&self, request: &ChatRequest) -> serde_json::Value {
        let mut body = serde_json::json!({
            "model": self.model,
            "messages": request.messages.iter().map(|m| serde_json::json!({
                "role": m.role.as_str(),
                "content": m.content,
            })).collect::<Vec<_>>(),
        });
        if let Some(n) = request.max_tokens {
            body["max_tokens"] = n.into();
        }
        if let Some(t) = request.temperature {
            body["temperature"] = f64::from(t).into();
        }
        if !request.stop.is_empty() {
            body["stop"] = request.stop.clone().into();
        }
        body
    }

    async fn attempt(&self, body: &serde_json::Value, key: Option<&str>) -> Attempt {
        let mut http = self.client.post(&self.url).timeout(self.timeout).json(body);
        if let Some(key) = key {
            http = http.bearer_auth(key);
        }
        let response = match http.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return Attempt::Retry(ProviderError::Timeout(self.timeout), None);
            }
            Err(e) => {
                return Attempt::Retry(
                    ProviderError::Unreachable {
                        url: self.url.clone(),
                        reason: root_cause(&e),
                    },
                    None,
                );
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let text = match response.text().await {
            Ok(t) => t,
            Err(e) if e.is_timeout() => {
                return Attempt::Retry(ProviderError::Timeout(self.timeout), None);
            }
            Err(e) => {
                return Attempt::Retry(
                    ProviderError::Malformed(format!("cannot read body: {}", root_cause(&e))),
                    None,
                );
            }
        };
        match status {
            200..=299 => match parse_completion(&text) {
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
            500..=599 => Attempt::Retry(
                ProviderError::Server {
                    status,
                    body: excerpt(&text, 300),
                },
                retry_after,
            ),
            _ => Attempt::Fail(ProviderError::Rejected {
                status,
                body: excerpt(&text, 300),
            }),
        }
    }

    async fn complete_with_retries(
        &self,
        request: &ChatRequest,
    ) -> Result<ChatResponse, ProviderError> {
        let key = match &self.key_env {
            Some(var) => {
                Some(std::env::var(var).map_err(|_| ProviderError::MissingKey(var.clone()))?)
            }
            None => None,
        };
        let body = self.body(request);
        let mut retries = 0;
        loop {
            match self.attempt(&body, key.as_deref()).await {
                Attempt::Done(mut r) => {
                    r.retries = retries;
                    return Ok(r);
                }
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry(e, after) => {
                    if retries >= self.retry.max_retries {
                        return Err(match e {
                            ProviderError::RateLimited { .. } => {
                                ProviderError::RateLimited { retries }
                            }
                            e => e,
                        });
                    }
                    retries += 1;
                    let delay = self.retry.delay(retries, after);
                    tracing::debug!(url = %self.url, retry = retries, ?delay, "model call failed, retrying: {e}");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}

impl Provider for OpenAiProvider {
    fn model(&self) -> &str {
        &self.model
    }

    fn complete<'a>(&'a self, request: &'a ChatRequest) -> ProviderFuture<'a> {
        Box::pin(self.complete_with_retries(request))
    }
}

/// Parses a chat-completions body; anything else (an HTML page, an empty
/// choice list, a missing message) is a typed error.
pub fn parse_completion(text: &str) -> Result<ChatResponse, ProviderError> {
    let wire: WireResponse = serde_json::from_str(text).map_err(|e| {
        ProviderError::Malformed(format!("{e}; body starts: {}", excerpt(text, 160)))
    })?;
    let choice = wire
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| ProviderError::Malformed("the response has no choices".into()))?;
    let usage = wire.usage.unwrap_or(WireUsage {
        prompt_tokens: 0,
        completion_tokens: 0,
    });
    Ok(ChatResponse {
        text: choice.message.content.unwrap_or_default(),
        model: wire.model.unwrap_or_default(),
        input_tokens: usage.prompt_tokens,
        output_tokens: usage.completion_tokens,
        finish_reason: choice.finish_reason.unwrap_or_else(|| "unknown".into()),
        retries: 0,
    })
}

/// The innermost error message: reqwest's outer message alone says little.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_completion() {
        let r = parse_completion(
            r#"{"model":"m","choices":[{"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],
               "usage":{"prompt_tokens":5,"completion_tokens":1}}"#,
        )
        .unwrap();
        assert_eq!(
            (r.text.as_str(), r.input_tokens, r.output_tokens),
            ("hi", 5, 1)
        );
    }

    #[test]
    fn garbage_is_a_typed_error() {
        assert!(matches!(
            parse_completion("<html>502</html>"),
            Err(ProviderError::Malformed(_))
        ));
        assert!(
            matches!(parse_completion(r#"{"choices":[]}"#), Err(ProviderError::Malformed(m)) if m.contains("no choices"))
        );
        assert!(matches!(
            parse_completion(r#"{"choices":[{}]}"#),
            Err(ProviderError::Malformed(_))
        ));
    }
}
