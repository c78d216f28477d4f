//! The workspace: the user's project directory, preopened for a stage with
//! the access its manifest grants (`none`, `read-only`, `read-write`), and,
//! for a read-write stage, the files it changed, found by snapshots taken
//! around the attempt.

mod snapshot;

pub use snapshot::Snapshot;

use host_manifest::{Pipeline, WorkspaceAccess};
use host_runtime::{AttemptScope, Capability, Grant, HasGrant};
use host_vocab::Activity;
use std::path::PathBuf;
use wasmtime::component::Linker;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

/// Where a granted stage sees the workspace.
pub const WORKSPACE_GUEST_PATH: &str = "/workspace";

/// The pipeline's workspace directory, if it has one.
pub struct WorkspaceCapability {
    dir: Option<PathBuf>,
}

impl WorkspaceCapability {
    pub fn new(pipeline: &Pipeline) -> Self {
        WorkspaceCapability {
            dir: pipeline.workspace.clone(),
        }
    }
}

impl Capability for WorkspaceCapability {
    type Grant = WorkspaceGrant;
    // Served by WASI's file system, not by an interface of the host's own.
    const INTERFACES: &'static [&'static str] = &[];
    const GOVERNED_BY: &'static str = "a stage's `workspace` grant (else no file system)";

    fn link<T: HasGrant<WorkspaceGrant>>(_linker: &mut Linker<T>) -> wasmtime::Result<()> {
        Ok(())
    }

    fn grant(&self, scope: &AttemptScope<'_>) -> WorkspaceGrant {
        let dir = match (&self.dir, scope.stage.workspace) {
            (_, WorkspaceAccess::None) | (None, _) => None,
            (Some(dir), access) => Some((dir.clone(), access)),
        };
        WorkspaceGrant { dir, before: None }
    }

    fn deny() -> WorkspaceGrant {
        WorkspaceGrant {
            dir: None,
            before: None,
        }
    }
}

pub struct WorkspaceGrant {
    /// The directory and the access to it; `None`: no file system.
    dir: Option<(PathBuf, WorkspaceAccess)>,
    /// A read-write stage's snapshot from before it ran.
    before: Option<Snapshot>,
}

impl WorkspaceGrant {
    fn writable(&self) -> Option<PathBuf> {
        match &self.dir {
            Some((dir, WorkspaceAccess::ReadWrite)) => Some(dir.clone()),
            _ => None,
        }
    }
}

/// Hashes the workspace off the async threads (it reads every file).
async fn snapshot(dir: PathBuf) -> Snapshot {
    tokio::task::spawn_blocking(move || Snapshot::take(&dir))
        .await
        .unwrap_or_default()
}

impl Grant for WorkspaceGrant {
    fn configure(&self, wasi: &mut WasiCtxBuilder) -> Result<(), String> {
        let Some((dir, access)) = &self.dir else {
            return Ok(());
        };
        let perms = match access {
            WorkspaceAccess::None => return Ok(()),
            WorkspaceAccess::ReadOnly => FsPerms::ReadOnly,
            WorkspaceAccess::ReadWrite => FsPerms::ReadWrite,
        };
        wasi.preopened_dir(dir, WORKSPACE_GUEST_PATH, perms)
            .map(|_| ())
            .map_err(|e| format!("cannot open the workspace {}: {e:#}", dir.display()))
    }

    async fn begin(&mut self) {
        if let Some(dir) = self.writable() {
            self.before = Some(snapshot(dir).await);
        }
    }

    async fn finish(&mut self, activity: &mut Activity) {
        if let (Some(dir), Some(before)) = (self.writable(), self.before.take()) {
            activity.file_changes = before.changes(&snapshot(dir).await);
        }
    }
}
