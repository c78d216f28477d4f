//! Runs a validated pipeline as a graph that evolves: a stage becomes a
//! candidate when every dependency is finished, runs if its edge conditions
//! and its `when` hold (else it is skipped with the reason), up to
//! `max_parallel` at once and per group; spawned jobs join with a parent
//! link; a loop sends part of the graph back with feedback, up to its cap.
//! Every transition is committed to the store before the run moves on, so a
//! killed run resumes where it stopped.

mod graph;
mod inputs;
mod job;
mod spawn;

pub use host_vocab::{RunOutcome, RunSummary, StageResult, StageStatus};
pub use inputs::CHANGES_ARTIFACT;
pub use spawn::SPAWN_ARTIFACT;

use crate::workspace::RunFiles;
use graph::{Graph, NodeState};
use host_capabilities::{Capabilities, LoadedPlugin, Runtime};
use host_manifest::{Condition, Pipeline};
use host_store::{Event, RunStatus, Store, StoreError};
use host_vocab::events::{RunEvent, RunObserver};
use inputs::{ResultFacts, cache_key, upstream_inputs};
use job::StageJob;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// Stage tasks in flight per attempt slot. `max_parallel` bounds attempts
/// (plugin instances) running at once, not stages being recorded: a stage
/// whose attempt has ended gives its slot to the next one while its outcome
/// is committed, so that stage's start shares the commit's fsync instead of
/// waiting for it (10,000 no-op stages, max_parallel 8: see the README's
/// benchmark table).
const IN_FLIGHT_PER_SLOT: usize = 2;

/// A stage that decides this hands the run to a person: the run ends
/// escalated and nothing more is started.
pub const ESCALATE: &str = "escalate";

/// Where an unfinished stage of a resumed run stood.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StageProgress {
    /// Its pass of a loop, and what the stage that looped back said.
    pub iteration: u32,
    pub feedback: Option<String>,
    /// Attempts already made in this pass (by processes that died): the
    /// next one is numbered after them, with its own log.
    pub attempts: u32,
    /// The last of them never ended (its host stopped): the next attempt
    /// is a resume, not a retry of a failure.
    pub interrupted: bool,
}

/// What one run needs beyond the pipeline.
pub struct RunContext {
    pub run_id: String,
    /// Ignore the result cache: every stage that has not succeeded in this
    /// run runs again.
    pub fresh: bool,
    /// Stages that already succeeded in this run (when resuming).
    pub done: HashMap<String, StageResult>,
    /// Where stages not done yet stood when the run was interrupted.
    pub progress: HashMap<String, StageProgress>,
    /// Becomes `Some(reason)` when the run must stop (Ctrl-C, `host cancel`).
    pub cancel: Option<watch::Receiver<Option<String>>>,
    /// The files its stages work on ([`RunFiles::open`]).
    pub files: RunFiles,
}

