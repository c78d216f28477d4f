//! Logging into the host's run record (and the user's terminal).

use crate::bindings::orchestrator::stage::log::Level;
// In a component the host's own functions; anywhere else (a plugin's
// `cargo test`) the test host installed on the thread (crate::testing).
#[cfg(target_arch = "wasm32")]
use crate::bindings::orchestrator::stage::log as host;
#[cfg(not(target_arch = "wasm32"))]
use crate::testing::log as host;

pub fn trace(message: &str) {
    host::log(Level::Trace, message);
}

pub fn debug(message: &str) {
    host::log(Level::Debug, message);
}

pub fn info(message: &str) {
    host::log(Level::Info, message);
}

pub fn warn(message: &str) {
    host::log(Level::Warn, message);
}

pub fn error(message: &str) {
    host::log(Level::Error, message);
}

/// Reports that `done` of `total` units of work are finished.
pub fn progress(done: u64, total: u64, message: &str) {
    host::progress(done, total, message);
}
