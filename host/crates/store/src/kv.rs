//! Checkpoints scoped to (run, stage).

use super::*;

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

    pub fn kv_set(&self, run: &str, stage: &str, key: &str, value: &[u8]) -> Result<()> {
        self.write(|txn| {
            txn.open_table(KV)?
                .insert((run, stage, key), crate::seal::seal(value).as_slice())?;
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
