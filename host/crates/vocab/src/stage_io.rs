//! What a stage is given and what it returns, as plain data: the WIT
//! `types` records without wasmtime, so the store, the scheduler and the
//! reports can use them. The runtime converts at the component boundary.

use serde::{Deserialize, Serialize};

/// A named blob a stage returns; `media_type` tells readers how to show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Artifact {
    pub name: String,
    pub media_type: String,
    pub bytes: Vec<u8>,
}

/// A named number a stage reports (`when` expressions can test it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    pub name: String,
    pub value: f64,
}

/// An upstream stage's result, as a downstream stage receives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Upstream {
    pub stage_id: String,
    pub summary: String,
    pub decision: Option<String>,
    pub artifacts: Vec<Artifact>,
    pub metrics: Vec<Metric>,
}

/// Everything one attempt of a stage is given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageInput {
    pub run_id: String,
    pub stage_id: String,
    pub task: String,
    pub config_json: String,
    pub inputs: Vec<Upstream>,
    pub attempt: u32,
    pub iteration: u32,
    pub feedback: Option<String>,
}

/// What a successful attempt returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageOutput {
    pub summary: String,
    pub artifacts: Vec<Artifact>,
    pub metrics: Vec<Metric>,
    pub decision: Option<String>,
}
