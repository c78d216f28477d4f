//! `host verify`: the whole state directory checked end to end. Every value
//! of every table is read back against its checksum and decoded as its
//! record, every blob against its hash, and every reference between
//! records (a run's stages, an output's artifacts, a changeset's contents)
//! is followed.

use super::*;
use host_vocab::ChatMessage;
use host_vocab::model_call::{ModelCall, SentCall};
use std::collections::BTreeMap;

/// What `verify` read, and what it found wrong.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Values checked, per table.
    pub checked: BTreeMap<&'static str, u64>,
    /// Each problem, with the table and key it is in.
    pub problems: Vec<String>,
}

impl Verification {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

impl Store {
    /// Checks every record. Damage is reported in the result, one line per
    /// problem, not as an error: only a database that cannot be read at
    /// all is an `Err`.
    pub fn verify(&self) -> Result<Verification> {
        self.read(|txn| {
            let mut v = Verification::default();
            let mut blobs_needed: Vec<(String, String)> = Vec::new();
            let mut run_stages: Vec<(String, Vec<String>)> = Vec::new();
            let mut stage_keys = std::collections::HashSet::new();
            {
                let t = txn.open_table(RUNS)?;
                for e in t.iter()? {
                    let (k, val) = e?;
                    let key = k.value().to_string();
                    match self.decode::<RunRecord>("runs", &key, val.value()) {
                        Ok(r) => run_stages.push((r.id.clone(), r.stages.clone())),
                        Err(e) => v.problems.push(fault_text(e)),
                    }
                    *v.checked.entry("runs").or_default() += 1;
                }
            }
            {
                let t = txn.open_table(STAGES)?;
                for e in t.iter()? {
                    let (k, val) = e?;
                    let (run, stage) = k.value();
                    let key = format!("{run}/{stage}");
                    match self.decode::<StageRecord>("stages", &key, val.value()) {
                        Ok(r) => {
                            if let Some(o) = &r.output {
                                for a in &o.artifacts {
                                    blobs_needed.push((a.hash.clone(), format!("stage {key}: artifact '{}'", a.name)));
                                }
                            }
                        }
                        Err(e) => v.problems.push(fault_text(e)),
                    }
                    stage_keys.insert((run.to_string(), stage.to_string()));
                    *v.checked.entry("stages").or_default() += 1;
                }
            }
            for (run, stages) in &run_stages {
                for s in stages {
                    if !stage_keys.contains(&(run.clone(), s.clone())) {
                        v.problems.push(format!("run {run}: stage '{s}' has no record"));
                    }
                }
            }
            {
                let t = txn.open_table(EVENTS)?;
                for e in t.iter()? {
                    let (k, val) = e?;
                    let (run, seq) = k.value();
                    let key = format!("{run}#{seq}");
                    match self.decode::<EventRecord>("events", &key, val.value()) {
                        Ok(EventRecord {
                            event: Event::WorkspaceChanged { stage, changes, .. },
                            ..
                        }) => {
                            for c in changes {
                                for h in [c.before, c.after].into_iter().flatten() {
                                    blobs_needed.push((h, format!("run {run}, stage {stage}: the contents of {}", c.path)));
                                }
                            }
                        }
                        Ok(_) => {}
                        Err(e) => v.problems.push(fault_text(e)),
                    }
                    *v.checked.entry("events").or_default() += 1;
                }
            }
            {
                let t = txn.open_table(OUTPUTS)?;
                for e in t.iter()? {
                    let (k, val) = e?;
                    let key = k.value().to_string();
                    if let Err(e) = self.decode::<OutputRecord>("outputs", &key, val.value()) {
                        v.problems.push(fault_text(e));
                    }
                    *v.checked.entry("outputs").or_default() += 1;
                }
            }
            {
                let t = txn.open_table(SESSIONS)?;
                for e in t.iter()? {
                    let (k, val) = e?;
                    let (run, name) = k.value();
                    let key = format!("{run}/{name}");
                    if let Err(e) = self.decode::<Vec<ChatMessage>>("sessions", &key, val.value()) {
                        v.problems.push(fault_text(e));
                    }
                    *v.checked.entry("sessions").or_default() += 1;
                }
            }
            for (table, name) in [(CALLS, "calls"), (IN_FLIGHT, "calls_in_flight")] {
                let t = txn.open_table(table)?;
                for e in t.iter()? {
                    let (k, val) = e?;
                    let (run, stage, i, a, n) = k.value();
                    let key = format!("{run}/{stage}/{i}.{a}#{n}");
                    let decoded = if name == "calls" {
                        self.decode::<ModelCall>(name, &key, val.value()).map(|_| ())
                    } else {
                        self.decode::<SentCall>(name, &key, val.value()).map(|_| ())
                    };
                    if let Err(e) = decoded {
                        v.problems.push(fault_text(e));
                    }
                    *v.checked.entry(name).or_default() += 1;
                }
            }
            {
                let t = txn.open_table(KV)?;
                for e in t.iter()? {
                    let (k, val) = e?;
                    let (run, stage, key) = k.value();
                    if let Err(e) = self.unseal("kv", &format!("{run}/{stage}/{key}"), val.value()) {
                        v.problems.push(fault_text(e));
                    }
                    *v.checked.entry("kv").or_default() += 1;
                }
            }
            {
                let t = txn.open_table(RECORDINGS)?;
                for e in t.iter()? {
                    let (k, val) = e?;
                    let (run, stage, request, n) = k.value();
                    let key = format!("{run}/{stage}/{request}/{n}");
                    if let Err(e) = self.unseal("recordings", &key, val.value()) {
                        v.problems.push(fault_text(e));
                    }
                    *v.checked.entry("recordings").or_default() += 1;
                }
            }
            {
                let t = txn.open_table(MODEL_CACHE)?;
                for e in t.iter()? {
                    let (k, val) = e?;
                    if let Err(e) = self.unseal("model_cache", k.value(), val.value()) {
                        v.problems.push(fault_text(e));
                    }
                    *v.checked.entry("model_cache").or_default() += 1;
                }
            }
            let mut present = std::collections::HashSet::new();
            {
                let t = txn.open_table(BLOBS)?;
                for e in t.iter()? {
                    let (k, val) = e?;
                    let hash = k.value();
                    if blobs::artifact_hash(val.value()) != hash {
                        v.problems.push(format!(
                            "blobs record {hash}: the blob is damaged: its content does not match its hash"
                        ));
                    }
                    present.insert(hash.to_string());
                    *v.checked.entry("blobs").or_default() += 1;
                }
            }
            {
                // A chunked blob: every chunk there and matching the index,
                // and the whole matching its hash.
                let tables = blobs::BlobTables::open(txn)?;
                let index = txn.open_table(BLOB_INDEX)?;
                for e in index.iter()? {
                    let (k, _) = e?;
                    let hash = k.value();
                    match self.blob_checked(&tables, hash) {
                        Ok(()) => {}
                        Err(e) => v.problems.push(fault_text(e)),
                    }
                    present.insert(hash.to_string());
                    *v.checked.entry("blobs").or_default() += 1;
                }
            }
            for (hash, whose) in blobs_needed {
                if !present.contains(&hash) {
                    v.problems.push(format!("{whose} is missing (blob {hash})"));
                }
            }
            v.problems.dedup();
            Ok(v)
        })
    }
}

fn fault_text(f: Fault) -> String {
    match f {
        Fault::Store(e) => e.to_string(),
        Fault::Redb(e) => format!("unreadable: {e}"),
    }
}
