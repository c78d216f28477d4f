//! The wasmtime side: engine, compiled-component cache, load-time checks,
//! and running stage attempts in fresh, limited stores.

mod attempt;
mod cache;
mod engine;
mod limits;
mod loader;
mod output_capture;
pub mod policy;
mod state;
pub mod world;

pub use attempt::{AttemptReport, AttemptSpec, MAX_LOG_LINES, MAX_OUTPUT_BYTES, StageFailure};
pub use cache::{CacheOutcome, ComponentCache};
pub use engine::{Limits, MAX_CONCURRENT_INSTANCES};
pub use loader::{ImportReport, InfoReport, Inspection, LoadError, LoadedPlugin};
pub use state::{Grants, StageState, WORKSPACE_GUEST_PATH};
pub use world::{PluginInfo, WitLine};

use std::path::PathBuf;
use std::sync::Arc;
use wasmtime::Engine;
use wasmtime::component::Linker;

/// One per host process: compiling and linking are shared by every stage.
pub struct Runtime {
    engine: Engine,
    limits: Limits,
    linker: Linker<StageState>,
    cache: Arc<ComponentCache>,
    _ticker: engine::EpochTicker,
}

impl Runtime {
    /// A runtime caching compiled components in `cache_dir` (`None`: no cache).
    pub fn new(cache_dir: Option<PathBuf>) -> wasmtime::Result<Self> {
        Self::with_limits(cache_dir, Limits::On)
    }

    /// A runtime with the limits on or (for benchmarks only) off.
    pub fn with_limits(cache_dir: Option<PathBuf>, limits: Limits) -> wasmtime::Result<Self> {
        let engine = engine::new_engine(limits)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        crate::capabilities::add_to_linker(&mut linker)?;
        let cache = Arc::new(ComponentCache::new(&engine, cache_dir));
        let ticker = engine::EpochTicker::start(engine.clone());
        Ok(Runtime {
            engine,
            limits,
            linker,
            cache,
            _ticker: ticker,
        })
    }
}
