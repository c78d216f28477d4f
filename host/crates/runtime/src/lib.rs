//! The wasmtime side: engine, compiled-component cache, load-time checks,
//! running stage attempts in fresh, limited stores, and the capability
//! contract every host interface implements (see [`capability`]).
//!
//! The runtime is generic over the aggregate of grants ([`GrantSet`]): it
//! links, sets up and reports capabilities without knowing any by name.

pub mod bindings;
pub mod capability;
pub mod contract;
mod convert;
pub mod live;
pub mod needs;

mod attempt;
mod cache;
mod engine;
mod limits;
mod loader;
mod output_capture;
pub mod policy;
mod state;
pub mod world;

pub use attempt::{AttemptReport, AttemptSpec};
pub use cache::{CacheOutcome, ComponentCache};
pub use capability::{
    AttemptScope, Capability, FilesGuard, Grant, GrantSet, HasGrant, Holds, grant_of,
};
pub use engine::Limits;
pub use host_vocab::StageFailure;
pub use host_vocab::limits::{MAX_CONCURRENT_INSTANCES, MAX_LOG_LINES, MAX_OUTPUT_BYTES};
pub use loader::{ImportReport, InfoReport, Inspection, LoadError, LoadedPlugin};
pub use state::{PrintedTo, StageState};
pub use world::{PluginInfo, WitLine};

use std::path::PathBuf;
use std::sync::Arc;
use wasmtime::Engine;
use wasmtime::component::{HasSelf, Linker};

/// One per host process: compiling and linking are shared by every stage.
pub struct Runtime<G: 'static> {
    engine: Engine,
    limits: Limits,
    linker: Linker<StageState<G>>,
    cache: Arc<ComponentCache>,
    /// This host's own interfaces a plugin may import.
    interfaces: Vec<&'static str>,
    /// Told before a component is compiled (not when the cache answers).
    compile_notice: Option<CompileNotice>,
    _ticker: engine::EpochTicker,
}

impl<G: GrantSet> Runtime<G> {
    /// A runtime caching compiled components in `cache_dir` (`None`: no cache).
    pub fn new(cache_dir: Option<PathBuf>) -> wasmtime::Result<Self> {
        Self::with_limits(cache_dir, Limits::On)
    }

    /// A runtime with the limits on or (for benchmarks only) off.
    pub fn with_limits(cache_dir: Option<PathBuf>, limits: Limits) -> wasmtime::Result<Self> {
        let engine = engine::new_engine(limits)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        bindings::orchestrator::stage::types::add_to_linker::<_, HasSelf<StageState<G>>>(
            &mut linker,
            |s| s,
        )?;
        // Types only under the older lines' names: instances with nothing
        // in them.
        for name in bindings::older_line_names("types") {
            linker.instance(&name)?;
        }
        G::link(&mut linker)?;
        let cache = Arc::new(ComponentCache::new(&engine, cache_dir));
        let ticker = engine::EpochTicker::start(engine.clone());
        let interfaces = policy::BASE_INTERFACES
            .iter()
            .copied()
            .chain(G::interfaces().into_iter().map(|(name, _)| name))
            .collect();
        Ok(Runtime {
            engine,
            limits,
            linker,
            cache,
            interfaces,
            compile_notice: None,
            _ticker: ticker,
        })
    }

    /// Calls `notice` before each compile the cache cannot spare: the one
    /// slow load a user waits for, worth saying so while it happens.
    pub fn on_compile(mut self, notice: impl Fn(&Compiling) + Send + Sync + 'static) -> Self {
        self.compile_notice = Some(Arc::new(notice));
        self
    }
}

/// What is about to be compiled, for [`Runtime::on_compile`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compiling {
    /// The plugin's name in its pipeline (`None`: a component inspected alone).
    pub plugin: Option<String>,
    pub path: PathBuf,
    /// The component's size in bytes.
    pub size: u64,
    /// Whether the result is kept, so later loads skip the compile.
    pub cached_after: bool,
}

type CompileNotice = Arc<dyn Fn(&Compiling) + Send + Sync>;
