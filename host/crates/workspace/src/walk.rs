//! Walking a workspace tree the one way every part of this crate needs:
//! exclusions left out, symlinks never followed, names as `/`-separated
//! text relative to the root.

use crate::{Exclusions, WorkspaceError};
use std::fs::Metadata;
use std::path::Path;

/// Metadata of `path` itself (a symlink is not followed).
pub(crate) fn stat(path: &Path) -> Result<Metadata, WorkspaceError> {
    std::fs::symlink_metadata(path).map_err(|e| WorkspaceError::io("stat", path, e))
}

/// Calls `visit` with the path, relative name and metadata of every entry
/// under `root` that `exclude` leaves, a directory before what it holds
/// (an excluded directory is not entered). A name that is not UTF-8 is an
/// error: the run's record names files by text.
pub(crate) fn walk(
    root: &Path,
    exclude: &Exclusions,
    mut visit: impl FnMut(&Path, &str, &Metadata) -> Result<(), WorkspaceError>,
) -> Result<(), WorkspaceError> {
    let mut pending = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = pending.pop() {
        let list = std::fs::read_dir(&dir).map_err(|e| WorkspaceError::io("read", &dir, e))?;
        for item in list {
            let item = item.map_err(|e| WorkspaceError::io("read", &dir, e))?;
            let path = item.path();
            let Some(name) = item.file_name().to_str().map(str::to_string) else {
                return Err(WorkspaceError::NotUtf8(path));
            };
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            if exclude.excludes(&rel) {
                continue;
            }
            let meta = stat(&path)?;
            visit(&path, &rel, &meta)?;
            if meta.is_dir() {
                pending.push((path, rel));
            }
        }
    }
    Ok(())
}
