//! `host run`, `host resume`, `host validate`, `host build`: the command
//! line's face of the run lifecycle (`host::lifecycle`), which decides.

use super::{BuildFlags, Exit, Failure, Globals, Outcome, OutputFlags, load_manifest};
use anyhow::Context;
use host::builder::{self, BuildPolicy};
use host::capabilities::models::ExchangeMode;
use host::lifecycle::{self, Resumable, Verdict};
use host::manifest::Pipeline;
use host::report::{self, OutputMode};
use host::scheduler::{RunContext, RunSummary};
use host::session::{Session, SessionOptions};
use host::store::{RunOptions, Store};
use host::vocab::RunOutcome;
use host::workspace::RunFiles;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(clap::Args)]
pub struct RunArgs {
    /// The pipeline file.
    pipeline: PathBuf,
    /// Print the resolved plan (order, conditions, grants) and call nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    execution: Execution,
    /// Start a new run even if an unfinished run of this pipeline exists.
    #[arg(long)]
    new: bool,
    /// Point a model alias elsewhere: ALIAS=PROVIDER:MODEL[@BASE_URL] (repeatable).
    #[arg(long = "model", value_name = "ALIAS=PROVIDER:MODEL[@URL]")]
    models: Vec<String>,
    /// Store every model request and response with the run, for --replay.
    #[arg(long, conflicts_with = "replay")]
    record: bool,
    /// Answer model calls from RUN_ID's recordings: offline, deterministic, free.
    #[arg(long, value_name = "RUN_ID")]
    replay: Option<String>,
    /// Set one key of a stage's config: STAGE.KEY=VALUE (repeatable), e.g. triage.risk=HIGH.
    #[arg(long = "set", value_name = "STAGE.KEY=VALUE")]
    sets: Vec<String>,
    /// Work on DIR instead of the manifest's workspace.
    #[arg(long, value_name = "DIR")]
    workspace: Option<PathBuf>,
    /// This run's task instead of the manifest's (recorded; kept by resume).
    #[arg(long, value_name = "TEXT", conflicts_with = "task_file")]
    task: Option<String>,
    /// This run's task, read from FILE (its text is recorded, not the path).
    #[arg(long, value_name = "FILE")]
    task_file: Option<PathBuf>,
    /// When the run's changes are written to the workspace (default: the
    /// manifest's `apply`, else on-success).
    #[arg(long, value_name = "WHEN", value_parser = apply_values())]
    apply: Option<String>,
}

impl RunArgs {
    pub fn is_quiet(&self) -> bool {
        self.execution.output.quiet
    }

    /// What a resumed run must keep of this command line.
    fn options(&self) -> Result<RunOptions, Failure> {
        let task = super::task_option(self.task.as_ref(), self.task_file.as_ref())?;
        Ok(RunOptions {
            model_overrides: self.models.clone(),
            record: self.record,
            replay_from: self.replay.clone(),
            config_overrides: self.sets.clone(),
            // Recorded absolute: a resumed run works on the same directory.
            workspace: self
                .workspace
                .as_ref()
                .map(|dir| std::path::absolute(dir).unwrap_or_else(|_| dir.clone())),
            fresh: self.execution.fresh,
            apply: self.apply.clone(),
            task,
        })
    }
}

fn apply_values() -> clap::builder::PossibleValuesParser {
    use clap::builder::PossibleValue;
    clap::builder::PossibleValuesParser::new([
        PossibleValue::new("on-success").help("When the run succeeds"),
        PossibleValue::new("never")
            .help("Keep them in the run: see `host diff RUN_ID`, write with `host apply RUN_ID`"),
    ])
}

#[derive(clap::Args)]
pub struct ResumeArgs {
    /// The run to resume (see `host runs`).
    run_id: String,
    #[command(flatten)]
    execution: Execution,
}

impl ResumeArgs {
    pub fn is_quiet(&self) -> bool {
        self.execution.output.quiet
    }
}

/// How a run (new or resumed) is built, shown and written: the flags `run`
/// and `resume` share.
#[derive(clap::Args)]
struct Execution {
    #[command(flatten)]
    build: BuildFlags,
    /// Write each stage's artifacts to DIR/STAGE/NAME.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    #[command(flatten)]
    output: OutputFlags,
    /// Run every stage, even those whose result is cached from an identical earlier stage.
    #[arg(long)]
    fresh: bool,
}

