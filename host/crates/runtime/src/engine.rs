//! The one wasmtime engine of a host process, and the epoch clock that lets
//! the host interrupt a plugin that runs too long.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

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
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling()));
    Engine::new(&config)
}

use host_vocab::limits::MAX_CONCURRENT_INSTANCES;

/// Every attempt is a fresh instance: the pooling allocator keeps memories,
/// tables and fiber stacks in reusable slots instead of mapping and
/// unmapping them per attempt (most of what instantiation cost). Its limits
/// are only upper bounds on address space reserved at start, so they are set
/// well above what the plugins seen here need (a componentize-py component
/// has a few dozen core instances and tables of some 30,000 entries); the
/// stage's own memory limit is enforced by the store's limiter.
fn pooling() -> PoolingAllocationConfig {
    let mut pool = PoolingAllocationConfig::new();
    let instances = MAX_CONCURRENT_INSTANCES;
    pool.total_component_instances(instances)
        .total_core_instances(instances * 16)
        .total_memories(instances * 2)
        .total_tables(instances * 4)
        .total_stacks(instances)
        .max_memories_per_module(4)
        .max_tables_per_module(4)
        .table_elements(200_000)
        .max_core_instance_size(8 << 20)
        .max_component_instance_size(8 << 20)
        .max_memory_size(1 << 32)
        // A reused slot's tables are reset with memset up to this size,
        // cheaper than a system call (a componentize-py component has
        // ~30,000 entries).
        .table_keep_resident(64 << 10);
    if PoolingAllocationConfig::is_pagemap_scan_available() {
        // A reused slot's memory is reset in place rather than given back
        // to the kernel: the PAGEMAP_SCAN ioctl (Linux 6.7+) finds the
        // pages the last attempt dirtied, and only those are restored, up
        // to this many bytes; the rest is released with `madvise`.
        // Releasing everything made every attempt fault its stack and data
        // back in (and flush the other core's TLB); without the scan, a
        // memset of the first MiB touches pages nobody used. No-op stage,
        // optimised host: 42 us released, 71 us memset, 20 us scanned.
        pool.pagemap_scan(wasmtime::Enabled::Yes)
            .linear_memory_keep_resident(1 << 20);
    }
    pool
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
