//! The workspace grant: a directory preopened for a stage with the access
//! its manifest grants (`none`, `read-only`, `read-write`). Which directory
//! is the scheduler's choice (the run's copy of the user's files, or a
//! private copy for an attempt that may write), made before the grant, so
//! the grant itself only opens it; what the attempt changed is found and
//! committed by the transactional workspace (`host-workspace`).

use host_manifest::WorkspaceAccess;
use host_runtime::{AttemptScope, Capability, Grant, HasGrant};
use std::path::PathBuf;
use wasmtime::component::Linker;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

/// Where a granted stage sees the workspace.
pub const WORKSPACE_GUEST_PATH: &str = "/workspace";

/// Grants each stage its access to the directory its attempt is given.
pub struct WorkspaceCapability;

impl Capability for WorkspaceCapability {
    type Grant = WorkspaceGrant;
    // Served by WASI's file system, not by an interface of the host's own.
    const INTERFACES: &'static [&'static str] = &[];
    const GOVERNED_BY: &'static str = "a stage's `workspace` grant (else no file system)";

    fn link<T: HasGrant<WorkspaceGrant>>(_linker: &mut Linker<T>) -> wasmtime::Result<()> {
        Ok(())
    }

    fn grant(&self, scope: &AttemptScope<'_>) -> WorkspaceGrant {
        let dir = match (scope.workspace, scope.stage.workspace) {
            (_, WorkspaceAccess::None) | (None, _) => None,
            (Some(dir), access) => Some((dir.to_path_buf(), access)),
        };
        WorkspaceGrant { dir }
    }

    fn deny() -> WorkspaceGrant {
        WorkspaceGrant { dir: None }
    }
}

pub struct WorkspaceGrant {
    /// The directory and the access to it; `None`: no file system.
    dir: Option<(PathBuf, WorkspaceAccess)>,
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

    #[test]
    fn each_stage_gets_the_access_it_was_granted_to_the_directory_it_is_given() {
        let (p, _dir) = pipeline(TEXT);
        let live = live();
        let cap = WorkspaceCapability;
        let writer = cap.grant(&scope(&p, "writer", &live));
        assert!(matches!(writer.dir, Some((_, WorkspaceAccess::ReadWrite))));
        let reader = cap.grant(&scope(&p, "reader", &live));
        assert!(matches!(reader.dir, Some((_, WorkspaceAccess::ReadOnly))));
        let private = std::path::Path::new("/tmp/elsewhere");
        let moved = cap.grant(&AttemptScope {
            workspace: Some(private),
            ..scope(&p, "writer", &live)
        });
        assert_eq!(moved.dir.unwrap().0, private);
        let blind = cap.grant(&scope(&p, "blind", &live));
        assert!(blind.dir.is_none(), "no workspace grant: no file system");
        let none = cap.grant(&AttemptScope {
            workspace: None,
            ..scope(&p, "writer", &live)
        });
        assert!(none.dir.is_none(), "no workspace in the pipeline");
        assert!(WorkspaceCapability::deny().dir.is_none());
    }
}
