//! The JSON API: runs, one run as a graph, a stage's detail, its attempts,
//! artifacts, workspace changes and log, the run's events. Every answer is
//! read from the store as it is now (see README "The HTTP API").

use super::http::{Query, Reply};
use host_manifest::Pipeline;
use host_runtime::live::{log_path, read_log};
use host_store::{
    Applied, DB_FILE, Event, EventRecord, OutputRecord, RunRecord, RunStatus, StageRecord, Store,
    StoreError,
};
use host_vocab::FileChange;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

type Answer = Result<Reply, Reply>;

/// Answers `GET /api/SEGMENTS...`.
pub fn handle(dir: &Path, segs: &[&str], query: &Query) -> Reply {
    let answer = match segs {
        ["runs"] => runs(dir),
        ["runs", run] => with_run(dir, run, run_detail),
        ["runs", run, "events"] => with_run(dir, run, |s, r| events(s, r, query)),
        ["runs", run, "stages", stage] => with_stage(dir, run, stage, stage_detail),
        ["runs", run, "stages", stage, "attempts"] => with_stage(dir, run, stage, attempts),
        ["runs", run, "diff"] => with_run(dir, run, run_diff),
        ["runs", run, "stages", stage, "diff"] => with_stage(dir, run, stage, |s, _, st| {
            Ok(Reply::json(&diff(s, &st.file_changes)))
        }),
        ["runs", run, "stages", stage, "artifacts", name] => {
            with_stage(dir, run, stage, |s, _, st| artifact(s, st, name))
        }
        ["runs", run, "stages", stage, "log"] => {
            with_stage(dir, run, stage, |s, r, st| log(dir, s, r, st, query))
        }
        _ => Err(Reply::error(
            404,
            format!("no such endpoint: /api/{}", segs.join("/")),
        )),
    };
    answer.unwrap_or_else(|e| e)
}

fn store_error(e: &StoreError) -> Reply {
    match e {
        StoreError::UnknownRun(_) | StoreError::UnknownStage { .. } => {
            Reply::error(404, e.to_string())
        }
        _ => Reply::error(500, e.to_string()),
    }
}

/// The store, or `None` when the state directory has no database yet.
fn open(dir: &Path) -> Result<Option<Store>, Reply> {
    if !dir.join(DB_FILE).is_file() {
        return Ok(None);
    }
    match Store::open_read_only(dir) {
        Ok(store) => Ok(Some(store)),
        // The first `host run` has created the file but not yet its schema.
        Err(StoreError::Foreign { .. }) => Ok(None),
        Err(e) => Err(store_error(&e)),
    }
}

fn with_run<T>(
    dir: &Path,
    run: &str,
    f: impl FnOnce(&Store, &RunRecord) -> Result<T, Reply>,
) -> Result<T, Reply> {
    let Some(store) = open(dir)? else {
        return Err(store_error(&StoreError::UnknownRun(run.into())));
    };
    let record = store.run(run).map_err(|e| store_error(&e))?;
    f(&store, &record)
}

pub fn with_stage<T>(
    dir: &Path,
    run: &str,
    stage: &str,
    f: impl FnOnce(&Store, &RunRecord, &StageRecord) -> Result<T, Reply>,
) -> Result<T, Reply> {
    with_run(dir, run, |store, record| {
        let stages = store.stages(record).map_err(|e| store_error(&e))?;
        let found = stages.iter().find(|s| s.stage == stage).ok_or_else(|| {
            store_error(&StoreError::UnknownStage {
                run: run.into(),
                stage: stage.into(),
            })
        })?;
        f(store, record, found)
    })
}

