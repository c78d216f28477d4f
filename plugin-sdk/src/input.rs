//! What a stage attempt receives: the task, its typed config, upstream outputs.

use crate::bindings::orchestrator::stage::types as wit;
// In a component the host's own functions; anywhere else (a plugin's
// `cargo test`) the test host installed on the thread (crate::testing).
#[cfg(target_arch = "wasm32")]
use crate::bindings::orchestrator::stage::inputs as host;
#[cfg(not(target_arch = "wasm32"))]
use crate::testing::inputs as host;
use serde::de::DeserializeOwned;

/// A stage's `config` table could not be read as the plugin expects.
#[derive(Debug, thiserror::Error)]
#[error("invalid config for stage '{stage}': {source}")]
pub struct ConfigError {
    stage: String,
    #[source]
    source: serde_json::Error,
}

/// Everything one stage attempt is given.
#[derive(Debug, Clone)]
pub struct Input {
    run_id: String,
    stage_id: String,
    task: String,
    config_json: String,
    upstream: Vec<Upstream>,
    attempt: u32,
    iteration: u32,
    feedback: Option<String>,
}

/// The outputs of one upstream stage.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub stage_id: String,
    pub summary: String,
    pub decision: Option<String>,
    pub artifacts: Vec<InputArtifact>,
    pub metrics: Vec<(String, f64)>,
}

impl Upstream {
    /// An upstream stage with a summary and nothing else yet (for tests).
    pub fn new(stage_id: &str, summary: &str) -> Self {
        Upstream {
            stage_id: stage_id.into(),
            summary: summary.into(),
            decision: None,
            artifacts: Vec::new(),
            metrics: Vec::new(),
        }
    }

    /// Adds an artifact with its content (for tests).
    pub fn with_artifact(
        mut self,
        name: &str,
        media_type: &str,
        bytes: impl Into<Vec<u8>>,
    ) -> Self {
        let artifact = InputArtifact::with_content(&self.stage_id, name, media_type, bytes.into());
        self.artifacts.push(artifact);
        self
    }

    /// The artifact called `name`, if this stage produced one.
    pub fn artifact(&self, name: &str) -> Option<&InputArtifact> {
        self.artifacts.iter().find(|a| a.name == name)
    }

    /// The metric called `name`, if this stage reported one.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }
}

/// Why an upstream artifact's bytes could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("cannot read artifact '{name}' of stage '{stage}': {reason}")]
pub struct ReadError {
    pub stage: String,
    pub name: String,
    pub reason: String,
}

/// The most the host returns per read: larger reads go in pieces.
const MAX_READ: u64 = 16 << 20;

/// An upstream artifact: what it is, and its bytes when asked for. The host
/// hands a stage references only; reading the whole of an artifact (with
/// [`InputArtifact::bytes`], [`InputArtifact::as_text`] or
/// [`InputArtifact::as_json`]) fetches it once and keeps it, reading a
/// range ([`InputArtifact::range`]) or streaming it
/// ([`InputArtifact::reader`]) keeps only what is asked for. A stage that
/// reads nothing of a 60 MiB artifact pays nothing for it.
#[derive(Debug, Clone)]
pub struct InputArtifact {
    /// The upstream stage that produced it.
    pub stage_id: String,
    pub name: String,
    pub media_type: String,
    /// Its length in bytes.
    pub size: u64,
    /// blake3 of its content (64 hex digits; empty for content given with
    /// [`InputArtifact::with_content`]).
    pub hash: String,
    content: std::sync::OnceLock<Result<Vec<u8>, ReadError>>,
}

impl InputArtifact {
    fn from_wit(stage_id: &str, a: wit::ArtifactRef) -> Self {
        InputArtifact {
            stage_id: stage_id.to_string(),
            name: a.name,
            media_type: a.media_type,
            size: a.size,
            hash: a.hash,
            content: std::sync::OnceLock::new(),
        }
    }

    /// An artifact whose content is known (tests, or a plugin's own data).
    pub fn with_content(stage_id: &str, name: &str, media_type: &str, bytes: Vec<u8>) -> Self {
        InputArtifact {
            stage_id: stage_id.to_string(),
            name: name.to_string(),
            media_type: media_type.to_string(),
            size: bytes.len() as u64,
            // Not hashed: the SDK carries no hasher (a host's hash is blake3).
            hash: String::new(),
            content: std::sync::OnceLock::from(Ok(bytes)),
        }
    }

    /// The whole content, read from the host the first time.
    pub fn bytes(&self) -> Result<&[u8], ReadError> {
        self.content
            .get_or_init(|| self.range(0, self.size))
            .as_ref()
            .map(Vec::as_slice)
            .map_err(Clone::clone)
    }

    /// The content as UTF-8 text, if it can be read and is text.
    pub fn as_text(&self) -> Option<&str> {
        std::str::from_utf8(self.bytes().ok()?).ok()
    }

