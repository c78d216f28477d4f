//! File changes written by a model, in a strict block format, applied safely
//! inside a root directory: no absolute paths, no `..`, no symlinks followed
//! out (the sandbox refuses those anyway; this says why, early).
//!
//! ```text
//! === FILE: src/calc.py ===
//! def add(a, b):
//!     return a + b
//! === END FILE ===
//! ```

use std::path::{Component, Path, PathBuf};

/// How to ask a model for file changes.
pub const FORMAT_INSTRUCTIONS: &str = "Write each file you change or create in full, in this exact format, and nothing else:\n\
=== FILE: relative/path/to/file ===\n\
<the complete new content of the file>\n\
=== END FILE ===\n\
Paths are relative to the project root. Do not use absolute paths or '..'.";

/// One whole-file change.
#[derive(Debug, Clone, PartialEq)]
pub struct FileEdit {
    pub path: String,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FileFormatError {
    #[error("no file blocks (=== FILE: path === ... === END FILE ===) in the answer")]
    NoBlocks,
    #[error("the block for '{0}' has no === END FILE === line")]
    Unterminated(String),
    #[error("unsafe path '{0}': it must be relative and stay inside the project")]
    UnsafePath(String),
    #[error("'{0}' appears in two blocks")]
    Duplicate(String),
}

/// A path that stays inside the root it is joined to.
pub fn safe_relative(path: &str) -> Option<PathBuf> {
    let p = Path::new(path.trim());
    if path.trim().is_empty() || p.is_absolute() {
        return None;
    }
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// Parses every block; text outside blocks (a model's chatter) is ignored.
pub fn parse(text: &str) -> Result<Vec<FileEdit>, FileFormatError> {
    let mut edits: Vec<FileEdit> = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(path) = line
            .trim()
            .strip_prefix("=== FILE:")
            .and_then(|rest| rest.strip_suffix("==="))
        else {
            continue;
        };
        let path = path.trim().to_string();
        if safe_relative(&path).is_none() {
            return Err(FileFormatError::UnsafePath(path));
        }
        let mut content = Vec::new();
        let mut closed = false;
        for line in lines.by_ref() {
            if line.trim() == "=== END FILE ===" {
                closed = true;
                break;
            }
            content.push(line);
        }
        if !closed {
            return Err(FileFormatError::Unterminated(path));
        }
        if edits.iter().any(|e| e.path == path) {
            return Err(FileFormatError::Duplicate(path));
        }
        let mut content = content.join("\n");
        content.push('\n');
        edits.push(FileEdit { path, content });
    }
    if edits.is_empty() {
        return Err(FileFormatError::NoBlocks);
    }
    Ok(edits)
}

/// Writes `edits` under `root`, creating directories as needed; returns the
/// paths written. Stops at the first failure, naming the file.
pub fn apply(root: &Path, edits: &[FileEdit]) -> Result<Vec<String>, String> {
    let mut written = Vec::new();
    for edit in edits {
        let rel =
            safe_relative(&edit.path).ok_or_else(|| format!("unsafe path '{}'", edit.path))?;
        let target = root.join(&rel);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::write(&target, &edit.content)
            .map_err(|e| format!("cannot write {}: {e}", edit.path))?;
        written.push(edit.path.clone());
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_blocks_among_chatter() {
        let text = "Here you go:\n=== FILE: src/a.py ===\nx = 1\n\ny = 2\n=== END FILE ===\nand\n=== FILE: README.md ===\n# hi\n=== END FILE ===\nThanks!";
        let edits = parse(text).unwrap();
        assert_eq!(edits.len(), 2);
        assert_eq!(edits[0].path, "src/a.py");
        assert_eq!(edits[0].content, "x = 1\n\ny = 2\n");
        assert_eq!(edits[1].content, "# hi\n");
    }

    #[test]
    fn refuses_what_is_unsafe_or_malformed() {
        assert_eq!(parse("no blocks"), Err(FileFormatError::NoBlocks));
        assert!(matches!(
            parse("=== FILE: ../x ===\na\n=== END FILE ==="),
            Err(FileFormatError::UnsafePath(_))
        ));
        assert!(matches!(
            parse("=== FILE: /etc/passwd ===\na\n=== END FILE ==="),
            Err(FileFormatError::UnsafePath(_))
        ));
        assert!(matches!(
            parse("=== FILE: a.py ===\nx"),
            Err(FileFormatError::Unterminated(_))
        ));
        assert!(matches!(
            parse("=== FILE: a ===\n=== END FILE ===\n=== FILE: a ===\n=== END FILE ==="),
            Err(FileFormatError::Duplicate(_))
        ));
        assert_eq!(safe_relative("./src/x.py"), Some(PathBuf::from("src/x.py")));
        assert_eq!(safe_relative("src/../../x"), None);
    }
}
