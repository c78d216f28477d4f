//! What one stage attempt's store holds: WASI, limits, and its grants.

use super::limits::MemoryLimiter;
use super::output_capture::CapturedOutput;
use crate::capabilities::{
    artifacts::ArtifactsGrant, gates::GatesGrant, kv::KvGrant, log::LogGrant, models::ModelsGrant,
};
use crate::manifest::WorkspaceAccess;
use std::path::PathBuf;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

/// Where a granted stage sees the workspace.
pub const WORKSPACE_GUEST_PATH: &str = "/workspace";

/// Everything one attempt is granted.
pub struct Grants {
    pub models: ModelsGrant,
    pub log: LogGrant,
    pub kv: KvGrant,
    pub gates: GatesGrant,
    /// The workspace directory and the access to it; `None`: no file system.
    pub workspace: Option<(PathBuf, WorkspaceAccess)>,
}

pub struct StageState {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub limiter: MemoryLimiter,
    pub models: ModelsGrant,
    pub log: LogGrant,
    pub kv: KvGrant,
    pub gates: GatesGrant,
    pub artifacts: ArtifactsGrant,
    pub stdout: CapturedOutput,
    pub stderr: CapturedOutput,
    /// Epoch ticks of guest execution since the plugin last called one of
    /// the host's interfaces: its heartbeat.
    pub silent_ticks: u64,
    /// Set when the attempt was stopped for staying silent this long.
    pub hung: Option<std::time::Duration>,
}

impl StageState {
    /// A call into one of the host's interfaces: the plugin is alive.
    pub fn beat(&mut self) {
        self.silent_ticks = 0;
    }

    /// A state with no file system, no environment, no arguments, no network:
    /// a plugin gets exactly what its grants add. Fails when the workspace
    /// cannot be opened.
    pub fn new(grants: Grants, memory_limit: u64, max_output: usize) -> Result<Self, String> {
        let stdout = CapturedOutput::new(64 << 10);
        let stderr = CapturedOutput::new(64 << 10);
        let mut builder = WasiCtx::builder();
        builder.stdout(stdout.clone()).stderr(stderr.clone());
        if let Some((dir, access)) = &grants.workspace {
            let perms = match access {
                WorkspaceAccess::None => None,
                WorkspaceAccess::ReadOnly => Some(FsPerms::ReadOnly),
                WorkspaceAccess::ReadWrite => Some(FsPerms::ReadWrite),
            };
            if let Some(perms) = perms {
                builder
                    .preopened_dir(dir, WORKSPACE_GUEST_PATH, perms)
                    .map_err(|e| format!("cannot open the workspace {}: {e:#}", dir.display()))?;
            }
        }
        Ok(StageState {
            wasi: builder.build(),
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(memory_limit),
            models: grants.models,
            log: grants.log,
            kv: grants.kv,
            gates: grants.gates,
            artifacts: ArtifactsGrant::new(max_output),
            stdout,
            stderr,
            silent_ticks: 0,
            hung: None,
        })
    }
}

impl WasiView for StageState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
