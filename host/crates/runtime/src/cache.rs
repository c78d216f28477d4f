//! Compiled components on disk, keyed by the component's bytes and the
//! engine's configuration, so a component is compiled once per host build.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

pub struct ComponentCache {
    dir: Option<PathBuf>,
    engine_key: String,
}

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded from a precompiled artifact.
    Hit,
    /// Compiled now (and stored for next time, if the cache is enabled).
    Compiled,
}

/// Feeds `Engine::precompile_compatibility_hash` into blake3.
struct Blake3Hasher(blake3::Hasher);

impl Hasher for Blake3Hasher {
    fn finish(&self) -> u64 {
        0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

impl ComponentCache {
    /// A cache in `dir`; `None` disables caching.
    pub fn new(engine: &Engine, dir: Option<PathBuf>) -> Self {
        let mut hasher = Blake3Hasher(blake3::Hasher::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        hasher.0.update(env!("CARGO_PKG_VERSION").as_bytes());
        ComponentCache {
            dir,
            engine_key: hasher.0.finalize().to_hex()[..16].to_string(),
        }
    }

    /// The default location: `$HOST_CACHE_DIR`, else `$XDG_CACHE_HOME/orchestrator-host`,
    /// else `~/.cache/orchestrator-host`.
    pub fn default_dir() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("HOST_CACHE_DIR") {
            return Some(PathBuf::from(dir));
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))?;
        Some(base.join("orchestrator-host"))
    }

    /// Whether compiled components are kept for the next load.
    pub fn is_enabled(&self) -> bool {
        self.dir.is_some()
    }

    /// A component from `bytes` (whose blake3 is `hash`), from the cache when
    /// possible. A damaged cache entry is replaced, never trusted.
    /// `before_compiling` is called once when the cache cannot answer, before
    /// the compile starts (it takes seconds for a large component).
    pub fn load(
        &self,
        engine: &Engine,
        bytes: &[u8],
        hash: &str,
        before_compiling: impl FnOnce(),
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let entry = self
            .dir
            .as_ref()
            .map(|d| d.join(format!("{hash}-{}.cwasm", self.engine_key)));
        if let Some(entry) = &entry
            && entry.is_file()
        {
            // SAFETY: the file was written by `Component::serialize` of an engine
            // with the same compatibility hash (it is in the file name), into a
            // cache directory owned by the user running the host.
            match unsafe { Component::deserialize_file(engine, entry) } {
                Ok(component) => return Ok((component, CacheOutcome::Hit)),
                Err(e) => {
                    tracing::warn!(path = %entry.display(), "ignoring unreadable cache entry: {e:#}")
                }
            }
        }
        before_compiling();
        let component = Component::new(engine, bytes)?;
        if let Some(entry) = &entry
            && let Err(e) = store_atomically(entry, &component)
        {
            tracing::warn!(path = %entry.display(), "could not cache compiled component: {e:#}");
        }
        Ok((component, CacheOutcome::Compiled))
    }
}

fn store_atomically(entry: &Path, component: &Component) -> std::io::Result<()> {
    let dir = entry.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let bytes = component
        .serialize()
        .map_err(|e| std::io::Error::other(format!("{e:#}")))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        entry.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, entry)?;
    Ok(())
}
