//! Helpers for the capabilities' in-process tests: a pipeline from text, an
//! attempt scope for one of its stages, and a store in a temp directory.

use host_manifest::Pipeline;
use host_runtime::AttemptScope;
use host_runtime::live::AttemptLive;
use host_store::Store;
use std::sync::Arc;

/// A valid pipeline from `text`, read as if from a directory holding an
/// (empty) `a.wasm` and a workspace directory `ws`, kept as long as the
/// returned guard.
pub fn pipeline(text: &str) -> (Pipeline, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.wasm"), b"").unwrap();
    std::fs::create_dir(dir.path().join("ws")).unwrap();
    let pipeline = host_manifest::parse(&dir.path().join("pipeline.toml"), text.to_string())
        .unwrap_or_else(|d| panic!("test manifest invalid:\n{d}"));
    (pipeline, dir)
}

/// The live view of an attempt that reports nowhere.
pub fn live() -> Arc<AttemptLive> {
    Arc::new(AttemptLive::detached("test"))
}

/// The scope of attempt 1 of `stage` in run `run-1`.
pub fn scope<'a>(
    pipeline: &'a Pipeline,
    stage: &str,
    live: &'a Arc<AttemptLive>,
) -> AttemptScope<'a> {
    AttemptScope {
        run_id: "run-1",
        stage: pipeline
            .stages
            .iter()
            .find(|s| s.id == stage)
            .unwrap_or_else(|| panic!("no stage {stage}")),
        iteration: 0,
        attempt: 1,
        live,
        workspace: pipeline.workspace.as_deref(),
        kind: host_vocab::AttemptKind::First,
        files_guard: None,
        deadline: std::time::Instant::now() + std::time::Duration::from_secs(600),
        inputs: &[],
    }
}

/// A store in a fresh directory, kept as long as the returned guard.
pub fn store() -> (Arc<Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (Arc::new(store), dir)
}
