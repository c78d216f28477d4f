//! A run's own copy of the workspace (its "tree"): the user's files as the
//! run found them plus every changeset its stages committed, in commit
//! order. Stages never write it: a read-write attempt (or one that runs
//! gates) works on a private copy of it, and only a committed changeset
//! reaches it. A journal file says how many changesets it holds, so a host
//! killed between a commit and its copy catches up on resume.
//!
//! Layout under the state directory: `workspaces/RUN/tree`,
//! `workspaces/RUN/applied` (the journal), `workspaces/RUN/attempts/*`.

use crate::ChangeBounds;
use crate::apply::{Conflict, apply_changes};
use crate::containment::{escapes, links_made, track_link};
use crate::copy::{CopyStats, copy_tree};
use crate::snapshot::read_entry;
use crate::{Exclusions, Snapshot, WorkspaceError};
use host_vocab::FileChange;
use host_vocab::first_few;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Contents by blake3, as a changeset's blobs.
pub type Blobs = HashMap<String, Vec<u8>>;

/// Where one attempt sees the workspace.
#[derive(Debug)]
pub enum Place {
    /// The run's tree itself, read-only (a stage that writes nothing and
    /// runs no gates).
    Shared(PathBuf),
    /// A private copy, discarded after the attempt; `base` is the tree as
    /// it was copied, what the attempt's changes are relative to.
    Private { dir: PathBuf, base: Snapshot },
}

impl Place {
    pub fn dir(&self) -> &Path {
        match self {
            Place::Shared(dir) | Place::Private { dir, .. } => dir,
        }
    }
}

/// Why an attempt's changes were not committed.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("{}", conflict_text(.0))]
    Conflict(Vec<Conflict>),
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
}

fn conflict_text(conflicts: &[Conflict]) -> String {
    format!(
        "another stage of this run committed changes to {} since this attempt began",
        first_few(conflicts.iter().map(|c| c.path.clone()), ", ")
    )
}

struct Tree {
    snapshot: Snapshot,
    /// Changesets the tree holds.
    applied: usize,
    /// A committed changeset could not be copied into the tree: attempts
    /// are refused until a resume repairs it from the journal.
    stale: Option<String>,
    /// Symlinks the run's changesets made: never taken for the user's own.
    made_links: BTreeSet<String>,
}

pub struct RunWorkspace {
    root: PathBuf,
    exclude: Exclusions,
    tree: Mutex<Tree>,
    /// What creating the tree copied (zero when it already existed).
    pub created: CopyStats,
}

impl RunWorkspace {
    /// Opens run `run`'s tree under `state_dir`, creating it from `source`
    /// if it is not there, and brings it up to `committed` (every changeset
    /// the run committed, in order; contents from `blob`). Leftovers of
    /// attempts of a process that died are removed.
    pub fn open(
        source: &Path,
        state_dir: &Path,
        run: &str,
        exclude: Exclusions,
        committed: &[Vec<FileChange>],
        blob: &dyn Fn(&str) -> Result<Vec<u8>, WorkspaceError>,
    ) -> Result<RunWorkspace, WorkspaceError> {
        let root = run_dir(state_dir, run);
        let tree_dir = root.join("tree");
        let attempts = root.join("attempts");
        remove_all(&attempts)?;
        let journal = root.join("applied");
        let mut created = CopyStats::default();
        let applied = match (tree_dir.is_dir(), read_journal(&journal)) {
            (true, Some(n)) if n <= committed.len() => n,
            _ => {
                remove_all(&tree_dir)?;
                let fresh = root.join("tree.new");
                remove_all(&fresh)?;
                std::fs::create_dir_all(&root)
                    .map_err(|e| WorkspaceError::io("create", &root, e))?;
                created = copy_tree(source, &fresh, &exclude)?;
                std::fs::rename(&fresh, &tree_dir)
                    .map_err(|e| WorkspaceError::io("rename", &fresh, e))?;
                0
            }
        };
        for set in &committed[applied..] {
            apply_changes(&tree_dir, set, blob)?;
        }
        write_journal(&journal, committed.len())?;
        let snapshot = Snapshot::scan(&tree_dir, &exclude, None)?;
        Ok(RunWorkspace {
            root,
            exclude,
            tree: Mutex::new(Tree {
                snapshot,
                applied: committed.len(),
                stale: None,
                made_links: links_made(committed.iter().map(Vec::as_slice)),
            }),
            created,
        })
    }

