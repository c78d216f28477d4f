//! The `host` orchestrator as a library: the binary in `main.rs` is only its
//! command-line face.

pub mod bench;
pub mod bindings;
pub mod builder;
pub mod capabilities;
pub mod events;
pub mod failpoint;
pub mod gates;
pub mod live;
pub mod manifest;
pub mod needs;
pub mod progress;
pub mod providers;
pub mod report;
pub mod runtime;
pub mod scaffold;
pub mod scheduler;
pub mod serve;
pub mod session;
pub mod store;
pub mod workspace;
