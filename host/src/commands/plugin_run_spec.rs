//! `host plugin run --spec FILE`: the flags of a plugin run, kept in a small
//! TOML file beside the plugin's sources (a template project has one), so a
//! plugin author runs the same attempt again with one word. Flags given on
//! the command line override the file's single values and add to its lists.
//!
//! ```toml
//! stage = "summarise"
//! task = "Summarise the notes"          # or task_file = "task.md"
//! config = { model = "small" }
//! inputs = ["notes=notes.md"]            # NAME=PATH, a file or a directory
//! models = ["small=openai:smollm2@http://127.0.0.1:8088/v1"]
//! sessions = ["chat"]
//! gates = ["tests=python3 -m unittest"]  # needs a workspace
//! workspace = "project"                   # access = "read-only" | "read-write"
//! timeout = "2m"
//! ```

use super::Failure;
use super::plugin_run::PluginRunArgs;
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    stage: Option<String>,
    task: Option<String>,
    task_file: Option<PathBuf>,
    config: Option<toml::Table>,
    #[serde(default)]
    set: Vec<String>,
    #[serde(default)]
    inputs: Vec<String>,
    #[serde(default)]
    models: Vec<String>,
    #[serde(default)]
    sessions: Vec<String>,
    #[serde(default)]
    gates: Vec<String>,
    workspace: Option<PathBuf>,
    access: Option<String>,
    timeout: Option<String>,
}

impl RunSpec {
    /// Reads `path`; an error names the file, line and column.
    pub fn load(path: &Path) -> Result<RunSpec, Failure> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Failure::invalid(format!("--spec: cannot read {}: {e}", path.display()))
        })?;
        toml::from_str(&text).map_err(|e| {
            let at = e
                .span()
                .map(|span| {
                    let before = &text[..span.start.min(text.len())];
                    let line = before.matches('\n').count() + 1;
                    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                    format!(":{line}:{column}")
                })
                .unwrap_or_default();
            Failure::invalid(format!("{}{at}: {}", path.display(), e.message()))
        })
    }

    /// Fills what the command line left unset; lists go first, the flags'
    /// after them. Paths are taken from the file's directory.
    pub fn apply(self, args: &mut PluginRunArgs, file: &Path) -> Result<(), Failure> {
        let base = file.parent().unwrap_or(Path::new("."));
        let at = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let with_path = |spec: String| match spec.split_once('=') {
            Some((name, path)) => format!("{name}={}", at(PathBuf::from(path)).display()),
            None => spec,
        };
        args.stage = args.stage.take().or(self.stage);
        if args.task.is_none() && args.task_file.is_none() {
            args.task = self.task;
            args.task_file = self.task_file.map(at);
        }
        if args.config.is_none()
            && let Some(config) = self.config
        {
            let json = serde_json::to_string(&config)
                .map_err(|e| Failure::invalid(format!("{}: config: {e}", file.display())))?;
            args.config = Some(json);
        }
        merge(&mut args.sets, self.set);
        merge(
            &mut args.inputs,
            self.inputs.into_iter().map(with_path).collect(),
        );
        merge(&mut args.models, self.models);
        merge(&mut args.sessions, self.sessions);
        merge(&mut args.gates, self.gates);
        args.workspace = args.workspace.take().or(self.workspace.map(at));
        args.access = args.access.take().or(self.access);
        args.timeout = args.timeout.take().or(self.timeout);
        Ok(())
    }
}

/// The file's entries, then the flags'; a flag's `NAME=...` replaces the
/// file's entry of the same name (`--model small=...` points the file's
/// alias elsewhere).
fn merge(flags: &mut Vec<String>, from_file: Vec<String>) {
    let name = |entry: &str| entry.split_once('=').map_or(entry, |(n, _)| n).to_string();
    let given: Vec<String> = std::mem::take(flags);
    let named: std::collections::HashSet<String> = given.iter().map(|g| name(g)).collect();
    flags.extend(from_file.into_iter().filter(|f| !named.contains(&name(f))));
    flags.extend(given);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_replaces_the_file_entry_of_its_name_and_adds_the_rest() {
        let mut flags = vec![
            "small=openai:x@http://b".to_string(),
            "judge=openai:y".to_string(),
        ];
        merge(
            &mut flags,
            vec!["small=openai:x@http://a".into(), "large=openai:z".into()],
        );
        assert_eq!(
            flags,
            [
                "large=openai:z",
                "small=openai:x@http://b",
                "judge=openai:y"
            ]
        );
    }
}