#[derive(clap::Args)]
pub struct ValidateArgs {
    /// The pipeline file.
    pipeline: PathBuf,
    /// Never run build commands: a missing component is an error.
    #[arg(long)]
    no_build: bool,
}

#[derive(clap::Args)]
pub struct BuildArgs {
    /// The pipeline file.
    pipeline: PathBuf,
}

pub async fn validate(globals: &Globals, args: ValidateArgs) -> Outcome {
    let path = args.pipeline.as_path();
    let policy = if args.no_build {
        BuildPolicy::Never
    } else {
        BuildPolicy::IfMissing
    };
    let pipeline = load_manifest(path)?;
    let session = open_session(globals, &pipeline, policy).await?;
    let mut plugins: Vec<_> = session.plugins.values().collect();
    plugins.sort_by(|a, b| a.name.cmp(&b.name));
    for p in plugins {
        println!(
            "plugin '{}': {} {} (orchestrator:stage@{}, {} KiB, {} in {:.0} ms): {}",
            p.name,
            p.info.name,
            p.info.version,
            p.wit_version,
            p.size / 1024,
            match p.cache {
                host::runtime::CacheOutcome::Hit => "loaded from the compile cache",
                host::runtime::CacheOutcome::Compiled => "compiled",
            },
            p.load_time.as_secs_f64() * 1000.0,
            p.info.description
        );
    }
    let tally = super::grants::report(&pipeline, &session.plugins);
    if tally.errors > 0 {
        return Err(Failure::invalid(format!(
            "{}: {} problem{} with stage grants (above)",
            path.display(),
            tally.errors,
            if tally.errors == 1 { "" } else { "s" }
        )));
    }
    println!(
        "{}: valid ({} stages{})",
        path.display(),
        pipeline.stages.len(),
        match tally.warnings {
            0 => String::new(),
            1 => ", 1 warning".to_string(),
            n => format!(", {n} warnings"),
        }
    );
    Ok(Exit::Success)
}

pub fn build(args: BuildArgs) -> Outcome {
    let p = load_manifest(&args.pipeline)?;
    let built = builder::build_plugins(&p, BuildPolicy::Always)
        .map_err(|e| host::session::located_build_error(&p, e))?;
    for (name, took) in built {
        println!("built {name} in {:.1}s", took.as_secs_f64());
    }
    Ok(Exit::Success)
}

pub async fn run(globals: &Globals, args: RunArgs) -> Outcome {
    let options = args.options()?;
    let output = args.execution.output.mode();
    let pipeline = lifecycle::with_overrides(load_manifest(&args.pipeline)?, &options)?;
    if args.dry_run {
        if output == OutputMode::Json {
            println!(
                "{}",
                serde_json::to_string_pretty(&pipeline).unwrap_or_default()
            );
        } else {
            report::print_plan(&pipeline);
        }
        return Ok(Exit::Success);
    }
    // Nothing is written before the run can start: the store is read if it
    // is there, and created only once every plugin has loaded.
    let existing = globals.store_if_any(Some(&pipeline))?.map(Arc::new);
    let key = lifecycle::manifest_key(&args.pipeline);
    let text = std::fs::read_to_string(&args.pipeline).unwrap_or_default();
    match &existing {
        Some(store) => lifecycle::check_replay_source(store, &options)?,
        None if options.replay_from.is_some() => {
            return Err(Failure::invalid(globals.no_store_here(Some(&pipeline))));
        }
        None => {}
    }
    if !args.new
        && let Some(store) = &existing
        && let Some(previous) = lifecycle::unfinished_run(store, &key, &text, &options)?
    {
        eprintln!(
            "resuming unfinished run {} of this pipeline (use --new to start a new run)",
            previous.id
        );
        return resume_with(globals, store.clone(), &previous.id, args.execution).await;
    }
    let session = open_session(globals, &pipeline, args.execution.build.policy()).await?;
    let store = match existing {
        Some(store) => store,
        None => Arc::new(globals.open_store(Some(&pipeline))?),
    };
    start_new_run(
        &pipeline,
        NewRun {
            key,
            text,
            options: &options,
            fresh: args.execution.fresh,
            out: args.execution.out.as_deref(),
            output,
        },
        &session,
        store,
    )
    .await
}

