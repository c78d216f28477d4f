//! The typed, validated pipeline: what the rest of the host works from.

use super::duration::HumanDuration;
pub use host_vocab::limits::{
    DEFAULT_GATE_OUTPUT, DEFAULT_GATE_TIMEOUT, DEFAULT_MAX_SPAWN_DEPTH, DEFAULT_MAX_SPAWNED,
    DEFAULT_MEMORY_LIMIT, DEFAULT_MODEL_RETRIES, DEFAULT_MODEL_TIMEOUT, DEFAULT_STAGE_TIMEOUT,
};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// A validated pipeline. Stages are in a dependency order: every stage comes
/// after all the stages it names in `after`.
#[derive(Debug, Clone, Serialize)]
pub struct Pipeline {
    pub name: String,
    pub task: String,
    /// The manifest file this came from.
    pub manifest: PathBuf,
    /// Directory relative paths in the manifest are resolved against.
    pub base_dir: PathBuf,
    pub max_parallel: usize,
    /// `[pipeline] state_dir`, resolved; `None` means the host's default.
    pub state_dir: Option<PathBuf>,
    /// `[pipeline] workspace`, resolved: the directory stages may be granted
    /// and gates run in.
    pub workspace: Option<PathBuf>,
    /// `[pipeline] apply`: when the run's changes reach the workspace.
    pub apply: ApplyPolicy,
    /// `[pipeline] workspace_exclude`: names (at any depth) and relative
    /// paths never copied into a stage's view, diffed or applied; the
    /// version-control directories always are.
    pub workspace_exclude: Vec<String>,
    pub models: BTreeMap<String, ModelSpec>,
    pub plugins: BTreeMap<String, PluginSpec>,
    pub gates: BTreeMap<String, GateSpec>,
    /// Limits on model use over the whole run.
    pub budget: Budget,
    /// Wall-clock limit on the whole run.
    pub deadline: Option<Duration>,
    /// Caps on spawned jobs: how many in all, and how deep.
    pub max_spawned: usize,
    pub max_spawn_depth: u32,
    /// `[pipeline] retention`: which finished runs of this pipeline are
    /// removed when one of its runs ends; `None` keeps them all.
    pub retention: Option<Retention>,
    /// Concurrency groups: name -> max stages of the group at once.
    pub groups: BTreeMap<String, usize>,
    /// Stages declared with `template = true`: run only as spawned jobs.
    pub templates: BTreeMap<String, StageSpec>,
    pub stages: Vec<StageSpec>,
}

impl Pipeline {
    pub fn stage(&self, id: &str) -> Option<&StageSpec> {
        self.stages.iter().find(|s| s.id == id)
    }
}

impl StageSpec {
    /// The ids of the stages this one runs after.
    pub fn deps(&self) -> impl Iterator<Item = &str> {
        self.after.iter().map(|d| d.stage.as_str())
    }
}

/// Which wire protocol a model speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    /// OpenAI chat completions, and every server compatible with it
    /// (vLLM, Ollama, llama.cpp server, LM Studio, OpenRouter...).
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
}

impl ProviderKind {
    pub const NAMES: &'static [&'static str] = &["openai", "anthropic"];

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "openai" | "openai-compatible" => Some(ProviderKind::OpenAi),
            "anthropic" => Some(ProviderKind::Anthropic),
            _ => None,
        }
    }

    /// The name a manifest gives it.
    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::Anthropic => "anthropic",
        }
    }

    /// The provider's own API, when `base_url` is not given.
    pub fn default_base_url(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "https://api.openai.com/v1",
            ProviderKind::Anthropic => "https://api.anthropic.com/v1",
        }
    }

    /// The conventional key variable, used when a `--model` override
    /// switches provider.
    pub fn default_key_env(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "OPENAI_API_KEY",
            ProviderKind::Anthropic => "ANTHROPIC_API_KEY",
        }
    }
}

/// Limits on model use; `None` means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Input plus output tokens.
    pub tokens: Option<u64>,
    /// US dollars, from the models' prices.
    pub cost_usd: Option<f64>,
    /// Model calls made (refused calls do not count).
    pub calls: Option<u64>,
}

impl Budget {
    pub fn is_unlimited(&self) -> bool {
        self.tokens.is_none() && self.cost_usd.is_none() && self.calls.is_none()
    }
}

/// Finished runs of a pipeline that are let go when another one ends:
/// those beyond the `keep` most recent, and those older than `older_than`.
/// At least one is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Retention {
    pub keep: Option<usize>,
    pub older_than: Option<super::duration::Age>,
}

/// A model alias and how to reach it.
#[derive(Debug, Clone, Serialize)]
pub struct ModelSpec {
    pub alias: String,
    pub provider: ProviderKind,
    pub base_url: String,
    pub model: String,
    /// Name of the environment variable holding the API key (never the key).
    pub api_key_env: Option<String>,
    pub timeout: Duration,
    pub max_retries: u32,
    /// US dollars per 1,000 input and output tokens.
    pub price_in_per_1k: f64,
    pub price_out_per_1k: f64,
    /// Answer identical requests from the response cache.
    pub cache: bool,
    /// Most requests in flight at once to this model's server (`None`: no
    /// limit). Shared by every alias with the same `base_url`.
    pub max_concurrent: Option<u32>,
    /// Ask for answers as a stream (shown as they arrive); `false` for a
    /// server that cannot stream.
    pub stream: bool,
}

