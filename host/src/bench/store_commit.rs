//! The cost of durable stage transitions: each `stage_started` and
//! `stage_succeeded` is one redb write transaction, committed with fsync.

use super::stats::Summary;
use host_store::{Activity, Owner, RunRecord, RunStatus, Store, StoreError, now_ms};
use host_vocab::{Artifact, Metric, StageOutput};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct CommitFigures {
    /// One commit (a start or a success record).
    pub commit: Summary,
    /// A whole stage: its start and its success, both durable.
    pub stage: Summary,
    /// Per number of concurrent writers: stage transitions per second, and
    /// changes per commit (the batching group commit achieved).
    pub throughput: Vec<(usize, f64, f64)>,
}

fn output(i: usize) -> StageOutput {
    StageOutput {
        summary: format!("stage {i} done"),
        artifacts: vec![Artifact {
            name: "result.txt".into(),
            media_type: "text/plain".into(),
            // Distinct bytes per stage: every commit stores a new blob, as a
            // real stage's would.
            bytes: format!("result of stage {i}\n").repeat(8).into_bytes(),
        }],
        metrics: vec![Metric {
            name: "score".into(),
            value: i as f64,
        }],
        decision: None,
    }
}

/// Changes per commit since `before`.
fn batching(store: &Store, before: host_store::CommitStats) -> f64 {
    let now = store.commit_stats();
    (now.changes - before.changes) as f64 / (now.commits - before.commits).max(1) as f64
}

fn create_run(store: &Store, id: &str, stages: usize) -> Result<Vec<String>, StoreError> {
    let names: Vec<String> = (0..stages).map(|i| format!("s{i:05}")).collect();
    store.create_run(&RunRecord {
        id: id.into(),
        pipeline: "bench".into(),
        manifest_path: "bench.toml".into(),
        manifest_text: String::new(),
        status: RunStatus::Running,
        started_ms: now_ms(),
        finished_ms: None,
        owner: Owner::current(),
        stages: names.clone(),
        options: Default::default(),
    })?;
    Ok(names)
}

/// Runs `stages` start+success pairs one after the other, then the same
/// number spread over each count of concurrent writers in `parallel`.
pub fn measure(dir: &Path, stages: usize, parallel: &[usize]) -> Result<CommitFigures, StoreError> {
    let store = Arc::new(Store::open(dir)?);
    let names = create_run(&store, "serial", stages)?;
    let mut commits = Vec::with_capacity(stages * 2);
    let mut pairs = Vec::with_capacity(stages);
    let before = store.commit_stats();
    let serial_start = Instant::now();
    for (i, stage) in names.iter().enumerate() {
        let t0 = Instant::now();
        store.stage_started("serial", stage, 1, None)?;
        let t1 = Instant::now();
        store.stage_succeeded("serial", stage, 1, &output(i), &[], &Activity::default())?;
        let t2 = Instant::now();
        commits.push(t1 - t0);
        commits.push(t2 - t1);
        pairs.push(t2 - t0);
    }
    let serial_rate = stages as f64 / serial_start.elapsed().as_secs_f64();
    let mut throughput = vec![(1, serial_rate, batching(&store, before))];
    for &writers in parallel.iter().filter(|&&w| w > 1) {
        let run = format!("parallel-{writers}");
        let names = create_run(&store, &run, stages)?;
        let before = store.commit_stats();
        let started = Instant::now();
        let chunks: Vec<Vec<String>> = names
            .chunks(stages.div_ceil(writers))
            .map(<[String]>::to_vec)
            .collect();
        let results: Vec<Result<(), StoreError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = chunks
                .into_iter()
                .map(|chunk| {
                    let (store, run) = (store.clone(), run.as_str());
                    scope.spawn(move || {
                        for (i, stage) in chunk.iter().enumerate() {
                            store.stage_started(run, stage, 1, None)?;
                            store.stage_succeeded(
                                run,
                                stage,
                                1,
                                &output(i),
                                &[],
                                &Activity::default(),
                            )?;
                        }
                        Ok(())
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or(Ok(())))
                .collect()
        });
        for r in results {
            r?;
        }
        let rate = stages as f64 / started.elapsed().as_secs_f64();
        throughput.push((writers, rate, batching(&store, before)));
    }
    let empty = || Summary::of(&[Duration::ZERO]).expect("one sample");
    Ok(CommitFigures {
        commit: Summary::of(&commits).unwrap_or_else(empty),
        stage: Summary::of(&pairs).unwrap_or_else(empty),
        throughput,
    })
}
