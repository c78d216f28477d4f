//! What one plugin log line costs the host: the JSON line appended to the
//! attempt's log file (no fsync) and the event to the run's observer.

use super::stats::Summary;
use host_runtime::live::{AttemptId, AttemptLive, LogLevel};
use host_vocab::events::{RunEvent, RunObserver};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

struct Discard;

impl RunObserver for Discard {
    fn on_event(&self, _: &RunEvent) {}
}

/// Per-line time, one sample per batch of `lines` lines.
pub fn measure(dir: &Path, lines: u32, batches: usize) -> Result<Summary, String> {
    let message = "a typical plugin log line: step 17 of 40, 1234 tokens so far";
    let mut samples = Vec::with_capacity(batches);
    for batch in 0..batches {
        let id = AttemptId {
            run: "bench-log",
            stage: "chatty",
            iteration: 0,
            attempt: batch as u32 + 1,
        };
        let live = AttemptLive::new(dir, id, Arc::new(Discard));
        let start = Instant::now();
        for _ in 0..lines {
            live.log(LogLevel::Info, message);
        }
        samples.push(start.elapsed() / lines);
    }
    let _ = std::fs::remove_dir_all(dir.join(host_runtime::live::LOGS_DIR));
    Summary::of(&samples).ok_or_else(|| "no batches".into())
}
