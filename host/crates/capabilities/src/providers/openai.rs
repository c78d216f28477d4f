//! OpenAI chat completions (`POST {base_url}/chat/completions`), the protocol
//! spoken by OpenAI, vLLM, Ollama, llama.cpp server, LM Studio and OpenRouter.

use super::http::{AuthStyle, HttpEndpoint};
use super::retry::RetryPolicy;
use super::{ChatRequest, ChatResponse, Provider, ProviderError, ProviderFuture, excerpt};
use host_manifest::ModelSpec;
use serde::Deserialize;
use std::time::Instant;

pub struct OpenAiProvider {
    http: HttpEndpoint,
    model: String,
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

impl OpenAiProvider {
    pub fn new(client: reqwest::Client, spec: &ModelSpec) -> Self {
        OpenAiProvider {
            http: HttpEndpoint {
                client,
                url: format!("{}/chat/completions", spec.base_url),
                key_env: spec.api_key_env.clone(),
                auth: AuthStyle::Bearer,
                headers: Vec::new(),
                timeout: spec.timeout,
                retry: RetryPolicy::new(spec.max_retries),
            },
            model: spec.model.clone(),
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
}

impl Provider for OpenAiProvider {
    fn model(&self) -> &str {
        &self.model
    }

    fn complete<'a>(
        &'a self,
        request: &'a ChatRequest,
        deadline: Option<Instant>,
    ) -> ProviderFuture<'a> {
        Box::pin(async move {
            self.http
                .post(&self.body(request), parse_completion, deadline)
                .await
        })
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
    })
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
