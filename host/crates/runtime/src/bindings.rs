//! Host-side bindings generated from `wit/` (the `stage` world).

wasmtime::component::bindgen!({
    path: "../../../wit",
    world: "stage",
    imports: { default: async | trappable },
    exports: { default: async },
});

pub use orchestrator::stage::types::{StageError, StageInput, StageOutput};

/// The WIT package version this host implements.
pub const WIT_PACKAGE: &str = "orchestrator:stage";
pub const WIT_VERSION: &str = "0.2.2";
/// Every version this host runs: the current minor, and the previous one
/// (whose plugins declare no capabilities), see `runtime::world`.
pub const WIT_ACCEPTED: &str = "0.1.0 - 0.2.x";
/// The name every 0.1 interface is registered under: the newest 0.1 patch,
/// which covers every 0.1.x import (the linker matches semver-compatible
/// names).
pub const WIT_0_1_LINK_VERSION: &str = "0.1.1";

/// `orchestrator:stage/IFACE@0.1.1`: where a capability links its 0.1 functions.
pub fn v0_1_name(iface: &str) -> String {
    format!("{WIT_PACKAGE}/{iface}@{WIT_0_1_LINK_VERSION}")
}
