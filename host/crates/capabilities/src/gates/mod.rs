//! The `gates` interface: a stage runs, by name, only the gates its grant
//! lists; the command, its arguments, its environment and its directory all
//! come from the manifest.

mod capture;
mod process;

pub use process::run_gate;

use host_manifest::{GateSpec, Pipeline, StageSpec};
use host_runtime::bindings::older_line_names;
use host_runtime::bindings::orchestrator::stage::gates::{
    self as wit, GateError, GateResult, Host,
};
use host_runtime::{AttemptScope, Capability, FilesGuard, Grant, HasGrant, grant_of};
pub use host_vocab::limits::MAX_GATE_RUNS_PER_ATTEMPT;
use host_vocab::{Activity, GateRun};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker};

/// Every gate the pipeline declares. A gate runs in the directory its
/// attempt is given (a private copy of the run's workspace).
pub struct GatesCapability {
    gates: BTreeMap<String, GateSpec>,
}

impl GatesCapability {
    pub fn new(pipeline: &Pipeline) -> Self {
        GatesCapability {
            gates: pipeline.gates.clone(),
        }
    }

    /// The gates `stage` is granted, run in `workspace`.
    pub fn grant(
        &self,
        stage: &StageSpec,
        workspace: Option<&Path>,
        guard: Option<Arc<dyn FilesGuard>>,
    ) -> GatesGrant {
        let granted = stage
            .gates
            .iter()
            .filter_map(|name| self.gates.get(name))
            .map(|g| (g.name.clone(), g.clone()))
            .collect();
        GatesGrant {
            stage_id: stage.id.clone(),
            granted,
            workspace: workspace.map(Path::to_path_buf),
            guard,
            runs: Vec::new(),
        }
    }
}

impl Capability for GatesCapability {
    type Grant = GatesGrant;
    const INTERFACES: &'static [&'static str] = &["gates"];
    const GOVERNED_BY: &'static str = "a stage's `gates` grant";

    fn link<T: HasGrant<GatesGrant>>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        wit::add_to_linker::<T, HasSelf<GatesGrant>>(linker, grant_of)?;
        for name in older_line_names("gates") {
            let mut i = linker.instance(&name)?;
            i.func_wrap_async("run", |mut store, (gate,): (String,)| {
                Box::new(async move {
                    let s = grant_of(store.data_mut());
                    Ok((Host::run(s, gate).await?,))
                })
            })?;
        }
        Ok(())
    }

    fn grant(&self, scope: &AttemptScope<'_>) -> GatesGrant {
        GatesCapability::grant(
            self,
            scope.stage,
            scope.workspace,
            scope.files_guard.clone(),
        )
    }

    fn deny() -> GatesGrant {
        GatesGrant::none("(info)")
    }
}

impl Grant for GatesGrant {
    async fn finish(&mut self, activity: &mut Activity) {
        activity.gate_runs = self.take_runs();
    }
}

pub struct GatesGrant {
    stage_id: String,
    granted: BTreeMap<String, GateSpec>,
    workspace: Option<PathBuf>,
    guard: Option<Arc<dyn FilesGuard>>,
    runs: Vec<GateRun>,
}

impl GatesGrant {
    pub fn none(stage_id: &str) -> Self {
        GatesGrant {
            stage_id: stage_id.to_string(),
            granted: BTreeMap::new(),
            workspace: None,
            guard: None,
            runs: Vec::new(),
        }
    }

    pub fn take_runs(&mut self) -> Vec<GateRun> {
        std::mem::take(&mut self.runs)
    }
}

impl Host for GatesGrant {
    async fn run(&mut self, name: String) -> wasmtime::Result<Result<GateResult, GateError>> {
        let (Some(gate), Some(workspace)) = (self.granted.get(&name), &self.workspace) else {
            let granted: Vec<&str> = self.granted.keys().map(String::as_str).collect();
            return Ok(Err(GateError::NotGranted(format!(
                "stage '{}' is not granted gate '{name}' (granted: {})",
                self.stage_id,
                if granted.is_empty() {
                    "none".to_string()
                } else {
                    granted.join(", ")
                }
            ))));
        };
        if self.runs.len() >= MAX_GATE_RUNS_PER_ATTEMPT {
            return Ok(Err(GateError::LimitExceeded(format!(
                "one attempt may run at most {MAX_GATE_RUNS_PER_ATTEMPT} gates"
            ))));
        }
        // Nothing the plugin left may lead the gate out of the workspace:
        // the attempt ends here instead, with the path that would.
        if let Some(guard) = &self.guard {
            guard.check(&gate.dir).map_err(wasmtime::Error::new)?;
        }
        tracing::info!(stage = %self.stage_id, gate = %name, "running gate");
        let run = run_gate(gate, workspace).await;
        tracing::info!(stage = %self.stage_id, gate = %name, passed = run.passed, "{}", run.reason());
        let result = GateResult {
            name,
            passed: run.passed,
            exit_code: run.exit_code(),
            reason: run.reason(),
            duration_ms: run.duration_ms,
            output: run.output.clone(),
        };
        self.runs.push(run);
        Ok(Ok(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{live, pipeline, scope};

    const TEXT: &str = r#"
[pipeline]
name = "p"
task = "t"
workspace = "ws"

[gates.ok]
command = ["true"]

[gates.bad]
command = ["false"]

[[stage]]
id = "checker"
plugin = "a.wasm"
gates = ["ok", "bad"]

[[stage]]
id = "other"
plugin = "a.wasm"
gates = ["ok"]
"#;

    #[tokio::test(flavor = "multi_thread")]
    async fn runs_only_granted_gates_and_records_each_run() {
        let (p, _dir) = pipeline(TEXT);
        let cap = GatesCapability::new(&p);
        let live = live();
        let mut grant = Capability::grant(&cap, &scope(&p, "other", &live));
        let refused = grant.run("bad".into()).await.unwrap();
        match refused {
            Err(GateError::NotGranted(why)) => {
                assert!(
                    why.contains("'other'") && why.contains("'bad'") && why.contains("ok"),
                    "{why}"
                )
            }
            other => panic!("expected not-granted, got {other:?}"),
        }
        let passed = grant.run("ok".into()).await.unwrap().unwrap();
        assert!(passed.passed);
        let mut activity = Activity::default();
        grant.finish(&mut activity).await;
        assert_eq!(activity.gate_runs.len(), 1, "a refused gate never ran");
        assert_eq!(activity.gate_runs[0].gate, "ok");

        let mut grant = Capability::grant(&cap, &scope(&p, "checker", &live));
        let failed = grant.run("bad".into()).await.unwrap().unwrap();
        assert!(!failed.passed);
        assert_eq!(failed.exit_code, Some(1));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_attempt_runs_at_most_the_limit() {
        let (p, _dir) = pipeline(TEXT);
        let cap = GatesCapability::new(&p);
        let live = live();
        let mut grant = Capability::grant(&cap, &scope(&p, "other", &live));
        for _ in 0..MAX_GATE_RUNS_PER_ATTEMPT {
            grant.run("ok".into()).await.unwrap().unwrap();
        }
        assert!(matches!(
            grant.run("ok".into()).await.unwrap(),
            Err(GateError::LimitExceeded(_))
        ));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_grant_of_nothing_runs_nothing() {
        let mut grant = GatesCapability::deny();
        assert!(matches!(
            grant.run("ok".into()).await.unwrap(),
            Err(GateError::NotGranted(_))
        ));
    }
}
