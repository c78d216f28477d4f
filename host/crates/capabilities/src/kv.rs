//! The `kv` interface: durable checkpoints scoped to (run, stage). The scope
//! comes from the grant, never from the plugin, so a stage cannot read or
//! overwrite another stage's checkpoints.

use host_runtime::bindings::older_line_names;
use host_runtime::bindings::orchestrator::stage::kv::{self as wit, Host};
use host_runtime::{AttemptScope, Capability, Grant, HasGrant, grant_of};
use host_store::Store;
pub use host_vocab::limits::{
    MAX_KV_KEY_BYTES as MAX_KEY_BYTES, MAX_KV_VALUE_BYTES as MAX_VALUE_BYTES,
};
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker};

/// Checkpoints in the run's store; every stage has its own.
pub struct KvCapability {
    store: Arc<Store>,
}

impl KvCapability {
    pub fn new(store: Arc<Store>) -> Self {
        KvCapability { store }
    }
}

impl Capability for KvCapability {
    type Grant = KvGrant;
    const INTERFACES: &'static [&'static str] = &["kv"];
    const GOVERNED_BY: &'static str = "always: checkpoints private to (run, stage)";

    fn link<T: HasGrant<KvGrant>>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        wit::add_to_linker::<T, HasSelf<KvGrant>>(linker, grant_of)?;
        for name in older_line_names("kv") {
            let mut i = linker.instance(&name)?;
            i.func_wrap_async("get", |mut store, (key,): (String,)| {
                Box::new(async move {
                    let s = grant_of(store.data_mut());
                    Ok((Host::get(s, key).await?,))
                })
            })?;
            i.func_wrap_async("set", |mut store, (key, value): (String, Vec<u8>)| {
                Box::new(async move {
                    let s = grant_of(store.data_mut());
                    Ok((Host::set(s, key, value).await?,))
                })
            })?;
            i.func_wrap_async("delete", |mut store, (key,): (String,)| {
                Box::new(async move {
                    let s = grant_of(store.data_mut());
                    Host::delete(s, key).await
                })
            })?;
            i.func_wrap_async("keys", |mut store, (prefix,): (String,)| {
                Box::new(async move {
                    let s = grant_of(store.data_mut());
                    Ok((Host::keys(s, prefix).await?,))
                })
            })?;
        }
        Ok(())
    }

    fn grant(&self, scope: &AttemptScope<'_>) -> KvGrant {
        KvGrant::new(self.store.clone(), scope.run_id, &scope.stage.id)
    }

    fn deny() -> KvGrant {
        KvGrant::none()
    }
}

impl Grant for KvGrant {}

pub struct KvGrant {
    store: Option<Arc<Store>>,
    run_id: String,
    stage_id: String,
    /// The last write was refused for the quota: a plugin may make room and
    /// write again, but one that writes on regardless is stopped.
    refused: bool,
}

impl KvGrant {
    pub fn new(store: Arc<Store>, run_id: &str, stage_id: &str) -> Self {
        KvGrant {
            store: Some(store),
            run_id: run_id.to_string(),
            stage_id: stage_id.to_string(),
            refused: false,
        }
    }

    /// No store (e.g. while calling `info()`): reads find nothing, writes fail.
    pub fn none() -> Self {
        KvGrant {
            store: None,
            run_id: String::new(),
            stage_id: String::new(),
            refused: false,
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
            Some(Ok(())) => {
                self.refused = false;
                Ok(Ok(()))
            }
            // Refused twice with nothing freed between: the plugin ignores
            // the answer, and the attempt ends on the bound it keeps hitting.
            Some(Err(host_store::StoreError::Quota(hit))) if self.refused => {
                Err(wasmtime::Error::new(hit))
            }
            Some(Err(host_store::StoreError::Quota(hit))) => {
                self.refused = true;
                Ok(Err(hit.to_string()))
            }
            Some(Err(e)) => Err(wasmtime::format_err!("checkpoint store failed: {e}")),
        }
    }

    async fn keys(&mut self, prefix: String) -> wasmtime::Result<Vec<String>> {
        let (run, stage) = (self.run_id.clone(), self.stage_id.clone());
        match self.blocking(|s| s.kv_keys(&run, &stage, &prefix)) {
            None => Ok(Vec::new()),
            Some(Ok(keys)) => Ok(keys),
            Some(Err(e)) => Err(wasmtime::format_err!("checkpoint store failed: {e}")),
        }
    }

