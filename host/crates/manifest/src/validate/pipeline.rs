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
