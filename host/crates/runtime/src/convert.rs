//! The component boundary: the WIT `types` records as the generated
//! bindings have them, to and from the plain data every other layer uses.

use crate::bindings::orchestrator::stage::types as wit;
use crate::world::{EagerInput, EagerUpstream};
use host_vocab::stage_io as plain;

impl From<wit::Artifact> for plain::Artifact {
    fn from(a: wit::Artifact) -> Self {
        plain::Artifact {
            name: a.name,
            media_type: a.media_type,
            bytes: a.bytes,
        }
    }
}

impl From<plain::Artifact> for wit::Artifact {
    fn from(a: plain::Artifact) -> Self {
        wit::Artifact {
            name: a.name,
            media_type: a.media_type,
            bytes: a.bytes,
        }
    }
}

impl From<wit::Metric> for plain::Metric {
    fn from(m: wit::Metric) -> Self {
        plain::Metric {
            name: m.name,
            value: m.value,
        }
    }
}

impl From<plain::Metric> for wit::Metric {
    fn from(m: plain::Metric) -> Self {
        wit::Metric {
            name: m.name,
            value: m.value,
        }
    }
}

impl From<plain::ArtifactRef> for wit::ArtifactRef {
    fn from(a: plain::ArtifactRef) -> Self {
        wit::ArtifactRef {
            name: a.name,
            media_type: a.media_type,
            size: a.size,
            hash: a.hash,
        }
    }
}

impl From<plain::Upstream> for wit::Upstream {
    fn from(u: plain::Upstream) -> Self {
        wit::Upstream {
            stage_id: u.stage_id,
            summary: u.summary,
            decision: u.decision,
            artifacts: u.artifacts.into_iter().map(Into::into).collect(),
            metrics: u.metrics.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<plain::StageInput> for wit::StageInput {
    fn from(i: plain::StageInput) -> Self {
        wit::StageInput {
            run_id: i.run_id,
            stage_id: i.stage_id,
            task: i.task,
            config_json: i.config_json,
            inputs: i.inputs.into_iter().map(Into::into).collect(),
            attempt: i.attempt,
            iteration: i.iteration,
            feedback: i.feedback,
        }
    }
}

/// The input of a plugin of an older line: every upstream artifact's bytes
/// read from `source`, as those lines take them.
pub fn eager_input(
    i: plain::StageInput,
    source: Option<&dyn plain::ArtifactSource>,
) -> Result<EagerInput, String> {
    let mut inputs = Vec::with_capacity(i.inputs.len());
    for u in i.inputs {
        let mut artifacts = Vec::with_capacity(u.artifacts.len());
        for a in u.artifacts {
            let bytes = match source {
                Some(source) => source.read(&a.hash, 0, a.size).map_err(|e| {
                    format!(
                        "cannot read artifact '{}' of stage '{}': {e}",
                        a.name, u.stage_id
                    )
                })?,
                None if a.size == 0 => Vec::new(),
                None => return Err(format!("no store to read artifact '{}' from", a.name)),
            };
            artifacts.push(wit::Artifact {
                name: a.name,
                media_type: a.media_type,
                bytes,
            });
        }
        inputs.push(EagerUpstream {
            stage_id: u.stage_id,
            summary: u.summary,
            decision: u.decision,
            artifacts,
            metrics: u.metrics.into_iter().map(Into::into).collect(),
        });
    }
    Ok(EagerInput {
        run_id: i.run_id,
        stage_id: i.stage_id,
        task: i.task,
        config_json: i.config_json,
        inputs,
        attempt: i.attempt,
        iteration: i.iteration,
        feedback: i.feedback,
    })
}

impl From<wit::StageOutput> for plain::StageOutput {
    fn from(o: wit::StageOutput) -> Self {
        plain::StageOutput {
            summary: o.summary,
            artifacts: o.artifacts.into_iter().map(Into::into).collect(),
            metrics: o.metrics.into_iter().map(Into::into).collect(),
            decision: o.decision,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_survives_the_boundary() {
        let out = wit::StageOutput {
            summary: "s".into(),
            artifacts: vec![wit::Artifact {
                name: "a".into(),
                media_type: "text/plain".into(),
                bytes: b"x".to_vec(),
            }],
            metrics: vec![wit::Metric {
                name: "m".into(),
                value: 1.5,
            }],
            decision: Some("d".into()),
        };
        let plain: plain::StageOutput = out.into();
        assert_eq!(plain.summary, "s");
        assert_eq!(plain.artifacts[0].bytes, b"x");
        assert_eq!(plain.metrics[0].value, 1.5);
        assert_eq!(plain.decision.as_deref(), Some("d"));
    }
}
