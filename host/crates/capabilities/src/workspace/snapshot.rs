//! The workspace as the run record sees it: snapshots of file hashes taken
//! around a read-write stage, and the changes between them.

use host_vocab::FileChange;
use std::collections::BTreeMap;
use std::path::Path;

/// Directories never snapshotted: version-control internals, not work.
const SKIPPED_DIRS: &[&str] = &[".git", ".hg", ".svn"];

/// Relative path -> blake3 of the file's bytes (of the link target, for a
/// symlink, which is never followed).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot(BTreeMap<String, String>);

impl Snapshot {
    /// Hashes every file under `root`. Unreadable entries are skipped: a
    /// snapshot records what the host can see, it never fails a stage.
    pub fn take(root: &Path) -> Snapshot {
        let mut files = BTreeMap::new();
        let mut pending = vec![root.to_path_buf()];
        while let Some(dir) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(meta) = std::fs::symlink_metadata(&path) else {
                    continue;
                };
                let name = entry.file_name();
                if meta.is_dir() {
                    if !SKIPPED_DIRS.iter().any(|s| name == *s) {
                        pending.push(path);
                    }
                    continue;
                }
                let hash = if meta.file_type().is_symlink() {
                    std::fs::read_link(&path)
                        .ok()
                        .map(|t| blake3::hash(t.to_string_lossy().as_bytes()))
                } else {
                    hash_file(&path)
                };
                if let (Some(hash), Ok(rel)) = (hash, path.strip_prefix(root)) {
                    let rel: Vec<String> = rel
                        .components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect();
                    files.insert(rel.join("/"), hash.to_hex().to_string());
                }
            }
        }
        Snapshot(files)
    }

    /// What changed from `self` to `after`, in path order.
    pub fn changes(&self, after: &Snapshot) -> Vec<FileChange> {
        let mut out = Vec::new();
        for (path, hash) in &self.0 {
            match after.0.get(path) {
                Some(h) if h == hash => {}
                other => out.push(FileChange {
                    path: path.clone(),
                    before: Some(hash.clone()),
                    after: other.cloned(),
                }),
            }
        }
        for (path, hash) in &after.0 {
            if !self.0.contains_key(path) {
                out.push(FileChange {
                    path: path.clone(),
                    before: None,
                    after: Some(hash.clone()),
                });
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }
}

fn hash_file(path: &Path) -> Option<blake3::Hash> {
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(std::fs::File::open(path).ok()?).ok()?;
    Some(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_added_changed_and_removed_files() {
        let dir = std::env::temp_dir().join(format!("ws-snap-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("src")).unwrap();
        std::fs::create_dir_all(dir.join(".git")).unwrap();
        std::fs::write(dir.join("src/a.py"), "a = 1\n").unwrap();
        std::fs::write(dir.join("keep.txt"), "same").unwrap();
        std::fs::write(dir.join("gone.txt"), "bye").unwrap();
        let before = Snapshot::take(&dir);
        std::fs::write(dir.join("src/a.py"), "a = 2\n").unwrap();
        std::fs::remove_file(dir.join("gone.txt")).unwrap();
        std::fs::write(dir.join("new.txt"), "hi").unwrap();
        std::fs::write(dir.join(".git/index"), "ignored").unwrap();
        let after = Snapshot::take(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        let changes = before.changes(&after);
        let summary: Vec<(&str, bool, bool)> = changes
            .iter()
            .map(|c| (c.path.as_str(), c.before.is_some(), c.after.is_some()))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("gone.txt", true, false),
                ("new.txt", false, true),
                ("src/a.py", true, true)
            ]
        );
    }
}
