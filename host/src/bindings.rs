//! Host-side bindings generated from `wit/` (the `stage` world).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "stage",
    imports: { default: async | trappable },
    exports: { default: async },
});

pub use orchestrator::stage::types::{PluginInfo, StageError, StageInput, StageOutput};

/// The WIT package version this host implements.
pub const WIT_PACKAGE: &str = "orchestrator:stage";
pub const WIT_VERSION: &str = "0.1.1";
