//! Copying a tree: a reflink per file where the file system has them
//! (btrfs, XFS, bcachefs: the copy costs metadata only), else the kernel's
//! own copy (`copy_file_range`), never through a user-space buffer.

use crate::walk::walk;
use crate::{Exclusions, WorkspaceError};
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// What a copy did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyStats {
    pub files: u64,
    pub bytes: u64,
    /// Files shared with the source by reflink rather than copied.
    pub cloned: u64,
}

/// Whether the last FICLONE was refused by the file system: then the rest
/// of the process copies without trying again.
static NO_REFLINK: AtomicBool = AtomicBool::new(false);

/// Copies `from` into `to` (which must not exist), leaving out what
/// `exclude` names, keeping modes and modification times; symlinks are
/// copied as links, never followed; sockets, pipes and devices are left out.
pub fn copy_tree(
    from: &Path,
    to: &Path,
    exclude: &Exclusions,
) -> Result<CopyStats, WorkspaceError> {
    let mut stats = CopyStats::default();
    std::fs::create_dir(to).map_err(|e| WorkspaceError::io("create", to, e))?;
    let mut dirs = Vec::new();
    walk(from, exclude, |src, rel, meta| {
        let dst = to.join(rel);
        let kind = meta.file_type();
        if kind.is_dir() {
            std::fs::create_dir(&dst).map_err(|e| WorkspaceError::io("create", &dst, e))?;
            dirs.push((dst, meta.mode()));
        } else if kind.is_symlink() {
            let target = std::fs::read_link(src).map_err(|e| WorkspaceError::io("read", src, e))?;
            std::os::unix::fs::symlink(&target, &dst)
                .map_err(|e| WorkspaceError::io("create", &dst, e))?;
            stats.files += 1;
        } else if kind.is_file() {
            if copy_file(src, &dst, meta)? {
                stats.cloned += 1;
            }
            stats.files += 1;
            stats.bytes += meta.size();
        }
        Ok(())
    })?;
    // Modes last: a read-only directory is still written into above.
    for (dir, mode) in dirs {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode & 0o7777))
            .map_err(|e| WorkspaceError::io("chmod", &dir, e))?;
    }
    Ok(stats)
}

/// Copies one regular file; `true` if it was a reflink.
pub fn copy_file(src: &Path, dst: &Path, meta: &std::fs::Metadata) -> Result<bool, WorkspaceError> {
    let mut input = File::open(src).map_err(|e| WorkspaceError::io("read", src, e))?;
    let mut output = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(meta.mode() & 0o7777)
        .open(dst)
        .map_err(|e| WorkspaceError::io("create", dst, e))?;
    let cloned = !NO_REFLINK.load(Ordering::Relaxed) && reflink(&input, &output);
    if !cloned {
        std::io::copy(&mut input, &mut output).map_err(|e| WorkspaceError::io("write", dst, e))?;
    }
    // The mode again: `open` applied the umask to it.
    output
        .set_permissions(std::fs::Permissions::from_mode(meta.mode() & 0o7777))
        .map_err(|e| WorkspaceError::io("chmod", dst, e))?;
    if let Ok(modified) = meta.modified() {
        let _ = output.set_modified(modified);
    }
    Ok(cloned)
}

fn reflink(input: &File, output: &File) -> bool {
    // SAFETY: FICLONE takes the source descriptor as its argument; both
    // descriptors are open for the duration of the call.
    let rc = unsafe { libc::ioctl(output.as_raw_fd(), libc::FICLONE, input.as_raw_fd()) };
    if rc == 0 {
        return true;
    }
    let err = std::io::Error::last_os_error().raw_os_error();
    // Not a property of this file but of the file system (or a copy across
    // two): do not ask again.
    if matches!(
        err,
        Some(libc::EOPNOTSUPP | libc::EXDEV | libc::EINVAL | libc::ENOTTY | libc::ENOSYS)
    ) {
        NO_REFLINK.store(true, Ordering::Relaxed);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_files_links_modes_and_leaves_out_exclusions() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("a/b")).unwrap();
        std::fs::create_dir_all(src.join(".git/objects")).unwrap();
        std::fs::create_dir_all(src.join("node_modules/x")).unwrap();
        std::fs::write(src.join("a/b/c.txt"), "deep").unwrap();
        std::fs::write(src.join("run.sh"), "#!/bin/sh").unwrap();
        std::fs::set_permissions(src.join("run.sh"), std::fs::Permissions::from_mode(0o750))
            .unwrap();
        std::fs::write(src.join(".git/HEAD"), "ref").unwrap();
        std::fs::write(src.join("node_modules/x/i.js"), "x").unwrap();
        std::os::unix::fs::symlink("a/b/c.txt", src.join("link")).unwrap();
        let dst = dir.path().join("dst");
        let exclude = Exclusions::new(&["node_modules".into()]);
        let stats = copy_tree(&src, &dst, &exclude).unwrap();
        assert_eq!(stats.files, 3);
        assert_eq!(stats.bytes, 4 + 9);
        assert_eq!(
            std::fs::read_to_string(dst.join("a/b/c.txt")).unwrap(),
            "deep"
        );
        let mode = std::fs::metadata(dst.join("run.sh")).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o750);
        assert_eq!(
            std::fs::read_link(dst.join("link")).unwrap(),
            Path::new("a/b/c.txt")
        );
        assert!(!dst.join(".git").exists());
        assert!(!dst.join("node_modules").exists());
        // The copy is independent of the source.
        std::fs::write(dst.join("a/b/c.txt"), "changed").unwrap();
        assert_eq!(
            std::fs::read_to_string(src.join("a/b/c.txt")).unwrap(),
            "deep"
        );
    }

    #[test]
    fn a_target_that_exists_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = copy_tree(dir.path(), dir.path(), &Exclusions::default()).unwrap_err();
        assert!(err.to_string().contains("create"), "{err}");
    }
}
