//! What a running attempt reports while it runs: progress, log lines and
//! model calls go to the run's observer at once (the terminal), and log
//! lines also to an append-only JSON-lines file per attempt, so another
//! process (`host serve`) can follow a stage it does not run.
//!
//! The file is written without fsync: a line is flushed to the OS as it is
//! written (another process sees it at once), but a crash of the machine may
//! lose the tail. That is the right trade for a log, and it keeps a plugin
//! that logs in a tight loop from costing a database commit per line.

pub use host_vocab::{LogLevel, LogLine, PrintStream, StreamEnd, StreamPiece};
use host_vocab::{ModelCall, RunEvent, RunObserver, now_ms};
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The directory under the state directory that holds attempt logs.
pub const LOGS_DIR: &str = "logs";

/// A file-name-safe form of an id (run and stage ids are plain already;
/// this only guards against a spawned job's name with odd characters).
fn file_safe(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Where the log of one attempt lives: `STATE/logs/RUN/STAGE-ATTEMPT.jsonl`,
/// or `STAGE-iITERATION-ATTEMPT.jsonl` for a later pass of a loop. The path
/// is derived from the ids alone, so the store need not record it.
pub fn log_path(state_dir: &Path, run: &str, stage: &str, iteration: u32, attempt: u32) -> PathBuf {
    let name = match iteration {
        0 => format!("{}-{attempt}.jsonl", file_safe(stage)),
        i => format!("{}-i{i}-{attempt}.jsonl", file_safe(stage)),
    };
    run_log_dir(state_dir, run).join(name)
}

/// Where every attempt log of `run` lives.
pub fn run_log_dir(state_dir: &Path, run: &str) -> PathBuf {
    state_dir.join(LOGS_DIR).join(file_safe(run))
}

/// Which attempt of which stage.
#[derive(Debug, Clone, Copy)]
pub struct AttemptId<'a> {
    pub run: &'a str,
    pub stage: &'a str,
    pub iteration: u32,
    pub attempt: u32,
}

/// The live side of one attempt, shared by its log and models grants.
pub struct AttemptLive {
    stage: String,
    attempt: u32,
    observer: Arc<dyn RunObserver>,
    /// `None` for an attempt nobody follows.
    file: Option<Mutex<LogFile>>,
}

/// An attempt's log file, created on its first line: most stages never log,
/// and creating a file per attempt (a new inode) cost a 2,000-stage run of
/// no-op stages a fifth of its CPU time.
enum LogFile {
    NotYet(PathBuf),
    Open(File),
    /// It could not be created; the warning was given once.
    Failed,
}

impl LogFile {
    fn write_line(&mut self, text: &str) {
        if let LogFile::NotYet(path) = self {
            let created = path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| File::create(&*path));
            *self = match created {
                Ok(f) => LogFile::Open(f),
                Err(e) => {
                    tracing::warn!("cannot write the live log {}: {e}", path.display());
                    LogFile::Failed
                }
            };
        }
        if let LogFile::Open(f) = self {
            // One write call per line: a reader never sees half a line
            // interleaved with another (a short write is left for it to skip).
            let _ = f.write_all(text.as_bytes());
        }
    }
}

impl AttemptLive {
    /// The live side of an attempt whose log goes to its file under
    /// `state_dir`. A log left by an earlier process for the same attempt
    /// (a resumed run numbers its attempts afresh) is removed, so followers
    /// never see its lines as this attempt's; the file itself is created on
    /// the first line. A file that cannot be written costs the live log,
    /// never the stage: the observer still gets every line.
    pub fn new(state_dir: &Path, id: AttemptId<'_>, observer: Arc<dyn RunObserver>) -> Self {
        let AttemptId {
            run,
            stage,
            iteration,
            attempt,
        } = id;
        let path = log_path(state_dir, run, stage, iteration, attempt);
        // An unlink of a missing name is a lookup, far cheaper than a create.
        let _ = std::fs::remove_file(&path);
        AttemptLive {
            stage: stage.to_string(),
            attempt,
            observer,
            file: Some(Mutex::new(LogFile::NotYet(path))),
        }
    }

    /// An attempt nobody watches (e.g. a plugin's `info()` call).
    pub fn detached(stage: &str) -> Self {
        struct Nobody;
        impl RunObserver for Nobody {
            fn on_event(&self, _: &RunEvent) {}
        }
        AttemptLive {
            stage: stage.to_string(),
            attempt: 0,
            observer: Arc::new(Nobody),
            file: None,
        }
    }

    fn append(&self, line: &LogLine) {
        let Some(file) = &self.file else { return };
        let mut text = serde_json::to_string(line).unwrap_or_default();
        text.push('\n');
        file.lock()
            .unwrap_or_else(|e| e.into_inner())
            .write_line(&text);
    }

    pub fn log(&self, level: LogLevel, message: &str) {
        self.line(level, message, None);
    }

    /// One log line, logged or printed: to the file and the observer.
    fn line(&self, level: LogLevel, message: &str, stream: Option<PrintStream>) {
        self.append(&LogLine {
            at_ms: now_ms(),
            level,
            message: message.to_string(),
            progress: None,
            stream,
            model: None,
        });
        self.observer.on_event(&RunEvent::StageLog {
            stage: self.stage.clone(),
            attempt: self.attempt,
            level,
            message: message.to_string(),
        });
    }

