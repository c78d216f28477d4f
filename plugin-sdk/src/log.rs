//! Logging into the host's run record (and the user's terminal).

use crate::bindings::orchestrator::stage::log::{self as wit, Level};

pub fn trace(message: &str) {
    wit::log(Level::Trace, message);
}

pub fn debug(message: &str) {
    wit::log(Level::Debug, message);
}

pub fn info(message: &str) {
    wit::log(Level::Info, message);
}

pub fn warn(message: &str) {
    wit::log(Level::Warn, message);
}

pub fn error(message: &str) {
    wit::log(Level::Error, message);
}

/// Reports that `done` of `total` units of work are finished.
pub fn progress(done: u64, total: u64, message: &str) {
    wit::progress(done, total, message);
}
