//! A plugin's log lines, as the live log files and the dashboard keep them.

use serde::{Deserialize, Serialize};

/// Severity of a plugin's log line, as the WIT log interface names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// Which of its standard streams a plugin printed a line on (`print()`,
/// `console.log`, `println!`, `eprintln!`): kept as its log, with the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrintStream {
    Stdout,
    Stderr,
}

impl PrintStream {
    pub fn name(self) -> &'static str {
        match self {
            PrintStream::Stdout => "stdout",
            PrintStream::Stderr => "stderr",
        }
    }

    /// The level its lines are logged at: stderr is where errors and
    /// tracebacks go.
    pub fn level(self) -> LogLevel {
        match self {
            PrintStream::Stdout => LogLevel::Info,
            PrintStream::Stderr => LogLevel::Warn,
        }
    }
}

/// One line of an attempt's log file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    pub at_ms: u64,
    pub level: LogLevel,
    pub message: String,
    /// Set for a progress report: units done and the total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<(u64, u64)>,
    /// Set for a line the plugin printed rather than logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<PrintStream>,
    /// Set for a piece of a model's answer as it streamed in (not a line
    /// the plugin wrote).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<StreamPiece>,
}

/// A piece of a model's answer as it arrives. What is durable is the whole
/// answer, recorded when the call ends; pieces are for watching it come.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamPiece {
    /// The call's number in its attempt (its place in the record).
    pub call: u32,
    pub alias: String,
    /// The next text of the answer.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
    /// Set on the last piece of a stream: how it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<StreamEnd>,
}

/// How the pieces of a stream so far turned out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StreamEnd {
    /// They are the call's answer.
    Answer,
    /// They are not: the call was sent again (after its stream broke) or
    /// failed, for this reason. A new stream of the same call may follow.
    Superseded(String),
}
