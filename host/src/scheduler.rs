//! Runs a validated pipeline: stages start as soon as every stage in their
//! `after` list has succeeded (up to `max_parallel` at once), retryable
//! failures are retried with backoff, the dependants of a failed stage are
//! skipped with the reason, and every transition is committed to the store
//! before the run moves on, so a killed run resumes where it stopped.

use crate::bindings::orchestrator::stage::types as wit;
use crate::bindings::{StageInput, StageOutput};
use crate::capabilities::gates::GatesCapability;
use crate::capabilities::kv::KvGrant;
use crate::capabilities::models::{ModelCall, ModelsCapability};
use crate::events::{RunEvent, RunObserver};
use crate::manifest::{Pipeline, StageSpec};
use crate::runtime::{AttemptSpec, LoadedPlugin, Runtime, StageFailure};
use crate::store::{Activity, OutputRecord, RunStatus, Store, StoreError};
use crate::workspace::FileChange;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StageStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
    Skipped,
}

/// How one stage ended.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StageResult {
    pub id: String,
    pub status: StageStatus,
    pub attempts: u32,
    #[serde(with = "crate::events::millis")]
    pub elapsed: Duration,
    #[serde(skip)]
    pub output: Option<StageOutput>,
    /// Content hash of the output: what downstream cache keys are built from.
    pub output_hash: Option<String>,
    pub summary: Option<String>,
    pub failure: Option<StageFailure>,
    pub skip_reason: Option<String>,
    /// Where the output came from when the stage did not run in this
    /// process: "cache of run X" or "earlier in this run".
    pub reused: Option<String>,
    pub model_calls: Vec<ModelCall>,
}

impl StageResult {
    fn new(id: &str, status: StageStatus) -> Self {
        StageResult {
            id: id.to_string(),
            status,
            attempts: 0,
            elapsed: Duration::ZERO,
            output: None,
            output_hash: None,
            summary: None,
            failure: None,
            skip_reason: None,
            reused: None,
            model_calls: Vec::new(),
        }
    }

    /// A stage that succeeded before this process took over the run.
    pub fn restored(
        id: &str,
        attempts: u32,
        output: StageOutput,
        record: &OutputRecord,
        note: String,
    ) -> Self {
        StageResult {
            attempts,
            summary: Some(record.summary.clone()),
            output_hash: Some(record.content_hash.clone()),
            output: Some(output),
            reused: Some(note),
            ..StageResult::new(id, StageStatus::Succeeded)
        }
    }

    pub fn tokens(&self) -> u64 {
        crate::capabilities::models::total_tokens(&self.model_calls)
    }

    pub fn cost_usd(&self) -> f64 {
        crate::capabilities::models::total_cost_usd(&self.model_calls)
    }
}

/// A finished run: every stage's result in plan order.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub pipeline: String,
    #[serde(with = "crate::events::millis")]
    pub elapsed: Duration,
    pub stages: Vec<StageResult>,
}

impl RunSummary {
    pub fn succeeded(&self) -> bool {
        self.stages
            .iter()
            .all(|s| s.status == StageStatus::Succeeded)
    }
}

/// Delay before retry `n` of a stage: 1 s, 2 s, 4 s... capped at 30 s.
fn stage_backoff(retry: u32) -> Duration {
    Duration::from_secs(1u64 << retry.saturating_sub(1).min(5)).min(Duration::from_secs(30))
}

/// What one run needs beyond the pipeline.
pub struct RunContext {
    pub run_id: String,
    /// Ignore the result cache: every stage that has not succeeded in this
    /// run runs again.
    pub fresh: bool,
    /// Stages that already succeeded in this run (when resuming).
    pub done: HashMap<String, StageResult>,
}

pub struct Scheduler {
    pub runtime: Arc<Runtime>,
    pub models: Arc<ModelsCapability>,
    pub gates: Arc<GatesCapability>,
    pub plugins: HashMap<String, Arc<LoadedPlugin>>,
    pub store: Arc<Store>,
}

/// Runs a blocking store operation off the async executor.
async fn stored<T: Send + 'static>(
    store: &Arc<Store>,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let store = store.clone();
    match tokio::task::spawn_blocking(move || f(&store)).await {
        Ok(r) => r,
        Err(e) => Err(StoreError::Db {
            path: Default::default(),
            detail: format!("store task failed: {e}"),
        }),
    }
}

