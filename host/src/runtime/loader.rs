//! Loading a plugin: read, recognise, compile (or fetch from cache), check
//! its imports and exports against the host's policy, link, and ask `info()`.

use super::cache::CacheOutcome;
use super::policy::{self, PolicyViolation};
use super::{Runtime, StageState};
use crate::bindings::{PluginInfo, StagePre};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A plugin ready to instantiate, cheaply, once per stage attempt.
pub struct LoadedPlugin {
    pub name: String,
    pub path: PathBuf,
    /// blake3 of the component's bytes.
    pub hash: String,
    pub size: u64,
    pub info: PluginInfo,
    pub pre: StagePre<StageState>,
    pub load_time: Duration,
    pub cache: CacheOutcome,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("plugin '{name}': cannot read {path}: {source}")]
    Read {
        name: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("plugin '{name}': {path} is not a WebAssembly file ({reason})")]
    NotWasm {
        name: String,
        path: PathBuf,
        reason: String,
    },
    #[error(
        "plugin '{name}': {path} is a core WebAssembly module, not a component: build it for the wasm32-wasip2 target"
    )]
    CoreModule { name: String, path: PathBuf },
    #[error("plugin '{name}': {path} is not a valid component: {reason}")]
    Invalid {
        name: String,
        path: PathBuf,
        reason: String,
    },
    #[error("plugin '{name}' ({path}) is not acceptable:{}", list(.violations))]
    Policy {
        name: String,
        path: PathBuf,
        violations: Vec<PolicyViolation>,
    },
    #[error("plugin '{name}' ({path}) cannot be linked: {reason}")]
    Link {
        name: String,
        path: PathBuf,
        reason: String,
    },
    #[error("plugin '{name}' ({path}): info() failed: {reason}")]
    Info {
        name: String,
        path: PathBuf,
        reason: String,
    },
}

fn list(violations: &[PolicyViolation]) -> String {
    violations.iter().map(|v| format!("\n  - {v}")).collect()
}

/// Recognises the binary before handing it to the compiler, so the user
/// learns what the file is rather than a parser's complaint.
fn sniff(name: &str, path: &Path, bytes: &[u8]) -> Result<(), LoadError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        let reason = if bytes.is_empty() {
            "the file is empty".into()
        } else {
            "no \\0asm header".to_string()
        };
        return Err(LoadError::NotWasm {
            name: name.into(),
            path: path.into(),
            reason,
        });
    }
    // Bytes 4..8: version 1 with layer 0 is a core module, layer 1 a component.
    if bytes[4..8] == [1, 0, 0, 0] {
        return Err(LoadError::CoreModule {
            name: name.into(),
            path: path.into(),
        });
    }
    Ok(())
}

impl Runtime {
    /// Loads the plugin at `path`. Compilation runs on a blocking thread.
    pub async fn load(&self, name: &str, path: &Path) -> Result<LoadedPlugin, LoadError> {
        let started = Instant::now();
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|source| LoadError::Read {
                name: name.into(),
                path: path.into(),
                source,
            })?;
        sniff(name, path, &bytes)?;
        let hash = blake3::hash(&bytes).to_hex().to_string();
        let engine = self.engine.clone();
        let cache = self.cache.clone();
        let (hash_for_cache, size) = (hash.clone(), bytes.len() as u64);
        let compiled =
            tokio::task::spawn_blocking(move || cache.load(&engine, &bytes, &hash_for_cache))
                .await
                .map_err(|e| LoadError::Invalid {
                    name: name.into(),
                    path: path.into(),
                    reason: format!("compiler thread failed: {e}"),
                })?;
        let (component, cache_outcome) = compiled.map_err(|e| LoadError::Invalid {
            name: name.into(),
            path: path.into(),
            reason: format!("{e:#}"),
        })?;

        let ty = component.component_type();
        let mut violations: Vec<PolicyViolation> = ty
            .imports(&self.engine)
            .filter_map(|(import, _)| policy::check_import(import).err())
            .collect();
        let exports: Vec<String> = ty
            .exports(&self.engine)
            .map(|(export, _)| export.to_string())
            .collect();
        if let Err(v) = policy::check_exports(exports.iter().map(String::as_str)) {
            violations.push(v);
        }
        if !violations.is_empty() {
            return Err(LoadError::Policy {
                name: name.into(),
                path: path.into(),
                violations,
            });
        }

        let instance_pre =
            self.linker
                .instantiate_pre(&component)
                .map_err(|e| LoadError::Link {
                    name: name.into(),
                    path: path.into(),
                    reason: format!("{e:#}"),
                })?;
        let pre = StagePre::new(instance_pre).map_err(|e| LoadError::Link {
            name: name.into(),
            path: path.into(),
            reason: format!("{e:#}"),
        })?;
        let info = self
            .call_info(&pre)
            .await
            .map_err(|reason| LoadError::Info {
                name: name.into(),
                path: path.into(),
                reason,
            })?;
        Ok(LoadedPlugin {
            name: name.to_string(),
            path: path.to_path_buf(),
            hash,
            size,
            info,
            pre,
            load_time: started.elapsed(),
            cache: cache_outcome,
        })
    }
}
