//! What one stage attempt's store holds: WASI, limits, its grants, and the
//! heartbeat.

use super::capability::{GrantSet, HasGrant, Holds};
use super::limits::MemoryLimiter;
use super::output_capture::CapturedOutput;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

pub struct StageState<G> {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub limiter: MemoryLimiter,
    pub grants: G,
    pub stdout: CapturedOutput,
    pub stderr: CapturedOutput,
    /// Epoch ticks of guest execution since the plugin last called one of
    /// the host's interfaces: its heartbeat.
    pub silent_ticks: u64,
    /// Set when the attempt was stopped for staying silent this long.
    pub hung: Option<std::time::Duration>,
}

impl<G: GrantSet> StageState<G> {
    /// A state with no file system, no environment, no arguments, no network:
    /// a plugin gets exactly what its grants add. Fails when a grant cannot
    /// be set up (the workspace cannot be opened).
    pub fn new(grants: G, memory_limit: u64) -> Result<Self, String> {
        let stdout = CapturedOutput::new(64 << 10);
        let stderr = CapturedOutput::new(64 << 10);
        let mut builder = WasiCtx::builder();
        builder.stdout(stdout.clone()).stderr(stderr.clone());
        grants.configure(&mut builder)?;
        Ok(StageState {
            wasi: builder.build(),
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(memory_limit),
            grants,
            stdout,
            stderr,
            silent_ticks: 0,
            hung: None,
        })
    }
}

impl<G> StageState<G> {
    /// A call into one of the host's interfaces: the plugin is alive.
    pub fn beat(&mut self) {
        self.silent_ticks = 0;
    }
}

impl<G: GrantSet + Holds<X>, X: 'static> HasGrant<X> for StageState<G> {
    fn grant(&mut self) -> &mut X {
        self.grants.held()
    }

    fn beat(&mut self) {
        StageState::beat(self);
    }
}

impl<G: Send + 'static> WasiView for StageState<G> {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl<G: Send + 'static> crate::bindings::orchestrator::stage::types::Host for StageState<G> {}
