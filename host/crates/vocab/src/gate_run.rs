//! A preflight gate's run, as the run record keeps it.

use serde::{Deserialize, Serialize};

/// How a gate's process ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum GateOutcome {
    Exited {
        code: i32,
    },
    Signalled {
        signal: i32,
    },
    TimedOut {
        after_ms: u64,
    },
    /// The program is not installed (or not on the allowed PATH).
    NotFound {
        program: String,
    },
    /// The program exists but could not be started, or its directory is missing.
    CannotStart {
        message: String,
    },
}

/// One gate run, as the run record keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateRun {
    pub gate: String,
    pub passed: bool,
    pub outcome: GateOutcome,
    pub duration_ms: u64,
    /// Head and tail of stdout and stderr, interleaved as they arrived.
    pub output: String,
    /// Bytes the process wrote in all, kept or not.
    pub output_bytes: u64,
}

impl GateRun {
    /// Why the gate passed or failed, in a few words.
    pub fn reason(&self) -> String {
        match &self.outcome {
            GateOutcome::Exited { code } if self.passed => format!("exit code {code}"),
            GateOutcome::Exited { code } => format!("failed with exit code {code}"),
            GateOutcome::Signalled { signal } => format!("killed by signal {signal}"),
            GateOutcome::TimedOut { after_ms } => format!(
                "timed out after {:.1}s (killed with its child processes)",
                *after_ms as f64 / 1000.0
            ),
            GateOutcome::NotFound { program } => {
                format!("`{program}` is not installed or not on the gate's PATH")
            }
            GateOutcome::CannotStart { message } => format!("cannot start: {message}"),
        }
    }

    pub fn exit_code(&self) -> Option<i32> {
        match self.outcome {
            GateOutcome::Exited { code } => Some(code),
            _ => None,
        }
    }
}
