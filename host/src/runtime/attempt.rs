//! One stage attempt: a fresh store, the stage's grants and limits, one call
//! to `run`, and a typed account of how it ended.

use super::engine::{Limits, ticks};
use super::loader::LoadedPlugin;
use super::state::Grants;
use super::world::{PluginInfo, PluginPre};
use super::{Runtime, StageState};
use crate::bindings::{StageError, StageInput, StageOutput};
use crate::capabilities::gates::GatesGrant;
use crate::capabilities::kv::KvGrant;
use crate::capabilities::log::LogGrant;
use crate::capabilities::models::{ModelCall, ModelsGrant};
use crate::gates::GateRun;
use crate::manifest::WorkspaceAccess;
use crate::workspace::{FileChange, Snapshot};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use wasmtime::{FrameInfo, Store, Trap, UpdateDeadline, WasmBacktrace};

/// Default largest total of artifact bytes one attempt may return.
pub const MAX_OUTPUT_BYTES: usize = 64 << 20;
/// Default most log lines one attempt may write.
pub const MAX_LOG_LINES: u64 = 10_000;

/// How a stage attempt failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum StageFailure {
    #[error("the plugin reported a {} error: {message}", if *retryable { "retryable" } else { "fatal" })]
    Plugin { retryable: bool, message: String },
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error(
        "out of memory: the plugin tried to grow its memory to {requested} bytes; the limit is {limit}"
    )]
    OutOfMemory { requested: u64, limit: u64 },
    #[error("the plugin trapped: {message}")]
    Trap { message: String },
    #[error("the plugin returned {bytes} bytes of artifacts; the limit is {limit}")]
    OutputTooLarge { bytes: usize, limit: usize },
    #[error("the plugin could not be instantiated: {0}")]
    Instantiate(String),
    #[error("hung: no host call or progress report for {0:?} of running")]
    Hung(Duration),
}

impl StageFailure {
    /// Whether another attempt might succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            StageFailure::Plugin {
                retryable: true,
                ..
            } | StageFailure::Timeout(_)
                | StageFailure::Hung(_)
        )
    }
}

/// What one attempt produced, successful or not.
pub struct AttemptReport {
    pub outcome: Result<StageOutput, StageFailure>,
    pub model_calls: Vec<ModelCall>,
    pub gate_runs: Vec<GateRun>,
    /// Messages added to conversation sessions (kept if the attempt succeeded).
    pub session_appends: Vec<(String, Vec<crate::providers::ChatMessage>)>,
    /// Files the attempt changed in the workspace (read-write grants only).
    pub file_changes: Vec<FileChange>,
    pub stderr: String,
    pub log_lines_dropped: u64,
    pub elapsed: Duration,
}

pub struct AttemptSpec {
    pub input: StageInput,
    pub models: ModelsGrant,
    pub kv: KvGrant,
    pub gates: GatesGrant,
    pub workspace: Option<(PathBuf, WorkspaceAccess)>,
    pub timeout: Duration,
    /// Silence (guest execution without a host call) that counts as hung.
    pub heartbeat: Option<Duration>,
    pub memory_limit: u64,
    /// Largest total of artifact bytes, and most log lines, for this attempt.
    pub max_output: usize,
    pub max_log_lines: u64,
    /// Where log lines and progress go as they happen.
    pub live: std::sync::Arc<crate::live::AttemptLive>,
}

/// Hashes the workspace off the async threads (it reads every file).
async fn snapshot(dir: PathBuf) -> Snapshot {
    tokio::task::spawn_blocking(move || Snapshot::take(&dir))
        .await
        .unwrap_or_default()
}

/// Extra wall-clock time past the epoch deadline before the host gives up on
/// a stage that is blocked inside a host call rather than running wasm.
const HOST_CALL_GRACE: Duration = Duration::from_secs(2);

