//! What the store keeps, as serde records (JSON inside redb values, so a
//! record can gain optional fields without a migration).

pub use host_vocab::{Activity, now_ms};
use host_vocab::{FileChange, GateRun, ModelCall, RunStatus, StageFailure, StageStatus};
use serde::{Deserialize, Serialize};

/// Identifies a live process well enough to tell it from a later one that
/// reused its pid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub pid: u32,
    /// The process start time from /proc (clock ticks since boot), if known.
    pub start_ticks: Option<u64>,
}

impl Owner {
    pub fn current() -> Self {
        let pid = std::process::id();
        Owner {
            pid,
            start_ticks: process_start_ticks(pid),
        }
    }

    /// Whether this process is still running: it exists, is not a zombie
    /// (killed, not yet reaped by its parent), and started when the owner
    /// did (its pid was not reused by a later process).
    pub fn is_alive(&self) -> bool {
        let Some(now) = process_stat(self.pid) else {
            return false;
        };
        if matches!(now.state, 'Z' | 'X' | 'x') {
            return false;
        }
        match self.start_ticks {
            Some(then) => now.start_ticks == then,
            None => true,
        }
    }
}

struct ProcessStat {
    state: char,
    start_ticks: u64,
}

fn process_stat(pid: u32) -> Option<ProcessStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces: fields are counted after its ')'.
    let mut after = stat[stat.rfind(')')? + 2..].split_whitespace();
    let state = after.next()?.chars().next()?;
    let start_ticks = after.nth(18)?.parse().ok()?;
    Some(ProcessStat { state, start_ticks })
}

fn process_start_ticks(pid: u32) -> Option<u64> {
    process_stat(pid).map(|s| s.start_ticks)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    pub pipeline: String,
    /// The manifest file, and its text as it was when the run started: a
    /// resumed run follows the plan it began with.
    pub manifest_path: String,
    pub manifest_text: String,
    pub status: RunStatus,
    pub started_ms: u64,
    pub finished_ms: Option<u64>,
    pub owner: Owner,
    /// Stage ids in plan order.
    pub stages: Vec<String>,
    /// Command-line choices a resumed run must keep.
    #[serde(default)]
    pub options: RunOptions,
}

impl RunRecord {
    /// The run as every reader should see it: one recorded as running
    /// whose process is gone was interrupted, whether or not anyone has
    /// resumed it yet.
    pub fn observed(mut self) -> Self {
        if self.status == RunStatus::Running && !self.owner.is_alive() {
            self.status = RunStatus::Interrupted;
        }
        self
    }
}

/// What `host run` was told beyond the manifest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunOptions {
    /// `--model` overrides, in order.
    pub model_overrides: Vec<String>,
    /// `--record`: every model exchange is stored.
    pub record: bool,
    /// `--replay RUN`: model answers come from that run's recordings.
    pub replay_from: Option<String>,
    /// `--set STAGE.KEY=VALUE` overrides, in order.
    #[serde(default)]
    pub config_overrides: Vec<String>,
    /// `--workspace DIR`.
    #[serde(default)]
    pub workspace: Option<std::path::PathBuf>,
    /// `--fresh`: no stage of the run reuses a cached result, resumed or not.
    #[serde(default)]
    pub fresh: bool,
    /// `--apply on-success|never`: overrides `[pipeline] apply`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply: Option<String>,
    /// `--task TEXT` or the text of `--task-file F`: replaces the
    /// manifest's task (the text, not the file: a resumed run keeps it
    /// however the file changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
}

impl RunOptions {
    /// Whether a run started with `other` does the same work as one with
    /// these options: the same task, overrides, workspace and model source.
    /// (`--fresh` and `--apply` change how it runs, not what it does.)
    pub fn same_work(&self, other: &RunOptions) -> bool {
        self.model_overrides == other.model_overrides
            && self.config_overrides == other.config_overrides
            && self.workspace == other.workspace
            && self.task == other.task
            && self.record == other.record
            && self.replay_from == other.replay_from
    }
}

/// A reference to an artifact stored once, by content.
pub use host_vocab::ArtifactRef;

fn metrics_or_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<(String, f64)>, D::Error> {
    let raw: Vec<(String, Option<f64>)> = Deserialize::deserialize(d)?;
    Ok(raw
        .into_iter()
        .map(|(name, value)| (name, value.unwrap_or(f64::NAN)))
        .collect())
}

