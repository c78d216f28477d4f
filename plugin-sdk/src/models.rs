//! Chat completions through the host, by model alias.

use crate::bindings::orchestrator::stage::models as wit;

pub use wit::{Completion, ModelError, Params, Role};

/// One chat message.
pub type Message = wit::Message;

impl Message {
    pub fn system(content: impl Into<String>) -> Self {
        wit::Message {
            role: Role::System,
            content: content.into(),
        }
    }

    pub fn user(content: impl Into<String>) -> Self {
        wit::Message {
            role: Role::User,
            content: content.into(),
        }
    }

    pub fn assistant(content: impl Into<String>) -> Self {
        wit::Message {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

impl Default for Params {
    fn default() -> Self {
        Params {
            max_tokens: None,
            temperature: None,
            stop: Vec::new(),
        }
    }
}

impl Params {
    pub fn max_tokens(mut self, n: u32) -> Self {
        self.max_tokens = Some(n);
        self
    }

    pub fn temperature(mut self, t: f32) -> Self {
        self.temperature = Some(t);
        self
    }
}

/// Sends a conversation to the model behind `alias`.
pub fn complete(
    alias: &str,
    messages: &[Message],
    params: &Params,
) -> Result<Completion, ModelError> {
    wit::complete(alias, messages, params)
}

/// Asks the model behind `alias` one question, with an optional system prompt,
/// and returns the answer's text.
pub fn ask(
    alias: &str,
    system: Option<&str>,
    prompt: &str,
    params: &Params,
) -> Result<String, ModelError> {
    let mut messages = Vec::with_capacity(2);
    if let Some(system) = system {
        messages.push(Message::system(system));
    }
    messages.push(Message::user(prompt));
    complete(alias, &messages, params).map(|c| c.text)
}
