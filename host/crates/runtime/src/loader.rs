//! Loading a plugin: read, recognise, compile (or fetch from cache), check
//! its imports and exports against the host's policy, link, and ask `info()`.

use super::cache::CacheOutcome;
use super::capability::GrantSet;
use super::contract::{self, Mismatch};
use super::policy::{self, PolicyViolation};
use super::world::{PluginInfo, PluginPre, WitLine};
use super::{Compiling, Runtime};
use crate::needs::Needs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use wasmtime::component::Component;

/// A plugin ready to instantiate, cheaply, once per stage attempt.
pub struct LoadedPlugin<G: 'static> {
    pub name: String,
    pub path: PathBuf,
    /// blake3 of the component's bytes.
    pub hash: String,
    pub size: u64,
    pub info: PluginInfo,
    /// The orchestrator:stage version its runner was built against.
    pub wit_version: String,
    pub line: WitLine,
    pub pre: PluginPre<G>,
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
    #[error(
        "plugin '{name}' ({path}) does not match this host's contract:{}\n  {}",
        list(.mismatches),
        contract::advice(.mismatches)
    )]
    Contract {
        name: String,
        path: PathBuf,
        mismatches: Vec<Mismatch>,
    },
    #[error("plugin '{name}' ({path}): info() failed: {reason}")]
    Info {
        name: String,
        path: PathBuf,
        reason: String,
    },
}

impl LoadError {
    /// The plugin (its name in the manifest) that did not load.
    pub fn plugin(&self) -> &str {
        match self {
            LoadError::Read { name, .. }
            | LoadError::NotWasm { name, .. }
            | LoadError::CoreModule { name, .. }
            | LoadError::Invalid { name, .. }
            | LoadError::Policy { name, .. }
            | LoadError::Link { name, .. }
            | LoadError::Contract { name, .. }
            | LoadError::Info { name, .. } => name,
        }
    }
}

