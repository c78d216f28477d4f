//! `host dev PIPELINE.toml`: runs the pipeline, then watches the manifest,
//! each plugin's sources (its `watch` list) and its component file. On a
//! change it rebuilds what changed, reloads components without restarting,
//! and runs again: stages whose plugin, config and inputs did not change come
//! from the result cache, so only the changed stage and what depends on it
//! run (and no upstream model call is paid again). A manifest that no longer
//! validates, a failed build or a component that does not load is reported,
//! and the last good version keeps serving.

use super::run::{NewRun, start_new_run};
use super::{Exit, Failure, Globals, Outcome, OutputFlags, parse_duration};
use host::builder::{self, BuildPolicy};
use host::capabilities::{LoadedPlugin, Runtime};
use host::lifecycle::manifest_key;
use host::manifest::{self, Pipeline};
use host::session::{Session, at_plugin, located_build_error};
use host::store::{RunOptions, Store};
use notify::{RecursiveMode, Watcher};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

#[derive(clap::Args)]
pub struct DevArgs {
    /// The pipeline file (watched, with its plugins).
    pipeline: PathBuf,
    /// Stop after this many runs.
    #[arg(long, value_name = "N")]
    runs: Option<usize>,
    /// Quiet time after a change before acting on it.
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    debounce: Duration,
    #[command(flatten)]
    output: OutputFlags,
}

impl DevArgs {
    pub fn is_quiet(&self) -> bool {
        self.output.quiet
    }
}

/// What a change touched.
#[derive(Debug, Default)]
struct Changes {
    manifest: bool,
    /// Plugins whose sources changed: rebuild them.
    sources: BTreeSet<String>,
    /// Plugins whose component file changed: reload them.
    components: BTreeSet<String>,
}

impl Changes {
    fn is_empty(&self) -> bool {
        !self.manifest && self.sources.is_empty() && self.components.is_empty()
    }
}

/// In sentences: "changed: the manifest; the sources of plugin 'a'
/// (rebuilding it); the component of plugin 'b' (reloading it)".
impl std::fmt::Display for Changes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if self.manifest {
            parts.push("the manifest".to_string());
        }
        for name in &self.sources {
            parts.push(format!("the sources of plugin '{name}' (rebuilding it)"));
        }
        for name in self.components.difference(&self.sources) {
            parts.push(format!("the component of plugin '{name}' (reloading it)"));
        }
        write!(f, "changed: {}", parts.join("; "))
    }
}

fn classify(paths: &[PathBuf], manifest: &Path, pipeline: Option<&Pipeline>) -> Changes {
    let mut c = Changes::default();
    let manifest = std::path::absolute(manifest).unwrap_or_else(|_| manifest.to_path_buf());
    for path in paths {
        if path == &manifest {
            c.manifest = true;
        }
        let Some(p) = pipeline else { continue };
        for plugin in builder::used_plugins(p) {
            let wasm = std::path::absolute(&plugin.wasm).unwrap_or_else(|_| plugin.wasm.clone());
            if path == &wasm {
                c.components.insert(plugin.name.clone());
            }
            if let Some(build) = &plugin.build
                && build
                    .watch
                    .iter()
                    .any(|w| path.starts_with(std::path::absolute(w).unwrap_or_else(|_| w.clone())))
            {
                c.sources.insert(plugin.name.clone());
            }
        }
    }
    c
}

