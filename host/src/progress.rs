//! Live progress in a terminal: one line per running stage (elapsed time,
//! tokens and cost so far, the plugin's own progress as a bar), redrawn in
//! place below the ordinary event lines.
//!
//! Everything that writes to the terminal while the board is shown must go
//! through [`Board`]'s lock, or the redraw would overwrite it: the event
//! lines do, and so does the tracing output ([`TerminalWriter`]).

use crate::report::shown_event_line;
use host_vocab::events::{RunEvent, RunObserver};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A stage that is running now, as its line shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Running {
    pub stage: String,
    pub attempt: u32,
    pub started: Instant,
    pub tokens: u64,
    pub cost_usd: f64,
    pub calls: u32,
    /// The plugin's last progress report: done, total, message.
    pub progress: Option<(u64, u64, String)>,
    /// A model answer streaming in now: its alias and its latest text.
    pub streaming: Option<(String, String)>,
}

/// Characters of a streaming answer a line keeps (the tail is what moves).
const STREAM_TAIL: usize = 200;

const BAR_WIDTH: usize = 20;

/// `[#########-----------]  45%`; a total of 0 means "unknown": no bar.
pub fn bar(done: u64, total: u64) -> Option<String> {
    if total == 0 {
        return None;
    }
    let done = done.min(total);
    let filled = ((done as u128 * BAR_WIDTH as u128) / total as u128) as usize;
    let percent = (done as u128 * 100 / total as u128) as u64;
    Some(format!(
        "[{}{}] {percent:>3}%",
        "#".repeat(filled),
        "-".repeat(BAR_WIDTH - filled)
    ))
}

/// One stage's line, cut to `width` characters so it never wraps (a
/// wrapped line would break the in-place redraw).
pub fn render_line(r: &Running, now: Instant, width: usize) -> String {
    let elapsed = now.saturating_duration_since(r.started).as_secs_f64();
    let attempt = if r.attempt > 1 {
        format!(" (attempt {})", r.attempt)
    } else {
        String::new()
    };
    let mut line = format!("  ~ {}{attempt}  {elapsed:.1}s", r.stage);
    if r.calls > 0 {
        line.push_str(&format!("  {} tok  ${:.4}", r.tokens, r.cost_usd));
    }
    if let Some((done, total, message)) = &r.progress {
        match bar(*done, *total) {
            Some(bar) => line.push_str(&format!("  {bar}")),
            None => line.push_str(&format!("  {done}")),
        }
        if !message.is_empty() {
            line.push_str(&format!("  {}", host_vocab::printable(message)));
        }
    }
    let mut line: String = line.chars().take(width.max(10)).collect();
    // The newest text of a streaming answer, in what room is left.
    if let Some((alias, text)) = &r.streaming {
        let room = width
            .max(10)
            .saturating_sub(line.chars().count() + alias.len() + 6);
        if room > 8 {
            let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
            let flat = host_vocab::printable(&flat);
            let count = flat.chars().count();
            let tail: String = flat.chars().skip(count.saturating_sub(room)).collect();
            line.push_str(&format!("  {alias}> {tail}"));
        }
    }
    line
}

/// The running stages and what is drawn of them.
#[derive(Default)]
pub struct Board {
    stages: Vec<Running>,
    /// Lines of the board currently on the terminal, below the cursor's row.
    drawn: usize,
    /// Whether a board is shown at all (a terminal observer exists).
    active: bool,
}

static BOARD: Mutex<Board> = Mutex::new(Board {
    stages: Vec::new(),
    drawn: 0,
    active: false,
});

fn board() -> std::sync::MutexGuard<'static, Board> {
    BOARD.lock().unwrap_or_else(|e| e.into_inner())
}

/// Columns of the terminal on stdout (80 if it cannot be asked).
fn terminal_width() -> usize {
    // SAFETY: TIOCGWINSZ only writes a winsize into the struct we pass.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    if ok && size.ws_col > 0 {
        usize::from(size.ws_col)
    } else {
        80
    }
}