    /// The run's tree: what read-only stages see.
    pub fn tree_dir(&self) -> PathBuf {
        self.root.join("tree")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tree> {
        // A panic while holding it leaves nothing half-done in the tree that
        // the journal does not cover: go on with it.
        self.tree.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A private copy of the tree for one attempt, named by `attempt_key`
    /// (unique within the run).
    pub fn private_copy(&self, attempt_key: &str) -> Result<Place, WorkspaceError> {
        let dir = self.root.join("attempts").join(safe_name(attempt_key));
        remove_all(&dir)?;
        let parent = self.root.join("attempts");
        std::fs::create_dir_all(&parent).map_err(|e| WorkspaceError::io("create", &parent, e))?;
        let tree = self.lock();
        if let Some(why) = &tree.stale {
            return Err(WorkspaceError::Stale(why.clone()));
        }
        copy_tree(&self.tree_dir(), &dir, &self.exclude)?;
        let base = tree.snapshot.restamp(&dir)?;
        Ok(Place::Private { dir, base })
    }

    /// What an attempt changed in its private copy (none in the shared
    /// tree). Refused if the changes are more than `bounds` allow (found
    /// from the files' sizes, before any is read), or if the copy holds a
    /// symlink leading outside the workspace.
    pub fn changes(
        &self,
        place: &Place,
        bounds: ChangeBounds,
    ) -> Result<Vec<FileChange>, WorkspaceError> {
        match place {
            Place::Shared(_) => Ok(Vec::new()),
            Place::Private { dir, base } => {
                let after = Snapshot::scan_within(dir, &self.exclude, Some(base), bounds)?;
                let changes = base.changes(&after);
                if changes.len() as u64 > bounds.files {
                    return Err(WorkspaceError::TooMany {
                        limit: bounds.files,
                    });
                }
                // Both sides are stored: what a change replaces or deletes
                // counts as much as what it writes.
                let size = |s: &Snapshot, p: &str| s.get(p).map_or(0, |e| e.size);
                let total: u64 = changes
                    .iter()
                    .map(|c| size(base, &c.path) + size(&after, &c.path))
                    .sum();
                if total > bounds.bytes {
                    let path = changes
                        .last()
                        .map(|c| dir.join(&c.path))
                        .unwrap_or_default();
                    return Err(WorkspaceError::TooLarge {
                        path,
                        limit: bounds.bytes,
                    });
                }
                self.contained(place)?;
                Ok(changes)
            }
        }
    }

    /// Refuses an attempt's copy that holds a symlink leading outside it
    /// (one the run made, or that differs from the user's own): checked
    /// before a gate runs there and before its changes are committed.
    pub fn contained(&self, place: &Place) -> Result<(), WorkspaceError> {
        let Place::Private { dir, base } = place else {
            return Ok(());
        };
        let made = self.lock().made_links.clone();
        let found = escapes(dir, &self.exclude, base, &made)?;
        if found.is_empty() {
            Ok(())
        } else {
            Err(WorkspaceError::Escapes(found))
        }
    }

    /// Commits an attempt's changes: checks they still apply to the tree
    /// (another stage may have committed the same files since the copy was
    /// made), reads their contents, calls `record` with them (the store's
    /// transaction), then writes them into the tree. Nothing reaches the
    /// tree unless `record` succeeded.
    pub fn commit<T, E>(
        &self,
        place: &Place,
        changes: &[FileChange],
        record: impl FnOnce(Blobs) -> Result<T, E>,
    ) -> Result<Result<T, E>, CommitError> {
        let Place::Private { dir, .. } = place else {
            return Ok(record(Blobs::new()));
        };
        let mut tree = self.lock();
        let conflicts: Vec<Conflict> = changes
            .iter()
            .filter_map(|c| {
                let now = tree.snapshot.get(&c.path).map(|e| e.hash.clone());
                (now != c.before).then(|| Conflict {
                    path: c.path.clone(),
                    expected: c.before.clone(),
                    found: now,
                })
            })
            .collect();
        if !conflicts.is_empty() {
            return Err(CommitError::Conflict(conflicts));
        }
        let blobs = self.blobs(dir, &tree.snapshot, changes)?;
        let recorded = record(blobs.clone());
        if recorded.is_err() {
            return Ok(recorded);
        }
        let get = |h: &str| {
            blobs
                .get(h)
                .cloned()
                .ok_or_else(|| WorkspaceError::MissingBlob(h.to_string()))
        };
        let tree_dir = self.tree_dir();
        let copied = apply_changes(&tree_dir, changes, &get).and_then(|_| {
            for c in changes {
                let entry = match &c.after {
                    Some(h) => Some(Snapshot::entry_of(&tree_dir.join(&c.path), h.clone())?),
                    None => None,
                };
                tree.snapshot.set(&c.path, entry);
                track_link(&mut tree.made_links, c);
            }
            tree.applied += 1;
            write_journal(&self.root.join("applied"), tree.applied)
        });
        if let Err(e) = copied {
            tracing::error!("the run's workspace tree fell behind its record: {e}");
            tree.stale = Some(e.to_string());
        }
        Ok(recorded)
    }

    /// Both sides of every change, checked against the hashes the scan saw
    /// (a process a gate left behind may still be writing).
    fn blobs(
        &self,
        dir: &Path,
        tree: &Snapshot,
        changes: &[FileChange],
    ) -> Result<Blobs, WorkspaceError> {
        let mut blobs = Blobs::new();
        for c in changes {
            if let (Some(h), Some(e)) = (&c.before, tree.get(&c.path))
                && !blobs.contains_key(h)
            {
                blobs.insert(
                    h.clone(),
                    read_entry(&self.tree_dir().join(&c.path), e.symlink)?,
                );
            }
            if let Some(h) = &c.after
                && !blobs.contains_key(h)
            {
                let path = dir.join(&c.path);
                let bytes = read_entry(&path, c.symlink)?;
                if blake3::hash(&bytes).to_hex().as_str() != h {
                    return Err(WorkspaceError::ChangedWhileCommitting(path));
                }
                blobs.insert(h.clone(), bytes);
            }
        }
        Ok(blobs)
    }

    /// Removes an attempt's private copy.
    pub fn discard(&self, place: &Place) {
        if let Place::Private { dir, .. } = place
            && let Err(e) = remove_all(dir)
        {
            tracing::warn!("cannot remove an attempt's copy of the workspace: {e}");
        }
    }

    /// Removes the run's tree and everything beside it: the run is over and
    /// its changes are in the store.
    pub fn remove(&self) {
        if let Err(e) = remove_all(&self.root) {
            tracing::warn!("cannot remove the run's copy of the workspace: {e}");
        }
    }
}

/// A file name for a run or attempt id: its safe characters and a hash, so
/// two ids never share a directory.
fn safe_name(id: &str) -> String {
    let kept: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    if kept == id && !id.starts_with('.') {
        return kept;
    }
    let hash = blake3::hash(id.as_bytes()).to_hex();
    format!("{kept}-{}", &hash[..12])
}

/// Where run `run`'s copy of the workspace lives under `state_dir`.
pub fn run_dir(state_dir: &Path, run: &str) -> PathBuf {
    state_dir.join("workspaces").join(safe_name(run))
}

fn remove_all(dir: &Path) -> Result<(), WorkspaceError> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(WorkspaceError::io("remove", dir, e))
        }
        _ => Ok(()),
    }
}

