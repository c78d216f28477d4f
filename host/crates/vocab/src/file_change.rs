//! A file a read-write stage changed in the workspace.

use serde::{Deserialize, Serialize};

/// One file a stage added, changed or removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileChange {
    /// Relative to the workspace, with `/` separators.
    pub path: String,
    /// blake3 before the stage; `None`: the stage created it.
    pub before: Option<String>,
    /// blake3 after the stage; `None`: the stage deleted it.
    pub after: Option<String>,
}