    async fn delete(&mut self, key: String) -> wasmtime::Result<()> {
        let (run, stage) = (self.run_id.clone(), self.stage_id.clone());
        match self.blocking(|s| s.kv_delete(&run, &stage, &key)) {
            None => Ok(()),
            Some(Ok(())) => {
                self.refused = false;
                Ok(())
            }
            Some(Err(e)) => Err(wasmtime::format_err!("checkpoint store failed: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{live, pipeline, scope, store};
    use host_vocab::{Bound, LimitReached};

    const TEXT: &str = r#"
[pipeline]
name = "p"
task = "t"

[[stage]]
id = "a"
plugin = "a.wasm"

[[stage]]
id = "b"
plugin = "a.wasm"
"#;

    #[tokio::test(flavor = "multi_thread")]
    async fn checkpoints_are_private_to_the_stage() {
        let (p, _dir) = pipeline(TEXT);
        let (store, _state) = store();
        let cap = KvCapability::new(store);
        let live = live();
        let mut a = cap.grant(&scope(&p, "a", &live));
        let mut b = cap.grant(&scope(&p, "b", &live));
        a.set("k".into(), b"from a".to_vec())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(a.get("k".into()).await.unwrap(), Some(b"from a".to_vec()));
        assert_eq!(
            b.get("k".into()).await.unwrap(),
            None,
            "b cannot read a's key"
        );
        b.delete("k".into()).await.unwrap();
        assert_eq!(
            a.get("k".into()).await.unwrap(),
            Some(b"from a".to_vec()),
            "nor delete it"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn refuses_oversized_keys_and_values() {
        let (p, _dir) = pipeline(TEXT);
        let (store, _state) = store();
        let cap = KvCapability::new(store);
        let live = live();
        let mut a = cap.grant(&scope(&p, "a", &live));
        let long_key = "k".repeat(MAX_KEY_BYTES + 1);
        let err = a.set(long_key, Vec::new()).await.unwrap().unwrap_err();
        assert!(err.contains("key is"), "{err}");
        let big = vec![0u8; MAX_VALUE_BYTES + 1];
        let err = a.set("k".into(), big).await.unwrap().unwrap_err();
        assert!(err.contains("value is"), "{err}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_plugin_that_writes_on_past_its_quota_is_stopped_on_the_bound() {
        let (p, _dir) = pipeline(TEXT);
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path())
            .unwrap()
            .with_kv_quota(host_store::KvQuota {
                stage_bytes: 1_000,
                ..host_store::KvQuota::default()
            });
        let cap = KvCapability::new(Arc::new(store));
        let live = live();
        let mut a = cap.grant(&scope(&p, "a", &live));
        let value = vec![1u8; 400];
        a.set("k0".into(), value.clone()).await.unwrap().unwrap();
        a.set("k1".into(), value.clone()).await.unwrap().unwrap();
        // Refused once: the plugin is told, and may make room.
        let err = a
            .set("k2".into(), value.clone())
            .await
            .unwrap()
            .unwrap_err();
        assert!(err.contains("at most 1000 bytes of checkpoints"), "{err}");
        a.delete("k1".into()).await.unwrap();
        a.set("k2".into(), value.clone()).await.unwrap().unwrap();
        // Refused, then written on regardless: the attempt ends on the bound.
        a.set("k3".into(), value.clone())
            .await
            .unwrap()
            .unwrap_err();
        let trap = a.set("k4".into(), value).await.unwrap_err();
        let hit = trap
            .downcast_ref::<LimitReached>()
            .expect("a reached bound");
        assert_eq!((hit.bound, hit.limit), (Bound::CheckpointBytes, 1_000));
        // Another stage has its own quota.
        let mut b = cap.grant(&scope(&p, "b", &live));
        b.set("k".into(), b"small".to_vec()).await.unwrap().unwrap();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_grant_of_nothing_stores_nothing() {
        let mut none = KvCapability::deny();
        assert!(none.set("k".into(), b"v".to_vec()).await.unwrap().is_err());
        assert_eq!(none.get("k".into()).await.unwrap(), None);
    }
}
