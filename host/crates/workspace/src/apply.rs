//! Writing changesets into a directory: the run's own tree as stages
//! commit, and the user's workspace when the run's changes are applied.
//! Every file is written beside its place and renamed over it, so a file is
//! either as it was or as the change says, never half-written.

use crate::WorkspaceError;
use crate::snapshot::hash_entry;
use host_vocab::FileChange;
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// A file that is neither as the run found it nor as the run left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub path: String,
    /// What the run expected there (blake3; `None`: no file).
    pub expected: Option<String>,
    /// What is there now (`None`: no file).
    pub found: Option<String>,
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match (&self.expected, &self.found) {
            (None, Some(_)) => "was created since the run began",
            (Some(_), None) => "was deleted since the run began",
            _ => "was changed since the run began",
        };
        write!(f, "{} {what}", self.path)
    }
}

/// The changes of several changesets, in commit order, folded into one per
/// path: first `before`, last `after`. A file a run created and deleted
/// again is no change.
pub fn net_changes<'a>(sets: impl IntoIterator<Item = &'a [FileChange]>) -> Vec<FileChange> {
    let mut net: BTreeMap<String, FileChange> = BTreeMap::new();
    for set in sets {
        for c in set {
            net.entry(c.path.clone())
                .and_modify(|n| {
                    n.after = c.after.clone();
                    n.mode = c.mode;
                    n.symlink = c.symlink;
                })
                .or_insert_with(|| c.clone());
        }
    }
    net.into_values()
        .filter(|c| c.before.is_some() || c.after.is_some())
        .collect()
}

/// What is at `rel` under `root` now: its hash, `None` if no file is (a
/// directory there is emptied by the changeset's deletions, or the write
/// fails naming it).
fn current(root: &Path, rel: &str) -> Result<Option<String>, WorkspaceError> {
    let path = root.join(rel);
    match std::fs::symlink_metadata(&path) {
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(WorkspaceError::io("stat", &path, e)),
        Ok(meta) if meta.is_dir() => Ok(None),
        Ok(meta) => hash_entry(&path, meta.file_type().is_symlink()).map(Some),
    }
}

/// The changes whose file under `root` is neither their `before` nor their
/// `after` (already applied).
pub fn conflicts(root: &Path, changes: &[FileChange]) -> Result<Vec<Conflict>, WorkspaceError> {
    let mut out = Vec::new();
    for c in changes {
        let found = current(root, &c.path)?;
        if found != c.before && found != c.after {
            out.push(Conflict {
                path: c.path.clone(),
                expected: c.before.clone(),
                found,
            });
        }
    }
    Ok(out)
}

/// What applying did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyStats {
    pub written: usize,
    pub deleted: usize,
    /// Already as the change says (an earlier apply that was interrupted).
    pub unchanged: usize,
}

/// Writes `changes` under `root`, contents by hash from `blob`. Deletions
/// first, so a file may become a directory and back. Directories left empty
/// by a deletion are removed; missing parents are created. Call
/// [`conflicts`] first where the directory is not the host's own.
pub fn apply_changes(
    root: &Path,
    changes: &[FileChange],
    blob: &dyn Fn(&str) -> Result<Vec<u8>, WorkspaceError>,
) -> Result<ApplyStats, WorkspaceError> {
    let mut stats = ApplyStats::default();
    for c in changes.iter().filter(|c| c.after.is_none()) {
        let path = root.join(&c.path);
        match std::fs::remove_file(&path) {
            Ok(()) => stats.deleted += 1,
            // Gone already, or a parent became a file: nothing to delete.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                stats.unchanged += 1
            }
            Err(e) => return Err(WorkspaceError::io("delete", &path, e)),
        }
        prune_empty_parents(root, &path);
    }
    for c in changes {
        let Some(after) = &c.after else { continue };
        let path = root.join(&c.path);
        let mode = c.mode.unwrap_or(0o644);
        if current(root, &c.path)?.as_deref() == Some(after.as_str()) {
            // A symlink has no mode of its own (chmod would follow it).
            if !c.symlink {
                let perms = std::fs::Permissions::from_mode(mode);
                std::fs::set_permissions(&path, perms)
                    .map_err(|e| WorkspaceError::io("chmod", &path, e))?;
            }
            stats.unchanged += 1;
            continue;
        }
        let bytes = blob(after)?;
        write_replacing(&path, &bytes, mode, c.symlink)?;
        stats.written += 1;
    }
    Ok(stats)
}

