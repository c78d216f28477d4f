//! The `kv` interface: durable checkpoints scoped to (run, stage). The scope
//! comes from the grant, never from the plugin, so a stage cannot read or
//! overwrite another stage's checkpoints.

use crate::bindings::orchestrator::stage::kv::Host;
use crate::store::Store;
use std::sync::Arc;

pub const MAX_KEY_BYTES: usize = 256;
pub const MAX_VALUE_BYTES: usize = 16 << 20;

pub struct KvGrant {
    store: Option<Arc<Store>>,
    run_id: String,
    stage_id: String,
}

impl KvGrant {
    pub fn new(store: Arc<Store>, run_id: &str, stage_id: &str) -> Self {
        KvGrant {
            store: Some(store),
            run_id: run_id.to_string(),
            stage_id: stage_id.to_string(),
        }
    }

    /// No store (e.g. while calling `info()`): reads find nothing, writes fail.
    pub fn none() -> Self {
        KvGrant {
            store: None,
            run_id: String::new(),
            stage_id: String::new(),
        }
    }

    /// Runs a blocking store operation without stalling the async executor.
    fn blocking<T>(&self, f: impl FnOnce(&Store) -> T) -> Option<T> {
        let store = self.store.as_ref()?;
        Some(tokio::task::block_in_place(|| f(store)))
    }
}

impl Host for KvGrant {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        let (run, stage) = (self.run_id.clone(), self.stage_id.clone());
        match self.blocking(|s| s.kv_get(&run, &stage, &key)) {
            None => Ok(None),
            Some(Ok(v)) => Ok(v),
            // A checkpoint the host cannot read is a host failure, not
            // something the plugin could handle: stop the attempt.
            Some(Err(e)) => Err(wasmtime::format_err!("checkpoint store failed: {e}")),
        }
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), String>> {
        if key.len() > MAX_KEY_BYTES {
            return Ok(Err(format!(
                "key is {} bytes; the limit is {MAX_KEY_BYTES}",
                key.len()
            )));
        }
        if value.len() > MAX_VALUE_BYTES {
            return Ok(Err(format!(
                "value is {} bytes; the limit is {MAX_VALUE_BYTES}",
                value.len()
            )));
        }
        let (run, stage) = (self.run_id.clone(), self.stage_id.clone());
        match self.blocking(|s| s.kv_set(&run, &stage, &key, &value)) {
            None => Ok(Err("no checkpoint store outside a run".into())),
            Some(Ok(())) => Ok(Ok(())),
            Some(Err(e)) => Err(wasmtime::format_err!("checkpoint store failed: {e}")),
        }
    }

    async fn delete(&mut self, key: String) -> wasmtime::Result<()> {
        let (run, stage) = (self.run_id.clone(), self.stage_id.clone());
        match self.blocking(|s| s.kv_delete(&run, &stage, &key)) {
            None | Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(wasmtime::format_err!("checkpoint store failed: {e}")),
        }
    }
}
