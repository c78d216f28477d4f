//! `host run`, `host resume`, `host validate`, `host build`.

use super::{Exit, Globals, load_manifest, report_store_error};
use anyhow::Context;
use host::builder::{self, BuildPolicy};
use host::capabilities::models::ExchangeMode;
use host::manifest::{self, Pipeline};
use host::report::{self, OutputMode};
use host::scheduler::{RunContext, RunOutcome, RunSummary, StageResult};
use host::session::{Session, SessionError, SessionOptions};
use host::store::{Owner, RunOptions, RunRecord, RunStatus, StageStatus, Store, now_ms};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct RunArgs {
    pub pipeline: PathBuf,
    pub dry_run: bool,
    pub build: BuildPolicy,
    pub out: Option<PathBuf>,
    pub output: OutputMode,
    /// Ignore the result cache.
    pub fresh: bool,
    /// Start a new run even if an unfinished one of this pipeline exists.
    pub new: bool,
    /// `--model`, `--record`, `--replay`.
    pub options: RunOptions,
}

pub struct ResumeArgs {
    pub run_id: String,
    pub build: BuildPolicy,
    pub out: Option<PathBuf>,
    pub output: OutputMode,
    pub fresh: bool,
}

fn session_exit(e: &SessionError) -> Exit {
    match e {
        SessionError::Runtime(_) => Exit::HostError,
        SessionError::Build(_) | SessionError::Load(_) => Exit::InvalidInput,
    }
}

pub async fn validate(globals: &Globals, path: &Path, policy: BuildPolicy) -> Exit {
    let Some(pipeline) = load_manifest(path) else {
        return Exit::InvalidInput;
    };
    let options = SessionOptions {
        build: policy,
        cache_dir: globals.cache_dir.clone(),
    };
    let session = match Session::open(&pipeline, &options).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return session_exit(&e);
        }
    };
    let mut plugins: Vec<_> = session.plugins.values().collect();
    plugins.sort_by(|a, b| a.name.cmp(&b.name));
    for p in plugins {
        println!(
            "plugin '{}': {} {} (orchestrator:stage@{}, {} KiB, {:?} in {:.0} ms): {}",
            p.name,
            p.info.name,
            p.info.version,
            p.wit_version,
            p.size / 1024,
            p.cache,
            p.load_time.as_secs_f64() * 1000.0,
            p.info.description
        );
    }
    let tally = super::grants::report(&pipeline, &session.plugins);
    if tally.errors > 0 {
        eprintln!(
            "error: {}: {} problem{} with stage grants (above)",
            path.display(),
            tally.errors,
            if tally.errors == 1 { "" } else { "s" }
        );
        return Exit::InvalidInput;
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
    Exit::Success
}

pub fn build(path: &Path) -> Exit {
    let Some(p) = load_manifest(path) else {
        return Exit::InvalidInput;
    };
    match builder::build_plugins(&p, BuildPolicy::Always) {
        Ok(built) => {
            for (name, took) in built {
                println!("built {name} in {:.1}s", took.as_secs_f64());
            }
            Exit::Success
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::InvalidInput
        }
    }
}

/// The manifest's path as recorded with a run (absolute when possible), so
/// that a later `host run` from another directory recognises it.
pub fn manifest_key(path: &Path) -> String {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// The latest run of this manifest that did not finish and whose process is
/// gone, if its manifest text is unchanged.
fn unfinished_run(store: &Store, key: &str, text: &str) -> Result<Option<RunRecord>, Exit> {
    let runs = store.runs().map_err(|e| report_store_error(&e))?;
    Ok(runs.into_iter().rev().find(|r| {
        r.manifest_path == key
            && r.manifest_text == text
            && (r.status == RunStatus::Interrupted
                || (r.status == RunStatus::Running && !r.owner.is_alive()))
    }))
}

/// Applies `--model`, `--set` and `--workspace`, reporting the first that
/// cannot apply.
fn with_overrides(mut pipeline: Pipeline, options: &RunOptions) -> Result<Pipeline, Exit> {
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("error: {e}");
        Exit::InvalidInput
    };
    for spec in &options.model_overrides {
        manifest::apply_model_override(&mut pipeline, spec).map_err(|e| fail(&e))?;
    }
    for spec in &options.config_overrides {
        manifest::apply_config_override(&mut pipeline, spec).map_err(|e| fail(&e))?;
    }
    if let Some(dir) = &options.workspace {
        manifest::apply_workspace_override(&mut pipeline, dir).map_err(|e| fail(&e))?;
    }
    Ok(pipeline)
}

fn exchange_mode(options: &RunOptions) -> ExchangeMode {
    ExchangeMode {
        record: options.record,
        replay_from: options.replay_from.clone(),
    }
}

