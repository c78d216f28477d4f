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
pub const WIT_VERSION: &str = "0.3.0";
/// Every version this host runs: the current minor, and the two before it
/// (see `runtime::world`).
pub const WIT_ACCEPTED: &str = "0.1.0 - 0.3.x";

/// The newest patch of each older line: every import of that line is
/// registered under it (the linker matches semver-compatible names, so
/// `@0.2.2` serves a plugin built against 0.2.0 too).
const OLDER_LINE_PATCHES: [&str; 2] = ["0.1.1", "0.2.2"];

/// `orchestrator:stage/IFACE@0.1.1` and `@0.2.2`: where a capability links
/// the functions older plugins import. Their interfaces (all but `types`
/// and `runner`, which the runtime handles) are those of 0.3 minus what 0.3
/// added, so one set of functions serves both; a function a line lacks is
/// never imported by its plugins.
pub fn older_line_names(iface: &str) -> impl Iterator<Item = String> + '_ {
    OLDER_LINE_PATCHES
        .iter()
        .map(move |v| format!("{WIT_PACKAGE}/{iface}@{v}"))
}
