//! Preflight gates and the workspace.
//!
//! A stage granted gates asks the host to run them by name; the pipeline says
//! what each gate runs. A stage granted the workspace sees it at
//! [`WORKSPACE`] with ordinary `std::fs` calls.

use crate::bindings::orchestrator::stage::gates as wit;
// In a component the host's own functions; anywhere else (a plugin's
// `cargo test`) the test host installed on the thread (crate::testing).
#[cfg(target_arch = "wasm32")]
use crate::bindings::orchestrator::stage::gates as host;
#[cfg(not(target_arch = "wasm32"))]
use crate::testing::gates as host;
use std::path::Path;

pub use wit::GateResult;

/// Where a stage granted the workspace sees it.
pub const WORKSPACE: &str = "/workspace";

/// The workspace directory, when this stage is granted it.
pub fn workspace() -> Option<&'static Path> {
    let path = Path::new(WORKSPACE);
    path.is_dir().then_some(path)
}

/// Why a gate could not be run (a gate that ran and failed is a
/// [`GateResult`] with `passed == false`, not an error).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GateError {
    #[error("gate not granted: {0}")]
    NotGranted(String),
    #[error("too many gate runs: {0}")]
    LimitExceeded(String),
}

impl From<wit::GateError> for GateError {
    fn from(e: wit::GateError) -> Self {
        match e {
            wit::GateError::NotGranted(m) => GateError::NotGranted(m),
            wit::GateError::LimitExceeded(m) => GateError::LimitExceeded(m),
        }
    }
}

impl From<GateError> for crate::StageError {
    fn from(e: GateError) -> Self {
        crate::StageError::Fatal(e.to_string())
    }
}

/// Runs the granted gate `name` and waits for it.
pub fn run(name: &str) -> Result<GateResult, GateError> {
    host::run(name).map_err(GateError::from)
}

/// Runs each gate in order, all of them even after a failure (a verifier
/// wants every problem at once), and returns their results.
pub fn run_all<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Vec<GateResult>, GateError> {
    names.into_iter().map(run).collect()
}

/// A short report of gate results: one line per gate, then the output of
/// each failed gate, for a model to read as feedback.
pub fn report(results: &[GateResult]) -> String {
    let mut out = String::new();
    for r in results {
        let mark = if r.passed { "PASS" } else { "FAIL" };
        out.push_str(&format!(
            "{mark} {}: {} ({} ms)\n",
            r.name, r.reason, r.duration_ms
        ));
    }
    for r in results
        .iter()
        .filter(|r| !r.passed && !r.output.trim().is_empty())
    {
        out.push_str(&format!(
            "\n--- {} output ---\n{}\n",
            r.name,
            r.output.trim_end()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(name: &str, passed: bool, output: &str) -> GateResult {
        GateResult {
            name: name.into(),
            passed,
            exit_code: Some(if passed { 0 } else { 1 }),
            reason: if passed {
                "exit code 0"
            } else {
                "failed with exit code 1"
            }
            .into(),
            duration_ms: 5,
            output: output.into(),
        }
    }

    #[test]
    fn report_lists_every_gate_and_the_output_of_failures() {
        let text = report(&[
            result("ruff", true, "All checks passed!"),
            result("pytest", false, "1 failed"),
        ]);
        assert!(text.starts_with("PASS ruff: exit code 0 (5 ms)\nFAIL pytest"));
        assert!(text.contains("--- pytest output ---\n1 failed"));
        assert!(!text.contains("All checks passed"));
    }
}
