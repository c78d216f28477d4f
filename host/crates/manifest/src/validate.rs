//! From TOML text to a [`Pipeline`], collecting every problem on the way.

use super::diagnostic::{Diagnostic, Diagnostics, Source};
use super::duration::HumanDuration;
use super::pipeline::*;
use super::sections::*;
use super::when;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

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

    /// Deserializes one section, reporting a failure at its location.
    fn section<T: for<'de> Deserialize<'de>>(
        &mut self,
        what: &str,
        value: &Spanned<DeValue<'_>>,
    ) -> Option<T> {
        match T::deserialize(ValueDeserializer::from(value.clone())) {
            Ok(v) => Some(v),
            Err(e) => {
                let span = e.span().or_else(|| Some(value.span()));
                self.error(span, format!("{what}: {}", e.message().trim_end()));
                None
            }
        }
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
    check_reach(&mut c, &stages, checks);

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
            models,
            plugins,
            gates,
            budget,
            deadline,
            max_spawned: p.max_spawned.unwrap_or(DEFAULT_MAX_SPAWNED),
            max_spawn_depth: p.max_spawn_depth.unwrap_or(DEFAULT_MAX_SPAWN_DEPTH),
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

fn read_task(c: &mut Checker, p: &PipelineSection, base_dir: &Path) -> Option<String> {
    if let Some(n) = &p.max_parallel {
        let limit = host_vocab::limits::MAX_CONCURRENT_INSTANCES as usize;
        if *n.get_ref() == 0 {
            c.error(Some(n.span()), "[pipeline] max_parallel must be at least 1");
        } else if *n.get_ref() > limit {
            c.error(
                Some(n.span()),
                format!("[pipeline] max_parallel must be at most {limit} (stage attempts running at once)"),
            );
        }
    }
    check_name(c, "pipeline name", &p.name);
    match (&p.task, &p.task_file) {
        (Some(task), None) => Some(task.clone()),
        (None, Some(file)) => {
            let path = base_dir.join(file.get_ref());
            match std::fs::read_to_string(&path) {
                Ok(task) => Some(task),
                Err(e) => {
                    c.error(
                        Some(file.span()),
                        format!("cannot read task_file {}: {e}", path.display()),
                    );
                    None
                }
            }
        }
        (Some(_), Some(file)) => {
            c.error(
                Some(file.span()),
                "[pipeline] has both `task` and `task_file`: keep one",
            );
            None
        }
        (None, None) => {
            c.error(
                Some(p.name.span()),
                "[pipeline] needs a `task` (or a `task_file`)",
            );
            None
        }
    }
}

/// The entries of a `[models]`-style table of named sub-tables.
fn named_sections<T: for<'de> Deserialize<'de>>(
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

fn check_model(
    c: &mut Checker,
    alias: String,
    span: Range<usize>,
    m: ModelSection,
) -> Option<ModelSpec> {
    if !is_valid_name(&alias) {
        c.error(Some(span), format!("invalid model alias '{alias}'"));
    }
    let provider = ProviderKind::parse(m.provider.get_ref());
    if provider.is_none() {
        c.error(
            Some(m.provider.span()),
            format!(
                "[models.{alias}] unknown provider '{}' (supported: {})",
                m.provider.get_ref(),
                ProviderKind::NAMES.join(", ")
            ),
        );
    }
    let url = match (&m.base_url, provider) {
        (Some(u), _) => u.get_ref().clone(),
        (None, Some(p)) => p.default_base_url().to_string(),
        (None, None) => String::new(),
    };
    if let Some(u) = &m.base_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        c.error(
            Some(u.span()),
            format!("[models.{alias}] base_url '{url}' must start with http:// or https://"),
        );
    }
    for price in [&m.price_in_per_1k, &m.price_out_per_1k]
        .into_iter()
        .flatten()
    {
        if !(price.get_ref().is_finite() && *price.get_ref() >= 0.0) {
            c.error(
                Some(price.span()),
                format!("[models.{alias}] prices must be zero or positive"),
            );
        }
    }
    if let Some(n) = &m.max_concurrent
        && *n.get_ref() == 0
    {
        c.error(
            Some(n.span()),
            format!("[models.{alias}] max_concurrent must be at least 1"),
        );
    }
    Some(ModelSpec {
        alias,
        provider: provider?,
        base_url: url.trim_end_matches('/').to_string(),
        model: m.model,
        api_key_env: m.api_key_env,
        timeout: m.timeout.map_or(DEFAULT_MODEL_TIMEOUT, |d| d.0),
        max_retries: m.max_retries.unwrap_or(DEFAULT_MODEL_RETRIES),
        price_in_per_1k: m.price_in_per_1k.map_or(0.0, Spanned::into_inner),
        price_out_per_1k: m.price_out_per_1k.map_or(0.0, Spanned::into_inner),
        cache: m.cache,
        max_concurrent: m.max_concurrent.map(Spanned::into_inner),
    })
}

fn check_plugin(
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

/// The workspace directory: it must exist, so a typo is caught before a run.
fn check_workspace(c: &mut Checker, w: &Spanned<String>, base_dir: &Path) -> Option<PathBuf> {
    let dir = base_dir.join(w.get_ref());
    if !dir.is_dir() {
        c.error(
            Some(w.span()),
            format!("[pipeline] workspace {} is not a directory", dir.display()),
        );
        return None;
    }
    Some(std::path::absolute(&dir).unwrap_or(dir))
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

fn check_gate(
    c: &mut Checker,
    name: String,
    span: Range<usize>,
    g: GateSection,
    has_workspace: bool,
) -> Option<GateSpec> {
    if !is_valid_name(&name) {
        c.error(Some(span.clone()), format!("invalid gate name '{name}'"));
    }
    if !has_workspace {
        c.error(
            Some(span),
            format!(
                "[gates.{name}] gates run in the workspace: set [pipeline] workspace = \"DIR\""
            ),
        );
    }
    if g.command.get_ref().is_empty() || g.command.get_ref()[0].is_empty() {
        c.error(
            Some(g.command.span()),
            format!("[gates.{name}] command is empty: give the program and its arguments"),
        );
    }
    let timeout = match &g.timeout {
        None => DEFAULT_GATE_TIMEOUT,
        Some(t) => HumanDuration::parse(t.get_ref())
            .map(|d| d.0)
            .unwrap_or_else(|e| {
                c.error(Some(t.span()), format!("[gates.{name}] timeout: {e}"));
                DEFAULT_GATE_TIMEOUT
            }),
    };
    let dir = match &g.dir {
        None => PathBuf::from("."),
        Some(d) if is_contained(Path::new(d.get_ref())) => PathBuf::from(d.get_ref()),
        Some(d) => {
            c.error(
                Some(d.span()),
                format!(
                    "[gates.{name}] dir '{}' must be a relative path inside the workspace (no '..', not absolute)",
                    d.get_ref()
                ),
            );
            PathBuf::from(".")
        }
    };
    let max_output = match &g.max_output {
        None => DEFAULT_GATE_OUTPUT,
        Some(m) => match parse_size(m.get_ref()).filter(|&b| (1 << 10..=16 << 20).contains(&b)) {
            Some(b) => b as usize,
            None => {
                c.error(
                    Some(m.span()),
                    format!(
                        "[gates.{name}] max_output '{}' must be like \"64KiB\" (1KiB to 16MiB)",
                        m.get_ref()
                    ),
                );
                DEFAULT_GATE_OUTPUT
            }
        },
    };
    let pass_exit_codes = match g.pass_exit_codes {
        Some(codes) if codes.get_ref().is_empty() => {
            c.error(
                Some(codes.span()),
                format!("[gates.{name}] pass_exit_codes is empty: the gate could never pass"),
            );
            vec![0]
        }
        Some(codes) => codes.into_inner(),
        None => vec![0],
    };
    Some(GateSpec {
        name,
        command: g.command.into_inner(),
        timeout,
        dir,
        env: g.env.unwrap_or_else(|| vec!["PATH".into()]),
        pass_exit_codes,
        max_output,
    })
}

fn check_stages(
    c: &mut Checker,
    sections: Vec<StageSection>,
    declared: &Declared,
    plugins: &mut BTreeMap<String, PluginSpec>,
    base_dir: &Path,
    checks: &mut Vec<Reach>,
) -> Vec<(StageSpec, Vec<Range<usize>>)> {
    let mut seen: HashMap<String, Range<usize>> = HashMap::new();
    for s in &sections {
        check_name(c, "stage id", &s.id);
        if let Some(first) = seen.insert(s.id.get_ref().clone(), s.id.span()) {
            let (line, _) = c.source.line_col(first.start);
            c.error(
                Some(s.id.span()),
                format!(
                    "duplicate stage id '{}' (first defined on line {line})",
                    s.id.get_ref()
                ),
            );
        }
    }
    let mut out = Vec::new();
    for s in sections {
        let id = s.id.get_ref().clone();
        let mut after: Vec<(Dependency, Range<usize>)> = Vec::new();
        for entry in &s.after {
            let (stage, on) = match entry.get_ref() {
                AfterEntry::Id(stage) => (stage.clone(), Condition::Success),
                AfterEntry::Edge(edge) => {
                    let on = match edge.on.as_deref() {
                        None => Condition::Success,
                        Some(name) => Condition::parse(name).unwrap_or_else(|| {
                            c.error(
                                Some(entry.span()),
                                format!(
                                    "stage '{id}': unknown condition '{name}' (one of: {})",
                                    Condition::NAMES.join(", ")
                                ),
                            );
                            Condition::Success
                        }),
                    };
                    (edge.stage.clone(), on)
                }
            };
            if !seen.contains_key(&stage) {
                c.error(
                    Some(entry.span()),
                    format!("stage '{id}' runs after unknown stage '{stage}'"),
                );
                continue;
            } else if stage == id {
                c.error(
                    Some(entry.span()),
                    format!("stage '{id}' cannot run after itself"),
                );
                continue;
            } else if !s.template && declared.templates.contains(&stage) {
                c.error(
                    Some(entry.span()),
                    format!(
                        "stage '{id}' runs after template '{stage}', which never runs by itself"
                    ),
                );
                continue;
            }
            after.push((Dependency { stage, on }, entry.span()));
        }
        let when = s
            .when
            .as_ref()
            .and_then(|w| match when::Expr::parse(w.get_ref()) {
                Ok(expr) => {
                    for stage in expr.stages() {
                        if !seen.contains_key(stage) {
                            c.error(
                                Some(w.span()),
                                format!("stage '{id}' when: unknown stage '{stage}'"),
                            );
                        }
                    }
                    Some(WhenSpec {
                        text: w.get_ref().clone(),
                        expr,
                    })
                }
                Err(e) => {
                    // Point into the string: past the opening quote, at the offset.
                    let at = w.span().start + 1 + e.offset;
                    c.error(
                        Some(at..at + 1),
                        format!("stage '{id}' when: {}", e.message),
                    );
                    None
                }
            });
        let loop_back = s.loop_back.as_ref().map(|l| {
            let l = l.get_ref();
            if *l.max.get_ref() == 0 {
                c.error(
                    Some(l.max.span()),
                    format!("stage '{id}' loop max must be at least 1"),
                );
            }
            LoopSpec {
                to: l.to.get_ref().clone(),
                max: *l.max.get_ref(),
                on: l.on.clone().unwrap_or_else(|| "revise".into()),
            }
        });
        if let Some(l) = &s.loop_back {
            checks.push(Reach {
                stage: id.clone(),
                ancestor: l.get_ref().to.get_ref().clone(),
                span: l.get_ref().to.span(),
                what: "loop `to`",
            });
        }
        if let (Some(w), Some(spec)) = (&s.when, &when) {
            for stage in spec.expr.stages() {
                checks.push(Reach {
                    stage: id.clone(),
                    ancestor: stage.to_string(),
                    span: w.span(),
                    what: "when",
                });
            }
        }
        for t in &s.spawns {
            if !declared.templates.contains(t.get_ref()) {
                c.error(
                    Some(t.span()),
                    format!(
                        "stage '{id}' spawns '{}', which is not a stage declared with `template = true`",
                        t.get_ref()
                    ),
                );
            }
        }
        if s.template && !s.after.is_empty() {
            c.error(
                Some(s.id.span()),
                format!("template '{id}' cannot have `after`: a spawned job runs after the stage that spawned it"),
            );
        }
        let heartbeat = s.heartbeat.as_ref().and_then(|h| {
            HumanDuration::parse(h.get_ref())
                .map(|d| d.0)
                .map_err(|e| c.error(Some(h.span()), format!("stage '{id}' heartbeat: {e}")))
                .ok()
        });
        if let Some(g) = &s.group
            && !declared.groups.contains(g.get_ref())
        {
            c.error(
                Some(g.span()),
                format!(
                    "stage '{id}' is in unknown group '{}': declare [groups.{}] max_parallel = N",
                    g.get_ref(),
                    g.get_ref()
                ),
            );
        }
        for alias in &s.models {
            if !declared.models.contains(alias.get_ref()) {
                let known: Vec<&str> = declared.models.iter().map(String::as_str).collect();
                c.error(
                    Some(alias.span()),
                    format!(
                        "stage '{id}' is granted unknown model alias '{}' (declared: {})",
                        alias.get_ref(),
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
            }
        }
        for gate in &s.gates {
            if !declared.gates.contains(gate.get_ref()) {
                c.error(
                    Some(gate.span()),
                    format!(
                        "stage '{id}' is granted unknown gate '{}' (declared: {})",
                        gate.get_ref(),
                        if declared.gates.is_empty() {
                            "none".to_string()
                        } else {
                            declared.gates.join(", ")
                        }
                    ),
                );
            }
        }
        let workspace = match &s.workspace {
            None => WorkspaceAccess::None,
            Some(w) => match WorkspaceAccess::parse(w.get_ref()) {
                Some(access) if access != WorkspaceAccess::None && !declared.workspace => {
                    c.error(
                        Some(w.span()),
                        format!("stage '{id}' is granted the workspace, but [pipeline] declares no usable workspace"),
                    );
                    access
                }
                Some(access) => access,
                None => {
                    c.error(
                        Some(w.span()),
                        format!(
                            "stage '{id}' workspace '{}' must be one of: {}",
                            w.get_ref(),
                            WorkspaceAccess::NAMES.join(", ")
                        ),
                    );
                    WorkspaceAccess::None
                }
            },
        };
        for session in &s.sessions {
            check_name(c, &format!("stage '{id}' session name"), session);
        }
        let sessions = s.sessions.iter().map(|x| x.get_ref().clone()).collect();
        let budget = s
            .budget
            .map(|b| check_budget(c, &format!("stage '{id}' budget"), b))
            .unwrap_or_default();
        let plugin = resolve_plugin(c, &s.plugin, plugins, &declared.plugins, base_dir);
        let timeout = match &s.timeout {
            None => DEFAULT_STAGE_TIMEOUT,
            Some(t) => HumanDuration::parse(t.get_ref())
                .map(|d| d.0)
                .unwrap_or_else(|e| {
                    c.error(Some(t.span()), format!("stage '{id}' timeout: {e}"));
                    DEFAULT_STAGE_TIMEOUT
                }),
        };
        let memory_limit = match &s.memory {
            None => DEFAULT_MEMORY_LIMIT,
            Some(m) => parse_memory(m.get_ref()).unwrap_or_else(|| {
                c.error(
                    Some(m.span()),
                    format!("stage '{id}' memory '{}' must be like \"64MiB\" or \"1GiB\" (at least 1MiB)", m.get_ref()),
                );
                DEFAULT_MEMORY_LIMIT
            }),
        };
        let max_output = match &s.max_output {
            None => host_vocab::limits::MAX_OUTPUT_BYTES,
            Some(m) => parse_size(m.get_ref())
                .filter(|b| (1 << 10..=1 << 30).contains(b))
                .map(|b| b as usize)
                .unwrap_or_else(|| {
                    c.error(
                        Some(m.span()),
                        format!(
                            "stage '{id}' max_output '{}' must be like \"16MiB\" (1KiB to 1GiB)",
                            m.get_ref()
                        ),
                    );
                    host_vocab::limits::MAX_OUTPUT_BYTES
                }),
        };
        let config = match s.config {
            None => serde_json::Value::Object(Default::default()),
            Some(cfg) if cfg.get_ref().is_object() => cfg.into_inner(),
            Some(cfg) => {
                c.error(
                    Some(cfg.span()),
                    format!("stage '{id}' config must be a table"),
                );
                serde_json::Value::Null
            }
        };
        let spans: Vec<Range<usize>> = after.iter().map(|(_, span)| span.clone()).collect();
        let after: Vec<Dependency> = after.into_iter().map(|(d, _)| d).collect();
        out.push((
            StageSpec {
                id,
                plugin: plugin.unwrap_or_default(),
                after,
                when,
                loop_back,
                retry_context: s.retry_context.unwrap_or(true),
                heartbeat,
                group: s.group.as_ref().map(|g| g.get_ref().clone()),
                parent: None,
                spawns: s.spawns.iter().map(|t| t.get_ref().clone()).collect(),
                models: s.models.iter().map(|m| m.get_ref().clone()).collect(),
                gates: s.gates.iter().map(|g| g.get_ref().clone()).collect(),
                sessions,
                budget,
                workspace,
                timeout,
                retries: s.retries.unwrap_or(0),
                memory_limit,
                max_output,
                max_log_lines: s.max_log_lines.unwrap_or(host_vocab::limits::MAX_LOG_LINES),
                max_model_calls: s
                    .max_model_calls
                    .unwrap_or(host_vocab::limits::MAX_CALLS_PER_ATTEMPT),
                config,
            },
            spans,
        ));
    }
    out
}

/// A reference that must point to an ancestor: the stage it names has to be
/// finished before this one may look at it or loop back to it.
pub(super) struct Reach {
    stage: String,
    ancestor: String,
    span: Range<usize>,
    what: &'static str,
}

/// Reports each reference to a stage that is not an ancestor.
fn check_reach(c: &mut Checker, stages: &[StageSpec], checks: Vec<Reach>) {
    let by_id: HashMap<&str, &StageSpec> = stages.iter().map(|s| (s.id.as_str(), s)).collect();
    for check in checks {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&str> = by_id
            .get(check.stage.as_str())
            .map(|s| s.deps().collect())
            .unwrap_or_default();
        let mut found = false;
        while let Some(id) = todo.pop() {
            if id == check.ancestor {
                found = true;
                break;
            }
            if seen.insert(id)
                && let Some(s) = by_id.get(id)
            {
                todo.extend(s.deps());
            }
        }
        if !found && by_id.contains_key(check.ancestor.as_str()) {
            c.error(
                Some(check.span),
                format!(
                    "stage '{}' {}: '{}' is not among the stages it runs after (directly or not), so it may not have run yet",
                    check.stage, check.what, check.ancestor
                ),
            );
        }
    }
}

/// A stage's `plugin` is a name from [plugins] or a path to a .wasm file.
fn resolve_plugin(
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

/// Orders stages so that each follows everything in its `after` list;
/// reports each cycle once, naming its stages.
fn order_stages(c: &mut Checker, stages: Vec<(StageSpec, Vec<Range<usize>>)>) -> Vec<StageSpec> {
    let index: HashMap<&str, usize> = stages
        .iter()
        .enumerate()
        .map(|(i, (s, _))| (s.id.as_str(), i))
        .collect();
    let mut indegree = vec![0usize; stages.len()];
    let mut dependants: Vec<Vec<usize>> = vec![Vec::new(); stages.len()];
    for (i, (s, _)) in stages.iter().enumerate() {
        let deps: BTreeSet<usize> = s.deps().filter_map(|d| index.get(d).copied()).collect();
        for d in deps {
            if d != i {
                indegree[i] += 1;
                dependants[d].push(i);
            }
        }
    }
    let mut ready: Vec<usize> = (0..stages.len())
        .filter(|&i| indegree[i] == 0)
        .rev()
        .collect();
    let mut order = Vec::with_capacity(stages.len());
    while let Some(i) = ready.pop() {
        order.push(i);
        for &d in dependants[i].iter().rev() {
            indegree[d] -= 1;
            if indegree[d] == 0 {
                ready.push(d);
            }
        }
    }
    if order.len() < stages.len() {
        let stuck: Vec<usize> = (0..stages.len()).filter(|&i| indegree[i] > 0).collect();
        let names: Vec<&str> = stuck.iter().map(|&i| stages[i].0.id.as_str()).collect();
        let span = stuck.first().and_then(|&i| stages[i].1.first()).cloned();
        c.error(
            span,
            format!(
                "the `after` lists form a cycle through stages: {}",
                names.join(" -> ")
            ),
        );
        return Vec::new();
    }
    let mut slots: Vec<Option<StageSpec>> = stages.into_iter().map(|(s, _)| Some(s)).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}
