//! What a successful stage attempt returns.

use crate::bindings::orchestrator::stage::types as wit;

/// A named piece of data with a media type.
#[derive(Debug, Clone, PartialEq)]
pub struct Artifact {
    pub name: String,
    pub media_type: String,
    pub bytes: Vec<u8>,
}

impl Artifact {
    /// The content as UTF-8 text, if it is.
    pub fn as_text(&self) -> Option<&str> {
        std::str::from_utf8(&self.bytes).ok()
    }

    /// The content parsed as JSON into `T`.
    pub fn as_json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.bytes)
    }
}

/// A stage's result, built step by step.
#[derive(Debug, Clone, Default)]
pub struct Output {
    summary: String,
    artifacts: Vec<Artifact>,
    metrics: Vec<(String, f64)>,
    decision: Option<String>,
}

impl Output {
    /// An output with a one-line summary of what the stage did.
    pub fn new(summary: impl Into<String>) -> Self {
        Output {
            summary: summary.into(),
            ..Output::default()
        }
    }

    /// Adds an artifact with an explicit media type.
    pub fn artifact(mut self, name: &str, media_type: &str, bytes: impl Into<Vec<u8>>) -> Self {
        self.artifacts.push(Artifact {
            name: name.to_string(),
            media_type: media_type.to_string(),
            bytes: bytes.into(),
        });
        self
    }

    /// Adds a UTF-8 text artifact (`text/plain`, or `text/markdown` for `.md` names).
    pub fn text(self, name: &str, text: impl Into<String>) -> Self {
        let media_type = if name.ends_with(".md") {
            "text/markdown"
        } else {
            "text/plain"
        };
        self.artifact(name, media_type, text.into().into_bytes())
    }

    /// Adds a JSON artifact serialized from `value`.
    pub fn json<T: serde::Serialize>(
        self,
        name: &str,
        value: &T,
    ) -> Result<Self, crate::StageError> {
        let bytes = serde_json::to_vec_pretty(value).map_err(|e| {
            crate::StageError::fatal(format!("cannot serialize artifact '{name}': {e}"))
        })?;
        Ok(self.artifact(name, "application/json", bytes))
    }

    /// Adds a metric.
    pub fn metric(mut self, name: &str, value: f64) -> Self {
        self.metrics.push((name.to_string(), value));
        self
    }

    /// Sets the routing decision later stages' `when` conditions can test.
    pub fn decision(mut self, decision: impl Into<String>) -> Self {
        self.decision = Some(decision.into());
        self
    }

    pub fn summary(&self) -> &str {
        &self.summary
    }

    pub fn artifacts(&self) -> &[Artifact] {
        &self.artifacts
    }

    pub fn metrics(&self) -> &[(String, f64)] {
        &self.metrics
    }

    pub fn decision_value(&self) -> Option<&str> {
        self.decision.as_deref()
    }

    pub(crate) fn into_wit(self) -> wit::StageOutput {
        wit::StageOutput {
            summary: self.summary,
            artifacts: self
                .artifacts
                .into_iter()
                .map(|a| wit::Artifact {
                    name: a.name,
                    media_type: a.media_type,
                    bytes: a.bytes,
                })
                .collect(),
            metrics: self
                .metrics
                .into_iter()
                .map(|(name, value)| wit::Metric { name, value })
                .collect(),
            decision: self.decision,
        }
    }
}