/// What a new run is started with, besides its pipeline and session.
pub struct NewRun<'a> {
    /// The manifest's path as runs record it, and its text.
    pub key: String,
    pub text: String,
    pub options: &'a RunOptions,
    pub fresh: bool,
    pub out: Option<&'a Path>,
    pub output: OutputMode,
}

/// Records a new run and executes it.
pub async fn start_new_run(
    pipeline: &Pipeline,
    new: NewRun<'_>,
    session: &Session,
    store: Arc<Store>,
) -> Outcome {
    let record = lifecycle::create_run(&store, pipeline, new.key, new.text, new.options)?;
    let ctx = RunContext {
        run_id: record.id,
        fresh: new.fresh || lifecycle::must_run_fresh(new.options),
        done: HashMap::new(),
        progress: HashMap::new(),
        cancel: None,
        files: RunFiles::None,
    };
    let mode = lifecycle::exchange_mode(new.options);
    execute(pipeline, session, store, ctx, mode, new.out, new.output).await
}

pub async fn resume(globals: &Globals, args: ResumeArgs) -> Outcome {
    let (store, _) = globals.run_store(&args.run_id)?;
    resume_with(globals, Arc::new(store), &args.run_id, args.execution).await
}

async fn resume_with(
    globals: &Globals,
    store: Arc<Store>,
    run_id: &str,
    choices: Execution,
) -> Outcome {
    let record = store.run(run_id)?;
    if lifecycle::resumable(&record)? == Resumable::AlreadySucceeded {
        eprintln!("run {} already succeeded: nothing to resume", record.id);
        return Ok(Exit::Success);
    }
    let pipeline = lifecycle::recorded_pipeline(&record)?;
    let session = open_session(globals, &pipeline, choices.build.policy()).await?;
    let resumed = match lifecycle::take_over(&store, &record) {
        Err(e @ host::store::StoreError::AlreadySucceeded(_)) => {
            host::style::eprint(&e);
            return Ok(Exit::Success);
        }
        other => other?,
    };
    eprintln!(
        "resuming run {}: {} stage(s) already done, {} to run",
        record.id,
        resumed.done.len(),
        resumed.pending
    );
    let ctx = RunContext {
        run_id: record.id.clone(),
        fresh: choices.fresh || lifecycle::must_run_fresh(&record.options),
        done: resumed.done,
        progress: resumed.progress,
        cancel: None,
        files: RunFiles::None,
    };
    execute(
        &pipeline,
        &session,
        store,
        ctx,
        lifecycle::exchange_mode(&record.options),
        choices.out.as_deref(),
        choices.output.mode(),
    )
    .await
}

pub(super) async fn open_session(
    globals: &Globals,
    pipeline: &Pipeline,
    build: BuildPolicy,
) -> Result<Session, Failure> {
    let options = SessionOptions {
        build,
        cache_dir: globals.cache_dir.clone(),
    };
    Ok(Session::open(pipeline, &options).await?)
}

pub(super) async fn execute(
    pipeline: &Pipeline,
    session: &Session,
    store: Arc<Store>,
    mut ctx: RunContext,
    mode: ExchangeMode,
    out: Option<&Path>,
    output: OutputMode,
) -> Outcome {
    let http = http_client().map_err(|e| Failure::host(format!("{e:#}")))?;
    let (p, s, run) = (pipeline.clone(), store.clone(), ctx.run_id.clone());
    ctx.files = tokio::task::spawn_blocking(move || RunFiles::open(&p, &s, &run))
        .await
        .map_err(|e| Failure::host(format!("copying the workspace failed: {e}")))?
        .map_err(Failure::host)?;
    let scheduler = session.scheduler(pipeline, http, store.clone(), mode);
    ctx.cancel = Some(cancel_on_signals());
    let observer = output.observer();
    let summary = scheduler.run(pipeline, ctx, observer).await?;
    if let Some(out) = out {
        write_outputs(out, &summary, &store).map_err(|e| {
            Failure::host(format!("cannot write outputs to {}: {e:#}", out.display()))
        })?;
    }
    if output == OutputMode::Json {
        println!("{}", serde_json::to_string(&summary).unwrap_or_default());
    } else {
        report::print_summary(&summary);
    }
    let applied = super::changes::apply_on_success(pipeline, &store, &summary).await?;
    if summary.outcome != RunOutcome::Cancelled {
        keep_retention(pipeline, &store);
    }
    Ok(if applied {
        exit_for(&summary)
    } else {
        Exit::NotApplied
    })
}