impl Scheduler {
    /// Budgets count what a resumed run spent before this process.
    async fn seed_budgets(&self, run_id: &str) -> Result<(), StoreError> {
        let id = run_id.to_string();
        let stages = stored(&self.store, move |s| {
            let run = s.run(&id)?;
            s.stages(&run)
        })
        .await?;
        let (run, per_stage) = crate::capabilities::models::usage_by_stage(
            stages
                .iter()
                .map(|s| (s.stage.as_str(), s.model_calls.as_slice())),
        );
        self.models.ledger().seed(run, per_stage);
        Ok(())
    }

    pub async fn run(
        &self,
        pipeline: &Pipeline,
        ctx: RunContext,
        observer: Arc<dyn RunObserver>,
    ) -> Result<RunSummary, StoreError> {
        let started = Instant::now();
        let run_id = ctx.run_id.clone();
        self.seed_budgets(&run_id).await?;
        observer.on_event(&RunEvent::RunStarted {
            run_id: run_id.clone(),
            pipeline: pipeline.name.clone(),
            stages: pipeline.stages.len(),
        });
        let mut results: HashMap<String, StageResult> = ctx.done;
        for r in results.values() {
            observer.on_event(&RunEvent::StageFinished(Box::new(r.clone())));
        }
        let mut running: JoinSet<Result<StageResult, StoreError>> = JoinSet::new();
        let mut in_flight = 0usize;
        let mut store_error = None;
        loop {
            if store_error.is_none() {
                // Settle every pending stage whose fate is already decided.
                let mut progressed = true;
                while progressed && store_error.is_none() {
                    progressed = false;
                    for stage in &pipeline.stages {
                        if results.contains_key(&stage.id) {
                            continue;
                        }
                        if let Some(reason) = blocked_by(stage, &results) {
                            let (id, why) = (stage.id.clone(), reason.clone());
                            let run = run_id.clone();
                            if let Err(e) =
                                stored(&self.store, move |s| s.stage_skipped(&run, &id, &why)).await
                            {
                                store_error = Some(e);
                                break;
                            }
                            let mut r = StageResult::new(&stage.id, StageStatus::Skipped);
                            r.skip_reason = Some(reason.clone());
                            observer.on_event(&RunEvent::StageSkipped {
                                stage: stage.id.clone(),
                                reason,
                            });
                            results.insert(stage.id.clone(), r);
                            progressed = true;
                        }
                    }
                }
            }
            for stage in &pipeline.stages {
                if in_flight >= pipeline.max_parallel || store_error.is_some() {
                    break;
                }
                let ready = !results.contains_key(&stage.id)
                    && stage.after.iter().all(|d| {
                        results
                            .get(d)
                            .is_some_and(|r| r.status == StageStatus::Succeeded)
                    });
                if !ready {
                    continue;
                }
                let Some(plugin) = self.plugins.get(&stage.plugin).cloned() else {
                    continue;
                };
                let upstream: Vec<&StageResult> =
                    stage.after.iter().filter_map(|d| results.get(d)).collect();
                let cache_key = cache_key(pipeline, stage, &plugin, &upstream);
                let inputs = upstream_inputs(stage, &results);
                results.insert(
                    stage.id.clone(),
                    StageResult::new(&stage.id, StageStatus::Running),
                );
                in_flight += 1;
                let job = StageJob {
                    runtime: self.runtime.clone(),
                    models: self.models.clone(),
                    gates: self.gates.clone(),
                    store: self.store.clone(),
                    plugin,
                    stage: stage.clone(),
                    run_id: run_id.clone(),
                    task: pipeline.task.clone(),
                    inputs,
                    cache_key,
                    fresh: ctx.fresh,
                };
                let events = observer.clone();
                running.spawn(async move { job.run(events).await });
            }
            let Some(done) = running.join_next().await else {
                break;
            };
            in_flight -= 1;
            match done {
                Ok(Ok(result)) => {
                    results.insert(result.id.clone(), result);
                }
                Ok(Err(e)) => {
                    tracing::error!("state store failed: {e}");
                    store_error.get_or_insert(e);
                }
                Err(join_error) => {
                    store_error.get_or_insert(StoreError::Db {
                        path: Default::default(),
                        detail: format!("a stage task failed inside the host: {join_error}"),
                    });
                }
            }
        }
        if let Some(e) = store_error {
            // The run stays `running` in the store: a later `host resume`
            // takes it over once the store works again.
            return Err(e);
        }
        let summary = RunSummary {
            run_id: run_id.clone(),
            pipeline: pipeline.name.clone(),
            elapsed: started.elapsed(),
            stages: pipeline
                .stages
                .iter()
                .map(|s| {
                    results
                        .remove(&s.id)
                        .unwrap_or_else(|| StageResult::new(&s.id, StageStatus::Pending))
                })
                .collect(),
        };
        let status = if summary.succeeded() {
            RunStatus::Succeeded
        } else {
            RunStatus::Failed
        };
        let run = run_id.clone();
        stored(&self.store, move |s| s.run_finished(&run, status)).await?;
        observer.on_event(&RunEvent::RunFinished {
            run_id,
            succeeded: summary.succeeded(),
            elapsed: summary.elapsed,
        });
        Ok(summary)
    }
}

