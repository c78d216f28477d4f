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

/// An artifact stored once by content: what it is, without its bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactRef {
    pub name: String,
    pub media_type: String,
    /// blake3 of the bytes, the key in the blob table.
    pub hash: String,
    pub size: u64,
}

/// An upstream stage's result, as a downstream stage receives it: its
/// artifacts by reference, their bytes read from an [`ArtifactSource`]
/// when wanted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Upstream {
    pub stage_id: String,
    pub summary: String,
    pub decision: Option<String>,
    pub artifacts: Vec<ArtifactRef>,
    pub metrics: Vec<Metric>,
}

/// Where artifact contents are read from, by hash (the run's store).
pub trait ArtifactSource: Send + Sync {
    /// Up to `len` bytes of the content with blake3 `hash` from `offset`,
    /// fewer at its end; `Err` when it is missing or cannot be read.
    fn read(&self, hash: &str, offset: u64, len: u64) -> Result<Vec<u8>, String>;
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StageOutput {
    pub summary: String,
    pub artifacts: Vec<Artifact>,
    pub metrics: Vec<Metric>,
    pub decision: Option<String>,
}
