//! The host interfaces granted to stages, one module per capability, each
//! implementing the runtime's contract (`host_runtime::Capability`).
//!
//! [`Capabilities`] is every capability's app-wide part, built once per run
//! from the pipeline; [`Grants`] is one attempt's grant of each, the
//! aggregate the attempt's store holds. Both, and how the runtime reaches
//! each grant, come from one list (`capabilities!` below): adding a
//! capability is one module, its line in that list and its construction in
//! [`Capabilities::new`]; the runtime, the scheduler and the store do not
//! change.

pub mod artifacts;
pub mod attempt;
pub mod gates;
pub mod inputs;
pub mod kv;
pub mod log;
pub mod models;
pub mod providers;
pub mod workspace;

#[cfg(test)]
mod test_support;

use artifacts::{ArtifactsCapability, ArtifactsGrant};
use attempt::{AttemptCapability, AttemptGrant};
use gates::{GatesCapability, GatesGrant};
use host_manifest::Pipeline;
use host_runtime::{AttemptScope, Capability, Grant, GrantSet, Holds, StageState};
use host_store::Store;
use host_vocab::{Activity, StageFailure, StageOutput};
use inputs::{InputsCapability, InputsGrant};
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

/// Declares every capability once: `field: Capability => Grant`. Generates
/// the app-wide [`Capabilities`], the per-attempt [`Grants`], the `Holds`
/// accessor of each grant, and `GrantSet`, which calls every capability in
/// list order.
macro_rules! capabilities {
    ($($field:ident: $cap:ty => $grant:ty),* $(,)?) => {
        /// Every capability's app-wide part, built once per run.
        pub struct Capabilities {
            $(pub $field: $cap,)*
        }

        /// One attempt's grant of every capability.
        pub struct Grants {
            $(pub $field: $grant,)*
        }

        impl Capabilities {
            /// One attempt's grants: what the manifest allows its stage.
            pub fn grants(&self, scope: &AttemptScope<'_>) -> Grants {
                Grants {
                    $($field: Capability::grant(&self.$field, scope),)*
                }
            }
        }

        $(impl Holds<$grant> for Grants {
            fn held(&mut self) -> &mut $grant {
                &mut self.$field
            }
        })*

        impl GrantSet for Grants {
            fn interfaces() -> Vec<(&'static str, &'static str)> {
                let mut all = Vec::new();
                $(all.extend(<$cap>::INTERFACES.iter().map(|i| (*i, <$cap>::GOVERNED_BY)));)*
                all
            }

            fn link(linker: &mut Linker<StageState<Self>>) -> wasmtime::Result<()> {
                $(<$cap>::link(linker)?;)*
                Ok(())
            }

            fn deny() -> Self {
                Grants {
                    $($field: <$cap>::deny(),)*
                }
            }

            fn configure(&self, wasi: &mut WasiCtxBuilder) -> Result<(), String> {
                $(self.$field.configure(wasi)?;)*
                Ok(())
            }

            async fn begin(&mut self) {
                $(self.$field.begin().await;)*
            }

            fn complete_output(&mut self, output: &mut StageOutput) -> Result<(), StageFailure> {
                $(self.$field.complete_output(output)?;)*
                Ok(())
            }

            async fn finish(&mut self) -> Activity {
                let mut activity = Activity::default();
                $(self.$field.finish(&mut activity).await;)*
                activity
            }
        }
    };
}

capabilities!(
    models: ModelsCapability => ModelsGrant,
    gates: GatesCapability => GatesGrant,
    workspace: WorkspaceCapability => WorkspaceGrant,
    kv: KvCapability => KvGrant,
    log: LogCapability => LogGrant,
    artifacts: ArtifactsCapability => ArtifactsGrant,
    attempt: AttemptCapability => AttemptGrant,
    inputs: InputsCapability => InputsGrant,
);

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
            workspace: WorkspaceCapability,
            kv: KvCapability::new(store.clone()),
            log: LogCapability,
            artifacts: ArtifactsCapability,
            attempt: AttemptCapability,
            inputs: InputsCapability::new(store),
        }
    }
}
