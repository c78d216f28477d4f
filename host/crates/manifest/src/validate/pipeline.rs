//! `[pipeline]`: the task (or task file) and the workspace directory.

use super::*;

pub(super) fn read_task(c: &mut Checker, p: &PipelineSection, base_dir: &Path) -> Option<String> {
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
        (Some(task), None) if task.len() as u64 > host_vocab::limits::MAX_TASK_BYTES => {
            c.error(
                Some(p.name.span()),
                format!(
                    "[pipeline] task is {} bytes; a task may be at most {} MiB",
                    task.len(),
                    host_vocab::limits::MAX_TASK_BYTES >> 20
                ),
            );
            None
        }
        (Some(task), None) => Some(task.clone()),
        (None, Some(file)) => {
            let path = base_dir.join(file.get_ref());
            let limit = host_vocab::limits::MAX_TASK_BYTES;
            if let Ok(meta) = std::fs::metadata(&path)
                && meta.len() > limit
            {
                c.error(
                    Some(file.span()),
                    format!(
                        "task_file {} is {} bytes; a task may be at most {} MiB (every stage is handed it)",
                        path.display(),
                        meta.len(),
                        limit >> 20
                    ),
                );
                return None;
            }
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

/// The workspace directory: it must exist, so a typo is caught before a run.
pub(super) fn check_workspace(
    c: &mut Checker,
    w: &Spanned<String>,
    base_dir: &Path,
) -> Option<PathBuf> {
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

/// `[pipeline] apply`: a known policy, and only with a workspace.
pub(super) fn check_apply(
    c: &mut Checker,
    p: &PipelineSection,
    has_workspace: bool,
) -> ApplyPolicy {
    let Some(apply) = &p.apply else {
        return ApplyPolicy::default();
    };
    let Some(policy) = ApplyPolicy::parse(apply.get_ref()) else {
        c.error(
            Some(apply.span()),
            format!(
                "[pipeline] apply must be one of {}, not '{}'",
                ApplyPolicy::NAMES.join(", "),
                apply.get_ref()
            ),
        );
        return ApplyPolicy::default();
    };
    if !has_workspace && p.workspace.is_none() {
        c.error(
            Some(apply.span()),
            "[pipeline] apply needs a workspace: set [pipeline] workspace = \"DIR\"",
        );
    }
    policy
}

/// `[pipeline] workspace_exclude`: names or relative paths inside the
/// workspace, never empty, absolute or leaving it.
pub(super) fn check_exclude(c: &mut Checker, p: &PipelineSection) -> Vec<String> {
    let Some(list) = &p.workspace_exclude else {
        return Vec::new();
    };
    if p.workspace.is_none() {
        c.error(
            Some(list.span()),
            "[pipeline] workspace_exclude needs a workspace: set [pipeline] workspace = \"DIR\"",
        );
    }
    let mut out = Vec::new();
    for entry in list.get_ref() {
        let text = entry.get_ref().trim_end_matches('/');
        let path = Path::new(text);
        let leaves = path
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)));
        if text.is_empty() || leaves || text.contains('\0') {
            c.error(
                Some(entry.span()),
                format!(
                    "[pipeline] workspace_exclude entry '{}' must be a name or a relative path inside the workspace (no '..', not absolute, not empty)",
                    entry.get_ref()
                ),
            );
            continue;
        }
        out.push(text.to_string());
    }
    out
}

/// `[pipeline] retention`: at least one of `keep` (1 or more) and
/// `older_than` (an age), so that a run never removes itself.
pub(super) fn check_retention(c: &mut Checker, p: &PipelineSection) -> Option<Retention> {
    let section = p.retention.as_ref()?;
    let r = section.get_ref();
    if r.keep.is_none() && r.older_than.is_none() {
        c.error(
            Some(section.span()),
            "[pipeline] retention needs `keep = N` (the N most recent finished runs stay) or `older_than = \"30d\"`, or both",
        );
        return None;
    }
    if let Some(keep) = &r.keep
        && *keep.get_ref() == 0
    {
        c.error(
            Some(keep.span()),
            "[pipeline] retention keep must be at least 1 (the run that just ended is kept)",
        );
    }
    let older_than = r.older_than.as_ref().and_then(|age| {
        Age::parse(age.get_ref())
            .map_err(|e| {
                c.error(
                    Some(age.span()),
                    format!("[pipeline] retention older_than: {e}"),
                )
            })
            .ok()
    });
    Some(Retention {
        keep: r.keep.as_ref().map(|k| *k.get_ref()),
        older_than,
    })
}
