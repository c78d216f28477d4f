//! From TOML text to a [`Pipeline`], collecting every problem on the way.

mod gates;
mod models;
mod order;
mod pipeline;
mod plugins;
mod reach;
mod section;
mod stages;

use crate::diagnostic::{Diagnostic, Diagnostics, Source};
use crate::duration::{Age, HumanDuration};
use crate::pipeline::*;
use crate::sections::*;
use crate::when;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use gates::check_gate;
pub(crate) use models::check_base_url;
use models::check_model;
use order::order_stages;
use pipeline::{check_apply, check_exclude, check_retention, check_workspace, read_task};
use plugins::{check_plugin, resolve_plugin};
use reach::{Reach, check_reach};
pub(crate) use section::Shape;
use stages::check_stages;

const TOP_LEVEL_KEYS: &[&str] = &["pipeline", "models", "plugins", "gates", "groups", "stage"];

struct Checker<'s> {
    source: &'s Source,
    problems: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn error(&mut self, span: Option<Range<usize>>, message: impl Into<String>) {
        self.problems
            .push(Diagnostic::at(self.source, span, message));
    }
}

pub fn validate(source: &Source) -> Result<Pipeline, Diagnostics> {
    let mut c = Checker {
        source,
        problems: Vec::new(),
    };
    let root = match DeTable::parse(&source.text) {
        Ok(root) => root,
        Err(e) => {
            c.error(
                e.span(),
                format!("invalid TOML: {}", e.message().trim_end()),
            );
            return Err(Diagnostics(c.problems));
        }
    };
    let root = root.get_ref();
    let base_dir = source
        .path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));

    for key in root.keys() {
        if !TOP_LEVEL_KEYS.contains(&key.get_ref().as_ref()) {
            c.error(
                Some(key.span()),
                format!(
                    "unknown top-level key '{}' (expected one of: {})",
                    key.get_ref(),
                    TOP_LEVEL_KEYS.join(", ")
                ),
            );
        }
    }

    let mut pipeline = match root.get("pipeline") {
        Some(v) => c.section::<PipelineSection>("[pipeline]", v),
        None => {
            c.error(
                Some(0..0),
                "missing [pipeline] section (it needs at least `name` and `task`)",
            );
            None
        }
    };
    let task = pipeline
        .as_ref()
        .and_then(|p| read_task(&mut c, p, &base_dir));

    // Names declared, even in sections with mistakes: a stage that refers to
    // one is not reported again as referring to something unknown.
    let declared_models = declared_names(root, "models");
    let declared_plugins = declared_names(root, "plugins");
    let declared_gates = declared_names(root, "gates");
    let declared_groups = declared_names(root, "groups");
    let groups = named_sections::<GroupSection>(&mut c, root, "groups")
        .into_iter()
        .map(|(name, _, g)| {
            if *g.max_parallel.get_ref() == 0 {
                c.error(
                    Some(g.max_parallel.span()),
                    format!("[groups.{name}] max_parallel must be at least 1"),
                );
            }
            (name, *g.max_parallel.get_ref())
        })
        .collect::<BTreeMap<_, _>>();
    let workspace = pipeline
        .as_ref()
        .and_then(|p| p.workspace.as_ref())
        .and_then(|w| check_workspace(&mut c, w, &base_dir));
    let apply = pipeline
        .as_ref()
        .map(|p| check_apply(&mut c, p, workspace.is_some()))
        .unwrap_or_default();
    let workspace_exclude = pipeline
        .as_ref()
        .map(|p| check_exclude(&mut c, p))
        .unwrap_or_default();
    let retention = pipeline.as_ref().and_then(|p| check_retention(&mut c, p));
    let models = named_sections::<ModelSection>(&mut c, root, "models")
        .into_iter()
        .filter_map(|(alias, span, m)| check_model(&mut c, alias, span, m))
        .map(|m| (m.alias.clone(), m))
        .collect::<BTreeMap<_, _>>();
    let plugins = named_sections::<PluginSection>(&mut c, root, "plugins")
        .into_iter()
        .filter_map(|(name, span, p)| check_plugin(&mut c, name, span, p, &base_dir))
        .map(|p| (p.name.clone(), p))
        .collect::<BTreeMap<_, _>>();

    let gates = named_sections::<GateSection>(&mut c, root, "gates")
        .into_iter()
        .filter_map(|(name, span, g)| check_gate(&mut c, name, span, g, workspace.is_some()))
        .map(|g| (g.name.clone(), g))
        .collect::<BTreeMap<_, _>>();

    let stage_sections: Vec<StageSection> = match root.get("stage") {
        None => {
            c.error(
                Some(0..0),
                "the pipeline has no stages: add at least one [[stage]]",
            );
            Vec::new()
        }
        Some(v) => match v.get_ref() {
            DeValue::Array(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| c.section(&stage_label(i, item), item))
                .collect(),
            _ => {
                c.error(
                    Some(v.span()),
                    "`stage` must be an array of tables: write [[stage]]",
                );
                Vec::new()
            }
        },
    };
    let mut plugins = plugins;
    let declared = Declared {
        models: declared_models,
        plugins: declared_plugins,
        gates: declared_gates,
        groups: declared_groups,
        templates: stage_sections
            .iter()
            .filter(|s| s.template)
            .map(|s| s.id.get_ref().clone())
            .collect(),
        workspace: workspace.is_some(),
    };
    let mut checks = Vec::new();
    let stages = check_stages(
        &mut c,
        stage_sections,
        &declared,
        &mut plugins,
        &base_dir,
        &mut checks,
    );
    let (templates, stages): (Vec<_>, Vec<_>) = stages
        .into_iter()
        .partition(|(s, _)| declared.templates.contains(&s.id));
    let templates: BTreeMap<String, StageSpec> = templates
        .into_iter()
        .map(|(s, _)| (s.id.clone(), s))
        .collect();
    let stages = order_stages(&mut c, stages);
    check_reach(&mut c, &stages, &templates, checks);

    let deadline = pipeline
        .as_ref()
        .and_then(|p| p.deadline.as_ref())
        .and_then(|d| {
            HumanDuration::parse(d.get_ref())
                .map(|d| d.0)
                .map_err(|e| c.error(Some(d.span()), format!("[pipeline] deadline: {e}")))
                .ok()
        });
    // Checked before the decision below: a problem found while building the
    // plan would otherwise be found too late to refuse the manifest.
    let budget = pipeline
        .as_mut()
        .and_then(|p| p.budget.take())
        .map(|b| check_budget(&mut c, "[pipeline] budget", b))
        .unwrap_or_default();
    match (pipeline, task) {
        (Some(p), Some(task)) if c.problems.is_empty() => Ok(Pipeline {
            state_dir: p.state_dir.as_ref().map(|d| base_dir.join(d)),
            name: p.name.into_inner(),
            task,
            manifest: source.path.clone(),
            base_dir,
            max_parallel: p.max_parallel.map_or(4, Spanned::into_inner),
            workspace,
            apply,
            workspace_exclude,
            models,
            plugins,
            gates,
            budget,
            deadline,
            max_spawned: p.max_spawned.unwrap_or(DEFAULT_MAX_SPAWNED),
            max_spawn_depth: p.max_spawn_depth.unwrap_or(DEFAULT_MAX_SPAWN_DEPTH),
            retention,
            groups,
            templates,
            stages,
        }),
        _ => {
            c.problems
                .sort_by_key(|d| d.location.unwrap_or((usize::MAX, 0)));
            Err(Diagnostics(c.problems))
        }
    }
}

