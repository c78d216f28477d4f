//! Artifacts stored once by content, stage outputs, the result cache and
//! lineage.

use super::*;
use blobs::artifact_hash;

/// The content hash of an output: what downstream cache keys are built from.
pub(crate) fn output_hash(output: &StageOutput, refs: &[ArtifactRef]) -> String {
    let canonical = serde_json::json!({
        "summary": output.summary,
        "decision": output.decision,
        "metrics": output.metrics.iter().map(|m| (&m.name, m.value)).collect::<Vec<_>>(),
        "artifacts": refs,
    });
    artifact_hash(canonical.to_string().as_bytes())
}

impl Store {
    pub fn cached_output(&self, cache_key: &str) -> Result<Option<OutputRecord>> {
        self.read(|txn| {
            let outputs = txn.open_table(OUTPUTS)?;
            match outputs.get(cache_key)? {
                Some(v) => self.decode("outputs", cache_key, v.value()).map(Some),
                None => Ok(None),
            }
        })
    }

    /// An output with its artifact bytes loaded.
    pub fn load_output(&self, record: &OutputRecord) -> Result<StageOutput> {
        self.load_output_where(record, |_| true)
    }

    /// An output with the bytes of the artifacts a run keeps in memory
    /// (`host_vocab::result::held_in_memory`); the others left out.
    pub fn load_held_output(&self, record: &OutputRecord) -> Result<StageOutput> {
        self.load_output_where(record, |a| {
            host_vocab::result::held_in_memory(&a.name, a.size)
        })
    }

    fn load_output_where(
        &self,
        record: &OutputRecord,
        wanted: impl Fn(&ArtifactRef) -> bool,
    ) -> Result<StageOutput> {
        let mut artifacts = Vec::with_capacity(record.artifacts.len());
        for a in record.artifacts.iter().filter(|a| wanted(a)) {
            let bytes = self.blob(&a.hash)?.ok_or_else(|| StoreError::BadRecord {
                table: "blobs",
                key: a.hash.clone(),
                detail: format!("artifact '{}' is missing", a.name),
            })?;
            artifacts.push(wit::Artifact {
                name: a.name.clone(),
                media_type: a.media_type.clone(),
                bytes,
            });
        }
        Ok(StageOutput {
            summary: record.summary.clone(),
            artifacts,
            metrics: record
                .metrics
                .iter()
                .map(|(name, value)| wit::Metric {
                    name: name.clone(),
                    value: *value,
                })
                .collect(),
            decision: record.decision.clone(),
        })
    }

    /// (run, stage, role, attempt) for every use of an artifact.
    pub fn lineage(&self, hash: &str) -> Result<Vec<(String, String, String, u32)>> {
        self.read(|txn| {
            let lineage = txn.open_table(LINEAGE)?;
            let mut out = Vec::new();
            for entry in lineage.range((hash, "", "", "")..)? {
                let (k, v) = entry?;
                let (h, run, stage, role) = k.value();
                if h != hash {
                    break;
                }
                out.push((
                    run.to_string(),
                    stage.to_string(),
                    role.to_string(),
                    v.value(),
                ));
            }
            Ok(out)
        })
    }
}
