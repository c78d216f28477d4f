//! What one stage attempt's store holds: WASI, limits, and its grants.

use super::limits::MemoryLimiter;
use super::output_capture::CapturedOutput;
use crate::capabilities::{kv::KvGrant, log::LogGrant, models::ModelsGrant};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

pub struct StageState {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub limiter: MemoryLimiter,
    pub models: ModelsGrant,
    pub log: LogGrant,
    pub kv: KvGrant,
    pub stdout: CapturedOutput,
    pub stderr: CapturedOutput,
}

impl StageState {
    /// A state with no file system, no environment, no arguments, no network:
    /// a plugin gets exactly what its grants add.
    pub fn new(models: ModelsGrant, log: LogGrant, kv: KvGrant, memory_limit: u64) -> Self {
        let stdout = CapturedOutput::new(64 << 10);
        let stderr = CapturedOutput::new(64 << 10);
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .build();
        StageState {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(memory_limit),
            models,
            log,
            kv,
            stdout,
            stderr,
        }
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