/// Writes `path` by a temporary file renamed over it, synced first.
fn write_replacing(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    symlink: bool,
) -> Result<(), WorkspaceError> {
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| WorkspaceError::io("create", parent, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = parent.join(format!(".{name}.host-{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&temp);
    let written = if symlink {
        let target = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(bytes);
        std::os::unix::fs::symlink(target, &temp)
    } else {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temp)
            .and_then(|mut f| {
                f.write_all(bytes)?;
                f.set_permissions(std::fs::Permissions::from_mode(mode))?;
                f.sync_all()
            })
    };
    if let Err(e) = written.and_then(|()| std::fs::rename(&temp, path)) {
        let _ = std::fs::remove_file(&temp);
        return Err(WorkspaceError::io("write", path, e));
    }
    Ok(())
}

fn prune_empty_parents(root: &Path, path: &Path) {
    let mut dir = path.parent();
    while let Some(d) = dir {
        if d == root || !d.starts_with(root) || std::fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Exclusions, Snapshot};
    use std::collections::HashMap;

    fn hash(b: &[u8]) -> String {
        blake3::hash(b).to_hex().to_string()
    }

    /// A changeset from two trees, with its blobs.
    fn changeset(before: &Path, after: &Path) -> (Vec<FileChange>, HashMap<String, Vec<u8>>) {
        let ex = Exclusions::default();
        let b = Snapshot::scan(before, &ex, None).unwrap();
        let a = Snapshot::scan(after, &ex, None).unwrap();
        let changes = b.changes(&a);
        let mut blobs = HashMap::new();
        for c in &changes {
            if let Some(h) = &c.after {
                let e = a.get(&c.path).unwrap();
                blobs.insert(
                    h.clone(),
                    crate::snapshot::read_entry(&after.join(&c.path), e.symlink).unwrap(),
                );
            }
        }
        (changes, blobs)
    }

    #[test]
    fn a_changeset_applied_makes_the_same_tree_and_twice_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        for root in [&a, &b] {
            std::fs::create_dir_all(root.join("old/dir")).unwrap();
            std::fs::write(root.join("same.txt"), "same").unwrap();
            std::fs::write(root.join("old/dir/gone.txt"), "gone").unwrap();
            std::fs::write(root.join("edit.txt"), "one").unwrap();
        }
        std::fs::write(b.join("edit.txt"), "two").unwrap();
        std::fs::remove_dir_all(b.join("old")).unwrap();
        std::fs::write(b.join("old"), "a file where a directory was").unwrap();
        std::fs::create_dir_all(b.join("new/deep")).unwrap();
        std::fs::write(b.join("new/deep/x.sh"), "#!/bin/sh").unwrap();
        std::fs::set_permissions(
            b.join("new/deep/x.sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::os::unix::fs::symlink("edit.txt", b.join("link")).unwrap();
        let (changes, blobs) = changeset(&a, &b);
        let get = |h: &str| {
            blobs
                .get(h)
                .cloned()
                .ok_or_else(|| WorkspaceError::MissingBlob(h.into()))
        };
        assert!(conflicts(&a, &changes).unwrap().is_empty());
        let stats = apply_changes(&a, &changes, &get).unwrap();
        assert_eq!((stats.written, stats.deleted), (4, 1));
        let ex = Exclusions::default();
        assert_eq!(
            Snapshot::scan(&a, &ex, None)
                .unwrap()
                .changes(&Snapshot::scan(&b, &ex, None).unwrap()),
            vec![]
        );
        let again = apply_changes(&a, &changes, &get).unwrap();
        assert_eq!(again.written, 0, "{again:?}");
        assert!(
            conflicts(&a, &changes).unwrap().is_empty(),
            "applied is not a conflict"
        );
    }

    #[test]
    fn a_file_changed_since_is_a_conflict_named_by_path() {
        let dir = tempfile::tempdir().unwrap();
        let change = FileChange {
            path: "src/a.py".into(),
            before: Some(hash(b"a = 1\n")),
            after: Some(hash(b"a = 2\n")),
            mode: Some(0o644),
            symlink: false,
        };
        let created = FileChange {
            path: "new.txt".into(),
            before: None,
            after: Some(hash(b"new")),
            mode: Some(0o644),
            symlink: false,
        };
        std::fs::create_dir_all(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/a.py"), "a = 3\n").unwrap();
        std::fs::write(dir.path().join("new.txt"), "someone else's").unwrap();
        let found = conflicts(dir.path(), &[change, created]).unwrap();
        let text: Vec<String> = found.iter().map(|c| c.to_string()).collect();
        assert_eq!(
            text,
            [
                "src/a.py was changed since the run began",
                "new.txt was created since the run began"
            ]
        );
    }

    #[test]
    fn net_changes_keep_the_first_before_and_the_last_after() {
        let c = |path: &str, before: Option<&str>, after: Option<&str>| FileChange {
            path: path.into(),
            before: before.map(str::to_string),
            after: after.map(str::to_string),
            mode: after.map(|_| 0o644),
            symlink: false,
        };
        let first = vec![c("a", Some("1"), Some("2")), c("tmp", None, Some("t"))];
        let second = vec![c("a", Some("2"), Some("3")), c("tmp", Some("t"), None)];
        let net = net_changes([first.as_slice(), second.as_slice()]);
        assert_eq!(net, vec![c("a", Some("1"), Some("3"))]);
    }
}
