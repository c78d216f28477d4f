//! How a stage attempt failed, as every layer names it.

use std::time::Duration;

/// How a stage attempt failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum StageFailure {
    #[error("the plugin reported a {} error: {message}", if *retryable { "retryable" } else { "fatal" })]
    Plugin { retryable: bool, message: String },
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error(
        "out of memory: the plugin tried to grow its memory to {requested} bytes; the limit is {limit}"
    )]
    OutOfMemory { requested: u64, limit: u64 },
    #[error("the plugin trapped: {message}")]
    Trap { message: String },
    #[error("the plugin returned {bytes} bytes of artifacts; the limit is {limit}")]
    OutputTooLarge { bytes: usize, limit: usize },
    #[error("the plugin could not be instantiated: {0}")]
    Instantiate(String),
    #[error("hung: no host call or progress report for {0:?} of running")]
    Hung(Duration),
    /// The attempt's copy of the workspace could not be made, or its
    /// changes could not be committed (a conflict with a parallel stage's).
    #[error("workspace: {0}")]
    Workspace(String),
    /// The attempt went past one of its bounds (artifacts, changed files,
    /// model calls...): the failure names it and the key that raises it.
    #[error("limit reached: {0}")]
    Limit(crate::bounds::LimitReached),
    /// The attempt left a path in its files that leads outside them (a
    /// symlink): no gate ran through it and nothing of it was committed.
    #[error("contained: {0}")]
    Escape(String),
}

impl StageFailure {
    /// Whether another attempt might succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            StageFailure::Plugin {
                retryable: true,
                ..
            } | StageFailure::Timeout(_)
                | StageFailure::Hung(_)
                | StageFailure::Workspace(_)
        )
    }
}