/// A replay needs a run that recorded something.
fn check_replay_source(store: &Store, options: &RunOptions) -> Result<(), Exit> {
    let Some(from) = &options.replay_from else {
        return Ok(());
    };
    store.run(from).map_err(|e| report_store_error(&e))?;
    match store.recording_count(from) {
        Ok(0) => {
            eprintln!(
                "error: run {from} recorded no model exchanges: run it with --record to replay it"
            );
            Err(Exit::InvalidInput)
        }
        Ok(_) => Ok(()),
        Err(e) => Err(report_store_error(&e)),
    }
}

pub async fn run(globals: &Globals, args: RunArgs) -> Exit {
    let Some(pipeline) = load_manifest(&args.pipeline) else {
        return Exit::InvalidInput;
    };
    let mut options = args.options.clone();
    if let Some(dir) = &options.workspace {
        // Recorded absolute: a resumed run works on the same directory.
        options.workspace = Some(std::path::absolute(dir).unwrap_or_else(|_| dir.clone()));
    }
    let pipeline = match with_overrides(pipeline, &options) {
        Ok(p) => p,
        Err(exit) => return exit,
    };
    if args.dry_run {
        if args.output == OutputMode::Json {
            println!(
                "{}",
                serde_json::to_string_pretty(&pipeline).unwrap_or_default()
            );
        } else {
            report::print_plan(&pipeline);
        }
        return Exit::Success;
    }
    let store = match globals.open_store(Some(&pipeline)) {
        Ok(s) => Arc::new(s),
        Err(exit) => return exit,
    };
    if let Err(exit) = check_replay_source(&store, &args.options) {
        return exit;
    }
    let key = manifest_key(&args.pipeline);
    let text = std::fs::read_to_string(&args.pipeline).unwrap_or_default();
    if !args.new {
        match unfinished_run(&store, &key, &text) {
            Err(exit) => return exit,
            Ok(Some(previous)) => {
                eprintln!(
                    "resuming unfinished run {} of this pipeline (use --new to start a new run)",
                    previous.id
                );
                let resume = ResumeArgs {
                    run_id: previous.id,
                    build: args.build,
                    out: args.out,
                    output: args.output,
                    fresh: args.fresh,
                };
                return resume_with(globals, store, resume).await;
            }
            Ok(None) => {}
        }
    }
    let session = match open_session(globals, &pipeline, args.build).await {
        Ok(s) => s,
        Err(exit) => return exit,
    };
    start_new_run(
        &pipeline,
        NewRun {
            key,
            text,
            options: &options,
            fresh: args.fresh,
            out: args.out.as_deref(),
            output: args.output,
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
) -> Exit {
    let run_id = new_run_id();
    let record = RunRecord {
        id: run_id.clone(),
        pipeline: pipeline.name.clone(),
        manifest_path: new.key,
        manifest_text: new.text,
        status: RunStatus::Running,
        started_ms: now_ms(),
        finished_ms: None,
        owner: Owner::current(),
        stages: pipeline.stages.iter().map(|s| s.id.clone()).collect(),
        options: new.options.clone(),
    };
    if let Err(e) = store.create_run(&record) {
        return report_store_error(&e);
    }
    // Recording and replaying are about model calls: no stage may skip its
    // calls by reusing an earlier run's result.
    let replaying = new.options.record || new.options.replay_from.is_some();
    let ctx = RunContext {
        run_id,
        fresh: new.fresh || replaying,
        done: HashMap::new(),
        progress: HashMap::new(),
        cancel: None,
    };
    let mode = exchange_mode(new.options);
    execute(pipeline, session, store, ctx, mode, new.out, new.output).await
}

pub async fn resume(globals: &Globals, args: ResumeArgs) -> Exit {
    let store = match globals.open_store(None) {
        Ok(s) => Arc::new(s),
        Err(exit) => return exit,
    };
    resume_with(globals, store, args).await
}

async fn resume_with(globals: &Globals, store: Arc<Store>, args: ResumeArgs) -> Exit {
    let record = match store.run(&args.run_id) {
        Ok(r) => r,
        Err(e) => return report_store_error(&e),
    };
    if record.status == RunStatus::Succeeded {
        eprintln!("run {} already succeeded: nothing to resume", record.id);
        return Exit::Success;
    }
    if record.status == RunStatus::Running && record.owner.is_alive() {
        eprintln!(
            "error: run {} is being executed by process {} right now",
            record.id, record.owner.pid
        );
        return Exit::InvalidInput;
    }
    // The plan the run started with, whatever the file says now.
    let pipeline = match manifest::parse(
        Path::new(&record.manifest_path),
        record.manifest_text.clone(),
    ) {
        Ok(p) => p,
        Err(d) => {
            eprintln!(
                "the manifest recorded with run {} no longer validates:\n{d}",
                record.id
            );
            return Exit::InvalidInput;
        }
    };
    let pipeline = match with_overrides(pipeline, &record.options) {
        Ok(p) => p,
        Err(exit) => return exit,
    };
    let session = match open_session(globals, &pipeline, args.build).await {
        Ok(s) => s,
        Err(exit) => return exit,
    };
    if let Err(e) = store.resume_run(&record.id, Owner::current()) {
        return report_store_error(&e);
    }
    let stages = match store.stages(&record) {
        Ok(s) => s,
        Err(e) => return report_store_error(&e),
    };
    let mut done = HashMap::new();
    for s in stages.iter().filter(|s| s.status == StageStatus::Succeeded) {
        let Some(output_record) = &s.output else {
            continue;
        };
        match store.load_output(output_record) {
            Ok(output) => {
                let note = "earlier in this run".to_string();
                done.insert(
                    s.stage.clone(),
                    StageResult::restored(
                        &s.stage,
                        s.attempts,
                        output,
                        output_record.content_hash.clone(),
                        note,
                    ),
                );
            }
            Err(e) => return report_store_error(&e),
        }
    }
    eprintln!(
        "resuming run {}: {} stage(s) already done, {} to run",
        record.id,
        done.len(),
        // Read after the reset: every stage that will run is pending now.
        stages
            .iter()
            .filter(|s| s.status == StageStatus::Pending)
            .count()
    );
    let replaying = record.options.record || record.options.replay_from.is_some();
    // Loop state of the stages still to run: where each loop stood.
    let progress = stages
        .iter()
        .filter(|s| s.status != StageStatus::Succeeded && (s.iteration > 0 || s.feedback.is_some()))
        .map(|s| (s.stage.clone(), (s.iteration, s.feedback.clone())))
        .collect();
    let ctx = RunContext {
        run_id: record.id.clone(),
        fresh: args.fresh || replaying,
        done,
        progress,
        cancel: None,
    };
    execute(
        &pipeline,
        &session,
        store,
        ctx,
        exchange_mode(&record.options),
        args.out.as_deref(),
        args.output,
    )
    .await
}

async fn open_session(
    globals: &Globals,
    pipeline: &Pipeline,
    build: BuildPolicy,
) -> Result<Session, Exit> {
    let options = SessionOptions {
        build,
        cache_dir: globals.cache_dir.clone(),
    };
    Session::open(pipeline, &options).await.map_err(|e| {
        eprintln!("{e}");
        session_exit(&e)
    })
}

async fn execute(
    pipeline: &Pipeline,
    session: &Session,
    store: Arc<Store>,
    mut ctx: RunContext,
    mode: ExchangeMode,
    out: Option<&Path>,
    output: OutputMode,
) -> Exit {
    let http = match http_client() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Exit::HostError;
        }
    };
    let scheduler = session.scheduler(pipeline, http, store, mode);
    ctx.cancel = Some(cancel_on_signals());
    let observer = output.observer();
    let summary = scheduler.run(pipeline, ctx, observer).await;
    let summary = match summary {
        Ok(s) => s,
        Err(e) => return report_store_error(&e),
    };
    if let Some(out) = out
        && let Err(e) = write_outputs(out, &summary)
    {
        eprintln!("error: cannot write outputs to {}: {e:#}", out.display());
        return Exit::HostError;
    }
    if output == OutputMode::Json {
        println!("{}", serde_json::to_string(&summary).unwrap_or_default());
    } else {
        report::print_summary(&summary);
    }
    exit_for(&summary)
}