    /// A line the plugin printed on `stream`: logged at the stream's level,
    /// in the file (with the stream named), to the observer, and on the
    /// terminal through tracing (inside the attempt's span, which names the
    /// run, stage and attempt).
    pub fn printed(&self, stream: PrintStream, message: &str) {
        self.line(stream.level(), message, Some(stream));
        let shown = host_vocab::printable(message);
        match stream {
            PrintStream::Stdout => {
                tracing::info!(target: "plugin", stream = stream.name(), "{shown}")
            }
            PrintStream::Stderr => {
                tracing::warn!(target: "plugin", stream = stream.name(), "{shown}")
            }
        }
    }

    pub fn progress(&self, done: u64, total: u64, message: &str) {
        self.append(&LogLine {
            at_ms: now_ms(),
            level: LogLevel::Info,
            message: message.to_string(),
            progress: Some((done, total)),
            stream: None,
            model: None,
        });
        self.observer.on_event(&RunEvent::StageProgress {
            stage: self.stage.clone(),
            attempt: self.attempt,
            done,
            total,
            message: message.to_string(),
        });
    }

    /// A piece of a model's answer as it streams in: to the file (for the
    /// dashboard) and the observer (for the terminal).
    pub fn model_piece(&self, piece: StreamPiece) {
        self.append(&LogLine {
            at_ms: now_ms(),
            level: LogLevel::Info,
            message: String::new(),
            progress: None,
            stream: None,
            model: Some(piece.clone()),
        });
        self.observer.on_event(&RunEvent::ModelStream {
            stage: self.stage.clone(),
            attempt: self.attempt,
            piece,
        });
    }

    pub fn model_called(&self, call: &ModelCall) {
        self.observer.on_event(&RunEvent::ModelCalled {
            stage: self.stage.clone(),
            attempt: self.attempt,
            call: call.clone(),
        });
    }
}

/// Reads the complete lines of a log file from byte `offset` on; returns
/// them and the offset after the last complete line (a line still being
/// written is left for the next read). A missing file reads as empty.
pub fn read_log(path: &Path, offset: u64) -> std::io::Result<(Vec<LogLine>, u64)> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), offset)),
        Err(e) => return Err(e),
    };
    let mut reader = BufReader::new(file);
    reader.seek(SeekFrom::Start(offset))?;
    let mut lines = Vec::new();
    let mut at = offset;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf)?;
        if n == 0 || buf.last() != Some(&b'\n') {
            break;
        }
        at += n as u64;
        // A line that does not parse (a torn write after a crash) is skipped.
        if let Ok(line) = serde_json::from_slice::<LogLine>(&buf) {
            lines.push(line);
        }
    }
    Ok((lines, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Collect(Mutex<Vec<String>>);
    impl RunObserver for Collect {
        fn on_event(&self, e: &RunEvent) {
            self.0
                .lock()
                .unwrap()
                .push(serde_json::to_string(e).unwrap());
        }
    }

    #[test]
    fn lines_reach_the_file_and_the_observer() {
        let dir = tempfile::tempdir().unwrap();
        let seen = Arc::new(Collect(Mutex::new(Vec::new())));
        let id = AttemptId {
            run: "r1",
            stage: "a/b",
            iteration: 0,
            attempt: 2,
        };
        let live = AttemptLive::new(dir.path(), id, seen.clone());
        live.log(LogLevel::Warn, "careful");
        live.progress(3, 10, "working");
        let path = log_path(dir.path(), "r1", "a/b", 0, 2);
        assert!(path.ends_with("logs/r1/a_b-2.jsonl"));
        assert!(log_path(dir.path(), "r1", "s", 3, 1).ends_with("logs/r1/s-i3-1.jsonl"));
        let (lines, end) = read_log(&path, 0).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].message, "careful");
        assert_eq!(lines[0].level, LogLevel::Warn);
        assert_eq!(lines[1].progress, Some((3, 10)));
        // Following from the end sees only what comes later.
        live.log(LogLevel::Info, "more");
        let (later, _) = read_log(&path, end).unwrap();
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].message, "more");
        let events = seen.0.lock().unwrap();
        assert!(events[0].contains(r#""event":"stage-log""#), "{events:?}");
        assert!(
            events[1].contains(r#""event":"stage-progress""#),
            "{events:?}"
        );
    }

    #[test]
    fn a_silent_attempt_leaves_no_file_and_no_stale_one() {
        let dir = tempfile::tempdir().unwrap();
        let id = AttemptId {
            run: "r1",
            stage: "s",
            iteration: 0,
            attempt: 1,
        };
        let path = log_path(dir.path(), "r1", "s", 0, 1);
        // A killed process's attempt 1 logged; the resumed run's attempt 1
        // logs nothing: its followers must not see the old lines.
        let old = AttemptLive::new(dir.path(), id, Arc::new(Collect(Mutex::new(Vec::new()))));
        old.log(LogLevel::Info, "from the killed process");
        assert!(path.is_file());
        let _new = AttemptLive::new(dir.path(), id, Arc::new(Collect(Mutex::new(Vec::new()))));
        assert!(!path.exists());
        assert_eq!(read_log(&path, 0).unwrap().0, vec![]);
    }

    #[test]
    fn a_partial_line_waits_for_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.jsonl");
        let first = "{\"at_ms\":1,\"level\":\"info\",\"message\":\"a\"}\n";
        std::fs::write(&path, format!("{first}{{\"at_")).unwrap();
        let (lines, end) = read_log(&path, 0).unwrap();
        assert_eq!(lines.len(), 1);
        assert_eq!(end, first.len() as u64);
        assert_eq!(read_log(&dir.path().join("none"), 0).unwrap().0, vec![]);
    }
}
