//! What the user sees in the terminal: the plan, live progress, the summary.

use crate::scheduler::{RunOutcome, RunSummary, StageStatus};
use crate::style::{self, Paint, Stream};
use host_manifest::{Pipeline, display_duration};
use host_vocab::ModelCall;
use host_vocab::events::{RunEvent, RunObserver};
use std::io::Write;
use std::sync::Mutex;

/// How a run shows itself on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputMode {
    /// One line per event (stdout is not a terminal).
    Lines,
    /// Event lines above a live board of running stages (a terminal).
    Live,
    /// One JSON object per event.
    Json,
    /// Nothing but the summary (and errors, on stderr).
    Quiet,
}

impl OutputMode {
    /// `--json` wins, then `--quiet`; else live progress on a terminal.
    pub fn choose(json: bool, quiet: bool) -> Self {
        use std::io::IsTerminal;
        match (json, quiet) {
            (true, _) => OutputMode::Json,
            (_, true) => OutputMode::Quiet,
            _ if std::io::stdout().is_terminal() => OutputMode::Live,
            _ => OutputMode::Lines,
        }
    }

    /// The observer that prints a run this way.
    pub fn observer(self) -> std::sync::Arc<dyn RunObserver> {
        match self {
            OutputMode::Live => std::sync::Arc::new(crate::progress::TerminalObserver::new()),
            mode => std::sync::Arc::new(ConsoleObserver::new(mode)),
        }
    }
}

/// Prints one line per event to stdout; with `Json`, one JSON object per
/// line; with `Quiet`, nothing.
pub struct ConsoleObserver {
    mode: OutputMode,
    out: Mutex<std::io::Stdout>,
}

impl ConsoleObserver {
    pub fn new(mode: OutputMode) -> Self {
        ConsoleObserver {
            mode,
            out: Mutex::new(std::io::stdout()),
        }
    }
}

