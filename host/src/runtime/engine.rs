//! The one wasmtime engine of a host process, and the epoch clock that lets
//! the host interrupt a plugin that runs too long.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::{Config, Engine};

/// How often the epoch advances: the granularity of stage timeouts.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Whether plugins run under the host's limits. Only benchmarks turn them
/// off, to measure what they cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limits {
    On,
    /// No epoch checks compiled in, no memory limiter: never for real runs.
    Off,
}

pub fn new_engine(limits: Limits) -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    // Timeouts: the guest checks the epoch at loop headers and function entries.
    config.epoch_interruption(limits == Limits::On);
    // A guest's stack overflow traps cleanly instead of touching the host's stack.
    config.max_wasm_stack(1 << 20);
    config.wasm_backtrace_max_frames(std::num::NonZeroUsize::new(32));
    Engine::new(&config)
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EpochTicker {
    pub fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("epoch-ticker".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .ok();
        EpochTicker { stop, thread }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Epoch ticks in `timeout`, at least one.
pub fn ticks(timeout: Duration) -> u64 {
    (timeout.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64
}
