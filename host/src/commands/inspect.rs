//! Reading the store: `host runs`, `status`, `show`, `events`, `export`.

use super::{Exit, Failure, Globals, Outcome};
use host::report::utc;
use host::store::{Applied, EventRecord, RunRecord, StageRecord, Store};
use host::vocab::{printable, printable_lines};
use std::io::Write;

fn duration_ms(run: &RunRecord) -> Option<u64> {
    Some(run.finished_ms?.saturating_sub(run.started_ms))
}

#[derive(clap::Args)]
pub struct RunsArgs {
    /// Print the runs as a JSON array.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct StatusArgs {
    /// The run (see `host runs`).
    run_id: String,
    /// Print the run and its stages as one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct ShowArgs {
    /// The run (see `host runs`).
    run_id: String,
    /// The stage whose outputs to print (see `host status RUN_ID`).
    stage: String,
    /// Write this artifact's bytes to stdout.
    #[arg(long, value_name = "NAME")]
    artifact: Option<String>,
    /// Print the stage record as one JSON object.
    #[arg(long)]
    json: bool,
    /// Print what the stage logged and printed (stdout, stderr), attempt by
    /// attempt, instead of its outputs.
    #[arg(long, conflicts_with_all = ["artifact", "json"])]
    log: bool,
}

impl ShowArgs {
    /// What `host show RUN_ID STAGE` prints: the stage's outputs.
    pub fn outputs(run_id: &str, stage: &str) -> Self {
        ShowArgs {
            run_id: run_id.to_string(),
            stage: stage.to_string(),
            artifact: None,
            json: false,
            log: false,
        }
    }
}

#[derive(clap::Args)]
pub struct EventsArgs {
    /// The run (see `host runs`).
    run_id: String,
    /// Print the events as JSON lines.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ExportFormat {
    /// One JSON object per line: the run, then its stages and events.
    Jsonl,
}

#[derive(clap::Args)]
pub struct ExportArgs {
    /// The run to export (see `host runs`).
    run_id: String,
    /// The output format: one JSON object per line.
    #[arg(long, value_enum, default_value = "jsonl")]
    format: ExportFormat,
}

fn secs(ms: Option<u64>) -> String {
    ms.map_or("-".into(), |ms| format!("{:.2}s", ms as f64 / 1000.0))
}

pub fn runs(globals: &Globals, args: RunsArgs) -> Outcome {
    let json = args.json;
    // A directory that exists but holds no database lists no runs (as does
    // the default place before the first run); a state directory named on
    // the command line that does not exist is a typo, and says so.
    let store = match globals.store_if_any(None)? {
        Some(store) => store,
        None if globals.state_dir.is_none() || globals.state_dir(None).is_dir() => {
            eprintln!("no runs yet: {}", globals.no_store_here(None));
            return Ok(Exit::Success);
        }
        None => return Err(Failure::invalid(globals.no_store_here(None))),
    };
    let mut runs = store.runs()?;
    // Ids order runs by the second they started in; this orders them exactly.
    runs.sort_by_key(|r| r.started_ms);
    let mut out = std::io::stdout().lock();
    if !json {
        let _ = writeln!(
            out,
            "{:<24} {:<16} {:<12} {:<20} {:>9} {:>9}",
            "run", "pipeline", "status", "started (UTC)", "duration", "cost"
        );
    }
    for run in &runs {
        let stages = store.stages(run)?;
        let cost = stages.iter().fold(0.0, |acc, s| acc + s.cost_usd());
        let tokens: u64 = stages.iter().map(StageRecord::tokens).sum();
        let line = if json {
            serde_json::json!({
                "id": run.id, "pipeline": run.pipeline, "status": run.status,
                "started_ms": run.started_ms, "finished_ms": run.finished_ms,
                "duration_ms": duration_ms(run), "tokens": tokens, "cost_usd": cost,
            })
            .to_string()
        } else {
            format!(
                "{:<24} {:<16} {:<12} {:<20} {:>9} {:>9}",
                run.id,
                run.pipeline,
                run.status.as_str(),
                utc(run.started_ms),
                secs(duration_ms(run)),
                format!("${cost:.4}")
            )
        };
        let _ = writeln!(out, "{line}");
    }
    Ok(Exit::Success)
}

fn open_run(globals: &Globals, run_id: &str) -> Result<(Store, RunRecord), Failure> {
    globals.run_store(run_id)
}