impl Runtime {
    pub async fn run_attempt(&self, plugin: &LoadedPlugin, spec: AttemptSpec) -> AttemptReport {
        let started = Instant::now();
        let log = LogGrant::new(
            &spec.input.run_id,
            &spec.input.stage_id,
            spec.input.attempt,
            spec.max_log_lines,
            spec.live.clone(),
        );
        let writable = match &spec.workspace {
            Some((dir, WorkspaceAccess::ReadWrite)) => Some(dir.clone()),
            _ => None,
        };
        let before = match &writable {
            Some(dir) => Some(snapshot(dir.clone()).await),
            None => None,
        };
        let grants = Grants {
            models: spec.models,
            log,
            kv: spec.kv,
            gates: spec.gates,
            workspace: spec.workspace,
        };
        let state = match StageState::new(grants, spec.memory_limit, spec.max_output) {
            Ok(state) => state,
            Err(e) => {
                return AttemptReport {
                    outcome: Err(StageFailure::Instantiate(e)),
                    model_calls: Vec::new(),
                    gate_runs: Vec::new(),
                    session_appends: Vec::new(),
                    file_changes: Vec::new(),
                    stderr: String::new(),
                    log_lines_dropped: 0,
                    elapsed: started.elapsed(),
                };
            }
        };
        let mut store = Store::new(&self.engine, state);
        if self.limits == Limits::On {
            store.limiter(|s| &mut s.limiter);
            // Every tick: check the deadline and the heartbeat, then yield
            // so a busy plugin never holds an executor thread for long.
            let deadline = started + spec.timeout;
            let silence = spec.heartbeat.map(ticks);
            let heartbeat = spec.heartbeat;
            store.set_epoch_deadline(1);
            store.epoch_deadline_callback(move |mut ctx| {
                if Instant::now() >= deadline {
                    return Ok(UpdateDeadline::Interrupt);
                }
                let state = ctx.data_mut();
                state.silent_ticks += 1;
                if let (Some(limit), Some(h)) = (silence, heartbeat)
                    && state.silent_ticks >= limit
                {
                    state.hung = Some(h);
                    return Ok(UpdateDeadline::Interrupt);
                }
                Ok(UpdateDeadline::Yield(1))
            });
        }

        let call = async {
            let instance = plugin
                .pre
                .instantiate(&mut store)
                .await
                .map_err(|e| Err(StageFailure::Instantiate(format!("{e:#}"))))?;
            instance.call_run(&mut store, &spec.input).await.map_err(Ok)
        };
        let result = tokio::time::timeout(spec.timeout + HOST_CALL_GRACE, call).await;
        let outcome = match result {
            Err(_) => Err(StageFailure::Timeout(spec.timeout)),
            Ok(Err(Err(failure))) => Err(failure),
            Ok(Err(Ok(trap))) => Err(classify_trap(&trap, store.data(), spec.timeout)),
            Ok(Ok(Err(StageError::Retryable(message)))) => Err(StageFailure::Plugin {
                retryable: true,
                message,
            }),
            Ok(Ok(Err(StageError::Fatal(message)))) => Err(StageFailure::Plugin {
                retryable: false,
                message,
            }),
            Ok(Ok(Ok(output))) => with_streamed(output, &mut store.data_mut().artifacts)
                .and_then(|o| check_output_size(o, spec.max_output)),
        };
        let file_changes = match (writable, before) {
            (Some(dir), Some(before)) => before.changes(&snapshot(dir).await),
            _ => Vec::new(),
        };
        let state = store.data_mut();
        AttemptReport {
            outcome,
            model_calls: state.models.take_calls(),
            gate_runs: state.gates.take_runs(),
            session_appends: state.models.take_session_appends(),
            file_changes,
            stderr: state.stderr.text(),
            log_lines_dropped: state.log.dropped(),
            elapsed: started.elapsed(),
        }
    }

    /// Calls `info()` in a throwaway instance with no grants and a short deadline.
    pub(super) async fn call_info(&self, pre: &PluginPre) -> Result<PluginInfo, String> {
        let timeout = Duration::from_secs(5);
        let models = ModelsGrant::empty("(info)");
        let log = LogGrant::new(
            "-",
            "(info)",
            0,
            100,
            std::sync::Arc::new(crate::live::AttemptLive::detached("(info)")),
        );
        let grants = Grants {
            models,
            log,
            kv: KvGrant::none(),
            gates: GatesGrant::none("(info)"),
            workspace: None,
        };
        let mut store = Store::new(&self.engine, StageState::new(grants, 64 << 20, 0)?);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(ticks(timeout));
        store.epoch_deadline_trap();
        let call = async {
            let instance = pre.instantiate(&mut store).await?;
            instance.call_info(&mut store).await
        };
        match tokio::time::timeout(timeout + HOST_CALL_GRACE, call).await {
            Ok(Ok(info)) => Ok(info),
            Ok(Err(trap)) => Err(classify_trap(&trap, store.data(), timeout).to_string()),
            Err(_) => Err(StageFailure::Timeout(timeout).to_string()),
        }
    }
}

