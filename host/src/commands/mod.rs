//! One module per group of subcommands; `main.rs` only parses and dispatches.

#[cfg(feature = "bench")]
pub mod bench;
pub mod cancel;
pub mod changes;
pub mod dev;
pub mod gates;
pub mod gc;
pub mod grants;
pub mod inspect;
pub mod plugin;
pub mod plugin_run;
mod plugin_run_spec;
pub mod results;
pub mod run;
pub mod serve;
pub mod shell;
pub mod verify;

use host::builder::BuildPolicy;
use host::lifecycle::LifecycleError;
use host::manifest;
use host::report::OutputMode;
use host::session::SessionError;
use host::state_index;
use host::store::{RunRecord, Store, StoreError, default_state_dir};
use std::path::{Path, PathBuf};

/// Exit codes, documented in docs/cli.md.
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
    /// The run succeeded but its changes were not applied to the workspace:
    /// files there changed since the run began.
    NotApplied = 4,
    InvalidInput = 10,
    HostError = 11,
}

/// Why a command stopped short: printed once, by `main`, and mapped to its
/// exit code (ripgrep's `try_main` shape). A command that ran to the end
/// returns `Ok(exit)`, which may still be non-zero (a run whose stage failed).
#[derive(Debug)]
pub enum Failure {
    /// Already printed where it was found (diagnostics, a list of load errors).
    Reported(Exit),
    /// To print on stderr as it is.
    Message(Exit, String),
}

/// What a command returns.
pub type Outcome = Result<Exit, Failure>;

impl Failure {
    /// `error: MESSAGE`, the user's input at fault.
    pub fn invalid(message: impl std::fmt::Display) -> Self {
        Failure::Message(Exit::InvalidInput, format!("error: {message}"))
    }

    /// `error: MESSAGE`, the host or its state at fault.
    pub fn host(message: impl std::fmt::Display) -> Self {
        Failure::Message(Exit::HostError, format!("error: {message}"))
    }

    /// Prints what is left to print; the exit code.
    pub fn report(self) -> Exit {
        match self {
            Failure::Reported(exit) => exit,
            Failure::Message(exit, text) => {
                eprintln!("{}", host::style::stderr_message(&text));
                exit
            }
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        let exit = match e {
            StoreError::UnknownRun(_)
            | StoreError::UnknownStage { .. }
            | StoreError::Busy { .. } => Exit::InvalidInput,
            _ => Exit::HostError,
        };
        Failure::Message(exit, format!("error: {e}"))
    }
}

impl From<LifecycleError> for Failure {
    fn from(e: LifecycleError) -> Self {
        match e {
            LifecycleError::Store(e) => e.into(),
            // Its diagnostics are the message, each line already prefixed.
            LifecycleError::ManifestInvalid { .. } => {
                Failure::Message(Exit::InvalidInput, e.to_string())
            }
            e => Failure::invalid(e),
        }
    }
}

impl From<SessionError> for Failure {
    fn from(e: SessionError) -> Self {
        let exit = match e {
            SessionError::Runtime(_) => Exit::HostError,
            SessionError::Build { .. } | SessionError::Load(_) => Exit::InvalidInput,
        };
        Failure::Message(exit, e.to_string())
    }
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

    /// The store runs are recorded in, created if it is not there yet: for
    /// the commands that start runs. The directory is remembered, so that
    /// the ids of its runs work from anywhere.
    pub fn open_store(&self, pipeline: Option<&manifest::Pipeline>) -> Result<Store, Failure> {
        let dir = self.state_dir(pipeline);
        let store = Store::open(&dir)?;
        if let Err(e) = state_index::remember(&default_state_dir(), &dir) {
            tracing::debug!("cannot remember state directory {}: {e}", dir.display());
        }
        Ok(store)
    }

