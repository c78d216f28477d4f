//! What happens during a run, as events: the scheduler emits them, observers
//! (the terminal, the JSON log) consume them.

use crate::result::StageResult;
use std::time::Duration;

#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum RunEvent {
    RunStarted {
        run_id: String,
        pipeline: String,
        stages: usize,
    },
    StageStarted {
        stage: String,
        attempt: u32,
    },
    StageRetrying {
        stage: String,
        attempt: u32,
        failure: String,
        #[serde(with = "crate::time::millis")]
        delay: Duration,
    },
    StageFinished(Box<StageResult>),
    StageSkipped {
        stage: String,
        reason: String,
    },
    /// A plugin's own progress report (the WIT log interface's `progress`).
    StageProgress {
        stage: String,
        attempt: u32,
        done: u64,
        total: u64,
        message: String,
    },
    /// A line the plugin logged.
    StageLog {
        stage: String,
        attempt: u32,
        level: crate::log::LogLevel,
        message: String,
    },
    /// A piece of a model's answer as it streams in.
    ModelStream {
        stage: String,
        attempt: u32,
        piece: crate::log::StreamPiece,
    },
    /// A model call the stage made (answered, failed or refused), as it
    /// finished: tokens and cost so far are the sum of these.
    ModelCalled {
        stage: String,
        attempt: u32,
        call: crate::model_call::ModelCall,
    },
    /// Something about the run as a whole: a loop, a spawn, a deadlock...
    Note {
        message: String,
    },
    RunFinished {
        run_id: String,
        succeeded: bool,
        #[serde(with = "crate::time::millis")]
        elapsed: Duration,
    },
}

/// Receives run events as they happen, from any task.
pub trait RunObserver: Send + Sync {
    fn on_event(&self, event: &RunEvent);
}
