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
    #[serde(with = "as_message")]
    Workspace(String),
    /// The attempt went past one of its bounds (artifacts, changed files,
    /// model calls...): the failure names it and the key that raises it.
    #[error("limit reached: {0}")]
    Limit(crate::bounds::LimitReached),
    /// The attempt left a path in its files that leads outside them (a
    /// symlink): no gate ran through it and nothing of it was committed.
    #[error("contained: {0}")]
    #[serde(with = "as_message")]
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

/// A variant holding only a message, recorded as `{"kind": ..., "message":
/// ...}`: a tagged record cannot hold a bare string.
mod as_message {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Message {
        message: String,
    }

    pub fn serialize<S: serde::Serializer>(message: &str, s: S) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(
            &Message {
                message: message.to_string(),
            },
            s,
        )
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        let m: Message = serde::Deserialize::deserialize(d)?;
        Ok(m.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_round_trips_as_a_record() {
        let all = [
            StageFailure::Plugin {
                retryable: true,
                message: "m".into(),
            },
            StageFailure::Timeout(Duration::from_millis(1500)),
            StageFailure::OutOfMemory {
                requested: 2,
                limit: 1,
            },
            StageFailure::Workspace("conflict on a.txt".into()),
            StageFailure::Escape("'up' -> '..' leads outside".into()),
            StageFailure::Limit(crate::LimitReached::new(
                crate::Bound::Metrics,
                1000u64,
                "1001 metrics",
            )),
        ];
        for f in all {
            let json = serde_json::to_string(&f).unwrap_or_else(|e| panic!("{f:?}: {e}"));
            let back: StageFailure = serde_json::from_str(&json).unwrap();
            assert_eq!(back, f, "{json}");
        }
    }
}