fn secs(d: std::time::Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

/// The line an event prints as, if any: progress, log lines and model
/// calls have their own displays (the live board, the log, the summary).
pub fn event_line(event: &RunEvent) -> Option<String> {
    let line = match event {
        RunEvent::RunStarted {
            run_id,
            pipeline,
            stages,
        } => {
            format!("run {run_id}: pipeline '{pipeline}', {stages} stage(s)")
        }
        RunEvent::Note { message } => format!("  * {message}"),
        RunEvent::StageStarted { stage, attempt: 1 } => format!("  > {stage} started"),
        RunEvent::StageStarted { stage, attempt } => {
            format!("  > {stage} started (attempt {attempt})")
        }
        RunEvent::StageRetrying {
            stage,
            attempt,
            failure,
            delay,
        } => {
            format!(
                "  ~ {stage} attempt {attempt} failed: {failure}; retrying in {}",
                secs(*delay)
            )
        }
        RunEvent::StageFinished(r) => match r.status {
            StageStatus::Succeeded => {
                let mut line = format!(
                    "  ok {} {} {}",
                    r.id,
                    secs(r.elapsed),
                    r.summary.as_deref().unwrap_or("")
                );
                if !r.model_calls.is_empty() {
                    line.push_str(&format!(
                        " [{} model call(s), {} tokens, ${:.4}]",
                        r.model_calls.len(),
                        r.tokens(),
                        r.cost_usd()
                    ));
                }
                line
            }
            _ => format!(
                "  FAILED {} {} after {} attempt(s): {}",
                r.id,
                secs(r.elapsed),
                r.attempts,
                r.failure
                    .as_ref()
                    .map(|f| f.to_string())
                    .unwrap_or_default()
            ),
        },
        RunEvent::StageSkipped { stage, reason } => {
            format!("  - {stage} skipped: {reason}")
        }
        RunEvent::StageProgress { .. }
        | RunEvent::StageLog { .. }
        | RunEvent::ModelCalled { .. }
        | RunEvent::ModelStream { .. }
        | RunEvent::RunFinished { .. } => return None,
    };
    Some(line)
}

/// What the terminal shows for an event: its line, with the plugins' words
/// made printable (shown, never obeyed by the terminal), coloured by what
/// happened when stdout gets colour.
pub fn shown_event_line(event: &RunEvent) -> Option<String> {
    let line = host_vocab::printable_lines(&event_line(event)?).into_owned();
    let paint = match event {
        RunEvent::StageFinished(r) if r.status == StageStatus::Succeeded => Paint::Good,
        RunEvent::StageFinished(_) => Paint::Bad,
        RunEvent::StageRetrying { .. } => Paint::Notice,
        _ => return Some(line),
    };
    Some(style::paint(&line, paint, Stream::Stdout))
}

impl RunObserver for ConsoleObserver {
    fn on_event(&self, event: &RunEvent) {
        let line = match self.mode {
            OutputMode::Quiet => return,
            OutputMode::Json => match event {
                // Already on stderr through tracing; as JSON events they
                // would only double the volume of stdout.
                RunEvent::StageLog { .. } => return,
                _ => serde_json::to_string(event).unwrap_or_default(),
            },
            OutputMode::Lines | OutputMode::Live => match shown_event_line(event) {
                Some(line) => line,
                None => return,
            },
        };
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

/// The final table of a run.
pub fn print_summary(summary: &RunSummary) {
    println!();
    println!(
        "{:<20} {:<11} {:>3} {:>4} {:>8} {:>7} {:>9}  {:<16} note",
        "stage", "status", "try", "iter", "time", "tokens", "cost", "models"
    );
    for s in &summary.stages {
        let status = match s.status {
            StageStatus::Succeeded => "succeeded",
            StageStatus::Failed => "failed",
            StageStatus::Skipped => "skipped",
            StageStatus::Pending => "pending",
            StageStatus::Running => "running",
            StageStatus::Interrupted => "interrupted",
        };
        let mut models: Vec<String> = s
            .model_calls
            .iter()
            .map(|c| match &c.session {
                Some(session) => format!("{}@{session}", c.alias),
                None => c.alias.clone(),
            })
            .collect();
        models.sort();
        models.dedup();
        let note = match (&s.failure, &s.skip_reason, &s.summary) {
            (Some(f), _, _) => f.to_string(),
            (_, Some(reason), _) => reason.clone(),
            (_, _, Some(summary)) => summary.clone(),
            _ => String::new(),
        };
        let note: String = note.lines().next().unwrap_or("").chars().take(90).collect();
        let note = host_vocab::printable(&note);
        let status = match s.status {
            StageStatus::Succeeded => {
                style::paint(&format!("{status:<11}"), Paint::Good, Stream::Stdout)
            }
            StageStatus::Failed => {
                style::paint(&format!("{status:<11}"), Paint::Bad, Stream::Stdout)
            }
            _ => format!("{status:<11}"),
        };
        println!(
            "{:<20} {status} {:>3} {:>4} {:>8} {:>7} {:>9}  {:<16} {note}",
            s.id,
            s.attempts,
            s.iteration,
            secs(s.elapsed),
            s.tokens(),
            format!("${:.4}", s.cost_usd()),
            models.join(",")
        );
    }
    let count = |st: StageStatus| summary.stages.iter().filter(|s| s.status == st).count();
    let tokens: u64 = summary.stages.iter().map(|s| s.tokens()).sum();
    let cost = summary.stages.iter().fold(0.0, |acc, s| acc + s.cost_usd());
    print_model_totals(summary.stages.iter().flat_map(|s| &s.model_calls));
    let verdict = match summary.outcome {
        _ if summary.succeeded() => "succeeded",
        RunOutcome::Escalated => "ESCALATED",
        RunOutcome::Deadlocked => "DEADLOCKED",
        RunOutcome::Cancelled => "CANCELLED",
        RunOutcome::DeadlineExceeded => "PAST ITS DEADLINE",
        RunOutcome::Finished => "FAILED",
    };
    let verdict = style::paint(
        verdict,
        if summary.succeeded() {
            Paint::Good
        } else {
            Paint::Bad
        },
        Stream::Stdout,
    );
    println!(
        "\nrun {} {verdict}: {} succeeded, {} failed, {} skipped in {} ({} tokens, ${:.4})",
        summary.run_id,
        count(StageStatus::Succeeded),
        count(StageStatus::Failed),
        count(StageStatus::Skipped),
        secs(summary.elapsed),
        tokens,
        cost
    );
}

/// "no retries", "1 retry", "3 retries".
fn retries(n: u64) -> String {
    match n {
        0 => "no retries".to_string(),
        1 => "1 retry".to_string(),
        n => format!("{n} retries"),
    }
}

/// A command as a shell would take it: words with spaces or quotes in
/// single quotes, so the line can be pasted to try the gate by hand.
fn shell_words(words: &[String]) -> String {
    let plain = |w: &str| {
        !w.is_empty()
            && w.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    };
    words
        .iter()
        .map(|w| {
            if plain(w) {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The resolved plan, for `host run --dry-run`.
pub fn print_plan(p: &Pipeline) {
    println!("pipeline '{}' ({})", p.name, p.manifest.display());
    let task_line = p.task.lines().next().unwrap_or("");
    let more = if p.task.lines().count() > 1 {
        " [...]"
    } else {
        ""
    };
    println!("task: {task_line}{more}");
    println!("max_parallel: {}", p.max_parallel);
    if !p.models.is_empty() {
        println!("models:");
        for m in p.models.values() {
            println!(
                "  {:<12} {} model '{}' at {} (key: {}, timeout {}, {})",
                m.alias,
                m.provider,
                m.model,
                m.base_url,
                m.api_key_env
                    .as_deref()
                    .map_or("none".to_string(), |v| format!("${v}")),
                display_duration(m.timeout),
                retries(m.max_retries.into())
            );
        }
    }
    if let Some(w) = &p.workspace {
        println!("workspace: {}", w.display());
    }
    if !p.gates.is_empty() {
        println!("gates:");
        for g in p.gates.values() {
            println!(
                "  {:<12} {} in ./{} (timeout {}, env {}, passes on exit {})",
                g.name,
                host_vocab::printable(&shell_words(&g.command)),
                g.dir.display(),
                display_duration(g.timeout),
                if g.env.is_empty() {
                    "none".to_string()
                } else {
                    g.env.join(", ")
                },
                g.pass_exit_codes
                    .iter()
                    .map(i32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    println!("stages, in order:");
    for (i, s) in p.stages.iter().enumerate() {
        let plugin = &p.plugins[&s.plugin];
        let built = if plugin.wasm.is_file() {
            ""
        } else {
            " (not built yet)"
        };
        println!(
            "  {}. {}  plugin '{}' {}{built}",
            i + 1,
            s.id,
            s.plugin,
            plugin.wasm.display()
        );
        let after = if s.after.is_empty() {
            "(start)".to_string()
        } else {
            s.after
                .iter()
                .map(|d| match d.on {
                    host_manifest::Condition::Success => d.stage.clone(),
                    on => format!("{} (on {})", d.stage, on.as_str()),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!("       after: {after}");
        if let Some(w) = &s.when {
            println!("       when: {}", w.text);
        }
        if let Some(l) = &s.loop_back {
            println!(
                "       loop: back to {} when the decision is '{}', at most {} more pass(es)",
                l.to, l.on, l.max
            );
        }
        if !s.spawns.is_empty() {
            println!("       may spawn: {}", s.spawns.join(", "));
        }
        if let Some(g) = &s.group {
            println!("       group: {g}");
        }
        let listed = |what: &str, names: &[String]| {
            if names.is_empty() {
                format!("no {what}")
            } else {
                format!("{what} [{}]", names.join(", "))
            }
        };
        println!(
            "       grants: {}, {}, workspace {}   limits: timeout {}, memory {}MiB, {}",
            listed("models", &s.models),
            listed("gates", &s.gates),
            s.workspace.as_str(),
            display_duration(s.timeout),
            s.memory_limit >> 20,
            retries(s.retries.into())
        );
        if s.config.as_object().is_some_and(|o| !o.is_empty()) {
            println!("       config: {}", s.config);
        }
    }
}

/// Milliseconds since the epoch as "YYYY-MM-DD HH:MM:SS" (UTC).
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Totals per model alias: calls answered by the provider, tokens, cost,
/// and how many were refused, failed, or answered from cache or replay.
pub fn print_model_totals<'a>(calls: impl Iterator<Item = &'a ModelCall>) {
    use host_vocab::CallSource;
    #[derive(Default)]
    struct Totals {
        model: String,
        calls: u64,
        tokens: u64,
        cost: f64,
        refused: u64,
        failed: u64,
        unsettled: u64,
        free: u64,
    }
    let mut per_alias: std::collections::BTreeMap<String, Totals> = Default::default();
    for call in calls {
        let t = per_alias.entry(call.alias.clone()).or_default();
        if t.model.is_empty() {
            t.model = call.model.clone();
        }
        match (call.source, &call.error) {
            (CallSource::Refused, _) => t.refused += u64::from(call.count),
            _ if call.unsettled => t.unsettled += 1,
            (_, Some(_)) => t.failed += 1,
            (CallSource::Cache | CallSource::Replay, None) => t.free += 1,
            (CallSource::Provider, None) => t.calls += 1,
        }
        t.tokens += u64::from(call.input_tokens) + u64::from(call.output_tokens);
        t.cost += call.cost_usd;
    }
    if per_alias.is_empty() {
        return;
    }
    println!("\nmodel calls:");
    for (alias, t) in per_alias {
        let mut extra = Vec::new();
        for (n, what) in [
            (t.refused, "refused"),
            (t.failed, "failed"),
            (
                t.unsettled,
                "sent but never answered (counted at their worst case)",
            ),
            (t.free, "from cache or replay"),
        ] {
            if n > 0 {
                extra.push(format!("{n} {what}"));
            }
        }
        let extra = if extra.is_empty() {
            String::new()
        } else {
            format!(" ({})", extra.join(", "))
        };
        println!(
            "  {alias} ({}): {} call(s){extra}, {} tokens, ${:.4}",
            t.model, t.calls, t.tokens, t.cost
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_commands_print_as_a_shell_takes_them() {
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            shell_words(&words(&["cargo", "test", "-q"])),
            "cargo test -q"
        );
        assert_eq!(
            shell_words(&words(&["sh", "-c", "echo 'hi' there", ""])),
            r"sh -c 'echo '\''hi'\'' there' ''"
        );
    }

    #[test]
    fn formats_utc() {
        assert_eq!(super::utc(0), "1970-01-01 00:00:00");
        assert_eq!(super::utc(1_795_372_800_000), "2026-11-22 18:40:00");
    }
}
