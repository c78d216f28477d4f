//! One stage on its own task: the result cache, then attempts with retries,
//! each committed to the store before the run moves on.

use super::inputs::attach_changes;
use super::{spawn, stored};
use crate::workspace::{RunFiles, failure_of};
use host_capabilities::{AttemptSpec, Capabilities, LoadedPlugin, Runtime};
use host_manifest::{StageSpec, WorkspaceAccess};
use host_runtime::AttemptScope;
use host_runtime::PrintedTo;
use host_runtime::live::{AttemptId, AttemptLive};
use host_store::{Store, StoreError};
use host_vocab::StageInput;
use host_vocab::events::{RunEvent, RunObserver};
use host_vocab::stage_io as wit;
use host_vocab::{Activity, AttemptKind, StageFailure};
use host_vocab::{StageResult, StageStatus};
use host_workspace::{ChangeBounds, CommitError, Place};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// Delay before retry `n` of a stage: 1 s, 2 s, 4 s... capped at 30 s, plus
/// up to 25% jitter so stages that failed together do not retry in step.
fn stage_backoff(retry: u32) -> Duration {
    let base =
        Duration::from_secs(1u64 << retry.saturating_sub(1).min(5)).min(Duration::from_secs(30));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let fraction = f64::from(nanos % 1000) / 4000.0;
    base + base.mul_f64(fraction)
}

/// Everything one stage needs to run on its own task.
pub struct StageJob {
    pub runtime: Arc<Runtime>,
    pub capabilities: Arc<Capabilities>,
    pub store: Arc<Store>,
    pub plugin: Arc<LoadedPlugin>,
    pub stage: StageSpec,
    pub run_id: String,
    pub task: String,
    pub inputs: Vec<wit::Upstream>,
    pub cache_key: Option<String>,
    pub fresh: bool,
    /// The run's attempt slots: one is held from an attempt's start record
    /// to its end, not while its outcome is committed or a retry waits.
    pub slots: Arc<tokio::sync::Semaphore>,
    /// The run's `max_spawned`: one output may not ask for more jobs.
    pub max_spawned: usize,
    /// Which pass of a loop this is, and what the stage that looped back
    /// said (the seed's "feedback" for a revision).
    pub iteration: u32,
    pub loop_feedback: Option<String>,
    /// Attempts of this pass made by an earlier process: numbering goes on
    /// from there (the retry budget is this process's own).
    pub attempts_before: u32,
    /// The last of those never ended (its host stopped).
    pub interrupted: bool,
    /// The files the run works on: where each attempt sees them.
    pub files: RunFiles,
}

impl StageJob {
    /// The stage's output from the result cache, if allowed and present.
    async fn try_reuse(&self) -> Result<Option<StageResult>, StoreError> {
        let (Some(key), false) = (self.cache_key.clone(), self.fresh) else {
            return Ok(None);
        };
        let k = key.clone();
        let Some(record) = stored(&self.store, move |s| s.cached_output(&k)).await? else {
            return Ok(None);
        };
        let r = record.clone();
        let output = stored(&self.store, move |s| s.load_held_output(&r)).await?;
        let (run, stage, r) = (self.run_id.clone(), self.stage.id.clone(), record.clone());
        stored(&self.store, move |s| s.stage_reused(&run, &stage, &key, &r)).await?;
        let note = format!("cache of run {}", record.produced_by.0);
        Ok(Some(StageResult::restored(
            &self.stage.id,
            0,
            output,
            record.artifacts.clone(),
            record.content_hash.clone(),
            note,
        )))
    }

    /// Where this attempt sees the workspace (a failure of the attempt if
    /// its copy cannot be made).
    async fn place(&self, attempt: u32) -> Result<Option<Arc<Place>>, StageFailure> {
        let files = self.files.clone();
        let stage = self.stage.clone();
        let key = format!("{}.{}.{attempt}", self.stage.id, self.iteration);
        match tokio::task::spawn_blocking(move || files.place(&stage, &key)).await {
            Ok(Ok(place)) => Ok(place.map(Arc::new)),
            Ok(Err(e)) => Err(failure_of(e)),
            Err(e) => Err(StageFailure::Workspace(format!(
                "copying failed inside the host: {e}"
            ))),
        }
    }

    async fn discard(&self, place: Option<Arc<Place>>) {
        if let (Some(ws), Some(place)) = (self.files.copied().cloned(), place) {
            let _ = tokio::task::spawn_blocking(move || ws.discard(&place)).await;
        }
    }

