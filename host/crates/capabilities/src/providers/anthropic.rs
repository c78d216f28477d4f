//! Anthropic Messages (`POST {base_url}/messages`): system prompt as its own
//! field, `max_tokens` required, content as a list of typed blocks.

use super::http::{AuthStyle, HttpEndpoint, Streaming};
use super::retry::RetryPolicy;
use super::sse::SseEvent;
use super::{
    ChatRequest, ChatResponse, Provider, ProviderError, ProviderFuture, Role, StreamParser,
    TokenSink, excerpt, prompt_estimate,
};
use host_manifest::ModelSpec;
use serde::Deserialize;
use std::time::Instant;

/// The API version this client speaks.
const API_VERSION: &str = "2023-06-01";
/// The API requires `max_tokens`; used when the plugin gives none.
const DEFAULT_MAX_TOKENS: u32 = 1024;

pub struct AnthropicProvider {
    http: HttpEndpoint,
    model: String,
    stream: bool,
}

#[derive(Deserialize)]
struct WireResponse {
    #[serde(default)]
    model: Option<String>,
    content: Vec<WireBlock>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireBlock {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    input_tokens: u32,
    #[serde(default)]
    output_tokens: u32,
}

impl AnthropicProvider {
    pub fn new(client: reqwest::Client, spec: &ModelSpec) -> Self {
        AnthropicProvider {
            http: HttpEndpoint {
                client,
                url: format!("{}/messages", spec.base_url),
                key_env: spec.api_key_env.clone(),
                auth: AuthStyle::XApiKey,
                headers: vec![("anthropic-version", API_VERSION)],
                timeout: spec.timeout,
                retry: RetryPolicy::new(spec.max_retries),
            },
            model: spec.model.clone(),
            stream: spec.stream,
        }
    }

    fn body(&self, request: &ChatRequest) -> serde_json::Value {
        // System messages become the top-level `system` field; the API
        // accepts only user and assistant turns in `messages`.
        let system: Vec<&str> = request
            .messages
            .iter()
            .filter(|m| m.role == Role::System)
            .map(|m| m.content.as_str())
            .collect();
        let messages: Vec<serde_json::Value> = request
            .messages
            .iter()
            .filter(|m| m.role != Role::System)
            .map(|m| serde_json::json!({ "role": m.role.as_str(), "content": m.content }))
            .collect();
        let mut body = serde_json::json!({
            "model": self.model,
            "max_tokens": request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
            "messages": messages,
        });
        if !system.is_empty() {
            body["system"] = system.join("\n\n").into();
        }
        if let Some(t) = request.temperature {
            body["temperature"] = f64::from(t).into();
        }
        if !request.stop.is_empty() {
            body["stop_sequences"] = request.stop.clone().into();
        }
        body
    }
}

impl Provider for AnthropicProvider {
    fn model(&self) -> &str {
        &self.model
    }

    fn complete<'a>(
        &'a self,
        request: &'a ChatRequest,
        deadline: Option<Instant>,
        sink: Option<&'a dyn TokenSink>,
    ) -> ProviderFuture<'a> {
        Box::pin(async move {
            let mut body = self.body(request);
            let Some(sink) = sink.filter(|_| self.stream) else {
                return self.http.post(&body, parse_message, None, deadline).await;
            };
            body["stream"] = true.into();
            let estimate = prompt_estimate(request);
            let parser = move || -> Box<dyn StreamParser> {
                Box::new(MessageStream {
                    input_tokens: estimate,
                    ..MessageStream::default()
                })
            };
            let stream = Streaming {
                parser: &parser,
                sink,
            };
            self.http
                .post(&body, parse_message, Some(stream), deadline)
                .await
        })
    }
}

/// A streamed Messages answer: `message_start` (model, input tokens),
/// `content_block_delta`s of text, `message_delta` (stop reason, output
/// tokens), `message_stop`; `ping`s between, `error` on trouble.
#[derive(Default)]
struct MessageStream {
    model: Option<String>,
    text: String,
    stop_reason: Option<String>,
    /// The prompt estimate until `message_start` says.
    input_tokens: u32,
    output_tokens: u32,
    done: bool,
}

impl StreamParser for MessageStream {
    fn event(&mut self, event: &SseEvent) -> Result<Option<String>, ProviderError> {
        if event.data.trim().is_empty() {
            return Ok(None);
        }
        let data: serde_json::Value = serde_json::from_str(&event.data).map_err(|e| {
            ProviderError::Malformed(format!(
                "{e}; stream event starts: {}",
                excerpt(&event.data, 160)
            ))
        })?;
        let kind = event
            .event
            .clone()
            .or_else(|| data["type"].as_str().map(str::to_string))
            .unwrap_or_default();
        let count =
            |v: &serde_json::Value| v.as_u64().map(|n| u32::try_from(n).unwrap_or(u32::MAX));
        match kind.as_str() {
            "message_start" => {
                let message = &data["message"];
                self.model = message["model"].as_str().map(str::to_string);
                if let Some(n) = count(&message["usage"]["input_tokens"]) {
                    self.input_tokens = n;
                }
                if let Some(n) = count(&message["usage"]["output_tokens"]) {
                    self.output_tokens = n;
                }
            }
            "content_block_delta" if data["delta"]["type"] == "text_delta" => {
                let piece = data["delta"]["text"].as_str().unwrap_or_default();
                self.text.push_str(piece);
                return Ok(Some(piece.to_string()));
            }
            "message_delta" => {
                if let Some(reason) = data["delta"]["stop_reason"].as_str() {
                    self.stop_reason = Some(reason.to_string());
                }
                if let Some(n) = count(&data["usage"]["output_tokens"]) {
                    self.output_tokens = n;
                }
            }
            "message_stop" => self.done = true,
            "error" => {
                let kind = data["error"]["type"].as_str().unwrap_or("error");
                let body = excerpt(&data["error"].to_string(), 300);
                // Overloaded and API errors pass; anything else is final.
                return Err(match kind {
                    "overloaded_error" | "api_error" => ProviderError::Server { status: 529, body },
                    _ => ProviderError::Rejected { status: 400, body },
                });
            }
            _ => {}
        }
        Ok(None)
    }