/// Names declared under a `[key.NAME]` table, whatever their contents.
fn declared_names(root: &DeTable<'_>, key: &str) -> Vec<String> {
    match root.get(key).map(|v| v.get_ref()) {
        Some(DeValue::Table(t)) => t.keys().map(|k| k.get_ref().to_string()).collect(),
        _ => Vec::new(),
    }
}

struct Declared {
    models: Vec<String>,
    plugins: Vec<String>,
    gates: Vec<String>,
    groups: Vec<String>,
    templates: Vec<String>,
    /// Whether `[pipeline] workspace` names a usable directory.
    workspace: bool,
}

/// "stage 'ID'" when the table has a readable id, else "stage #N".
fn stage_label(index: usize, item: &Spanned<DeValue<'_>>) -> String {
    match item
        .get_ref()
        .get("id")
        .and_then(|id| id.get_ref().as_str())
    {
        Some(id) => format!("stage '{id}'"),
        None => format!("stage #{}", index + 1),
    }
}

/// The entries of a `[models]`-style table of named sub-tables.
fn named_sections<T: for<'de> Deserialize<'de> + section::Shape>(
    c: &mut Checker,
    root: &DeTable<'_>,
    key: &str,
) -> Vec<(String, Range<usize>, T)> {
    let Some(value) = root.get(key) else {
        return Vec::new();
    };
    let DeValue::Table(table) = value.get_ref() else {
        c.error(
            Some(value.span()),
            format!("`{key}` must be a table of named entries, e.g. [{key}.NAME]"),
        );
        return Vec::new();
    };
    table
        .iter()
        .filter_map(|(name, v)| {
            let section = c.section::<T>(&format!("[{key}.{}]", name.get_ref()), v)?;
            Some((name.get_ref().to_string(), name.span(), section))
        })
        .collect()
}

