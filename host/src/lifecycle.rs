//! A run's lifecycle as library code: which run a `host run` continues,
//! recording a new one, what a resumed run already has and where its loops
//! stood, and what a finished run's summary amounts to. The commands print;
//! this decides.

use crate::report;
use crate::scheduler::{RunOutcome, RunSummary, StageProgress, StageResult};
use host_capabilities::models::ExchangeMode;
use host_manifest::{self as manifest, Diagnostics, Pipeline};
use host_store::{Owner, RunOptions, RunRecord, RunStatus, StageStatus, Store, StoreError, now_ms};
use std::collections::HashMap;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A `--model`, `--set` or `--workspace` that cannot apply.
    #[error("{0}")]
    Override(String),
    #[error("run {0} recorded no model exchanges: run it with --record to replay it")]
    NothingToReplay(String),
    #[error("run {run} is being executed by process {pid} right now")]
    Busy { run: String, pid: u32 },
    #[error("the manifest recorded with run {run} no longer validates:\n{diagnostics}")]
    ManifestInvalid {
        run: String,
        diagnostics: Diagnostics,
    },
}

impl LifecycleError {
    /// Whether the user's input is at fault (else the host or its state).
    pub fn is_user_error(&self) -> bool {
        match self {
            LifecycleError::Store(e) => matches!(
                e,
                StoreError::UnknownRun(_)
                    | StoreError::UnknownStage { .. }
                    | StoreError::Busy { .. }
            ),
            _ => true,
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
/// gone, if its manifest text is unchanged and it was told to do the same
/// work (task, overrides, workspace): what `host run` continues.
pub fn unfinished_run(
    store: &Store,
    key: &str,
    text: &str,
    options: &RunOptions,
) -> Result<Option<RunRecord>, StoreError> {
    // The store reads a run whose process is gone as interrupted.
    Ok(store.runs()?.into_iter().rev().find(|r| {
        r.manifest_path == key
            && r.manifest_text == text
            && r.status == RunStatus::Interrupted
            && r.options.same_work(options)
    }))
}

/// The pipeline with `--task`, `--model`, `--set` and `--workspace`
/// applied, in that order; the first that cannot apply is the error.
pub fn with_overrides(
    mut pipeline: Pipeline,
    options: &RunOptions,
) -> Result<Pipeline, LifecycleError> {
    let fail = |e: &dyn std::fmt::Display| LifecycleError::Override(e.to_string());
    if let Some(task) = &options.task {
        manifest::apply_task_override(&mut pipeline, task).map_err(|e| fail(&e))?;
    }
    for spec in &options.model_overrides {
        manifest::apply_model_override(&mut pipeline, spec).map_err(|e| fail(&e))?;
    }
    for spec in &options.config_overrides {
        manifest::apply_config_override(&mut pipeline, spec).map_err(|e| fail(&e))?;
    }
    if let Some(dir) = &options.workspace {
        manifest::apply_workspace_override(&mut pipeline, dir).map_err(|e| fail(&e))?;
    }
    if let Some(when) = &options.apply {
        pipeline.apply = manifest::ApplyPolicy::parse(when).ok_or_else(|| {
            fail(&format!(
                "--apply '{when}': expected one of {}",
                manifest::ApplyPolicy::NAMES.join(", ")
            ))
        })?;
    }
    Ok(pipeline)
}

/// Whether model calls are recorded or replayed.
pub fn exchange_mode(options: &RunOptions) -> ExchangeMode {
    ExchangeMode {
        record: options.record,
        replay_from: options.replay_from.clone(),
    }
}

/// Whether no stage may reuse a cached result: `--fresh`, or recording and
/// replaying, which are about model calls (no stage may skip its calls by
/// reusing an earlier run's result).
pub fn must_run_fresh(options: &RunOptions) -> bool {
    options.fresh || options.record || options.replay_from.is_some()
}

/// A replay needs a run that recorded something.
pub fn check_replay_source(store: &Store, options: &RunOptions) -> Result<(), LifecycleError> {
    let Some(from) = &options.replay_from else {
        return Ok(());
    };
    store.run(from)?;
    match store.recording_count(from)? {
        0 => Err(LifecycleError::NothingToReplay(from.clone())),
        _ => Ok(()),
    }
}

/// A sortable, unique-enough run id: UTC time plus a short hash.
pub fn new_run_id() -> String {
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

/// Records a new run of `pipeline`, owned by this process, every stage
/// pending; returns its record.
pub fn create_run(
    store: &Store,
    pipeline: &Pipeline,
    key: String,
    text: String,
    options: &RunOptions,
) -> Result<RunRecord, StoreError> {
    let record = RunRecord {
        id: new_run_id(),
        pipeline: pipeline.name.clone(),
        manifest_path: key,
        manifest_text: text,
        status: RunStatus::Running,
        started_ms: now_ms(),
        finished_ms: None,
        owner: Owner::current(),
        stages: pipeline.stages.iter().map(|s| s.id.clone()).collect(),
        options: options.clone(),
    };
    store.create_run(&record)?;
    Ok(record)
}

/// What `host resume` may do with a run, before anything is loaded.
#[derive(Debug, PartialEq, Eq)]
pub enum Resumable {
    /// It finished successfully: nothing to do.
    AlreadySucceeded,
    Yes,
}

/// Whether `record` can be taken over by this process.
pub fn resumable(record: &RunRecord) -> Result<Resumable, LifecycleError> {
    if record.status == RunStatus::Succeeded {
        return Ok(Resumable::AlreadySucceeded);
    }
    if record.status == RunStatus::Running && record.owner.is_alive() {
        return Err(LifecycleError::Busy {
            run: record.id.clone(),
            pid: record.owner.pid,
        });
    }
    Ok(Resumable::Yes)
}

/// The plan a run started with, whatever its file says now, with the
/// overrides it was started with.
pub fn recorded_pipeline(record: &RunRecord) -> Result<Pipeline, LifecycleError> {
    let pipeline = manifest::parse(
        Path::new(&record.manifest_path),
        record.manifest_text.clone(),
    )
    .map_err(|diagnostics| LifecycleError::ManifestInvalid {
        run: record.id.clone(),
        diagnostics,
    })?;
    with_overrides(pipeline, &record.options)
}

/// A run taken over: what is done, and where unfinished loops stood.
pub struct Resumed {
    /// Stages that succeeded before, with their outputs.
    pub done: HashMap<String, StageResult>,
    /// Where each stage still to run stood: its loop pass and feedback, and
    /// the attempts already made in that pass.
    pub progress: HashMap<String, StageProgress>,
    /// How many stages will run.
    pub pending: usize,
}

/// Takes `record` over for this process (running stages become interrupted,
/// every stage that did not succeed is pending again) and reads back what it
/// already has.
pub fn take_over(store: &Store, record: &RunRecord) -> Result<Resumed, StoreError> {
    // Before the take-over resets them: which stages' last attempt never
    // ended (their owner is gone, so they read as interrupted).
    let unended: std::collections::HashSet<String> = store
        .stages(record)?
        .into_iter()
        .filter(|s| matches!(s.status, StageStatus::Running | StageStatus::Interrupted))
        .map(|s| s.stage)
        .collect();
    store.resume_run(&record.id, Owner::current())?;
    let stages = store.stages(record)?;
    let mut done = HashMap::new();
    for s in stages.iter().filter(|s| s.status == StageStatus::Succeeded) {
        let Some(output_record) = &s.output else {
            continue;
        };
        let output = store.load_held_output(output_record)?;
        let result = StageResult::restored(
            &s.stage,
            s.attempts,
            output,
            output_record.artifacts.clone(),
            output_record.content_hash.clone(),
            "earlier in this run".to_string(),
        );
        done.insert(s.stage.clone(), result);
    }
    let progress = stages
        .iter()
        .filter(|s| s.status != StageStatus::Succeeded)
        .map(|s| {
            let progress = StageProgress {
                iteration: s.iteration,
                feedback: s.feedback.clone(),
                attempts: s.attempts,
                interrupted: unended.contains(&s.stage),
            };
            (s.stage.clone(), progress)
        })
        .filter(|(_, p)| *p != StageProgress::default())
        .collect();
    // Read after the reset: every stage that will run is pending now.
    let pending = stages
        .iter()
        .filter(|s| s.status == StageStatus::Pending)
        .count();
    Ok(Resumed {
        done,
        progress,
        pending,
    })
}

/// What a finished run amounts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Succeeded,
    /// Handed to a person; `gates_failed`: with preflight gates failing.
    Escalated {
        gates_failed: bool,
    },
    /// A stage failed, or the run deadlocked, was cancelled or passed its deadline.
    Failed,
}

pub fn verdict(summary: &RunSummary) -> Verdict {
    if summary.succeeded() {
        return Verdict::Succeeded;
    }
    match summary.outcome {
        RunOutcome::Escalated => Verdict::Escalated {
            gates_failed: summary.stages.iter().any(|s| s.gates_failed),
        },
        _ => Verdict::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use host_store::Activity;
    use host_vocab::{StageFailure, StageOutput};

    const TEXT: &str = "[pipeline]\nname = \"p\"\ntask = \"t\"\n\n[[stage]]\nid = \"a\"\nplugin = \"a.wasm\"\n\n[[stage]]\nid = \"b\"\nplugin = \"a.wasm\"\nafter = [\"a\"]\nloop = { to = \"a\", max = 2, on = \"revise\" }\n";

    struct Fixture {
        store: Store,
        pipeline: Pipeline,
        key: String,
        _dir: tempfile::TempDir,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.wasm"), b"").unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, TEXT).unwrap();
        let pipeline = manifest::load(&path).unwrap();
        Fixture {
            store: Store::open(&dir.path().join("state")).unwrap(),
            pipeline,
            key: manifest_key(&path),
            _dir: dir,
        }
    }

    fn output(summary: &str) -> StageOutput {
        StageOutput {
            summary: summary.into(),
            artifacts: Vec::new(),
            metrics: Vec::new(),
            decision: None,
        }
    }

    /// A run of the fixture's pipeline, owned by this process.
    fn new_run(f: &Fixture) -> RunRecord {
        create_run(
            &f.store,
            &f.pipeline,
            f.key.clone(),
            TEXT.into(),
            &RunOptions::default(),
        )
        .unwrap()
    }

    /// A record as a killed process leaves it: running, owned by a pid
    /// that no longer exists.
    fn orphan(f: &Fixture) -> RunRecord {
        let mut record = new_run(f);
        record.owner = Owner {
            pid: u32::MAX,
            start_ticks: None,
        };
        record
    }

    #[test]
    fn run_ids_are_a_utc_stamp_and_a_salt() {
        let a = new_run_id();
        let b = new_run_id();
        assert_ne!(a, b);
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(parts.len(), 3, "{a}");
        assert_eq!(parts[0].len(), 8, "YYYYMMDD: {a}");
        assert!(parts[0].starts_with("20") && parts[1].chars().all(|c| c.is_ascii_digit()));
        assert_eq!(parts[2].len(), 6);
    }

    #[test]
    fn host_run_continues_only_an_unfinished_run_of_the_same_text() {
        let f = fixture();
        assert!(
            unfinished_run(&f.store, &f.key, TEXT, &RunOptions::default())
                .unwrap()
                .is_none()
        );
        let record = new_run(&f);
        // Owned by this live process: not taken over.
        assert!(
            unfinished_run(&f.store, &f.key, TEXT, &RunOptions::default())
                .unwrap()
                .is_none()
        );
        f.store
            .run_finished(&record.id, RunStatus::Interrupted)
            .unwrap();
        let found = unfinished_run(&f.store, &f.key, TEXT, &RunOptions::default())
            .unwrap()
            .unwrap();
        assert_eq!(found.id, record.id);
        assert!(
            unfinished_run(&f.store, &f.key, "changed", &RunOptions::default())
                .unwrap()
                .is_none()
        );
        assert!(
            unfinished_run(&f.store, "/elsewhere.toml", TEXT, &RunOptions::default())
                .unwrap()
                .is_none()
        );
        // Told another task (or another --set): a new run, not this one.
        let other_task = RunOptions {
            task: Some("something else".into()),
            ..RunOptions::default()
        };
        assert!(
            unfinished_run(&f.store, &f.key, TEXT, &other_task)
                .unwrap()
                .is_none()
        );
        let fresher = RunOptions {
            fresh: true,
            ..RunOptions::default()
        };
        assert!(
            unfinished_run(&f.store, &f.key, TEXT, &fresher)
                .unwrap()
                .is_some(),
            "--fresh changes how, not what"
        );
    }

    #[test]
    fn a_task_override_replaces_the_manifests_task_within_its_bound() {
        let f = fixture();
        let with = |task: &str| {
            with_overrides(
                f.pipeline.clone(),
                &RunOptions {
                    task: Some(task.into()),
                    ..RunOptions::default()
                },
            )
        };
        assert_eq!(
            with("Add a health endpoint").unwrap().task,
            "Add a health endpoint"
        );
        let empty = with("  ").unwrap_err().to_string();
        assert!(empty.contains("--task: the task is empty"), "{empty}");
        let big = "x".repeat(host_vocab::limits::MAX_TASK_BYTES as usize + 1);
        assert!(
            with(&big)
                .unwrap_err()
                .to_string()
                .contains("at most 4 MiB")
        );
    }

    #[test]
    fn a_live_run_cannot_be_taken_and_a_succeeded_one_needs_nothing() {
        let f = fixture();
        let record = new_run(&f);
        assert!(matches!(
            resumable(&record),
            Err(LifecycleError::Busy { .. })
        ));
        assert_eq!(resumable(&orphan(&f)).unwrap(), Resumable::Yes);
        let mut done = record.clone();
        done.status = RunStatus::Succeeded;
        assert_eq!(resumable(&done).unwrap(), Resumable::AlreadySucceeded);
    }

    #[test]
    fn taking_over_keeps_successes_and_where_a_loop_stood() {
        let f = fixture();
        let record = orphan(&f);
        let run = record.id.as_str();
        f.store.stage_started(run, "a", 1, None).unwrap();
        f.store
            .stage_succeeded(run, "a", 1, &output("first"), &[], &Activity::default())
            .unwrap();
        f.store.stage_started(run, "b", 1, None).unwrap();
        f.store
            .stage_succeeded(run, "b", 1, &output("revise it"), &[], &Activity::default())
            .unwrap();
        f.store
            .loop_back(
                run,
                "b",
                "a",
                &[("a".to_string(), 1), ("b".to_string(), 1)],
                "revise it",
            )
            .unwrap();
        f.store.stage_started(run, "a", 1, None).unwrap();
        let resumed = take_over(&f.store, &record).unwrap();
        assert!(
            resumed.done.is_empty(),
            "both stages are in the loop's second pass"
        );
        assert_eq!(resumed.pending, 2);
        let a = &resumed.progress["a"];
        assert_eq!((a.iteration, a.feedback.as_deref()), (1, Some("revise it")));
        assert_eq!(a.attempts, 1, "the second pass's first attempt was running");
        assert_eq!(resumed.progress["b"].iteration, 1);
        assert_eq!(
            resumed.progress["b"].attempts, 0,
            "a loop pass counts afresh"
        );
    }

    #[test]
    fn taking_over_restores_finished_outputs() {
        let f = fixture();
        let record = orphan(&f);
        let run = record.id.as_str();
        f.store.stage_started(run, "a", 1, None).unwrap();
        f.store
            .stage_succeeded(run, "a", 1, &output("kept"), &[], &Activity::default())
            .unwrap();
        f.store.stage_started(run, "b", 1, None).unwrap();
        let fatal = StageFailure::Plugin {
            retryable: false,
            message: "no".into(),
        };
        f.store
            .stage_failed(run, "b", 1, &fatal, false, &Activity::default())
            .unwrap();
        let resumed = take_over(&f.store, &record).unwrap();
        assert_eq!(resumed.done["a"].summary.as_deref(), Some("kept"));
        assert_eq!(resumed.pending, 1);
        assert_eq!(f.store.run(run).unwrap().status, RunStatus::Running);
    }

    #[test]
    fn overrides_apply_in_order_and_a_bad_one_is_named() {
        let f = fixture();
        let options = RunOptions {
            config_overrides: vec!["a.mode=fast".into()],
            ..RunOptions::default()
        };
        let p = with_overrides(f.pipeline.clone(), &options).unwrap();
        assert_eq!(p.stage("a").unwrap().config["mode"], "fast");
        let bad = RunOptions {
            config_overrides: vec!["nope.mode=fast".into()],
            ..RunOptions::default()
        };
        let err = with_overrides(f.pipeline.clone(), &bad).unwrap_err();
        assert!(err.is_user_error());
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn replaying_needs_a_run_that_recorded() {
        let f = fixture();
        let record = new_run(&f);
        let options = RunOptions {
            replay_from: Some(record.id.clone()),
            ..RunOptions::default()
        };
        assert!(must_run_fresh(&options));
        assert!(matches!(
            check_replay_source(&f.store, &options),
            Err(LifecycleError::NothingToReplay(_))
        ));
        let unknown = RunOptions {
            replay_from: Some("nope".into()),
            ..RunOptions::default()
        };
        let err = check_replay_source(&f.store, &unknown).unwrap_err();
        assert!(err.is_user_error(), "{err}");
    }
}
