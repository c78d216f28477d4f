//! In-process figures for the runtime: a no-op stage's instantiate-and-call,
//! and loading a component whose compiled form is already cached.

use super::stats::Summary;
use host_capabilities::{AttemptSpec, Grants, Runtime};
use host_runtime::{GrantSet, Limits};
use host_vocab::StageInput;
use std::path::Path;
use std::time::{Duration, Instant};

/// Runs faulty's CPU burner `repeats` times under the given limits.
pub async fn burn(
    cache_dir: &Path,
    faulty: &Path,
    rounds: u64,
    repeats: usize,
    limits: Limits,
) -> Result<Summary, String> {
    let runtime = Runtime::with_limits(Some(cache_dir.to_path_buf()), limits)
        .map_err(|e| format!("{e:#}"))?;
    let plugin = runtime
        .load("faulty", faulty)
        .await
        .map_err(|e| e.to_string())?;
    let mut samples = Vec::with_capacity(repeats);
    for i in 0..=repeats {
        let mut spec = spec(i as u32);
        spec.input.config_json = format!(r#"{{"behaviour":{{"burn":{{"rounds":{rounds}}}}}}}"#);
        spec.timeout = Duration::from_secs(600);
        let t = Instant::now();
        let report = runtime.run_attempt(&plugin, spec).await;
        let elapsed = t.elapsed();
        report
            .outcome
            .map_err(|e| format!("the CPU burner failed: {e}"))?;
        // The first run warms caches up; it is not a sample.
        if i > 0 {
            samples.push(elapsed);
        }
    }
    Summary::of(&samples).ok_or_else(|| "no repeats".into())
}

pub(super) fn spec(i: u32) -> AttemptSpec {
    AttemptSpec {
        input: StageInput {
            run_id: "bench".into(),
            stage_id: "noop".into(),
            task: "nothing".into(),
            config_json: "{}".into(),
            inputs: Vec::new(),
            attempt: 1,
            iteration: i,
            feedback: None,
        },
        grants: Grants::deny(),
        timeout: Duration::from_secs(10),
        heartbeat: None,
        max_output: host_vocab::limits::MAX_OUTPUT_BYTES,
        memory_limit: 64 << 20,
        artifacts: None,
        printed: None,
    }
}

/// Instantiates `noop` and calls its `run`, `iterations` times, after a
/// warm-up; fails if the stage does not succeed.
pub async fn call_noop(
    cache_dir: &Path,
    noop: &Path,
    iterations: usize,
) -> Result<Summary, String> {
    let runtime = Runtime::new(Some(cache_dir.to_path_buf())).map_err(|e| format!("{e:#}"))?;
    let plugin = runtime
        .load("noop", noop)
        .await
        .map_err(|e| e.to_string())?;
    for i in 0..50 {
        let report = runtime.run_attempt(&plugin, spec(i)).await;
        report
            .outcome
            .map_err(|e| format!("the no-op stage failed: {e}"))?;
    }
    let mut samples = Vec::with_capacity(iterations);
    for i in 0..iterations {
        let t = Instant::now();
        let report = runtime.run_attempt(&plugin, spec(i as u32)).await;
        samples.push(t.elapsed());
        if let Err(e) = report.outcome {
            return Err(format!("the no-op stage failed: {e}"));
        }
    }
    Summary::of(&samples).ok_or_else(|| "no iterations".into())
}

/// Loads `component` (read, hash, cached compiled code, import checks,
/// `info()`) `iterations` times after one load that fills the cache.
pub async fn cached_load(
    cache_dir: &Path,
    component: &Path,
    iterations: usize,
) -> Result<(Summary, Duration), String> {
    let runtime = Runtime::new(Some(cache_dir.to_path_buf())).map_err(|e| format!("{e:#}"))?;
    let first = Instant::now();
    runtime
        .load("bench", component)
        .await
        .map_err(|e| e.to_string())?;
    let first = first.elapsed();
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let t = Instant::now();
        runtime
            .load("bench", component)
            .await
            .map_err(|e| e.to_string())?;
        samples.push(t.elapsed());
    }
    Summary::of(&samples)
        .map(|s| (s, first))
        .ok_or_else(|| "no iterations".into())
}
