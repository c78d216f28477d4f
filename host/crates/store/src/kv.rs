//! Checkpoints scoped to (run, stage).

use super::*;
use host_vocab::limits::{MAX_KV_KEYS, MAX_KV_STAGE_BYTES};

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

    /// Stores a checkpoint; refused (`StoreError::Quota`) if the stage's
    /// checkpoints would hold more than [`MAX_KV_STAGE_BYTES`] or
    /// [`MAX_KV_KEYS`] keys. Checked in the transaction that writes.
    pub fn kv_set(&self, run: &str, stage: &str, key: &str, value: &[u8]) -> Result<()> {
        self.write(|txn| {
            let mut kv = txn.open_table(KV)?;
            let (mut keys, mut bytes) = (0u64, 0u64);
            for entry in kv.range((run, stage, "")..)? {
                let (k, v) = entry?;
                let (r, s, name) = k.value();
                if r != run || s != stage {
                    break;
                }
                if name == key {
                    // Replaced: only its new size counts.
                    continue;
                }
                keys += 1;
                bytes += (name.len() + v.value().len()) as u64;
            }
            keys += 1;
            bytes += (key.len() + value.len()) as u64;
            if keys > MAX_KV_KEYS || bytes > MAX_KV_STAGE_BYTES {
                return Err(Fault::Store(StoreError::Quota(format!(
                    "checkpoints of stage '{stage}' would hold {keys} keys and {bytes} bytes; the limits are {MAX_KV_KEYS} keys and {MAX_KV_STAGE_BYTES} bytes (delete keys no longer needed)"
                ))));
            }
            kv.insert((run, stage, key), crate::seal::seal(value).as_slice())?;
            Ok(())
        })
    }

    pub fn kv_delete(&self, run: &str, stage: &str, key: &str) -> Result<()> {
        self.write(|txn| {
            txn.open_table(KV)?.remove((run, stage, key))?;
            Ok(())
        })
    }
}
