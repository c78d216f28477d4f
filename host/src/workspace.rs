//! The run's workspace, on top of `host-workspace`: which files a run works
//! on ([`RunFiles`]), where each attempt sees them, and the run's changes as
//! the record holds them: applied to the user's directory (by policy or by
//! `host apply`) and shown as a diff (`host diff`, the dashboard).

use host_manifest::{Pipeline, StageSpec, WorkspaceAccess};
use host_runtime::FilesGuard;
use host_store::{Changeset, Event, Store, StoreError};
use host_vocab::{Bound, FileChange, LimitReached, StageFailure};
use host_workspace::{
    ApplyStats, Conflict, Exclusions, Place, RunWorkspace, WorkspaceError, apply_changes,
    conflicts, file_diff, net_changes,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The files a run's stages work on.
#[derive(Clone, Default)]
pub enum RunFiles {
    /// The pipeline has no workspace.
    #[default]
    None,
    /// No stage may write and none runs gates: stages read the user's
    /// directory itself, and nothing is copied.
    Direct(PathBuf),
    /// Stages work on the run's own copy ([`RunWorkspace`]).
    Copied(Arc<RunWorkspace>),
}

#[derive(Debug, thiserror::Error)]
pub enum RunFilesError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the run's copy of the workspace: {0}")]
    Workspace(#[from] WorkspaceError),
}

/// Whether a stage's attempt needs a private copy: it may write, or it runs
/// gates (whose commands may write anything).
fn needs_copy(stage: &StageSpec) -> bool {
    stage.workspace == WorkspaceAccess::ReadWrite || !stage.gates.is_empty()
}

impl RunFiles {
    /// Opens the files of run `run`: its copy of the workspace (made now for
    /// a new run, brought up to its record for a resumed one) if any stage
    /// may change files.
    pub fn open(pipeline: &Pipeline, store: &Store, run: &str) -> Result<RunFiles, RunFilesError> {
        let Some(source) = &pipeline.workspace else {
            return Ok(RunFiles::None);
        };
        let copies = pipeline
            .stages
            .iter()
            .chain(pipeline.templates.values())
            .any(needs_copy);
        if !copies {
            return Ok(RunFiles::Direct(source.clone()));
        }
        let committed: Vec<Vec<FileChange>> = store
            .changesets(run)?
            .into_iter()
            .map(|c| c.changes)
            .collect();
        let blob = |h: &str| stored_blob(store, h);
        let state_dir = store.path().parent().unwrap_or(Path::new("."));
        let exclude = Exclusions::new(&pipeline.workspace_exclude);
        let ws = RunWorkspace::open(source, state_dir, run, exclude, &committed, &blob)?;
        if ws.created.files > 0 {
            tracing::debug!(
                files = ws.created.files,
                bytes = ws.created.bytes,
                reflinked = ws.created.cloned,
                "copied the workspace for the run"
            );
        }
        Ok(RunFiles::Copied(Arc::new(ws)))
    }

    /// Where an attempt of `stage` sees the workspace; `attempt_key` names
    /// its private copy. `Ok(None)`: it sees none.
    pub fn place(
        &self,
        stage: &StageSpec,
        attempt_key: &str,
    ) -> Result<Option<Place>, WorkspaceError> {
        match self {
            RunFiles::None => Ok(None),
            RunFiles::Direct(dir) => Ok(Some(Place::Shared(dir.clone()))),
            RunFiles::Copied(ws) if needs_copy(stage) => ws.private_copy(attempt_key).map(Some),
            RunFiles::Copied(_) if stage.workspace == WorkspaceAccess::None => Ok(None),
            RunFiles::Copied(ws) => Ok(Some(Place::Shared(ws.tree_dir()))),
        }
    }

    /// What checks a gate's surroundings in `place` before it runs there.
    pub fn guard(&self, place: &Arc<Place>) -> Option<Arc<dyn FilesGuard>> {
        match (self, &**place) {
            (RunFiles::Copied(ws), Place::Private { .. }) => Some(Arc::new(AttemptGuard {
                ws: ws.clone(),
                place: place.clone(),
            })),
            _ => None,
        }
    }

    pub fn copied(&self) -> Option<&Arc<RunWorkspace>> {
        match self {
            RunFiles::Copied(ws) => Some(ws),
            _ => None,
        }
    }

    /// The run is over and its changes are in the store: its copy goes.
    pub fn remove(&self) {
        if let RunFiles::Copied(ws) = self {
            ws.remove();
        }
    }
}

/// Keeps a gate out of anything the attempt left leading outside its copy.
struct AttemptGuard {
    ws: Arc<RunWorkspace>,
    place: Arc<Place>,
}

impl FilesGuard for AttemptGuard {
    fn check(&self, dir: &Path) -> Result<(), StageFailure> {
        let root = self.place.dir();
        match host_workspace::resolves_inside(root, dir) {
            Ok(true) => {}
            Ok(false) => {
                return Err(StageFailure::Escape(format!(
                    "the gate's directory '{}' leads outside the workspace",
                    dir.display()
                )));
            }
            Err(e) => return Err(failure_of(e)),
        }
        self.ws.contained(&self.place).map_err(failure_of)
    }
}

/// How a workspace problem fails the attempt that met it: a bound reached,
/// a path leading outside, or a problem of the host's (retryable).
pub fn failure_of(e: WorkspaceError) -> StageFailure {
    match e {
        WorkspaceError::TooLarge { path, limit } => StageFailure::Limit(LimitReached::new(
            Bound::ChangedBytes,
            limit,
            format!("the attempt's changes grew past it at {}", path.display()),
        )),
        WorkspaceError::TooMany { limit } => StageFailure::Limit(LimitReached::new(
            Bound::ChangedFiles,
            limit,
            "the attempt created, changed or deleted more files",
        )),
        e @ WorkspaceError::Escapes(_) => StageFailure::Escape(e.to_string()),
        e => StageFailure::Workspace(e.to_string()),
    }
}

/// A changeset's content from the store, as applying asks for it.
fn stored_blob(store: &Store, hash: &str) -> Result<Vec<u8>, WorkspaceError> {
    match store.blob(hash) {
        Ok(Some(bytes)) => Ok(bytes),
        _ => Err(WorkspaceError::MissingBlob(hash.to_string())),
    }
}

/// The changes of `run` (or of one stage of it), folded per file.
pub fn run_changes(
    store: &Store,
    run: &str,
    stage: Option<&str>,
) -> Result<Vec<FileChange>, StoreError> {
    let sets: Vec<Changeset> = store
        .changesets(run)?
        .into_iter()
        .filter(|c| stage.is_none_or(|s| c.stage == s))
        .collect();
    Ok(net_changes(sets.iter().map(|c| c.changes.as_slice())))
}

/// A unified diff of `changes`, contents from the store's blobs.
pub fn diff_text(store: &Store, changes: &[FileChange]) -> Result<String, StoreError> {
    let mut out = String::new();
    for c in changes {
        let before = match &c.before {
            Some(h) => store.blob(h)?,
            None => None,
        };
        let after = match &c.after {
            Some(h) => store.blob(h)?,
            None => None,
        };
        out += &file_diff(c, before.as_deref(), after.as_deref());
    }
    Ok(out)
}

/// How applying the run's changes ended.
#[derive(Debug)]
pub enum ApplyOutcome {
    Applied(ApplyStats),
    /// The run changed no file.
    NothingToApply,
    /// Files the user changed since the run began: nothing was written.
    Refused(Vec<Conflict>),
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
}

/// Applies run `run`'s changes to `target` (the user's workspace): refused
/// as a whole, naming the files, if any of them changed since the run began
/// (unless `force`); recorded either way.
pub fn apply_run(
    store: &Store,
    run: &str,
    target: &Path,
    force: bool,
) -> Result<ApplyOutcome, ApplyError> {
    let changes = run_changes(store, run, None)?;
    if changes.is_empty() {
        return Ok(ApplyOutcome::NothingToApply);
    }
    let to = target.display().to_string();
    let found = conflicts(target, &changes)?;
    if !found.is_empty() && !force {
        let event = Event::WorkspaceApplyRefused {
            to,
            conflicts: found.iter().map(|c| c.path.clone()).collect(),
        };
        store.note(run, event)?;
        return Ok(ApplyOutcome::Refused(found));
    }
    let stats = apply_changes(target, &changes, &|h| stored_blob(store, h))?;
    store.note(
        run,
        Event::WorkspaceApplied {
            to,
            written: stats.written,
            deleted: stats.deleted,
        },
    )?;
    Ok(ApplyOutcome::Applied(stats))
}
