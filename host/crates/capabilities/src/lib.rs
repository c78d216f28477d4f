//! The host interfaces granted to stages, one module per capability, each
//! implementing the runtime's contract (`host_runtime::Capability`).
//!
//! [`Capabilities`] is every capability's app-wide part, built once per run
//! from the pipeline; [`Grants`] is one attempt's grant of each, the
//! aggregate the attempt's store holds. Adding a capability is one module
//! and one field in each of the two structs (and its line in each method of
//! the `GrantSet` impl below); the runtime, the scheduler and the store do
//! not change.

pub mod artifacts;
pub mod gates;
pub mod kv;
pub mod log;
pub mod models;
pub mod providers;
pub mod workspace;

#[cfg(test)]
mod test_support;

use artifacts::{ArtifactsCapability, ArtifactsGrant};
use gates::{GatesCapability, GatesGrant};
use host_manifest::Pipeline;
use host_runtime::{AttemptScope, Capability, Grant, GrantSet, Holds, StageState};
use host_store::Store;
use host_vocab::{Activity, StageFailure, StageOutput};
use kv::{KvCapability, KvGrant};
use log::{LogCapability, LogGrant};
use models::{ExchangeMode, ModelsCapability, ModelsGrant};
use std::sync::Arc;
use wasmtime::component::Linker;
use wasmtime_wasi::WasiCtxBuilder;
use workspace::{WorkspaceCapability, WorkspaceGrant};

/// The runtime of this host: attempts hold [`Grants`].
pub type Runtime = host_runtime::Runtime<Grants>;
/// A plugin loaded into [`Runtime`].
pub type LoadedPlugin = host_runtime::LoadedPlugin<Grants>;
/// What one attempt of [`Runtime`] is given.
pub type AttemptSpec = host_runtime::AttemptSpec<Grants>;

/// Every capability's app-wide part, built once per run.
pub struct Capabilities {
    pub models: ModelsCapability,
    pub gates: GatesCapability,
    pub workspace: WorkspaceCapability,
    pub kv: KvCapability,
    pub log: LogCapability,
    pub artifacts: ArtifactsCapability,
}

impl Capabilities {
    pub fn new(
        pipeline: &Pipeline,
        client: reqwest::Client,
        store: Arc<Store>,
        mode: ExchangeMode,
    ) -> Self {
        Capabilities {
            models: ModelsCapability::new(pipeline, client, store.clone(), mode),
            gates: GatesCapability::new(pipeline),
            workspace: WorkspaceCapability::new(pipeline),
            kv: KvCapability::new(store),
            log: LogCapability,
            artifacts: ArtifactsCapability,
        }
    }

    /// One attempt's grants: what the manifest allows its stage.
    pub fn grants(&self, scope: &AttemptScope<'_>) -> Grants {
        Grants {
            models: Capability::grant(&self.models, scope),
            gates: Capability::grant(&self.gates, scope),
            workspace: Capability::grant(&self.workspace, scope),
            kv: Capability::grant(&self.kv, scope),
            log: Capability::grant(&self.log, scope),
            artifacts: Capability::grant(&self.artifacts, scope),
        }
    }
}

/// One attempt's grant of every capability.
pub struct Grants {
    pub models: ModelsGrant,
    pub gates: GatesGrant,
    pub workspace: WorkspaceGrant,
    pub kv: KvGrant,
    pub log: LogGrant,
    pub artifacts: ArtifactsGrant,
}

/// `Holds<X> for Grants`: how the runtime's store data reaches each field.
macro_rules! holds {
    ($($field:ident: $grant:ty),* $(,)?) => {
        $(impl Holds<$grant> for Grants {
            fn held(&mut self) -> &mut $grant {
                &mut self.$field
            }
        })*
    };
}

holds!(
    models: ModelsGrant,
    gates: GatesGrant,
    workspace: WorkspaceGrant,
    kv: KvGrant,
    log: LogGrant,
    artifacts: ArtifactsGrant,
);

/// `(interface, what governs it)` of one capability.
fn served<C: Capability>() -> impl Iterator<Item = (&'static str, &'static str)> {
    C::INTERFACES.iter().map(|i| (*i, C::GOVERNED_BY))
}

impl GrantSet for Grants {
    fn interfaces() -> Vec<(&'static str, &'static str)> {
        served::<ModelsCapability>()
            .chain(served::<GatesCapability>())
            .chain(served::<WorkspaceCapability>())
            .chain(served::<KvCapability>())
            .chain(served::<LogCapability>())
            .chain(served::<ArtifactsCapability>())
            .collect()
    }

    fn link(linker: &mut Linker<StageState<Self>>) -> wasmtime::Result<()> {
        ModelsCapability::link(linker)?;
        GatesCapability::link(linker)?;
        WorkspaceCapability::link(linker)?;
        KvCapability::link(linker)?;
        LogCapability::link(linker)?;
        ArtifactsCapability::link(linker)
    }

    fn deny() -> Self {
        Grants {
            models: ModelsCapability::deny(),
            gates: GatesCapability::deny(),
            workspace: WorkspaceCapability::deny(),
            kv: KvCapability::deny(),
            log: LogCapability::deny(),
            artifacts: ArtifactsCapability::deny(),
        }
    }

    fn configure(&self, wasi: &mut WasiCtxBuilder) -> Result<(), String> {
        self.models.configure(wasi)?;
        self.gates.configure(wasi)?;
        self.workspace.configure(wasi)?;
        self.kv.configure(wasi)?;
        self.log.configure(wasi)?;
        self.artifacts.configure(wasi)
    }

    async fn begin(&mut self) {
        self.models.begin().await;
        self.gates.begin().await;
        self.workspace.begin().await;
        self.kv.begin().await;
        self.log.begin().await;
        self.artifacts.begin().await;
    }

    fn complete_output(&mut self, output: &mut StageOutput) -> Result<(), StageFailure> {
        self.models.complete_output(output)?;
        self.gates.complete_output(output)?;
        self.workspace.complete_output(output)?;
        self.kv.complete_output(output)?;
        self.log.complete_output(output)?;
        self.artifacts.complete_output(output)
    }

    async fn finish(&mut self) -> Activity {
        let mut activity = Activity::default();
        self.models.finish(&mut activity).await;
        self.gates.finish(&mut activity).await;
        self.workspace.finish(&mut activity).await;
        self.kv.finish(&mut activity).await;
        self.log.finish(&mut activity).await;
        self.artifacts.finish(&mut activity).await;
        activity
    }
}
