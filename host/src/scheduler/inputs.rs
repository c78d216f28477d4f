//! What a stage gets from the rest of the run: its dependencies' outputs,
//! its result-cache key, and the facts its `when` condition reads.

use host_capabilities::LoadedPlugin;
use host_manifest::when::{Facts, Field, Value};
use host_manifest::{Pipeline, StageSpec};
use host_vocab::FileChange;
use host_vocab::stage_io as wit;
use host_vocab::{StageResult, StageStatus};
use std::collections::HashMap;

/// The result-cache key of a stage attempt: everything its output may depend
/// on. `None` (no reuse) when an input's content is unknown, or when the stage
/// sees the workspace or runs gates: their state is outside the key.
pub fn cache_key(
    pipeline: &Pipeline,
    stage: &StageSpec,
    plugin: &LoadedPlugin,
    upstream: &[&StageResult],
    iteration: u32,
    feedback: Option<&str>,
) -> Option<String> {
    if stage.workspace != host_manifest::WorkspaceAccess::None || !stage.gates.is_empty() {
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
        "wit": host_runtime::bindings::WIT_VERSION,
        "plugin": plugin.hash,
        "config": stage.config,
        "task": pipeline.task,
        "models": models,
        "inputs": inputs?,
        "iteration": iteration,
        "feedback": feedback,
    });
    Some(
        blake3::hash(material.to_string().as_bytes())
            .to_hex()
            .to_string(),
    )
}

/// Name of the artifact the host adds to a read-write stage's output (a
/// plugin's output may not have one of its own: the boundary refuses it).
pub use host_vocab::output_rules::CHANGES_ARTIFACT;

/// Adds the workspace changes to a stage's output, so later stages (and a
/// ship stage) see what changed as an ordinary input.
pub fn attach_changes(output: &mut wit::StageOutput, changes: &[FileChange]) {
    if changes.is_empty() {
        return;
    }
    output.artifacts.retain(|a| a.name != CHANGES_ARTIFACT);
    output.artifacts.push(wit::Artifact {
        name: CHANGES_ARTIFACT.into(),
        media_type: "application/json".into(),
        bytes: serde_json::to_vec_pretty(changes).unwrap_or_default(),
    });
}

/// What a stage receives from its dependencies, in `after` order: each
/// succeeded dependency's output; a failed one (on a `failure` or `always`
/// edge) as its failure, with decision "failed"; a skipped one as its reason,
/// with decision "skipped".
pub fn upstream_inputs(
    deps: &[&str],
    results: &HashMap<String, StageResult>,
) -> Vec<wit::Upstream> {
    deps.iter()
        .filter_map(|&dep| {
            let r = results.get(dep)?;
            let upstream = match (&r.output, r.status) {
                (Some(output), StageStatus::Succeeded) => wit::Upstream {
                    stage_id: dep.to_string(),
                    summary: output.summary.clone(),
                    decision: output.decision.clone(),
                    artifacts: r.artifacts.clone(),
                    metrics: output.metrics.clone(),
                },
                (_, StageStatus::Failed) => wit::Upstream {
                    stage_id: dep.to_string(),
                    summary: r
                        .failure
                        .as_ref()
                        .map_or_else(|| "failed".to_string(), |f| f.to_string()),
                    decision: Some("failed".into()),
                    artifacts: Vec::new(),
                    metrics: Vec::new(),
                },
                (_, StageStatus::Skipped) => wit::Upstream {
                    stage_id: dep.to_string(),
                    summary: r.skip_reason.clone().unwrap_or_default(),
                    decision: Some("skipped".into()),
                    artifacts: Vec::new(),
                    metrics: Vec::new(),
                },
                _ => return None,
            };
            Some(upstream)
        })
        .collect()
}

/// Finished stages as `when` conditions see them.
pub struct ResultFacts<'a>(pub &'a HashMap<String, StageResult>);

impl Facts for ResultFacts<'_> {
    fn get(&self, stage: &str, field: &Field) -> Value {
        let Some(r) = self.0.get(stage) else {
            return Value::Null;
        };
        let output = r.output.as_ref();
        match field {
            Field::Status => Value::Str(
                serde_json::to_value(r.status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
            ),
            Field::Decision => output
                .and_then(|o| o.decision.clone())
                .map_or(Value::Null, Value::Str),
            Field::Summary => output.map_or(Value::Null, |o| Value::Str(o.summary.clone())),
            Field::Metric(name) => output
                .and_then(|o| o.metrics.iter().find(|m| &m.name == name))
                .map_or(Value::Null, |m| Value::Num(m.value)),
            Field::Artifacts => Value::List(r.artifacts.iter().map(|a| a.name.clone()).collect()),
            Field::Changed => Value::List(
                output
                    .and_then(|o| o.artifacts.iter().find(|a| a.name == CHANGES_ARTIFACT))
                    .and_then(|a| serde_json::from_slice::<Vec<FileChange>>(&a.bytes).ok())
                    .map(|changes| changes.into_iter().map(|c| c.path).collect())
                    .unwrap_or_default(),
            ),
        }
    }
}
