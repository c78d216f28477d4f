//! The bounds on what one attempt may make the host spend, by name: the
//! failure an attempt ends with when it reaches one says which bound, its
//! value, and the manifest key that raises it (or that it is fixed).

use serde::{Deserialize, Serialize};

/// One bound an attempt can reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bound {
    /// Linear memory, all of a component's memories together.
    Memory,
    /// Table elements, all of a component's tables together.
    TableElements,
    /// Artifact bytes, returned and streamed.
    Output,
    /// Model calls of every kind, refused ones included.
    ModelCalls,
    /// Gate runs asked for.
    GateRuns,
    /// Artifacts, returned and streamed.
    Artifacts,
    /// Bytes of one artifact's name.
    ArtifactName,
    /// Bytes of the summary.
    Summary,
    /// Metrics returned.
    Metrics,
    /// Bytes of one metric's name.
    MetricName,
    /// Bytes of the decision.
    Decision,
    /// Files one read-write attempt creates, changes or deletes.
    ChangedFiles,
    /// Bytes of the files one read-write attempt creates or changes.
    ChangedBytes,
    /// Jobs one output asks to spawn.
    SpawnRequests,
    /// Checkpoint keys of a stage, and of a run.
    CheckpointKeys,
    /// Checkpoint bytes (keys and values) of a stage, and of a run.
    CheckpointBytes,
}

impl Bound {
    /// The manifest key that raises the bound, where a user could need more.
    pub fn key(self) -> Option<&'static str> {
        match self {
            Bound::Memory => Some("memory"),
            Bound::Output => Some("max_output"),
            Bound::ModelCalls => Some("max_model_calls"),
            Bound::ChangedFiles => Some("max_changed_files"),
            Bound::ChangedBytes => Some("max_changed_bytes"),
            Bound::SpawnRequests => Some("[pipeline] max_spawned"),
            Bound::TableElements
            | Bound::GateRuns
            | Bound::Artifacts
            | Bound::ArtifactName
            | Bound::Summary
            | Bound::Metrics
            | Bound::MetricName
            | Bound::Decision
            | Bound::CheckpointKeys
            | Bound::CheckpointBytes => None,
        }
    }

    /// What is counted, for messages: "artifacts", "bytes of summary".
    pub fn counts(self) -> &'static str {
        match self {
            Bound::Memory => "bytes of linear memory",
            Bound::TableElements => "table elements",
            Bound::Output => "bytes of artifacts",
            Bound::ModelCalls => "model calls",
            Bound::GateRuns => "gate runs",
            Bound::Artifacts => "artifacts",
            Bound::ArtifactName => "bytes of an artifact name",
            Bound::Summary => "bytes of summary",
            Bound::Metrics => "metrics",
            Bound::MetricName => "bytes of a metric name",
            Bound::Decision => "bytes of decision",
            Bound::ChangedFiles => "changed files",
            Bound::ChangedBytes => "bytes of changed files",
            Bound::SpawnRequests => "spawn requests",
            Bound::CheckpointKeys => "checkpoint keys",
            Bound::CheckpointBytes => "bytes of checkpoints",
        }
    }
}

/// An attempt went past a bound: the attempt fails with this, once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{detail} (at most {limit} {}; {})", bound.counts(), advice(*bound))]
pub struct LimitReached {
    pub bound: Bound,
    pub limit: u64,
    /// What the plugin did, in its words: "returned 5000 artifacts".
    pub detail: String,
}

impl LimitReached {
    pub fn new(bound: Bound, limit: impl TryInto<u64>, detail: impl Into<String>) -> Self {
        LimitReached {
            bound,
            limit: limit.try_into().unwrap_or(u64::MAX),
            detail: detail.into(),
        }
    }
}

fn advice(bound: Bound) -> String {
    match bound.key() {
        Some(key) => format!("raise it with {key}"),
        None => "a fixed limit of the host".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reached_limit_names_what_counts_and_the_key_that_raises_it() {
        let hit = LimitReached::new(
            Bound::ChangedFiles,
            10_000usize,
            "the attempt changed 12000 files",
        );
        assert_eq!(
            hit.to_string(),
            "the attempt changed 12000 files (at most 10000 changed files; raise it with max_changed_files)"
        );
        let fixed = LimitReached::new(Bound::Artifacts, 4096u64, "returned 5000 artifacts");
        assert!(
            fixed.to_string().ends_with("a fixed limit of the host)"),
            "{fixed}"
        );
    }

    #[test]
    fn a_reached_limit_round_trips_as_a_record() {
        let hit = LimitReached::new(Bound::SpawnRequests, 100u64, "asked for 20000 jobs");
        let json = serde_json::to_string(&hit).unwrap();
        assert!(json.contains("\"spawn-requests\""), "{json}");
        assert_eq!(serde_json::from_str::<LimitReached>(&json).unwrap(), hit);
    }
}
