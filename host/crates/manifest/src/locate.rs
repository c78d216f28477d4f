//! Where one key of a stage or a plugin is written in the manifest: for
//! problems found after parsing (a plugin's declared needs against the
//! stage's grants, a component that does not load or build), reported at a
//! line like every other manifest problem.

use super::diagnostic::{Diagnostic, Source};
use std::ops::Range;
use toml::de::{DeTable, DeValue};

/// The span of `path` ("models", "config.model") in the `[[stage]]` whose
/// id is `stage_id`; else of the nearest enclosing key that is written;
/// else of the stage's id.
pub fn stage_key(source: &Source, stage_id: &str, path: &str) -> Option<Range<usize>> {
    let root = DeTable::parse(&source.text).ok()?;
    let DeValue::Array(stages) = root.get_ref().get("stage")?.get_ref() else {
        return None;
    };
    let stage = stages.iter().find_map(|s| match s.get_ref() {
        DeValue::Table(t) if t.get("id").and_then(|id| id.get_ref().as_str()) == Some(stage_id) => {
            Some(t)
        }
        _ => None,
    })?;
    let mut table = stage;
    let mut best = stage
        .iter()
        .find(|(k, _)| k.get_ref() == "id")
        .map(|(k, _)| k.span());
    for part in path.split('.') {
        let Some((key, value)) = table.iter().find(|(k, _)| k.get_ref() == part) else {
            break;
        };
        best = Some(key.span());
        match value.get_ref() {
            DeValue::Table(t) => table = t,
            _ => break,
        }
    }
    best
}

/// A diagnostic at `path` of stage `stage_id`.
pub fn at_stage_key(
    source: &Source,
    stage_id: &str,
    path: &str,
    message: impl Into<String>,
) -> Diagnostic {
    Diagnostic::at(source, stage_key(source, stage_id, path), message)
}

/// The span of `key` ("wasm", "build") of `[plugins.NAME]`, else of the
/// NAME; for a plugin named by its path in a stage (`plugin = "x.wasm"`),
/// the first stage or template that names it.
pub fn plugin_key(source: &Source, name: &str, key: &str) -> Option<Range<usize>> {
    let root = DeTable::parse(&source.text).ok()?;
    let root = root.get_ref();
    if let Some(DeValue::Table(plugins)) = root.get("plugins").map(|v| v.get_ref())
        && let Some((name_key, value)) = plugins.iter().find(|(k, _)| k.get_ref() == name)
    {
        let written = match value.get_ref() {
            DeValue::Table(t) => t.get(key).map(|v| v.span()),
            _ => None,
        };
        return Some(written.unwrap_or_else(|| name_key.span()));
    }
    ["stage", "template"].into_iter().find_map(|section| {
        let DeValue::Array(stages) = root.get(section)?.get_ref() else {
            return None;
        };
        stages.iter().find_map(|s| match s.get_ref() {
            DeValue::Table(t) => t
                .get("plugin")
                .filter(|p| p.get_ref().as_str() == Some(name))
                .map(|p| p.span()),
            _ => None,
        })
    })
}

/// A diagnostic at `key` of plugin `name`.
pub fn at_plugin_key(
    source: &Source,
    name: &str,
    key: &str,
    message: impl Into<String>,
) -> Diagnostic {
    Diagnostic::at(source, plugin_key(source, name, key), message)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "[pipeline]\nname = \"p\"\n\n[[stage]]\nid = \"a\"\nplugin = \"x\"\n\n[[stage]]\nid = \"b\"\nplugin = \"x\"\nmodels = [\"small\"]\nconfig = { model = \"large\" }\n";

    fn line(path: &str, stage: &str) -> Option<usize> {
        let source = Source::new("p.toml".into(), TEXT.into());
        stage_key(&source, stage, path).map(|s| source.line_col(s.start).0)
    }

    #[test]
    fn finds_the_key_or_the_nearest_thing_written() {
        assert_eq!(line("models", "b"), Some(11));
        assert_eq!(line("config.model", "b"), Some(12));
        assert_eq!(
            line("workspace", "b"),
            Some(9),
            "not written: the stage's id"
        );
        assert_eq!(line("models", "a"), Some(5));
        assert_eq!(line("models", "zzz"), None);
    }

    #[test]
    fn finds_a_plugins_key_or_the_stage_that_names_its_path() {
        let text = "[plugins.x]\nwasm = \"x.wasm\"\n\n[plugins.y]\nwasm = \"y.wasm\"\nbuild = [\"make\"]\n\n[[stage]]\nid = \"a\"\nplugin = \"z.wasm\"\n";
        let source = Source::new("p.toml".into(), text.into());
        let line = |name: &str, key: &str| {
            plugin_key(&source, name, key).map(|s| source.line_col(s.start))
        };
        assert_eq!(line("x", "wasm"), Some((2, 8)));
        assert_eq!(line("y", "build"), Some((6, 9)));
        assert_eq!(line("x", "build"), Some((1, 10)), "not written: the name");
        assert_eq!(line("z.wasm", "wasm"), Some((10, 10)));
        assert_eq!(line("nope", "wasm"), None);
    }
}
