//! One stage attempt: a fresh store, the stage's grants and limits, one call
//! to `run`, and a typed account of how it ended.

use super::capability::GrantSet;
use super::engine::{Limits, ticks};
use super::loader::LoadedPlugin;
use super::state::PrintedTo;
use super::world::{LineInput, PluginInfo, PluginPre};
use super::{Runtime, StageState};
use crate::bindings::StageError;
use crate::convert::eager_input;
use host_vocab::ArtifactSource;
use host_vocab::output_rules::{bounded_error, check_output};
use host_vocab::{Activity, LimitReached, StageFailure, StageInput, StageOutput};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::{FrameInfo, Store, Trap, UpdateDeadline, WasmBacktrace};

/// What one attempt produced, successful or not.
pub struct AttemptReport {
    pub outcome: Result<StageOutput, StageFailure>,
    /// What the attempt's grants report it did (model calls, gate runs,
    /// file changes, session messages, dropped log lines).
    pub activity: Activity,
    pub stderr: String,
    pub elapsed: Duration,
}

pub struct AttemptSpec<G> {
    pub input: StageInput,
    pub grants: G,
    pub timeout: Duration,
    /// Silence (guest execution without a host call) that counts as hung.
    pub heartbeat: Option<Duration>,
    pub memory_limit: u64,
    /// Largest total of artifact bytes, returned and streamed.
    pub max_output: usize,
    /// Where what the plugin prints goes (`None`: captured for a trap's
    /// report only).
    pub printed: Option<PrintedTo>,
    /// Where the upstream artifacts' bytes are, for a plugin of a line that
    /// takes them in its input (`None`: nowhere, every input is empty).
    pub artifacts: Option<Arc<dyn ArtifactSource>>,
}

/// Extra wall-clock time past the epoch deadline before the host gives up on
/// a stage that is blocked inside a host call rather than running wasm.
const HOST_CALL_GRACE: Duration = Duration::from_secs(2);

impl<G: GrantSet> Runtime<G> {
    pub async fn run_attempt(
        &self,
        plugin: &LoadedPlugin<G>,
        spec: AttemptSpec<G>,
    ) -> AttemptReport {
        let started = Instant::now();
        let state = match StageState::new(spec.grants, spec.memory_limit, spec.printed.as_ref()) {
            Ok(state) => state,
            Err(e) => {
                return AttemptReport {
                    outcome: Err(StageFailure::Instantiate(e)),
                    activity: Activity::default(),
                    stderr: String::new(),
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

        store.data_mut().grants.begin().await;
        let input = if plugin.pre.line().eager_inputs() {
            let source = spec.artifacts.as_deref();
            match tokio::task::block_in_place(|| eager_input(spec.input, source)) {
                Ok(input) => LineInput::Eager(input),
                Err(e) => {
                    return AttemptReport {
                        outcome: Err(StageFailure::Instantiate(e)),
                        activity: store.data_mut().grants.finish().await,
                        stderr: String::new(),
                        elapsed: started.elapsed(),
                    };
                }
            }
        } else {
            LineInput::Current(spec.input.into())
        };
        let call = async {
            let instance = plugin
                .pre
                .instantiate(&mut store)
                .await
                .map_err(|e| Err(StageFailure::Instantiate(format!("{e:#}"))))?;
            instance.call_run(&mut store, input).await.map_err(Ok)
        };
        let result = tokio::time::timeout(spec.timeout + HOST_CALL_GRACE, call).await;
        store.data().finish_printing();
        let outcome = match result {
            Err(_) => Err(StageFailure::Timeout(spec.timeout)),
            Ok(Err(Err(failure))) => Err(failure),
            Ok(Err(Ok(trap))) => Err(classify_trap(&trap, store.data(), spec.timeout)),
            Ok(Ok(Err(StageError::Retryable(message)))) => Err(StageFailure::Plugin {
                retryable: true,
                message: bounded_error(message),
            }),
            Ok(Ok(Err(StageError::Fatal(message)))) => Err(StageFailure::Plugin {
                retryable: false,
                message: bounded_error(message),
            }),
            Ok(Ok(Ok(output))) => {
                let mut output = StageOutput::from(output);
                store
                    .data_mut()
                    .grants
                    .complete_output(&mut output)
                    .and_then(|()| check_output(&output, spec.max_output))
                    .map(|()| output)
            }
        };
        let state = store.data_mut();
        let activity = state.grants.finish().await;
        AttemptReport {
            outcome,
            activity,
            stderr: state.stderr.text(),
            elapsed: started.elapsed(),
        }
    }

    /// Calls `info()` in a throwaway instance with no grants and a short deadline.
    pub(super) async fn call_info(&self, pre: &PluginPre<G>) -> Result<PluginInfo, String> {
        let timeout = Duration::from_secs(5);
        let mut store = Store::new(&self.engine, StageState::new(G::deny(), 64 << 20, None)?);
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

fn classify_trap<G>(
    error: &wasmtime::Error,
    state: &StageState<G>,
    timeout: Duration,
) -> StageFailure {
    let trap = error.downcast_ref::<Trap>().copied();
    if trap == Some(Trap::Interrupt) {
        return match state.hung {
            Some(silence) => StageFailure::Hung(silence),
            None => StageFailure::Timeout(timeout),
        };
    }
    // A host call that found a bound reached, or a path leading out of the
    // workspace, ends the attempt with it.
    if let Some(hit) = error.downcast_ref::<LimitReached>() {
        return StageFailure::Limit(hit.clone());
    }
    if let Some(failure) = error.downcast_ref::<StageFailure>() {
        return failure.clone();
    }
    if let Some(hit) = state.limiter.tables_reached() {
        return StageFailure::Limit(hit);
    }
    let stderr = state.stderr.text();
    // A refused growth is why the plugin died, unless it survived the
    // refusal and panicked over something else (then its panic says more).
    if let Some(requested) = state.limiter.refused()
        && !stderr.contains("panicked at")
    {
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
        // same function filling the backtrace. With large frames (256 KiB
        // locals) the default 1 MiB stack holds only a few of them, so three
        // in a row are enough to say so; the access is named either way.
        Some(Trap::MemoryOutOfBounds) if frames.first().is_some_and(|f| f.1 >= 3) => {
            format!(
                "stack overflow (out-of-bounds memory access in deep recursion of {})",
                frames[0].0
            )
        }
        Some(t) => t.to_string(),
        None => format!("{error:#}"),
    };
    if let Some(requested) = state.limiter.refused() {
        message = format!(
            "{message} (earlier, a growth of its memories to {requested} bytes was refused: the limit is {})",
            state.limiter.max_memory()
        );
    }
    // The trap itself only says "unreachable"; a Rust panic message or a
    // Python traceback is on the plugin's stderr.
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
