//! Spawned jobs: a stage asks for copies of templates it is allowed to spawn
//! by returning a `spawn.json` artifact. The manifest decides what a job may
//! do (its template's plugin, grants and limits); the request only names the
//! template, an id, extra config and extra dependencies.

use host_manifest::{Dependency, StageSpec};
use host_vocab::{Bound, LimitReached, StageFailure, StageOutput};
use serde::Deserialize;

/// The artifact a stage returns to ask for jobs.
pub use host_vocab::output_rules::SPAWN_ARTIFACT;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpawnRequest {
    /// A template the stage lists in `spawns`.
    pub template: String,
    /// Unique among the stage's requests; the job's id is `STAGE.ID`.
    pub id: String,
    /// Merged over the template's config, key by key.
    #[serde(default)]
    pub config: serde_json::Map<String, serde_json::Value>,
    /// Stages (already in the run) the job also waits for.
    #[serde(default)]
    pub after: Vec<String>,
}

fn plain_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The requests in a stage's output; `Err` is the failure of the attempt
/// that made them, so a half-understood request never goes ahead. One
/// output may ask for at most `max` jobs (the run's `max_spawned`).
pub fn requests(
    stage: &StageSpec,
    output: &StageOutput,
    max: usize,
) -> Result<Vec<SpawnRequest>, StageFailure> {
    let Some(artifact) = output.artifacts.iter().find(|a| a.name == SPAWN_ARTIFACT) else {
        return Ok(Vec::new());
    };
    let requests = parse(stage, &artifact.bytes).map_err(|why| StageFailure::Plugin {
        retryable: false,
        message: format!("invalid spawn request: {why}"),
    })?;
    if requests.len() > max {
        return Err(StageFailure::Limit(LimitReached::new(
            Bound::SpawnRequests,
            max,
            format!("stage '{}' asked for {} jobs", stage.id, requests.len()),
        )));
    }
    Ok(requests)
}

fn parse(stage: &StageSpec, bytes: &[u8]) -> Result<Vec<SpawnRequest>, String> {
    let requests: Vec<SpawnRequest> = serde_json::from_slice(bytes)
        .map_err(|e| format!("{SPAWN_ARTIFACT} is not a list of spawn requests: {e}"))?;
    let mut ids = std::collections::BTreeSet::new();
    for r in &requests {
        if !stage.spawns.contains(&r.template) {
            return Err(format!(
                "stage '{}' may not spawn from '{}' (its `spawns`: {})",
                stage.id,
                r.template,
                if stage.spawns.is_empty() {
                    "none".to_string()
                } else {
                    stage.spawns.join(", ")
                }
            ));
        }
        if !plain_id(&r.id) {
            return Err(format!(
                "spawn id '{}' must be 1 to 64 letters, digits, '-' or '_'",
                r.id
            ));
        }
        if !ids.insert(&r.id) {
            return Err(format!("spawn id '{}' is used twice", r.id));
        }
    }
    Ok(requests)
}

/// The job a request asks for: the template under a new id, with merged
/// config. Its dependencies are set by the graph (the parent, then `after`).
pub fn job(parent: &StageSpec, template: &StageSpec, request: &SpawnRequest) -> StageSpec {
    let mut config = template.config.as_object().cloned().unwrap_or_default();
    for (k, v) in &request.config {
        config.insert(k.clone(), v.clone());
    }
    StageSpec {
        id: format!("{}.{}", parent.id, request.id),
        after: vec![Dependency {
            stage: parent.id.clone(),
            on: host_manifest::Condition::Success,
        }],
        config: serde_json::Value::Object(config),
        parent: Some(parent.id.clone()),
        ..template.clone()
    }
}
