//! What one attempt did besides returning, as the capabilities report it
//! and the store records it.

use crate::chat::ChatMessage;
use crate::file_change::FileChange;
use crate::gate_run::GateRun;
use crate::model_call::{CallKey, ModelCall};

/// The model calls an attempt made, the gates it ran, the workspace files
/// it changed.
#[derive(Debug, Clone, Default)]
pub struct Activity {
    /// Every call the attempt made (identical refusals folded), for its
    /// report; most are already durable, committed as they finished.
    pub model_calls: Vec<ModelCall>,
    /// The calls the store does not have yet, or has with an older count:
    /// committed with the attempt's outcome.
    pub unsaved_calls: Vec<(CallKey, ModelCall)>,
    pub gate_runs: Vec<GateRun>,
    /// The changeset a successful read-write attempt commits.
    pub file_changes: Vec<FileChange>,
    /// The contents its changes name (both sides), by blake3: stored in the
    /// same transaction as the stage's success.
    pub workspace_blobs: Vec<(String, Vec<u8>)>,
    /// Messages the attempt added to conversation sessions: kept only when
    /// the attempt succeeds.
    pub session_appends: Vec<(String, Vec<ChatMessage>)>,
    /// Log lines refused because the attempt exceeded its log volume.
    pub log_lines_dropped: u64,
}