/// Why `stage` can no longer run, if one of its dependencies did not succeed.
fn blocked_by(stage: &StageSpec, results: &HashMap<String, StageResult>) -> Option<String> {
    stage
        .after
        .iter()
        .find_map(|dep| match results.get(dep).map(|r| r.status) {
            Some(StageStatus::Failed) => Some(format!("dependency '{dep}' failed")),
            Some(StageStatus::Skipped) => Some(format!("dependency '{dep}' was skipped")),
            _ => None,
        })
}

/// The result-cache key of a stage attempt: everything its output may depend
/// on. `None` (no reuse) when an input's content is unknown, or when the stage
/// sees the workspace or runs gates: their state is outside the key.
fn cache_key(
    pipeline: &Pipeline,
    stage: &StageSpec,
    plugin: &LoadedPlugin,
    upstream: &[&StageResult],
) -> Option<String> {
    if stage.workspace != crate::manifest::WorkspaceAccess::None || !stage.gates.is_empty() {
        return None;
    }
    let inputs: Option<Vec<(&str, &str)>> = upstream
        .iter()
        .map(|u| Some((u.id.as_str(), u.output_hash.as_deref()?)))
        .collect();
    let models: Vec<_> = stage
        .models
        .iter()
        .filter_map(|alias| pipeline.models.get(alias))
        .map(|m| (&m.alias, m.provider, &m.base_url, &m.model))
        .collect();
    let material = serde_json::json!({
        "wit": crate::bindings::WIT_VERSION,
        "plugin": plugin.hash,
        "config": stage.config,
        "task": pipeline.task,
        "models": models,
        "inputs": inputs?,
        "iteration": 0,
        "feedback": null,
    });
    Some(
        blake3::hash(material.to_string().as_bytes())
            .to_hex()
            .to_string(),
    )
}

/// Name of the artifact the host adds to a read-write stage's output.
pub const CHANGES_ARTIFACT: &str = "workspace-changes.json";

/// Adds the workspace changes to a stage's output, so later stages (and a
/// ship stage) see what changed as an ordinary input.
fn attach_changes(stage: &str, output: &mut wit::StageOutput, changes: &[FileChange]) {
    if changes.is_empty() {
        return;
    }
    if output.artifacts.iter().any(|a| a.name == CHANGES_ARTIFACT) {
        tracing::warn!(%stage, "the plugin returned its own {CHANGES_ARTIFACT}; keeping the plugin's");
        return;
    }
    output.artifacts.push(wit::Artifact {
        name: CHANGES_ARTIFACT.into(),
        media_type: "application/json".into(),
        bytes: serde_json::to_vec_pretty(changes).unwrap_or_default(),
    });
}

fn upstream_inputs(
    stage: &StageSpec,
    results: &HashMap<String, StageResult>,
) -> Vec<wit::Upstream> {
    stage
        .after
        .iter()
        .filter_map(|dep| {
            let output = results.get(dep)?.output.as_ref()?;
            Some(wit::Upstream {
                stage_id: dep.clone(),
                summary: output.summary.clone(),
                decision: output.decision.clone(),
                artifacts: output.artifacts.clone(),
                metrics: output.metrics.clone(),
            })
        })
        .collect()
}

