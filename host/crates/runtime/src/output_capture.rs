//! A plugin's stdout and stderr, captured up to a cap: a chatty plugin can
//! neither fill the host's memory nor trap by writing too much.
//!
//! Each complete line is also a log line of the attempt (`print()` is a
//! plugin author's first debugging tool, in every language), within the
//! stage's `max_log_lines`; the capture itself is kept for the report of a
//! trap (a Python traceback is on stderr).

use crate::live::{AttemptLive, PrintStream};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// Longest printed line kept as one log line; a longer one is split.
const MAX_LINE_BYTES: usize = 4096;

#[derive(Debug, Default)]
struct Buffer {
    bytes: Vec<u8>,
    dropped: u64,
    /// The line being printed, until its newline.
    pending: Vec<u8>,
    /// Lines logged, and lines past the cap.
    lines: u64,
    lines_dropped: u64,
}

/// Where a stream's lines go as they are printed.
#[derive(Clone)]
pub struct PrintedLines {
    pub live: Arc<AttemptLive>,
    pub stream: PrintStream,
    pub max_lines: u64,
}

impl std::fmt::Debug for PrintedLines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrintedLines")
            .field("stream", &self.stream)
            .field("max_lines", &self.max_lines)
            .finish_non_exhaustive()
    }
}

/// Shared handle: give a clone to WASI, read the text afterwards.
#[derive(Clone, Debug)]
pub struct CapturedOutput {
    cap: usize,
    buffer: Arc<Mutex<Buffer>>,
    lines: Option<PrintedLines>,
}

impl CapturedOutput {
    pub fn new(cap: usize) -> Self {
        CapturedOutput {
            cap,
            buffer: Arc::default(),
            lines: None,
        }
    }

    /// Also logs each complete line.
    pub fn with_lines(mut self, lines: Option<PrintedLines>) -> Self {
        self.lines = lines;
        self
    }

    /// What was captured, with a note of how much was dropped past the cap.
    pub fn text(&self) -> String {
        let buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        let mut text = String::from_utf8_lossy(&buffer.bytes).into_owned();
        if buffer.dropped > 0 {
            text.push_str(&format!("\n[... {} more bytes dropped]", buffer.dropped));
        }
        text
    }

    fn write(&self, data: &[u8]) {
        let complete = {
            let mut buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
            let room = self.cap.saturating_sub(buffer.bytes.len());
            let kept = room.min(data.len());
            buffer.bytes.extend_from_slice(&data[..kept]);
            buffer.dropped += (data.len() - kept) as u64;
            match &self.lines {
                Some(lines) => split_lines(&mut buffer, data, lines.max_lines),
                None => Vec::new(),
            }
        };
        // Logged outside the lock: a log line writes a file and tells the
        // observer, and the other stream may be printing meanwhile.
        if let Some(lines) = &self.lines {
            for line in complete {
                lines.live.printed(lines.stream, &line);
            }
        }
    }

    /// Logs the last line if it had no newline, and says how many lines the
    /// cap dropped. Called once the attempt is over.
    pub fn finish(&self) {
        let Some(lines) = &self.lines else { return };
        let (last, dropped) = {
            let mut buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
            let pending = std::mem::take(&mut buffer.pending);
            let last = (!pending.is_empty())
                .then(|| admit(&mut buffer, &pending, lines.max_lines))
                .flatten();
            (last, std::mem::take(&mut buffer.lines_dropped))
        };
        if let Some(line) = last {
            lines.live.printed(lines.stream, &line);
        }
        if dropped > 0 {
            lines.live.printed(
                lines.stream,
                &format!(
                    "[{dropped} more {} lines dropped: the stage's max_log_lines is {}]",
                    lines.stream.name(),
                    lines.max_lines
                ),
            );
        }
    }
}

/// Adds `data` to the pending line and takes out every line it completes
/// (or fills past [`MAX_LINE_BYTES`]), within `max_lines`.
fn split_lines(buffer: &mut Buffer, data: &[u8], max_lines: u64) -> Vec<String> {
    let mut complete = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let room = MAX_LINE_BYTES - buffer.pending.len();
        let (segment, ended) = match rest.iter().position(|b| *b == b'\n') {
            Some(at) if at <= room => (&rest[..at], true),
            _ if rest.len() >= room => (&rest[..room], true),
            _ => (rest, false),
        };
        buffer.pending.extend_from_slice(segment);
        // Skip the newline itself, not a byte of a line split for length.
        let used = segment.len() + usize::from(rest.get(segment.len()) == Some(&b'\n') && ended);
        rest = &rest[used..];
        if ended {
            let line = std::mem::take(&mut buffer.pending);
            complete.extend(admit(buffer, &line, max_lines));
        }
    }
    complete
}

