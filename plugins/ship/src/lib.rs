//! Ship: for a change that touches docs, a public API or configuration (the
//! pipeline's `when` decides), adds a CHANGELOG.md entry written by a model
//! and refreshes README.md's marked changes block. A bad answer falls back to
//! an entry made from the task.

use plugin_helpers::text;
use plugin_sdk::models;
use plugin_sdk::prelude::*;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Config {
    model: String,
    max_tokens: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            model: String::new(),
            max_tokens: 120,
        }
    }
}

const BEGIN: &str = "<!-- ship:changes -->";
const END: &str = "<!-- /ship:changes -->";

/// One clean line from a model's answer, or `None` if it gave nothing usable.
fn entry_from(answer: &str) -> Option<String> {
    let line = answer
        .lines()
        .map(|l| l.trim().trim_start_matches(['-', '*', '#', '>']).trim())
        .find(|l| !l.is_empty() && !l.starts_with("```"))?;
    let line = text::excerpt(line, 200);
    (line.len() >= 8).then_some(line)
}

fn add_changelog_entry(root: &Path, entry: &str) -> Result<(), String> {
    let path = root.join("CHANGELOG.md");
    let current = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Changelog\n".into());
    let updated = match current.find("## Unreleased") {
        Some(at) => {
            let line_end = current[at..]
                .find('\n')
                .map_or(current.len(), |i| at + i + 1);
            format!(
                "{}- {entry}\n{}",
                &current[..line_end],
                &current[line_end..]
            )
        }
        None => format!("{}\n## Unreleased\n- {entry}\n", current.trim_end()),
    };
    std::fs::write(&path, updated).map_err(|e| format!("cannot write CHANGELOG.md: {e}"))
}

/// Replaces the marked block in README.md; a README without markers is left
/// alone (the ship stage never rewrites prose it was not given).
fn refresh_readme(root: &Path, changed: &[String]) -> Result<bool, String> {
    let path = root.join("README.md");
    let Ok(current) = std::fs::read_to_string(&path) else {
        return Ok(false);
    };
    let (Some(b), Some(e)) = (current.find(BEGIN), current.find(END)) else {
        return Ok(false);
    };
    if e < b {
        return Ok(false);
    }
    let list = text::bullets(changed);
    let updated = format!(
        "{}{BEGIN}\nLast change touched:\n{list}\n{}",
        &current[..b],
        &current[e..]
    );
    std::fs::write(&path, updated).map_err(|e| format!("cannot write README.md: {e}"))?;
    Ok(true)
}

struct Ship;

impl Stage for Ship {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "ship",
            env!("CARGO_PKG_VERSION"),
            "Updates CHANGELOG.md and README.md for changes that need it",
        )
        .model(Need::config("model"))
        .workspace(WorkspaceAccess::ReadWrite)
    }

    fn run(input: Input) -> Result<Output, StageError> {
        let config: Config = input.config()?;
        let root = plugin_sdk::gates::workspace()
            .ok_or_else(|| StageError::fatal("this stage needs the workspace, read-write"))?;
        let changed = plugin_helpers::project::changed_files(&input);
        let prompt = format!(
            "Write one line for a CHANGELOG describing this change, in the imperative, no more than 20 words.\n\
             Task: {}\nFiles changed: {}",
            input.task(),
            changed.join(", ")
        );
        let params = Params::default()
            .max_tokens(config.max_tokens)
            .temperature(0.2);
        let written = if config.model.is_empty() {
            None
        } else {
            models::ask(&config.model, None, &prompt, &params)
                .ok()
                .and_then(|a| entry_from(&a))
        };
        let from_model = written.is_some();
        let entry = written.unwrap_or_else(|| {
            text::excerpt(
                input.task().lines().next().unwrap_or("Update the project"),
                120,
            )
        });
        add_changelog_entry(root, &entry).map_err(StageError::fatal)?;
        let readme = refresh_readme(root, &changed).map_err(StageError::fatal)?;
        Ok(Output::new(format!(
            "CHANGELOG.md: \"{entry}\"{}{}",
            if from_model {
                ""
            } else {
                " (from the task: the model gave no usable line)"
            },
            if readme {
                "; README.md changes block refreshed"
            } else {
                ""
            }
        ))
        .decision("shipped"))
    }
}

plugin_sdk::export_stage!(Ship);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_one_clean_line_or_nothing() {
        assert_eq!(
            entry_from("```\n- Add subtraction to the calculator\n```").as_deref(),
            Some("Add subtraction to the calculator")
        );
        assert_eq!(entry_from("  \n ok "), None);
    }

    #[test]
    fn changelog_gets_an_unreleased_entry() {
        let dir = std::env::temp_dir().join(format!("ship-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("CHANGELOG.md"),
            "# Changelog\n\n## Unreleased\n- older\n",
        )
        .unwrap();
        add_changelog_entry(&dir, "Add things").unwrap();
        let text = std::fs::read_to_string(dir.join("CHANGELOG.md")).unwrap();
        assert_eq!(
            text,
            "# Changelog\n\n## Unreleased\n- Add things\n- older\n"
        );
        std::fs::write(
            dir.join("README.md"),
            format!("# P\n{BEGIN}\nold\n{END}\nrest\n"),
        )
        .unwrap();
        assert!(refresh_readme(&dir, &["a.py".into()]).unwrap());
        let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
        assert!(
            readme.contains("- a.py\n<!-- /ship:changes -->\nrest"),
            "{readme}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