pub struct Scheduler {
    pub runtime: Arc<Runtime>,
    pub capabilities: Arc<Capabilities>,
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

/// Why a candidate will not run, if it will not.
fn skip_reason(graph: &Graph, n: usize, results: &HashMap<String, StageResult>) -> Option<String> {
    let node = &graph.nodes[n];
    for &(d, on) in &node.deps {
        let dep = graph.nodes[d].spec.id.as_str();
        let status = results.get(dep).map(|r| r.status);
        let holds = matches!(
            (on, status),
            (Condition::Success, Some(StageStatus::Succeeded))
                | (Condition::Failure, Some(StageStatus::Failed))
                | (Condition::Always, Some(_))
                | (
                    Condition::SuccessOrSkip,
                    Some(StageStatus::Succeeded | StageStatus::Skipped)
                )
        );
        if !holds {
            return Some(match (on, status) {
                (_, Some(StageStatus::Failed)) => format!("dependency '{dep}' failed"),
                (_, Some(StageStatus::Skipped)) => format!("dependency '{dep}' was skipped"),
                (Condition::Failure, Some(StageStatus::Succeeded)) => {
                    format!("dependency '{dep}' succeeded (this stage runs on its failure)")
                }
                _ => format!("dependency '{dep}' did not finish"),
            });
        }
    }
    if let Some(when) = &node.spec.when
        && !when.expr.holds(&ResultFacts(results))
    {
        return Some(format!("condition not met: {}", when.text));
    }
    None
}

/// What the stage that loops back tells the stage it loops to: its
/// `feedback` artifact if it has one, else its summary.
fn loop_feedback(result: &StageResult) -> String {
    let Some(output) = &result.output else {
        return String::new();
    };
    output
        .artifacts
        .iter()
        .find(|a| a.name.starts_with("feedback"))
        .map(|a| String::from_utf8_lossy(&a.bytes).into_owned())
        .unwrap_or_else(|| output.summary.clone())
}

/// The state of one run while it is being scheduled.
struct RunState<'a> {
    scheduler: &'a Scheduler,
    pipeline: &'a Pipeline,
    run_id: String,
    fresh: bool,
    observer: Arc<dyn RunObserver>,
    graph: Graph,
    results: HashMap<String, StageResult>,
    ready: VecDeque<usize>,
    /// Stage tasks in flight: waiting for an attempt slot, running an
    /// attempt, or committing its outcome.
    running: HashSet<usize>,
    /// One permit per attempt that may run at once (`max_parallel`).
    slots: Arc<Semaphore>,
    groups: HashMap<String, usize>,
    spawned: usize,
    /// Set when the run stops scheduling new stages (a loop's cap).
    halted: Option<String>,
    outcome: RunOutcome,
    files: RunFiles,
}

