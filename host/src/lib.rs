//! The `host` orchestrator as a library: the scheduler, the run lifecycle,
//! console output, `host serve` and `host dev`, on top of the layer crates
//! (bottom up: `host-vocab`, `host-manifest`, `host-store`, `host-runtime`,
//! `host-capabilities`, beside them `host-workspace`). The binary in `main.rs` is only its command-line
//! face.

#[cfg(feature = "bench")]
pub mod bench;
pub mod builder;
pub mod lifecycle;
pub mod progress;
pub mod report;
pub mod retention;
pub mod scaffold;
pub mod scheduler;
pub mod serve;
pub mod session;
pub mod state_index;
pub mod style;
pub mod workspace;

// The layers, under the names the commands use.
pub use host_capabilities as capabilities;
pub use host_manifest as manifest;
pub use host_runtime as runtime;
pub use host_store as store;
pub use host_vocab as vocab;
pub use host_workspace as files;