fn run_summary(run: &RunRecord, stages: &[StageRecord]) -> Value {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for s in stages {
        *counts.entry(s.status.as_str()).or_default() += 1;
    }
    json!({
        "id": run.id,
        "pipeline": run.pipeline,
        "status": run.status.as_str(),
        "pid": run.owner.pid,
        "started_ms": run.started_ms,
        "finished_ms": run.finished_ms,
        "duration_ms": run.finished_ms.map(|f| f.saturating_sub(run.started_ms)),
        "stage_count": stages.len(),
        "stage_counts": counts,
        "tokens": stages.iter().map(StageRecord::tokens).sum::<u64>(),
        "cost_usd": stages.iter().fold(0.0, |acc, s| acc + s.cost_usd()),
    })
}

fn runs(dir: &Path) -> Answer {
    let Some(store) = open(dir)? else {
        return Ok(Reply::json(&json!([])));
    };
    let mut runs = store.runs().map_err(|e| store_error(&e))?;
    // Newest first: the run being watched is usually the latest.
    runs.sort_by_key(|r| std::cmp::Reverse(r.started_ms));
    let mut out = Vec::new();
    for run in &runs {
        let stages = store.stages(run).map_err(|e| store_error(&e))?;
        out.push(run_summary(run, &stages));
    }
    Ok(Reply::json(&Value::Array(out)))
}

/// The plan the run started with (`None` if it no longer validates, e.g.
/// a task file it names is gone).
fn plan(run: &RunRecord) -> Option<Pipeline> {
    host_manifest::parse(Path::new(&run.manifest_path), run.manifest_text.clone()).ok()
}

fn artifacts_json(run: &str, stage: &str, output: &OutputRecord) -> Value {
    output
        .artifacts
        .iter()
        .map(|a| {
            json!({
                "name": a.name,
                "media_type": a.media_type,
                "size": a.size,
                "hash": a.hash,
                "url": format!("/api/runs/{}/stages/{}/artifacts/{}", encode(run), encode(stage), encode(&a.name)),
            })
        })
        .collect()
}

