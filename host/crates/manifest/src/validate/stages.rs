//! `[[stage]]`: ids, edges, `when`, loops, templates and spawns, grants, limits.

use super::*;

pub(super) fn check_stages(
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
                    // Point into the string as written: escapes and quotes
                    // take more bytes than the value they stand for.
                    let span = w.span();
                    let written = c.source.text.get(span.clone()).unwrap_or_default();
                    let at = span.start + crate::literal::source_offset(written, e.offset);
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
        let max_changed_bytes = match &s.max_changed_bytes {
            None => host_vocab::limits::DEFAULT_MAX_CHANGED_BYTES,
            Some(m) => parse_size(m.get_ref())
                .filter(|b| (1 << 10..=1 << 40).contains(b))
                .unwrap_or_else(|| {
                    c.error(
                        Some(m.span()),
                        format!(
                            "stage '{id}' max_changed_bytes '{}' must be like \"1GiB\" (1KiB to 1TiB)",
                            m.get_ref()
                        ),
                    );
                    host_vocab::limits::DEFAULT_MAX_CHANGED_BYTES
                }),
        };
        let max_changed_files = match &s.max_changed_files {
            None => host_vocab::limits::DEFAULT_MAX_CHANGED_FILES,
            Some(n) if *n.get_ref() >= 1 => *n.get_ref(),
            Some(n) => {
                c.error(
                    Some(n.span()),
                    format!("stage '{id}' max_changed_files must be at least 1"),
                );
                host_vocab::limits::DEFAULT_MAX_CHANGED_FILES
            }
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
                max_changed_files,
                max_changed_bytes,
                config,
            },
            spans,
        ));
    }
    out
}
