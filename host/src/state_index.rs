//! The state directories this user's runs have used, so that a run id
//! printed by `host run` works from any directory: a project made by
//! `host plugin new` keeps its runs in `.host-state` beside its manifest,
//! and `host status RUN_ID` run elsewhere would not know to look there.
//!
//! The index is a text file, one absolute directory per line, newest last,
//! in the default state directory. It is a hint, not a record: a directory
//! that is gone is skipped, and a lost line only means `--state-dir` is
//! needed again.

use std::path::{Path, PathBuf};

/// Directories remembered at most: the oldest are forgotten first.
const MAX_DIRS: usize = 64;

/// The index file's name in the default state directory.
pub const INDEX_FILE: &str = "state-dirs";

/// The index file of `default_dir` (the default state directory).
fn index_path(default_dir: &Path) -> PathBuf {
    default_dir.join(INDEX_FILE)
}

/// The directories in the index, newest first, as written.
pub fn known(default_dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(index_path(default_dir)).unwrap_or_default();
    let mut dirs: Vec<PathBuf> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(PathBuf::from)
        .collect();
    dirs.reverse();
    dirs
}

/// Remembers `dir` as a state directory runs use, unless it is the default
/// one (always searched). Written whole to a temporary file and renamed, so
/// a reader never sees half an index.
pub fn remember(default_dir: &Path, dir: &Path) -> std::io::Result<()> {
    let dir = std::path::absolute(dir)?;
    let default = std::path::absolute(default_dir)?;
    if dir == default {
        return Ok(());
    }
    let mut dirs = known(default_dir);
    dirs.reverse();
    if dirs.last() == Some(&dir) {
        return Ok(());
    }
    dirs.retain(|d| d != &dir);
    dirs.push(dir);
    let skip = dirs.len().saturating_sub(MAX_DIRS);
    let text: String = dirs
        .iter()
        .skip(skip)
        .filter_map(|d| d.to_str())
        // A path with a newline in it would read back as two.
        .filter(|d| !d.contains('\n'))
        .map(|d| format!("{d}\n"))
        .collect();
    std::fs::create_dir_all(default_dir)?;
    let path = index_path(default_dir);
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, &path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_each_directory_once_newest_first_and_never_the_default() {
        let home = tempfile::tempdir().unwrap();
        let default = home.path().join("state");
        let (a, b) = (home.path().join("a"), home.path().join("b"));
        assert!(known(&default).is_empty(), "no index yet: nothing known");
        remember(&default, &a).unwrap();
        remember(&default, &b).unwrap();
        remember(&default, &a).unwrap();
        remember(&default, &default).unwrap();
        assert_eq!(known(&default), [a.clone(), b.clone()]);
    }

    #[test]
    fn keeps_the_newest_directories_only() {
        let home = tempfile::tempdir().unwrap();
        let default = home.path().join("state");
        for i in 0..MAX_DIRS + 5 {
            remember(&default, &home.path().join(format!("d{i}"))).unwrap();
        }
        let dirs = known(&default);
        assert_eq!(dirs.len(), MAX_DIRS);
        assert_eq!(dirs[0], home.path().join(format!("d{}", MAX_DIRS + 4)));
    }
}
