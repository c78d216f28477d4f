//! Runs a validated pipeline: stages start as soon as every stage in their
//! `after` list has succeeded (up to `max_parallel` at once), retryable
//! failures are retried with backoff, and the dependants of a failed stage
//! are skipped with the reason.

use crate::bindings::orchestrator::stage::types as wit;
use crate::bindings::{StageInput, StageOutput};
use crate::capabilities::models::{ModelCall, ModelsCapability};
use crate::events::{RunEvent, RunObserver};
use crate::manifest::{Pipeline, StageSpec};
use crate::runtime::{AttemptSpec, LoadedPlugin, Runtime, StageFailure};
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
    pub summary: Option<String>,
    pub failure: Option<StageFailure>,
    pub skip_reason: Option<String>,
    pub model_calls: Vec<ModelCall>,
}

impl StageResult {
    fn skipped(id: &str, reason: String) -> Self {
        StageResult {
            id: id.to_string(),
            status: StageStatus::Skipped,
            attempts: 0,
            elapsed: Duration::ZERO,
            output: None,
            summary: None,
            failure: None,
            skip_reason: Some(reason),
            model_calls: Vec::new(),
        }
    }

    pub fn tokens(&self) -> u64 {
        self.model_calls
            .iter()
            .map(|c| u64::from(c.input_tokens) + u64::from(c.output_tokens))
            .sum()
    }

    pub fn cost_usd(&self) -> f64 {
        self.model_calls.iter().fold(0.0, |acc, c| acc + c.cost_usd)
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

pub struct Scheduler {
    pub runtime: Arc<Runtime>,
    pub models: Arc<ModelsCapability>,
    pub plugins: HashMap<String, Arc<LoadedPlugin>>,
}

impl Scheduler {
    pub async fn run(
        &self,
        pipeline: &Pipeline,
        run_id: &str,
        observer: Arc<dyn RunObserver>,
    ) -> RunSummary {
        let started = Instant::now();
        observer.on_event(&RunEvent::RunStarted {
            run_id: run_id.to_string(),
            pipeline: pipeline.name.clone(),
            stages: pipeline.stages.len(),
        });
        let mut results: HashMap<String, StageResult> = HashMap::new();
        let mut running: JoinSet<StageResult> = JoinSet::new();
        let mut in_flight = 0usize;
        loop {
            // Settle every pending stage whose fate is already decided.
            let mut progressed = true;
            while progressed {
                progressed = false;
                for stage in &pipeline.stages {
                    if results.contains_key(&stage.id) {
                        continue;
                    }
                    if let Some(reason) = blocked_by(stage, &results) {
                        let r = StageResult::skipped(&stage.id, reason.clone());
                        observer.on_event(&RunEvent::StageSkipped {
                            stage: stage.id.clone(),
                            reason,
                        });
                        results.insert(stage.id.clone(), r);
                        progressed = true;
                    }
                }
            }
            for stage in &pipeline.stages {
                if in_flight >= pipeline.max_parallel {
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
                let inputs = upstream_inputs(stage, &results);
                results.insert(stage.id.clone(), running_placeholder(&stage.id));
                in_flight += 1;
                let job = StageJob {
                    runtime: self.runtime.clone(),
                    models: self.models.clone(),
                    plugin,
                    stage: stage.clone(),
                    run_id: run_id.to_string(),
                    task: pipeline.task.clone(),
                    inputs,
                };
                let events = observer.clone();
                running.spawn(async move { job.run(events).await });
            }
            let Some(done) = running.join_next().await else {
                break;
            };
            in_flight -= 1;
            match done {
                Ok(result) => {
                    results.insert(result.id.clone(), result);
                }
                Err(join_error) => {
                    // A panic inside the host while running a stage: record it
                    // against the stage instead of taking the run down.
                    tracing::error!("stage task failed: {join_error}");
                    if let Some((id, _)) = results
                        .iter()
                        .find(|(_, r)| r.status == StageStatus::Running)
                    {
                        let id = id.clone();
                        let mut r = StageResult::skipped(&id, String::new());
                        r.status = StageStatus::Failed;
                        r.skip_reason = None;
                        r.failure = Some(StageFailure::Trap {
                            message: format!("host error while running the stage: {join_error}"),
                        });
                        results.insert(id, r);
                    }
                }
            }
        }
        let summary = RunSummary {
            run_id: run_id.to_string(),
            pipeline: pipeline.name.clone(),
            elapsed: started.elapsed(),
            stages: pipeline
                .stages
                .iter()
                .map(|s| {
                    results
                        .remove(&s.id)
                        .unwrap_or_else(|| StageResult::skipped(&s.id, "never became ready".into()))
                })
                .collect(),
        };
        observer.on_event(&RunEvent::RunFinished {
            run_id: run_id.to_string(),
            succeeded: summary.succeeded(),
            elapsed: summary.elapsed,
        });
        summary
    }
}

fn running_placeholder(id: &str) -> StageResult {
    let mut r = StageResult::skipped(id, String::new());
    r.status = StageStatus::Running;
    r.skip_reason = None;
    r
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
    plugin: Arc<LoadedPlugin>,
    stage: StageSpec,
    run_id: String,
    task: String,
    inputs: Vec<wit::Upstream>,
}

impl StageJob {
    async fn run(self, events: Arc<dyn RunObserver>) -> StageResult {
        let started = Instant::now();
        let mut model_calls = Vec::new();
        let mut feedback = None;
        let max_attempts = self.stage.retries + 1;
        let mut attempt = 0;
        loop {
            attempt += 1;
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
                models: self.models.grant(&self.stage),
                timeout: self.stage.timeout,
                memory_limit: self.stage.memory_limit,
            };
            let report = self.runtime.run_attempt(&self.plugin, spec).await;
            model_calls.extend(report.model_calls);
            match report.outcome {
                Ok(output) => {
                    let result = StageResult {
                        id: self.stage.id.clone(),
                        status: StageStatus::Succeeded,
                        attempts: attempt,
                        elapsed: started.elapsed(),
                        summary: Some(output.summary.clone()),
                        output: Some(output),
                        failure: None,
                        skip_reason: None,
                        model_calls,
                    };
                    events.on_event(&RunEvent::StageFinished(Box::new(result.clone())));
                    return result;
                }
                Err(failure) if failure.is_retryable() && attempt < max_attempts => {
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
                }
                Err(failure) => {
                    if !report.stderr.trim().is_empty() {
                        tracing::debug!(stage = %self.stage.id, "plugin stderr:\n{}", report.stderr);
                    }
                    let result = StageResult {
                        id: self.stage.id.clone(),
                        status: StageStatus::Failed,
                        attempts: attempt,
                        elapsed: started.elapsed(),
                        output: None,
                        summary: None,
                        failure: Some(failure),
                        skip_reason: None,
                        model_calls,
                    };
                    events.on_event(&RunEvent::StageFinished(Box::new(result.clone())));
                    return result;
                }
            }
        }
    }
}