/// Points the watcher at the manifest's directory, each component's
/// directory and each plugin's sources. Directories, not files: editors and
/// build tools replace files rather than write them in place.
fn rewatch(
    watcher: &mut notify::RecommendedWatcher,
    manifest: &Path,
    pipeline: Option<&Pipeline>,
    watched: &mut BTreeSet<(PathBuf, bool)>,
) {
    let mut wanted = BTreeSet::new();
    let dir_of = |p: &Path| {
        std::path::absolute(p)
            .unwrap_or_else(|_| p.to_path_buf())
            .parent()
            .map(Path::to_path_buf)
    };
    if let Some(d) = dir_of(manifest) {
        wanted.insert((d, false));
    }
    if let Some(p) = pipeline {
        for plugin in builder::used_plugins(p) {
            if let Some(d) = dir_of(&plugin.wasm) {
                wanted.insert((d, false));
            }
            for w in plugin.build.iter().flat_map(|b| &b.watch) {
                if w.exists() {
                    wanted.insert((std::path::absolute(w).unwrap_or_else(|_| w.clone()), true));
                }
            }
        }
    }
    for (path, _) in watched.difference(&wanted) {
        let _ = watcher.unwatch(path);
    }
    for (path, recursive) in wanted.difference(watched) {
        let mode = if *recursive {
            RecursiveMode::Recursive
        } else {
            RecursiveMode::NonRecursive
        };
        if let Err(e) = watcher.watch(path, mode) {
            host::style::eprint(format!("warning: cannot watch {}: {e}", path.display()));
        }
    }
    *watched = wanted;
}

/// Waits for the next change, then gathers what else changes within the
/// debounce window (a build writes many files).
async fn next_changes(
    rx: &mut mpsc::UnboundedReceiver<notify::Result<notify::Event>>,
    debounce: Duration,
) -> Option<Vec<PathBuf>> {
    let mut paths = Vec::new();
    let first = rx.recv().await?;
    let mut take = |e: notify::Result<notify::Event>| {
        if let Ok(event) = e
            && !matches!(event.kind, notify::EventKind::Access(_))
        {
            paths.extend(event.paths);
        }
    };
    take(first);
    let until = tokio::time::Instant::now() + debounce;
    while let Ok(Some(e)) = tokio::time::timeout_at(until, rx.recv()).await {
        take(e);
    }
    Some(paths)
}

/// Loads every plugin the pipeline uses; one that does not load keeps its
/// previous version (if there is one), with the error reported.
async fn load_plugins(
    runtime: &Arc<Runtime>,
    pipeline: &Pipeline,
    previous: &HashMap<String, Arc<LoadedPlugin>>,
) -> Option<HashMap<String, Arc<LoadedPlugin>>> {
    let mut plugins = HashMap::new();
    let mut complete = true;
    for spec in builder::used_plugins(pipeline) {
        match runtime.load(&spec.name, &spec.wasm).await {
            Ok(p) => {
                plugins.insert(spec.name.clone(), Arc::new(p));
            }
            Err(e) => {
                let at = at_plugin(pipeline, &spec.name, "wasm", e.to_string());
                match previous.get(&spec.name) {
                    Some(old) => {
                        host::style::eprint(format!(
                            "error: {at}\n  keeping the previous version of plugin '{}'",
                            spec.name
                        ));
                        plugins.insert(spec.name.clone(), old.clone());
                    }
                    None => {
                        host::style::eprint(format!("error: {at}"));
                        complete = false;
                    }
                }
            }
        }
    }
    complete.then_some(plugins)
}

