//! The `log` interface: plugin log lines and progress, as tracing events
//! tagged with run, stage and attempt, within a per-attempt volume cap; and
//! to the attempt's live view (observer and log file, see `crate::live`).

use host_runtime::bindings::older_line_names;
use host_runtime::bindings::orchestrator::stage::log::{self as wit, Host, Level};
use host_runtime::live::AttemptLive;
use host_runtime::{AttemptScope, Capability, Grant, HasGrant, grant_of};
use host_vocab::{Activity, LogLevel};
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker};

/// Every stage may log, within its `max_log_lines`.
pub struct LogCapability;

impl Capability for LogCapability {
    type Grant = LogGrant;
    const INTERFACES: &'static [&'static str] = &["log"];
    const GOVERNED_BY: &'static str = "always: bounded by `max_log_lines`";

    fn link<T: HasGrant<LogGrant>>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        wit::add_to_linker::<T, HasSelf<LogGrant>>(linker, grant_of)?;
        // The same functions under the older lines' names (same signatures).
        for name in older_line_names("log") {
            let mut i = linker.instance(&name)?;
            i.func_wrap_async("log", |mut store, (level, message): (Level, String)| {
                Box::new(async move {
                    let s = grant_of(store.data_mut());
                    Host::log(s, level, message).await
                })
            })?;
            i.func_wrap_async(
                "progress",
                |mut store, (done, total, message): (u64, u64, String)| {
                    Box::new(async move {
                        let s = grant_of(store.data_mut());
                        Host::progress(s, done, total, message).await
                    })
                },
            )?;
        }
        Ok(())
    }

    fn grant(&self, scope: &AttemptScope<'_>) -> LogGrant {
        LogGrant::new(
            scope.run_id,
            &scope.stage.id,
            scope.attempt,
            scope.stage.max_log_lines,
            scope.live.clone(),
        )
    }

    fn deny() -> LogGrant {
        LogGrant::new(
            "-",
            "(info)",
            0,
            100,
            Arc::new(AttemptLive::detached("(info)")),
        )
    }
}

impl Grant for LogGrant {
    async fn finish(&mut self, activity: &mut Activity) {
        activity.log_lines_dropped = self.dropped;
    }
}

/// Longest log message kept; the rest is cut.
const MAX_MESSAGE_BYTES: usize = 4096;

pub struct LogGrant {
    run_id: String,
    stage_id: String,
    attempt: u32,
    max_lines: u64,
    lines: u64,
    dropped: u64,
    live: Arc<AttemptLive>,
}

impl LogGrant {
    pub fn new(
        run_id: &str,
        stage_id: &str,
        attempt: u32,
        max_lines: u64,
        live: Arc<AttemptLive>,
    ) -> Self {
        LogGrant {
            live,
            run_id: run_id.to_string(),
            stage_id: stage_id.to_string(),
            attempt,
            max_lines,
            lines: 0,
            dropped: 0,
        }
    }

    /// Lines refused because the attempt exceeded its log volume.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    fn admit(&mut self) -> bool {
        if self.lines >= self.max_lines {
            if self.dropped == 0 {
                tracing::warn!(run = %self.run_id, stage = %self.stage_id, attempt = self.attempt,
                    "stage exceeded {} log lines; dropping the rest", self.max_lines);
            }
            self.dropped += 1;
            return false;
        }
        self.lines += 1;
        true
    }
}

fn clip(message: &str) -> &str {
    if message.len() <= MAX_MESSAGE_BYTES {
        return message;
    }
    let mut end = MAX_MESSAGE_BYTES;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

impl Host for LogGrant {
    async fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        if !self.admit() {
            return Ok(());
        }
        let msg = clip(&message);
        self.live.log(
            match level {
                Level::Trace => LogLevel::Trace,
                Level::Debug => LogLevel::Debug,
                Level::Info => LogLevel::Info,
                Level::Warn => LogLevel::Warn,
                Level::Error => LogLevel::Error,
            },
            msg,
        );
        // On the terminal, a newline or an escape code in a message is
        // shown, not obeyed: it cannot fake a line of the host's. The run,
        // stage and attempt are the attempt's span's, not repeated here.
        let msg = host_vocab::printable(msg);
        match level {
            Level::Trace => tracing::trace!(target: "plugin", "{msg}"),
            Level::Debug => tracing::debug!(target: "plugin", "{msg}"),
            Level::Info => tracing::info!(target: "plugin", "{msg}"),
            Level::Warn => tracing::warn!(target: "plugin", "{msg}"),
            Level::Error => tracing::error!(target: "plugin", "{msg}"),
        }
        Ok(())
    }

    async fn progress(&mut self, done: u64, total: u64, message: String) -> wasmtime::Result<()> {
        if !self.admit() {
            return Ok(());
        }
        self.live.progress(done, total, clip(&message));
        // Debug, not info: progress has its own display (the terminal's
        // progress bar, the live log), a line per report would drown it.
        tracing::debug!(target: "plugin", done, total, "progress {done}/{total}: {}",
            host_vocab::printable(clip(&message)));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{live, pipeline, scope};

    #[tokio::test]
    async fn lines_past_the_cap_are_dropped_and_counted() {
        let (p, _dir) = pipeline(
            "[pipeline]\nname = \"p\"\ntask = \"t\"\n\n[[stage]]\nid = \"a\"\nplugin = \"a.wasm\"\nmax_log_lines = 3\n",
        );
        let live = live();
        let mut grant = LogCapability.grant(&scope(&p, "a", &live));
        for i in 0..5 {
            grant.log(Level::Info, format!("line {i}")).await.unwrap();
        }
        grant.progress(1, 2, "half".into()).await.unwrap();
        let mut activity = Activity::default();
        grant.finish(&mut activity).await;
        assert_eq!(
            activity.log_lines_dropped, 3,
            "2 log lines and the progress report"
        );
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let message = "é".repeat(MAX_MESSAGE_BYTES);
        let cut = clip(&message);
        assert!(cut.len() <= MAX_MESSAGE_BYTES);
        assert!(cut.chars().all(|c| c == 'é'));
    }
}
