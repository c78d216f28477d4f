//! Reading the project in the workspace for a prompt: its file list and the
//! contents of its small text files, within a budget so a big repository
//! does not blow up the context.

use std::path::Path;

/// Entries never listed: hidden files, caches, build output.
fn ignored(name: &str) -> bool {
    name.starts_with('.')
        || matches!(
            name,
            "__pycache__" | "node_modules" | "target" | "venv" | "dist" | "build"
        )
}

/// Every file under `root`, relative, sorted.
pub fn files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if ignored(&name) {
                continue;
            }
            let path = e.path();
            if path.is_dir() {
                todo.push(path);
            } else if let Ok(rel) = path.strip_prefix(root) {
                out.push(rel.display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// The files' contents as a prompt section: `--- path ---` then the text,
/// for text files up to `max_file` bytes, until `max_total` bytes.
pub fn context(root: &Path, max_file: usize, max_total: usize) -> String {
    let mut out = String::new();
    for rel in files(root) {
        let Ok(text) = std::fs::read_to_string(root.join(&rel)) else {
            continue;
        };
        if text.len() > max_file || out.len() + text.len() > max_total {
            out.push_str(&format!(
                "--- {rel} --- ({} bytes, not shown)\n",
                text.len()
            ));
            continue;
        }
        out.push_str(&format!("--- {rel} ---\n{text}\n"));
    }
    out
}

/// The content of the named files, as `context` shows them.
pub fn show(root: &Path, paths: &[String], max_total: usize) -> String {
    let mut out = String::new();
    for rel in paths {
        let Some(safe) = crate::files::safe_relative(rel) else {
            continue;
        };
        match std::fs::read_to_string(root.join(safe)) {
            Ok(text) if out.len() + text.len() <= max_total => {
                out.push_str(&format!("--- {rel} ---\n{text}\n"));
            }
            Ok(text) => out.push_str(&format!(
                "--- {rel} --- ({} bytes, not shown)\n",
                text.len()
            )),
            Err(_) => out.push_str(&format!("--- {rel} --- (deleted)\n")),
        }
    }
    out
}

/// The artifact in which the host lists the workspace files a read-write
/// stage changed (path, blake3 before and after).
pub const CHANGES_ARTIFACT: &str = "workspace-changes.json";

/// The paths an upstream stage changed in the workspace, from the host's
/// changes artifact (empty when no upstream changed anything).
pub fn changed_files(input: &plugin_sdk::Input) -> Vec<String> {
    input
        .artifact(CHANGES_ARTIFACT)
        .and_then(|a| a.as_json::<Vec<serde_json::Value>>().ok())
        .map(|changes| {
            changes
                .iter()
                .filter_map(|c| c["path"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_shows_within_budget() {
        let dir = std::env::temp_dir().join(format!("sdk-project-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("src/__pycache__")).unwrap();
        std::fs::create_dir_all(dir.join(".git")).unwrap();
        std::fs::write(dir.join("src/a.py"), "a = 1\n").unwrap();
        std::fs::write(dir.join("src/__pycache__/a.pyc"), "x").unwrap();
        std::fs::write(dir.join(".git/HEAD"), "x").unwrap();
        std::fs::write(dir.join("big.txt"), "x".repeat(100)).unwrap();
        assert_eq!(files(&dir), vec!["big.txt", "src/a.py"]);
        let c = context(&dir, 50, 1000);
        assert!(c.contains("--- src/a.py ---\na = 1\n"));
        assert!(c.contains("--- big.txt --- (100 bytes, not shown)"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