pub fn status(globals: &Globals, args: StatusArgs) -> Outcome {
    let json = args.json;
    let (store, run) = open_run(globals, &args.run_id)?;
    let stages = store.stages(&run)?;
    if json {
        println!("{}", serde_json::json!({ "run": run, "stages": stages }));
        return Ok(Exit::Success);
    }
    println!(
        "run {} ({}): {}, started {} UTC, {}",
        run.id,
        run.pipeline,
        run.status.as_str(),
        utc(run.started_ms),
        secs(duration_ms(&run))
    );
    println!(
        "{:<20} {:<12} {:>8} {:>9} {:>7} {:>9}  note",
        "stage", "status", "attempts", "time", "tokens", "cost"
    );
    for s in &stages {
        let note = if let Some(from) = &s.reused_from {
            format!("reused from run {from}")
        } else if let Some(reason) = &s.skip_reason {
            reason.clone()
        } else if let Some(f) = &s.failure {
            f.to_string().lines().next().unwrap_or_default().to_string()
        } else {
            s.output
                .as_ref()
                .map(|o| o.summary.clone())
                .unwrap_or_default()
        };
        let note = printable(&note);
        println!(
            "{:<20} {:<12} {:>8} {:>9} {:>7} {:>9}  {note}",
            s.stage,
            s.status.as_str(),
            s.attempts,
            secs(s.elapsed_ms()),
            s.tokens(),
            format!("${:.4}", s.cost_usd())
        );
    }
    host::report::print_model_totals(stages.iter().flat_map(|s| &s.model_calls));
    let changed: usize = stages.iter().map(|s| s.file_changes.len()).sum();
    if changed > 0 {
        let state = match store.applied(&run.id)? {
            Some(Applied::Applied { to, at_ms }) => {
                format!("applied to {to} at {} UTC", utc(at_ms))
            }
            Some(Applied::Refused { to, conflicts }) => format!(
                "not applied to {to}: {} changed there since the run began (`host apply {} --force`)",
                conflicts.join(", "),
                run.id
            ),
            None => format!("not applied (`host diff {0}`, `host apply {0}`)", run.id),
        };
        println!("workspace: {changed} file change(s), {state}");
    }
    Ok(Exit::Success)
}

pub fn show(globals: &Globals, args: ShowArgs) -> Outcome {
    let (run_id, stage_id, json) = (args.run_id.as_str(), args.stage.as_str(), args.json);
    let (store, run) = open_run(globals, run_id)?;
    let stages = store.stages(&run)?;
    let Some(stage) = stages.into_iter().find(|s| s.stage == stage_id) else {
        return Err(Failure::invalid(format!(
            "run '{run_id}' has no stage '{stage_id}'"
        )));
    };
    if args.log {
        print_log(&store, run_id, &stage)?;
        return Ok(Exit::Success);
    }
    let Some(output) = &stage.output else {
        // Why there is none: the failure, the skip, or where it stands.
        let why = match (&stage.failure, &stage.skip_reason) {
            (Some(f), _) => format!(
                "{}: {}",
                stage.status.as_str(),
                printable_lines(&f.to_string())
            ),
            (None, Some(reason)) => format!("{}: {}", stage.status.as_str(), printable(reason)),
            (None, None) => stage.status.as_str().to_string(),
        };
        if args.artifact.is_some() {
            return Err(Failure::invalid(format!(
                "stage '{stage_id}' has no output, so no artifact ({why})"
            )));
        }
        if json {
            println!("{}", serde_json::to_string(&stage).unwrap_or_default());
        } else {
            print_activity(&stage);
            println!("stage '{stage_id}' has no output: {why}");
        }
        return Ok(Exit::Success);
    };
    if let Some(name) = args.artifact.as_deref() {
        let Some(a) = output.artifacts.iter().find(|a| a.name == name) else {
            return Err(Failure::invalid(format!(
                "stage '{stage_id}' has no artifact '{name}'"
            )));
        };
        let Some(bytes) = store.blob(&a.hash)? else {
            return Err(Failure::host(format!(
                "artifact '{name}' ({}) is missing from the store",
                a.hash
            )));
        };
        let _ = std::io::stdout().lock().write_all(&bytes);
        return Ok(Exit::Success);
    }
    if json {
        println!("{}", serde_json::to_string(&stage).unwrap_or_default());
        return Ok(Exit::Success);
    }
    println!(
        "stage {stage_id} of run {run_id}: {}",
        stage.status.as_str()
    );
    println!("summary: {}", printable_lines(&output.summary));
    if let Some(d) = &output.decision {
        println!("decision: {}", printable(d));
    }
    for (name, value) in &output.metrics {
        println!("metric {} = {value}", printable(name));
    }
    print_activity(&stage);
    for a in &output.artifacts {
        println!(
            "\n--- {} ({}, {} bytes, blake3 {})",
            printable(&a.name),
            printable(&a.media_type),
            a.size,
            &a.hash[..16]
        );
        let textual = a.media_type.starts_with("text/") || a.media_type == "application/json";
        match store.blob(&a.hash)? {
            Some(bytes) if textual => {
                println!("{}", printable_lines(&String::from_utf8_lossy(&bytes)))
            }
            Some(_) => println!(
                "(binary: `host show {run_id} {stage_id} --artifact {}` writes it)",
                printable(&a.name)
            ),
            None => println!("(missing from the store)"),
        }
    }
    Ok(Exit::Success)
}