/// A stage's successful output, without the artifact bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputRecord {
    pub summary: String,
    pub decision: Option<String>,
    /// A non-finite metric, which a host before 0.2.1's check could record,
    /// was written as `null`: it reads back as NaN instead of making the
    /// whole state directory unreadable.
    #[serde(deserialize_with = "metrics_or_null")]
    pub metrics: Vec<(String, f64)>,
    pub artifacts: Vec<ArtifactRef>,
    /// blake3 over all of the above: what downstream cache keys are built from.
    pub content_hash: String,
    /// The run and stage that produced it first.
    pub produced_by: (String, String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageRecord {
    pub stage: String,
    pub status: StageStatus,
    pub attempts: u32,
    pub started_ms: Option<u64>,
    pub finished_ms: Option<u64>,
    /// Hash of plugin, config and inputs; `None` when not computable.
    pub cache_key: Option<String>,
    pub output: Option<OutputRecord>,
    pub failure: Option<StageFailure>,
    pub skip_reason: Option<String>,
    /// Set when the output came from an earlier run's identical stage.
    pub reused_from: Option<String>,
    /// As read back: every call of the stage, from the table of calls
    /// (older records kept them inline here).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub model_calls: Vec<ModelCall>,
    #[serde(default)]
    pub gate_runs: Vec<GateRun>,
    /// Files changed in the workspace, by the attempt that succeeded or
    /// failed last.
    #[serde(default)]
    pub file_changes: Vec<FileChange>,
    /// Which pass of a loop the stage is on (0: the first).
    #[serde(default)]
    pub iteration: u32,
    /// What the stage that looped back to this one said.
    #[serde(default)]
    pub feedback: Option<String>,
    /// For a spawned job: the stage that asked for it.
    #[serde(default)]
    pub parent: Option<String>,
}

impl StageRecord {
    pub fn pending(stage: &str) -> Self {
        StageRecord {
            stage: stage.to_string(),
            status: StageStatus::Pending,
            attempts: 0,
            started_ms: None,
            finished_ms: None,
            cache_key: None,
            output: None,
            failure: None,
            skip_reason: None,
            reused_from: None,
            model_calls: Vec::new(),
            gate_runs: Vec::new(),
            file_changes: Vec::new(),
            iteration: 0,
            feedback: None,
            parent: None,
        }
    }

    pub fn tokens(&self) -> u64 {
        host_vocab::total_tokens(&self.model_calls)
    }

    pub fn cost_usd(&self) -> f64 {
        host_vocab::total_cost_usd(&self.model_calls)
    }

    pub fn elapsed_ms(&self) -> Option<u64> {
        Some(self.finished_ms?.saturating_sub(self.started_ms?))
    }
}

/// One entry of a run's append-only event log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventRecord {
    pub seq: u64,
    pub at_ms: u64,
    #[serde(flatten)]
    pub event: Event,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    RunStarted {
        pipeline: String,
        stages: Vec<String>,
        pid: u32,
    },
    RunResumed {
        pid: u32,
        reset: Vec<String>,
    },
    StageStarted {
        stage: String,
        attempt: u32,
        cache_key: Option<String>,
    },
    StageSucceeded {
        stage: String,
        attempt: u32,
        output: String,
        artifacts: Vec<ArtifactRef>,
    },
    StageFailed {
        stage: String,
        attempt: u32,
        failure: StageFailure,
        will_retry: bool,
    },
    StageSkipped {
        stage: String,
        reason: String,
    },
    StageReused {
        stage: String,
        from_run: String,
        output: String,
    },
    StageInterrupted {
        stage: String,
        attempt: u32,
    },
    /// A request is about to go to a provider, its worst case reserved
    /// against budgets.
    ModelCallSent {
        stage: String,
        attempt: u32,
        /// The call's place in its attempt.
        n: u32,
        alias: String,
        reserved_tokens: u64,
        reserved_cost_usd: f64,
    },
    /// A call finished (answered, failed, refused, or never answered:
    /// `unsettled`).
    ModelCalled {
        stage: String,
        #[serde(default)]
        attempt: u32,
        call: ModelCall,
    },
    GateRan {
        stage: String,
        attempt: u32,
        gate: String,
        passed: bool,
        reason: String,
        duration_ms: u64,
    },
    /// A read-write attempt's changeset, committed with its success (its
    /// contents are blobs): the run's copy of the workspace now has it.
    WorkspaceChanged {
        stage: String,
        attempt: u32,
        changes: Vec<FileChange>,
    },
    /// The run's changes were written to the user's workspace `to`.
    WorkspaceApplied {
        to: String,
        written: usize,
        deleted: usize,
    },
    /// Applying was refused: these files changed since the run began.
    WorkspaceApplyRefused {
        to: String,
        conflicts: Vec<String>,
    },
    RunFinished {
        status: RunStatus,
    },
    /// A loop sent the run back: `reset` run again, `to` with feedback.
    LoopedBack {
        from: String,
        to: String,
        iteration: u32,
        reset: Vec<String>,
    },
    /// A loop hit its cap.
    Escalated {
        stage: String,
        iterations: u32,
    },
    StageSpawned {
        parent: String,
        stage: String,
        template: String,
    },
    SpawnRefused {
        parent: String,
        request: String,
        reason: String,
    },
    /// Nothing could run while these waited.
    Deadlocked {
        stages: Vec<String>,
    },
    RunCancelled {
        reason: String,
    },
}