/// Adds the artifacts the plugin streamed to the ones it returned.
fn with_streamed(
    mut output: StageOutput,
    streamed: &mut crate::capabilities::artifacts::ArtifactsGrant,
) -> Result<StageOutput, StageFailure> {
    let fatal = |message: String| StageFailure::Plugin {
        retryable: false,
        message,
    };
    for artifact in streamed.finish().map_err(fatal)? {
        if output.artifacts.iter().any(|a| a.name == artifact.name) {
            return Err(fatal(format!(
                "artifact '{}' was both streamed and returned",
                artifact.name
            )));
        }
        output.artifacts.push(artifact);
    }
    Ok(output)
}

fn check_output_size(output: StageOutput, limit: usize) -> Result<StageOutput, StageFailure> {
    let bytes: usize = output.artifacts.iter().map(|a| a.bytes.len()).sum();
    if bytes > limit {
        return Err(StageFailure::OutputTooLarge { bytes, limit });
    }
    Ok(output)
}

fn classify_trap(error: &wasmtime::Error, state: &StageState, timeout: Duration) -> StageFailure {
    let trap = error.downcast_ref::<Trap>().copied();
    if trap == Some(Trap::Interrupt) {
        return match state.hung {
            Some(silence) => StageFailure::Hung(silence),
            None => StageFailure::Timeout(timeout),
        };
    }
    if let Some(requested) = state.limiter.refused() {
        return StageFailure::OutOfMemory {
            requested,
            limit: state.limiter.max_memory(),
        };
    }
    let frames = error
        .downcast_ref::<WasmBacktrace>()
        .map(|bt| collapse_frames(bt.frames()))
        .unwrap_or_default();
    let mut message = match trap {
        Some(Trap::StackOverflow) => "stack overflow".to_string(),
        // Rust and C keep their stack in linear memory below the data: deep
        // recursion runs off its bottom as an out-of-bounds access, with the
        // same function filling the backtrace.
        Some(Trap::MemoryOutOfBounds) if frames.first().is_some_and(|f| f.1 >= 8) => {
            format!(
                "stack overflow (out-of-bounds memory access in deep recursion of {})",
                frames[0].0
            )
        }
        Some(t) => t.to_string(),
        None => format!("{error:#}"),
    };
    // The trap itself only says "unreachable"; a Rust panic message or a
    // Python traceback is on the plugin's stderr.
    let stderr = state.stderr.text();
    let tail: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    if !tail.is_empty() {
        let tail = &tail[tail.len().saturating_sub(12)..];
        message = format!(
            "{message}\nplugin stderr (last lines):\n    {}",
            tail.join("\n    ")
        );
    }
    if !frames.is_empty() {
        let lines: Vec<String> = frames
            .iter()
            .take(12)
            .map(|(name, n)| {
                if *n > 1 {
                    format!("{name} (x{n})")
                } else {
                    name.clone()
                }
            })
            .collect();
        message = format!("{message}\nwasm backtrace:\n    {}", lines.join("\n    "));
    }
    StageFailure::Trap { message }
}

/// Frames of a language runtime's own panic and abort path: they say how a
/// plugin died, not where, so the backtrace starts below them.
const UNWIND_PREFIXES: &[&str] = &[
    "abort",
    "std::",
    "core::",
    "__rustc::",
    "rust_panic",
    "rust_begin_unwind",
];

/// Frames as "module!function", demangled, consecutive repeats folded into a
/// count, the panic machinery on top dropped.
fn collapse_frames(frames: &[FrameInfo]) -> Vec<(String, usize)> {
    let names: Vec<(String, String)> = frames
        .iter()
        .map(|frame| {
            let module = frame.module().name().unwrap_or("?").to_string();
            let func = frame
                .func_name()
                .map(|n| format!("{:#}", rustc_demangle::demangle(n)))
                .unwrap_or_else(|| format!("<function {}>", frame.func_index()));
            (module, func)
        })
        .collect();
    let skip = names
        .iter()
        .take(16)
        .rposition(|(_, f)| UNWIND_PREFIXES.iter().any(|p| f.starts_with(p)))
        .map_or(0, |i| i + 1)
        .min(names.len().saturating_sub(1));
    let mut out: Vec<(String, usize)> = Vec::new();
    for (module, func) in &names[skip..] {
        let name = format!("{module}!{func}");
        match out.last_mut() {
            Some((last, n)) if *last == name => *n += 1,
            _ => out.push((name, 1)),
        }
    }
    out
}