fn list(items: &[impl std::fmt::Display]) -> String {
    items.iter().map(|v| format!("\n  - {v}")).collect()
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

/// The name a component goes by in [`Runtime::inspect`]: it is no plugin of
/// any pipeline.
const INSPECTED: &str = "(checked)";

impl<G: GrantSet> Runtime<G> {
    /// Reads, checks and compiles (or takes from the cache) the component at
    /// `path`, on a blocking thread; also returns its blake3 and size.
    async fn compile(
        &self,
        name: &str,
        path: &Path,
    ) -> Result<(Component, CacheOutcome, String, u64), LoadError> {
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|source| LoadError::Read {
                name: name.into(),
                path: path.into(),
                source,
            })?;
        sniff(name, path, &bytes)?;
        let hash = blake3::hash(&bytes).to_hex().to_string();
        let size = bytes.len() as u64;
        let (engine, cache, h) = (self.engine.clone(), self.cache.clone(), hash.clone());
        let notice = self.compile_notice.clone().map(|notice| {
            let compiling = Compiling {
                plugin: (name != INSPECTED).then(|| name.to_string()),
                path: path.to_path_buf(),
                size,
                cached_after: self.cache.is_enabled(),
            };
            move || notice(&compiling)
        });
        let compiled = tokio::task::spawn_blocking(move || {
            cache.load(&engine, &bytes, &h, || {
                if let Some(notice) = notice {
                    notice()
                }
            })
        })
        .await
        .map_err(|e| LoadError::Invalid {
            name: name.into(),
            path: path.into(),
            reason: format!("compiler thread failed: {e}"),
        })?;
        let (component, outcome) = compiled.map_err(|e| LoadError::Invalid {
            name: name.into(),
            path: path.into(),
            reason: format!("{e:#}"),
        })?;
        Ok((component, outcome, hash, size))
    }

    /// Loads the plugin at `path`.
    pub async fn load(&self, name: &str, path: &Path) -> Result<LoadedPlugin<G>, LoadError> {
        let started = Instant::now();
        let compiled = self.compile(name, path).await?;
        self.load_compiled(name, path, compiled, started).await
    }

    /// The checks, link and `info()` of a component already compiled.
    async fn load_compiled(
        &self,
        name: &str,
        path: &Path,
        (component, cache_outcome, hash, size): (Component, CacheOutcome, String, u64),
        started: Instant,
    ) -> Result<LoadedPlugin<G>, LoadError> {
        let ty = component.component_type();
        let mut violations: Vec<PolicyViolation> = ty
            .imports(&self.engine)
            .filter_map(|(import, _)| policy::check_import(import, &self.interfaces).err())
            .collect();
        let exports: Vec<String> = ty
            .exports(&self.engine)
            .map(|(export, _)| export.to_string())
            .collect();
        let runner = match policy::check_exports(exports.iter().map(String::as_str)) {
            Ok((runner, line)) => Some((runner.to_string(), line)),
            Err(v) => {
                violations.push(v);
                None
            }
        };
        let Some((runner, line)) = runner.filter(|_| violations.is_empty()) else {
            return Err(LoadError::Policy {
                name: name.into(),
                path: path.into(),
                violations,
            });
        };
        let wit_version = runner
            .split_once('@')
            .map_or_else(String::new, |(_, v)| v.to_string());
        // Before linking: the linker and the bindings would say "expected
        // record of 4 fields, found 5", not which record or what to do.
        let mismatches = contract::mismatches(&self.engine, &ty);
        if !mismatches.is_empty() {
            return Err(LoadError::Contract {
                name: name.into(),
                path: path.into(),
                mismatches,
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
        let pre = PluginPre::new(instance_pre, line, &runner).map_err(|e| LoadError::Link {
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
            wit_version,
            line,
            pre,
            load_time: started.elapsed(),
            cache: cache_outcome,
        })
    }
}

/// What `host plugin check` reports about a component.
#[derive(Debug, serde::Serialize)]
pub struct Inspection {
    pub path: PathBuf,
    pub size: u64,
    pub hash: String,
    /// The `orchestrator:stage` version the component was built against.
    pub wit_version: Option<String>,
    pub imports: Vec<ImportReport>,
    pub exports: Vec<String>,
    /// What `info()` says, or why the component cannot be used.
    pub info: Result<InfoReport, String>,
}

/// A plugin's `info()`.
#[derive(Debug, serde::Serialize)]
pub struct InfoReport {
    pub name: String,
    pub version: String,
    pub description: String,
    /// What it declares it needs; `None`: undeclared (a 0.1 plugin).
    pub capabilities: Option<Needs>,
}

#[derive(Debug, serde::Serialize)]
pub struct ImportReport {
    pub name: String,
    /// `None` when the host provides it; else why it is refused.
    pub refused: Option<String>,
    /// What in the manifest governs it.
    pub governed_by: &'static str,
}

impl<G: GrantSet> Runtime<G> {
    /// What in a pipeline governs an import.
    fn governed_by(&self, import: &str) -> &'static str {
        let (package, iface) = import
            .split('@')
            .next()
            .and_then(|p| p.split_once('/'))
            .unwrap_or((import, ""));
        if package == crate::bindings::WIT_PACKAGE {
            return G::interfaces()
                .into_iter()
                .find(|(name, _)| *name == iface)
                .map_or("always: shared types", |(_, governed)| governed);
        }
        match package {
            "wasi:filesystem" => "a stage's `workspace` grant (else no file system)",
            "wasi:sockets" => "nothing: linked, every address and lookup refused",
            "wasi:http" => "nothing: refused",
            "wasi:cli" | "wasi:io" | "wasi:clocks" | "wasi:random" => {
                "always: no environment or arguments, output captured"
            }
            _ => "nothing: unknown to this host",
        }
    }

    /// Reports what a component is and whether this host can run it.
    pub async fn inspect(&self, path: &Path) -> Result<Inspection, LoadError> {
        let name = INSPECTED;
        let started = Instant::now();
        let compiled = self.compile(name, path).await?;
        let (component, hash, size) = (compiled.0.clone(), compiled.2.clone(), compiled.3);
        let ty = component.component_type();
        let imports: Vec<ImportReport> = ty
            .imports(&self.engine)
            .map(|(import, _)| ImportReport {
                name: import.to_string(),
                refused: policy::check_import(import, &self.interfaces)
                    .err()
                    .map(|v| v.to_string()),
                governed_by: self.governed_by(import),
            })
            .collect();
        let exports: Vec<String> = ty
            .exports(&self.engine)
            .map(|(export, _)| export.to_string())
            .collect();
        let wit_version = imports
            .iter()
            .map(|i| i.name.as_str())
            .chain(exports.iter().map(String::as_str))
            .filter(|n| n.starts_with("orchestrator:stage/"))
            .find_map(|n| n.split_once('@').map(|(_, v)| v.to_string()));
        // The same compiled component: compiled once, even with no cache.
        let info = match self.load_compiled(name, path, compiled, started).await {
            Ok(plugin) => Ok(InfoReport {
                name: plugin.info.name,
                version: plugin.info.version,
                description: plugin.info.description,
                capabilities: plugin.info.capabilities,
            }),
            // Said of the file, not of a plugin of some pipeline.
            Err(e) => {
                let text = e.to_string();
                let named = format!("plugin '{INSPECTED}' ({}) ", path.display());
                let text = text
                    .strip_prefix(&named)
                    .or_else(|| {
                        text.strip_prefix(&format!("plugin '{INSPECTED}' ({}): ", path.display()))
                    })
                    .or_else(|| text.strip_prefix(&format!("plugin '{INSPECTED}': ")))
                    .map_or_else(|| text.clone(), str::to_string);
                Err(text)
            }
        };
        Ok(Inspection {
            path: path.to_path_buf(),
            size,
            hash,
            wit_version,
            imports,
            exports,
            info,
        })
    }
}