    /// The store that holds run `run_id`, and its record: this command's
    /// state directory, else (unless `--state-dir` named one) every other
    /// state directory this user's runs were made in.
    pub fn run_store(&self, run_id: &str) -> Result<(Store, RunRecord), Failure> {
        let here = self.store_if_any(None)?;
        let here_exists = here.is_some();
        if let Some(store) = here {
            match store.run(run_id) {
                Ok(run) => return Ok((store, run)),
                Err(StoreError::UnknownRun(_)) if self.state_dir.is_none() => {}
                Err(e) => return Err(e.into()),
            }
        } else if self.state_dir.is_some() {
            return Err(Failure::invalid(self.no_store_here(None)));
        }
        let first = self.state_dir(None);
        let mut searched = vec![first.clone()];
        for dir in state_index::known(&default_state_dir()) {
            if searched.contains(&dir) || !dir.join(host::store::DB_FILE).is_file() {
                continue;
            }
            searched.push(dir.clone());
            // A directory that cannot be read is not where the run is.
            let Ok(store) = Store::open(&dir) else {
                continue;
            };
            if let Ok(run) = store.run(run_id) {
                eprintln!("note: run {run_id} is recorded in {}", dir.display());
                return Ok((store, run));
            }
        }
        let others = searched.len() - 1;
        if others == 0 && !here_exists {
            return Err(Failure::invalid(self.no_store_here(None)));
        }
        Err(Failure::invalid(format!(
            "no run '{run_id}' in state directory {}{} (see `host runs`, or --state-dir DIR)",
            first.display(),
            match others {
                0 => String::new(),
                1 => " nor in the 1 other state directory runs were made in".to_string(),
                n => format!(" nor in the {n} other state directories runs were made in"),
            }
        )))
    }

    /// The store of a state directory that already holds one, or `None`:
    /// nothing is created.
    pub fn store_if_any(
        &self,
        pipeline: Option<&manifest::Pipeline>,
    ) -> Result<Option<Store>, Failure> {
        let dir = self.state_dir(pipeline);
        if !dir.join(host::store::DB_FILE).is_file() {
            return Ok(None);
        }
        Ok(Some(Store::open(&dir)?))
    }

    /// The store of a state directory that already holds one, for the
    /// commands that read or act on recorded runs: a mistyped directory is
    /// an error, never created.
    pub fn existing_store(&self) -> Result<Store, Failure> {
        self.store_if_any(None)?
            .ok_or_else(|| Failure::invalid(self.no_store_here(None)))
    }

    /// Why there is no store where this command looked.
    pub fn no_store_here(&self, pipeline: Option<&manifest::Pipeline>) -> String {
        let dir = self.state_dir(pipeline);
        let what = if dir.is_dir() {
            "holds no state database"
        } else {
            "does not exist"
        };
        format!(
            "state directory {} {what}: no run is recorded there (runs made with another state directory need --state-dir DIR)",
            dir.display()
        )
    }
}

/// `--json` and `--quiet`, for the commands that run pipelines.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct OutputFlags {
    /// Print events and the summary as JSON lines.
    #[arg(long)]
    pub json: bool,
    /// Print only the summary (and errors): no event lines, no live progress.
    #[arg(long, conflicts_with = "json")]
    pub quiet: bool,
}

impl OutputFlags {
    pub fn mode(self) -> OutputMode {
        OutputMode::choose(self.json, self.quiet)
    }
}

/// `--build` and `--no-build`.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct BuildFlags {
    /// Never run build commands: a missing component is an error.
    #[arg(long, conflicts_with = "build")]
    pub no_build: bool,
    /// Run every plugin's build command first, even if its component exists.
    #[arg(long)]
    pub build: bool,
}

impl BuildFlags {
    pub fn policy(self) -> BuildPolicy {
        match (self.no_build, self.build) {
            (true, _) => BuildPolicy::Never,
            (_, true) => BuildPolicy::Always,
            _ => BuildPolicy::IfMissing,
        }
    }
}

/// A duration as the manifest writes them ("30s", "200ms").
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    manifest::HumanDuration::parse(text).map(|d| d.0)
}

/// The pipeline at `path`, or its diagnostics printed.
/// `--task TEXT` or the text of `--task-file FILE` (`run`, `plugin run`):
/// the run's task, if either is given.
pub fn task_option(
    task: Option<&String>,
    task_file: Option<&std::path::PathBuf>,
) -> Result<Option<String>, Failure> {
    match (task, task_file) {
        (Some(text), _) => Ok(Some(text.clone())),
        (None, Some(file)) => manifest::read_task_file(file)
            .map(Some)
            .map_err(Failure::invalid),
        (None, None) => Ok(None),
    }
}

pub fn load_manifest(path: &Path) -> Result<manifest::Pipeline, Failure> {
    manifest::load(path)
        .map_err(|diagnostics| Failure::Message(Exit::InvalidInput, diagnostics.to_string()))
}
