//! The legal moves of runs and stages, checked in this one place.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    /// The process running it died (or was killed, or cancelled) before it
    /// finished; it can be resumed.
    Interrupted,
    /// A loop hit its cap: the run needs a person.
    Escalated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StageStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
    Skipped,
    /// Was running when its process died; runs again on resume.
    Interrupted,
}

impl StageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StageStatus::Pending => "pending",
            StageStatus::Running => "running",
            StageStatus::Succeeded => "succeeded",
            StageStatus::Failed => "failed",
            StageStatus::Skipped => "skipped",
            StageStatus::Interrupted => "interrupted",
        }
    }
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Escalated => "escalated",
        }
    }

    pub fn is_finished(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Escalated
        )
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("illegal {what} transition {from} -> {to}")]
pub struct IllegalTransition {
    pub what: &'static str,
    pub from: &'static str,
    pub to: &'static str,
}

/// Checks a stage move. Resuming a run puts failed, skipped and interrupted
/// stages back to pending; succeeded is final.
pub fn check_stage(from: StageStatus, to: StageStatus) -> Result<(), IllegalTransition> {
    use StageStatus::*;
    let legal = matches!(
        (from, to),
        (Pending, Running)
            | (Pending, Skipped)
            | (Pending, Succeeded) // reused from the result cache
            | (Running, Running) // the next attempt after a retryable failure
            | (Running, Succeeded)
            | (Running, Failed)
            | (Running, Interrupted)
            // Resuming a run; a loop sends finished stages back to run again.
            | (Succeeded | Failed | Skipped | Interrupted, Pending)
    );
    if legal {
        Ok(())
    } else {
        Err(IllegalTransition {
            what: "stage",
            from: from.as_str(),
            to: to.as_str(),
        })
    }
}

pub fn check_run(from: RunStatus, to: RunStatus) -> Result<(), IllegalTransition> {
    use RunStatus::*;
    let legal = matches!(
        (from, to),
        (Running, Succeeded)
            | (Running, Failed)
            | (Running, Interrupted)
            | (Running, Escalated)
            | (Interrupted | Failed | Escalated, Running)
    );
    if legal {
        Ok(())
    } else {
        Err(IllegalTransition {
            what: "run",
            from: from.as_str(),
            to: to.as_str(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn succeeded_only_goes_back_to_pending_for_a_loop() {
        for to in [
            StageStatus::Running,
            StageStatus::Failed,
            StageStatus::Skipped,
        ] {
            assert!(check_stage(StageStatus::Succeeded, to).is_err());
        }
        assert!(check_stage(StageStatus::Succeeded, StageStatus::Pending).is_ok());
        assert!(check_run(RunStatus::Succeeded, RunStatus::Running).is_err());
    }

    #[test]
    fn resume_moves_are_legal() {
        assert!(check_stage(StageStatus::Running, StageStatus::Interrupted).is_ok());
        assert!(check_stage(StageStatus::Interrupted, StageStatus::Pending).is_ok());
        assert!(check_stage(StageStatus::Failed, StageStatus::Pending).is_ok());
        assert!(check_run(RunStatus::Interrupted, RunStatus::Running).is_ok());
        assert!(check_stage(StageStatus::Skipped, StageStatus::Running).is_err());
    }
}
