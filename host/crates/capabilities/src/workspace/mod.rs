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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{live, pipeline, scope};

    const TEXT: &str = r#"
[pipeline]
name = "p"
task = "t"
workspace = "ws"

[[stage]]
id = "writer"
plugin = "a.wasm"
workspace = "read-write"

[[stage]]
id = "reader"
plugin = "a.wasm"
workspace = "read-only"

[[stage]]
id = "blind"
plugin = "a.wasm"
"#;

    #[tokio::test]
    async fn a_read_write_stage_reports_the_files_it_changed() {
        let (p, dir) = pipeline(TEXT);
        let ws = dir.path().join("ws");
        std::fs::write(ws.join("kept.txt"), "same").unwrap();
        std::fs::write(ws.join("edited.txt"), "before").unwrap();
        let cap = WorkspaceCapability::new(&p);
        let live = live();
        let mut grant = cap.grant(&scope(&p, "writer", &live));
        grant.begin().await;
        std::fs::write(ws.join("edited.txt"), "after").unwrap();
        std::fs::write(ws.join("new.txt"), "hi").unwrap();
        let mut activity = Activity::default();
        grant.finish(&mut activity).await;
        let paths: Vec<&str> = activity
            .file_changes
            .iter()
            .map(|c| c.path.as_str())
            .collect();
        assert_eq!(paths, ["edited.txt", "new.txt"]);
    }

    #[tokio::test]
    async fn only_read_write_stages_are_watched_and_only_granted_ones_see_files() {
        let (p, dir) = pipeline(TEXT);
        let ws = dir.path().join("ws");
        let cap = WorkspaceCapability::new(&p);
        let live = live();
        let mut reader = cap.grant(&scope(&p, "reader", &live));
        assert!(matches!(reader.dir, Some((_, WorkspaceAccess::ReadOnly))));
        reader.begin().await;
        std::fs::write(ws.join("by-someone-else.txt"), "x").unwrap();
        let mut activity = Activity::default();
        reader.finish(&mut activity).await;
        assert!(activity.file_changes.is_empty());
        let blind = cap.grant(&scope(&p, "blind", &live));
        assert!(blind.dir.is_none(), "no workspace grant: no file system");
        assert!(WorkspaceCapability::deny().dir.is_none());
    }
}
