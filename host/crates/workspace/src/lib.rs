//! The transactional workspace. Stages never write the user's directory:
//! a run copies it once ([`RunWorkspace`]), each read-write attempt works
//! on a private copy of that, and what a successful attempt changed is a
//! changeset ([`host_vocab::FileChange`]s with their contents as blobs),
//! committed with the stage's success. The user's files change only when
//! the run's changes are applied ([`apply_changes`], after [`conflicts`]),
//! and [`file_diff`] shows them first.

mod apply;
mod containment;
mod copy;
mod diff;
mod exclude;
mod run_tree;
mod snapshot;
mod walk;

pub use apply::{ApplyStats, Conflict, apply_changes, conflicts, net_changes};
pub use containment::{Escape, escapes, links_made, resolves_inside};
pub use copy::{CopyStats, copy_file, copy_tree};
pub use diff::file_diff;
pub use exclude::{ALWAYS_EXCLUDED, Exclusions};
pub use run_tree::{Blobs, CommitError, Place, RunWorkspace, run_dir};
pub use snapshot::{Entry, Snapshot, hash_entry, read_entry};

use host_vocab::first_few;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a UTF-8 name: the workspace cannot record it", .0.display())]
    NotUtf8(PathBuf),
    #[error("the store has no content {0} that the run's changes name")]
    MissingBlob(String),
    #[error("{} changed while its change was being committed (a process a gate started may still be writing)", .0.display())]
    ChangedWhileCommitting(PathBuf),
    #[error(
        "the run's copy of the workspace fell behind its record ({0}); `host resume` repairs it"
    )]
    Stale(String),
    #[error("the attempt's changes reach more than {limit} bytes at {}: too large to record", path.display())]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("the attempt changed more than {limit} files: too many to record")]
    TooMany { limit: u64 },
    #[error("{}", escape_text(.0))]
    Escapes(Vec<Escape>),
}

fn escape_text(escapes: &[Escape]) -> String {
    format!(
        "the attempt left symbolic links leading outside the workspace: {}",
        first_few(escapes.iter().map(Escape::to_string), "; ")
    )
}

/// How much one attempt's changes may hold: files touched, and bytes of
/// both sides of every change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeBounds {
    pub files: u64,
    pub bytes: u64,
}

impl ChangeBounds {
    pub const NONE: ChangeBounds = ChangeBounds {
        files: u64::MAX,
        bytes: u64::MAX,
    };
}

impl WorkspaceError {
    pub(crate) fn io(op: &'static str, path: &Path, source: std::io::Error) -> Self {
        WorkspaceError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}
