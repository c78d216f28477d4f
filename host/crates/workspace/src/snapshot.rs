//! What a workspace tree holds: every regular file and symlink, by path,
//! with its content hash and mode, and the stat stamp that lets a later
//! scan trust an unchanged file's hash without reading it again.

use crate::walk::{stat, walk};
use crate::{ChangeBounds, Exclusions, WorkspaceError};
use host_vocab::FileChange;
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// One file of a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// blake3 of the bytes (of the target, for a symlink, never followed).
    pub hash: String,
    /// Permission bits.
    pub mode: u32,
    pub symlink: bool,
    pub size: u64,
    stamp: Stamp,
}

impl Entry {
    fn of(hash: String, meta: &std::fs::Metadata) -> Entry {
        Entry {
            hash,
            mode: meta.mode() & 0o7777,
            symlink: meta.file_type().is_symlink(),
            size: meta.size(),
            stamp: Stamp::of(meta),
        }
    }
}

/// What changes whenever a file's content may have: the inode, its size
/// and both times. The ctime cannot be set back by anyone, so a file whose
/// stamp is unchanged has not been written since.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// A tree's files, in path order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    entries: BTreeMap<String, Entry>,
}

impl Snapshot {
    /// Scans `root`. A file whose stamp equals its entry in `known` keeps
    /// that entry's hash; every other file is read. A file that cannot be
    /// read is an error, not a deletion. Sockets, pipes and devices are not
    /// workspace files and are left out.
    pub fn scan(
        root: &Path,
        exclude: &Exclusions,
        known: Option<&Snapshot>,
    ) -> Result<Snapshot, WorkspaceError> {
        Snapshot::scan_within(root, exclude, known, ChangeBounds::NONE)
    }

    /// [`Snapshot::scan`], refusing once the files it has to read (new or
    /// changed since `known`) are more than `bounds` allow, in number or in
    /// bytes: nothing beyond that is read.
    pub fn scan_within(
        root: &Path,
        exclude: &Exclusions,
        known: Option<&Snapshot>,
        bounds: ChangeBounds,
    ) -> Result<Snapshot, WorkspaceError> {
        let mut to_read: u64 = 0;
        let mut unknown: u64 = 0;
        let mut entries = BTreeMap::new();
        walk(root, exclude, |path, rel, meta| {
            let kind = meta.file_type();
            if !kind.is_file() && !kind.is_symlink() {
                return Ok(());
            }
            let hash = match known.and_then(|k| k.entries.get(rel)) {
                Some(e) if e.stamp == Stamp::of(meta) => e.hash.clone(),
                _ => {
                    unknown += 1;
                    if unknown > bounds.files {
                        return Err(WorkspaceError::TooMany {
                            limit: bounds.files,
                        });
                    }
                    to_read = to_read.saturating_add(meta.size());
                    if to_read > bounds.bytes {
                        return Err(WorkspaceError::TooLarge {
                            path: path.to_path_buf(),
                            limit: bounds.bytes,
                        });
                    }
                    hash_entry(path, kind.is_symlink())?
                }
            };
            entries.insert(rel.to_string(), Entry::of(hash, meta));
            Ok(())
        })?;
        Ok(Snapshot { entries })
    }

    /// The same files under another root (a copy just made of this tree):
    /// hashes carried over, stamps taken from the copy.
    pub fn restamp(&self, root: &Path) -> Result<Snapshot, WorkspaceError> {
        let mut entries = BTreeMap::new();
        for (rel, e) in &self.entries {
            let meta = stat(&root.join(rel))?;
            entries.insert(
                rel.clone(),
                Entry {
                    stamp: Stamp::of(&meta),
                    ..e.clone()
                },
            );
        }
        Ok(Snapshot { entries })
    }

    pub fn get(&self, rel: &str) -> Option<&Entry> {
        self.entries.get(rel)
    }

    /// Records that `rel` now is `entry` (a change applied to the tree),
    /// or is gone.
    pub(crate) fn set(&mut self, rel: &str, entry: Option<Entry>) {
        match entry {
            Some(e) => self.entries.insert(rel.to_string(), e),
            None => self.entries.remove(rel),
        };
    }

    /// The entry of `path` as it is on disk now, with a known hash.
    pub(crate) fn entry_of(path: &Path, hash: String) -> Result<Entry, WorkspaceError> {
        Ok(Entry::of(hash, &stat(path)?))
    }

