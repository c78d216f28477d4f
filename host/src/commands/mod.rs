//! One module per group of subcommands; `main.rs` only parses and dispatches.

#[cfg(feature = "bench")]
pub mod bench;
pub mod cancel;
pub mod dev;
pub mod gates;
pub mod grants;
pub mod inspect;
pub mod plugin;
pub mod results;
pub mod run;
pub mod serve;

use host::manifest;
use host::store::{Store, StoreError, default_state_dir};
use std::path::{Path, PathBuf};

/// Exit codes, documented in README.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    Success = 0,
    /// A stage failed, or the run deadlocked, was cancelled or ran past its deadline.
    StageFailed = 1,
    /// The run was handed to a person: a loop's cap, or a stage decided so.
    Escalated = 2,
    /// Escalated with preflight gates still failing.
    GatesFailed = 3,
    InvalidInput = 10,
    HostError = 11,
}

/// Options every subcommand shares.
#[derive(Debug, Clone)]
pub struct Globals {
    pub cache_dir: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
}

impl Globals {
    /// `--state-dir`, else the pipeline's `state_dir`, else the default.
    pub fn state_dir(&self, pipeline: Option<&manifest::Pipeline>) -> PathBuf {
        self.state_dir
            .clone()
            .or_else(|| pipeline.and_then(|p| p.state_dir.clone()))
            .unwrap_or_else(default_state_dir)
    }

    pub fn open_store(&self, pipeline: Option<&manifest::Pipeline>) -> Result<Store, Exit> {
        Store::open(&self.state_dir(pipeline)).map_err(|e| report_store_error(&e))
    }
}

pub fn report_store_error(e: &StoreError) -> Exit {
    eprintln!("error: {e}");
    match e {
        StoreError::UnknownRun(_) | StoreError::UnknownStage { .. } => Exit::InvalidInput,
        _ => Exit::HostError,
    }
}

pub fn load_manifest(path: &Path) -> Option<manifest::Pipeline> {
    match manifest::load(path) {
        Ok(p) => Some(p),
        Err(diagnostics) => {
            eprintln!("{diagnostics}");
            None
        }
    }
}
