//! Checkpoints scoped to (run, stage).

use super::*;
use host_vocab::limits::{MAX_KV_KEYS, MAX_KV_RUN_BYTES, MAX_KV_RUN_KEYS, MAX_KV_STAGE_BYTES};
use host_vocab::{Bound, LimitReached};

/// What checkpoints may hold, per stage and per run of all its stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvQuota {
    pub stage_keys: u64,
    pub stage_bytes: u64,
    pub run_keys: u64,
    pub run_bytes: u64,
}

impl Default for KvQuota {
    fn default() -> Self {
        KvQuota {
            stage_keys: MAX_KV_KEYS,
            stage_bytes: MAX_KV_STAGE_BYTES,
            run_keys: MAX_KV_RUN_KEYS,
            run_bytes: MAX_KV_RUN_BYTES,
        }
    }
}

impl Store {
    pub fn kv_get(&self, run: &str, stage: &str, key: &str) -> Result<Option<Vec<u8>>> {
        self.read(|txn| {
            let kv = txn.open_table(KV)?;
            match kv.get((run, stage, key))? {
                Some(v) => {
                    let at = format!("{run}/{stage}/{key}");
                    Ok(Some(self.unseal("kv", &at, v.value())?.to_vec()))
                }
                None => Ok(None),
            }
        })
    }

    /// The stage's keys that start with `prefix`, in byte order.
    pub fn kv_keys(&self, run: &str, stage: &str, prefix: &str) -> Result<Vec<String>> {
        self.read(|txn| {
            let kv = txn.open_table(KV)?;
            let mut keys = Vec::new();
            for entry in kv.range((run, stage, prefix)..)? {
                let (k, _) = entry?;
                let (r, s, name) = k.value();
                if r != run || s != stage || !name.starts_with(prefix) {
                    break;
                }
                keys.push(name.to_string());
            }
            Ok(keys)
        })
    }

    /// Stores a checkpoint; refused (`StoreError::Quota`) if the stage's
    /// or the run's checkpoints would hold more than the [`KvQuota`] (by
    /// default [`MAX_KV_STAGE_BYTES`] and [`MAX_KV_KEYS`] keys per stage,
    /// [`MAX_KV_RUN_BYTES`] and [`MAX_KV_RUN_KEYS`] per run). Checked in
    /// the transaction that writes; keys count with values.
    pub fn kv_set(&self, run: &str, stage: &str, key: &str, value: &[u8]) -> Result<()> {
        let sealed = crate::seal::seal(value);
        self.write(|txn| {
            let mut kv = txn.open_table(KV)?;
            let mut usage = txn.open_table(KV_USAGE)?;
            let (keys, bytes) = stage_usage(&kv, &usage, run, stage)?;
            let replaced = kv
                .get((run, stage, key))?
                .map(|v| (key.len() + v.value().len()) as u64);
            let added = (key.len() + sealed.len()) as u64;
            let stage_now = (
                keys + u64::from(replaced.is_none()),
                bytes - replaced.unwrap_or(0).min(bytes) + added,
            );
            let mut run_now = stage_now;
            for entry in usage.range((run, "")..)? {
                let (k, v) = entry?;
                let (r, s) = k.value();
                if r != run {
                    break;
                }
                if s != stage {
                    run_now.0 += v.value().0;
                    run_now.1 += v.value().1;
                }
            }
            let q = &self.kv_quota;
            let stage_is = format!("stage '{stage}'");
            let refused = over(stage_now, (q.stage_keys, q.stage_bytes), &stage_is)
                .or_else(|| over(run_now, (q.run_keys, q.run_bytes), "this run"));
            if let Some(hit) = refused {
                return Err(Fault::Store(StoreError::Quota(hit)));
            }
            kv.insert((run, stage, key), sealed.as_slice())?;
            usage.insert((run, stage), stage_now)?;
            Ok(())
        })
    }

    pub fn kv_delete(&self, run: &str, stage: &str, key: &str) -> Result<()> {
        self.write(|txn| {
            let mut kv = txn.open_table(KV)?;
            let mut usage = txn.open_table(KV_USAGE)?;
            let (keys, bytes) = stage_usage(&kv, &usage, run, stage)?;
            let removed = kv
                .remove((run, stage, key))?
                .map(|v| (key.len() + v.value().len()) as u64);
            if let Some(freed) = removed {
                usage.insert(
                    (run, stage),
                    (keys.saturating_sub(1), bytes.saturating_sub(freed)),
                )?;
            }
            Ok(())
        })
    }
}

/// The bound `(keys, bytes)` would pass, if any, in the words of `whose`.
fn over(
    (keys, bytes): (u64, u64),
    (max_keys, max_bytes): (u64, u64),
    whose: &str,
) -> Option<LimitReached> {
    let hit = |bound, limit, counted| {
        LimitReached::new(
            bound,
            limit,
            format!("checkpoints of {whose} would hold {counted} (delete keys no longer needed)"),
        )
    };
    if keys > max_keys {
        Some(hit(Bound::CheckpointKeys, max_keys, format!("{keys} keys")))
    } else if bytes > max_bytes {
        Some(hit(
            Bound::CheckpointBytes,
            max_bytes,
            format!("{bytes} bytes"),
        ))
    } else {
        None
    }
}

/// What a stage's checkpoints hold: its usage row, or (written by a host
/// before the rows) counted from the checkpoints themselves.
fn stage_usage(
    kv: &redb::Table<(&str, &str, &str), &[u8]>,
    usage: &redb::Table<(&str, &str), (u64, u64)>,
    run: &str,
    stage: &str,
) -> Tx<(u64, u64)> {
    if let Some(row) = usage.get((run, stage))? {
        return Ok(row.value());
    }
    let (mut keys, mut bytes) = (0u64, 0u64);
    for entry in kv.range((run, stage, "")..)? {
        let (k, v) = entry?;
        let (r, s, name) = k.value();
        if r != run || s != stage {
            break;
        }
        keys += 1;
        bytes += (name.len() + v.value().len()) as u64;
    }
    Ok((keys, bytes))
}
