//! `[plugins.NAME]` and a stage's `plugin`: declared plugins and `.wasm` paths.

use super::*;

pub(super) fn check_plugin(
    c: &mut Checker,
    name: String,
    span: Range<usize>,
    p: PluginSection,
    base_dir: &Path,
) -> Option<PluginSpec> {
    if !is_valid_name(&name) {
        c.error(Some(span), format!("invalid plugin name '{name}'"));
        return None;
    }
    let wasm = base_dir.join(p.wasm.get_ref());
    let build = match p.build {
        Some(cmd) if cmd.get_ref().is_empty() => {
            c.error(
                Some(cmd.span()),
                format!("[plugins.{name}] build command is empty"),
            );
            None
        }
        Some(cmd) => Some(BuildSpec {
            command: cmd.into_inner(),
            dir: p
                .build_dir
                .map_or_else(|| base_dir.to_path_buf(), |d| base_dir.join(d)),
            watch: p.watch.iter().map(|w| base_dir.join(w)).collect(),
        }),
        None => None,
    };
    if build.is_none() && !wasm.is_file() {
        c.error(
            Some(p.wasm.span()),
            format!(
                "[plugins.{name}] component {} does not exist (and no `build` command is given to make it)",
                wasm.display()
            ),
        );
    }
    Some(PluginSpec { name, wasm, build })
}

/// A stage's `plugin` is a name from [plugins] or a path to a .wasm file.
pub(super) fn resolve_plugin(
    c: &mut Checker,
    reference: &Spanned<String>,
    plugins: &mut BTreeMap<String, PluginSpec>,
    declared: &[String],
    base_dir: &Path,
) -> Option<String> {
    let name = reference.get_ref();
    if plugins.contains_key(name) {
        return Some(name.clone());
    }
    if declared.contains(name) {
        // Declared with mistakes already reported.
        return None;
    }
    if name.ends_with(".wasm") {
        let wasm = base_dir.join(name);
        if !wasm.is_file() {
            c.error(
                Some(reference.span()),
                format!("plugin file {} does not exist", wasm.display()),
            );
            return None;
        }
        plugins.entry(name.clone()).or_insert(PluginSpec {
            name: name.clone(),
            wasm,
            build: None,
        });
        return Some(name.clone());
    }
    let known: Vec<&str> = declared.iter().map(String::as_str).collect();
    c.error(
        Some(reference.span()),
        format!(
            "unknown plugin '{name}': declare it as [plugins.{name}] or give a path ending in .wasm (declared: {})",
            if known.is_empty() { "none".to_string() } else { known.join(", ") }
        ),
    );
    None
}