/// A plugin component and, optionally, how to build it.
#[derive(Debug, Clone, Serialize)]
pub struct PluginSpec {
    pub name: String,
    pub wasm: PathBuf,
    pub build: Option<BuildSpec>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BuildSpec {
    pub command: Vec<String>,
    pub dir: PathBuf,
    pub watch: Vec<PathBuf>,
}

/// A preflight gate: a command the host runs in the workspace on a granted
/// stage's request. The plugin names it; it never supplies any part of it.
#[derive(Debug, Clone, Serialize)]
pub struct GateSpec {
    pub name: String,
    /// Program and arguments, run without a shell.
    pub command: Vec<String>,
    pub timeout: Duration,
    /// Working directory, relative to the workspace (never outside it).
    pub dir: PathBuf,
    /// Names of the host environment variables passed through; nothing else is.
    pub env: Vec<String>,
    /// Exit codes that count as a pass.
    pub pass_exit_codes: Vec<i32>,
    /// Bytes of output kept (half from the start, half from the end).
    pub max_output: usize,
}

/// What a stage may do with the workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkspaceAccess {
    /// The stage sees no file system at all.
    #[default]
    None,
    ReadOnly,
    ReadWrite,
}

impl WorkspaceAccess {
    pub const NAMES: &'static [&'static str] = &["none", "read-only", "read-write"];

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "none" => Some(WorkspaceAccess::None),
            "read-only" => Some(WorkspaceAccess::ReadOnly),
            "read-write" => Some(WorkspaceAccess::ReadWrite),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// When a run's committed workspace changes are written to the user's
/// directory. Stages always work on the run's own copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApplyPolicy {
    /// When the whole run succeeds (refused, naming the files, if the user
    /// changed any of them since the run began).
    #[default]
    OnSuccess,
    /// Only by `host apply RUN`.
    Never,
}

impl ApplyPolicy {
    pub const NAMES: &'static [&'static str] = &["on-success", "never"];

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "on-success" => Some(ApplyPolicy::OnSuccess),
            "never" => Some(ApplyPolicy::Never),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// When an edge lets its dependant run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Condition {
    /// The dependency succeeded (the default).
    Success,
    /// The dependency failed (e.g. a stage that files a bug report).
    Failure,
    /// The dependency finished, whatever happened (e.g. cleanup, a report).
    Always,
    /// The dependency succeeded or was skipped: routing, where a branch may
    /// not have been taken.
    SuccessOrSkip,
}

impl Condition {
    pub const NAMES: &'static [&'static str] = &["success", "failure", "always", "success-or-skip"];

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "success" => Some(Condition::Success),
            "failure" => Some(Condition::Failure),
            "always" => Some(Condition::Always),
            "success-or-skip" => Some(Condition::SuccessOrSkip),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// One edge: this stage runs after `stage`, if `on` holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dependency {
    pub stage: String,
    pub on: Condition,
}

/// A `when` condition, as written and as parsed.
#[derive(Debug, Clone, Serialize)]
pub struct WhenSpec {
    pub text: String,
    #[serde(skip)]
    pub expr: super::when::Expr,
}

/// `loop = { to = "execution", max = 2, on = "revise" }`: when this stage's
/// decision is `on`, the run goes back to `to` (and everything between),
/// with this stage's summary as feedback, at most `max` times.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoopSpec {
    pub to: String,
    pub max: u32,
    pub on: String,
}

/// One stage, with its grants and limits.
#[derive(Debug, Clone, Serialize)]
pub struct StageSpec {
    pub id: String,
    pub plugin: String,
    pub after: Vec<Dependency>,
    /// Runs only if this holds once the dependencies are done.
    pub when: Option<WhenSpec>,
    pub loop_back: Option<LoopSpec>,
    /// Whether a retried attempt is told why the previous one failed.
    pub retry_context: bool,
    /// A stage silent for this long (no host call, no progress report) is hung.
    pub heartbeat: Option<Duration>,
    /// Concurrency group, limited by `[groups.NAME] max_parallel`.
    pub group: Option<String>,
    /// For a spawned job: the stage that asked for it.
    pub parent: Option<String>,
    /// Templates this stage may spawn jobs from.
    pub spawns: Vec<String>,
    /// Model aliases this stage may call.
    pub models: Vec<String>,
    /// Gates this stage may run.
    pub gates: Vec<String>,
    /// Conversation sessions this stage may read and extend.
    pub sessions: Vec<String>,
    pub budget: Budget,
    pub workspace: WorkspaceAccess,
    pub timeout: Duration,
    /// How many times a retryable failure is tried again.
    pub retries: u32,
    /// Upper bound on the plugin's linear memory, in bytes.
    pub memory_limit: u64,
    /// Per attempt: artifact bytes returned, log lines written, model calls made.
    pub max_output: usize,
    pub max_log_lines: u64,
    pub max_model_calls: usize,
    /// Per read-write attempt: files its changes may touch, and bytes they
    /// may hold (both sides of every change).
    pub max_changed_files: u64,
    pub max_changed_bytes: u64,
    pub config: serde_json::Value,
}

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

pub fn display_duration(d: Duration) -> String {
    HumanDuration(d).to_string()
}
