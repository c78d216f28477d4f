//! Removing finished runs and everything only they referenced: their
//! records, events, model calls, checkpoints, sessions and recordings, the
//! result-cache entries they produced, and every blob nothing kept still
//! names (a kept run's outputs and changesets, a kept cache entry). Then
//! the file can be compacted, so the space goes back to the disk.

use super::*;
use std::collections::HashSet;

/// What a collection removed (or, dry, would remove).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Collection {
    pub runs: Vec<String>,
    /// Records of every table but blobs.
    pub records: u64,
    pub blobs: u64,
    pub blob_bytes: u64,
}

/// Which finished runs to let go: those beyond the `keep` most recent, and
/// those that started more than `older_than_ms` ago; of one pipeline (by
/// name) or of all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expiry {
    pub pipeline: Option<String>,
    pub keep: Option<usize>,
    pub older_than_ms: Option<u64>,
}

/// Whether a run may be removed: only a finished one can be.
fn removable(run: &RunRecord) -> bool {
    matches!(
        run.status,
        RunStatus::Succeeded | RunStatus::Failed | RunStatus::Escalated
    )
}

impl Store {
    /// The finished runs a retention policy lets go, most recent first. A
    /// running or interrupted (resumable) run is always kept.
    pub fn expired_runs(&self, policy: &Expiry, now_ms: u64) -> Result<Vec<String>> {
        let mut finished: Vec<RunRecord> = self
            .runs()?
            .into_iter()
            .map(RunRecord::observed)
            .filter(removable)
            .filter(|r| policy.pipeline.as_ref().is_none_or(|p| *p == r.pipeline))
            .collect();
        finished.sort_by(|a, b| b.started_ms.cmp(&a.started_ms).then(b.id.cmp(&a.id)));
        Ok(finished
            .iter()
            .enumerate()
            .filter(|(i, r)| {
                policy.keep.is_some_and(|k| *i >= k)
                    || policy
                        .older_than_ms
                        .is_some_and(|age| r.started_ms.saturating_add(age) < now_ms)
            })
            .map(|(_, r)| r.id.clone())
            .collect())
    }

    /// Removes `runs` (each must be finished) and what only they
    /// referenced, in one transaction; with `dry_run` the transaction is
    /// thrown away and only the counts are returned.
    pub fn collect(&self, runs: &[String], dry_run: bool) -> Result<Collection> {
        for id in runs {
            let run = self.run(id)?.observed();
            match run.status {
                RunStatus::Running => {
                    return Err(StoreError::Busy {
                        run: id.clone(),
                        pid: run.owner.pid,
                    });
                }
                RunStatus::Interrupted => return Err(StoreError::NotFinished(id.clone())),
                _ => {}
            }
        }
        let gone: HashSet<&str> = runs.iter().map(String::as_str).collect();
        guard(&self.path, || {
            let txn = self.db.begin_write(&self.path)?;
            let collected = self.collect_in(&txn, &gone).map_err(|e| e.at(&self.path))?;
            let ended = if dry_run {
                txn.abort().map_err(Fault::from)
            } else {
                txn.commit().map_err(Fault::from)
            };
            ended.map_err(|e| e.at(&self.path))?;
            Ok(collected)
        })
    }