impl RunState<'_> {
    fn note(&self, message: String) {
        self.observer.on_event(&RunEvent::Note { message });
    }

    async fn record(&self, event: Event) -> Result<(), StoreError> {
        let run = self.run_id.clone();
        stored(&self.scheduler.store, move |s| s.note(&run, event)).await
    }

    async fn skip(&mut self, n: usize, reason: String) -> Result<(), StoreError> {
        let id = self.graph.nodes[n].spec.id.clone();
        let (run, sid, why) = (self.run_id.clone(), id.clone(), reason.clone());
        stored(&self.scheduler.store, move |s| {
            s.stage_skipped(&run, &sid, &why)
        })
        .await?;
        let mut r = StageResult::new(&id, StageStatus::Skipped);
        r.skip_reason = Some(reason.clone());
        r.parent = self.graph.nodes[n].spec.parent.clone();
        self.observer.on_event(&RunEvent::StageSkipped {
            stage: id.clone(),
            reason,
        });
        self.results.insert(id, r);
        self.graph.finish(n);
        Ok(())
    }

    /// Decides every candidate: restored, skipped, or ready to run.
    async fn decide(&mut self) -> Result<(), StoreError> {
        while let Some(n) = self.graph.next_candidate() {
            let id = self.graph.nodes[n].spec.id.clone();
            if self
                .results
                .get(&id)
                .is_some_and(|r| r.status == StageStatus::Succeeded)
            {
                // Finished before this process took over: its spawns and
                // its loop decision are replayed, nothing runs again.
                self.succeeded(n).await?;
                continue;
            }
            if let Some(reason) = &self.halted {
                let reason = reason.clone();
                self.skip(n, reason).await?;
                continue;
            }
            match skip_reason(&self.graph, n, &self.results) {
                Some(reason) => self.skip(n, reason).await?,
                None => {
                    self.graph.nodes[n].state = NodeState::Ready;
                    self.ready.push_back(n);
                }
            }
        }
        Ok(())
    }

    /// A stage succeeded: its spawn requests join the graph, then its loop
    /// decision may send the run back; otherwise it is finished.
    async fn succeeded(&mut self, n: usize) -> Result<(), StoreError> {
        let id = self.graph.nodes[n].spec.id.clone();
        let Some(result) = self.results.get(&id).cloned() else {
            self.graph.finish(n);
            return Ok(());
        };
        if let Some(output) = &result.output {
            let spec = self.graph.nodes[n].spec.clone();
            match spawn::requests(&spec, output, self.pipeline.max_spawned) {
                Ok(requests) => self.spawn_all(n, requests).await?,
                Err(e) => tracing::warn!(stage = %id, "ignoring spawn requests: {e}"),
            }
        }
        let decision = result.output.as_ref().and_then(|o| o.decision.clone());
        if decision.as_deref() == Some(ESCALATE) {
            let summary = result.summary.clone().unwrap_or_default();
            let reason = format!("escalated by '{id}': {summary}");
            self.record(Event::Escalated {
                stage: id.clone(),
                iterations: self.graph.nodes[n].iteration,
            })
            .await?;
            self.note(reason.clone());
            self.outcome = RunOutcome::Escalated;
            self.halted = Some(reason);
            self.graph.finish(n);
            return Ok(());
        }
        let node = &self.graph.nodes[n];
        if let Some(l) = node.spec.loop_back.clone()
            && result.output.as_ref().and_then(|o| o.decision.as_deref()) == Some(l.on.as_str())
            && let Some(to) = self.graph.get(&l.to)
        {
            let iteration = node.iteration;
            if iteration < l.max {
                let feedback = loop_feedback(&result);
                let body = self.graph.loop_back(to, n, feedback.clone());
                let reset: Vec<(String, u32)> = body
                    .iter()
                    .map(|&b| {
                        (
                            self.graph.nodes[b].spec.id.clone(),
                            self.graph.nodes[b].iteration,
                        )
                    })
                    .collect();
                for (sid, _) in &reset {
                    self.results.remove(sid);
                }
                let (run, from, to_id) = (self.run_id.clone(), id.clone(), l.to.clone());
                let r = reset.clone();
                stored(&self.scheduler.store, move |s| {
                    s.loop_back(&run, &from, &to_id, &r, &feedback)
                })
                .await?;
                self.note(format!(
                    "{id} decided '{}': back to {} (iteration {} of at most {})",
                    l.on,
                    l.to,
                    iteration + 1,
                    l.max
                ));
                return Ok(());
            }
            let reason = format!(
                "escalated: '{id}' still decided '{}' after {} loop(s) back to '{}'",
                l.on, l.max, l.to
            );
            self.record(Event::Escalated {
                stage: id.clone(),
                iterations: iteration,
            })
            .await?;
            self.note(reason.clone());
            self.outcome = RunOutcome::Escalated;
            self.halted = Some(reason);
        }
        self.graph.finish(n);
        Ok(())
    }

    /// Spawns a stage's requests in order. Once the run's `max_spawned` is
    /// reached, the rest are refused by one event, not one each: a stage
    /// asking for thousands must not write thousands of records.
    async fn spawn_all(
        &mut self,
        parent: usize,
        requests: Vec<spawn::SpawnRequest>,
    ) -> Result<(), StoreError> {
        let mut requests = requests.into_iter();
        for request in requests.by_ref() {
            let label = format!("{}.{}", self.graph.nodes[parent].spec.id, request.id);
            if self.spawned >= self.pipeline.max_spawned && self.graph.get(&label).is_none() {
                let rest = 1 + requests.len();
                let parent_id = self.graph.nodes[parent].spec.id.clone();
                let reason = format!(
                    "the run already spawned {} jobs (max_spawned); {rest} request(s) from here on refused",
                    self.spawned
                );
                return self
                    .refused(Event::SpawnRefused {
                        parent: parent_id,
                        request: label,
                        reason,
                    })
                    .await;
            }
            self.spawn(parent, request).await?;
        }
        Ok(())
    }

    async fn spawn(
        &mut self,
        parent: usize,
        request: spawn::SpawnRequest,
    ) -> Result<(), StoreError> {
        let parent_spec = self.graph.nodes[parent].spec.clone();
        let label = format!("{}.{}", parent_spec.id, request.id);
        let refuse = |reason: String| Event::SpawnRefused {
            parent: parent_spec.id.clone(),
            request: label.clone(),
            reason,
        };
        let depth = self.graph.nodes[parent].depth + 1;
        let mut extra = Vec::new();
        let mut problem = None;
        if self.graph.get(&label).is_some() {
            // Already spawned (a resumed run replays its requests).
            return Ok(());
        }
        if depth > self.pipeline.max_spawn_depth {
            problem = Some(format!(
                "spawn depth {depth} is over the cap of {}",
                self.pipeline.max_spawn_depth
            ));
        } else if self.spawned >= self.pipeline.max_spawned {
            problem = Some(format!(
                "the run already spawned {} jobs (max_spawned)",
                self.spawned
            ));
        }
        for dep in &request.after {
            match self.graph.get(dep) {
                Some(d) => extra.push(d),
                None => problem = Some(format!("it runs after unknown stage '{dep}'")),
            }
        }
        let Some(template) = self.pipeline.templates.get(&request.template) else {
            problem = Some(format!("unknown template '{}'", request.template));
            return self.refused(refuse(problem.unwrap_or_default())).await;
        };
        if let Some(p) = problem {
            return self.refused(refuse(p)).await;
        }
        let spec = spawn::job(&parent_spec, template, &request);
        let (run, p, sid, t) = (
            self.run_id.clone(),
            parent_spec.id.clone(),
            spec.id.clone(),
            request.template.clone(),
        );
        stored(&self.scheduler.store, move |s| {
            s.stage_spawned(&run, &p, &sid, &t)
        })
        .await?;
        self.note(format!("{} spawned {}", parent_spec.id, spec.id));
        self.graph.spawn(parent, spec, &extra);
        self.spawned += 1;
        Ok(())
    }

    async fn refused(&mut self, event: Event) -> Result<(), StoreError> {
        if let Event::SpawnRefused {
            request, reason, ..
        } = &event
        {
            self.note(format!("spawn of {request} refused: {reason}"));
        }
        self.record(event).await
    }

    fn group_full(&self, n: usize) -> bool {
        let Some(group) = &self.graph.nodes[n].spec.group else {
            return false;
        };
        let limit = self
            .pipeline
            .groups
            .get(group)
            .copied()
            .unwrap_or(usize::MAX);
        self.groups.get(group).copied().unwrap_or(0) >= limit
    }

    /// Starts ready stages while fewer than [`IN_FLIGHT_PER_SLOT`] tasks per
    /// attempt slot are in flight.
    fn launch(&mut self, tasks: &mut JoinSet<(usize, Result<StageResult, StoreError>)>) {
        let mut deferred = VecDeque::new();
        while self.running.len() < self.pipeline.max_parallel * IN_FLIGHT_PER_SLOT {
            let Some(n) = self.ready.pop_front() else {
                break;
            };
            if self.group_full(n) {
                deferred.push_back(n);
                continue;
            }
            let node = &self.graph.nodes[n];
            let spec = node.spec.clone();
            let deps: Vec<&str> = node
                .deps
                .iter()
                .map(|&(d, _)| self.graph.nodes[d].spec.id.as_str())
                .collect();
            let Some(plugin) = self.scheduler.plugins.get(&spec.plugin).cloned() else {
                // Every plugin is loaded before a run starts; this would be a
                // host bug, and it must not hang the run.
                tracing::error!(stage = %spec.id, plugin = %spec.plugin, "plugin not loaded");
                continue;
            };
            let upstream: Vec<&StageResult> =
                deps.iter().filter_map(|d| self.results.get(*d)).collect();
            let key = cache_key(
                self.pipeline,
                &spec,
                &plugin,
                &upstream,
                node.iteration,
                node.feedback.as_deref(),
            );
            let inputs = upstream_inputs(&deps, &self.results);
            if let Some(group) = &spec.group {
                *self.groups.entry(group.clone()).or_default() += 1;
            }
            let job = StageJob {
                runtime: self.scheduler.runtime.clone(),
                capabilities: self.scheduler.capabilities.clone(),
                store: self.scheduler.store.clone(),
                plugin,
                stage: spec,
                run_id: self.run_id.clone(),
                task: self.pipeline.task.clone(),
                inputs,
                cache_key: key,
                fresh: self.fresh,
                slots: self.slots.clone(),
                max_spawned: self.pipeline.max_spawned,
                iteration: node.iteration,
                loop_feedback: node.feedback.clone(),
                attempts_before: node.attempts_before,
                interrupted: node.interrupted,
                files: self.files.clone(),
            };
            self.graph.nodes[n].state = NodeState::Running;
            self.running.insert(n);
            let events = self.observer.clone();
            tasks.spawn(async move { (n, job.run(events).await) });
        }
        deferred.extend(self.ready.drain(..));
        self.ready = deferred;
    }

    /// A stage task came back.
    async fn finished(&mut self, n: usize, result: StageResult) -> Result<(), StoreError> {
        self.running.remove(&n);
        if let Some(group) = &self.graph.nodes[n].spec.group
            && let Some(count) = self.groups.get_mut(group)
        {
            *count = count.saturating_sub(1);
        }
        let ok = result.status == StageStatus::Succeeded;
        self.results.insert(result.id.clone(), result);
        if ok {
            self.succeeded(n).await
        } else {
            self.graph.finish(n);
            Ok(())
        }
    }

    /// Nothing runs and nothing can: every stage left is skipped as
    /// deadlocked, with what it waited on.
    async fn deadlock(&mut self) -> Result<(), StoreError> {
        let stuck = self.graph.stuck();
        let names: Vec<String> = stuck
            .iter()
            .map(|&n| self.graph.nodes[n].spec.id.clone())
            .collect();
        self.record(Event::Deadlocked {
            stages: names.clone(),
        })
        .await?;
        self.note(format!(
            "deadlock: nothing can run; waiting: {}",
            names.join(", ")
        ));
        for n in stuck {
            let waits = self.graph.waiting_on(n).join(", ");
            self.skip(n, format!("deadlock: waits on {waits}")).await?;
        }
        self.outcome = RunOutcome::Deadlocked;
        Ok(())
    }

    /// Stops every running stage and records it as interrupted.
    async fn stop(
        &mut self,
        tasks: &mut JoinSet<(usize, Result<StageResult, StoreError>)>,
        reason: String,
    ) -> Result<(), StoreError> {
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        for n in std::mem::take(&mut self.running) {
            let id = self.graph.nodes[n].spec.id.clone();
            let (run, sid) = (self.run_id.clone(), id.clone());
            stored(&self.scheduler.store, move |s| {
                s.stage_interrupted(&run, &sid)
            })
            .await?;
            let mut r = StageResult::new(&id, StageStatus::Interrupted);
            r.skip_reason = Some(reason.clone());
            self.results.insert(id, r);
        }
        self.record(Event::RunCancelled {
            reason: reason.clone(),
        })
        .await?;
        self.note(format!("run stopped: {reason}"));
        Ok(())
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
        let (run, per_stage) = host_capabilities::models::usage_by_stage(
            stages
                .iter()
                .map(|s| (s.stage.as_str(), s.model_calls.as_slice())),
        );
        self.capabilities.models.ledger().seed(run, per_stage);
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
        for r in ctx.done.values() {
            observer.on_event(&RunEvent::StageFinished(Box::new(r.clone())));
        }
        let mut graph = Graph::new(&pipeline.stages);
        for (id, progress) in &ctx.progress {
            if let Some(n) = graph.get(id) {
                graph.nodes[n].iteration = progress.iteration;
                graph.nodes[n].feedback = progress.feedback.clone();
                graph.nodes[n].attempts_before = progress.attempts;
                graph.nodes[n].interrupted = progress.interrupted;
            }
        }
        let mut state = RunState {
            scheduler: self,
            pipeline,
            run_id: run_id.clone(),
            fresh: ctx.fresh,
            observer: observer.clone(),
            graph,
            results: ctx.done,
            ready: VecDeque::new(),
            running: HashSet::new(),
            slots: Arc::new(Semaphore::new(pipeline.max_parallel)),
            groups: HashMap::new(),
            spawned: 0,
            halted: None,
            outcome: RunOutcome::Finished,
            files: ctx.files.clone(),
        };
        let mut cancel = ctx.cancel;
        let deadline = pipeline.deadline.map(|d| tokio::time::Instant::now() + d);
        let mut tasks: JoinSet<(usize, Result<StageResult, StoreError>)> = JoinSet::new();
        loop {
            state.decide().await?;
            state.launch(&mut tasks);
            if tasks.is_empty() {
                if !state.ready.is_empty() {
                    // Ready stages whose plugin is missing: nothing to wait for.
                    break;
                }
                if !state.graph.stuck().is_empty() {
                    state.deadlock().await?;
                }
                break;
            }
            let cancelled = async {
                match cancel.as_mut() {
                    Some(rx) => loop {
                        if let Some(reason) = rx.borrow().clone() {
                            return reason;
                        }
                        if rx.changed().await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    },
                    None => std::future::pending().await,
                }
            };
            let past_deadline = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                done = tasks.join_next() => match done {
                    Some(Ok((n, Ok(result)))) => state.finished(n, result).await?,
                    Some(Ok((_, Err(e)))) => {
                        tracing::error!("state store failed: {e}");
                        // The run stays `running` in the store: a later
                        // `host resume` takes it over once the store works.
                        return Err(e);
                    }
                    Some(Err(join_error)) => {
                        return Err(StoreError::Db {
                            path: Default::default(),
                            detail: format!("a stage task failed inside the host: {join_error}"),
                        });
                    }
                    None => {}
                },
                reason = cancelled => {
                    state.stop(&mut tasks, reason).await?;
                    state.outcome = RunOutcome::Cancelled;
                    break;
                }
                () = past_deadline => {
                    let limit = pipeline.deadline.unwrap_or_default();
                    state.stop(&mut tasks, format!(
                        "the run's deadline of {} passed",
                        host_manifest::display_duration(limit)
                    )).await?;
                    state.outcome = RunOutcome::DeadlineExceeded;
                    break;
                }
            }
        }
        let RunState {
            mut results,
            graph,
            outcome,
            ..
        } = state;
        let stages: Vec<StageResult> = graph
            .nodes
            .iter()
            .map(|node| {
                results.remove(&node.spec.id).unwrap_or_else(|| {
                    let mut r = StageResult::new(&node.spec.id, StageStatus::Pending);
                    r.parent = node.spec.parent.clone();
                    r
                })
            })
            .collect();
        let summary = RunSummary {
            run_id: run_id.clone(),
            pipeline: pipeline.name.clone(),
            elapsed: started.elapsed(),
            outcome,
            stages,
        };
        let status = match outcome {
            RunOutcome::Cancelled => RunStatus::Interrupted,
            RunOutcome::Escalated => RunStatus::Escalated,
            _ if summary.succeeded() => RunStatus::Succeeded,
            _ => RunStatus::Failed,
        };
        let run = run_id.clone();
        stored(&self.store, move |s| s.run_finished(&run, status)).await?;
        if status != RunStatus::Interrupted {
            // Its changes are in the store: a later resume of a failed run
            // rebuilds the copy from the workspace and them. An interrupted
            // run keeps it, to go on where it stopped.
            let files = ctx.files.clone();
            let _ = tokio::task::spawn_blocking(move || files.remove()).await;
        }
        observer.on_event(&RunEvent::RunFinished {
            run_id,
            succeeded: summary.succeeded(),
            elapsed: summary.elapsed,
        });
        Ok(summary)
    }
}
