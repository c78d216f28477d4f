//! What the scheduler reports: each stage's result and the run's summary.

use crate::failure::StageFailure;
use crate::model_call::ModelCall;
use crate::stage_io::{ArtifactRef, StageOutput};
use crate::status::StageStatus;
use std::time::Duration;

/// Largest artifact a run keeps in memory once its stage has finished.
pub const HELD_ARTIFACT_BYTES: u64 = 1 << 20;

/// Whether a finished stage's artifact stays in the run's memory: small
/// ones, and the ones the host itself reads after the stage (its spawn
/// requests, loop feedback, workspace changes), whatever their size.
pub fn held_in_memory(name: &str, size: u64) -> bool {
    size <= HELD_ARTIFACT_BYTES
        || name == crate::output_rules::CHANGES_ARTIFACT
        || name == crate::output_rules::SPAWN_ARTIFACT
        || name.starts_with("feedback")
}

/// How one stage ended.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StageResult {
    pub id: String,
    pub status: StageStatus,
    pub attempts: u32,
    #[serde(with = "crate::time::millis")]
    pub elapsed: Duration,
    /// The output, with the artifacts a run keeps in memory (see
    /// [`held_in_memory`]); every artifact is in `artifacts`.
    #[serde(skip)]
    pub output: Option<StageOutput>,
    /// Every artifact of the output, by reference to the store.
    #[serde(skip)]
    pub artifacts: Vec<ArtifactRef>,
    /// Content hash of the output: what downstream cache keys are built from.
    pub output_hash: Option<String>,
    pub summary: Option<String>,
    pub failure: Option<StageFailure>,
    pub skip_reason: Option<String>,
    /// Where the output came from when the stage did not run in this
    /// process: "cache of run X" or "earlier in this run".
    pub reused: Option<String>,
    pub model_calls: Vec<ModelCall>,
    /// Which pass of a loop produced this result (0: the first).
    pub iteration: u32,
    /// Whether a gate this stage ran (in its last attempt) failed.
    pub gates_failed: bool,
    /// For a spawned job: the stage that asked for it.
    pub parent: Option<String>,
}

impl StageResult {
    pub fn new(id: &str, status: StageStatus) -> Self {
        StageResult {
            id: id.to_string(),
            status,
            attempts: 0,
            elapsed: Duration::ZERO,
            output: None,
            artifacts: Vec::new(),
            output_hash: None,
            summary: None,
            failure: None,
            skip_reason: None,
            reused: None,
            model_calls: Vec::new(),
            iteration: 0,
            gates_failed: false,
            parent: None,
        }
    }

    /// A stage that succeeded before this process took over the run.
    pub fn restored(
        id: &str,
        attempts: u32,
        output: StageOutput,
        artifacts: Vec<ArtifactRef>,
        content_hash: String,
        note: String,
    ) -> Self {
        StageResult {
            attempts,
            summary: Some(output.summary.clone()),
            output_hash: Some(content_hash),
            reused: Some(note),
            ..StageResult::new(id, StageStatus::Succeeded)
        }
        .holding(output, artifacts)
    }

    /// Keeps `output` with only the artifacts held in memory (the rest are
    /// read from the store when wanted), and every artifact by reference:
    /// what a run holds for a finished stage does not grow with the size of
    /// what it produced.
    pub fn holding(mut self, mut output: StageOutput, artifacts: Vec<ArtifactRef>) -> Self {
        output
            .artifacts
            .retain(|a| held_in_memory(&a.name, a.bytes.len() as u64));
        self.output = Some(output);
        self.artifacts = artifacts;
        self
    }

    pub fn tokens(&self) -> u64 {
        crate::model_call::total_tokens(&self.model_calls)
    }

    pub fn cost_usd(&self) -> f64 {
        crate::model_call::total_cost_usd(&self.model_calls)
    }
}

/// How a run ended, beyond its stages' results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunOutcome {
    /// Every stage ran or was skipped; see the stages for failures.
    Finished,
    /// A loop hit its cap: the run needs a person.
    Escalated,
    /// Stages waited on each other and nothing could run.
    Deadlocked,
    /// Cancelled; the run can be resumed.
    Cancelled,
    /// The run's deadline passed.
    DeadlineExceeded,
}

/// A finished run: every stage's result in plan order.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub pipeline: String,
    #[serde(with = "crate::time::millis")]
    pub elapsed: Duration,
    pub outcome: RunOutcome,
    pub stages: Vec<StageResult>,
}

impl RunSummary {
    /// Nothing failed and the run was not cut short. Skipped stages are
    /// fine: a skip that follows a failure comes with that failure, and any
    /// other skip is a branch not taken (a `when` or an edge condition).
    pub fn succeeded(&self) -> bool {
        self.outcome == RunOutcome::Finished
            && self
                .stages
                .iter()
                .all(|s| matches!(s.status, StageStatus::Succeeded | StageStatus::Skipped))
    }
}