    /// Commits a successful attempt: its changes to the workspace (found in
    /// its private copy, checked against what other stages committed since)
    /// in the same transaction as its output. `Ok(Err(_))`: the attempt
    /// fails after all (a conflict, an unreadable file), nothing committed.
    async fn commit_success(
        &self,
        attempt: u32,
        output: &mut wit::StageOutput,
        consumed: &[String],
        activity: &Activity,
        place: Option<&Arc<Place>>,
    ) -> Result<Result<host_store::OutputRecord, StageFailure>, StoreError> {
        let ws = match (self.files.copied(), place) {
            (Some(ws), Some(place))
                if matches!(**place, Place::Private { .. })
                    && self.stage.workspace == WorkspaceAccess::ReadWrite =>
            {
                Some((ws.clone(), place.clone()))
            }
            _ => None,
        };
        let changes = match &ws {
            Some((ws, place)) => {
                let (ws, place) = (ws.clone(), place.clone());
                let bounds = ChangeBounds {
                    files: self.stage.max_changed_files,
                    bytes: self.stage.max_changed_bytes,
                };
                match tokio::task::spawn_blocking(move || ws.changes(&place, bounds)).await {
                    Ok(Ok(changes)) => changes,
                    Ok(Err(e)) => return Ok(Err(failure_of(e))),
                    Err(e) => return Ok(Err(StageFailure::Workspace(e.to_string()))),
                }
            }
            None => Vec::new(),
        };
        attach_changes(output, &changes);
        // The output moves to the store's thread and back, not copied: it
        // may hold 64 MiB of artifacts.
        let (run, stage, out, used) = (
            self.run_id.clone(),
            self.stage.id.clone(),
            std::mem::take(output),
            consumed.to_vec(),
        );
        let mut activity = activity.clone();
        activity.file_changes = changes.clone();
        let committed = stored(&self.store, move |s| {
            let mut record = |blobs: host_workspace::Blobs| {
                activity.workspace_blobs = blobs.into_iter().collect();
                s.stage_succeeded(&run, &stage, attempt, &out, &used, &activity)
            };
            let committed = match ws {
                None => record(Default::default()).map(Ok),
                // A conflict or an unreadable file fails the attempt.
                Some((ws, place)) => match ws.commit(&place, &changes, record) {
                    Ok(recorded) => recorded.map(Ok),
                    Err(CommitError::Workspace(e)) => Ok(Err(failure_of(e))),
                    Err(e) => Ok(Err(StageFailure::Workspace(e.to_string()))),
                },
            };
            committed.map(|c| (c, out))
        })
        .await?;
        *output = committed.1;
        Ok(committed.0)
    }