impl Board {
    fn apply(&mut self, event: &RunEvent) {
        match event {
            RunEvent::StageStarted { stage, attempt } => {
                self.stages.retain(|r| &r.stage != stage);
                self.stages.push(Running {
                    stage: stage.clone(),
                    attempt: *attempt,
                    started: Instant::now(),
                    tokens: 0,
                    cost_usd: 0.0,
                    calls: 0,
                    progress: None,
                    streaming: None,
                });
            }
            RunEvent::StageProgress {
                stage,
                done,
                total,
                message,
                ..
            } => {
                if let Some(r) = self.stages.iter_mut().find(|r| &r.stage == stage) {
                    r.progress = Some((*done, *total, message.clone()));
                }
            }
            RunEvent::ModelStream { stage, piece, .. } => {
                if let Some(r) = self.stages.iter_mut().find(|r| &r.stage == stage) {
                    match (&piece.end, &mut r.streaming) {
                        (Some(_), streaming) => *streaming = None,
                        (None, Some((alias, text))) if *alias == piece.alias => {
                            text.push_str(&piece.text);
                            // Only the tail is ever drawn.
                            if text.len() > 4 * STREAM_TAIL {
                                let cut = text.len() - 2 * STREAM_TAIL;
                                let cut = (cut..text.len())
                                    .find(|&i| text.is_char_boundary(i))
                                    .unwrap_or(text.len());
                                text.drain(..cut);
                            }
                        }
                        (None, streaming) => {
                            *streaming = Some((piece.alias.clone(), piece.text.clone()))
                        }
                    }
                }
            }
            RunEvent::ModelCalled { stage, call, .. } => {
                if let Some(r) = self.stages.iter_mut().find(|r| &r.stage == stage) {
                    r.calls += 1;
                    r.tokens += u64::from(call.input_tokens) + u64::from(call.output_tokens);
                    r.cost_usd += call.cost_usd;
                }
            }
            RunEvent::StageRetrying { stage, .. } => self.stages.retain(|r| &r.stage != stage),
            RunEvent::StageFinished(result) => self.stages.retain(|r| r.stage != result.id),
            RunEvent::RunFinished { .. } => self.stages.clear(),
            _ => {}
        }
    }

    /// Erases the board: the cursor goes back to where it began.
    fn clear(&mut self, out: &mut impl Write) {
        if self.drawn > 0 {
            let _ = write!(out, "\x1b[{}A\x1b[J", self.drawn);
            self.drawn = 0;
        }
    }

    fn draw(&mut self, out: &mut impl Write) {
        let now = Instant::now();
        let width = terminal_width().saturating_sub(1);
        for r in &self.stages {
            let _ = writeln!(out, "{}", render_line(r, now, width));
        }
        self.drawn = self.stages.len();
    }

    fn redraw(&mut self) {
        let mut out = std::io::stdout().lock();
        self.clear(&mut out);
        self.draw(&mut out);
        let _ = out.flush();
    }
}

/// Prints the ordinary event lines above a live board of running stages;
/// for `host run` when stdout is a terminal.
pub struct TerminalObserver {
    stop: Arc<AtomicBool>,
}

impl TerminalObserver {
    pub fn new() -> Self {
        board().active = true;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        // Elapsed times move even when no event comes: redraw a few times a
        // second on a plain thread (the async workers run stages).
        let _ = std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(250));
                    let mut b = board();
                    if b.active && !b.stages.is_empty() {
                        b.redraw();
                    }
                }
            });
        TerminalObserver { stop }
    }
}

impl Default for TerminalObserver {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TerminalObserver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let mut b = board();
        let mut out = std::io::stdout().lock();
        b.clear(&mut out);
        let _ = out.flush();
        b.stages.clear();
        b.active = false;
    }
}

impl RunObserver for TerminalObserver {
    fn on_event(&self, event: &RunEvent) {
        let mut b = board();
        b.apply(event);
        let mut out = std::io::stdout().lock();
        b.clear(&mut out);
        if let Some(line) = shown_event_line(event) {
            let _ = writeln!(out, "{line}");
        }
        b.draw(&mut out);
        let _ = out.flush();
    }
}