    fn collect_in(&self, txn: &redb::WriteTransaction, gone: &HashSet<&str>) -> Tx<Collection> {
        let mut records = 0u64;
        {
            let mut t = txn.open_table(RUNS)?;
            t.retain(|k, _| {
                !gone.contains(k) || {
                    records += 1;
                    false
                }
            })?;
        }
        macro_rules! drop_runs {
            ($table:expr) => {{
                let mut t = txn.open_table($table)?;
                t.retain(|k, _| {
                    !gone.contains(k.0) || {
                        records += 1;
                        false
                    }
                })?;
            }};
        }
        drop_runs!(STAGES);
        drop_runs!(EVENTS);
        drop_runs!(KV);
        drop_runs!(KV_USAGE);
        drop_runs!(RECORDINGS);
        drop_runs!(SESSIONS);
        drop_runs!(CALLS);
        drop_runs!(IN_FLIGHT);
        {
            let mut t = txn.open_table(LINEAGE)?;
            t.retain(|k, _| {
                !gone.contains(k.1) || {
                    records += 1;
                    false
                }
            })?;
        }
        // The result cache: entries the removed runs produced go with them,
        // unless a kept run's stage was served from one (it is that run's
        // result too, and the next run with the same inputs wants it).
        let (kept_keys, stage_blobs) = self.kept_stages(txn)?;
        {
            let mut t = txn.open_table(OUTPUTS)?;
            t.retain(|k, v| {
                let produced_by_gone = self
                    .decode::<OutputRecord>("outputs", k, v)
                    .is_ok_and(|r| gone.contains(r.produced_by.0.as_str()));
                !produced_by_gone || kept_keys.contains(k) || {
                    records += 1;
                    false
                }
            })?;
        }
        let referenced = self.referenced_blobs(txn, stage_blobs)?;
        let (mut blobs, mut blob_bytes) = (0u64, 0u64);
        {
            let mut t = txn.open_table(BLOBS)?;
            t.retain(|k, v| {
                referenced.contains(k) || {
                    blobs += 1;
                    blob_bytes += v.len() as u64;
                    false
                }
            })?;
            let mut index = txn.open_table(BLOB_INDEX)?;
            index.retain(|k, _| {
                referenced.contains(k) || {
                    blobs += 1;
                    false
                }
            })?;
            let mut chunks = txn.open_table(BLOB_CHUNKS)?;
            chunks.retain(|(hash, _), v| {
                referenced.contains(hash) || {
                    blob_bytes += v.len() as u64;
                    false
                }
            })?;
        }
        let mut runs: Vec<String> = gone.iter().map(|s| s.to_string()).collect();
        runs.sort();
        Ok(Collection {
            runs,
            records,
            blobs,
            blob_bytes,
        })
    }

    /// What the stages kept name, read in one pass: their cache keys, and
    /// the blobs of their outputs and changes.
    fn kept_stages(&self, txn: &redb::WriteTransaction) -> Tx<(HashSet<String>, HashSet<String>)> {
        let (mut keys, mut blobs) = (HashSet::new(), HashSet::new());
        for item in txn.open_table(STAGES)?.iter()? {
            let (k, v) = item?;
            let key = format!("{}/{}", k.value().0, k.value().1);
            let record: StageRecord = self.decode("stages", &key, v.value())?;
            if let Some(out) = &record.output {
                blobs.extend(out.artifacts.iter().map(|a| a.hash.clone()));
            }
            add_changes(&record.file_changes, &mut blobs);
            keys.extend(record.cache_key);
        }
        Ok((keys, blobs))
    }

    /// Every blob something kept names: `stage_blobs` (the outputs and
    /// changes of the stage records), the changesets and outputs of the
    /// events (a loop's earlier passes are only there), the result cache.
    fn referenced_blobs(
        &self,
        txn: &redb::WriteTransaction,
        stage_blobs: HashSet<String>,
    ) -> Tx<HashSet<String>> {
        let mut keep = stage_blobs;
        for item in txn.open_table(EVENTS)?.iter()? {
            let (k, v) = item?;
            let key = format!("{}/{}", k.value().0, k.value().1);
            let record: EventRecord = self.decode("events", &key, v.value())?;
            match &record.event {
                Event::WorkspaceChanged { changes: set, .. } => add_changes(set, &mut keep),
                Event::StageSucceeded { artifacts, .. } => {
                    keep.extend(artifacts.iter().map(|a| a.hash.clone()));
                }
                _ => {}
            }
        }
        for item in txn.open_table(OUTPUTS)?.iter()? {
            let (k, v) = item?;
            let record: OutputRecord = self.decode("outputs", k.value(), v.value())?;
            keep.extend(record.artifacts.iter().map(|a| a.hash.clone()));
        }
        Ok(keep)
    }

    /// Gives the space of removed records back to the disk. Only possible
    /// while no other process has the database open: `Ok(false)` then.
    pub fn compact(&mut self) -> Result<bool> {
        let Db::Writable(db) = &mut self.db else {
            return Err(StoreError::ReadOnly {
                path: self.path.clone(),
            });
        };
        match db.compact() {
            Ok(done) => Ok(done),
            Err(redb::CompactionError::TransactionInProgress)
            | Err(redb::CompactionError::PersistentSavepointExists)
            | Err(redb::CompactionError::EphemeralSavepointExists) => Ok(false),
            Err(e) => Err(StoreError::Db {
                path: self.path.clone(),
                detail: format!("cannot compact: {e}"),
            }),
        }
    }
}

/// The blobs both sides of `changes` name.
fn add_changes(changes: &[host_vocab::FileChange], blobs: &mut HashSet<String>) {
    for c in changes {
        blobs.extend(c.before.iter().cloned());
        blobs.extend(c.after.iter().cloned());
    }
}