/// A valid name for a model alias, plugin, gate, group or stage.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name.len() <= 64
}

fn check_name(c: &mut Checker, what: &str, name: &Spanned<String>) {
    if !is_valid_name(name.get_ref()) {
        c.error(
            Some(name.span()),
            format!(
                "invalid {what} '{}': use 1 to 64 letters, digits, '-' or '_', starting with a letter or digit",
                name.get_ref()
            ),
        );
    }
}

/// "64KiB", "256MiB", "1GiB": a size in bytes.
fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (n, unit) = text.split_at(split);
    let n: u64 = n.parse().ok()?;
    let mult = match unit.trim() {
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

fn parse_memory(text: &str) -> Option<u64> {
    parse_size(text).filter(|&b| b >= 1 << 20)
}

fn check_budget(c: &mut Checker, what: &str, b: Spanned<Budget>) -> Budget {
    let span = b.span();
    let budget = b.into_inner();
    if budget
        .cost_usd
        .is_some_and(|v| !(v.is_finite() && v >= 0.0))
    {
        c.error(
            Some(span),
            format!("{what}: cost_usd must be zero or positive"),
        );
    }
    budget
}

/// Whether `path` stays inside the directory it is relative to.
fn is_contained(path: &Path) -> bool {
    path.components().all(|c| {
        matches!(
            c,
            std::path::Component::Normal(_) | std::path::Component::CurDir
        )
    })
}

#[cfg(test)]
mod tests {
    use crate::parse;
    use std::path::Path;

    /// A manifest whose plugin needs no file: its build command would make it.
    fn manifest(extra: &str, stages: &str) -> String {
        format!(
            "[pipeline]\nname = \"p\"\ntask = \"t\"\n{extra}\n[plugins.x]\nwasm = \"x.wasm\"\nbuild = [\"true\"]\n\n{stages}"
        )
    }

    fn problems(text: &str) -> Vec<String> {
        match parse(Path::new("/nowhere/p.toml"), text.to_string()) {
            Ok(_) => Vec::new(),
            Err(d) => d.0.iter().map(|p| p.message.clone()).collect(),
        }
    }

    const ONE: &str = "[[stage]]\nid = \"a\"\nplugin = \"x\"\n";

    #[test]
    fn a_valid_manifest_resolves_with_its_defaults() {
        let p = parse(Path::new("/nowhere/p.toml"), manifest("", ONE)).unwrap();
        assert_eq!(p.stages.len(), 1);
        assert_eq!(p.max_parallel, 4);
        assert_eq!(p.stages[0].retries, 0);
        assert_eq!(
            p.stages[0].timeout,
            host_vocab::limits::DEFAULT_STAGE_TIMEOUT
        );
    }

    #[test]
    fn a_negative_or_nan_run_budget_is_refused() {
        for bad in ["-1", "nan", "inf"] {
            let found = problems(&manifest(
                &format!("budget = {{ cost_usd = {bad} }}\n"),
                ONE,
            ));
            assert_eq!(
                found,
                ["[pipeline] budget: cost_usd must be zero or positive"],
                "cost_usd = {bad}"
            );
        }
        assert!(problems(&manifest("budget = { cost_usd = 0 }\n", ONE)).is_empty());
    }

    #[test]
    fn a_task_larger_than_a_task_can_be_is_refused_unread() {
        let dir = std::env::temp_dir().join(format!("task-cap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let big = std::fs::File::create(dir.join("task.md")).unwrap();
        big.set_len(host_vocab::limits::MAX_TASK_BYTES + 1).unwrap();
        let text = "[pipeline]\nname = \"p\"\ntask_file = \"task.md\"\n\n[plugins.x]\nwasm = \"x.wasm\"\nbuild = [\"true\"]\n\n[[stage]]\nid = \"a\"\nplugin = \"x\"\n";
        let found = match parse(&dir.join("p.toml"), text.to_string()) {
            Ok(_) => Vec::new(),
            Err(d) => d.0.iter().map(|p| p.message.clone()).collect(),
        };
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(
            found[0].contains("a task may be at most 4 MiB"),
            "{found:#?}"
        );
    }

    #[test]
    fn retention_keeps_at_least_the_run_that_ended() {
        let p = parse(
            Path::new("/nowhere/p.toml"),
            manifest("retention = { keep = 20, older_than = \"30d\" }\n", ONE),
        )
        .unwrap();
        let r = p.retention.unwrap();
        assert_eq!(r.keep, Some(20));
        assert_eq!(r.older_than.unwrap().to_string(), "30d");
        assert_eq!(
            problems(&manifest("retention = {}\n", ONE)),
            [
                "[pipeline] retention needs `keep = N` (the N most recent finished runs stay) or `older_than = \"30d\"`, or both"
            ]
        );
        let found = problems(&manifest(
            "retention = { keep = 0, older_than = \"soon\" }\n",
            ONE,
        ));
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(found[0].contains("keep must be at least 1"), "{found:#?}");
        assert!(found[1].contains("older_than"), "{found:#?}");
        assert!(
            parse(Path::new("/nowhere/p.toml"), manifest("", ONE))
                .unwrap()
                .retention
                .is_none()
        );
    }

    #[test]
    fn every_problem_is_reported_in_one_pass() {
        let stages = "[[stage]]\nid = \"a\"\nplugin = \"x\"\nafter = [\"ghost\"]\ntimeout = \"soon\"\n\n\
                      [[stage]]\nid = \"a\"\nplugin = \"nope\"\n";
        let found = problems(&manifest("max_parallel = 0\n", stages));
        assert_eq!(found.len(), 5, "{found:#?}");
        assert!(
            found
                .iter()
                .any(|m| m.contains("max_parallel must be at least 1"))
        );
        assert!(found.iter().any(|m| m.contains("unknown stage 'ghost'")));
        assert!(found.iter().any(|m| m.contains("timeout")));
        assert!(found.iter().any(|m| m.contains("duplicate stage id 'a'")));
        assert!(found.iter().any(|m| m.contains("unknown plugin 'nope'")));
    }

    #[test]
    fn a_cycle_is_named_as_the_cycle_it_is() {
        let stages = "[[stage]]\nid = \"a\"\nplugin = \"x\"\nafter = [\"b\"]\n\n\
                      [[stage]]\nid = \"b\"\nplugin = \"x\"\nafter = [\"a\"]\n";
        let found = problems(&manifest("", stages));
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].contains("cycle"), "{}", found[0]);
        assert!(found[0].contains('a') && found[0].contains('b'));
    }

    #[test]
    fn names_are_plain() {
        assert!(super::is_valid_name("triage-2_b"));
        for bad in ["", "-x", "has space", "a/b", &"x".repeat(65)] {
            assert!(!super::is_valid_name(bad), "{bad:?}");
        }
    }
}
