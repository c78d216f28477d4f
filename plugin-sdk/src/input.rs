//! What a stage attempt receives: the task, its typed config, upstream outputs.

use crate::bindings::orchestrator::stage::types as wit;
use crate::output::Artifact;
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
    pub artifacts: Vec<Artifact>,
    pub metrics: Vec<(String, f64)>,
}

impl Upstream {
    /// The artifact called `name`, if this stage produced one.
    pub fn artifact(&self, name: &str) -> Option<&Artifact> {
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
                    stage_id: u.stage_id,
                    summary: u.summary,
                    decision: u.decision,
                    artifacts: u.artifacts.into_iter().map(Artifact::from_wit).collect(),
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
    pub fn artifact(&self, name: &str) -> Option<&Artifact> {
        self.upstream.iter().find_map(|u| u.artifact(name))
    }

    /// The first upstream artifact called `name` as UTF-8 text.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.artifact(name).and_then(Artifact::as_text)
    }
}