/// A finished line as text, if the stream's cap has room for it; else it
/// counts as dropped.
fn admit(buffer: &mut Buffer, line: &[u8], max_lines: u64) -> Option<String> {
    if buffer.lines < max_lines {
        buffer.lines += 1;
        Some(line_text(line))
    } else {
        buffer.lines_dropped += 1;
        None
    }
}

fn line_text(bytes: &[u8]) -> String {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    String::from_utf8_lossy(bytes).into_owned()
}

struct Writer(CapturedOutput);

impl AsyncWrite for Writer {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.0.write(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(Writer(self.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::{AttemptId, read_log};
    use host_vocab::{LogLevel, RunEvent, RunObserver};

    struct Nobody;
    impl RunObserver for Nobody {
        fn on_event(&self, _: &RunEvent) {}
    }

    fn printed(stream: PrintStream, max_lines: u64) -> (tempfile::TempDir, CapturedOutput) {
        let dir = tempfile::tempdir().unwrap();
        let id = AttemptId {
            run: "r",
            stage: "s",
            iteration: 0,
            attempt: 1,
        };
        let live = Arc::new(AttemptLive::new(dir.path(), id, Arc::new(Nobody)));
        let out = CapturedOutput::new(64).with_lines(Some(PrintedLines {
            live,
            stream,
            max_lines,
        }));
        (dir, out)
    }

    fn logged(dir: &tempfile::TempDir) -> Vec<(LogLevel, Option<PrintStream>, String)> {
        let path = crate::live::log_path(dir.path(), "r", "s", 0, 1);
        read_log(&path, 0)
            .unwrap()
            .0
            .into_iter()
            .map(|l| (l.level, l.stream, l.message))
            .collect()
    }

    #[test]
    fn lines_are_logged_as_they_end_whatever_the_writes() {
        let (dir, out) = printed(PrintStream::Stdout, 100);
        out.write(b"hel");
        out.write(b"lo\r\nsecond\nthi");
        assert_eq!(logged(&dir).len(), 2, "a line is logged when it ends");
        out.write(b"rd");
        out.finish();
        let lines = logged(&dir);
        let messages: Vec<&str> = lines.iter().map(|l| l.2.as_str()).collect();
        assert_eq!(messages, ["hello", "second", "third"]);
        assert!(
            lines
                .iter()
                .all(|l| l.0 == LogLevel::Info && l.1 == Some(PrintStream::Stdout))
        );
        // The capture for a trap report is kept as before, capped.
        assert_eq!(out.text(), "hello\r\nsecond\nthird");
    }

    #[test]
    fn stderr_is_a_warning_and_the_cap_is_said_once() {
        let (dir, out) = printed(PrintStream::Stderr, 2);
        out.write(b"a\nb\nc\nd\ne");
        out.finish();
        let lines = logged(&dir);
        let messages: Vec<&str> = lines.iter().map(|l| l.2.as_str()).collect();
        assert_eq!(
            messages,
            [
                "a",
                "b",
                "[3 more stderr lines dropped: the stage's max_log_lines is 2]"
            ]
        );
        assert!(lines.iter().all(|l| l.0 == LogLevel::Warn));
    }

    #[test]
    fn a_line_without_end_is_split_at_the_line_limit() {
        let (dir, out) = printed(PrintStream::Stdout, 100);
        out.write(&vec![b'x'; MAX_LINE_BYTES * 2 + 10]);
        out.write(b"\n");
        out.finish();
        let lengths: Vec<usize> = logged(&dir).iter().map(|l| l.2.len()).collect();
        assert_eq!(lengths, [MAX_LINE_BYTES, MAX_LINE_BYTES, 10]);
    }

    #[test]
    fn without_lines_nothing_is_logged() {
        let out = CapturedOutput::new(4);
        out.write(b"abcdef\n");
        out.finish();
        assert_eq!(out.text(), "abcd\n[... 3 more bytes dropped]");
    }
}
