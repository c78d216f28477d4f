//! Everything needed before a pipeline can run: its plugins built, a runtime,
//! every plugin loaded and checked, and its model providers.

use crate::builder::{self, BuildPolicy};
use crate::scheduler::Scheduler;
use host_capabilities::models::ExchangeMode;
use host_capabilities::{Capabilities, LoadedPlugin, Runtime};
use host_manifest::{Diagnostic, Pipeline, Source, locate};
use host_runtime::LoadError;
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
            .map_err(|e| SessionError::Runtime(format!("{e:#}")))?;
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