    /// What changed from `self` to `after`, in path order: content, mode or
    /// kind (a file that became a symlink).
    pub fn changes(&self, after: &Snapshot) -> Vec<FileChange> {
        let mut out = Vec::new();
        for (path, b) in &self.entries {
            match after.entries.get(path) {
                Some(a) if a.hash == b.hash && a.mode == b.mode && a.symlink == b.symlink => {}
                Some(a) => out.push(FileChange {
                    path: path.clone(),
                    before: Some(b.hash.clone()),
                    after: Some(a.hash.clone()),
                    mode: Some(a.mode),
                    symlink: a.symlink,
                }),
                None => out.push(FileChange {
                    path: path.clone(),
                    before: Some(b.hash.clone()),
                    after: None,
                    mode: None,
                    symlink: false,
                }),
            }
        }
        for (path, a) in &after.entries {
            if !self.entries.contains_key(path) {
                out.push(FileChange {
                    path: path.clone(),
                    before: None,
                    after: Some(a.hash.clone()),
                    mode: Some(a.mode),
                    symlink: a.symlink,
                });
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }
}

/// blake3 of a file's bytes, or of a symlink's target.
pub fn hash_entry(path: &Path, symlink: bool) -> Result<String, WorkspaceError> {
    let hash = if symlink {
        let target = std::fs::read_link(path).map_err(|e| WorkspaceError::io("read", path, e))?;
        blake3::hash(target.as_os_str().as_encoded_bytes())
    } else {
        let file = std::fs::File::open(path).map_err(|e| WorkspaceError::io("read", path, e))?;
        let mut hasher = blake3::Hasher::new();
        hasher
            .update_reader(file)
            .map_err(|e| WorkspaceError::io("read", path, e))?;
        hasher.finalize()
    };
    Ok(hash.to_hex().to_string())
}

/// The bytes a change's blob holds: the file's, or a symlink's target.
pub fn read_entry(path: &Path, symlink: bool) -> Result<Vec<u8>, WorkspaceError> {
    if symlink {
        let target = std::fs::read_link(path).map_err(|e| WorkspaceError::io("read", path, e))?;
        Ok(target.into_os_string().into_encoded_bytes())
    } else {
        std::fs::read(path).map_err(|e| WorkspaceError::io("read", path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn summary(changes: &[FileChange]) -> Vec<(&str, bool, bool)> {
        changes
            .iter()
            .map(|c| (c.path.as_str(), c.before.is_some(), c.after.is_some()))
            .collect()
    }

    #[test]
    fn finds_added_changed_removed_and_chmodded_files_but_not_excluded_ones() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::create_dir_all(root.join("target")).unwrap();
        std::fs::write(root.join("src/a.py"), "a = 1\n").unwrap();
        std::fs::write(root.join("keep.txt"), "same").unwrap();
        std::fs::write(root.join("gone.txt"), "bye").unwrap();
        std::fs::write(root.join("run.sh"), "echo").unwrap();
        let exclude = Exclusions::new(&["target".into()]);
        let before = Snapshot::scan(root, &exclude, None).unwrap();
        std::fs::write(root.join("src/a.py"), "a = 2\n").unwrap();
        std::fs::remove_file(root.join("gone.txt")).unwrap();
        std::fs::write(root.join("new.txt"), "hi").unwrap();
        std::fs::write(root.join(".git/index"), "ignored").unwrap();
        std::fs::write(root.join("target/out.o"), "ignored").unwrap();
        std::fs::set_permissions(root.join("run.sh"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let after = Snapshot::scan(root, &exclude, Some(&before)).unwrap();
        let changes = before.changes(&after);
        assert_eq!(
            summary(&changes),
            vec![
                ("gone.txt", true, false),
                ("new.txt", false, true),
                ("run.sh", true, true),
                ("src/a.py", true, true)
            ]
        );
        assert_eq!(changes[2].before, changes[2].after, "a mode change only");
        assert_eq!(changes[2].mode, Some(0o755));
    }

    #[test]
    fn an_unchanged_stamp_keeps_the_known_hash_and_a_rewrite_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("f"), "one").unwrap();
        let first = Snapshot::scan(root, &Exclusions::default(), None).unwrap();
        // A known hash that is not the file's: kept only while the stamp holds.
        let mut known = first.clone();
        let mut e = known.get("f").unwrap().clone();
        e.hash = "planted".into();
        known.set("f", Some(e));
        let again = Snapshot::scan(root, &Exclusions::default(), Some(&known)).unwrap();
        assert_eq!(again.get("f").unwrap().hash, "planted");
        std::fs::write(root.join("f"), "two").unwrap();
        let after = Snapshot::scan(root, &Exclusions::default(), Some(&known)).unwrap();
        assert_eq!(
            after.get("f").unwrap().hash,
            blake3::hash(b"two").to_hex().to_string()
        );
    }

    #[test]
    fn a_symlink_is_recorded_by_its_target_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::os::unix::fs::symlink("/etc/passwd", root.join("link")).unwrap();
        let snap = Snapshot::scan(root, &Exclusions::default(), None).unwrap();
        let e = snap.get("link").unwrap();
        assert!(e.symlink);
        assert_eq!(e.hash, blake3::hash(b"/etc/passwd").to_hex().to_string());
    }
}
