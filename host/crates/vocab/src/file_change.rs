//! A file a read-write stage changed in the workspace.

use serde::{Deserialize, Serialize};

/// One file a stage added, changed or removed. The contents on both sides
/// are blobs in the store, by hash, so a diff can be shown and the change
/// applied long after the attempt's copy of the workspace is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileChange {
    /// Relative to the workspace, with `/` separators.
    pub path: String,
    /// blake3 before the stage; `None`: the stage created it.
    pub before: Option<String>,
    /// blake3 after the stage; `None`: the stage deleted it.
    pub after: Option<String>,
    /// Permission bits after the stage (`0o755` for an executable), when
    /// the file is there after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// After the stage the path is a symbolic link; its blob is the target.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub symlink: bool,
}

impl FileChange {
    /// Added, deleted or modified, as a diff header says it.
    pub fn kind(&self) -> ChangeKind {
        match (&self.before, &self.after) {
            (None, _) => ChangeKind::Added,
            (_, None) => ChangeKind::Deleted,
            _ => ChangeKind::Modified,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

impl ChangeKind {
    /// `added`, `modified` or `deleted`, as `host diff --stat` and the API
    /// name it.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Modified => "modified",
            ChangeKind::Deleted => "deleted",
        }
    }
}
