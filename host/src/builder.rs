//! Building plugins with the command their manifest entry declares.

use host_manifest::{Pipeline, PluginSpec};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("plugin '{plugin}': cannot start build command `{command}` in {dir}: {source}")]
    Spawn {
        plugin: String,
        command: String,
        dir: String,
        source: std::io::Error,
    },
    #[error("plugin '{plugin}': build command `{command}` failed ({status})")]
    Failed {
        plugin: String,
        command: String,
        status: String,
    },
    #[error("plugin '{plugin}': build command `{command}` succeeded but {wasm} does not exist")]
    NoOutput {
        plugin: String,
        command: String,
        wasm: String,
    },
    #[error("plugin '{plugin}' has no build command and {wasm} does not exist")]
    NotBuildable { plugin: String, wasm: String },
    #[error(
        "plugin '{plugin}': {wasm} does not exist, and --no-build forbids running its build command (`{command}`)"
    )]
    NotBuilt {
        plugin: String,
        wasm: String,
        command: String,
    },
}

impl BuildError {
    /// The plugin whose build failed.
    pub fn plugin(&self) -> &str {
        match self {
            BuildError::Spawn { plugin, .. }
            | BuildError::Failed { plugin, .. }
            | BuildError::NoOutput { plugin, .. }
            | BuildError::NotBuildable { plugin, .. }
            | BuildError::NotBuilt { plugin, .. } => plugin,
        }
    }

    /// The key of `[plugins.NAME]` at fault: the command, or the component
    /// that is missing.
    pub fn key(&self) -> &'static str {
        match self {
            BuildError::Spawn { .. } | BuildError::Failed { .. } => "build",
            BuildError::NoOutput { .. }
            | BuildError::NotBuildable { .. }
            | BuildError::NotBuilt { .. } => "wasm",
        }
    }
}

/// When to run a plugin's build command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildPolicy {
    /// Only when its component file is missing.
    IfMissing,
    /// Always (cargo and friends make this cheap when nothing changed).
    Always,
    /// Never: a missing component is an error.
    Never,
}

/// Plugins used by at least one stage, in name order.
pub fn used_plugins(pipeline: &Pipeline) -> Vec<&PluginSpec> {
    pipeline
        .plugins
        .values()
        .filter(|p| {
            pipeline
                .stages
                .iter()
                .chain(pipeline.templates.values())
                .any(|s| s.plugin == p.name)
        })
        .collect()
}

/// Builds what the policy asks for; returns (plugin, time taken) per build run.
pub fn build_plugins(
    pipeline: &Pipeline,
    policy: BuildPolicy,
) -> Result<Vec<(String, Duration)>, BuildError> {
    let mut built = Vec::new();
    for plugin in used_plugins(pipeline) {
        let needed = match policy {
            BuildPolicy::Always => plugin.build.is_some(),
            BuildPolicy::IfMissing | BuildPolicy::Never => !plugin.wasm.is_file(),
        };
        if !needed {
            continue;
        }
        match (&plugin.build, policy) {
            (None, _) => {
                return Err(BuildError::NotBuildable {
                    plugin: plugin.name.clone(),
                    wasm: plugin.wasm.display().to_string(),
                });
            }
            (Some(build), BuildPolicy::Never) => {
                return Err(BuildError::NotBuilt {
                    plugin: plugin.name.clone(),
                    wasm: plugin.wasm.display().to_string(),
                    command: build.command.join(" "),
                });
            }
            _ => {}
        }
        built.push((plugin.name.clone(), build_plugin(plugin)?));
    }
    Ok(built)
}

/// Runs one plugin's build command; returns how long it took.
pub fn build_plugin(plugin: &PluginSpec) -> Result<Duration, BuildError> {
    let wasm = plugin.wasm.display().to_string();
    let Some(build) = plugin.build.as_ref() else {
        return Err(BuildError::NotBuildable {
            plugin: plugin.name.clone(),
            wasm,
        });
    };
    let command = build.command.join(" ");
    eprintln!("building plugin '{}': {command}", plugin.name);
    let started = Instant::now();
    // Build output goes to stderr so stdout stays the run's own report.
    let status = std::process::Command::new(&build.command[0])
        .args(&build.command[1..])
        // "pipeline.toml" has the parent "": the current directory, which a
        // child process must be given as ".".
        .current_dir(if build.dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            build.dir.as_path()
        })
        .stdin(Stdio::null())
        .stdout(std::io::stderr())
        .status()
        .map_err(|source| BuildError::Spawn {
            plugin: plugin.name.clone(),
            command: command.clone(),
            dir: build.dir.display().to_string(),
            source,
        })?;
    if !status.success() {
        return Err(BuildError::Failed {
            plugin: plugin.name.clone(),
            command,
            status: status.to_string(),
        });
    }
    if !plugin.wasm.is_file() {
        return Err(BuildError::NoOutput {
            plugin: plugin.name.clone(),
            command,
            wasm,
        });
    }
    Ok(started.elapsed())
}