    /// The content parsed as JSON into `T` (a read failure is an error too).
    pub fn as_json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        let bytes = self
            .bytes()
            .map_err(<serde_json::Error as serde::de::Error>::custom)?;
        serde_json::from_slice(bytes)
    }

    /// Up to `len` bytes from `offset` (fewer at the end, none past it),
    /// without reading the rest.
    pub fn range(&self, offset: u64, len: u64) -> Result<Vec<u8>, ReadError> {
        if let Some(Ok(all)) = self.content.get() {
            let start = usize::try_from(offset).unwrap_or(usize::MAX).min(all.len());
            let end = start.saturating_add(usize::try_from(len).unwrap_or(usize::MAX));
            return Ok(all[start..end.min(all.len())].to_vec());
        }
        let end = offset.saturating_add(len).min(self.size);
        let mut out = Vec::with_capacity(usize::try_from(end.saturating_sub(offset)).unwrap_or(0));
        let mut at = offset;
        while at < end {
            let piece = (end - at).min(MAX_READ) as u32;
            let bytes =
                host::read(&self.stage_id, &self.name, at, piece).map_err(|reason| ReadError {
                    stage: self.stage_id.clone(),
                    name: self.name.clone(),
                    reason,
                })?;
            if bytes.is_empty() {
                break;
            }
            at += bytes.len() as u64;
            out.extend_from_slice(&bytes);
        }
        Ok(out)
    }

    /// The content as a `std::io::Read`, fetched a piece at a time: for
    /// a line-by-line pass over a large JSONL artifact, say.
    pub fn reader(&self) -> ArtifactReader<'_> {
        ArtifactReader {
            artifact: self,
            at: 0,
            buffer: Vec::new(),
            pos: 0,
        }
    }
}

/// Reads an [`InputArtifact`] in pieces (see [`InputArtifact::reader`]).
pub struct ArtifactReader<'a> {
    artifact: &'a InputArtifact,
    at: u64,
    buffer: Vec<u8>,
    pos: usize,
}

/// How much of an artifact a reader fetches at once.
const READ_PIECE: u64 = 1 << 20;

impl std::io::Read for ArtifactReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos == self.buffer.len() {
            if self.at >= self.artifact.size {
                return Ok(0);
            }
            self.buffer = self
                .artifact
                .range(self.at, READ_PIECE)
                .map_err(std::io::Error::other)?;
            self.pos = 0;
            self.at += self.buffer.len() as u64;
            if self.buffer.is_empty() {
                return Ok(0);
            }
        }
        let n = out.len().min(self.buffer.len() - self.pos);
        out[..n].copy_from_slice(&self.buffer[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Input {
    /// Builds an input by hand: for unit tests of a plugin's logic outside a host.
    pub fn for_test(stage_id: &str, task: &str, config: serde_json::Value) -> Self {
        Input {
            run_id: "test-run".into(),
            stage_id: stage_id.into(),
            task: task.into(),
            config_json: config.to_string(),
            upstream: Vec::new(),
            attempt: 1,
            iteration: 0,
            feedback: None,
        }
    }

    /// Adds an upstream stage's outputs (for tests).
    pub fn with_upstream(mut self, upstream: Upstream) -> Self {
        self.upstream.push(upstream);
        self
    }

    pub(crate) fn from_wit(input: wit::StageInput) -> Self {
        Input {
            run_id: input.run_id,
            stage_id: input.stage_id,
            task: input.task,
            config_json: input.config_json,
            upstream: input
                .inputs
                .into_iter()
                .map(|u| Upstream {
                    stage_id: u.stage_id.clone(),
                    summary: u.summary,
                    decision: u.decision,
                    artifacts: {
                        let stage = &u.stage_id;
                        u.artifacts
                            .into_iter()
                            .map(|a| InputArtifact::from_wit(stage, a))
                            .collect()
                    },
                    metrics: u.metrics.into_iter().map(|m| (m.name, m.value)).collect(),
                })
                .collect(),
            attempt: input.attempt,
            iteration: input.iteration,
            feedback: input.feedback,
        }
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    pub fn stage_id(&self) -> &str {
        &self.stage_id
    }

    /// The pipeline's task, as the user wrote it.
    pub fn task(&self) -> &str {
        &self.task
    }

    /// 1 on the first attempt, 2 on the first retry...
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// How many times a loop has sent the run back to this stage.
    pub fn iteration(&self) -> u32 {
        self.iteration
    }

    /// Findings from a later stage (or a previous attempt's error), if any.
    pub fn feedback(&self) -> Option<&str> {
        self.feedback.as_deref()
    }

    /// The stage's `config` table, deserialized into the plugin's own type.
    /// Missing keys fall back to the type's serde defaults.
    pub fn config<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        serde_json::from_str(&self.config_json).map_err(|source| ConfigError {
            stage: self.stage_id.clone(),
            source,
        })
    }

    /// The raw config as JSON text.
    pub fn config_json(&self) -> &str {
        &self.config_json
    }

    /// All upstream stages, in the order of this stage's `after` list.
    pub fn upstream(&self) -> &[Upstream] {
        &self.upstream
    }

    /// The outputs of the upstream stage `stage_id`.
    pub fn from_stage(&self, stage_id: &str) -> Option<&Upstream> {
        self.upstream.iter().find(|u| u.stage_id == stage_id)
    }

    /// The first upstream artifact called `name`, from whichever stage made it.
    pub fn artifact(&self, name: &str) -> Option<&InputArtifact> {
        self.upstream.iter().find_map(|u| u.artifact(name))
    }

    /// The first upstream artifact called `name` as UTF-8 text (read whole).
    pub fn text(&self, name: &str) -> Option<&str> {
        self.artifact(name).and_then(InputArtifact::as_text)
    }
}
