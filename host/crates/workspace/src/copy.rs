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
        // Fewer blocks than bytes: the file has holes, which a plain copy
        // would fill (a 50 GB sparse file, 16 KB on disk, written out whole).
        let sparse = meta.blocks().saturating_mul(512) < meta.size();
        let copied = if sparse {
            copy_data_only(&input, &output, meta.size())
        } else {
            std::io::copy(&mut input, &mut output).map(|_| ())
        };
        copied.map_err(|e| WorkspaceError::io("write", dst, e))?;
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

/// Copies the data extents of `input` at their offsets and sets the
/// length, so that holes stay holes.
fn copy_data_only(input: &File, output: &File, size: u64) -> std::io::Result<()> {
    let (fd_in, fd_out) = (input.as_raw_fd(), output.as_raw_fd());
    let mut at: i64 = 0;
    let end = i64::try_from(size).unwrap_or(i64::MAX);
    while at < end {
        // SAFETY: lseek on a descriptor open for the whole call.
        let data = unsafe { libc::lseek(fd_in, at, libc::SEEK_DATA) };
        if data < 0 {
            match std::io::Error::last_os_error().raw_os_error() {
                // No data after `at`: the rest is a hole.
                Some(libc::ENXIO) => break,
                _ => return Err(std::io::Error::last_os_error()),
            }
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd_in, data, libc::SEEK_HOLE) };
        if hole < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let (mut off_in, mut off_out) = (data, data);
        while off_in < hole {
            let want = usize::try_from(hole - off_in).unwrap_or(usize::MAX);
            // SAFETY: both offsets are locals the kernel advances; the
            // descriptors are open for the whole call.
            let n =
                unsafe { libc::copy_file_range(fd_in, &mut off_in, fd_out, &mut off_out, want, 0) };
            match n {
                n if n < 0 => return Err(std::io::Error::last_os_error()),
                // The file shrank under us: what is left reads as zeros.
                0 => break,
                _ => {}
            }
        }
        at = hole;
    }
    output.set_len(size)
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
    fn a_sparse_file_is_copied_with_its_holes() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("sparse.img");
        let f = File::create(&src).unwrap();
        // 1 GiB apparent, two small data extents, one at the very end.
        f.set_len(1 << 30).unwrap();
        use std::os::unix::fs::FileExt;
        f.write_all_at(b"head", 4096).unwrap();
        f.write_all_at(b"tail", (1 << 30) - 4).unwrap();
        drop(f);
        let meta = std::fs::metadata(&src).unwrap();
        if meta.blocks() * 512 >= meta.size() {
            return; // this file system keeps no holes
        }
        let dst = dir.path().join("copy.img");
        copy_file(&src, &dst, &meta).unwrap();
        let copied = std::fs::metadata(&dst).unwrap();
        assert_eq!(copied.size(), 1 << 30);
        assert!(
            copied.blocks() * 512 < 1 << 20,
            "{} blocks",
            copied.blocks()
        );
        let g = File::open(&dst).unwrap();
        let mut buf = [0u8; 4];
        g.read_exact_at(&mut buf, 4096).unwrap();
        assert_eq!(&buf, b"head");
        g.read_exact_at(&mut buf, (1 << 30) - 4).unwrap();
        assert_eq!(&buf, b"tail");
        g.read_exact_at(&mut buf, 1 << 20).unwrap();
        assert_eq!(buf, [0; 4]);
    }

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
