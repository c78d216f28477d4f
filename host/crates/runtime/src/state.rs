//! What one stage attempt's store holds: WASI, limits, its grants, and the
//! heartbeat.

use super::capability::{GrantSet, HasGrant, Holds};
use super::limits::MemoryLimiter;
use super::live::{AttemptLive, PrintStream};
use super::output_capture::{CapturedOutput, PrintedLines};
use std::sync::Arc;
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
    /// With `printed`, what the plugin prints is also its attempt's log.
    pub fn new(grants: G, memory_limit: u64, printed: Option<&PrintedTo>) -> Result<Self, String> {
        let lines = |stream| {
            printed.map(|p| PrintedLines {
                live: p.live.clone(),
                stream,
                max_lines: p.max_lines,
            })
        };
        let stdout = CapturedOutput::new(64 << 10).with_lines(lines(PrintStream::Stdout));
        let stderr = CapturedOutput::new(64 << 10).with_lines(lines(PrintStream::Stderr));
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

/// Where an attempt's printed lines go, and how many of each stream it keeps.
#[derive(Clone)]
pub struct PrintedTo {
    pub live: Arc<AttemptLive>,
    pub max_lines: u64,
}

impl<G> StageState<G> {
    /// Logs what is left of the printed lines: the attempt is over.
    pub fn finish_printing(&self) {
        self.stdout.finish();
        self.stderr.finish();
    }

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