    fn finish(self: Box<Self>) -> Result<ChatResponse, ProviderError> {
        if !self.done {
            return Err(ProviderError::Malformed(
                "the stream ended before the answer did".into(),
            ));
        }
        Ok(ChatResponse {
            text: self.text,
            model: self.model.unwrap_or_default(),
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            finish_reason: self.stop_reason.unwrap_or_else(|| "unknown".into()),
        })
    }
}

/// Parses a Messages body: the text blocks joined; anything else is a typed
/// error.
pub fn parse_message(text: &str) -> Result<ChatResponse, ProviderError> {
    let wire: WireResponse = serde_json::from_str(text).map_err(|e| {
        ProviderError::Malformed(format!("{e}; body starts: {}", excerpt(text, 160)))
    })?;
    let texts: Vec<String> = wire
        .content
        .into_iter()
        .filter(|b| b.kind == "text")
        .filter_map(|b| b.text)
        .collect();
    if texts.is_empty() {
        return Err(ProviderError::Malformed(
            "the response has no text content block".into(),
        ));
    }
    let usage = wire.usage.unwrap_or(WireUsage {
        input_tokens: 0,
        output_tokens: 0,
    });
    Ok(ChatResponse {
        text: texts.concat(),
        model: wire.model.unwrap_or_default(),
        input_tokens: usage.input_tokens,
        output_tokens: usage.output_tokens,
        finish_reason: wire.stop_reason.unwrap_or_else(|| "unknown".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_streamed_message() {
        let events = [
            (
                "message_start",
                r#"{"type":"message_start","message":{"model":"claude-x","usage":{"input_tokens":12,"output_tokens":1}}}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            ),
            ("ping", r#"{"type":"ping"}"#),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" there"}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":0}"#,
            ),
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":3}}"#,
            ),
            ("message_stop", r#"{"type":"message_stop"}"#),
        ];
        let mut parser: Box<dyn StreamParser> = Box::new(MessageStream::default());
        let mut pieces = Vec::new();
        for (name, data) in events {
            let event = SseEvent {
                event: Some(name.into()),
                data: data.into(),
            };
            pieces.extend(parser.event(&event).unwrap());
        }
        assert_eq!(pieces, ["Hi", " there"]);
        let r = parser.finish().unwrap();
        assert_eq!(
            (r.text.as_str(), r.model.as_str()),
            ("Hi there", "claude-x")
        );
        assert_eq!((r.input_tokens, r.output_tokens), (12, 3));
        assert_eq!(r.finish_reason, "end_turn");
    }

    #[test]
    fn a_streamed_error_or_a_cut_stream_is_no_answer() {
        let mut parser: Box<dyn StreamParser> = Box::new(MessageStream::default());
        let overloaded = SseEvent {
            event: Some("error".into()),
            data: r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
                .into(),
        };
        let e = parser.event(&overloaded).unwrap_err();
        assert!(e.is_transient(), "{e}");
        let parser: Box<dyn StreamParser> = Box::new(MessageStream::default());
        assert!(parser.finish().is_err());
    }
    use crate::providers::ChatMessage;

    #[test]
    fn parses_a_message() {
        let r = parse_message(
            r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-x",
               "content":[{"type":"text","text":"Hel"},{"type":"text","text":"lo"}],
               "stop_reason":"end_turn","usage":{"input_tokens":12,"output_tokens":3}}"#,
        )
        .unwrap();
        assert_eq!(r.text, "Hello");
        assert_eq!((r.input_tokens, r.output_tokens), (12, 3));
        assert_eq!(r.finish_reason, "end_turn");
    }

    #[test]
    fn garbage_is_a_typed_error() {
        for body in [
            "<html>overloaded</html>",
            r#"{"content":[]}"#,
            r#"{"content":[{"type":"tool_use"}]}"#,
            r#"{"type":"error","error":{"type":"api_error","message":"boom"}}"#,
        ] {
            assert!(
                matches!(parse_message(body), Err(ProviderError::Malformed(_))),
                "{body}"
            );
        }
    }

    #[test]
    fn system_messages_move_to_the_system_field() {
        let spec = ModelSpec {
            alias: "a".into(),
            provider: host_manifest::ProviderKind::Anthropic,
            base_url: "http://x/v1".into(),
            model: "claude-x".into(),
            api_key_env: None,
            timeout: std::time::Duration::from_secs(1),
            max_retries: 0,
            price_in_per_1k: 0.0,
            price_out_per_1k: 0.0,
            cache: false,
            max_concurrent: None,
            stream: true,
        };
        let _ = rustls::crypto::ring::default_provider().install_default();
        let p = AnthropicProvider::new(reqwest::Client::new(), &spec);
        let body = p.body(&ChatRequest {
            messages: vec![
                ChatMessage {
                    role: Role::System,
                    content: "be brief".into(),
                },
                ChatMessage {
                    role: Role::User,
                    content: "hi".into(),
                },
            ],
            max_tokens: None,
            temperature: Some(0.0),
            stop: vec!["END".into()],
        });
        assert_eq!(body["system"], "be brief");
        assert_eq!(body["messages"].as_array().unwrap().len(), 1);
        assert_eq!(body["max_tokens"], DEFAULT_MAX_TOKENS);
        assert_eq!(body["stop_sequences"][0], "END");
    }
}
