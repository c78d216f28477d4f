//! `host diff`, `host apply`, and applying a run's changes when it
//! succeeds: the user's side of the transactional workspace.

use super::{Exit, Failure, Globals, Outcome};
use host::lifecycle;
use host::manifest::{ApplyPolicy, Pipeline};
use host::scheduler::RunSummary;
use host::store::{RunStatus, Store};
use host::workspace::{ApplyError, ApplyOutcome, apply_run, diff_text, run_changes};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(clap::Args)]
pub struct DiffArgs {
    /// The run (see `host runs`).
    run_id: String,
    /// Only this stage's changes (else the whole run's, folded per file).
    stage: Option<String>,
    /// One line per file (added, modified, deleted) instead of the diff.
    #[arg(long)]
    stat: bool,
}

#[derive(clap::Args)]
pub struct ApplyArgs {
    /// The run whose changes to write (see `host runs`).
    run_id: String,
    /// Write even files changed since the run began (their changes are lost).
    #[arg(long)]
    force: bool,
    /// Apply to this directory instead of the run's workspace.
    #[arg(long, value_name = "DIR")]
    to: Option<PathBuf>,
}

pub fn diff(globals: &Globals, args: DiffArgs) -> Outcome {
    let (store, run) = globals.run_store(&args.run_id)?;
    if let Some(stage) = &args.stage
        && !store.stages(&run)?.iter().any(|s| &s.stage == stage)
    {
        return Err(Failure::invalid(format!(
            "run '{}' has no stage '{stage}'",
            run.id
        )));
    }
    let changes = run_changes(&store, &run.id, args.stage.as_deref())?;
    let mut out = std::io::stdout().lock();
    if args.stat {
        for c in &changes {
            let _ = writeln!(out, "{:<9} {}", c.kind().as_str(), c.path);
        }
    } else {
        let _ = out.write_all(diff_text(&store, &changes)?.as_bytes());
    }
    if changes.is_empty() {
        eprintln!(
            "run {} changed no file{}",
            run.id,
            match &args.stage {
                Some(s) => format!(" in stage '{s}'"),
                None => String::new(),
            }
        );
    }
    Ok(Exit::Success)
}

pub fn apply(globals: &Globals, args: ApplyArgs) -> Outcome {
    let (store, run) = globals.run_store(&args.run_id)?;
    if run.status == RunStatus::Running {
        return Err(Failure::invalid(format!(
            "run {} is still running: apply its changes when it has finished",
            run.id
        )));
    }
    let target = match args.to {
        Some(dir) => dir,
        None => lifecycle::recorded_pipeline(&run)?
            .workspace
            .ok_or_else(|| {
                Failure::invalid(format!("run {} has no workspace: nothing to apply", run.id))
            })?,
    };
    if !target.is_dir() {
        return Err(Failure::invalid(format!(
            "{} is not a directory",
            target.display()
        )));
    }
    if run.status != RunStatus::Succeeded {
        eprintln!(
            "note: run {} {}: applying the changes of the stages that succeeded",
            run.id,
            run.status.as_str()
        );
    }
    report_apply(
        &run.id,
        &target,
        apply_run(&store, &run.id, &target, args.force),
    )
}

/// Prints how applying ended; `Exit::NotApplied` if it was refused.
fn report_apply(run: &str, target: &Path, outcome: Result<ApplyOutcome, ApplyError>) -> Outcome {
    match outcome.map_err(Failure::host)? {
        ApplyOutcome::NothingToApply => {
            eprintln!("run {run} changed no file: nothing to apply");
            Ok(Exit::Success)
        }
        ApplyOutcome::Applied(stats) => {
            eprintln!(
                "applied run {run}'s changes to {}: {} file(s) written, {} deleted{}",
                target.display(),
                stats.written,
                stats.deleted,
                if stats.unchanged > 0 {
                    format!(", {} already as the run left them", stats.unchanged)
                } else {
                    String::new()
                }
            );
            Ok(Exit::Success)
        }
        ApplyOutcome::Refused(conflicts) => {
            eprintln!(
                "error: run {run}'s changes were not applied to {}: {} file(s) changed there since the run began:",
                target.display(),
                conflicts.len()
            );
            for c in &conflicts {
                eprintln!("  {c}");
            }
            eprintln!(
                "nothing was written. See the run's changes with `host diff {run}`; write them anyway with `host apply {run} --force`"
            );
            Ok(Exit::NotApplied)
        }
    }
}

/// After a run: applies its changes to the workspace if it succeeded and
/// its pipeline says `apply = "on-success"`. `false`: applying was refused.
pub async fn apply_on_success(
    pipeline: &Pipeline,
    store: &Arc<Store>,
    summary: &RunSummary,
) -> Result<bool, Failure> {
    let Some(target) = pipeline.workspace.clone() else {
        return Ok(true);
    };
    let run = summary.run_id.clone();
    if !summary.succeeded() {
        return Ok(true);
    }
    if pipeline.apply == ApplyPolicy::Never {
        let store = store.clone();
        let r = run.clone();
        let changes = tokio::task::spawn_blocking(move || run_changes(&store, &r, None))
            .await
            .map_err(Failure::host)??;
        if !changes.is_empty() {
            eprintln!(
                "run {run} changed {} file(s), not applied (apply = \"never\"): see `host diff {run}`, apply with `host apply {run}`",
                changes.len()
            );
        }
        return Ok(true);
    }
    let store = store.clone();
    let (r, t) = (run.clone(), target.clone());
    let outcome = tokio::task::spawn_blocking(move || apply_run(&store, &r, &t, false))
        .await
        .map_err(Failure::host)?;
    let exit = report_apply(&run, &target, outcome)?;
    Ok(exit != Exit::NotApplied)
}
