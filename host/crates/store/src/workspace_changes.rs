//! The run's workspace changes as the record holds them: each committed
//! changeset (the `workspace-changed` event of an attempt that succeeded),
//! and whether the run's changes were applied to the user's directory.

use super::*;
use host_vocab::FileChange;

/// One stage attempt's committed changes.
#[derive(Debug, Clone, PartialEq)]
pub struct Changeset {
    pub stage: String,
    pub attempt: u32,
    pub changes: Vec<FileChange>,
}

/// The last time the run's changes were applied, or refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    Applied { to: String, at_ms: u64 },
    Refused { to: String, conflicts: Vec<String> },
}

impl Store {
    /// Every changeset `run` committed, in commit order. A changeset counts
    /// only with its attempt's success (which shares its transaction); an
    /// older host recorded the changes of failed attempts too.
    pub fn changesets(&self, run: &str) -> Result<Vec<Changeset>> {
        let mut pending: Option<Changeset> = None;
        let mut out = Vec::new();
        self.for_each_event(run, |e| {
            match e.event {
                Event::WorkspaceChanged {
                    stage,
                    attempt,
                    changes,
                } => {
                    pending = Some(Changeset {
                        stage,
                        attempt,
                        changes,
                    })
                }
                Event::StageSucceeded { stage, attempt, .. } => {
                    if let Some(set) = pending.take()
                        && set.stage == stage
                        && set.attempt == attempt
                    {
                        out.push(set);
                    }
                }
                _ => {}
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Whether the run's changes were applied to the user's directory.
    pub fn applied(&self, run: &str) -> Result<Option<Applied>> {
        let mut last = None;
        self.for_each_event(run, |e| {
            match e.event {
                Event::WorkspaceApplied { to, .. } => {
                    last = Some(Applied::Applied { to, at_ms: e.at_ms })
                }
                Event::WorkspaceApplyRefused { to, conflicts } => {
                    last = Some(Applied::Refused { to, conflicts })
                }
                _ => {}
            }
            Ok(())
        })?;
        Ok(last)
    }
}
