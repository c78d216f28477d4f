//! The capability contract: how a host interface becomes a unit.
//!
//! A capability is an app-wide part built once from the pipeline (a type
//! implementing [`Capability`]) and a per-attempt [`Grant`] that lives in the
//! attempt's store and enforces what the manifest allows that stage. Its WIT
//! host functions are implemented on the grant, so the check sits in the one
//! place every call passes through.
//!
//! The runtime knows no capability by name: it holds a [`GrantSet`], the
//! aggregate of every grant an attempt has, and links each capability
//! through it generically over the store's data ([`HasGrant`]), the way
//! wasmtime-wasi's `add_to_linker_async<T: WasiView>` does. Adding a
//! capability is one module implementing these traits and one field in the
//! aggregate; the runtime, the scheduler and the store do not change.

use crate::live::AttemptLive;
use host_manifest::StageSpec;
use host_vocab::{Activity, StageFailure, StageOutput};
use std::future::Future;
use std::sync::Arc;
use wasmtime::component::Linker;
use wasmtime_wasi::WasiCtxBuilder;

/// What a capability's host functions see of an attempt's store data: their
/// own grant, and the heartbeat every host call gives.
pub trait HasGrant<G>: Send + 'static {
    fn grant(&mut self) -> &mut G;
    /// The plugin called the host: it is alive.
    fn beat(&mut self);
}

/// The getter every capability links its host functions with: the store
/// data's grant of `G`, after the heartbeat the call gives.
pub fn grant_of<T: HasGrant<G>, G>(data: &mut T) -> &mut G {
    data.beat();
    data.grant()
}

/// One attempt, as a capability sees it when it builds the attempt's grant.
pub struct AttemptScope<'a> {
    pub run_id: &'a str,
    pub stage: &'a StageSpec,
    /// The stage's loop pass (0: the first) and its attempt in that pass.
    pub iteration: u32,
    pub attempt: u32,
    /// Where log lines, progress and model calls go as they happen.
    pub live: &'a Arc<AttemptLive>,
    /// The directory the attempt's workspace grant opens and its gates run
    /// in: the run's copy of the workspace or a private copy of it, chosen
    /// by the scheduler (`None`: the pipeline has no workspace).
    pub workspace: Option<&'a std::path::Path>,
    /// Why it runs: a retry, a resume, a loop's pass (the `attempt`
    /// interface tells the plugin).
    pub kind: host_vocab::AttemptKind,
    /// Checks the attempt's files before a process of the host's (a gate)
    /// works in them; `None`: nothing to check (no private copy).
    pub files_guard: Option<Arc<dyn FilesGuard>>,
    /// When the attempt's timeout ends it: what waits inside the attempt
    /// (a provider's Retry-After) is measured against it.
    pub deadline: std::time::Instant,
    /// The upstream stages' outputs the attempt is given (its artifacts by
    /// reference): the only artifacts it may read.
    pub inputs: &'a [host_vocab::Upstream],
}

/// What keeps a process the host starts for a stage (a gate) inside the
/// stage's files: the plugin may have left a path there that leads out.
pub trait FilesGuard: Send + Sync {
    /// `Err`: the attempt fails with it, and nothing runs in `dir`.
    fn check(&self, dir: &std::path::Path) -> Result<(), host_vocab::StageFailure>;
}

/// A host interface granted to stages.
pub trait Capability: Send + Sync + 'static {
    type Grant: Grant;

    /// The interfaces of `orchestrator:stage` whose functions it serves: a
    /// plugin may import these (the load policy), and `host plugin check`
    /// says what governs them.
    const INTERFACES: &'static [&'static str];
    /// What in a pipeline governs its interfaces, in a few words.
    const GOVERNED_BY: &'static str;

    /// Registers its host functions (every WIT line this host runs) for any
    /// store data that holds its grant.
    fn link<T: HasGrant<Self::Grant>>(linker: &mut Linker<T>) -> wasmtime::Result<()>;

    /// The grant of one attempt: what the manifest allows `scope.stage`.
    fn grant(&self, scope: &AttemptScope<'_>) -> Self::Grant;

    /// The grant of nothing: what a plugin's `info()` runs with.
    fn deny() -> Self::Grant;
}

/// One attempt's grant of one capability: enforcement lives in its host
/// functions; these hooks are the attempt's lifecycle around them.
pub trait Grant: Send + 'static {
    /// Adds to the attempt's WASI context (the workspace preopens its
    /// directory). Fails the attempt before it starts.
    fn configure(&self, _wasi: &mut WasiCtxBuilder) -> Result<(), String> {
        Ok(())
    }

    /// Before the plugin runs.
    fn begin(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Completes a successful output (the artifacts the plugin streamed).
    fn complete_output(&mut self, _output: &mut StageOutput) -> Result<(), StageFailure> {
        Ok(())
    }

    /// After the plugin returned, whatever it returned: adds what the attempt
    /// did with this capability to `activity`.
    fn finish(&mut self, _activity: &mut Activity) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Every grant of one attempt: the aggregate an attempt's store holds. The
/// implementation lists each capability once per method.
pub trait GrantSet: Send + Sized + 'static {
    /// `(interface, what governs it)` for every interface served.
    fn interfaces() -> Vec<(&'static str, &'static str)>;

    /// Links every capability for this aggregate's store data.
    fn link(linker: &mut Linker<crate::StageState<Self>>) -> wasmtime::Result<()>;

    /// Every grant of nothing.
    fn deny() -> Self;

    fn configure(&self, wasi: &mut WasiCtxBuilder) -> Result<(), String>;
    fn begin(&mut self) -> impl Future<Output = ()> + Send;
    fn complete_output(&mut self, output: &mut StageOutput) -> Result<(), StageFailure>;
    fn finish(&mut self) -> impl Future<Output = Activity> + Send;
}

/// An aggregate that holds a grant of type `G`: how [`HasGrant`] reaches it
/// through the store data without the runtime knowing the field.
pub trait Holds<G> {
    fn held(&mut self) -> &mut G;
}