/// Percent-encodes a path segment.
fn encode(segment: &str) -> String {
    let mut out = String::new();
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn stage_summary(run: &str, s: &StageRecord, plan: Option<&Pipeline>, depth: usize) -> Value {
    let spec = plan.and_then(|p| p.stages.iter().find(|x| x.id == s.stage));
    json!({
        "id": s.stage,
        "status": s.status.as_str(),
        "attempts": s.attempts,
        "iteration": s.iteration,
        "started_ms": s.started_ms,
        "finished_ms": s.finished_ms,
        "elapsed_ms": s.elapsed_ms(),
        "tokens": s.tokens(),
        "cost_usd": s.cost_usd(),
        "model_calls": s.model_calls.len(),
        "summary": s.output.as_ref().map(|o| &o.summary),
        "decision": s.output.as_ref().and_then(|o| o.decision.as_ref()),
        "failure": s.failure.as_ref().map(|f| f.to_string()),
        "skip_reason": s.skip_reason,
        "reused_from": s.reused_from,
        "parent": s.parent,
        "depth": depth,
        "plugin": spec.map(|x| &x.plugin),
        "after": spec.map(|x| x.after.iter().map(|d| json!({"stage": d.stage, "on": d.on.as_str()})).collect::<Vec<_>>()).unwrap_or_default(),
        "loop": spec.and_then(|x| x.loop_back.as_ref()).map(|l| json!({"to": l.to, "on": l.on, "max": l.max})),
        "group": spec.and_then(|x| x.group.as_ref()),
        "spawns": spec.map(|x| x.spawns.clone()).unwrap_or_default(),
        "url": format!("/api/runs/{}/stages/{}", encode(run), encode(&s.stage)),
    })
}

/// Layer of each stage: the longest chain of `after` edges above it; a
/// spawned job sits one below its parent.
fn depths(stages: &[StageRecord], plan: Option<&Pipeline>) -> HashMap<String, usize> {
    let after: HashMap<&str, Vec<&str>> = stages
        .iter()
        .map(|s| {
            let deps = plan
                .and_then(|p| p.stages.iter().find(|x| x.id == s.stage))
                .map(|x| x.after.iter().map(|d| d.stage.as_str()).collect())
                .unwrap_or_else(|| s.parent.iter().map(String::as_str).collect());
            (s.stage.as_str(), deps)
        })
        .collect();
    let mut depth: HashMap<String, usize> = HashMap::new();
    // Relaxation bounded by the stage count: a graph with a cycle (which a
    // validated plan cannot have) still ends.
    for _ in 0..=stages.len() {
        let mut changed = false;
        for s in stages {
            let d = after
                .get(s.stage.as_str())
                .into_iter()
                .flatten()
                .filter_map(|dep| depth.get(*dep).map(|d| d + 1))
                .max()
                .unwrap_or(0);
            if depth.get(&s.stage) != Some(&d) {
                depth.insert(s.stage.clone(), d);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    depth
}

/// One attempt as the event log tells it.
#[derive(Debug, Clone, serde::Serialize)]
struct Attempt {
    stage: String,
    attempt: u32,
    iteration: u32,
    started_ms: u64,
    finished_ms: Option<u64>,
    /// running, succeeded, failed, interrupted, reused.
    outcome: &'static str,
    failure: Option<String>,
    will_retry: bool,
    model_calls: u32,
    tokens: u64,
    cost_usd: f64,
    gates: Vec<Value>,
    log_url: Option<String>,
}

/// Every attempt of the run, in the order they started.
fn timeline(store: &Store, run: &RunRecord) -> Result<Vec<Attempt>, Reply> {
    let mut iteration: HashMap<String, u32> = HashMap::new();
    let mut out: Vec<Attempt> = Vec::new();
    let open_of = |out: &[Attempt], stage: &str| -> Option<usize> {
        out.iter()
            .rposition(|a| a.stage == stage && a.finished_ms.is_none())
    };
    let events: Vec<EventRecord> = store.events(&run.id).map_err(|e| store_error(&e))?;
    for e in &events {
        match &e.event {
            Event::LoopedBack {
                iteration: i,
                reset,
                ..
            } => {
                for s in reset {
                    iteration.insert(s.clone(), *i);
                }
            }
            Event::StageStarted { stage, attempt, .. } => {
                let it = iteration.get(stage).copied().unwrap_or(0);
                out.push(Attempt {
                    stage: stage.clone(),
                    attempt: *attempt,
                    iteration: it,
                    started_ms: e.at_ms,
                    finished_ms: None,
                    outcome: "running",
                    failure: None,
                    will_retry: false,
                    model_calls: 0,
                    tokens: 0,
                    cost_usd: 0.0,
                    gates: Vec::new(),
                    log_url: Some(format!(
                        "/api/runs/{}/stages/{}/log?iteration={it}&attempt={attempt}",
                        encode(&run.id),
                        encode(stage)
                    )),
                });
            }
            Event::StageSucceeded { stage, .. } => {
                if let Some(i) = open_of(&out, stage) {
                    out[i].finished_ms = Some(e.at_ms);
                    out[i].outcome = "succeeded";
                }
            }
            Event::StageFailed {
                stage,
                failure,
                will_retry,
                ..
            } => {
                if let Some(i) = open_of(&out, stage) {
                    out[i].finished_ms = Some(e.at_ms);
                    out[i].outcome = "failed";
                    out[i].failure = Some(failure.to_string());
                    out[i].will_retry = *will_retry;
                }
            }
            Event::StageInterrupted { stage, .. } => {
                if let Some(i) = open_of(&out, stage) {
                    out[i].finished_ms = Some(e.at_ms);
                    out[i].outcome = "interrupted";
                }
            }
            Event::StageReused {
                stage, from_run, ..
            } => out.push(Attempt {
                stage: stage.clone(),
                attempt: 0,
                iteration: iteration.get(stage).copied().unwrap_or(0),
                started_ms: e.at_ms,
                finished_ms: Some(e.at_ms),
                outcome: "reused",
                failure: Some(format!("reused from run {from_run}")),
                will_retry: false,
                model_calls: 0,
                tokens: 0,
                cost_usd: 0.0,
                gates: Vec::new(),
                log_url: None,
            }),
            // Calls are logged as they finish, within their attempt.
            Event::ModelCalled { stage, call, .. } => {
                if let Some(a) = out.iter_mut().rev().find(|a| &a.stage == stage) {
                    a.model_calls += call.count;
                    a.tokens += u64::from(call.input_tokens) + u64::from(call.output_tokens);
                    a.cost_usd += call.cost_usd;
                }
            }
            Event::GateRan {
                stage,
                gate,
                passed,
                reason,
                duration_ms,
                ..
            } => {
                if let Some(a) = out.iter_mut().rev().find(|a| &a.stage == stage) {
                    a.gates.push(json!({"gate": gate, "passed": passed, "reason": reason, "duration_ms": duration_ms}));
                }
            }
            _ => {}
        }
    }
    // Attempts still open in a run nobody executes any more were cut short
    // (the store reads a run whose process is gone as interrupted).
    if run.status != RunStatus::Running {
        for a in out.iter_mut().filter(|a| a.finished_ms.is_none()) {
            a.outcome = "interrupted";
        }
    }
    Ok(out)
}

fn run_detail(store: &Store, run: &RunRecord) -> Answer {
    let stages = store.stages(run).map_err(|e| store_error(&e))?;
    let plan = plan(run);
    let depth = depths(&stages, plan.as_ref());
    let mut edges = Vec::new();
    for s in &stages {
        let spec = plan
            .as_ref()
            .and_then(|p| p.stages.iter().find(|x| x.id == s.stage));
        if let Some(spec) = spec {
            for d in &spec.after {
                edges.push(
                    json!({"from": d.stage, "to": s.stage, "kind": "after", "on": d.on.as_str()}),
                );
            }
            if let Some(l) = &spec.loop_back {
                edges.push(
                    json!({"from": s.stage, "to": l.to, "kind": "loop", "on": l.on, "max": l.max}),
                );
            }
        }
        if let Some(parent) = &s.parent {
            edges.push(json!({"from": parent, "to": s.stage, "kind": "spawn"}));
        }
    }
    let timeline = timeline(store, run)?;
    let mut loops = Vec::new();
    store
        .for_each_event(&run.id, |e| {
            if let Event::LoopedBack {
                from,
                to,
                iteration,
                ..
            } = &e.event
            {
                loops.push(
                    json!({"from": from, "to": to, "iteration": iteration, "at_ms": e.at_ms}),
                );
            }
            Ok(())
        })
        .map_err(|e| store_error(&e))?;
    let stage_json: Vec<Value> = stages
        .iter()
        .map(|s| {
            stage_summary(
                &run.id,
                s,
                plan.as_ref(),
                depth.get(&s.stage).copied().unwrap_or(0),
            )
        })
        .collect();
    Ok(Reply::json(&json!({
        "run": run_summary(run, &stages),
        "task": plan.as_ref().map(|p| &p.task),
        "manifest_path": run.manifest_path,
        "stages": stage_json,
        "edges": edges,
        "loops": loops,
        "retries": timeline.iter().filter(|a| a.will_retry).count(),
        "timeline": timeline,
        "workspace": {
            "changed": stages.iter().map(|s| s.file_changes.len()).sum::<usize>(),
            "applied": applied_json(store, run)?,
            "diff_url": format!("/api/runs/{}/diff", encode(&run.id)),
        },
    })))
}

fn events(store: &Store, run: &RunRecord, query: &Query) -> Answer {
    let after = query.number("after").map_err(|e| Reply::error(400, e))?;
    let mut out = Vec::new();
    store
        .for_each_event(&run.id, |e| {
            if after.is_none_or(|a| e.seq > a) {
                out.push(serde_json::to_value(&e).unwrap_or_default());
            }
            Ok(())
        })
        .map_err(|e| store_error(&e))?;
    Ok(Reply::json(&Value::Array(out)))
}

fn stage_detail(store: &Store, run: &RunRecord, stage: &StageRecord) -> Answer {
    let stages = store.stages(run).map_err(|e| store_error(&e))?;
    let plan = plan(run);
    let depth = depths(&stages, plan.as_ref());
    let spec = plan
        .as_ref()
        .and_then(|p| p.stages.iter().find(|x| x.id == stage.stage));
    let inputs: Vec<Value> = spec
        .map(|s| s.after.clone())
        .unwrap_or_default()
        .iter()
        .filter_map(|d| {
            let up = stages.iter().find(|s| s.stage == d.stage)?;
            Some(json!({
                "stage": up.stage,
                "on": d.on.as_str(),
                "status": up.status.as_str(),
                "summary": up.output.as_ref().map(|o| &o.summary),
                "decision": up.output.as_ref().and_then(|o| o.decision.as_ref()),
                "artifacts": up.output.as_ref().map(|o| artifacts_json(&run.id, &up.stage, o)).unwrap_or_default(),
            }))
        })
        .collect();
    let output = stage.output.as_ref().map(|o| {
        json!({
            "summary": o.summary,
            "decision": o.decision,
            "metrics": o.metrics.iter().map(|(k, v)| json!({"name": k, "value": v})).collect::<Vec<_>>(),
            "artifacts": artifacts_json(&run.id, &stage.stage, o),
            "content_hash": o.content_hash,
        })
    });
    let attempts: Vec<Attempt> = timeline(store, run)?
        .into_iter()
        .filter(|a| a.stage == stage.stage)
        .collect();
    let spec_json = spec.map(|s| {
        json!({
            "plugin": s.plugin,
            "models": s.models,
            "gates": s.gates,
            "workspace": s.workspace.as_str(),
            "timeout_ms": s.timeout.as_millis() as u64,
            "retries": s.retries,
            "config": s.config,
        })
    });
    let mut summary = stage_summary(
        &run.id,
        stage,
        plan.as_ref(),
        depth.get(&stage.stage).copied().unwrap_or(0),
    );
    summary["run"] = json!(run.id);
    summary["feedback"] = json!(stage.feedback);
    summary["cache_key"] = json!(stage.cache_key);
    summary["spec"] = spec_json.unwrap_or(Value::Null);
    summary["inputs"] = Value::Array(inputs);
    summary["output"] = output.unwrap_or(Value::Null);
    summary["model_calls"] = serde_json::to_value(&stage.model_calls).unwrap_or_default();
    summary["gate_runs"] = serde_json::to_value(&stage.gate_runs).unwrap_or_default();
    summary["diff"] = diff(store, &stage.file_changes);
    summary["attempt_timeline"] = serde_json::to_value(&attempts).unwrap_or_default();
    summary["log_url"] = json!(format!(
        "/api/runs/{}/stages/{}/log",
        encode(&run.id),
        encode(&stage.stage)
    ));
    Ok(Reply::json(&summary))
}

fn attempts(store: &Store, run: &RunRecord, stage: &StageRecord) -> Answer {
    let attempts: Vec<Attempt> = timeline(store, run)?
        .into_iter()
        .filter(|a| a.stage == stage.stage)
        .collect();
    Ok(Reply::json(
        &serde_json::to_value(attempts).unwrap_or_default(),
    ))
}

/// A file's diff shown in full up to this; longer ones are cut (the whole
/// one is `host diff RUN STAGE`).
const MAX_PATCH: usize = 64 << 10;

/// Workspace changes with their unified diffs, from the stored blobs.
fn diff(store: &Store, changes: &[FileChange]) -> Value {
    changes
        .iter()
        .map(|c| {
            let kind = c.kind().as_str();
            let mut patch = crate::workspace::diff_text(store, std::slice::from_ref(c))
                .unwrap_or_else(|e| format!("(no diff: {e})"));
            if patch.len() > MAX_PATCH {
                let mut cut = MAX_PATCH;
                while !patch.is_char_boundary(cut) {
                    cut -= 1;
                }
                patch.truncate(cut);
                patch.push_str("\n... (cut: see `host diff`)\n");
            }
            json!({"path": c.path, "change": kind, "before": c.before, "after": c.after, "patch": patch})
        })
        .collect()
}

/// The run's changes folded per file, and whether they were applied.
fn run_diff(store: &Store, run: &RunRecord) -> Answer {
    let changes =
        crate::workspace::run_changes(store, &run.id, None).map_err(|e| store_error(&e))?;
    let applied = applied_json(store, run)?;
    Ok(Reply::json(
        &json!({"changes": diff(store, &changes), "applied": applied}),
    ))
}

fn applied_json(store: &Store, run: &RunRecord) -> Result<Value, Reply> {
    Ok(match store.applied(&run.id).map_err(|e| store_error(&e))? {
        None => Value::Null,
        Some(Applied::Applied { to, at_ms }) => json!({"to": to, "at_ms": at_ms}),
        Some(Applied::Refused { to, conflicts }) => json!({"to": to, "refused": conflicts}),
    })
}

fn artifact(store: &Store, stage: &StageRecord, name: &str) -> Answer {
    let found = stage
        .output
        .as_ref()
        .and_then(|o| o.artifacts.iter().find(|a| a.name == name))
        .ok_or_else(|| {
            Reply::error(
                404,
                format!("stage '{}' has no artifact '{name}'", stage.stage),
            )
        })?;
    let bytes = store
        .blob(&found.hash)
        .map_err(|e| store_error(&e))?
        .ok_or_else(|| {
            Reply::error(
                500,
                format!(
                    "artifact '{name}' ({}) is missing from the store",
                    found.hash
                ),
            )
        })?;
    Ok(Reply {
        status: 200,
        content_type: found.media_type.clone(),
        body: bytes.into(),
        filename: Some(name.to_string()),
    })
}

/// Which attempt's log a request means: `iteration` and `attempt` from the
/// query, each defaulting to the stage's current one.
pub fn chosen_attempt(stage: &StageRecord, query: &Query) -> Result<(u32, u32), Reply> {
    let pick = |name: &str, default: u32| -> Result<u32, Reply> {
        match query.number(name).map_err(|e| Reply::error(400, e))? {
            None => Ok(default),
            Some(n) => u32::try_from(n)
                .map_err(|_| Reply::error(400, format!("query parameter '{name}' is too large"))),
        }
    };
    Ok((
        pick("iteration", stage.iteration)?,
        pick("attempt", stage.attempts.max(1))?,
    ))
}

/// An attempt's log lines from `offset` on. The attempt must be in the
/// event log; its file exists only once it has logged a line, so an attempt
/// that never logged reads as empty.
fn log(dir: &Path, store: &Store, run: &RunRecord, stage: &StageRecord, query: &Query) -> Answer {
    let (iteration, attempt) = chosen_attempt(stage, query)?;
    let offset = query.number("offset").map_err(|e| Reply::error(400, e))?;
    let known = timeline(store, run)?
        .iter()
        .any(|a| a.stage == stage.stage && a.iteration == iteration && a.attempt == attempt);
    if !known {
        return Err(Reply::error(
            404,
            format!(
                "stage '{}' has no attempt {attempt} in iteration {iteration}",
                stage.stage
            ),
        ));
    }
    let path = log_path(dir, &run.id, &stage.stage, iteration, attempt);
    let (lines, next) = read_log(&path, offset.unwrap_or(0))
        .map_err(|e| Reply::error(500, format!("cannot read {}: {e}", path.display())))?;
    Ok(Reply::json(&json!({
        "stage": stage.stage,
        "iteration": iteration,
        "attempt": attempt,
        "running": run.status == RunStatus::Running
            && stage.status.as_str() == "running"
            && stage.iteration == iteration
            && stage.attempts == attempt,
        "lines": lines,
        "next_offset": next,
    })))
}