/// The stage's attempt logs in its current loop pass, oldest first: the
/// live log files beside the database (`host serve` follows the same ones).
/// A model answer as it streamed into the log: the answer, text a retry or
/// a failure superseded, or a stream the attempt never finished.
fn print_stream(alias: &str, text: &str, end: Option<&host::vocab::StreamEnd>) {
    use host::vocab::StreamEnd;
    let how = match end {
        Some(StreamEnd::Answer) => String::new(),
        Some(StreamEnd::Superseded(why)) => format!(", superseded: {}", printable(why)),
        None => ", unfinished".into(),
    };
    println!(" info [model {alias}{how}] {}", printable(text));
}

fn print_log(store: &Store, run_id: &str, stage: &StageRecord) -> Result<(), Failure> {
    use host::runtime::live::{log_path, read_log};
    let state_dir = store.path().parent().unwrap_or(std::path::Path::new("."));
    let mut any = false;
    for attempt in 1..=stage.attempts {
        let path = log_path(state_dir, run_id, &stage.stage, stage.iteration, attempt);
        let (lines, _) = read_log(&path, 0)
            .map_err(|e| Failure::host(format!("cannot read {}: {e}", path.display())))?;
        if lines.is_empty() {
            continue;
        }
        any = true;
        println!("--- attempt {attempt}");
        // A streamed answer's pieces, printed once its stream ends.
        let mut streams: std::collections::BTreeMap<u32, (String, String)> = Default::default();
        for line in lines {
            if let Some(piece) = line.model {
                let (_, text) = streams
                    .entry(piece.call)
                    .or_insert_with(|| (piece.alias.clone(), String::new()));
                text.push_str(&piece.text);
                if let Some(end) = piece.end {
                    let (alias, text) = streams.remove(&piece.call).unwrap_or_default();
                    print_stream(&alias, &text, Some(&end));
                }
                continue;
            }
            let from = line
                .stream
                .map_or(String::new(), |s| format!(" [{}]", s.name()));
            let progress = line
                .progress
                .map_or(String::new(), |(done, total)| format!(" ({done}/{total})"));
            println!(
                "{:>5}{from}{progress} {}",
                line.level.name(),
                printable(&line.message)
            );
        }
        for (alias, text) in streams.into_values() {
            print_stream(&alias, &text, None);
        }
    }
    if !any {
        println!(
            "stage '{}' logged and printed nothing{}",
            stage.stage,
            if stage.attempts == 0 {
                " (it has not run)"
            } else {
                ""
            }
        );
    }
    Ok(())
}

/// The gates a stage ran and the workspace files it changed.
fn print_activity(stage: &StageRecord) {
    for g in &stage.gate_runs {
        println!(
            "gate {} {}: {} ({:.2}s, {} bytes of output)",
            g.gate,
            if g.passed { "passed" } else { "FAILED" },
            g.reason(),
            g.duration_ms as f64 / 1000.0,
            g.output_bytes
        );
    }
    if !stage.file_changes.is_empty() {
        println!("workspace changes:");
        for c in &stage.file_changes {
            let short = |h: &String| h.get(..12).unwrap_or(h).to_string();
            let (mark, hashes) = match (&c.before, &c.after) {
                (None, Some(a)) => ("A", short(a)),
                (Some(b), None) => ("D", short(b)),
                (Some(b), Some(a)) => ("M", format!("{} -> {}", short(b), short(a))),
                (None, None) => ("?", String::new()),
            };
            println!("  {mark} {}  {hashes}", printable(&c.path));
        }
    }
}

fn describe(e: &EventRecord) -> String {
    let v = serde_json::to_value(&e.event).unwrap_or_default();
    let kind = v["event"].as_str().unwrap_or("?").to_string();
    let mut rest = v.as_object().cloned().unwrap_or_default();
    rest.remove("event");
    let details: Vec<String> = rest
        .iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect();
    format!("{kind} {}", printable(&details.join(" ")))
}

pub fn events(globals: &Globals, args: EventsArgs) -> Outcome {
    let (run_id, json) = (args.run_id.as_str(), args.json);
    let (store, _) = open_run(globals, run_id)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let result = store.for_each_event(run_id, |e| {
        let line = if json {
            serde_json::to_string(&e).unwrap_or_default()
        } else {
            format!("{:>5} {} {}", e.seq, utc(e.at_ms), describe(&e))
        };
        let _ = writeln!(out, "{line}");
        Ok(())
    });
    result?;
    Ok(Exit::Success)
}

/// Streams a run as JSON lines: the run, each stage, each event; nothing is
/// held in memory beyond one record.
pub fn export(globals: &Globals, args: ExportArgs) -> Outcome {
    let ExportFormat::Jsonl = args.format;
    let run_id = args.run_id.as_str();
    let (store, run) = open_run(globals, run_id)?;
    let stages = store.stages(&run)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let _ = writeln!(out, "{}", serde_json::json!({ "type": "run", "run": run }));
    for s in &stages {
        let _ = writeln!(
            out,
            "{}",
            serde_json::json!({ "type": "stage", "run_id": run.id, "stage": s })
        );
    }
    let result = store.for_each_event(run_id, |e| {
        let _ = writeln!(
            out,
            "{}",
            serde_json::json!({ "type": "event", "run_id": run.id, "event": e })
        );
        Ok(())
    });
    result?;
    Ok(Exit::Success)
}
