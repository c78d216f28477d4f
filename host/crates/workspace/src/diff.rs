//! Unified diffs of a changeset, as `git diff` prints them, for
//! `host diff` and the dashboard.

use host_vocab::{ChangeKind, FileChange};
use similar::TextDiff;

/// Lines of context around each hunk, as `diff -u` and git default to.
const CONTEXT: usize = 3;

/// The diff of one change, given the contents on both sides (`None` where
/// the file is absent). Binary contents (a NUL byte, or not UTF-8) are
/// named, not printed.
pub fn file_diff(change: &FileChange, before: Option<&[u8]>, after: Option<&[u8]>) -> String {
    let path = &change.path;
    let mut out = format!("diff --git a/{path} b/{path}\n");
    match change.kind() {
        ChangeKind::Added => {
            out += &format!("new file mode {}\n", git_mode(change));
        }
        ChangeKind::Deleted => out += "deleted file mode 100644\n",
        ChangeKind::Modified if change.before == change.after => {
            out += &format!("new mode {}\n", git_mode(change));
            return out;
        }
        ChangeKind::Modified => {}
    }
    // Each side's name, or /dev/null where the file is absent.
    let a = before.map_or("/dev/null".into(), |_| format!("a/{path}"));
    let b = after.map_or("/dev/null".into(), |_| format!("b/{path}"));
    let (Some(old), Some(new)) = (text(before), text(after)) else {
        out += &format!("Binary files {a} and {b} differ\n");
        return out;
    };
    let diff = TextDiff::from_lines(old, new);
    out += &diff
        .unified_diff()
        .context_radius(CONTEXT)
        .missing_newline_hint(true)
        .header(&a, &b)
        .to_string();
    out
}

fn git_mode(change: &FileChange) -> String {
    if change.symlink {
        return "120000".into();
    }
    let exec = change.mode.unwrap_or(0o644) & 0o111 != 0;
    if exec { "100755" } else { "100644" }.into()
}

/// Text if it looks like text: UTF-8 without NUL. Absent is empty.
fn text(bytes: Option<&[u8]>) -> Option<&str> {
    match bytes {
        None => Some(""),
        Some(b) if b.contains(&0) => None,
        Some(b) => std::str::from_utf8(b).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(path: &str, before: Option<&str>, after: Option<&str>) -> FileChange {
        FileChange {
            path: path.into(),
            before: before.map(|b| blake3::hash(b.as_bytes()).to_hex().to_string()),
            after: after.map(|a| blake3::hash(a.as_bytes()).to_hex().to_string()),
            mode: after.map(|_| 0o644),
            symlink: false,
        }
    }

    #[test]
    fn a_modified_file_diffs_like_git() {
        let old = "one\ntwo\nthree\n";
        let new = "one\n2\nthree\n";
        let d = file_diff(
            &change("src/a.txt", Some(old), Some(new)),
            Some(old.as_bytes()),
            Some(new.as_bytes()),
        );
        assert_eq!(
            d,
            "diff --git a/src/a.txt b/src/a.txt\n--- a/src/a.txt\n+++ b/src/a.txt\n@@ -1,3 +1,3 @@\n one\n-two\n+2\n three\n"
        );
    }

    #[test]
    fn added_deleted_and_binary_files_are_named() {
        let added = file_diff(&change("n.txt", None, Some("hi\n")), None, Some(b"hi\n"));
        assert!(
            added
                .contains("new file mode 100644\n--- /dev/null\n+++ b/n.txt\n@@ -0,0 +1 @@\n+hi\n"),
            "{added}"
        );
        let deleted = file_diff(&change("d.txt", Some("bye\n"), None), Some(b"bye\n"), None);
        assert!(
            deleted.contains("--- a/d.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-bye\n"),
            "{deleted}"
        );
        let binary = file_diff(
            &change("b.bin", Some("x"), Some("y")),
            Some(b"\0x"),
            Some(b"\0y"),
        );
        assert!(
            binary.ends_with("Binary files a/b.bin and b/b.bin differ\n"),
            "{binary}"
        );
    }
}