/// `[pipeline] retention` after a run ended. Its failure is a warning: the
/// run itself is recorded and its exit code is what it earned.
fn keep_retention(pipeline: &Pipeline, store: &Store) {
    match host::retention::apply(store, pipeline) {
        Ok(None) => {}
        Ok(Some(removed)) => {
            let c = &removed.collection;
            let freed = c.blob_bytes + removed.log_bytes + removed.workspace_bytes;
            eprintln!(
                "retention: removed {} older run(s) of '{}' ({:.1} MiB): {}",
                c.runs.len(),
                host::vocab::printable(&pipeline.name),
                freed as f64 / f64::from(1 << 20),
                host::vocab::first_few(c.runs.iter().cloned(), ", ")
            );
        }
        Err(e) => host::style::eprint(format!("warning: [pipeline] retention: {e}")),
    }
}

/// The documented exit code of a finished run.
fn exit_for(summary: &RunSummary) -> Exit {
    match lifecycle::verdict(summary) {
        Verdict::Succeeded => Exit::Success,
        Verdict::Escalated { gates_failed: true } => Exit::GatesFailed,
        Verdict::Escalated {
            gates_failed: false,
        } => Exit::Escalated,
        Verdict::Failed => Exit::StageFailed,
    }
}

/// Ctrl-C or SIGTERM (`host cancel`) once: stop the running stages, record
/// them as interrupted, leave the run resumable. Ctrl-C twice: exit now.
fn cancel_on_signals() -> tokio::sync::watch::Receiver<Option<String>> {
    let (tx, rx) = tokio::sync::watch::channel(None);
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let terminated = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        let reason = tokio::select! {
            _ = tokio::signal::ctrl_c() => "interrupted (Ctrl-C)",
            () = terminated => "cancelled (host cancel or SIGTERM)",
        };
        eprintln!("{reason}: stopping running stages; Ctrl-C again to exit at once");
        let _ = tx.send(Some(reason.to_string()));
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("exiting now; `host resume` picks the run up");
            std::process::exit(130);
        }
    });
    rx
}

fn http_client() -> anyhow::Result<reqwest::Client> {
    // One process-wide TLS provider (ring: no C toolchain beyond cc needed).
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(concat!("orchestrator-host/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot build the HTTP client")
}

/// Writes artifacts as DIR/STAGE/NAME, each atomically. The host refuses an
/// output whose names could not be files; a name that still cannot (a
/// record of an older host's) is skipped with a warning, not an abort.
/// An artifact the run did not keep in memory is read from the store.
fn write_outputs(dir: &Path, summary: &RunSummary, store: &Store) -> anyhow::Result<()> {
    for stage in &summary.stages {
        let Some(output) = &stage.output else {
            continue;
        };
        let stage_dir = dir.join(&stage.id);
        std::fs::create_dir_all(&stage_dir)
            .with_context(|| format!("creating {}", stage_dir.display()))?;
        for (i, artifact) in stage.artifacts.iter().enumerate() {
            let name = &artifact.name;
            if let Some(problem) = host::vocab::output_rules::file_name_problem(name) {
                eprintln!(
                    "warning: stage '{}': {problem}; not written",
                    host::vocab::printable(&stage.id)
                );
                continue;
            }
            let target = stage_dir.join(name);
            // Short, whatever the name's length (a name may be 255 bytes).
            let tmp = stage_dir.join(format!(".host-out-{i}.tmp"));
            let held = output.artifacts.iter().find(|a| a.name == *name);
            let bytes = match held {
                Some(a) => std::borrow::Cow::Borrowed(&a.bytes),
                None => std::borrow::Cow::Owned(
                    store
                        .blob(&artifact.hash)?
                        .with_context(|| format!("artifact '{name}' is not in the store"))?,
                ),
            };
            std::fs::write(&tmp, &*bytes).with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, &target)
                .with_context(|| format!("renaming to {}", target.display()))?;
        }
    }
    Ok(())
}