/// A `tracing` writer for stderr that lifts the board out of the way while
/// a log line is written, so logs and the live board share the terminal.
pub struct TerminalWriter;

/// One log record, written in one piece when dropped.
pub struct BufferedLine(Vec<u8>);

impl Write for BufferedLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for BufferedLine {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let mut b = board();
        if b.active {
            let mut out = std::io::stdout().lock();
            b.clear(&mut out);
            let _ = out.flush();
        }
        let _ = std::io::stderr().lock().write_all(&self.0);
        if b.active {
            let mut out = std::io::stdout().lock();
            b.draw(&mut out);
            let _ = out.flush();
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for TerminalWriter {
    type Writer = BufferedLine;

    fn make_writer(&'a self) -> Self::Writer {
        BufferedLine(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running() -> Running {
        Running {
            stage: "execution".into(),
            attempt: 1,
            started: Instant::now(),
            tokens: 0,
            cost_usd: 0.0,
            calls: 0,
            progress: None,
            streaming: None,
        }
    }

    #[test]
    fn bars() {
        assert_eq!(bar(0, 10).unwrap(), "[--------------------]   0%");
        assert_eq!(bar(5, 10).unwrap(), "[##########----------]  50%");
        assert_eq!(bar(12, 10).unwrap(), "[####################] 100%");
        assert_eq!(bar(3, 0), None);
    }

    #[test]
    fn a_line_shows_time_tokens_cost_and_progress() {
        let mut r = running();
        let now = r.started + Duration::from_millis(12_345);
        assert_eq!(render_line(&r, now, 200), "  ~ execution  12.3s");
        r.attempt = 2;
        r.calls = 1;
        r.tokens = 1234;
        r.cost_usd = 0.0123;
        r.progress = Some((1, 4, "writing tests".into()));
        assert_eq!(
            render_line(&r, now, 200),
            "  ~ execution (attempt 2)  12.3s  1234 tok  $0.0123  [#####---------------]  25%  writing tests"
        );
        // Never wider than the terminal.
        assert_eq!(render_line(&r, now, 30).chars().count(), 30);
        // Progress without a total is a count.
        r.progress = Some((7, 0, String::new()));
        assert!(render_line(&r, now, 200).ends_with("  7"));
    }

    #[test]
    fn the_board_follows_the_events() {
        let mut b = Board::default();
        b.apply(&RunEvent::StageStarted {
            stage: "a".into(),
            attempt: 1,
        });
        b.apply(&RunEvent::StageProgress {
            stage: "a".into(),
            attempt: 1,
            done: 2,
            total: 3,
            message: "m".into(),
        });
        assert_eq!(b.stages[0].progress, Some((2, 3, "m".into())));
        b.apply(&RunEvent::StageRetrying {
            stage: "a".into(),
            attempt: 1,
            failure: "x".into(),
            delay: Duration::ZERO,
        });
        assert!(b.stages.is_empty());
    }

    #[test]
    fn a_streaming_answer_shows_its_newest_text_until_it_ends() {
        let mut b = Board::default();
        b.apply(&RunEvent::StageStarted {
            stage: "a".into(),
            attempt: 1,
        });
        let piece = |text: &str, end| RunEvent::ModelStream {
            stage: "a".into(),
            attempt: 1,
            piece: host_vocab::StreamPiece {
                call: 0,
                alias: "large".into(),
                text: text.into(),
                end,
            },
        };
        b.apply(&piece("Once upon\na ", None));
        b.apply(&piece("time", None));
        let now = b.stages[0].started;
        let line = render_line(&b.stages[0], now, 80);
        assert!(line.ends_with("large> Once upon a time"), "{line}");
        assert!(render_line(&b.stages[0], now, 40).chars().count() <= 40);
        b.apply(&piece("", Some(host_vocab::StreamEnd::Answer)));
        assert_eq!(b.stages[0].streaming, None);
    }
}