    pub async fn run(self, events: Arc<dyn RunObserver>) -> Result<StageResult, StoreError> {
        if let Some(reused) = self.try_reuse().await? {
            events.on_event(&RunEvent::StageFinished(Box::new(reused.clone())));
            return Ok(reused);
        }
        let started = Instant::now();
        let mut model_calls = Vec::new();
        let mut feedback = self.loop_feedback.clone();
        let max_attempts = self.stage.retries + 1;
        let consumed: Vec<String> = self
            .inputs
            .iter()
            .flat_map(|u| &u.artifacts)
            .map(|a| a.hash.clone())
            .collect();
        let mut tries = 0;
        loop {
            tries += 1;
            let attempt = self.attempts_before + tries;
            // Never closed; were it, the attempt would run without a slot.
            let slot = self.slots.clone().acquire_owned().await.ok();
            let (run, stage, key) = (
                self.run_id.clone(),
                self.stage.id.clone(),
                self.cache_key.clone(),
            );
            stored(&self.store, move |s| {
                s.stage_started(&run, &stage, attempt, key)
            })
            .await?;
            events.on_event(&RunEvent::StageStarted {
                stage: self.stage.id.clone(),
                attempt,
            });
            // The state directory is where the database file is: the
            // attempt's live log goes beside it, for other processes.
            let state_dir = self
                .store
                .path()
                .parent()
                .unwrap_or(std::path::Path::new("."));
            let id = AttemptId {
                run: &self.run_id,
                stage: &self.stage.id,
                iteration: self.iteration,
                attempt,
            };
            let live = Arc::new(AttemptLive::new(state_dir, id, events.clone()));
            let place = self.place(attempt).await;
            let scope = AttemptScope {
                run_id: &self.run_id,
                stage: &self.stage,
                iteration: self.iteration,
                attempt,
                live: &live,
                workspace: place
                    .as_ref()
                    .ok()
                    .and_then(|p| p.as_deref())
                    .map(Place::dir),
                files_guard: place
                    .as_ref()
                    .ok()
                    .and_then(Option::as_ref)
                    .and_then(|p| self.files.guard(p)),
                deadline: std::time::Instant::now() + self.stage.timeout,
                inputs: &self.inputs,
                kind: AttemptKind::of(
                    tries,
                    self.attempts_before,
                    self.interrupted,
                    self.iteration,
                ),
            };
            let spec = AttemptSpec {
                input: StageInput {
                    run_id: self.run_id.clone(),
                    stage_id: self.stage.id.clone(),
                    task: self.task.clone(),
                    config_json: self.stage.config.to_string(),
                    inputs: self.inputs.clone(),
                    attempt,
                    iteration: self.iteration,
                    feedback: feedback.clone(),
                },
                grants: self.capabilities.grants(&scope),
                timeout: self.stage.timeout,
                heartbeat: self.stage.heartbeat,
                max_output: self.stage.max_output,
                memory_limit: self.stage.memory_limit,
                printed: Some(PrintedTo {
                    live: live.clone(),
                    max_lines: self.stage.max_log_lines,
                }),
                artifacts: Some(self.store.clone()),
            };
            // Whatever the host logs while the attempt runs carries its ids.
            // Target "plugin", so the default filter (plugin=info) keeps it.
            let span = tracing::info_span!(target: "plugin", "stage", run = %self.run_id, stage = %self.stage.id, attempt);
            let report = match &place {
                Ok(_) => {
                    self.runtime
                        .run_attempt(&self.plugin, spec)
                        .instrument(span)
                        .await
                }
                Err(failure) => host_runtime::AttemptReport {
                    outcome: Err(failure.clone()),
                    activity: Activity::default(),
                    stderr: String::new(),
                    elapsed: Duration::ZERO,
                },
            };
            drop(slot);
            let place = place.ok().flatten();
            let mut activity = report.activity;
            let gates_failed = activity.gate_runs.iter().any(|g| !g.passed);
            model_calls.extend(activity.model_calls.iter().cloned());
            // A malformed or oversized spawn request fails the attempt
            // before anything of it is committed.
            let outcome = report.outcome.and_then(|output| {
                spawn::requests(&self.stage, &output, self.max_spawned).map(|_| output)
            });
            let failure = match outcome {
                Ok(mut output) => {
                    match self
                        .commit_success(attempt, &mut output, &consumed, &activity, place.as_ref())
                        .await?
                    {
                        Ok(record) => {
                            self.discard(place).await;
                            let result = StageResult {
                                attempts: attempt,
                                elapsed: started.elapsed(),
                                summary: Some(output.summary.clone()),
                                output_hash: Some(record.content_hash),
                                model_calls,
                                iteration: self.iteration,
                                gates_failed,
                                parent: self.stage.parent.clone(),
                                ..StageResult::new(&self.stage.id, StageStatus::Succeeded)
                            }
                            .holding(output, record.artifacts);
                            events.on_event(&RunEvent::StageFinished(Box::new(result.clone())));
                            return Ok(result);
                        }
                        Err(failure) => failure,
                    }
                }
                Err(failure) => failure,
            };
            self.discard(place).await;
            // What a failed attempt changed was discarded with its copy.
            activity.file_changes.clear();
            {
                {
                    let will_retry = failure.is_retryable() && tries < max_attempts;
                    let (run, stage, f) =
                        (self.run_id.clone(), self.stage.id.clone(), failure.clone());
                    stored(&self.store, move |s| {
                        s.stage_failed(&run, &stage, attempt, &f, will_retry, &activity)
                    })
                    .await?;
                    if will_retry {
                        let delay = stage_backoff(attempt);
                        events.on_event(&RunEvent::StageRetrying {
                            stage: self.stage.id.clone(),
                            attempt,
                            failure: failure.to_string(),
                            delay,
                        });
                        // The retried attempt sees why the previous one failed
                        // (unless the stage opts out with retry_context = false).
                        if self.stage.retry_context {
                            feedback =
                                Some(format!("previous attempt {attempt} failed: {failure}"));
                        }
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    if !report.stderr.trim().is_empty() {
                        tracing::debug!(stage = %self.stage.id, "plugin stderr:\n{}", report.stderr);
                    }
                    let result = StageResult {
                        attempts: attempt,
                        elapsed: started.elapsed(),
                        failure: Some(failure),
                        model_calls,
                        iteration: self.iteration,
                        parent: self.stage.parent.clone(),
                        ..StageResult::new(&self.stage.id, StageStatus::Failed)
                    };
                    events.on_event(&RunEvent::StageFinished(Box::new(result.clone())));
                    return Ok(result);
                }
            }
        }
    }
}