/// The documented exit code of a finished run.
fn exit_for(summary: &RunSummary) -> Exit {
    if summary.succeeded() {
        return Exit::Success;
    }
    match summary.outcome {
        RunOutcome::Escalated if summary.stages.iter().any(|s| s.gates_failed) => Exit::GatesFailed,
        RunOutcome::Escalated => Exit::Escalated,
        _ => Exit::StageFailed,
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

/// A sortable, unique-enough run id: UTC time plus a short hash.
fn new_run_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let stamp: String = report::utc(now.as_millis() as u64)
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let salt = blake3::hash(
        &[
            now.as_nanos().to_le_bytes().as_slice(),
            &std::process::id().to_le_bytes(),
        ]
        .concat(),
    );
    format!("{}-{}-{}", &stamp[..8], &stamp[8..], &salt.to_hex()[..6])
}

/// Writes artifacts as DIR/STAGE/NAME, each atomically. Names that are not
/// plain file names are refused.
fn write_outputs(dir: &Path, summary: &RunSummary) -> anyhow::Result<()> {
    for stage in &summary.stages {
        let Some(output) = &stage.output else {
            continue;
        };
        let stage_dir = dir.join(&stage.id);
        std::fs::create_dir_all(&stage_dir)
            .with_context(|| format!("creating {}", stage_dir.display()))?;
        for artifact in &output.artifacts {
            let name = &artifact.name;
            if !host::store::is_plain_artifact_name(name) {
                eprintln!(
                    "warning: stage '{}': artifact name {name:?} is not a plain file name; not written",
                    stage.id
                );
                continue;
            }
            let target = stage_dir.join(name);
            let tmp = stage_dir.join(format!(".{name}.tmp"));
            std::fs::write(&tmp, &artifact.bytes)
                .with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, &target)
                .with_context(|| format!("renaming to {}", target.display()))?;
        }
    }
    Ok(())
}
