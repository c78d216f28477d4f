//! Running `host` against one state directory: in the foreground, in the
//! background (to kill it at a chosen moment), and reading its events back.

use super::{cache_dir, host, stderr, stdout};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// `host --state-dir STATE ARGS`.
pub fn host_with(state: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut full = vec!["--state-dir", state.to_str().unwrap()];
    full.extend_from_slice(args);
    host(&full)
}

/// Every event of a run, as JSON.
pub fn events(state: &std::path::Path, run: &str) -> Vec<serde_json::Value> {
    let o = host_with(state, &["events", "--json", run]);
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub fn count(events: &[serde_json::Value], kind: &str, stage: &str) -> usize {
    events
        .iter()
        .filter(|e| e["event"] == kind && e["stage"] == stage)
        .count()
}

/// `host run --json MANIFEST` in the background, its events readable line
/// by line as they come (for a test that kills it at a chosen moment).
pub fn spawn_run(
    state: &std::path::Path,
    manifest: &std::path::Path,
    flags: &[&str],
) -> (
    std::process::Child,
    std::io::Lines<BufReader<std::process::ChildStdout>>,
) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_host"))
        .args([
            "--cache-dir",
            cache_dir().to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            "run",
            "--json",
        ])
        .args(flags)
        .arg(manifest)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

/// The run id from the first JSON event line `host run --json` printed.
pub fn run_id_of(stdout_text: &str) -> String {
    let first: serde_json::Value =
        serde_json::from_str(stdout_text.lines().next().expect("run-started line")).unwrap();
    first["run_id"].as_str().unwrap().to_string()
}

/// Every model call the run recorded, from `host status --json`: (stage,
/// call) for each, refusals included.
pub fn recorded_calls(state: &std::path::Path, run: &str) -> Vec<(String, serde_json::Value)> {
    let o = host_with(state, &["status", "--json", run]);
    assert!(o.status.success(), "{}", stderr(&o));
    let status: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let mut out = Vec::new();
    for s in status["stages"].as_array().unwrap() {
        for c in s["model_calls"].as_array().into_iter().flatten() {
            out.push((s["stage"].as_str().unwrap().to_string(), c.clone()));
        }
    }
    out
}

/// Calls the provider was (or may have been) paid for.
pub fn paid(calls: &[(String, serde_json::Value)]) -> usize {
    calls
        .iter()
        .filter(|(_, c)| {
            c["source"] == "provider" && (c["error"].is_null() || c["unsettled"] == true)
        })
        .count()
}
