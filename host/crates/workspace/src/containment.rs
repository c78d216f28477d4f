//! Nothing a stage leaves in its copy of the workspace may lead outside it.
//! The sandbox refuses absolute symlink targets, but a relative one such as
//! `sub -> ../../../..` it lets through: a gate that then runs in `sub`, or
//! prints a file through such a link, would show the plugin what lies
//! outside. Every symlink the run made (or that differs from the user's) is
//! resolved for real, through the links it passes, and must stay inside.

use crate::walk::walk;
use crate::{Exclusions, Snapshot, WorkspaceError, hash_entry};
use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

/// A path in the workspace that leads outside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escape {
    /// Relative to the workspace.
    pub path: String,
    /// What it points at, as written.
    pub target: String,
    pub why: &'static str,
}

impl std::fmt::Display for Escape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "'{}' -> '{}' {}", self.path, self.target, self.why)
    }
}

/// Every symlink under `root` that leads outside it, among those that are
/// not the user's own: a symlink is the user's when `base` has it with the
/// same target and the run did not make it (`made`).
pub fn escapes(
    root: &Path,
    exclude: &Exclusions,
    base: &Snapshot,
    made: &BTreeSet<String>,
) -> Result<Vec<Escape>, WorkspaceError> {
    let inside = root
        .canonicalize()
        .map_err(|e| WorkspaceError::io("resolve", root, e))?;
    let mut found = Vec::new();
    walk(root, exclude, |path, rel, meta| {
        if !meta.file_type().is_symlink() {
            return Ok(());
        }
        let users = !made.contains(rel)
            && base
                .get(rel)
                .is_some_and(|e| e.symlink && hash_entry(path, true).is_ok_and(|h| h == e.hash));
        if users {
            return Ok(());
        }
        if let Some(escape) = check_link(path, rel, &inside)? {
            found.push(escape);
        }
        Ok(())
    })?;
    found.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(found)
}

/// Whether `dir` (a gate's working directory, relative to `root`) stays
/// inside `root` once every link on the way is followed.
pub fn resolves_inside(root: &Path, dir: &Path) -> Result<bool, WorkspaceError> {
    let inside = root
        .canonicalize()
        .map_err(|e| WorkspaceError::io("resolve", root, e))?;
    let mut hops = 0;
    Ok(resolve(inside.clone(), dir, &mut hops).is_some_and(|real| real.starts_with(&inside)))
}

fn check_link(path: &Path, rel: &str, inside: &Path) -> Result<Option<Escape>, WorkspaceError> {
    let target = std::fs::read_link(path).map_err(|e| WorkspaceError::io("read", path, e))?;
    let parent = path.parent().unwrap_or(path);
    let from = parent
        .canonicalize()
        .map_err(|e| WorkspaceError::io("resolve", parent, e))?;
    let mut hops = 0;
    let why = match resolve(from, &target, &mut hops) {
        Some(real) if real.starts_with(inside) => return Ok(None),
        Some(_) => "leads outside the workspace",
        None => "cannot be resolved (a loop of links)",
    };
    Ok(Some(Escape {
        path: rel.to_string(),
        target: target.to_string_lossy().into_owned(),
        why,
    }))
}

/// Most links followed in resolving one path, as the kernel allows.
const MAX_HOPS: u32 = 40;

/// Where `target`, taken from the real directory `at`, leads: every link on
/// the way followed as the kernel would. Past a name that is not there,
/// the rest is taken as written (`..` drops the missing name): what a later
/// stage puts there is checked when it does. `None`: a loop of links.
fn resolve(mut at: PathBuf, target: &Path, hops: &mut u32) -> Option<PathBuf> {
    for part in target.components() {
        match part {
            Component::RootDir | Component::Prefix(_) => at = PathBuf::from("/"),
            Component::CurDir => {}
            Component::ParentDir => {
                at.pop();
            }
            Component::Normal(name) => {
                let next = at.join(name);
                match std::fs::symlink_metadata(&next) {
                    Ok(meta) if meta.file_type().is_symlink() => {
                        *hops += 1;
                        if *hops > MAX_HOPS {
                            return None;
                        }
                        let link = std::fs::read_link(&next).ok()?;
                        at = resolve(at, &link, hops)?;
                    }
                    _ => at = next,
                }
            }
        }
    }
    Some(at)
}