fn read_journal(path: &Path) -> Option<usize> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn write_journal(path: &Path, applied: usize) -> Result<(), WorkspaceError> {
    let temp = path.with_extension("new");
    std::fs::write(&temp, format!("{applied}\n"))
        .and_then(|()| std::fs::rename(&temp, path))
        .map_err(|e| WorkspaceError::io("write", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: ChangeBounds = ChangeBounds {
        files: host_vocab::limits::DEFAULT_MAX_CHANGED_FILES,
        bytes: host_vocab::limits::DEFAULT_MAX_CHANGED_BYTES,
    };

    fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("project");
        std::fs::create_dir_all(source.join("src")).unwrap();
        std::fs::write(source.join("src/a.py"), "a = 1\n").unwrap();
        std::fs::write(source.join("README"), "hello\n").unwrap();
        let state = dir.path().join("state");
        (dir, source, state)
    }

    /// Run r1's tree, as `RunWorkspace::open` makes it, nothing excluded.
    fn open_run(
        source: &Path,
        state: &Path,
        committed: &[Vec<FileChange>],
        blob: &dyn Fn(&str) -> Result<Vec<u8>, WorkspaceError>,
    ) -> RunWorkspace {
        RunWorkspace::open(source, state, "r1", Exclusions::default(), committed, blob).unwrap()
    }

    fn no_blobs(h: &str) -> Result<Vec<u8>, WorkspaceError> {
        Err(WorkspaceError::MissingBlob(h.into()))
    }

    #[test]
    fn an_attempt_works_on_a_copy_and_only_its_commit_reaches_the_tree() {
        let (_d, source, state) = setup();
        let ws = open_run(&source, &state, &[], &no_blobs);
        assert_eq!(ws.created.files, 2);
        let place = ws.private_copy("s.0.1").unwrap();
        std::fs::write(place.dir().join("src/a.py"), "a = 2\n").unwrap();
        std::fs::write(place.dir().join("new.txt"), "n\n").unwrap();
        let changes = ws.changes(&place, BOUNDS).unwrap();
        assert_eq!(changes.len(), 2);
        // Before the commit the tree is as the user's files were.
        assert_eq!(
            std::fs::read_to_string(ws.tree_dir().join("src/a.py")).unwrap(),
            "a = 1\n"
        );
        let mut stored = Blobs::new();
        let r: Result<(), ()> = ws
            .commit(&place, &changes, |blobs| {
                stored = blobs;
                Ok(())
            })
            .unwrap();
        r.unwrap();
        assert_eq!(stored.len(), 3, "both sides of the edit and the new file");
        assert_eq!(
            std::fs::read_to_string(ws.tree_dir().join("src/a.py")).unwrap(),
            "a = 2\n"
        );
        assert_eq!(
            std::fs::read_to_string(source.join("src/a.py")).unwrap(),
            "a = 1\n",
            "the user's files are untouched"
        );
        ws.discard(&place);
        assert!(
            ws.changes(&ws.private_copy("s.0.2").unwrap(), BOUNDS)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_failed_record_leaves_the_tree_and_a_parallel_edit_is_a_conflict() {
        let (_d, source, state) = setup();
        let ws = open_run(&source, &state, &[], &no_blobs);
        let first = ws.private_copy("a").unwrap();
        let second = ws.private_copy("b").unwrap();
        std::fs::write(first.dir().join("src/a.py"), "first\n").unwrap();
        std::fs::write(second.dir().join("src/a.py"), "second\n").unwrap();
        let c1 = ws.changes(&first, BOUNDS).unwrap();
        let refused: Result<(), &str> = ws.commit(&first, &c1, |_| Err("disk full")).unwrap();
        assert!(refused.is_err());
        assert_eq!(
            std::fs::read_to_string(ws.tree_dir().join("src/a.py")).unwrap(),
            "a = 1\n"
        );
        ws.commit::<(), ()>(&first, &c1, |_| Ok(()))
            .unwrap()
            .unwrap();
        let c2 = ws.changes(&second, BOUNDS).unwrap();
        let err = ws.commit::<(), ()>(&second, &c2, |_| Ok(())).unwrap_err();
        assert!(err.to_string().contains("src/a.py"), "{err}");
        assert_eq!(
            std::fs::read_to_string(ws.tree_dir().join("src/a.py")).unwrap(),
            "first\n"
        );
    }

    #[test]
    fn a_tree_behind_its_journal_catches_up_from_the_blobs_and_a_lost_one_is_rebuilt() {
        let (_d, source, state) = setup();
        let change = FileChange {
            path: "src/a.py".into(),
            before: Some(blake3::hash(b"a = 1\n").to_hex().to_string()),
            after: Some(blake3::hash(b"a = 9\n").to_hex().to_string()),
            mode: Some(0o644),
            symlink: false,
        };
        let blob = |_: &str| Ok(b"a = 9\n".to_vec());
        // The first process made the tree, committed a changeset, and died
        // before copying it into the tree.
        drop(open_run(&source, &state, &[], &no_blobs));
        let committed = vec![vec![change]];
        let ws = open_run(&source, &state, &committed, &blob);
        assert_eq!(ws.created.files, 0, "the tree was kept");
        assert_eq!(
            std::fs::read_to_string(ws.tree_dir().join("src/a.py")).unwrap(),
            "a = 9\n"
        );
        ws.remove();
        let again = open_run(&source, &state, &committed, &blob);
        assert_eq!(again.created.files, 2, "rebuilt from the user's files");
        assert_eq!(
            std::fs::read_to_string(again.tree_dir().join("src/a.py")).unwrap(),
            "a = 9\n"
        );
    }

    #[test]
    fn a_huge_sparse_file_is_refused_from_its_size_without_being_read() {
        let (_d, source, state) = setup();
        let ws = open_run(&source, &state, &[], &no_blobs);
        let place = ws.private_copy("s.0.1").unwrap();
        let f = std::fs::File::create(place.dir().join("huge.bin")).unwrap();
        f.set_len(1 << 40).unwrap(); // 1 TiB of hole
        // Refused from its size: hashing a terabyte would never return.
        let err = ws.changes(&place, BOUNDS).unwrap_err();
        assert!(matches!(err, WorkspaceError::TooLarge { .. }), "{err}");
        assert!(err.to_string().contains("huge.bin"), "{err}");
        ws.discard(&place);
    }

    #[test]
    fn too_many_files_are_refused_before_they_are_read() {
        let (_d, source, state) = setup();
        let ws = open_run(&source, &state, &[], &no_blobs);
        let place = ws.private_copy("s.0.1").unwrap();
        for i in 0..11 {
            std::fs::write(place.dir().join(format!("f{i}")), "x").unwrap();
        }
        let few = ChangeBounds {
            files: 10,
            ..BOUNDS
        };
        let err = ws.changes(&place, few).unwrap_err();
        assert!(
            matches!(err, WorkspaceError::TooMany { limit: 10 }),
            "{err}"
        );
        assert_eq!(ws.changes(&place, BOUNDS).unwrap().len(), 11);
    }

    #[test]
    fn a_link_out_of_the_workspace_is_refused_and_a_committed_link_stays_watched() {
        let (_d, source, state) = setup();
        let ws = open_run(&source, &state, &[], &no_blobs);
        let place = ws.private_copy("s.0.1").unwrap();
        std::os::unix::fs::symlink("../../../../../../..", place.dir().join("up")).unwrap();
        let err = ws.changes(&place, BOUNDS).unwrap_err();
        assert!(matches!(err, WorkspaceError::Escapes(_)), "{err}");
        assert!(
            err.to_string().contains("'up' -> '../../../../../../..'"),
            "{err}"
        );
        ws.discard(&place);

        // A dangling link inside is committed; a later attempt that makes
        // it lead outside (through a link of its own) is refused.
        let first = ws.private_copy("s.0.2").unwrap();
        std::os::unix::fs::symlink("d/../x", first.dir().join("later")).unwrap();
        let changes = ws.changes(&first, BOUNDS).unwrap();
        ws.commit(&first, &changes, |_| Ok::<_, ()>(()))
            .unwrap()
            .unwrap();
        let second = ws.private_copy("t.0.1").unwrap();
        std::fs::create_dir(second.dir().join("sub")).unwrap();
        std::os::unix::fs::symlink("..", second.dir().join("sub/up")).unwrap();
        std::os::unix::fs::symlink("sub/up", second.dir().join("d")).unwrap();
        let err = ws.contained(&second).unwrap_err();
        assert!(err.to_string().contains("'later'"), "{err}");
    }

    #[test]
    fn ids_become_distinct_safe_names() {
        assert_eq!(safe_name("20261202-abc"), "20261202-abc");
        assert_ne!(safe_name("a/b"), safe_name("a_b"));
        assert!(!safe_name("../x").contains('/'));
    }
}
