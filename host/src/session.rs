//! Everything needed before a pipeline can run: its plugins built, a runtime,
//! every plugin loaded and checked, and its model providers.

use crate::builder::{self, BuildPolicy};
use crate::scheduler::Scheduler;
use host_capabilities::models::ExchangeMode;
use host_capabilities::{Capabilities, LoadedPlugin, Runtime};
use host_manifest::{Diagnostic, Pipeline, Source, locate};
use host_runtime::{Compiling, LoadError};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct SessionOptions {
    pub build: BuildPolicy,
    /// Where compiled components are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
}

/// Each problem with the line of the manifest it comes from: the plugin's
/// `wasm` or `build`, or the stage that names a component by its path.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("error: {at}")]
    Build {
        error: builder::BuildError,
        at: Diagnostic,
    },
    #[error("{}", .0.iter().map(|(_, at)| format!("error: {at}")).collect::<Vec<_>>().join("\n"))]
    Load(Vec<(LoadError, Diagnostic)>),
    #[error("cannot start the runtime: {0}")]
    Runtime(String),
}

/// `message` at `key` of plugin `plugin` in the pipeline's manifest (the
/// file as it is now: the message still names the plugin if it moved).
pub fn at_plugin(pipeline: &Pipeline, plugin: &str, key: &str, message: String) -> Diagnostic {
    match host_manifest::read_manifest(&pipeline.manifest) {
        Ok(text) => {
            let source = Source::new(pipeline.manifest.clone(), text);
            locate::at_plugin_key(&source, plugin, key, message)
        }
        Err(_) => Diagnostic::whole_file(&pipeline.manifest, message),
    }
}

/// Said on stderr before a compile the cache cannot spare: the first load of
/// a component takes seconds (tens for a large one), later ones milliseconds.
pub fn say_compiling(compiling: &Compiling) {
    eprintln!("{}", compiling_message(compiling));
}

fn compiling_message(c: &Compiling) -> String {
    let file = c.path.file_name().map_or_else(
        || c.path.display().to_string(),
        |f| f.to_string_lossy().into_owned(),
    );
    let size = c.size as f64 / f64::from(1 << 20);
    let later = if c.cached_after {
        "later loads take milliseconds"
    } else {
        "the compile cache is off (--no-cache), so every load compiles again"
    };
    let plugin = c
        .plugin
        .as_ref()
        .map_or_else(String::new, |p| format!("plugin '{p}', "));
    format!("compiling {file} ({plugin}{size:.1} MiB) for this machine; {later}")
}

/// A build failure at the plugin's line.
pub fn located_build_error(pipeline: &Pipeline, error: builder::BuildError) -> SessionError {
    let at = at_plugin(pipeline, error.plugin(), error.key(), error.to_string());
    SessionError::Build { error, at }
}

pub struct Session {
    pub runtime: Arc<Runtime>,
    pub plugins: HashMap<String, Arc<LoadedPlugin>>,
}

impl Session {
    /// Builds (per policy) and loads every plugin the pipeline uses, reporting
    /// every plugin that fails to load, not only the first.
    pub async fn open(
        pipeline: &Pipeline,
        options: &SessionOptions,
    ) -> Result<Session, SessionError> {
        builder::build_plugins(pipeline, options.build)
            .map_err(|e| located_build_error(pipeline, e))?;
        let runtime = Runtime::new(options.cache_dir.clone())
            .map_err(|e| SessionError::Runtime(format!("{e:#}")))?
            .on_compile(say_compiling);
        let mut plugins = HashMap::new();
        let mut errors = Vec::new();
        for spec in builder::used_plugins(pipeline) {
            match runtime.load(&spec.name, &spec.wasm).await {
                Ok(p) => {
                    tracing::debug!(plugin = %spec.name, cache = ?p.cache, elapsed = ?p.load_time, "plugin loaded");
                    plugins.insert(spec.name.clone(), Arc::new(p));
                }
                Err(e) => {
                    let at = at_plugin(pipeline, e.plugin(), "wasm", e.to_string());
                    errors.push((e, at));
                }
            }
        }
        if !errors.is_empty() {
            return Err(SessionError::Load(errors));
        }
        Ok(Session {
            runtime: Arc::new(runtime),
            plugins,
        })
    }

    pub fn scheduler(
        &self,
        pipeline: &Pipeline,
        http: reqwest::Client,
        store: Arc<host_store::Store>,
        exchanges: ExchangeMode,
    ) -> Scheduler {
        let capabilities = Capabilities::new(pipeline, http, store.clone(), exchanges);
        Scheduler {
            store,
            runtime: self.runtime.clone(),
            capabilities: Arc::new(capabilities),
            plugins: self.plugins.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compile_message_names_the_file_its_size_and_what_comes_next() {
        let mut c = Compiling {
            plugin: Some("keywords".into()),
            path: PathBuf::from("/x/target/keywords.wasm"),
            size: 18 * (1 << 20) + (1 << 19),
            cached_after: true,
        };
        assert_eq!(
            compiling_message(&c),
            "compiling keywords.wasm (plugin 'keywords', 18.5 MiB) for this machine; later loads take milliseconds"
        );
        c.plugin = None;
        c.cached_after = false;
        assert!(compiling_message(&c).starts_with("compiling keywords.wasm (18.5 MiB) for"));
        assert!(compiling_message(&c).ends_with("so every load compiles again"));
    }
}
