//! The host's shared vocabulary: plain data every layer names the same way
//! (stage input and output, statuses, failures, model calls, gate runs, file
//! changes, run events, log lines, time, every default and limit).
//!
//! It depends on serde alone, so the manifest and the store build and test
//! without wasmtime, and a type defined here can never pull a layer above in.

pub mod activity;
pub mod attempt_kind;
pub mod bounds;
pub mod chat;
pub mod events;
pub mod failure;
pub mod file_change;
pub mod gate_run;
pub mod limits;
pub mod log;
pub mod model_call;
pub mod output_rules;
pub mod printable;
pub mod result;
pub mod stage_io;
pub mod status;
pub mod time;

pub use activity::Activity;
pub use attempt_kind::AttemptKind;
pub use bounds::{Bound, LimitReached};
pub use chat::{ChatMessage, Role};
pub use events::{RunEvent, RunObserver};
pub use failure::StageFailure;
pub use file_change::{ChangeKind, FileChange};
pub use gate_run::{GateOutcome, GateRun};
pub use log::{LogLevel, LogLine, PrintStream, StreamEnd, StreamPiece};
pub use model_call::{CallKey, CallSource, ModelCall, SentCall, total_cost_usd, total_tokens};
pub use printable::{first_few, printable, printable_lines};
pub use result::{RunOutcome, RunSummary, StageResult};
pub use stage_io::{
    Artifact, ArtifactRef, ArtifactSource, Metric, StageInput, StageOutput, Upstream,
};
pub use status::{IllegalTransition, RunStatus, StageStatus};
pub use time::now_ms;