pub async fn dev(globals: &Globals, args: DevArgs) -> Outcome {
    let output = args.output.mode();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |e| {
        let _ = tx.send(e);
    })
    .map_err(|e| Failure::host(format!("cannot watch files: {e}")))?;
    let runtime = Arc::new(
        Runtime::new(globals.cache_dir.clone())
            .map_err(|e| Failure::host(format!("cannot start the runtime: {e:#}")))?
            .on_compile(host::session::say_compiling),
    );
    let mut watched = BTreeSet::new();
    let mut good: Option<(Pipeline, String)> = None;
    let mut plugins: HashMap<String, Arc<LoadedPlugin>> = HashMap::new();
    let mut store: Option<Arc<Store>> = None;
    let mut changes = Changes {
        manifest: true,
        ..Changes::default()
    };
    let mut runs = 0;
    let mut last_exit = Exit::Success;
    // What the last run saw: the manifest text and every component's hash.
    // A change that leaves it equal (a broken component kept at its old
    // version, an invalid manifest) does not start a run.
    let mut last_seen: Option<(String, Vec<(String, String)>)> = None;
    loop {
        let step = Instant::now();
        if changes.manifest {
            let read = manifest::read_manifest(&args.pipeline)
                .and_then(|text| manifest::parse(&args.pipeline, text.clone()).map(|p| (p, text)));
            match read {
                Ok(ok) => good = Some(ok),
                // Nothing to wait for: a mistyped path never becomes valid
                // by itself (an invalid file is the one being edited).
                Err(d) if runs == 0 && good.is_none() && !args.pipeline.is_file() => {
                    host::style::eprint(&d);
                    return Err(Failure::Reported(Exit::InvalidInput));
                }
                Err(d) => {
                    host::style::eprint(&d);
                    if good.is_some() {
                        eprintln!("the manifest does not validate: keeping the last good version");
                    }
                }
            }
        }
        rewatch(
            &mut watcher,
            &args.pipeline,
            good.as_ref().map(|g| &g.0),
            &mut watched,
        );
        let Some((pipeline, text)) = good.clone() else {
            eprintln!("waiting for a valid {}", args.pipeline.display());
            match next_changes(&mut rx, args.debounce).await {
                Some(paths) => changes = classify(&paths, &args.pipeline, None),
                None => return Err(Failure::Reported(Exit::HostError)),
            }
            changes.manifest = true;
            continue;
        };
        let mut ok = true;
        let first = runs == 0;
        if first && let Err(e) = builder::build_plugins(&pipeline, BuildPolicy::IfMissing) {
            host::style::eprint(located_build_error(&pipeline, e));
            ok = false;
        }
        for name in &changes.sources {
            if let Some(spec) = pipeline.plugins.get(name).filter(|s| s.build.is_some()) {
                match builder::build_plugin(spec) {
                    Ok(took) => eprintln!("rebuilt plugin '{name}' in {:.2}s", took.as_secs_f64()),
                    Err(e) => host::style::eprint(format!(
                        "{}\n  keeping the previous version",
                        located_build_error(&pipeline, e)
                    )),
                }
            }
        }
        if ok {
            match load_plugins(&runtime, &pipeline, &plugins).await {
                Some(loaded) => plugins = loaded,
                None => ok = false,
            }
        }
        if ok && store.is_none() {
            store = Some(Arc::new(globals.open_store(Some(&pipeline))?));
        }
        let seen = (text.clone(), {
            let mut hashes: Vec<(String, String)> = plugins
                .iter()
                .map(|(name, p)| (name.clone(), p.hash.clone()))
                .collect();
            hashes.sort();
            hashes
        });
        if ok && last_seen.as_ref() == Some(&seen) {
            eprintln!("dev: nothing a run would see has changed");
            ok = false;
        }
        if let (true, Some(store)) = (ok, &store) {
            last_seen = Some(seen);
            let session = Session {
                runtime: runtime.clone(),
                plugins: plugins.clone(),
            };
            eprintln!(
                "dev: {} in {:.2}s; running",
                if first { "loaded" } else { "reloaded" },
                step.elapsed().as_secs_f64()
            );
            let options = RunOptions::default();
            let outcome = start_new_run(
                &pipeline,
                NewRun {
                    key: manifest_key(&args.pipeline),
                    text,
                    options: &options,
                    fresh: false,
                    out: None,
                    output,
                },
                &session,
                store.clone(),
            )
            .await;
            // A run that could not start is reported; the loop goes on.
            last_exit = outcome.unwrap_or_else(Failure::report);
            runs += 1;
            if args.runs.is_some_and(|n| runs >= n) {
                return Ok(last_exit);
            }
        }
        eprintln!("dev: watching for changes (Ctrl-C to stop)");
        loop {
            let paths = tokio::select! {
                paths = next_changes(&mut rx, args.debounce) => paths,
                _ = tokio::signal::ctrl_c() => return Ok(last_exit),
            };
            let Some(paths) = paths else {
                return Ok(last_exit);
            };
            changes = classify(&paths, &args.pipeline, good.as_ref().map(|g| &g.0));
            if !changes.is_empty() {
                eprintln!("dev: {changes}");
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_told_in_words() {
        let changes = Changes {
            manifest: true,
            sources: ["a".to_string()].into(),
            components: ["a".to_string(), "b".to_string()].into(),
        };
        assert_eq!(
            changes.to_string(),
            "changed: the manifest; the sources of plugin 'a' (rebuilding it); \
             the component of plugin 'b' (reloading it)"
        );
    }
}
