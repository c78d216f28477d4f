//! The manifest's sections exactly as written, before any cross-checking.
//! Unknown keys are rejected here, by serde, with their location.

use super::duration::HumanDuration;
use serde::Deserialize;
use toml::Spanned;

/// `[pipeline]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSection {
    pub name: Spanned<String>,
    pub task: Option<String>,
    pub task_file: Option<Spanned<String>>,
    pub max_parallel: Option<Spanned<usize>>,
    pub state_dir: Option<String>,
    pub workspace: Option<Spanned<String>>,
    pub apply: Option<Spanned<String>>,
    pub workspace_exclude: Option<Spanned<Vec<Spanned<String>>>>,
    pub budget: Option<Spanned<super::pipeline::Budget>>,
    pub deadline: Option<Spanned<String>>,
    pub max_spawned: Option<usize>,
    pub max_spawn_depth: Option<u32>,
    pub retention: Option<Spanned<RetentionSection>>,
}

/// `[pipeline] retention = { keep = N, older_than = "30d" }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSection {
    pub keep: Option<Spanned<usize>>,
    pub older_than: Option<Spanned<String>>,
}

/// `[models.ALIAS]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    pub provider: Spanned<String>,
    pub base_url: Option<Spanned<String>>,
    pub model: String,
    pub api_key_env: Option<String>,
    pub timeout: Option<HumanDuration>,
    pub max_retries: Option<u32>,
    pub price_in_per_1k: Option<Spanned<f64>>,
    pub price_out_per_1k: Option<Spanned<f64>>,
    #[serde(default)]
    pub cache: bool,
    pub max_concurrent: Option<Spanned<u32>>,
    #[serde(default = "streamed")]
    pub stream: bool,
}

/// Answers are streamed unless a model says otherwise.
fn streamed() -> bool {
    true
}

/// `[plugins.NAME]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSection {
    pub wasm: Spanned<String>,
    pub build: Option<Spanned<Vec<String>>>,
    pub build_dir: Option<String>,
    #[serde(default)]
    pub watch: Vec<String>,
}

/// `[gates.NAME]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateSection {
    pub command: Spanned<Vec<String>>,
    pub timeout: Option<Spanned<String>>,
    pub dir: Option<Spanned<String>>,
    pub env: Option<Vec<Spanned<String>>>,
    pub pass_exit_codes: Option<Spanned<Vec<i32>>>,
    pub max_output: Option<Spanned<String>>,
}

/// `[groups.NAME]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSection {
    pub max_parallel: Spanned<usize>,
}

/// One entry of `after`: a stage id, or `{ stage = "id", on = "failure" }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum AfterEntry {
    Id(String),
    Edge(EdgeSection),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeSection {
    pub stage: String,
    #[serde(default)]
    pub on: Option<String>,
}

/// `loop = { to = "STAGE", max = N, on = "DECISION" }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoopSection {
    pub to: Spanned<String>,
    pub max: Spanned<u32>,
    pub on: Option<String>,
}

/// `[[stage]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageSection {
    pub id: Spanned<String>,
    pub plugin: Spanned<String>,
    #[serde(default)]
    pub after: Vec<Spanned<AfterEntry>>,
    pub when: Option<Spanned<String>>,
    #[serde(rename = "loop")]
    pub loop_back: Option<Spanned<LoopSection>>,
    pub retry_context: Option<bool>,
    /// A template is not run by itself: stages that list it in `spawns` may
    /// ask for copies of it.
    #[serde(default)]
    pub template: bool,
    #[serde(default)]
    pub spawns: Vec<Spanned<String>>,
    pub heartbeat: Option<Spanned<String>>,
    pub group: Option<Spanned<String>>,
    #[serde(default)]
    pub models: Vec<Spanned<String>>,
    #[serde(default)]
    pub gates: Vec<Spanned<String>>,
    #[serde(default)]
    pub sessions: Vec<Spanned<String>>,
    pub workspace: Option<Spanned<String>>,
    pub budget: Option<Spanned<super::pipeline::Budget>>,
    pub timeout: Option<Spanned<String>>,
    pub retries: Option<u32>,
    pub memory: Option<Spanned<String>>,
    pub max_output: Option<Spanned<String>>,
    pub max_log_lines: Option<u64>,
    pub max_model_calls: Option<usize>,
    pub max_changed_files: Option<Spanned<u64>>,
    pub max_changed_bytes: Option<Spanned<String>>,
    pub config: Option<Spanned<serde_json::Value>>,
}

use super::validate::Shape;

impl Shape for PipelineSection {
    const REQUIRED: &'static [&'static str] = &["name"];
    const TABLES: &'static [&'static str] = &["budget", "retention"];
}

impl Shape for ModelSection {
    const REQUIRED: &'static [&'static str] = &["provider", "model"];
    const TABLES: &'static [&'static str] = &[];
}

impl Shape for PluginSection {
    const REQUIRED: &'static [&'static str] = &["wasm"];
    const TABLES: &'static [&'static str] = &[];
}

impl Shape for GateSection {
    const REQUIRED: &'static [&'static str] = &["command"];
    const TABLES: &'static [&'static str] = &[];
}

impl Shape for GroupSection {
    const REQUIRED: &'static [&'static str] = &["max_parallel"];
    const TABLES: &'static [&'static str] = &[];
}

impl Shape for StageSection {
    const REQUIRED: &'static [&'static str] = &["id", "plugin"];
    const TABLES: &'static [&'static str] = &["loop", "budget"];
    const FLAT_LISTS: &'static [&'static str] = &["after", "spawns", "models", "gates", "sessions"];
}