/// Everything one stage needs to run on its own task.
struct StageJob {
    runtime: Arc<Runtime>,
    models: Arc<ModelsCapability>,
    gates: Arc<GatesCapability>,
    store: Arc<Store>,
    plugin: Arc<LoadedPlugin>,
    stage: StageSpec,
    run_id: String,
    task: String,
    inputs: Vec<wit::Upstream>,
    cache_key: Option<String>,
    fresh: bool,
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
        let output = stored(&self.store, move |s| s.load_output(&r)).await?;
        let (run, stage, r) = (self.run_id.clone(), self.stage.id.clone(), record.clone());
        stored(&self.store, move |s| s.stage_reused(&run, &stage, &key, &r)).await?;
        let note = format!("cache of run {}", record.produced_by.0);
        Ok(Some(StageResult::restored(
            &self.stage.id,
            0,
            output,
            &record,
            note,
        )))
    }

    async fn run(self, events: Arc<dyn RunObserver>) -> Result<StageResult, StoreError> {
        if let Some(reused) = self.try_reuse().await? {
            events.on_event(&RunEvent::StageFinished(Box::new(reused.clone())));
            return Ok(reused);
        }
        let started = Instant::now();
        let mut model_calls = Vec::new();
        let mut feedback = None;
        let max_attempts = self.stage.retries + 1;
        let consumed: Vec<String> = self
            .inputs
            .iter()
            .flat_map(|u| &u.artifacts)
            .map(|a| blake3::hash(&a.bytes).to_hex().to_string())
            .collect();
        let mut attempt = 0;
        loop {
            attempt += 1;
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
            let spec = AttemptSpec {
                input: StageInput {
                    run_id: self.run_id.clone(),
                    stage_id: self.stage.id.clone(),
                    task: self.task.clone(),
                    config_json: self.stage.config.to_string(),
                    inputs: self.inputs.clone(),
                    attempt,
                    iteration: 0,
                    feedback: feedback.clone(),
                },
                models: self.models.grant(&self.stage, &self.run_id),
                gates: self.gates.grant(&self.stage),
                workspace: self.gates.workspace_for(&self.stage),
                kv: KvGrant::new(self.store.clone(), &self.run_id, &self.stage.id),
                timeout: self.stage.timeout,
                memory_limit: self.stage.memory_limit,
            };
            let report = self.runtime.run_attempt(&self.plugin, spec).await;
            let activity = Activity {
                model_calls: report.model_calls.clone(),
                gate_runs: report.gate_runs,
                file_changes: report.file_changes,
                session_appends: report.session_appends,
            };
            model_calls.extend(report.model_calls);
            match report.outcome {
                Ok(mut output) => {
                    attach_changes(&self.stage.id, &mut output, &activity.file_changes);
                    let (run, stage, out, used) = (
                        self.run_id.clone(),
                        self.stage.id.clone(),
                        output.clone(),
                        consumed.clone(),
                    );
                    let record = stored(&self.store, move |s| {
                        s.stage_succeeded(&run, &stage, attempt, &out, &used, &activity)
                    })
                    .await?;
                    let result = StageResult {
                        attempts: attempt,
                        elapsed: started.elapsed(),
                        summary: Some(output.summary.clone()),
                        output_hash: Some(record.content_hash),
                        output: Some(output),
                        model_calls,
                        ..StageResult::new(&self.stage.id, StageStatus::Succeeded)
                    };
                    events.on_event(&RunEvent::StageFinished(Box::new(result.clone())));
                    return Ok(result);
                }
                Err(failure) => {
                    let will_retry = failure.is_retryable() && attempt < max_attempts;
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
                        // The retried attempt sees why the previous one failed.
                        feedback = Some(format!("previous attempt {attempt} failed: {failure}"));
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
                        ..StageResult::new(&self.stage.id, StageStatus::Failed)
                    };
                    events.on_event(&RunEvent::StageFinished(Box::new(result.clone())));
                    return Ok(result);
                }
            }
        }
    }
}