/// The links a set of changesets made (created or changed, still links).
pub fn links_made<'a>(
    sets: impl IntoIterator<Item = &'a [host_vocab::FileChange]>,
) -> BTreeSet<String> {
    let mut made = BTreeSet::new();
    for c in sets.into_iter().flatten() {
        track_link(&mut made, c);
    }
    made
}

/// Keeps `made` up to date with one committed change: a path that is a
/// link after it is the run's; one that is not (any more) leaves the set.
pub(crate) fn track_link(made: &mut BTreeSet<String>, change: &host_vocab::FileChange) {
    if change.after.is_some() && change.symlink {
        made.insert(change.path.clone());
    } else {
        made.remove(&change.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> (tempfile::TempDir, PathBuf) {
        let outer = tempfile::tempdir().unwrap();
        std::fs::write(outer.path().join("secret.txt"), "outside").unwrap();
        let root = outer.path().join("ws");
        std::fs::create_dir_all(root.join("sub/deep")).unwrap();
        std::fs::write(root.join("notes.txt"), "inside").unwrap();
        (outer, root)
    }

    fn found(root: &Path, base: &Snapshot) -> Vec<String> {
        escapes(root, &Exclusions::default(), base, &BTreeSet::new())
            .unwrap()
            .into_iter()
            .map(|e| e.path)
            .collect()
    }

    #[test]
    fn relative_links_out_of_the_tree_are_found_and_links_within_are_not() {
        let (_outer, root) = tree();
        let base = Snapshot::scan(&root, &Exclusions::default(), None).unwrap();
        symlink("../secret.txt", root.join("leak.txt")).unwrap();
        symlink("../../../../../../", root.join("sub/up")).unwrap();
        symlink("../notes.txt", root.join("sub/fine.txt")).unwrap();
        symlink("deep", root.join("sub/fine-dir")).unwrap();
        assert_eq!(found(&root, &base), ["leak.txt", "sub/up"]);
    }

    #[test]
    fn a_chain_of_links_each_inside_can_still_lead_out() {
        let (_outer, root) = tree();
        let base = Snapshot::scan(&root, &Exclusions::default(), None).unwrap();
        // sub/up is the root itself (inside); up/.. is not.
        symlink("..", root.join("sub/up")).unwrap();
        symlink("sub/up/..", root.join("out")).unwrap();
        assert_eq!(found(&root, &base), ["out"]);
    }

    #[test]
    fn a_dangling_link_is_judged_by_where_it_points() {
        let (_outer, root) = tree();
        let base = Snapshot::scan(&root, &Exclusions::default(), None).unwrap();
        symlink("missing/../../x", root.join("later")).unwrap();
        symlink("missing/x", root.join("harmless")).unwrap();
        // Through a link that exists, then a name that does not.
        symlink("..", root.join("sub/up")).unwrap();
        symlink("sub/up/../nothing-here", root.join("via")).unwrap();
        symlink("loop", root.join("loop")).unwrap();
        assert_eq!(found(&root, &base), ["later", "loop", "via"]);
    }

    #[test]
    fn the_users_own_links_are_left_alone_unless_the_run_made_them() {
        let (_outer, root) = tree();
        symlink("/usr/bin/env", root.join("tool")).unwrap();
        let base = Snapshot::scan(&root, &Exclusions::default(), None).unwrap();
        assert!(found(&root, &base).is_empty());
        let made = BTreeSet::from(["tool".to_string()]);
        let escapes = escapes(&root, &Exclusions::default(), &base, &made).unwrap();
        assert_eq!(escapes.len(), 1);
        // Retargeted by a stage: no longer the user's.
        std::fs::remove_file(root.join("tool")).unwrap();
        symlink("/etc", root.join("tool")).unwrap();
        assert_eq!(found(&root, &base), ["tool"]);
    }

    #[test]
    fn a_gate_directory_must_resolve_inside() {
        let (_outer, root) = tree();
        assert!(resolves_inside(&root, Path::new("sub")).unwrap());
        std::fs::remove_dir_all(root.join("sub")).unwrap();
        symlink("../../..", root.join("sub")).unwrap();
        assert!(!resolves_inside(&root, Path::new("sub")).unwrap());
        assert!(!resolves_inside(&root, Path::new("../x")).unwrap());
    }
}
