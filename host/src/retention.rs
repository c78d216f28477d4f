//! Letting finished runs go: the store's records and blobs
//! ([`Store::collect`]) and the files a run keeps beside the database (its
//! attempt logs, its copy of the workspace). `host gc` does this on demand;
//! a pipeline's `[pipeline] retention` does it whenever one of its runs
//! ends.

use host_manifest::Pipeline;
use host_store::{Collection, Expiry, Store, StoreError};
use std::path::Path;

/// What removing runs freed (or, dry, would free).
#[derive(Debug, Default, serde::Serialize)]
pub struct Removed {
    #[serde(flatten)]
    pub collection: Collection,
    pub log_bytes: u64,
    pub workspace_bytes: u64,
}

/// Removes the finished runs `ids` and everything only they referenced;
/// with `dry_run`, only counts. A file that cannot be removed is a warning:
/// the records are already gone, and a second `host gc` cannot find it.
pub fn remove_runs(store: &Store, ids: &[String], dry_run: bool) -> Result<Removed, StoreError> {
    let state_dir = store.path().parent().unwrap_or(Path::new("."));
    let collection = store.collect(ids, dry_run)?;
    let mut removed = Removed::default();
    for id in &collection.runs {
        let logs = host_runtime::live::run_log_dir(state_dir, id);
        let tree = host_workspace::run_dir(state_dir, id);
        removed.log_bytes += tree_bytes(&logs);
        removed.workspace_bytes += tree_bytes(&tree);
        if dry_run {
            continue;
        }
        for dir in [logs, tree] {
            if let Err(e) = std::fs::remove_dir_all(&dir)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                crate::style::eprint(format!("warning: cannot remove {}: {e}", dir.display()));
            }
        }
    }
    removed.collection = collection;
    Ok(removed)
}

/// Applies the pipeline's retention, if it has one, after one of its runs
/// ended: its finished runs beyond `keep` or older than `older_than` go.
/// The run that just ended is always the newest, so it stays. Space freed
/// inside the database is reused by later runs; `host gc` compacts.
pub fn apply(store: &Store, pipeline: &Pipeline) -> Result<Option<Removed>, StoreError> {
    let Some(policy) = pipeline.retention else {
        return Ok(None);
    };
    let expiry = Expiry {
        pipeline: Some(pipeline.name.clone()),
        keep: policy.keep,
        older_than_ms: policy.older_than.map(|a| a.ms),
    };
    let ids = store.expired_runs(&expiry, host_vocab::now_ms())?;
    if ids.is_empty() {
        return Ok(None);
    }
    remove_runs(store, &ids, false).map(Some)
}

/// Bytes of the files under `dir` (0 if it is not there). Links are not
/// followed: a run's tree is the host's, but what a plugin left in it is
/// not to be trusted.
pub fn tree_bytes(dir: &Path) -> u64 {
    let Ok(list) = std::fs::read_dir(dir) else {
        return 0;
    };
    list.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_bytes(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}
