//! The `inputs` interface (since 0.3.0): a stage reads the bytes it wants of
//! its upstream artifacts. What it may read is the attempt's own input (the
//! upstream stages it was given, by name), never an artifact named by hash,
//! so a stage reaches nothing beyond what the pipeline hands it.

use host_runtime::bindings::orchestrator::stage::inputs::{self as wit, Host};
use host_runtime::{AttemptScope, Capability, Grant, HasGrant, grant_of};
use host_vocab::{ArtifactRef, ArtifactSource};
use std::collections::HashMap;
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker};

/// The most one `read` returns: a larger artifact is read in pieces, so the
/// host never holds more than this of it for a plugin at once.
pub const MAX_READ_BYTES: u32 = 16 << 20;

/// Upstream artifacts, from the run's store.
pub struct InputsCapability {
    source: Arc<dyn ArtifactSource>,
}

impl InputsCapability {
    pub fn new(source: Arc<dyn ArtifactSource>) -> Self {
        InputsCapability { source }
    }
}

impl Capability for InputsCapability {
    type Grant = InputsGrant;
    const INTERFACES: &'static [&'static str] = &["inputs"];
    const GOVERNED_BY: &'static str = "always: the stage's own upstream artifacts";

    fn link<T: HasGrant<InputsGrant>>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        wit::add_to_linker::<T, HasSelf<InputsGrant>>(linker, grant_of)
    }

    fn grant(&self, scope: &AttemptScope<'_>) -> InputsGrant {
        let artifacts = scope
            .inputs
            .iter()
            .flat_map(|u| {
                u.artifacts
                    .iter()
                    .map(|a| ((u.stage_id.clone(), a.name.clone()), a.clone()))
            })
            .collect();
        InputsGrant {
            source: Some(self.source.clone()),
            artifacts,
        }
    }

    fn deny() -> InputsGrant {
        InputsGrant {
            source: None,
            artifacts: HashMap::new(),
        }
    }
}

pub struct InputsGrant {
    source: Option<Arc<dyn ArtifactSource>>,
    /// (upstream stage, artifact name) -> the artifact.
    artifacts: HashMap<(String, String), ArtifactRef>,
}

impl Grant for InputsGrant {}

impl Host for InputsGrant {
    async fn read(
        &mut self,
        stage_id: String,
        name: String,
        offset: u64,
        length: u32,
    ) -> wasmtime::Result<Result<Vec<u8>, String>> {
        if length > MAX_READ_BYTES {
            return Ok(Err(format!(
                "a read of {length} bytes is over the limit of {MAX_READ_BYTES} per call: read in pieces"
            )));
        }
        let key = (stage_id, name);
        let Some(artifact) = self.artifacts.get(&key) else {
            let (stage, name) = key;
            let known = self.artifacts.keys().any(|(s, _)| *s == stage);
            return Ok(Err(if known {
                format!("upstream stage '{stage}' has no artifact '{name}'")
            } else {
                format!("stage '{stage}' is not an upstream stage of this one")
            }));
        };
        if offset >= artifact.size || length == 0 {
            return Ok(Ok(Vec::new()));
        }
        let Some(source) = &self.source else {
            return Ok(Err("no artifacts outside an attempt".into()));
        };
        let (source, hash) = (source.clone(), artifact.hash.clone());
        match tokio::task::block_in_place(|| source.read(&hash, offset, u64::from(length))) {
            Ok(bytes) => Ok(Ok(bytes)),
            // An input the host cannot read is the host's failure, not one
            // the plugin could handle: the attempt stops.
            Err(e) => Err(wasmtime::format_err!(
                "cannot read an upstream artifact: {e}"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{live, pipeline, scope};
    use std::sync::Mutex;

    /// Contents by hash, counting what is read.
    #[derive(Default)]
    struct Blobs {
        content: HashMap<String, Vec<u8>>,
        reads: Mutex<Vec<(u64, u64)>>,
    }

    impl ArtifactSource for Blobs {
        fn read(&self, hash: &str, offset: u64, len: u64) -> Result<Vec<u8>, String> {
            self.reads.lock().unwrap().push((offset, len));
            let bytes = self.content.get(hash).ok_or("missing")?;
            let start = (offset as usize).min(bytes.len());
            let end = (start + len as usize).min(bytes.len());
            Ok(bytes[start..end].to_vec())
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn reads_ranges_of_its_own_inputs_only() {
        let mut blobs = Blobs::default();
        blobs.content.insert("h1".into(), b"0123456789".to_vec());
        let blobs = Arc::new(blobs);
        let cap = InputsCapability::new(blobs.clone());
        let inputs = vec![host_vocab::Upstream {
            stage_id: "up".into(),
            summary: String::new(),
            decision: None,
            artifacts: vec![ArtifactRef {
                name: "a.txt".into(),
                media_type: "text/plain".into(),
                hash: "h1".into(),
                size: 10,
            }],
            metrics: Vec::new(),
        }];
        let (p, _dir) =
            pipeline("[pipeline]\nname='p'\ntask='t'\n[[stage]]\nid='s'\nplugin='a.wasm'\n");
        let live = live();
        let mut s = scope(&p, "s", &live);
        s.inputs = &inputs;
        let mut grant = cap.grant(&s);
        let read = |g: &mut InputsGrant, stage: &str, name: &str, offset, len| {
            let (stage, name) = (stage.to_string(), name.to_string());
            futures_executor(Host::read(g, stage, name, offset, len))
        };
        assert_eq!(
            read(&mut grant, "up", "a.txt", 2, 3).unwrap(),
            Ok(b"234".to_vec())
        );
        assert_eq!(
            read(&mut grant, "up", "a.txt", 8, 100).unwrap(),
            Ok(b"89".to_vec())
        );
        assert_eq!(
            read(&mut grant, "up", "a.txt", 10, 5).unwrap(),
            Ok(Vec::new())
        );
        // Nothing past the end or of length 0 reaches the store.
        assert_eq!(blobs.reads.lock().unwrap().len(), 2);
        let err = read(&mut grant, "up", "b.txt", 0, 1).unwrap().unwrap_err();
        assert!(err.contains("has no artifact 'b.txt'"), "{err}");
        let err = read(&mut grant, "other", "a.txt", 0, 1)
            .unwrap()
            .unwrap_err();
        assert!(err.contains("not an upstream stage"), "{err}");
        let err = read(&mut grant, "up", "a.txt", 0, MAX_READ_BYTES + 1)
            .unwrap()
            .unwrap_err();
        assert!(err.contains("read in pieces"), "{err}");
        // A denied grant (info()) reads nothing.
        let mut denied = InputsCapability::deny();
        assert!(read(&mut denied, "up", "a.txt", 0, 1).unwrap().is_err());
    }

    fn futures_executor<F: std::future::Future>(f: F) -> F::Output {
        tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
    }
}
