//! OpenAI chat completions (`POST {base_url}/chat/completions`), the protocol
//! spoken by OpenAI, vLLM, Ollama, llama.cpp server, LM Studio and OpenRouter.

use super::http::{AuthStyle, HttpEndpoint, Streaming};
use super::retry::RetryPolicy;
use super::sse::SseEvent;
use super::{
    ChatRequest, ChatResponse, Provider, ProviderError, ProviderFuture, StreamParser, TokenSink,
    excerpt, prompt_estimate,
};
use host_manifest::ModelSpec;
use serde::Deserialize;
use std::time::Instant;

pub struct OpenAiProvider {
    http: HttpEndpoint,
    model: String,
    stream: bool,
    /// The server refused a streamed request (an older compatible server
    /// that knows no `stream_options`): it is asked whole from then on.
    stream_refused: std::sync::atomic::AtomicBool,
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
            stream: spec.stream,
            stream_refused: std::sync::atomic::AtomicBool::new(false),
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

    /// The body of a streamed request: usage asked for in the last chunk.
    fn stream_body(&self, request: &ChatRequest) -> serde_json::Value {
        let mut body = self.body(request);
        body["stream"] = true.into();
        body["stream_options"] = serde_json::json!({ "include_usage": true });
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
        sink: Option<&'a dyn TokenSink>,
    ) -> ProviderFuture<'a> {
        use std::sync::atomic::Ordering;
        Box::pin(async move {
            let refused = self.stream_refused.load(Ordering::Relaxed);
            match sink.filter(|_| self.stream && !refused) {
                None => {
                    self.http
                        .post(&self.body(request), parse_completion, None, deadline)
                        .await
                }
                Some(sink) => {
                    let estimate = prompt_estimate(request);
                    let parser = move || -> Box<dyn StreamParser> {
                        Box::new(ChunkStream {
                            prompt_estimate: estimate,
                            ..ChunkStream::default()
                        })
                    };
                    let stream = Streaming {
                        parser: &parser,
                        sink,
                    };
                    let body = self.stream_body(request);
                    let attempted = self
                        .http
                        .post(&body, parse_completion, Some(stream), deadline)
                        .await;
                    // A request refused as malformed only because it asked
                    // for a stream goes again, whole.
                    if let Err(ProviderError::Rejected {
                        status: 400 | 422,
                        body,
                    }) = &attempted.result
                    {
                        tracing::warn!(model = %self.model, "the server refused a streamed request ({body}); asking it for whole answers");
                        self.stream_refused.store(true, Ordering::Relaxed);
                        let mut whole = self
                            .http
                            .post(&self.body(request), parse_completion, None, deadline)
                            .await;
                        whole.retries += attempted.retries + 1;
                        return whole;
                    }
                    attempted
                }
            }
        })
    }
}

#[derive(Deserialize)]
struct WireChunk {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<WireChunkChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct WireChunkChoice {
    #[serde(default)]
    delta: Option<WireMessage>,
    #[serde(default)]
    finish_reason: Option<String>,
}

/// A streamed chat completion: `data:` chunks with `choices[0].delta`,
/// usage in the last one when the server honours `include_usage`, then
/// `data: [DONE]`.
#[derive(Default)]
struct ChunkStream {
    model: Option<String>,
    text: String,
    finish_reason: Option<String>,
    usage: Option<WireUsage>,
    /// Chunks that carried text: a server that reports no usage streams
    /// about one token per chunk.
    pieces: u32,
    prompt_estimate: u32,
    done: bool,
}

impl StreamParser for ChunkStream {
    fn event(&mut self, event: &SseEvent) -> Result<Option<String>, ProviderError> {
        let data = event.data.trim();
        if data == "[DONE]" {
            self.done = true;
            return Ok(None);
        }
        if data.is_empty() {
            return Ok(None);
        }
        let chunk: WireChunk = serde_json::from_str(data).map_err(|e| {
            ProviderError::Malformed(format!("{e}; stream event starts: {}", excerpt(data, 160)))
        })?;
        if let Some(error) = chunk.error {
            return Err(ProviderError::Server {
                status: 200,
                body: excerpt(&error.to_string(), 300),
            });
        }
        if chunk.model.is_some() {
            self.model = chunk.model;
        }
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
        let Some(choice) = chunk.choices.into_iter().next() else {
            return Ok(None);
        };
        if choice.finish_reason.is_some() {
            self.finish_reason = choice.finish_reason;
        }
        let piece = choice.delta.and_then(|d| d.content).unwrap_or_default();
        if !piece.is_empty() {
            self.pieces += 1;
            self.text.push_str(&piece);
        }
        Ok(Some(piece))
    }

    fn finish(self: Box<Self>) -> Result<ChatResponse, ProviderError> {
        if !self.done && self.finish_reason.is_none() {
            return Err(ProviderError::Malformed(
                "the stream ended before the answer did".into(),
            ));
        }
        let (input_tokens, output_tokens) = match self.usage {
            Some(u) => (u.prompt_tokens, u.completion_tokens),
            None => (self.prompt_estimate, self.pieces),
        };
        Ok(ChatResponse {
            text: self.text,
            model: self.model.unwrap_or_default(),
            input_tokens,
            output_tokens,
            finish_reason: self.finish_reason.unwrap_or_else(|| "unknown".into()),
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

    fn streamed(events: &[&str]) -> Result<ChatResponse, ProviderError> {
        let mut parser: Box<dyn StreamParser> = Box::new(ChunkStream {
            prompt_estimate: 9,
            ..ChunkStream::default()
        });
        let mut pieces = String::new();
        for data in events {
            let event = SseEvent {
                event: None,
                data: data.to_string(),
            };
            pieces.push_str(&parser.event(&event)?.unwrap_or_default());
        }
        let r = parser.finish()?;
        assert_eq!(pieces, r.text, "the pieces make the answer");
        Ok(r)
    }

    #[test]
    fn parses_a_streamed_completion_with_and_without_usage() {
        let r = streamed(&[
            r#"{"model":"m","choices":[{"delta":{"role":"assistant"}}]}"#,
            r#"{"choices":[{"delta":{"content":"Hel"}}]}"#,
            r#"{"choices":[{"delta":{"content":"lo"},"finish_reason":"stop"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}"#,
            "[DONE]",
        ])
        .unwrap();
        assert_eq!((r.text.as_str(), r.model.as_str()), ("Hello", "m"));
        assert_eq!((r.input_tokens, r.output_tokens), (5, 2));
        assert_eq!(r.finish_reason, "stop");
        // No usage: the prompt estimate, a token per piece.
        let r = streamed(&[
            r#"{"choices":[{"delta":{"content":"a"}}]}"#,
            r#"{"choices":[{"delta":{"content":"b"}}]}"#,
            "[DONE]",
        ])
        .unwrap();
        assert_eq!((r.input_tokens, r.output_tokens), (9, 2));
    }

    #[test]
    fn a_stream_cut_short_or_reporting_an_error_is_no_answer() {
        let cut = streamed(&[r#"{"choices":[{"delta":{"content":"a"}}]}"#]);
        assert!(matches!(cut, Err(ProviderError::Malformed(_))), "{cut:?}");
        let error = streamed(&[r#"{"error":{"message":"overloaded"}}"#]);
        assert!(
            matches!(error, Err(ProviderError::Server { .. })),
            "{error:?}"
        );
        let junk = streamed(&["<html>"]);
        assert!(matches!(junk, Err(ProviderError::Malformed(_))), "{junk:?}");
    }

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
